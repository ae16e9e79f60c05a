//! The local scan: the source tree walked in S3's key order.
//!
//! The walk yields keys relative to the target prefix in S3's listing order (UTF-8 bytes), in
//! batches over a bounded channel, so it runs beside the listing and the slower of the two paces
//! the other. `local` is the ordered walk, `listing` reads one directory, `prefetch` reads
//! directories ahead of the walk on a few threads, and `options` is what they share.

mod listing;
pub mod local;
pub mod options;
mod prefetch;

pub use local::{spawn, walk_all};

/// The walk stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    /// It, or a thread reading directories for it, died: what it said.
    #[error("{0}")]
    Died(String),
    /// A thread it needs could not be started.
    #[error(transparent)]
    Spawn(#[from] crate::run::thread::SpawnError),
}
pub use options::{SkipFolders, SymlinkPolicy, WalkOptions};
