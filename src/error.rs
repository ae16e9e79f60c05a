//! The library's errors, typed at each boundary, and the exit status each kind maps to.
//!
//! Errors wrap their cause and say what they were doing: a [`StoreError`] names the S3 operation
//! ([`Op`]) and the key, and keeps the SDK's error as its source, so a caller can still ask for its
//! kind (a retry decision, a test) and a reader sees one line that says it all.

use std::path::PathBuf;

use crate::config::ConfigError;
use crate::history::lock::BucketLockError;
use crate::run::lock::LockError;
use crate::run::thread::SpawnError;
use crate::transform::TransformError;

/// Declared beside the client, below every module that sends a request (`history` too), and named
/// here with the other errors.
pub use crate::s3client::{Op, StoreError};

/// Exit status when every planned operation succeeded.
pub const EXIT_OK: u8 = 0;
/// Exit status when some operation failed; the report names each.
pub const EXIT_FAILED: u8 = 1;
/// Exit status for usage and configuration errors, and for runs refused for safety.
pub const EXIT_USAGE: u8 = 2;
/// Exit status of a run stopped by SIGINT or SIGTERM (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The source directory cannot be synced as it is.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Talking to S3 failed in a way that stops the whole run (listing, bucket, credentials).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The remote side cannot be read for another reason than a request: a local state that
    /// cannot stand for the bucket, an inventory whose content is wrong.
    #[error(transparent)]
    Remote(RemoteError),
    /// A transform failed during the run (a plugin returned an error or panicked).
    #[error(transparent)]
    Transform(#[from] TransformError),
    /// A stage of the pipeline ended before its work was done: a bug, reported instead of
    /// reading as the end of the tree or of the listing.
    #[error("the {stage} stopped before it was done: {why}")]
    Stage { stage: String, why: String },
    /// The deploy history cannot be read, or a rollback cannot go where it was asked.
    #[error(transparent)]
    History(crate::history::HistoryError),
    /// A thread of the run could not be started.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// Another run holds the target's lock, or the lock file cannot be used.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// Another run holds the target's lock in the bucket, the server cannot keep one and
    /// `remote_lock = "required"`, or the lock was lost during the run.
    #[error(transparent)]
    BucketLock(BucketLockError),
    /// `--trust-state` was given, but the local state cannot stand for the bucket in this run.
    #[error("--trust-state: {0}; run once without --trust-state, which lists the bucket")]
    Untrusted(&'static str),
    /// The process cannot watch for SIGINT and SIGTERM.
    #[error("cannot watch for signals: {0}")]
    Signals(std::io::Error),
    /// The embedded S3 store cannot start, or this build has none.
    #[error("{0}")]
    LocalStore(String),
    /// The ledger of retired keys (`delete_grace`) cannot be read or written.
    #[error(transparent)]
    Ledger(crate::history::ledger::LedgerError),
    /// A signal stopped the run before it sent anything.
    #[error("stopped by {0} before anything was sent")]
    Interrupted(&'static str),
    /// A second signal, or the end of the grace period, cut the run short after a first signal.
    #[error("stopped by {0}: cut short before the requests in flight ended; run again to finish")]
    CutShort(&'static str),
}

impl From<crate::scan::WalkError> for Error {
    fn from(e: crate::scan::WalkError) -> Error {
        match e {
            crate::scan::WalkError::Died(why) => Error::Stage { stage: "walk".into(), why },
            crate::scan::WalkError::Spawn(e) => Error::Spawn(e),
        }
    }
}

/// A request of the lock's is a store error like any other.
impl From<BucketLockError> for Error {
    fn from(e: BucketLockError) -> Error {
        match e {
            BucketLockError::Store(e) => Error::Store(e),
            e => Error::BucketLock(e),
        }
    }
}

/// A request's error is a store error (which names the endpoint); the rest are the ledger's.
impl From<crate::history::ledger::LedgerError> for Error {
    fn from(e: crate::history::ledger::LedgerError) -> Error {
        use crate::history::ledger::LedgerError;
        match e {
            LedgerError::Store(e) => Error::Store(e),
            e => Error::Ledger(e),
        }
    }
}

/// A request's error is a store error wherever the history read it.
impl From<crate::history::HistoryError> for Error {
    fn from(e: crate::history::HistoryError) -> Error {
        match e {
            crate::history::HistoryError::Store(e) => Error::Store(e),
            e => Error::History(e),
        }
    }
}

/// A request's error is a store error, and a reader that died a stage that did, wherever the
/// remote side read them; the rest say what is wrong with the source of the remote side.
impl From<RemoteError> for Error {
    fn from(e: RemoteError) -> Error {
        match e {
            RemoteError::Store(e) => Error::Store(e),
            RemoteError::Died { reader, why } => Error::Stage { stage: reader.into(), why },
            e => Error::Remote(e),
        }
    }
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::Source(_) | Error::Lock(_) | Error::Untrusted(_) => EXIT_USAGE,
            // `--trust-state` with a state that cannot stand for the bucket: refused, like a changed chain.
            Error::Remote(RemoteError::NoState { .. } | RemoteError::State { .. }) => EXIT_USAGE,
            Error::Store(_)
            | Error::Transform(_)
            | Error::Stage { .. }
            | Error::Spawn(_)
            | Error::Signals(_)
            | Error::LocalStore(_)
            | Error::Ledger(_) => EXIT_FAILED,
            Error::Remote(_) => EXIT_FAILED,
            Error::BucketLock(BucketLockError::Busy { .. } | BucketLockError::Unsupported { .. }) => EXIT_USAGE,
            Error::BucketLock(BucketLockError::Interrupted { .. }) => EXIT_INTERRUPTED,
            Error::BucketLock(_) => EXIT_FAILED,
            Error::History(e) if e.refused() => EXIT_USAGE,
            Error::History(_) => EXIT_FAILED,
            Error::Interrupted(_) | Error::CutShort(_) => EXIT_INTERRUPTED,
        }
    }
}

/// Why the source directory is refused before anything is sent.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("source {}: {source}", path.display())]
    Missing { path: PathBuf, source: std::io::Error },
    #[error("source {} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("source {}: cannot read directory: {source}", path.display())]
    Unreadable { path: PathBuf, source: std::io::Error },
    #[error(
        "source {} is empty; refusing to sync it (this would delete everything under the prefix); pass --force-delete to do it anyway",
        .0.display()
    )]
    Empty(PathBuf),
    #[error(
        "source {}: `.sitesync/` is reserved for sitesync's own objects under the prefix (the chain marker); rename it, or leave it out with a filter (exclude = [\".sitesync/**\"])",
        .0.display()
    )]
    Reserved(PathBuf),
}

