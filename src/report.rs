//! What a run did: counts, bytes, failures, and the one-line summary every run ends with.
//!
//! Workers record into a shared [`Tracker`] as operations finish; the pipeline turns it into a
//! [`Report`] at the end, printed as a human line on stderr or as JSON on stdout (`--json`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// One thing that could not be done, named by its key.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Failure {
    /// The key (relative to the prefix), or the escaped on-disk name when no key could be made.
    pub key: String,
    /// `scan`, `upload`, `copy`, `delete` or `list`.
    pub op: &'static str,
    pub error: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub dry_run: bool,
    pub uploaded: u64,
    pub copied: u64,
    pub deleted: u64,
    pub unchanged: u64,
    pub failed: u64,
    pub bytes_uploaded: u64,
    pub elapsed_seconds: f64,
    /// Deletes planned but not sent, because of a failure or a safety limit.
    pub deletes_withheld: u64,
    /// Why the run stopped short, when it did (exit status 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// The signal that stopped the run, when one did (exit status 130).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<&'static str>,
    pub failures: Vec<Failure>,
    /// In a dry run: the plan, one action per line and a summary line.
    #[serde(skip)]
    pub plan: String,
}

/// Shared, cheap-to-update counters for the workers.
#[derive(Debug, Default)]
pub struct Tracker {
    uploaded: AtomicU64,
    copied: AtomicU64,
    deleted: AtomicU64,
    bytes_uploaded: AtomicU64,
    failures: Mutex<Vec<Failure>>,
}

impl Tracker {
    pub fn uploaded(&self, bytes: u64) {
        self.uploaded.fetch_add(1, Ordering::Relaxed);
        self.bytes_uploaded.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn copied(&self) {
        self.copied.fetch_add(1, Ordering::Relaxed);
    }

    pub fn deleted(&self, n: u64) {
        self.deleted.fetch_add(n, Ordering::Relaxed);
    }

    pub fn failed(&self, key: impl Into<String>, op: &'static str, error: impl Into<String>) {
        let failure = Failure { key: key.into(), op, error: error.into() };
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

    pub fn report(&self, dry_run: bool, unchanged: u64, elapsed: std::time::Duration) -> Report {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner()).clone();
        failures.sort_by(|a, b| (&a.key, a.op).cmp(&(&b.key, b.op)));
        Report {
            dry_run,
            uploaded: self.uploaded.load(Ordering::Relaxed),
            copied: self.copied.load(Ordering::Relaxed),
            deleted: self.deleted.load(Ordering::Relaxed),
            unchanged,
            failed: failures.len() as u64,
            bytes_uploaded: self.bytes_uploaded.load(Ordering::Relaxed),
            elapsed_seconds: elapsed.as_secs_f64(),
            deletes_withheld: 0,
            refused: None,
            interrupted: None,
            failures,
            plan: String::new(),
        }
    }
}

impl Report {
    /// The exit status: 130 when a signal stopped the run, 2 when it was refused, 1 when anything
    /// failed, otherwise 0.
    pub fn exit_code(&self) -> u8 {
        if self.interrupted.is_some() {
            crate::error::EXIT_INTERRUPTED
        } else if self.refused.is_some() {
            crate::error::EXIT_USAGE
        } else if self.failed > 0 {
            crate::error::EXIT_FAILED
        } else {
            crate::error::EXIT_OK
        }
    }

    /// The line every run ends with.
    pub fn summary(&self) -> String {
        let verb = if self.dry_run { "planned" } else { "done" };
        let mut line = format!(
            "{verb}: {} uploaded, {} copied, {} deleted, {} unchanged, {} failed, {} uploaded in {:.2}s",
            self.uploaded,
            self.copied,
            self.deleted,
            self.unchanged,
            self.failed,
            human_bytes(self.bytes_uploaded),
            self.elapsed_seconds,
        );
        if self.deletes_withheld > 0 {
            line.push_str(&format!(" ({} deletes withheld)", self.deletes_withheld));
        }
        if let Some(signal) = self.interrupted {
            line.push_str(&format!("; stopped by {signal}, run again to finish"));
        }
        line
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}
