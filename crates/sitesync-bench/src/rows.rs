//! From measured runs to rows: the median run by wall time, what it counted or reported, and
//! whether that is what it had to do.

use anyhow::{Context, Result};
use serde_json::Value;

use crate::baseline::Counted;
use crate::measure::{self, Outcome};
use crate::results::Row;

/// A baseline row; its count must equal the tree's.
pub fn counted(name: &str, runs: &[Outcome], n: u64, detail: &str) -> Result<Row> {
    let mut check = "ok".to_owned();
    let mut counts = Vec::new();
    for run in runs {
        let counted: Counted = serde_json::from_str(run.stdout.trim()).context("a baseline's output")?;
        if counted.items != n && check == "ok" {
            check = format!("counted {} of {n}", counted.items);
        }
        counts.push(counted);
    }
    let usages: Vec<_> = runs.iter().map(|r| r.usage).collect();
    let median = measure::median_index(&usages);
    let extra = match counts[median].extra {
        0 => String::new(),
        x if name.starts_with("walk") => format!("{x} directories"),
        x if name.starts_with("List") => format!("{x} requests"),
        _ => String::new(),
    };
    let detail = [detail, extra.as_str()].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join(", ");
    Ok(Row {
        name: name.into(),
        items: counts[median].items.max(1),
        usage: usages[median],
        runs_wall_s: usages.iter().map(|u| u.wall_s).collect(),
        check,
        detail,
    })
}

/// A sitesync row; CPU per item is per file of the tree. `check` judges the JSON report.
pub fn synced(name: &str, runs: &[Outcome], n: u64, check: impl Fn(&Value) -> Result<(), String>) -> Result<Row> {
    let mut verdict = "ok".to_owned();
    let mut detail = String::new();
    for run in runs {
        let report: Result<Value, _> = serde_json::from_str(run.stdout.trim());
        let problem = match (&report, run.exit_code) {
            _ if run.timed_out => Some(format!("TIMED OUT: killed after {:.0} s", run.usage.wall_s)),
            (Ok(r), 0) => check(r).err(),
            (Ok(r), code) => Some(format!("exit {code}; {}", check(r).err().unwrap_or_default())),
            (Err(_), code) => Some(format!("exit {code}: {}", last_line(&run.stderr))),
        };
        if let (Some(p), true) = (problem, verdict == "ok") {
            verdict = p;
        }
        if let Ok(r) = report {
            detail = ["uploaded", "deleted", "unchanged", "hashed", "failed"]
                .iter()
                .map(|k| format!("{} {}", r[k].as_u64().unwrap_or(0), k))
                .collect::<Vec<_>>()
                .join(", ");
        }
    }
    let usages: Vec<_> = runs.iter().map(|r| r.usage).collect();
    let median = measure::median_index(&usages);
    Ok(Row {
        name: name.into(),
        items: n,
        usage: usages[median],
        runs_wall_s: usages.iter().map(|u| u.wall_s).collect(),
        check: verdict,
        detail,
    })
}

/// The counts a sync's report must show.
pub fn expect(report: &Value, uploaded: u64, deleted: u64, unchanged: u64) -> Result<(), String> {
    let get = |k: &str| report[k].as_u64().unwrap_or(u64::MAX);
    let want = [("uploaded", uploaded), ("deleted", deleted), ("unchanged", unchanged), ("failed", 0)];
    let wrong: Vec<String> =
        want.iter().filter(|(k, v)| get(k) != *v).map(|(k, v)| format!("{k} {} (expected {v})", get(k))).collect();
    if wrong.is_empty() { Ok(()) } else { Err(wrong.join(", ")) }
}

fn last_line(s: &str) -> String {
    s.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").to_owned()
}

/// The row whose name starts with `name`; every row a ratio needs is measured before it.
pub fn find<'a>(rows: &'a [Row], name: &str) -> &'a Row {
    rows.iter().find(|r| r.name.starts_with(name)).expect("every row is measured before the ratios")
}
