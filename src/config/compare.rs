//! The `compare` section: how "changed" is decided, and the local state that remembers what
//! earlier runs learned so the next reads fewer bytes.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::error::{ConfigError, Origins};
use crate::clock::ChangeRule;
use crate::model::Time;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct CompareConfig {
    /// How "changed" is decided: "auto" (metadata, then the bytes where it cannot tell),
    /// "mtime" (size and mtime only) or "checksum" (the bytes of every file, every run).
    pub compare: String,
    /// Margin in seconds for the mtime comparison, on top of the measured clock offset.
    pub clock_fudge: f64,
    /// Keep a local state of what each run learned, so the next reads fewer bytes.
    pub state: bool,
    /// Where the local state lives (default `$XDG_CACHE_HOME/sitesync`, else `~/.cache/sitesync`).
    pub state_dir: Option<PathBuf>,
}

impl Default for CompareConfig {
    fn default() -> Self {
        CompareConfig { compare: "auto".into(), clock_fudge: 0.0, state: true, state_dir: None }
    }
}

/// How "changed" is decided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CompareMode {
    /// Size and mtime only; no file is read (bytes a transform made are still compared by
    /// content: they have no mtime to go by).
    Mtime,
    /// Metadata where it settles the question, the bytes where it cannot.
    #[default]
    Auto,
    /// The bytes of every file whose size matches, every run.
    Checksum,
}

/// The comparison of a run.
#[derive(Debug, Clone)]
pub struct Comparing {
    pub mode: CompareMode,
    pub rule: ChangeRule,
    /// The local state's folder; `None` with `state = false` (or no home directory).
    pub state_dir: Option<PathBuf>,
}

impl CompareConfig {
    pub fn build(self, origins: Origins) -> Result<Comparing, ConfigError> {
        let modes = [("auto", CompareMode::Auto), ("mtime", CompareMode::Mtime), ("checksum", CompareMode::Checksum)];
        let mode = origins.choice("compare", &self.compare, &modes)?;
        let fudge = origins.in_range("clock_fudge", self.clock_fudge, 0.0..=86_400.0, " seconds")?;
        let state_dir = match (self.state, self.state_dir) {
            (false, _) => None,
            (true, Some(dir)) if dir.as_os_str().is_empty() => {
                return Err(origins.bad("state_dir", "the path is empty"));
            }
            (true, Some(dir)) if dir.exists() && !dir.is_dir() => {
                return Err(origins.bad("state_dir", format!("{} is not a directory", dir.display())));
            }
            (true, Some(dir)) => Some(dir),
            (true, None) => default_state_dir(),
        };
        Ok(Comparing { mode, rule: ChangeRule { fudge: Time::from_secs_f64(fudge).0 }, state_dir })
    }
}

/// Where the state of `identity` (target and source) lives under `dir`.
pub(super) fn state_file_for(dir: &Path, identity: &str) -> PathBuf {
    dir.join(format!("state-{:016x}.bin", crate::keys::target::fnv1a(identity.as_bytes())))
}

/// The default folder: `$XDG_CACHE_HOME/sitesync`, else `~/.cache/sitesync`.
fn default_state_dir() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()).map(PathBuf::from);
    let home = || std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".cache"));
    xdg.or_else(home).map(|d| d.join("sitesync"))
}
