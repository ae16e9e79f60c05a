//! The `site` section: what is published where, and the locks that keep two runs for one target
//! apart (a file on this machine, and one in the bucket).

use std::path::PathBuf;

use serde::Deserialize;

use super::error::{ConfigError, Origins};
use crate::history::lock::Mode;
use crate::keys::target::{Target, TargetError};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct SiteConfig {
    /// The local directory to publish.
    pub source: Option<PathBuf>,
    /// `s3://BUCKET[/PREFIX]`.
    pub destination: Option<String>,
    /// The lock that keeps two runs for one target apart; default: a file in the temp directory
    /// named after the target.
    pub lock_file: Option<PathBuf>,
    /// The lock in the bucket (`PREFIX/.sitesync/lock`) that keeps runs on different machines
    /// apart: "auto" (held where the server honours conditional writes, otherwise this machine's
    /// lock only, with a warning), "required" (refuse a server without them) or "off".
    pub remote_lock: String,
}

impl Default for SiteConfig {
    fn default() -> Self {
        SiteConfig { source: None, destination: None, lock_file: None, remote_lock: "auto".into() }
    }
}

/// The source and the target of a run, validated.
#[derive(Debug, Clone)]
pub struct Site {
    pub source: PathBuf,
    pub target: Target,
    /// `None`: the default lock, named after the target in the temp directory.
    pub lock_file: Option<PathBuf>,
    pub remote_lock: Mode,
}

impl SiteConfig {
    pub fn build(self, origins: Origins) -> Result<Site, ConfigError> {
        let source = self.source.clone().ok_or(ConfigError::Required("source directory"))?;
        let (target, lock_file, remote_lock) = self.build_target(origins)?;
        Ok(Site { source, target, lock_file, remote_lock })
    }

    /// The destination and the locks alone, for a command that reads no source (`rollback`).
    pub fn build_target(self, origins: Origins) -> Result<(Target, Option<PathBuf>, Mode), ConfigError> {
        let destination = self.destination.ok_or(ConfigError::Required("destination"))?;
        let target = Target::parse(&destination)
            .map_err(|TargetError { url, why }| origins.bad("destination", format!("{url:?}: {why}")))?;
        if self.lock_file.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            return Err(origins.bad("lock_file", "the path is empty"));
        }
        let modes = [("auto", Mode::Auto), ("required", Mode::Required), ("off", Mode::Off)];
        let remote_lock = origins.choice("remote_lock", &self.remote_lock, &modes)?;
        Ok((target, self.lock_file, remote_lock))
    }
}
