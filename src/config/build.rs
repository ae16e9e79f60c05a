//! Validating merged configuration into the runtime [`Config`], one section at a time.
//!
//! Each section's `build()` validates its own keys and makes its runtime settings; this file only
//! composes them (and the few facts made of several sections: the target's identity, the state's
//! file), so a feature's keys are read in one place.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use figment::Figment;

use super::RawConfig;
use super::compare::{CompareMode, Comparing, state_file_for};
use super::delete::DeleteSettings;
use super::error::{ConfigError, Origins};
use super::history::HistorySettings;
use super::invalidate::InvalidateSettings;
use super::remote::RemoteChoice;
use super::sink::SinkSettings;
use super::site::Site;
use super::store::Store;
use crate::clock::ChangeRule;
use crate::history::lock::Mode;
use crate::keys::names::NameDecoder;
use crate::keys::shard::Shard;
use crate::keys::target::Target;
use crate::scan::{SkipFolders, SymlinkPolicy, WalkOptions};
use crate::transform::ChainSpec;

/// Validated settings of one run.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: PathBuf,
    pub target: Target,
    /// `None`: the default lock, named after the target in the temp directory.
    pub lock_file: Option<PathBuf>,
    /// Whether a sync holds the lock in the bucket too.
    pub remote_lock: Mode,
    /// This run's part of a split run; `None`: the whole prefix.
    pub shard: Option<Shard>,
    pub store: Store,
    pub names: NameDecoder,
    pub symlinks: SymlinkPolicy,
    /// The transform chain, validated, its plugin libraries loaded.
    pub chain: ChainSpec,
    pub compare: CompareMode,
    pub rule: ChangeRule,
    /// The local state's file; `None` with `state = false`.
    pub state: Option<PathBuf>,
    /// What the run reads as the bucket's contents.
    pub remote: RemoteChoice,
    pub sink: SinkSettings,
    pub delete: DeleteSettings,
    /// The CloudFront invalidation after a run; `None`: no invalidation.
    pub invalidate: Option<InvalidateSettings>,
    /// The deploy history kept under `.sitesync/`.
    pub history: HistorySettings,
}

impl Config {
    /// Reads every section from the merged layers and validates it; errors name the layer and the
    /// key.
    pub fn build(figment: &Figment) -> Result<Config, ConfigError> {
        RawConfig::read(figment)?.build(Origins(figment))
    }

    /// The lock file of a run: `lock_file` if set, otherwise one per target in the temp directory.
    /// The shards of a split run run at once, so each has its own: `lock_file` gets a `.K-of-N`
    /// suffix.
    pub fn lock_path(&self) -> PathBuf {
        lock_path(self.lock_file.as_deref(), self.shard.as_ref(), &self.target_identity(), &self.target.bucket)
    }

    /// The store, bucket and prefix a run writes to, as one text: the endpoint (or the embedded
    /// store's folder, or `aws`), the bucket and the prefix, one a line. Runs with the same
    /// identity share a lock and a state.
    pub fn target_identity(&self) -> String {
        target_identity(&self.store, &self.target, self.shard.as_ref())
    }

    /// What a local state is for: the target, and the source it is published from.
    pub fn state_identity(&self) -> String {
        state_identity(&self.target_identity(), &self.source)
    }

    /// How the local walk of this run turns entries into keys; the pipeline and the plan
    /// snapshot tests walk with the same options.
    pub fn walk_options(&self) -> WalkOptions {
        let skip = self.chain.folder_excludes().map(|excludes| SkipFolders(Arc::new(move |f| excludes.excludes(f))));
        // The walk can leave other shards' folders out only when the chain keeps every key in its
        // file's folder, or a duplicate of it, which the shard maps back.
        let shard = self.shard.clone().filter(|_| self.chain.keeps_folders()).map(Arc::new);
        WalkOptions {
            names: self.names,
            symlinks: self.symlinks,
            prefix_len: self.target.prefix.len(),
            skip,
            shard,
            elsewhere: Default::default(),
        }
    }
}

impl RawConfig {
    /// Builds each section, cheap checks first: the chain loads plugin libraries.
    fn build(self, origins: Origins) -> Result<Config, ConfigError> {
        let Site { source, target, lock_file, remote_lock } = self.site.build(origins)?;
        let store = self.store.build(origins)?;
        let sink = self.sink.build(origins)?;
        let delete = self.delete.build(origins)?;
        let (names, symlinks) = self.walk.build(origins)?;
        let invalidate = self.invalidate.build(origins)?;
        let Comparing { mode, rule, state_dir } = self.compare.build(origins)?;
        let chain = self.chain.build(origins)?;
        let shard = self.shard.build(&chain, origins)?;
        let chain = self.site_files.build(chain, (&source, shard.clone()), origins)?;
        let identity = state_identity(&target_identity(&store, &target, shard.as_ref()), &source);
        let state = state_dir.map(|dir| state_file_for(&dir, &identity));
        let remote = self.remote.build(state.as_deref(), origins)?;
        let history = self.history.build(origins)?;
        Ok(Config {
            source,
            target,
            lock_file,
            remote_lock,
            shard,
            store,
            names,
            symlinks,
            chain,
            compare: mode,
            rule,
            state,
            remote,
            sink,
            delete,
            invalidate,
            history,
        })
    }
}

/// See [`Config::lock_path`].
pub(super) fn lock_path(lock_file: Option<&Path>, shard: Option<&Shard>, identity: &str, bucket: &str) -> PathBuf {
    if let Some(path) = lock_file {
        return match shard {
            Some(shard) => {
                let mut name = path.as_os_str().to_owned();
                name.push(format!(".{}", shard.tag()));
                PathBuf::from(name)
            }
            None => path.to_owned(),
        };
    }
    let id = crate::keys::target::fnv1a(identity.as_bytes());
    std::env::temp_dir().join(format!("sitesync-{bucket}-{id:016x}.lock"))
}

/// See [`Config::target_identity`].
pub(super) fn target_identity(store: &Store, target: &Target, shard: Option<&Shard>) -> String {
    let endpoint = match (&store.local_store, &store.connection.endpoint_url) {
        (Some(dir), _) => format!("local-store:{}", resolved(dir).display()),
        (None, Some(url)) => url.trim_end_matches('/').to_owned(),
        (None, None) => "aws".to_owned(),
    };
    let shard = shard.map(|s| format!("\nshard {s}")).unwrap_or_default();
    format!("{endpoint}\n{}\n{}{shard}", target.bucket, target.prefix)
}

/// See [`Config::state_identity`].
fn state_identity(target_identity: &str, source: &Path) -> String {
    let source = std::fs::canonicalize(source).unwrap_or_else(|_| source.to_owned());
    format!("{target_identity}\n{}", source.display())
}

/// `path` made absolute with its symlinks resolved, whether it exists yet or not: the deepest
/// folder of it that exists is canonicalized and the rest appended as written, so a folder a run
/// is about to make (the embedded store's) is named as it will be once it exists.
pub fn resolved(path: &Path) -> PathBuf {
    use std::path::Component;
    let Ok(absolute) = std::path::absolute(path) else { return path.to_owned() };
    let parts: Vec<Component> = absolute.components().collect();
    for existing in (1..=parts.len()).rev() {
        let Ok(mut real) = std::fs::canonicalize(parts[..existing].iter().collect::<PathBuf>()) else { continue };
        for part in &parts[existing..] {
            match part {
                Component::ParentDir => {
                    real.pop();
                }
                Component::Normal(name) => real.push(name),
                _ => {}
            }
        }
        return real;
    }
    absolute
}
