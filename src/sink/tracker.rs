//! What the sink's workers did, recorded as they finish: counts, failures, and each key changed,
//! in the run's [`Journal`]. The sink turns it into its [`Applied`] record at the end.

use std::borrow::Cow;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::Applied;
use crate::journal::{Change, Journal};
use crate::model::Known;

/// One thing that could not be done, named by its key. Read back too, by `report merge`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Failure {
    /// The key (relative to the prefix), or the escaped on-disk name when no key could be made.
    pub key: String,
    /// `scan`, `upload`, `copy`, `delete` or `list`: a name of ours when a run made it, a copy when
    /// a report was read back.
    pub op: Cow<'static, str>,
    pub error: String,
}

/// Shared, cheap-to-update counters for the workers.
#[derive(Debug, Default)]
pub struct Tracker {
    uploaded: AtomicU64,
    copied: AtomicU64,
    deleted: AtomicU64,
    bytes_uploaded: AtomicU64,
    failures: Mutex<Vec<Failure>>,
    journal: Journal,
}

impl Tracker {
    /// `key` was uploaded as `known` says, with `sent` bytes (fewer than the file's when it went
    /// compressed); `added` when no object had it before.
    pub fn uploaded(&self, key: &str, added: bool, known: Known, sent: u64) {
        self.uploaded.fetch_add(1, Ordering::Relaxed);
        self.bytes_uploaded.fetch_add(sent, Ordering::Relaxed);
        self.journal.learn(key, Change::Uploaded, added, known);
    }

    /// `key` was made by a server-side copy, as `known` says; `added` when no object had it.
    pub fn copied(&self, key: &str, added: bool, known: Known) {
        self.copied.fetch_add(1, Ordering::Relaxed);
        self.journal.learn(key, Change::Copied, added, known);
    }

    /// `keys` (relative to the prefix) were deleted.
    pub fn deleted<'a>(&self, keys: impl IntoIterator<Item = &'a str>) {
        for key in keys {
            self.deleted.fetch_add(1, Ordering::Relaxed);
            self.journal.record(key, Change::Deleted, false);
        }
    }

    /// Keys uploaded or copied so far, and the bytes uploaded: for the progress display.
    pub fn progress(&self) -> (u64, u64) {
        let files = self.uploaded.load(Ordering::Relaxed) + self.copied.load(Ordering::Relaxed);
        (files, self.bytes_uploaded.load(Ordering::Relaxed))
    }

    /// The record of the keys changed.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    pub fn failed(&self, key: impl Into<String>, op: &'static str, error: impl Into<String>) {
        let failure = Failure { key: key.into(), op: Cow::Borrowed(op), error: error.into() };
        tracing::error!("{} {}: {}", failure.op, crate::names::printable(&failure.key), failure.error);
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).push(failure);
    }

    /// The keys that failed in operation `op` so far.
    pub fn failed_keys(&self, op: &str) -> std::collections::HashSet<String> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.iter().filter(|f| f.op == op).map(|f| f.key.clone()).collect()
    }

    pub fn failure_count(&self) -> u64 {
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).len() as u64
    }

    /// The counts and failures as a record; its changes are the journal's to hand over.
    pub fn applied(&self, deletes_withheld: u64) -> Applied {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner()).clone();
        failures.sort_by(|a, b| (&a.key, &a.op).cmp(&(&b.key, &b.op)));
        Applied {
            uploaded: self.uploaded.load(Ordering::Relaxed),
            copied: self.copied.load(Ordering::Relaxed),
            deleted: self.deleted.load(Ordering::Relaxed),
            bytes_uploaded: self.bytes_uploaded.load(Ordering::Relaxed),
            deletes_withheld,
            failures,
            ..Applied::default()
        }
    }
}
