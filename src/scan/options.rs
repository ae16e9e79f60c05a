//! How the walk turns directory entries into keys: the options the walk and the directory
//! reader share.

use std::sync::Arc;

use crate::keys::names::NameDecoder;
use crate::keys::shard::{SeenElsewhere, Shard};

/// What to do with a symlink whose target lies outside the source directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SymlinkPolicy {
    /// Publish what it points to, like any file or directory.
    #[default]
    Follow,
    /// Leave it out, with a warning: it is treated as absent.
    Skip,
}

/// How the walk turns directory entries into keys.
#[derive(Debug, Clone)]
pub struct WalkOptions {
    pub names: NameDecoder,
    pub symlinks: SymlinkPolicy,
    /// Bytes of the target prefix, which count toward S3's key limit
    /// ([`MAX_KEY_BYTES`](crate::keys::target::MAX_KEY_BYTES)).
    pub prefix_len: usize,
    /// Folders not to enter at all, because nothing under them is published.
    pub skip: Option<SkipFolders>,
    /// This run's part of a split run: the files of folders it does not own are neither stat'ed
    /// nor yielded (their folders are still read, for the folders under them).
    pub shard: Option<Arc<Shard>>,
    /// Counts the files of other shards' folders the walk passed by.
    pub elsewhere: SeenElsewhere,
}

impl WalkOptions {
    /// Keys decoded with `names`, symlinks followed, no prefix, nothing skipped.
    pub fn new(names: NameDecoder) -> WalkOptions {
        WalkOptions {
            names,
            symlinks: SymlinkPolicy::Follow,
            prefix_len: 0,
            skip: None,
            shard: None,
            elsewhere: SeenElsewhere::default(),
        }
    }
}

/// Decides, by its key relative to the root (without the trailing `/`), whether a folder is
/// left out whole: a filter at the head of the chain excludes every key under it, so reading it
/// would only cost time, and find problems that cannot matter.
#[derive(Clone)]
pub struct SkipFolders(pub Arc<dyn Fn(&str) -> bool + Send + Sync>);

impl SkipFolders {
    pub fn skips(&self, folder: &str) -> bool {
        (self.0)(folder)
    }
}

impl std::fmt::Debug for SkipFolders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SkipFolders")
    }
}