/// Why a local state file is not used (see `state`); here, below both the state and the remote
/// side that reads it with `--trust-state`.
#[derive(Debug, thiserror::Error)]
pub enum Unusable {
    #[error("it is not a sitesync state of this version")]
    Version,
    #[error("it is the state of another target or source")]
    Identity,
    #[error("it is corrupt or truncated ({0})")]
    Corrupt(String),
    #[error("it cannot be read: {0}")]
    Io(#[from] std::io::Error),
}

/// Why a remote source (`remote::RemoteSource`) could not send every object, with its cause kept:
/// a request that failed is a store error, but a local state or an inventory that cannot be used
/// is not. Declared here, with [`InventoryError`] and [`Unusable`], so that [`Error`] and the
/// remote side both see it without a cycle.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// A request to the store failed: a listing, or a file of the inventory.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// What an inventory holds is wrong (its manifest, a data file), or its keys cannot be sorted
    /// on disk; `on` says which.
    #[error("{}: {source}", crate::keys::names::printable(on))]
    Inventory { on: String, source: InventoryError },
    /// `--trust-state`, and no run has saved a local state at `path` yet.
    #[error(
        "--trust-state: there is no local state {} to trust; run once without --trust-state, which lists the bucket",
        path.display()
    )]
    NoState { path: PathBuf },
    /// `--trust-state`, and the local state at `path` cannot be used.
    #[error(
        "--trust-state: the local state {} cannot be trusted: {source}; run once without --trust-state, which lists the bucket",
        path.display()
    )]
    State { path: PathBuf, source: Unusable },
    /// The task or thread reading the source died (a bug): `reader` names it, `why` is what it said.
    #[error("the {reader} stopped before it was done: {why}")]
    Died { reader: &'static str, why: String },
}

/// What is wrong with an inventory, a data file or one of its rows.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("not an S3 Inventory manifest: {0}")]
    Manifest(#[source] serde_json::Error),
    #[error("manifest.json does not match manifest.checksum: its MD5 is {actual}, manifest.checksum says {expected}")]
    ManifestChecksum { expected: String, actual: String },
    #[error(
        "the inventory is of bucket {inventory:?}, not of the target's bucket {target:?}: its keys are not the target's"
    )]
    OtherBucket { inventory: String, target: String },
    #[error(
        "the inventory's fileFormat is {0}: only CSV inventories can be read (configure the inventory with Output format CSV)"
    )]
    Format(String),
    #[error("the inventory's fileSchema {schema:?} has no {column} column")]
    Schema { schema: String, column: &'static str },
    #[error(
        "the data file's MD5 is {actual}, the manifest's MD5checksum is {expected}: the file is damaged or was replaced"
    )]
    FileChecksum { expected: String, actual: String },
    #[error("the data file has {actual} bytes, the manifest says {expected}")]
    FileSize { expected: u64, actual: u64 },
    #[error("the data file cannot be read as gzip CSV: {0}")]
    Csv(#[source] csv::Error),
    #[error("row {row}: {why}")]
    Row { row: u64, why: String },
    #[error("sorting the inventory's keys on disk: {0}")]
    Spill(#[source] std::io::Error),
    #[error("the download stopped before the end of the data file")]
    Cut,
}
