//! `sitesync report merge`: the `--json` reports of one run split across machines (a shard of the
//! site each, run at the same time) added into the report the whole run would have had.
//!
//! Counts, bytes and withheld deletes are summed and failures concatenated, in the order the
//! reports are given. `elapsed_seconds` is the longest of them, not their sum: the shards ran in
//! parallel, so the run took as long as its slowest shard. A refusal or a signal in any shard is
//! the whole run's (and so is its exit status: 130, else 2, else 1 when anything failed); distinct
//! refusals are joined. Fields that post-run steps or newer versions add (`extra`) are summed when
//! every report that has them gives a number, and otherwise taken from the first report that has
//! them. A dry run's report and a sync's count different things, so they are not merged.
//!
//! The reports of a split run carry their shard (`"shard": "2/8"`): they merge only when every
//! shard 1..N is there exactly once, with one N. A CI matrix whose second job never uploaded its
//! report, or a glob that caught one file twice, would otherwise pass for the whole run. Reports
//! without a shard merge as they are; a mix of both is refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Number, Value};

use super::Report;
use crate::error::EXIT_USAGE;

/// A report that cannot be merged; names the file.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("{}: cannot read the report: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: not a sitesync --json report: {source}", path.display())]
    Malformed { path: PathBuf, source: serde_json::Error },
    #[error(
        "{}: the report of {}, but {} is the report of {}: a plan and a sync do not add up",
        path.display(), kind(*dry_run), first.display(), kind(!dry_run)
    )]
    Mixed { path: PathBuf, dry_run: bool, first: PathBuf },
    #[error("no reports to merge")]
    Nothing,
    #[error(
        "{}: not the report of a shard, but {} is the report of shard {shard}: a whole run and a shard do not add up",
        path.display(), sharded.display()
    )]
    Unsharded { path: PathBuf, sharded: PathBuf, shard: String },
    #[error("{}: bad shard: {why}", path.display())]
    BadShard { path: PathBuf, shard: String, why: String },
    #[error(
        "{}: the report of shard {shard}, but {} is the report of shard {other}: runs split into different numbers of shards do not add up",
        path.display(), first.display()
    )]
    Split { path: PathBuf, shard: String, first: PathBuf, other: String },
    #[error("{}: shard {shard} again (also {})", path.display(), first.display())]
    Repeated { path: PathBuf, shard: String, first: PathBuf },
    #[error("no report of {missing} (of {count} shards, {given} reports given): the run is not whole without them")]
    Missing { missing: String, count: u32, given: usize },
}

impl MergeError {
    /// Every one is a usage error: the run is not judged from reports that cannot be read.
    pub fn exit_code(&self) -> u8 {
        EXIT_USAGE
    }
}

fn kind(dry_run: bool) -> &'static str {
    if dry_run { "a dry run" } else { "a sync" }
}

/// Reads one report, as `sitesync sync --json` printed it.
pub fn read(path: &Path) -> Result<Report, MergeError> {
    let bytes = std::fs::read(path).map_err(|source| MergeError::Read { path: path.to_owned(), source })?;
    serde_json::from_slice(&bytes).map_err(|source| MergeError::Malformed { path: path.to_owned(), source })
}

/// Reads the reports in `paths` and merges them.
pub fn merge_files(paths: &[PathBuf]) -> Result<Report, MergeError> {
    let mut reports: Vec<Report> = Vec::with_capacity(paths.len());
    for path in paths {
        let report = read(path)?;
        if let Some(first) = reports.first()
            && first.dry_run != report.dry_run
        {
            return Err(MergeError::Mixed { path: path.clone(), dry_run: report.dry_run, first: paths[0].clone() });
        }
        reports.push(report);
    }
    check_shards(paths, &reports)?;
    merge(reports).ok_or(MergeError::Nothing)
}

