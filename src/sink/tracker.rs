//! What the sink's workers did, recorded as they finish: counts, failures, and each key changed,
//! in the run's [`Journal`]. The sink turns it into its [`Applied`] record at the end.

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
    pub op: FailedOp,
    pub error: String,
}

pub use crate::model::FailedOp;

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

    pub fn failed(&self, key: impl Into<String>, op: FailedOp, error: impl Into<String>) {
        let failure = Failure { key: key.into(), op, error: error.into() };
        tracing::error!("{} {}: {}", failure.op, crate::keys::names::printable(&failure.key), failure.error);
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).push(failure);
    }

    /// The keys that failed in operation `op` so far.
    pub fn failed_keys(&self, op: FailedOp) -> std::collections::HashSet<String> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.iter().filter(|f| f.op == op).map(|f| f.key.clone()).collect()
    }

    pub fn failure_count(&self) -> u64 {
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).len() as u64
    }

    /// The counts and failures as a record; its changes are the journal's to hand over.
    pub fn applied(&self, deletes_withheld: u64) -> Applied {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner()).clone();
        failures.sort_by(|a, b| (&a.key, a.op.as_str()).cmp(&(&b.key, b.op.as_str())));
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

impl crate::run::progress::Done for Tracker {
    fn progress(&self) -> (u64, u64) {
        Tracker::progress(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: [(FailedOp, &str); 7] = [
        (FailedOp::Scan, "scan"),
        (FailedOp::Upload, "upload"),
        (FailedOp::Copy, "copy"),
        (FailedOp::Delete, "delete"),
        (FailedOp::Invalidate, "invalidate"),
        (FailedOp::Website, "website"),
        (FailedOp::Plan, "plan"),
    ];

    #[test]
    fn a_failure_names_its_op_in_the_report_as_the_guide_does() {
        let guide = include_str!("../../docs/command-line.md");
        let listed =
            guide.split_once("`op` is one of ").and_then(|(_, rest)| rest.split_once(')')).map(|(list, _)| list);
        let listed = listed.expect("docs/command-line.md lists the ops: \"`op` is one of …)\"");
        for (op, name) in KNOWN {
            let failure = Failure { key: "a.txt".into(), op: op.clone(), error: "why".into() };
            let json = serde_json::to_string(&failure).unwrap();
            assert_eq!(json, format!(r#"{{"key":"a.txt","op":"{name}","error":"why"}}"#));
            assert_eq!(serde_json::from_str::<Failure>(&json).unwrap(), failure, "read back by `report merge`");
            assert_eq!(op.to_string(), name, "the log names it as the report does");
            assert!(listed.contains(&format!("`{name}`")), "docs/command-line.md does not list the op `{name}`");
        }
    }

    #[test]
    fn a_newer_versions_op_is_read_back_and_written_as_it_was() {
        let json = r#"{"key":"a.txt","op":"teleport","error":"why"}"#;
        let failure: Failure = serde_json::from_str(json).unwrap();
        assert_eq!(failure.op, FailedOp::Other("teleport".into()));
        assert_eq!(serde_json::to_string(&failure).unwrap(), json);
    }

    #[test]
    fn failures_are_sorted_by_key_then_by_the_ops_name() {
        let tracker = Tracker::default();
        tracker.failed("b", FailedOp::Upload, "x");
        tracker.failed("a", FailedOp::Upload, "x");
        tracker.failed("a", FailedOp::Copy, "x");
        tracker.failed("a", FailedOp::Scan, "x");
        let order: Vec<String> = tracker.applied(0).failures.iter().map(|f| format!("{} {}", f.key, f.op)).collect();
        assert_eq!(order, ["a copy", "a scan", "a upload", "b upload"]);
        assert_eq!(tracker.failed_keys(FailedOp::Upload), ["a".to_owned(), "b".to_owned()].into());
    }
}
