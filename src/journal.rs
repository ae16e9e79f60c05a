//! The applied-changes record: what a run did, key by key, for the steps that follow it.
//!
//! The sink's workers record each outcome as it happens ([`Journal::record`], a push under a
//! short lock: they never touch the disk). Whoever drives the sink calls [`Journal::spill`]
//! between batches; past a chunk, the records are sorted and written, on the blocking pool, to an
//! unlinked temporary file as one sorted run. After the run, [`Changes::sorted`] merges the runs
//! into one stream in key order, so a post-run step (the chain marker, a CDN invalidation, the
//! local state) reads a million changes with a chunk's memory.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::sync::Mutex;

use crate::disk::{anonymous_file, get_array, get_option, get_string, get_u64, put_bytes, put_option, put_u64};
use crate::model::{Known, Time};

/// Records kept in memory before they are written out as a sorted run.
const CHUNK: usize = 50_000;

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    Uploaded,
    /// Made, or re-published in place, by a server-side copy.
    Copied,
    Deleted,
    /// Found the same, and what was learned of it is worth keeping (the local state).
    Confirmed,
    /// Kept before a change (`history::keep`): copied aside, or, on a bucket that keeps versions,
    /// its version recorded (`Record::version`). Only the keeper's own record holds these.
    Kept,
    /// Found absent when it was to be kept: the change that followed made it.
    Absent,
    /// Left the site and kept in the bucket for its grace (`delete_grace`): the object is as it
    /// was; only the ledger of retired keys changed.
    Retired,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The key relative to the prefix.
    pub key: String,
    pub change: Change,
    /// No object had the key before: a CDN can only have cached its 404.
    pub added: bool,
    /// What is now known of the file and the object under the key, for the local state.
    pub known: Option<Known>,
    /// With [`Change::Kept`] on a bucket that keeps versions: the version kept.
    pub version: Option<String>,
}

impl Ord for Record {
    fn cmp(&self, other: &Record) -> std::cmp::Ordering {
        (&self.key, self.change).cmp(&(&other.key, other.change))
    }
}

impl PartialOrd for Record {
    fn partial_cmp(&self, other: &Record) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Where a run records what it did.
#[derive(Debug, Default)]
pub struct Journal {
    pending: Mutex<Vec<Record>>,
    runs: tokio::sync::Mutex<Vec<File>>,
}

impl Journal {
    pub fn record(&self, key: impl Into<String>, change: Change, added: bool) {
        self.lock().push(Record { key: key.into(), change, added, known: None, version: None });
    }

    /// Records a change with what is now known of the key.
    pub fn learn(&self, key: impl Into<String>, change: Change, added: bool, known: Known) {
        self.lock().push(Record { key: key.into(), change, added, known: Some(known), version: None });
    }

