//! The ledger of retired keys: objects whose file is gone, kept for a grace period
//! (`delete_grace`) so pages still open in a browser or a CDN, which name them, keep working.
//!
//! It lives in the bucket (`.sitesync/retired`), so every machine, every shard and a CI runner with
//! no cache sees it. One text object per layout of a run: `retired` for a whole run,
//! `retired.K-of-N` for shard K of N. The first line is a JSON header
//! (`{"v":1,"shard":"K/N"|null,"written":MS}`), then one line per retired key, sorted by key:
//! `<retired-at, Unix ms of the server's clock> <key, percent-encoded>`. A key is never held in
//! memory with the others: a run downloads each file as a stream to an unlinked temporary file and
//! reads it with a forward cursor ([`read`]), asking for keys in the order the diff finds them,
//! and writes the new file the same way as it goes ([`write`]), uploaded with one PutObject once
//! the run's deletes are done (atomic: a run killed at any point leaves the old ledger or the new).
//!
//! **Which file says.** A run reads every `retired*` file. For a key, the authority is the newest
//! file (by `written`) whose layout owns the key, and the key is retired iff that file lists it: a
//! change of N loses nothing (the old layout's file is read until a new one owns the key), and an
//! un-retirement by a newer layout wins over a stale file of an older one. A shard writes only its
//! own file, with only its own keys, and deletes only its own keys.

mod read;
mod write;

pub use read::{Retired, fetch};
pub use write::NewLedger;

use std::collections::BTreeSet;

use crate::keys::shard::{MapBack, Shard};
use crate::keys::target::{KEY_SAFE, Target};
use crate::model::Time;
use crate::s3client::StoreError;

/// The format this version reads and writes.
const VERSION: u32 = 1;

/// Whose keys a ledger file holds: a whole run's, or one shard's of a split run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    Whole,
    Shard(Shard),
}

impl Layout {
    /// The layout of a run of `shard` (`None`: the whole prefix).
    pub fn of(shard: Option<&Shard>) -> Layout {
        shard.map_or(Layout::Whole, |s| Layout::Shard(s.clone()))
    }

    /// The file's key, relative to the prefix.
    pub fn key(&self) -> String {
        super::per_shard(super::LEDGER, self.shard())
    }

    fn shard(&self) -> Option<&Shard> {
        match self {
            Layout::Whole => None,
            Layout::Shard(shard) => Some(shard),
        }
    }

    /// Whether this layout's file speaks for `key`.
    pub fn owns(&self, key: &str) -> bool {
        self.shard().is_none_or(|shard| shard.owns(key))
    }

    /// Whether some key is owned by both layouts: a whole run's overlaps every layout, two shards of
    /// one N only when they are the same shard, and shards of different Ns may always.
    fn overlaps(&self, other: &Layout) -> bool {
        match (self.shard(), other.shard()) {
            (Some(a), Some(b)) if a.count == b.count => a.index == b.index,
            _ => true,
        }
    }

    /// `"K/N"` in the header; `None` for a whole run.
    fn tag(&self) -> Option<String> {
        self.shard().map(ToString::to_string)
    }

    /// The layout a listed file's name (relative to the prefix) says, whose keys are traced back
    /// through `mapping`; `None` for a name that is no ledger's.
    fn named(name: &str, mapping: &MapBack) -> Option<Layout> {
        let rest = name.strip_prefix(super::LEDGER)?;
        if rest.is_empty() {
            return Some(Layout::Whole);
        }
        let (k, n) = rest.strip_prefix('.')?.split_once("-of-")?;
        let (index, count): (u32, u32) = (k.parse().ok()?, n.parse().ok()?);
        let canonical = format!("{index}-of-{count}") == rest[1..];
        (canonical && (1..=count).contains(&index))
            .then(|| Layout::Shard(Shard::with_mapping(index, count, mapping.clone())))
    }
}

