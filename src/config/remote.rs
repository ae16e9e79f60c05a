//! The `remote` section: what a run reads as the bucket's contents. It is decided here, once:
//! the listing of the prefix, an S3 Inventory report, or the local state trusted as the bucket's
//! record. Two keys that each choose a side are refused together, never silently ranked.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::error::{ConfigError, Origins};
use crate::keys::target::{ObjectUrl, TargetError};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct RemoteConfig {
    /// Folder listings in flight when the listing is split by top-level folder (1: one stream).
    pub list_parallel: usize,
    /// `s3://BUCKET/.../manifest.json` of an S3 Inventory report of the target's bucket, read as
    /// the remote side instead of listing the prefix.
    pub remote_inventory: Option<String>,
    /// Take the remote side from the local state instead of listing: for buckets only this tool
    /// writes.
    pub trust_state: bool,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        RemoteConfig { list_parallel: 8, remote_inventory: None, trust_state: false }
    }
}

/// Where a run reads what the bucket holds under the prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteChoice {
    /// List the prefix, split by top-level folder, `parallel` listings in flight.
    Listing { parallel: usize },
    /// Read the S3 Inventory report this `manifest.json` describes.
    Inventory { manifest: ObjectUrl },
    /// Read the local state at `path` as the bucket's contents, listing nothing.
    TrustedState { path: PathBuf },
}

impl RemoteConfig {
    /// The remote side; `state` is the local state's file, `None` when the state is off.
    pub fn build(self, state: Option<&Path>, origins: Origins) -> Result<RemoteChoice, ConfigError> {
        let parallel = origins.in_range("list_parallel", self.list_parallel, 1..=256, "")?;
        let inventory = self.remote_inventory.as_deref().map(|url| manifest_url(url, origins)).transpose()?;
        match (self.trust_state, inventory, state) {
            (true, Some(_), _) => Err(ConfigError::Conflict {
                key: "trust_state",
                origin: origins.of("trust_state"),
                other: "remote_inventory",
                other_origin: origins.of("remote_inventory"),
                why: "both choose the remote side (the local state, an S3 Inventory): set one",
            }),
            (true, None, None) => {
                let why = "needs the local state, which is off (state = false, or no home directory)";
                Err(origins.bad("trust_state", why))
            }
            (true, None, Some(path)) => Ok(RemoteChoice::TrustedState { path: path.to_owned() }),
            (false, Some(manifest), _) => Ok(RemoteChoice::Inventory { manifest }),
            (false, None, _) => Ok(RemoteChoice::Listing { parallel }),
        }
    }
}

/// An inventory's `manifest.json`, as an `s3://BUCKET/KEY` URL.
fn manifest_url(url: &str, origins: Origins) -> Result<ObjectUrl, ConfigError> {
    const KEY: &str = "remote_inventory";
    let manifest =
        ObjectUrl::parse(url).map_err(|TargetError { url, why }| origins.bad(KEY, format!("{url:?}: {why}")))?;
    if manifest.key != "manifest.json" && !manifest.key.ends_with("/manifest.json") {
        return Err(origins.bad(KEY, format!("{url:?} is not an S3 Inventory's manifest.json")));
    }
    Ok(manifest)
}