    /// Records that `key` was kept before a change ([`Change::Kept`]), as `version` when the
    /// bucket keeps versions, or found absent ([`Change::Absent`]).
    pub fn kept(&self, key: impl Into<String>, change: Change, version: Option<String>) {
        self.lock().push(Record { key: key.into(), change, added: false, known: None, version });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Record>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the records out as a sorted run once a chunk has gathered.
    pub async fn spill(&self) -> io::Result<()> {
        if self.lock().len() < CHUNK {
            return Ok(());
        }
        let chunk = std::mem::take(&mut *self.lock());
        let run = tokio::task::spawn_blocking(move || write_run(chunk)).await.map_err(io::Error::other)??;
        self.runs.lock().await.push(run);
        Ok(())
    }

    /// Everything recorded so far, ready to be read in key order; the journal is left empty.
    pub async fn take(&self) -> Changes {
        let mut tail = std::mem::take(&mut *self.lock());
        tail.sort_unstable();
        Changes { runs: std::mem::take(&mut *self.runs.lock().await), tail }
    }
}

fn write_run(mut chunk: Vec<Record>) -> io::Result<File> {
    chunk.sort_unstable();
    let mut out = BufWriter::new(anonymous_file("changes")?);
    for record in &chunk {
        put_bytes(&mut out, record.key.as_bytes())?;
        out.write_all(&[record.change as u8, u8::from(record.added)])?;
        match &record.known {
            Some(known) => {
                out.write_all(&[1])?;
                put_known(&mut out, known)?;
            }
            None => out.write_all(&[0])?,
        }
        put_option(&mut out, record.version.as_deref().map(str::as_bytes))?;
    }
    let mut file = out.into_inner().map_err(|e| e.into_error())?;
    file.rewind()?;
    Ok(file)
}

fn read_record(input: &mut impl Read) -> io::Result<Option<Record>> {
    let key = match get_string(input) {
        Ok(key) => key,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    };
    let [change, added, has_known] = get_array::<3>(input)?;
    let change = match change {
        0 => Change::Uploaded,
        1 => Change::Copied,
        2 => Change::Deleted,
        3 => Change::Confirmed,
        4 => Change::Kept,
        5 => Change::Absent,
        _ => Change::Retired,
    };
    let known = if has_known == 1 { Some(get_known(input)?) } else { None };
    let version = get_option(input)?.map(String::from_utf8).transpose().map_err(io::Error::other)?;
    Ok(Some(Record { key, change, added: added == 1, known, version }))
}

/// What is known of a key, in the binary form of the journal and the local state.
pub fn put_known(out: &mut impl Write, k: &Known) -> io::Result<()> {
    put_u64(out, k.size)?;
    put_u64(out, k.mtime.0 as u64)?;
    put_option(out, k.md5.as_ref().map(|m| &m[..]))?;
    put_option(out, k.etag.as_deref().map(str::as_bytes))?;
    put_u64(out, k.lm_lo.0 as u64)?;
    put_u64(out, k.lm_hi.0 as u64)
}

pub fn get_known(input: &mut impl Read) -> io::Result<Known> {
    let size = get_u64(input)?;
    let mtime = Time(get_u64(input)? as i64);
    let md5 = get_option(input)?.map(|m| <[u8; 16]>::try_from(m.as_slice()).map_err(io::Error::other)).transpose()?;
    let etag = get_option(input)?.map(String::from_utf8).transpose().map_err(io::Error::other)?;
    let lm_lo = Time(get_u64(input)? as i64);
    let lm_hi = Time(get_u64(input)? as i64);
    Ok(Known { size, mtime, md5, etag, lm_lo, lm_hi })
}

/// What a run did, in sorted runs on disk and a sorted tail in memory.
#[derive(Debug, Default)]
pub struct Changes {
    runs: Vec<File>,
    tail: Vec<Record>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty() && self.tail.is_empty()
    }

    /// Every record in key order, read from the runs as they are merged (a blocking read: call
    /// it off the async runtime's workers).
    pub fn sorted(&self) -> io::Result<impl Iterator<Item = io::Result<Record>> + '_> {
        let mut readers = Vec::with_capacity(self.runs.len());
        for run in &self.runs {
            let mut file = run.try_clone()?;
            file.rewind()?;
            readers.push(BufReader::new(file));
        }
        Ok(Merged { readers, heap: BinaryHeap::new(), tail: self.tail.iter().peekable(), started: false })
    }
}

/// A k-way merge of the sorted runs and the tail.
struct Merged<'a> {
    readers: Vec<BufReader<File>>,
    /// The next record of each run, smallest first, with the run it came from.
    heap: BinaryHeap<Reverse<(Record, usize)>>,
    tail: std::iter::Peekable<std::slice::Iter<'a, Record>>,
    started: bool,
}

impl Iterator for Merged<'_> {
    type Item = io::Result<Record>;

    fn next(&mut self) -> Option<io::Result<Record>> {
        if !self.started {
            self.started = true;
            for i in 0..self.readers.len() {
                if let Err(e) = self.refill(i) {
                    return Some(Err(e));
                }
            }
        }
        let from_runs = self.heap.peek().map(|Reverse((r, _))| r);
        let take_tail = match (from_runs, self.tail.peek()) {
            (Some(r), Some(t)) => *t < r,
            (None, Some(_)) => true,
            (_, None) => false,
        };
        if take_tail {
            return self.tail.next().cloned().map(Ok);
        }
        let Reverse((record, run)) = self.heap.pop()?;
        if let Err(e) = self.refill(run) {
            return Some(Err(e));
        }
        Some(Ok(record))
    }
}

impl Merged<'_> {
    fn refill(&mut self, run: usize) -> io::Result<()> {
        if let Some(record) = read_record(&mut self.readers[run])? {
            self.heap.push(Reverse((record, run)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_come_back_in_key_order_across_spilled_runs() {
        let journal = Journal::default();
        let n = CHUNK * 2 + 123;
        // Keys recorded out of order, as workers finish.
        for i in 0..n {
            let change = if i % 3 == 0 { Change::Copied } else { Change::Uploaded };
            journal.record(format!("k{:07}", (i * 7919) % n), change, i % 2 == 0);
            journal.spill().await.unwrap();
        }
        let changes = journal.take().await;
        assert_eq!(changes.runs.len(), 2, "two chunks went to disk");
        let keys: Vec<String> = changes.sorted().unwrap().map(|r| r.unwrap().key).collect();
        let expected: Vec<String> = (0..n).map(|i| format!("k{i:07}")).collect();
        assert_eq!(keys, expected);
    }
}
