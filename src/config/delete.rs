//! The `delete` section: whether objects whose file is gone are deleted, and the limits that
//! refuse a run that would delete too much (the usual sign of a broken build).

use serde::Deserialize;

use super::error::{ConfigError, Origins};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct DeleteConfig {
    /// Delete objects that have no file any more.
    pub delete: bool,
    /// Refuse a run that would delete more objects than this.
    pub max_delete: u64,
    /// Refuse a run that would delete more than this percentage of the objects under the prefix.
    pub max_delete_percent: u8,
}

impl Default for DeleteConfig {
    fn default() -> Self {
        DeleteConfig { delete: true, max_delete: 1000, max_delete_percent: 50 }
    }
}

/// Whether a run deletes, and how much it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeleteSettings {
    /// Objects whose file is gone are deleted.
    pub enabled: bool,
    /// Refuse more deletes than this.
    pub max: u64,
    /// Refuse deleting more than this share of the objects under the prefix, in percent.
    pub max_percent: u8,
}

impl DeleteConfig {
    pub fn build(self, origins: Origins) -> Result<DeleteSettings, ConfigError> {
        if self.max_delete_percent > 100 {
            let why = format!("{} is not a percentage (0 to 100)", self.max_delete_percent);
            return Err(origins.bad("max_delete_percent", why));
        }
        Ok(DeleteSettings { enabled: self.delete, max: self.max_delete, max_percent: self.max_delete_percent })
    }
}
