//! Configuration as data: the layers figment merges, and the sections each feature reads.
//!
//! Layers, lowest first: built-in defaults < `sync.toml` (or `--config FILE`) < `SITESYNC_*`
//! environment variables < command-line flags. The file is one flat table, but each feature
//! declares its keys, with their defaults and docs, in its own section (`sink.rs`,
//! `invalidate.rs`, ...), whose `build()` validates them and makes the runtime settings;
//! [`Config`] holds the built sections, and its errors name the file (or variable, or flag) and
//! the key that is wrong. The flags feed figment directly: the parsed command line is one more
//! layer ([`figment`]), holding only the flags given.
//!
//! A new key is declared once in its section (its field and its default), read once in that
//! section's `build()`, and, when it has a flag, declared once more in
//! [`SyncArgs`](crate::cli::SyncArgs) under the same name.

mod bucket;
mod build;
mod chain;
mod compare;
mod delete;
mod error;
mod history;
mod invalidate;
mod read;
mod redirects;
mod remote;
mod shard;
mod sink;
mod site;
mod store;
mod walk;

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider};
use serde::Serialize;

pub use bucket::BucketConfig;
pub use build::Config;
pub use chain::ChainConfig;
pub use compare::{CompareConfig, CompareMode};
pub use delete::{DeleteConfig, DeleteSettings};
pub use error::{ConfigError, Origins};
pub use history::{COMMIT_VARIABLES, HistoryConfig, HistorySettings};
pub use invalidate::{InvalidateConfig, InvalidateSettings};
pub use redirects::SiteFilesConfig;
pub use remote::{RemoteChoice, RemoteConfig};
pub use shard::ShardConfig;
pub use sink::{SinkConfig, SinkSettings};
pub use site::SiteConfig;
pub use store::{Store, StoreConfig};
pub use walk::WalkConfig;

/// Every section of `sync.toml`, each read from the same merged table. A section's `Default` is
/// the built-in layer; `sync.toml.example` documents every key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawConfig {
    pub site: SiteConfig,
    pub store: StoreConfig,
    pub sink: SinkConfig,
    pub delete: DeleteConfig,
    pub walk: WalkConfig,
    pub compare: CompareConfig,
    pub remote: RemoteConfig,
    pub invalidate: InvalidateConfig,
    pub chain: ChainConfig,
    pub shard: ShardConfig,
    pub site_files: SiteFilesConfig,
    pub history: HistoryConfig,
}

impl RawConfig {
    /// Every section, from the merged layers; a key no section reads is refused.
    pub fn read(figment: &Figment) -> Result<RawConfig, ConfigError> {
        let mut sections = read::Sections::new(figment);
        let raw = RawConfig {
            site: sections.read()?,
            store: sections.read()?,
            sink: sections.read()?,
            delete: sections.read()?,
            walk: sections.read()?,
            compare: sections.read()?,
            remote: sections.read()?,
            invalidate: sections.read()?,
            chain: sections.read()?,
            shard: sections.read()?,
            site_files: sections.read()?,
            history: sections.read()?,
        };
        sections.refuse_unknown()?;
        Ok(raw)
    }
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

/// Merges the layers over the sections' defaults. `flags` is the command line's layer, keyed
/// like `sync.toml` and holding only what was given ([`SyncArgs`](crate::cli::SyncArgs), or
/// `serde_json::json!({ "source": dir })` in a test). Building the result validates it.
pub fn figment(file: Option<&Path>, flags: &impl Serialize) -> Figment {
    let mut figment = Figment::new();
    if let Some(file) = file {
        figment = figment.merge(Toml::file_exact(file));
    }
    figment.merge(Env::prefixed("SITESYNC_")).merge(CommandLine(flags))
}

/// The command line as a figment layer, named so that errors say "command line".
struct CommandLine<'a, T>(&'a T);

impl<T: Serialize> Provider for CommandLine<'_, T> {
    fn metadata(&self) -> Metadata {
        Metadata::named(error::COMMAND_LINE)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Serialized::defaults(self.0).data()
    }
}

#[cfg(test)]
mod tests;
