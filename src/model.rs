//! The plain data that flows between pipeline stages.
//!
//! Scans produce [`LocalFile`]s and [`RemoteObject`]s, the diff turns them into [`Event`]s, and the
//! sink turns events into S3 requests. Keeping these types free of behaviour lets every stage be
//! tested on its own and lets snapshot tests build inputs without touching a disk or a server.

use std::path::PathBuf;

/// A point in time as nanoseconds since the Unix epoch (covers the years 1677 to 2262).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(pub i64);

impl Time {
    pub const NANOS_PER_SEC: i64 = 1_000_000_000;

    pub fn from_system(t: std::time::SystemTime) -> Time {
        match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => Time(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
            Err(e) => Time(-i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX)),
        }
    }

    pub fn now() -> Time {
        Time::from_system(std::time::SystemTime::now())
    }

    pub fn from_secs_f64(secs: f64) -> Time {
        Time((secs * Self::NANOS_PER_SEC as f64).round() as i64)
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / Self::NANOS_PER_SEC as f64
    }
}

/// A regular file found under the source directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    /// The key relative to the target prefix: decoded path components joined by `/`.
    pub key: String,
    /// The file's raw on-disk path; files are always opened through it, never through `key`.
    pub path: PathBuf,
    pub size: u64,
    pub mtime: Time,
}

/// An object listed under the target prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteObject {
    /// The key relative to the target prefix.
    pub key: String,
    pub size: u64,
    pub last_modified: Time,
}

/// Something in the source tree that cannot be published, found while scanning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: a relative key when one could be built, otherwise the escaped on-disk path.
    pub place: String,
    pub message: String,
}

/// One item of a local scan batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalItem {
    File(LocalFile),
    Problem(Problem),
}

/// Why a file is uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// No object has this key.
    New,
    /// The sizes differ.
    Size,
    /// The file was modified after the object was written.
    Newer,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::New => "new",
            Reason::Size => "size",
            Reason::Newer => "newer",
        }
    }
}

/// What the diff decided for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Upload { file: LocalFile, reason: Reason },
    Delete { object: RemoteObject },
    Problem(Problem),
}

/// How many items a batch between stages holds at most.
pub const BATCH: usize = 1000;
