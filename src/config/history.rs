//! The `history` section: how many deploys the bucket keeps under `.sitesync/` to roll back to,
//! and the message a deploy's record carries.

use serde::Deserialize;

use super::error::{ConfigError, Origins};

/// The CI variables holding the commit a build was made from, read (in this order) when no
/// message is given: GitHub Actions, GitLab CI, Azure Pipelines.
pub const COMMIT_VARIABLES: [&str; 3] = ["GITHUB_SHA", "CI_COMMIT_SHA", "BUILD_SOURCEVERSION"];

/// The longest message a record keeps, in bytes.
const MAX_MESSAGE: usize = 4096;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct HistoryConfig {
    /// Deploys kept to roll back to (a rollback counts as one); 0 keeps no history at all.
    pub keep_deploys: u32,
    /// What the deploy's record says of it; default: the CI's commit id, when there is one.
    pub message: Option<String>,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig { keep_deploys: 10, message: None }
    }
}

/// What a run records of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistorySettings {
    /// Deploys kept; 0: no history.
    pub keep: u32,
    pub message: Option<String>,
}

impl HistorySettings {
    /// Whether a run keeps objects before changing them: with fewer than two deploys kept, none
    /// is ever kept to roll back to.
    pub fn keeps(&self) -> bool {
        self.keep >= 2
    }
}

impl HistoryConfig {
    pub fn build(self, origins: Origins) -> Result<HistorySettings, ConfigError> {
        let keep = origins.in_range("keep_deploys", self.keep_deploys, 0..=10_000, "")?;
        let message = self.message.or_else(|| {
            COMMIT_VARIABLES.iter().find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
        });
        if let Some(message) = &message
            && message.len() > MAX_MESSAGE
        {
            let why = format!("{} bytes is longer than the {MAX_MESSAGE} a record keeps", message.len());
            return Err(origins.bad("message", why));
        }
        Ok(HistorySettings { keep, message })
    }
}
