//! The plain data that flows between pipeline stages.
//!
//! Scans produce [`LocalFile`]s and [`RemoteObject`]s, the diff turns them into [`Event`]s, and the
//! sink turns events into S3 requests. Keeping these types free of behaviour lets every stage be
//! tested on its own and lets snapshot tests build inputs without touching a disk or a server.

pub mod fields;
pub mod mime;
pub mod record;

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::fields::Field;
pub use crate::model::fields::ObjectMeta;
use crate::model::mime::Charset;

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
    /// Where the bytes come from.
    pub body: Body,
    pub size: u64,
    pub mtime: Time,
    /// Headers and metadata the transform chain gave this key; `None` (the common case) means
    /// only the Content-Type guessed from the extension.
    pub meta: Option<Box<ObjectMeta>>,
    /// The key of the primary entry when this entry publishes the same file under another key:
    /// the sink makes it by server-side copy once the primary is up.
    pub copy_of: Option<String>,
    /// What the local state knows of this key from earlier runs.
    pub known: Option<Box<Known>>,
}

impl LocalFile {
    /// A file as the scan finds it: no headers, not a copy.
    pub fn new(key: String, path: PathBuf, size: u64, mtime: Time) -> LocalFile {
        LocalFile { key, body: Body::File(path), size, mtime, meta: None, copy_of: None, known: None }
    }

    /// An entry a transform made with its own bytes: its size is theirs, and `mtime` is the
    /// source's when it had one, else [`Time(0)`](Time): inline bodies are compared by content,
    /// never by the mtime rule.
    pub fn inline(key: String, bytes: Arc<[u8]>, mtime: Time) -> LocalFile {
        let size = bytes.len() as u64;
        LocalFile { key, body: Body::Inline(bytes), size, mtime, meta: None, copy_of: None, known: None }
    }

    /// The on-disk file behind the entry, when there is one.
    pub fn path(&self) -> Option<&Path> {
        match &self.body {
            Body::File(path) | Body::Compressed { path, .. } => Some(path),
            Body::Inline(_) | Body::Unreadable(_) => None,
        }
    }

    /// The bytes of an entry a transform made, when it is one.
    pub fn inline_bytes(&self) -> Option<&Arc<[u8]>> {
        match &self.body {
            Body::Inline(bytes) => Some(bytes),
            Body::File(_) | Body::Compressed { .. } | Body::Unreadable(_) => None,
        }
    }

    /// How the entry's bytes are compressed on their way to the bucket, if they are.
    pub fn encoding(&self) -> Option<Encoding> {
        match &self.body {
            Body::Compressed { encoding, .. } => Some(*encoding),
            _ => None,
        }
    }

    /// Whether an object of `object_size` bytes cannot be this entry's, by its size alone. A
    /// file is published with its own size; a compressed one with fewer bytes (unknown until it
    /// is compressed) or, when it does not shrink, its own: only a larger object is ruled out.
    pub fn size_rules_out(&self, object_size: u64) -> bool {
        match self.encoding() {
            None => object_size != self.size,
            Some(_) => object_size > self.size,
        }
    }

    /// Whether publishing the entry again with other headers can copy its object onto itself.
    /// Not a compressed one: whether it is sent compressed, and so its bytes and its
    /// Content-Encoding, depends on the chain too.
    pub fn copies_in_place(&self) -> bool {
        self.encoding().is_none()
    }

    /// The Content-Type the object gets: the chain's as it is, else the one [`crate::model::mime`] gives
    /// the key's extension (with `charset` for the text types).
    pub fn content_type(&self, charset: &Charset) -> Cow<'_, str> {
        match self.meta.as_ref().and_then(|m| m.get(Field::ContentType)) {
            Some(t) => Cow::Borrowed(t),
            None => crate::model::mime::content_type(&self.key, charset),
        }
    }
}

