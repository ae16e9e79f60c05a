//! What a run did: counts, bytes, failures, and the one-line summary every run ends with.
//!
//! The sink says what it did in its [`Applied`] record; the pipeline turns that into a
//! [`Report`], printed as a human line on stderr or as JSON on stdout (`--json`). [`Report`] is
//! the one definition of that JSON: it reads it back too, so [`merge`] (`sitesync report merge`)
//! can add the reports of runs split across machines without a second copy of the format.

pub mod merge;

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::sink::Applied;
pub use crate::sink::{FailedOp, Failure};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub dry_run: bool,
    /// The shard of a split run this run was (`K/N`, a string so `report merge` never adds it up);
    /// `None`: the whole run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    pub uploaded: u64,
    pub copied: u64,
    pub deleted: u64,
    /// Keys this run retired instead of deleting (`delete_grace`): kept, and recorded in the
    /// ledger, to be deleted by the first run after their grace.
    #[serde(default)]
    pub retired: u64,
    pub unchanged: u64,
    pub failed: u64,
    pub bytes_uploaded: u64,
    /// Files read to compare their bytes with the objects', and how many bytes that was.
    #[serde(default)]
    pub hashed: u64,
    #[serde(default)]
    pub bytes_hashed: u64,
    pub elapsed_seconds: f64,
    /// Deletes planned but not sent, because of a failure or a safety limit.
    pub deletes_withheld: u64,
    /// Why the run stopped short, when it did (exit status 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// The signal that stopped the run, when one did (exit status 130).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<Cow<'static, str>>,
    pub failures: Vec<Failure>,
    /// In a dry run: the plan, one action per line and a summary line.
    #[serde(skip)]
    pub plan: String,
    /// What post-run steps add (a CDN invalidation's id and paths, say).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Report {
    /// The report of a run that did `applied` and found `unchanged` keys unchanged.
    pub fn new(applied: Applied, dry_run: bool, unchanged: u64, elapsed: std::time::Duration) -> Report {
        Report {
            dry_run,
            shard: None,
            uploaded: applied.uploaded,
            copied: applied.copied,
            deleted: applied.deleted,
            retired: applied.retired,
            unchanged: unchanged + applied.verified,
            hashed: applied.hashed,
            bytes_hashed: applied.bytes_hashed,
            failed: applied.failures.len() as u64,
            bytes_uploaded: applied.bytes_uploaded,
            elapsed_seconds: elapsed.as_secs_f64(),
            deletes_withheld: applied.deletes_withheld,
            refused: None,
            interrupted: None,
            failures: applied.failures,
            plan: applied.plan,
            extra: serde_json::Map::new(),
        }
    }

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

    /// Adds lines to the plan, after its actions and before its summary line.
    pub fn add_to_plan(&mut self, lines: &[String]) {
        if lines.is_empty() {
            return;
        }
        let (actions, summary) = match self.plan.trim_end_matches('\n').rsplit_once('\n') {
            Some((actions, summary)) => (format!("{actions}\n"), summary.to_owned()),
            None => (String::new(), self.plan.trim_end_matches('\n').to_owned()),
        };
        self.plan = format!("{actions}{}\n{summary}\n", lines.join("\n"));
    }

    /// The line every run ends with.
    pub fn summary(&self) -> String {
        let verb = if self.dry_run { "planned" } else { "done" };
        // Retirements only appear with delete_grace; runs without it keep their line.
        let retired = if self.retired > 0 { format!(", {} retired", self.retired) } else { String::new() };
        let mut line = format!(
            "{verb}: {} uploaded, {} copied, {} deleted{retired}, {} unchanged, {} failed, {} uploaded in {:.2}s",
            self.uploaded,
            self.copied,
            self.deleted,
            self.unchanged,
            self.failed,
            human_bytes(self.bytes_uploaded),
            self.elapsed_seconds,
        );
        if self.hashed > 0 {
            let files = if self.hashed == 1 { "file" } else { "files" };
            line.push_str(&format!("; read {} {files} to compare ({})", self.hashed, human_bytes(self.bytes_hashed)));
        }
        if self.deletes_withheld > 0 {
            line.push_str(&format!(" ({} deletes withheld)", self.deletes_withheld));
        }
        if let Some(signal) = &self.interrupted {
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
