//! The `transform` section: the chain of `[[transform]]` tables, validated by
//! [`ChainSpec::build`], with their plugin libraries loaded, and the cache policy that gives keys
//! their Cache-Control before any of them.

use std::path::Path;

use serde::Deserialize;

use super::error::{ConfigError, Origins};
use crate::transform::{CachePolicy, ChainSpec};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct ChainConfig {
    /// The transform chain: `[[transform]]` tables, in order (see docs/transforms.md).
    pub transform: Vec<serde_json::Value>,
    /// Cache-Control by name: "auto" (a year and `immutable` for fingerprinted names,
    /// `must-revalidate` for the rest, before any `headers` rule) or "off".
    pub cache_policy: String,
}

impl Default for ChainConfig {
    fn default() -> Self {
        ChainConfig { transform: Vec::new(), cache_policy: "off".into() }
    }
}

impl ChainConfig {
    /// Validates the tables and loads the plugins they list, in order. Relative plugin paths
    /// start from the directory of the config file that names them.
    pub fn build(self, origins: Origins) -> Result<ChainSpec, ConfigError> {
        let file = origins.file_of("transform");
        let base = file.as_deref().and_then(Path::parent).map(Path::to_owned).unwrap_or_default();
        let origin = origins.of("transform");
        let mut chain = ChainSpec::build(&self.transform, &base).map_err(|e| ConfigError::Transform {
            origin: origin.clone(),
            key: e.key,
            why: e.why,
        })?;
        chain.origin = origin;
        let policy = origins.choice("cache_policy", &self.cache_policy, &CachePolicy::CHOICES)?;
        Ok(chain.with_cache_policy(policy))
    }
}
