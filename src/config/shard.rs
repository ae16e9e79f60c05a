//! The `shard` section: this run's part of a run split across machines.

use serde::Deserialize;

use super::error::{ConfigError, Origins};
use crate::keys::shard::Shard;
use crate::transform::ChainSpec;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ShardConfig {
    /// This run's part of a run split across machines: "K/N", or "auto/N" for K from
    /// `JOB_COMPLETION_INDEX` (a Kubernetes Indexed Job).
    pub shard: Option<String>,
}

impl ShardConfig {
    /// The shard named (with K from `JOB_COMPLETION_INDEX` for `auto/N`), tracing the chain's
    /// copies back to their files; a rule set under which it cannot is refused, named. `None`:
    /// the whole prefix.
    pub fn build(self, chain: &ChainSpec, origins: Origins) -> Result<Option<Shard>, ConfigError> {
        let Some(text) = self.shard else { return Ok(None) };
        let job_index = std::env::var("JOB_COMPLETION_INDEX").ok();
        let shard = crate::keys::shard::parse(&text, job_index.as_deref()).map_err(|why| origins.bad("shard", why))?;
        let shard = shard.mapping_back(chain.duplicate_rules()).map_err(|refused| ConfigError::Transform {
            origin: chain.origin.clone(),
            key: refused.at,
            why: refused.why,
        })?;
        Ok(Some(shard))
    }
}
