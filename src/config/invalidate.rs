//! The `invalidate` section: the CloudFront invalidation sent after a run for the keys it changed.

use serde::Deserialize;

use super::error::{ConfigError, Origins};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct InvalidateConfig {
    /// A CloudFront distribution serving the prefix: after a sync, one invalidation is sent for
    /// the keys it changed or deleted.
    pub cloudfront_distribution_id: Option<String>,
    /// Invalidate added keys too (an edge may have cached their earlier 404).
    pub invalidate_added: bool,
    /// A folder with more paths to invalidate than this is invalidated as `/folder/*`.
    pub invalidate_max_paths: usize,
}

impl Default for InvalidateConfig {
    fn default() -> Self {
        InvalidateConfig { cloudfront_distribution_id: None, invalidate_added: false, invalidate_max_paths: 50 }
    }
}

/// What the configuration asks of the invalidation (`after::invalidate` sends it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidateSettings {
    pub distribution_id: String,
    /// Invalidate added keys too.
    pub include_added: bool,
    /// A folder with more paths than this is sent as `/folder/*`.
    pub max_paths: usize,
    /// Wait until CloudFront reports the invalidation completed.
    pub wait: bool,
}

impl InvalidateConfig {
    /// The invalidation's settings, `None` when no distribution is set. Whether to wait for it
    /// is the run's choice (`--wait`), not configuration: it is left `false` here.
    pub fn build(self, origins: Origins) -> Result<Option<InvalidateSettings>, ConfigError> {
        // The id is sent in a URL path, so anything but letters and digits (a pasted ARN, a domain
        // name) is refused before the run instead of failing after it.
        if let Some(id) = &self.cloudfront_distribution_id
            && (id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()))
        {
            let why = format!("{id:?} is not a distribution id (letters and digits, like \"E2QWRUHAPOMQZL\")");
            return Err(origins.bad("cloudfront_distribution_id", why));
        }
        // More than CloudFront takes in one invalidation would never fold a folder.
        let max_paths = origins.in_range("invalidate_max_paths", self.invalidate_max_paths, 1..=3000, "")?;
        Ok(self.cloudfront_distribution_id.map(|distribution_id| InvalidateSettings {
            distribution_id,
            include_added: self.invalidate_added,
            max_paths,
            wait: false,
        }))
    }
}
