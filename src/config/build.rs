//! Validating merged configuration into the runtime [`Config`].
//!
//! Every error names where the bad value came from (the file, the environment variable or the
//! flag, as figment recorded it) and the key, so a user can fix it without guessing.

use std::path::PathBuf;

use figment::Figment;

use super::RawConfig;
use crate::clock::ChangeRule;
use crate::model::Time;
use crate::names::{NameDecoder, NameError};
use crate::target::{Target, TargetError};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    Missing(PathBuf),
    #[error("{0}")]
    Invalid(String),
    #[error("{origin}: key `{key}`: {why}")]
    BadValue { origin: String, key: &'static str, why: String },
    #[error("no {0} given (pass it as an argument or set it in sync.toml)")]
    Required(&'static str),
}

/// Validated settings of one run.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: PathBuf,
    pub target: Target,
    pub endpoint_url: Option<String>,
    pub path_style: bool,
    pub region: Option<String>,
    pub profile: Option<String>,
    pub local_store: Option<PathBuf>,
    pub workers: usize,
    pub delete: bool,
    pub max_delete: u64,
    pub max_delete_percent: u8,
    pub rule: ChangeRule,
    pub names: NameDecoder,
    pub multipart_threshold: u64,
    pub multipart_chunk_size: u64,
    pub max_attempts: u32,
}

impl Config {
    pub fn build(figment: &Figment) -> Result<Config, ConfigError> {
        let raw: RawConfig = figment.extract().map_err(|e| ConfigError::Invalid(describe(e)))?;
        let bad = |key: &'static str, why: String| ConfigError::BadValue { origin: origin(figment, key), key, why };

        let source = raw.source.clone().ok_or(ConfigError::Required("source directory"))?;
        let destination = raw.destination.as_deref().ok_or(ConfigError::Required("destination"))?;
        let target = Target::parse(destination).map_err(|TargetError { why, .. }| bad("destination", why.into()))?;
        if !(1..=4096).contains(&raw.workers) {
            return Err(bad("workers", format!("{} is out of range (1 to 4096)", raw.workers)));
        }
        if raw.max_delete_percent > 100 {
            return Err(bad(
                "max_delete_percent",
                format!("{} is not a percentage (0 to 100)", raw.max_delete_percent),
            ));
        }
        if !raw.clock_fudge.is_finite() || !(0.0..=86_400.0).contains(&raw.clock_fudge) {
            return Err(bad("clock_fudge", format!("{} is out of range (0 to 86400 seconds)", raw.clock_fudge)));
        }
        let names = NameDecoder::new(&raw.encoding, &raw.normalize).map_err(|e| match e {
            NameError::UnknownEncoding(_) => bad("encoding", e.to_string()),
            NameError::UnknownNormalization(_) => bad("normalize", e.to_string()),
        })?;
        const MIN_PART: u64 = 5 * 1024 * 1024;
        const MAX_PART: u64 = 5 * 1024 * 1024 * 1024;
        if !(MIN_PART..=MAX_PART).contains(&raw.multipart_chunk_size) {
            return Err(bad(
                "multipart_chunk_size",
                format!("{} is out of range (5 MiB to 5 GiB)", raw.multipart_chunk_size),
            ));
        }
        if raw.multipart_threshold < MIN_PART {
            return Err(bad(
                "multipart_threshold",
                format!("{} is below S3's 5 MiB minimum part size", raw.multipart_threshold),
            ));
        }
        if !(1..=20).contains(&raw.max_attempts) {
            return Err(bad("max_attempts", format!("{} is out of range (1 to 20)", raw.max_attempts)));
        }
        if let Some(url) = &raw.endpoint_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(bad("endpoint_url", format!("{url:?} is not an http:// or https:// URL")));
        }
        Ok(Config {
            source,
            target,
            endpoint_url: raw.endpoint_url,
            path_style: raw.path_style,
            region: raw.region,
            profile: raw.profile,
            local_store: raw.local_store,
            workers: raw.workers,
            delete: raw.delete,
            max_delete: raw.max_delete,
            max_delete_percent: raw.max_delete_percent,
            rule: ChangeRule { fudge: Time::from_secs_f64(raw.clock_fudge).0 },
            names,
            multipart_threshold: raw.multipart_threshold,
            multipart_chunk_size: raw.multipart_chunk_size,
            max_attempts: raw.max_attempts,
        })
    }
}

/// Where figment found a key: a file path, an environment variable, or the command line.
fn origin(figment: &Figment, key: &str) -> String {
    match figment.find_metadata(key) {
        Some(md) => match &md.source {
            Some(figment::Source::File(path)) => path.display().to_string(),
            _ if md.name.contains("environment") => {
                format!("environment variable SITESYNC_{}", key.to_ascii_uppercase())
            }
            _ if md.name.contains("Overrides") => "command line".into(),
            _ if md.name.contains("RawConfig") => "built-in default".into(),
            _ => md.name.to_string(),
        },
        None => "configuration".into(),
    }
}

/// One line for a figment error: the source, the key and what is wrong with it.
fn describe(error: figment::Error) -> String {
    use figment::error::Kind;
    let mut lines = Vec::new();
    for e in error {
        let mut key = e.path.clone();
        if let Kind::UnknownField(field, _) = &e.kind
            && key.last() != Some(field)
        {
            key.push(field.clone());
        }
        let origin = match e.metadata.as_ref() {
            Some(md) => match &md.source {
                Some(figment::Source::File(path)) => path.display().to_string(),
                _ if md.name.contains("environment") && !key.is_empty() => {
                    format!("environment variable SITESYNC_{}", key.join("_").to_ascii_uppercase())
                }
                _ if md.name.contains("Overrides") => "command line".into(),
                _ if md.name.contains("RawConfig") => "built-in default".into(),
                _ => md.name.to_string(),
            },
            None => "configuration".into(),
        };
        let line = match &e.kind {
            Kind::UnknownField(..) => format!("{origin}: unknown key `{}`", key.join(".")),
            kind if !key.is_empty() => format!("{origin}: key `{}`: {kind}", key.join(".")),
            kind => format!("{origin}: {kind}"),
        };
        lines.push(line);
    }
    lines.join("\n")
}
