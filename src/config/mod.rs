//! Configuration as data: what figment merges, before anything is validated.
//!
//! Layers, lowest first: built-in defaults < `sync.toml` (or `--config FILE`) < `SITESYNC_*`
//! environment variables < command-line flags. [`RawConfig`] is only the merged data;
//! [`Config`](build::Config) is the validated runtime form, built once, whose errors name the file
//! (or variable, or flag) and the key that is wrong.

mod build;

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

pub use build::{CompareMode, Config, ConfigError};

use crate::transform::redirects::RedirectsConfig;

/// Every key of `sync.toml`, with its default. `sync.toml.example` documents each one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawConfig {
    /// The local directory to publish.
    pub source: Option<PathBuf>,
    /// `s3://BUCKET[/PREFIX]`.
    pub destination: Option<String>,
    /// An S3-compatible endpoint; `AWS_ENDPOINT_URL` is also honoured.
    pub endpoint_url: Option<String>,
    /// Path-style addressing (`http://host/bucket/key`), which most S3-compatible servers need.
    pub path_style: bool,
    pub region: Option<String>,
    /// A profile of the shared AWS config files; `AWS_PROFILE` is also honoured.
    pub profile: Option<String>,
    /// Serve an embedded S3-compatible store from this directory and sync to it.
    pub local_store: Option<PathBuf>,
    /// Concurrent S3 operations.
    pub workers: usize,
    /// Folder listings in flight when the listing is split by top-level folder (1: one stream).
    pub list_parallel: usize,
    /// `s3://BUCKET/.../manifest.json` of an S3 Inventory report of the target's bucket, read as
    /// the remote side instead of listing the prefix.
    pub remote_inventory: Option<String>,
    /// Delete objects that have no file any more.
    pub delete: bool,
    /// Refuse a run that would delete more objects than this.
    pub max_delete: u64,
    /// Refuse a run that would delete more than this percentage of the objects under the prefix.
    pub max_delete_percent: u8,
    /// Margin in seconds for the mtime comparison, on top of the measured clock offset.
    pub clock_fudge: f64,
    /// How file names on disk are decoded into keys.
    pub encoding: String,
    /// Unicode normalisation of keys: "none" or "nfc".
    pub normalize: String,
    /// The charset the text types' default Content-Type names (`text/html; charset=utf-8`); an
    /// empty string names none.
    pub default_charset: String,
    /// Files of at least this many bytes are uploaded in parts.
    pub multipart_threshold: u64,
    pub multipart_chunk_size: u64,
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// How retries are paced: "standard" (backoff with jitter) or "adaptive" (also slows the
    /// send rate while the server throttles).
    pub retry_mode: String,
    /// Seconds one attempt of a request may take before it is abandoned and retried; uploads
    /// get 4 s more per MiB they send.
    pub timeout: f64,
    /// The lock that keeps two runs for one target apart; default: a file in the temp directory
    /// named after the target.
    pub lock_file: Option<PathBuf>,
    /// Symlinks whose target is outside the source: "follow" publishes what they point to,
    /// "skip" leaves them out (and deletes their objects like any file that is gone).
    pub symlinks: String,
    /// How "changed" is decided: "auto" (metadata, then the bytes where it cannot tell),
    /// "mtime" (size and mtime only) or "checksum" (the bytes of every file, every run).
    pub compare: String,
    /// Keep a local state of what each run learned, so the next reads fewer bytes.
    pub state: bool,
    /// Where the local state lives (default `$XDG_CACHE_HOME/sitesync`, else `~/.cache/sitesync`).
    pub state_dir: Option<PathBuf>,
    /// Take the remote side from the local state instead of listing: for buckets only this tool
    /// writes.
    pub trust_state: bool,
    /// This run's part of a run split across machines: "K/N", or "auto/N" for K from
    /// `JOB_COMPLETION_INDEX` (a Kubernetes Indexed Job).
    pub shard: Option<String>,
    /// The transform chain: `[[transform]]` tables, in order (see docs/transforms.md). Each is
    /// validated by [`ChainSpec::build`](crate::transform::ChainSpec::build).
    pub transform: Vec<serde_json::Value>,
    /// A CloudFront distribution serving the prefix: after a sync, one invalidation is sent for
    /// the keys it changed or deleted.
    pub cloudfront_distribution_id: Option<String>,
    /// Invalidate added keys too (an edge may have cached their earlier 404).
    pub invalidate_added: bool,
    /// A folder with more paths to invalidate than this is invalidated as `/folder/*`.
    pub invalidate_max_paths: usize,
    /// `_redirects` and `_headers` (see docs/redirects-and-headers.md).
    pub redirects: RedirectsConfig,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            source: None,
            destination: None,
            endpoint_url: None,
            path_style: false,
            region: None,
            profile: None,
            local_store: None,
            workers: 64,
            list_parallel: 8,
            remote_inventory: None,
            delete: true,
            max_delete: 1000,
            max_delete_percent: 50,
            clock_fudge: 0.0,
            encoding: "utf-8".into(),
            normalize: "none".into(),
            default_charset: "utf-8".into(),
            multipart_threshold: 16 * 1024 * 1024,
            multipart_chunk_size: 8 * 1024 * 1024,
            max_attempts: crate::s3client::DEFAULT_MAX_ATTEMPTS,
            retry_mode: "standard".into(),
            timeout: crate::s3client::DEFAULT_TIMEOUT_SECS,
            lock_file: None,
            symlinks: "follow".into(),
            compare: "auto".into(),
            state: true,
            state_dir: None,
            trust_state: false,
            shard: None,
            transform: Vec::new(),
            cloudfront_distribution_id: None,
            invalidate_added: false,
            invalidate_max_paths: 50,
            redirects: RedirectsConfig::default(),
        }
    }
}

/// Values given on the command line. Unset flags are skipped, so they do not hide the file's.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_style: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_store: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_inventory: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_delete: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock_fudge: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compare: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust_state: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloudfront_distribution_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalidate_added: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalidate_max_paths: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirects: Option<RedirectsOverrides>,
}

/// The flags of `[redirects]`; merged into the file's table key by key.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RedirectsOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// The default config file, used when it exists and no `--config` is given.
pub const DEFAULT_FILE: &str = "sync.toml";

/// Which config file a run reads: the one named, or `./sync.toml` when present.
pub fn config_file(named: Option<&Path>) -> Result<Option<PathBuf>, ConfigError> {
    match named {
        Some(path) if path.is_file() => Ok(Some(path.to_owned())),
        Some(path) => Err(ConfigError::Missing(path.to_owned())),
        None => Ok(Some(PathBuf::from(DEFAULT_FILE)).filter(|p| p.is_file())),
    }
}

/// Merges the layers. Building the result validates it.
pub fn figment(file: Option<&Path>, overrides: &Overrides) -> Figment {
    let mut figment = Figment::from(Serialized::defaults(RawConfig::default()));
    if let Some(file) = file {
        figment = figment.merge(Toml::file_exact(file));
    }
    figment
        .merge(Env::prefixed("SITESYNC_"))
        .merge(Serialized::defaults(overrides.clone()).profile(figment::Profile::Default))
}

#[cfg(test)]
mod tests;