/// Refuses a split run's reports unless each shard 1..N gave exactly one, all with one N.
fn check_shards(paths: &[PathBuf], reports: &[Report]) -> Result<(), MergeError> {
    let given: Vec<(&PathBuf, Option<&str>)> =
        paths.iter().zip(reports).map(|(p, r)| (p, r.shard.as_deref())).collect();
    let Some(&(sharded, Some(first))) = given.iter().find(|(_, shard)| shard.is_some()) else { return Ok(()) };
    if let Some((whole, _)) = given.iter().find(|(_, shard)| shard.is_none()) {
        return Err(MergeError::Unsharded {
            path: (*whole).clone(),
            sharded: sharded.clone(),
            shard: first.to_owned(),
        });
    }
    let mut count = None;
    let mut seen = BTreeMap::new();
    for &(path, text) in &given {
        let text = text.unwrap_or_default();
        let bad = |why| MergeError::BadShard { path: path.clone(), shard: text.to_owned(), why };
        let shard = crate::keys::shard::parse(text, None).map_err(bad)?;
        let (n, first) = *count.get_or_insert((shard.count, (path, text)));
        if shard.count != n {
            let (first, other) = (first.0.clone(), first.1.to_owned());
            return Err(MergeError::Split { path: path.clone(), shard: shard.to_string(), first, other });
        }
        if let Some(first) = seen.insert(shard.index, path) {
            return Err(MergeError::Repeated { path: path.clone(), shard: shard.to_string(), first: first.clone() });
        }
    }
    let Some((n, _)) = count else { return Ok(()) };
    let absent = n as usize - seen.len();
    if absent == 0 {
        return Ok(());
    }
    // The first few are enough to name; N may be large.
    const NAMED: usize = 10;
    let named: Vec<String> =
        (1..=n).filter(|k| !seen.contains_key(k)).take(NAMED).map(|k| format!("{k}/{n}")).collect();
    let missing = match named.split_last() {
        Some((one, [])) if absent == 1 => format!("shard {one}"),
        Some(_) if absent > NAMED => format!("shards {} and {} more", named.join(", "), absent - NAMED),
        Some((last, rest)) => format!("shards {} and {last}", rest.join(", ")),
        None => return Ok(()),
    };
    Err(MergeError::Missing { missing, count: n, given: reports.len() })
}

/// The report of the whole run whose shards reported `reports`; `None` when there are none.
pub fn merge(reports: impl IntoIterator<Item = Report>) -> Option<Report> {
    let mut reports = reports.into_iter();
    let mut total = reports.next()?;
    // The reports of every shard add up to the whole run's, which has none.
    total.shard = None;
    let mut refusals: Vec<String> = total.refused.take().into_iter().collect();
    let mut extras = vec![std::mem::take(&mut total.extra)];
    for report in reports {
        total.uploaded = total.uploaded.saturating_add(report.uploaded);
        total.copied = total.copied.saturating_add(report.copied);
        total.deleted = total.deleted.saturating_add(report.deleted);
        total.retired = total.retired.saturating_add(report.retired);
        total.unchanged = total.unchanged.saturating_add(report.unchanged);
        total.failed = total.failed.saturating_add(report.failed);
        total.bytes_uploaded = total.bytes_uploaded.saturating_add(report.bytes_uploaded);
        total.hashed = total.hashed.saturating_add(report.hashed);
        total.bytes_hashed = total.bytes_hashed.saturating_add(report.bytes_hashed);
        total.deletes_withheld = total.deletes_withheld.saturating_add(report.deletes_withheld);
        total.elapsed_seconds = total.elapsed_seconds.max(report.elapsed_seconds);
        refusals.extend(report.refused.filter(|why| !refusals.contains(why)));
        total.interrupted = total.interrupted.or(report.interrupted);
        total.failures.extend(report.failures);
        total.plan.push_str(&report.plan);
        extras.push(report.extra);
    }
    total.refused = (!refusals.is_empty()).then(|| refusals.join("; "));
    total.extra = merge_extra(extras);
    Some(total)
}

/// The extra fields: summed when every value is a number, else the first value.
fn merge_extra(maps: Vec<Map<String, Value>>) -> Map<String, Value> {
    let mut values: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for map in maps {
        for (key, value) in map {
            values.entry(key).or_default().push(value);
        }
    }
    values
        .into_iter()
        .map(|(key, mut values)| {
            let merged = if values.iter().all(Value::is_number) { sum(&values) } else { None };
            (key, merged.unwrap_or_else(|| values.swap_remove(0)))
        })
        .collect()
}

