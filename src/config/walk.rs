//! The `walk` section: how names on disk become keys, and which symlinks are followed.

use serde::Deserialize;

use super::error::{ConfigError, Origins};
use crate::keys::names::{NameDecoder, NameError};
use crate::scan::SymlinkPolicy;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct WalkConfig {
    /// How file names on disk are decoded into keys.
    pub encoding: String,
    /// Unicode normalisation of keys: "none" or "nfc".
    pub normalize: String,
    /// Symlinks whose target is outside the source: "follow" publishes what they point to,
    /// "skip" leaves them out (and deletes their objects like any file that is gone).
    pub symlinks: String,
}

impl Default for WalkConfig {
    fn default() -> Self {
        WalkConfig { encoding: "utf-8".into(), normalize: "none".into(), symlinks: "follow".into() }
    }
}

impl WalkConfig {
    pub fn build(self, origins: Origins) -> Result<(NameDecoder, SymlinkPolicy), ConfigError> {
        let names = NameDecoder::new(&self.encoding, &self.normalize).map_err(|e| match e {
            NameError::UnknownEncoding(_) => origins.bad("encoding", e.to_string()),
            NameError::UnknownNormalization(_) => origins.bad("normalize", e.to_string()),
        })?;
        let policies = [("follow", SymlinkPolicy::Follow), ("skip", SymlinkPolicy::Skip)];
        Ok((names, origins.choice("symlinks", &self.symlinks, &policies)?))
    }
}
