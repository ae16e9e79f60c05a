//! Whether a measured run did what it had to: a sync's `--json` report against the counts its
//! scenario expects, a baseline's count against the tree's. A figure whose run did something else
//! (or hung) is not a result, so every row carries its [`Check`], and a run with one that is not
//! [`Check::Ok`] fails after its results are saved.
//!
//! A sync's report is read with sitesync's own [`Report`], the one definition of that JSON. In
//! the JSON results and the tables a check is written as text, `ok` or what went wrong, as it
//! always was.

use std::fmt;

use serde::{Serialize, Serializer};
use sitesync::Report;

use crate::measure::Outcome;

/// What a run showed against what it had to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    Ok,
    /// A baseline counted other than the tree's items.
    Miscounted {
        counted: u64,
        expected: u64,
    },
    /// Killed at the time limit: a hung run.
    TimedOut {
        after_s: f64,
    },
    /// The report's counts are not the expected ones, or the sync exited non-zero.
    Wrong {
        exit_code: i32,
        mismatches: Vec<Mismatch>,
    },
    /// No report to read (the sync failed before printing one): the last line of its stderr.
    NoReport {
        exit_code: i32,
        stderr: String,
    },
}

/// One count of a report that is not what the scenario expects.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    pub count: &'static str,
    pub got: u64,
    pub expected: u64,
}

/// What a sync's report must show; `hashed` and `copied` only where the scenario says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expected {
    pub uploaded: u64,
    pub deleted: u64,
    pub unchanged: u64,
    pub hashed: Option<u64>,
    pub copied: Option<u64>,
    pub retired: Option<u64>,
}

impl Expected {
    /// A sync that uploads, deletes and leaves unchanged exactly these many files, and fails none.
    pub fn counts(uploaded: u64, deleted: u64, unchanged: u64) -> Expected {
        Expected { uploaded, deleted, unchanged, hashed: None, copied: None, retired: None }
    }

    /// ... and reads exactly `hashed` files to compare their bytes.
    pub fn hashed(self, hashed: u64) -> Expected {
        Expected { hashed: Some(hashed), ..self }
    }

    /// ... and copies exactly `copied` objects on the server.
    pub fn copied(self, copied: u64) -> Expected {
        Expected { copied: Some(copied), ..self }
    }

    /// ... and retires exactly `retired` keys (`delete_grace`).
    pub fn retired(self, retired: u64) -> Expected {
        Expected { retired: Some(retired), ..self }
    }

    /// The counts of `report` that differ from these, in the report's order.
    fn mismatches(&self, report: &Report) -> Vec<Mismatch> {
        let required = [
            ("uploaded", report.uploaded, Some(self.uploaded)),
            ("deleted", report.deleted, Some(self.deleted)),
            ("retired", report.retired, self.retired),
            ("unchanged", report.unchanged, Some(self.unchanged)),
            ("failed", report.failed, Some(0)),
            ("hashed", report.hashed, self.hashed),
            ("copied", report.copied, self.copied),
        ];
        required
            .into_iter()
            .filter_map(|(count, got, expected)| {
                expected.filter(|&e| e != got).map(|expected| Mismatch { count, got, expected })
            })
            .collect()
    }
}

/// The report a sync printed on stdout, if it printed one.
pub fn report_of(run: &Outcome) -> Option<Report> {
    serde_json::from_str(run.stdout.trim()).ok()
}

impl Check {
    pub fn is_ok(&self) -> bool {
        *self == Check::Ok
    }

    /// A sync's run, its report read with [`report_of`], against what it had to do.
    pub fn of_sync(run: &Outcome, report: Option<&Report>, expected: &Expected) -> Check {
        if run.timed_out {
            return Check::TimedOut { after_s: run.usage.wall_s };
        }
        let Some(report) = report else {
            let stderr = run.stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").to_owned();
            return Check::NoReport { exit_code: run.exit_code, stderr };
        };
        let mismatches = expected.mismatches(report);
        if run.exit_code == 0 && mismatches.is_empty() {
            Check::Ok
        } else {
            Check::Wrong { exit_code: run.exit_code, mismatches }
        }
    }