/// Where an entry's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// A file of the source tree, by its raw on-disk path: files are always opened through it,
    /// never through the key.
    File(PathBuf),
    /// Bytes a transform made (a plugin's generated page): uploaded from memory, compared by
    /// their digest, never stat'ed. Two inline bodies are never the same file, whatever their
    /// bytes: each is uploaded under its own key, not copied from another.
    Inline(Arc<[u8]>),
    /// A file of the source tree published compressed (the `compress` transform): the bytes sent
    /// are the file's, compressed as they are read, with `Content-Encoding: encoding`; or the
    /// file's own, without it, when compressing does not shrink them.
    Compressed { path: PathBuf, encoding: Encoding },
    /// Something the scan found but cannot publish (a FIFO, a broken symlink, a directory it
    /// cannot read). Inside the transform chain it travels as an entry, so a step that drops the
    /// entry drops the problem with it; what is left of it after the chain is reported.
    Unreadable(Arc<Problem>),
}

/// A Content-Encoding sitesync compresses bodies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Gzip,
    Br,
}

impl Encoding {
    /// Its name in `sync.toml` and its token in `Content-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            Encoding::Gzip => "gzip",
            Encoding::Br => "br",
        }
    }

    pub fn by_token(token: &str) -> Option<Encoding> {
        [Encoding::Gzip, Encoding::Br].into_iter().find(|e| e.token() == token)
    }
}

/// What the state knows of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    /// The file's size and mtime (a compressed entry's: its source file's).
    pub size: u64,
    pub mtime: Time,
    /// The MD5 of the bytes published (a compressed entry's: of the bytes sent), when a run read
    /// them.
    pub md5: Option<[u8; 16]>,
    /// The object's ETag (without quotes), when known.
    pub etag: Option<String>,
    /// The object's `LastModified` lies in this window (the server's clock).
    pub lm_lo: Time,
    pub lm_hi: Time,
}

impl Known {
    /// What is known once `file` was found to be `object`'s content (`md5` when it was read):
    /// the object's `LastModified` exactly, as listed.
    pub fn of(file: &LocalFile, object: &RemoteObject, md5: Option<[u8; 16]>) -> Known {
        Known {
            size: file.size,
            mtime: file.mtime,
            md5,
            etag: object.etag.clone(),
            lm_lo: object.last_modified,
            lm_hi: object.last_modified,
        }
    }
}

/// An object listed under the target prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteObject {
    /// The key relative to the target prefix.
    pub key: String,
    pub size: u64,
    pub last_modified: Time,
    /// The ETag without its quotes, when the listing gave one: the hex MD5 of a single-part
    /// object, the MD5 of its parts' MD5s and `-N` for a multipart one, opaque under SSE-KMS.
    pub etag: Option<String>,
}

/// Something in the source tree that cannot be published, found while scanning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: a relative key when one could be built, otherwise the escaped on-disk path.
    pub place: String,
    pub message: String,
    /// Whether keys may be hidden behind it (a directory, or a link, that cannot be read): they
    /// could be any shard's, so every shard of a split run reports it.
    pub hides: bool,
    /// The operation its failure names: `scan` for what the scan found, `upload` for an upload
    /// a sink refused before sending it.
    pub op: FailedOp,
}

impl Problem {
    pub fn new(place: String, message: String) -> Problem {
        Problem { place, message, hides: false, op: FailedOp::Scan }
    }

    /// A problem behind which keys may hide: see [`Problem::hides`].
    pub fn hiding(place: String, message: String) -> Problem {
        Problem { place, message, hides: true, op: FailedOp::Scan }
    }

    /// The upload of `key` refused before it was sent (the immutable guard).
    pub fn refused_upload(key: String, message: String) -> Problem {
        Problem { place: key, message, hides: false, op: FailedOp::Upload }
    }
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
    /// The file was read, and its bytes are not the object's.
    Content,
    /// Nothing could compare the file's bytes with the object's (`compare = "checksum"` with no
    /// ETag to match and no local state): it is sent rather than trusted.
    Unverified,
    /// The object is current but the transform chain's configuration changed since it was
    /// written, so its headers may be stale: it is copied onto itself with the new headers.
    Chain,
    /// The object changed since the local state recorded it (another writer, another source),
    /// and nothing can say whether it still holds the file's bytes.
    Replaced,
    /// A rollback restored the object since the last sync, and nothing can say whether it holds
    /// the file's bytes.
    Restored,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::New => "new",
            Reason::Size => "size",
            Reason::Newer => "newer",
            Reason::Content => "content differs",
            Reason::Unverified => "content not verifiable",
            Reason::Chain => "chain changed",
            Reason::Replaced => "changed in the bucket",
            Reason::Restored => "restored by a rollback",
        }
    }
}