/// The sum of numbers, as integers when they all are; `None` when it is not a JSON number.
fn sum(values: &[Value]) -> Option<Value> {
    if let Some(unsigned) = values.iter().map(Value::as_u64).collect::<Option<Vec<u64>>>() {
        return Some(unsigned.into_iter().fold(0, u64::saturating_add).into());
    }
    if let Some(signed) = values.iter().map(Value::as_i64).collect::<Option<Vec<i64>>>() {
        return Some(signed.into_iter().fold(0, i64::saturating_add).into());
    }
    Number::from_f64(values.iter().filter_map(Value::as_f64).sum()).map(Value::Number)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn report(value: Value) -> Report {
        let mut base = json!({
            "dry_run": false, "uploaded": 0, "copied": 0, "deleted": 0, "unchanged": 0, "failed": 0,
            "bytes_uploaded": 0, "elapsed_seconds": 0.0, "deletes_withheld": 0, "failures": []
        });
        base.as_object_mut().unwrap().extend(value.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn extra_numbers_are_summed_and_other_extras_come_from_the_first_report_that_has_them() {
        let a = report(json!({ "retries": 3, "ratio": 0.5, "invalidation": "I1", "mixed": 1 }));
        let b = report(json!({ "retries": 4, "ratio": 0.25, "bytes_retried": 10, "mixed": "x" }));
        let c = report(json!({ "invalidation": "I2", "offset": -2 }));
        let d = report(json!({ "offset": 1 }));
        let merged = merge([a, b, c, d]).unwrap();
        let extra = serde_json::to_value(&merged.extra).unwrap();
        assert_eq!(
            extra,
            json!({ "retries": 7, "ratio": 0.75, "bytes_retried": 10, "invalidation": "I1", "mixed": 1, "offset": -1 })
        );
    }

    #[test]
    fn distinct_refusals_are_joined_and_the_first_signal_is_kept() {
        let a = report(json!({ "refused": "would delete 2000 objects" }));
        let b = report(json!({ "refused": "would delete 2000 objects", "interrupted": "SIGTERM" }));
        let c = report(json!({ "refused": "source is empty", "interrupted": "SIGINT" }));
        let merged = merge([a, b, c]).unwrap();
        assert_eq!(merged.refused.as_deref(), Some("would delete 2000 objects; source is empty"));
        assert_eq!(merged.interrupted.as_deref(), Some("SIGTERM"));
        assert_eq!(merged.exit_code(), crate::error::EXIT_INTERRUPTED);
    }

    #[test]
    fn a_split_run_merges_only_with_every_shard_once() {
        let check = |shards: &[&str]| {
            let reports: Vec<Report> = shards.iter().map(|s| report(json!({ "shard": s }))).collect();
            let paths: Vec<PathBuf> = (0..shards.len()).map(|i| PathBuf::from(format!("r{i}.json"))).collect();
            check_shards(&paths, &reports).map_err(|e| e.to_string())
        };
        assert_eq!(check(&["2/3", "3/3", "1/3"]), Ok(()));
        assert_eq!(check(&["1/1"]), Ok(()));
        let missing = |shards: &[&str]| check(shards).unwrap_err();
        assert!(missing(&["1/3", "3/3"]).starts_with("no report of shard 2/3 (of 3 shards, 2 reports given)"));
        assert!(missing(&["2/4"]).starts_with("no report of shards 1/4, 3/4 and 4/4 "));
        let many = missing(&["20/20"]);
        assert!(
            many.starts_with(
                "no report of shards 1/20, 2/20, 3/20, 4/20, 5/20, 6/20, 7/20, 8/20, 9/20, 10/20 and 9 more"
            ),
            "{many}"
        );
        assert!(missing(&["1/4294967295"]).contains("and 4294967284 more"), "a large N is named, not listed");
        assert_eq!(missing(&["1/2", "x"]), "r1.json: bad shard: \"x\" is not K/N (like 2/8) or auto/N");
        assert!(missing(&["1/2", "3/2"]).starts_with("r1.json: bad shard: \"3/2\": K must be"));
    }

    #[test]
    fn retirements_add_up_and_a_report_without_them_reads_as_none() {
        let older = report(json!({ "deleted": 1 }));
        assert_eq!(older.retired, 0, "a report of a version before delete_grace");
        let merged = merge([older, report(json!({ "retired": 3, "deleted": 2 })), report(json!({ "retired": 4 }))]);
        let merged = merged.unwrap();
        assert_eq!((merged.retired, merged.deleted), (7, 3));
        assert!(merged.summary().contains("3 deleted, 7 retired, 0 unchanged"), "{}", merged.summary());
    }

    #[test]
    fn nothing_merges_into_nothing() {
        assert!(merge(Vec::new()).is_none());
    }
}