    /// A baseline that counted `counted` items of the `expected`.
    pub fn of_count(counted: u64, expected: u64) -> Check {
        if counted == expected { Check::Ok } else { Check::Miscounted { counted, expected } }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::Ok => f.write_str("ok"),
            Check::Miscounted { counted, expected } => write!(f, "counted {counted} of {expected}"),
            Check::TimedOut { after_s } => write!(f, "TIMED OUT: killed after {after_s:.0} s"),
            Check::Wrong { exit_code, mismatches } => {
                if *exit_code != 0 {
                    write!(f, "exit {exit_code}; ")?;
                }
                for (i, m) in mismatches.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}{} {} (expected {})", m.count, m.got, m.expected)?;
                }
                Ok(())
            }
            Check::NoReport { exit_code, stderr } => write!(f, "exit {exit_code}: {stderr}"),
        }
    }
}

/// As text, the way the results have always carried it.
impl Serialize for Check {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sitesync::sink::Applied;

    use super::*;
    use crate::measure::Usage;

    fn run(applied: Applied, unchanged: u64, exit_code: i32) -> Outcome {
        let report = Report::new(applied, false, unchanged, Duration::from_secs(1));
        Outcome {
            usage: Usage { wall_s: 61.4, ..Usage::default() },
            exit_code,
            timed_out: false,
            stdout: serde_json::to_string(&report).unwrap(),
            stderr: "log line\nerror: the last words\n\n".into(),
        }
    }

    fn check(run: &Outcome, expected: Expected) -> Check {
        Check::of_sync(run, report_of(run).as_ref(), &expected)
    }

    #[test]
    fn a_sync_that_did_what_it_had_to_is_ok() {
        let synced = run(Applied { uploaded: 3, hashed: 2, ..Applied::default() }, 7, 0);
        assert_eq!(check(&synced, Expected::counts(3, 0, 7)), Check::Ok);
        assert_eq!(check(&synced, Expected::counts(3, 0, 7).hashed(2)), Check::Ok);
        assert_eq!(Check::Ok.to_string(), "ok");
    }

    #[test]
    fn every_count_that_differs_is_named_with_what_was_expected() {
        let synced = run(Applied { uploaded: 3, hashed: 5, ..Applied::default() }, 7, 0);
        let wrong = check(&synced, Expected::counts(0, 0, 10).hashed(0).copied(0));
        assert_eq!(wrong.to_string(), "uploaded 3 (expected 0), unchanged 7 (expected 10), hashed 5 (expected 0)");
        assert!(!wrong.is_ok());
    }

    #[test]
    fn a_failed_sync_is_wrong_even_when_its_counts_match() {
        let failed = run(Applied::default(), 7, 1);
        assert_eq!(check(&failed, Expected::counts(0, 0, 7)).to_string(), "exit 1; ");
        assert_eq!(check(&failed, Expected::counts(0, 0, 8)).to_string(), "exit 1; unchanged 7 (expected 8)");
    }

    #[test]
    fn a_sync_without_a_report_shows_the_last_line_of_its_stderr() {
        let mut crashed = run(Applied::default(), 0, 2);
        crashed.stdout = String::new();
        let check = check(&crashed, Expected::counts(0, 0, 0));
        assert_eq!(check, Check::NoReport { exit_code: 2, stderr: "error: the last words".into() });
        assert_eq!(check.to_string(), "exit 2: error: the last words");
    }

    #[test]
    fn a_hung_sync_is_reported_as_timed_out_whatever_it_printed() {
        let mut hung = run(Applied::default(), 0, 137);
        hung.timed_out = true;
        assert_eq!(check(&hung, Expected::counts(0, 0, 0)).to_string(), "TIMED OUT: killed after 61 s");
    }

    #[test]
    fn a_baseline_must_count_the_whole_tree() {
        assert_eq!(Check::of_count(10, 10), Check::Ok);
        assert_eq!(Check::of_count(9, 10).to_string(), "counted 9 of 10");
    }

    #[test]
    fn a_check_is_saved_as_its_text() {
        assert_eq!(serde_json::to_string(&Check::Ok).unwrap(), r#""ok""#);
        let miscounted = Check::Miscounted { counted: 9, expected: 10 };
        assert_eq!(serde_json::to_string(&miscounted).unwrap(), r#""counted 9 of 10""#);
    }
}