/// What comparing a file with its object settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    Same,
    Upload(Reason),
}

/// What the diff decided for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Upload {
        file: LocalFile,
        reason: Reason,
    },
    /// Delete the object; `retired` when the ledger of retired keys says it left the site a grace
    /// period ago (`delete_grace`).
    Delete {
        object: RemoteObject,
        retired: Option<Since>,
    },
    /// Keep the object, whose file is gone, for the grace period (`delete_grace`): it is recorded in
    /// the ledger of retired keys (`history::ledger`) and deleted by the first run after its grace.
    /// `since`: when an earlier run retired it (it is kept as it is); `None`: this run retires it.
    Retire {
        object: RemoteObject,
        since: Option<Since>,
    },
    Problem(Problem),
    /// Read the file and compare it with the object; `otherwise` is the verdict when nothing
    /// can compare them. Resolved before it reaches a sink that sends anything.
    Check {
        file: LocalFile,
        object: RemoteObject,
        otherwise: Settled,
    },
    /// Ask the object for the size of the source its bytes were compressed from (a compressed
    /// entry the mtime rule finds unchanged and nothing else settles): the same when it is the
    /// file's size. Resolved, like a check, before it reaches a sink that sends anything.
    Head {
        file: LocalFile,
        object: RemoteObject,
    },
    /// The same, and worth recording in the local state, with the MD5 when the file was read.
    Same {
        file: LocalFile,
        object: RemoteObject,
        md5: Option<[u8; 16]>,
    },
}

impl Event {
    /// Whether the delete limits count it: a delete, or a key this run retires. A key retired by
    /// an earlier run and kept through its grace is neither: it was counted when it was retired.
    pub fn counts_as_delete(&self) -> bool {
        matches!(self, Event::Delete { .. } | Event::Retire { since: None, .. })
    }
}

/// When a key left the site, as the ledger of retired keys recorded it (the server's clock), and
/// how long before this run that was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Since {
    pub at: Time,
    pub ago: std::time::Duration,
}

impl Since {
    /// `2d`, `5h`, `3m` or `40s`: the largest whole unit of the age, as a plan line shows it.
    pub fn ago_text(&self) -> String {
        let secs = self.ago.as_secs();
        let (n, unit) = match secs {
            s if s >= 86_400 => (s / 86_400, 'd'),
            s if s >= 3600 => (s / 3600, 'h'),
            s if s >= 60 => (s / 60, 'm'),
            s => (s, 's'),
        };
        format!("{n}{unit}")
    }
}

/// How many items a batch between stages holds at most.
pub const BATCH: usize = 1000;

/// What a failure (`sink::Failure`) was doing, named in the report's `op` as the guide documents it
/// (docs/command-line.md, "Plan and report").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailedOp {
    /// The walk or the chain could not make a key of a file (`scan`).
    Scan,
    /// An upload, or the sink's own work around the uploads (`upload`).
    Upload,
    /// A server-side copy (`copy`).
    Copy,
    /// A delete (`delete`).
    Delete,
    /// The CloudFront invalidation after the run (`invalidate`).
    Invalidate,
    /// The bucket's website configuration, for the site's redirects (`website`).
    Website,
    /// A dry run's own work (`plan`).
    Plan,
    /// A name this version does not know, read back from a newer version's report: `report
    /// merge` keeps it as it was.
    #[serde(untagged)]
    Other(String),
}

impl FailedOp {
    pub fn as_str(&self) -> &str {
        match self {
            FailedOp::Scan => "scan",
            FailedOp::Upload => "upload",
            FailedOp::Copy => "copy",
            FailedOp::Delete => "delete",
            FailedOp::Invalidate => "invalidate",
            FailedOp::Website => "website",
            FailedOp::Plan => "plan",
            FailedOp::Other(name) => name,
        }
    }
}

impl std::fmt::Display for FailedOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
