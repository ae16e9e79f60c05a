//! The configuration of a command that works on the bucket alone (`deploys`, `rollback`): the
//! same layers and the same `sync.toml` as a sync, every key checked, but only the sections such a
//! command uses are built: no source is read, no plugin loaded.

use std::path::PathBuf;

use figment::Figment;

use super::build::{lock_path, target_identity};
use super::error::{ConfigError, Origins};
use super::{DeleteSettings, HistorySettings, InvalidateSettings, RawConfig, SinkSettings, Store};
use crate::keys::target::Target;

/// Validated settings of a command on the bucket.
#[derive(Debug, Clone)]
pub struct BucketConfig {
    pub target: Target,
    pub store: Store,
    /// `None`: the default lock, named after the target in the temp directory.
    pub lock_file: Option<PathBuf>,
    /// Whether the lock in the bucket is taken (as by a sync of the whole target).
    pub remote_lock: crate::history::lock::Mode,
    pub sink: SinkSettings,
    pub delete: DeleteSettings,
    pub invalidate: Option<InvalidateSettings>,
    pub history: HistorySettings,
    /// The `shard` the layers set, if any: a rollback refuses one.
    pub shard: Option<String>,
}

impl BucketConfig {
    pub fn build(figment: &Figment) -> Result<BucketConfig, ConfigError> {
        let raw = RawConfig::read(figment)?;
        let origins = Origins(figment);
        let (target, lock_file, remote_lock) = raw.site.build_target(origins)?;
        Ok(BucketConfig {
            target,
            store: raw.store.build(origins)?,
            lock_file,
            remote_lock,
            sink: raw.sink.build(origins)?,
            delete: raw.delete.build(origins)?,
            invalidate: raw.invalidate.build(origins)?,
            history: raw.history.build(origins)?,
            shard: raw.shard.shard,
        })
    }

    /// The lock of a sync of the whole target: a rollback and such a sync never run at once.
    pub fn lock_path(&self) -> PathBuf {
        let identity = target_identity(&self.store, &self.target, None);
        lock_path(self.lock_file.as_deref(), None, &identity, &self.target.bucket)
    }
}