/// What one ledger file holds, as plain data: for the plan over an in-memory bucket, and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerFile {
    pub layout: Layout,
    /// When the run that wrote it ran (the server's clock).
    pub written: Time,
    /// The retired keys, in key order, with when each was retired.
    pub entries: Vec<(String, Time)>,
}

/// A ledger file downloaded (or made as a run would upload it), before its header is read.
struct Opened {
    /// Its key, relative to the prefix.
    key: String,
    layout: Layout,
    file: std::fs::File,
    /// The MD5 of its lines after the header.
    digest: [u8; 16],
}

/// The first line of a ledger file.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Header {
    v: u32,
    shard: Option<String>,
    /// When the run that wrote it ran, in Unix milliseconds of the server's clock.
    written: i64,
}

/// Why the ledger cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// A request failed: listing, downloading or uploading a ledger file.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A temporary file for a ledger file could not be written or read.
    #[error("{key}: cannot keep it in a temporary file: {source}")]
    Disk { key: String, source: std::io::Error },
    /// A ledger file is not one this version can read (`key` relative to the prefix).
    #[error(
        "{key} line {line}: {why}; sitesync cannot tell which keys were retired when, so it deletes nothing: \
         delete that object to start a new ledger (the keys it listed are retired again, from now), or \
         publish with --no-delete meanwhile"
    )]
    Corrupt { key: String, line: u64, why: String },
}

/// One line of a file: when the key was retired, in Unix milliseconds, and the key.
fn line(key: &str, at: Time) -> String {
    let ms = at.0.div_euclid(1_000_000);
    format!("{ms} {}\n", percent_encoding::utf8_percent_encode(key, KEY_SAFE))
}

/// Reads one line (without its newline): the key and when it was retired.
fn parse_line(text: &[u8]) -> Result<(String, Time), String> {
    let text = std::str::from_utf8(text).map_err(|_| "not UTF-8".to_owned())?;
    let (ms, encoded) = text.split_once(' ').ok_or_else(|| format!("{text:?} is not `MS KEY`"))?;
    let ms: i64 = ms.parse().map_err(|_| format!("{ms:?} is not a time in milliseconds"))?;
    let key =
        percent_encoding::percent_decode_str(encoded).decode_utf8().map_err(|_| format!("{encoded:?} is not a key"))?;
    if key.is_empty() {
        return Err("an empty key".into());
    }
    Ok((key.into_owned(), Time(ms.saturating_mul(1_000_000))))
}

/// Rewrites this layout's ledger without `keys` (relative to the prefix): they are no longer
/// retired, and will not be deleted for that retirement. A rollback that brings keys back calls
/// it. Every layout's file is read, so a key whose authority is another layout's file is dropped
/// too (this layout's new file, being the newest, speaks for it); the other files are left as they
/// are. Keys of other shards are out of this layout's reach: a shard un-retires its own. Returns
/// how many keys were dropped.
pub async fn unretire(
    client: &aws_sdk_s3::Client,
    target: &Target,
    shard: Option<&Shard>,
    keys: &BTreeSet<String>,
) -> Result<u64, LedgerError> {
    let own = Layout::of(shard);
    let mapping = shard.map(|s| s.mapping().clone()).unwrap_or_default();
    let mut retired = fetch(client, target, own.clone(), &mapping).await?;
    // This machine's clock, but never older than a file read: the new file speaks for its keys.
    let written = retired.written_after().map_or(Time::now(), |after| after.max(Time::now()));
    let mut new = NewLedger::new(&own, written).map_err(|source| LedgerError::Disk { key: own.key(), source })?;
    let mut dropped = 0;
    while let Some((key, at)) = retired.next_owned().await? {
        match keys.contains(&key) {
            true => dropped += 1,
            false => new.push(&key, at)?,
        }
        new.spill().await.map_err(|source| LedgerError::Disk { key: own.key(), source })?;
    }
    if dropped > 0 || retired.needs_rewrite(&new) {
        new.upload(client, target).await?;
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests;
