//! From measured runs to rows: the median run by wall time, what it counted or reported, and
//! whether that is what it had to do.

use anyhow::{Context, Result};

use crate::baseline::Counted;
use crate::check::{self, Check, Expected};
use crate::measure::{self, Outcome};
use crate::results::Row;

/// A baseline row; its count must equal the tree's.
pub fn counted(name: &str, runs: &[Outcome], n: u64, detail: &str) -> Result<Row> {
    let mut counts = Vec::new();
    for run in runs {
        let counted: Counted = serde_json::from_str(run.stdout.trim()).context("a baseline's output")?;
        counts.push(counted);
    }
    let check = first_failed(counts.iter().map(|c| Check::of_count(c.items, n)));
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

/// A sitesync row; CPU per item is per file of the tree. Every run's report must show `expected`;
/// the detail is what the last report said.
pub fn synced(name: &str, runs: &[Outcome], n: u64, expected: Expected) -> Row {
    let reports: Vec<_> = runs.iter().map(check::report_of).collect();
    let check = first_failed(runs.iter().zip(&reports).map(|(run, r)| Check::of_sync(run, r.as_ref(), &expected)));
    let detail = reports.iter().rev().flatten().next().map_or_else(String::new, |r| {
        format!(
            "{} uploaded, {} deleted, {} unchanged, {} hashed, {} failed",
            r.uploaded, r.deleted, r.unchanged, r.hashed, r.failed
        )
    });
    let usages: Vec<_> = runs.iter().map(|r| r.usage).collect();
    let median = measure::median_index(&usages);
    Row {
        name: name.into(),
        items: n,
        usage: usages[median],
        runs_wall_s: usages.iter().map(|u| u.wall_s).collect(),
        check,
        detail,
    }
}

/// The first check that failed, or [`Check::Ok`].
fn first_failed(checks: impl IntoIterator<Item = Check>) -> Check {
    checks.into_iter().find(|c| !c.is_ok()).unwrap_or(Check::Ok)
}

/// The row whose name starts with `name`; every row a ratio needs is measured before it.
pub fn find<'a>(rows: &'a [Row], name: &str) -> &'a Row {
    rows.iter().find(|r| r.name.starts_with(name)).expect("every row is measured before the ratios")
}
