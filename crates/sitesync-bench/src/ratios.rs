//! The figures of a synthetic tree: each sitesync row divided by the baseline it is measured
//! against, with the target it must meet where there is one. The speeds come first (against the
//! scans and the PUT loop), then the client CPU per file, the memory, the rebuild beside md5sum,
//! and what N shards at once cost over one run.

use crate::results::{Ratio, Row};
use crate::rows::find;

/// The baselines the figures are divided by.
struct Floors<'a> {
    walk1: &'a Row,
    /// The fastest walk's wall time, on any number of threads.
    walk: f64,
    list: &'a Row,
    split: &'a Row,
    put: &'a Row,
}

impl Floors<'_> {
    /// What no sync can beat: its two scans run side by side.
    fn scans(&self) -> f64 {
        self.walk.max(self.list.usage.wall_s)
    }
}

/// Every figure of a tree of `n` files (`bytes` in all) of which `changed` were changed.
pub fn of_tree(n: u64, bytes: u64, changed: u64, sitesync: &[Row], baselines: &[Row]) -> Vec<Ratio> {
    let floors = Floors {
        walk1: find(baselines, "walk+stat, 1 thread"),
        walk: baselines
            .iter()
            .filter(|r| r.name.starts_with("walk"))
            .map(|r| r.usage.wall_s)
            .fold(f64::INFINITY, f64::min),
        list: find(baselines, "ListObjectsV2, sequential"),
        split: find(baselines, "ListObjectsV2, split"),
        put: find(baselines, "PutObject"),
    };
    let mut all = speeds(&floors, changed, sitesync);
    all.extend(client_cpu(n, &floors, sitesync));
    all.push(memory(n, &floors, sitesync));
    all.extend(rebuild(bytes, sitesync, baselines));
    all.extend(shards(sitesync));
    all.extend(ledger(sitesync));
    all
}

/// The four syncs' times (the first sync's rate) against the scans and the PUT loop.
fn speeds(floors: &Floors, changed: u64, sitesync: &[Row]) -> Vec<Ratio> {
    let (first, idle) = (find(sitesync, "first sync"), find(sitesync, "no-change"));
    let (after_change, after_remove) = (find(sitesync, "1% changed"), find(sitesync, "1% removed"));
    let (walk, list, split, put) = (floors.walk, floors.list, floors.split, floors.put);
    let scans = floors.scans();
    vec![
        Ratio::new(
            "no-change sync",
            idle.usage.wall_s,
            scans,
            "s",
            format!("max(fastest walk {:.3}, sequential list {:.3})", walk, list.usage.wall_s),
            Some(("≤ 1.2×", idle.usage.wall_s / scans <= 1.2)),
        ),
        Ratio::new(
            "no-change sync vs split list",
            idle.usage.wall_s,
            walk.max(split.usage.wall_s),
            "s",
            format!("max(fastest walk, split list {:.3})", split.usage.wall_s),
            None,
        ),
        Ratio::new(
            "first sync",
            first.rate(),
            put.rate(),
            "files/s",
            "PutObject loop, same workers".into(),
            Some(("≥ 0.9×", first.rate() / put.rate() >= 0.9)),
        ),
        Ratio::new(
            "1% changed",
            after_change.usage.wall_s,
            scans + changed as f64 / put.rate(),
            "s",
            format!("max(walk, list) + {changed} files at the PUT rate"),
            None,
        ),
        Ratio::new("1% removed", after_remove.usage.wall_s, scans, "s", "max(walk, list)".into(), None),
    ]
}

/// The client's CPU per file of the tree, no-change and first sync, against the bare clients'.
fn client_cpu(n: u64, floors: &Floors, sitesync: &[Row]) -> Vec<Ratio> {
    let (first, idle) = (find(sitesync, "first sync"), find(sitesync, "no-change"));
    let per_file = |cpu: f64| cpu * 1e6 / n as f64;
    vec![
        Ratio::new(
            "no-change CPU",
            per_file(idle.usage.cpu_s()),
            per_file(floors.walk1.usage.cpu_s() + floors.list.usage.cpu_s()),
            "µs/file",
            "1-thread walk + sequential list, client CPU".into(),
            None,
        ),
        Ratio::new(
            "first sync CPU",
            per_file(first.usage.cpu_s()),
            per_file(floors.put.usage.cpu_s()),
            "µs/file",
            "PutObject loop, client CPU".into(),
            None,
        ),
    ]
}

/// The no-change sync's peak RSS against the listing process's; at 1M files it must stay flat.
fn memory(n: u64, floors: &Floors, sitesync: &[Row]) -> Ratio {
    let idle = find(sitesync, "no-change");
    let rss_mb = idle.usage.max_rss_mib * 1.048_576;
    Ratio::new(
        "no-change peak RSS",
        idle.usage.max_rss_mib,
        floors.list.usage.max_rss_mib,
        "MiB",
        "sequential list process".into(),
        (n >= 1_000_000).then_some(("≤ 150 MB at 1M files", rss_mb <= 150.0)),
    )
}

/// The rebuild's figures: its time against the no-change sync plus md5sum on every core (target
/// ≤ 1.3×), and the bytes hashed per CPU-second: sitesync's (the rebuild's CPU over the no-change
/// sync's) against md5sum's.
fn rebuild(bytes: u64, sitesync: &[Row], baselines: &[Row]) -> Vec<Ratio> {
    let idle = find(sitesync, "no-change");
    let (Some(rebuilt), Some(md5)) =
        (sitesync.iter().find(|r| r.name == "rebuild sync"), baselines.iter().find(|r| r.name.starts_with("md5sum")))
    else {
        return Vec::new();
    };
    let floor = idle.usage.wall_s + md5.usage.wall_s;
    let ratio = rebuilt.usage.wall_s / floor;
    let mb = bytes as f64 / 1e6;
    let hashing_cpu = (rebuilt.usage.cpu_s() - idle.usage.cpu_s()).max(1e-3);
    vec![
        Ratio::new(
            "rebuild sync",
            rebuilt.usage.wall_s,
            floor,
            "s",
            format!("no-change sync {:.3} + md5sum on every core {:.3}", idle.usage.wall_s, md5.usage.wall_s),
            Some(("≤ 1.3×", ratio <= 1.3)),
        ),
        Ratio::new(
            "hashing, per core",
            mb / hashing_cpu,
            mb / md5.usage.cpu_s().max(1e-3),
            "MB/s",
            "md5sum, bytes per CPU-second".into(),
            None,
        ),
    ]
}

/// The split's overhead: N shards at once against one run doing the same work.
fn shards(sitesync: &[Row]) -> Vec<Ratio> {
    let (first, idle) = (find(sitesync, "first sync"), find(sitesync, "no-change"));
    let mut all = Vec::new();
    for (shards, one) in [("shards at once, first sync", first), ("shards at once, no-change", idle)] {
        if let Some(row) = sitesync.iter().find(|r| r.name.contains(shards)) {
            let is = format!("one run, {}", one.name);
            all.push(Ratio::new(&row.name, row.usage.wall_s, one.usage.wall_s, "s", is, None));
        }
    }
    all
}

/// A ledger of retired keys read by a no-change sync, against the same bucket synced with
/// `--no-delete` (no ledger read, the same objects listed); and, for what keeping the retired
/// objects costs too, against the plain no-change sync of the tree.
fn ledger(sitesync: &[Row]) -> Vec<Ratio> {
    use crate::variants::{BESIDE_ROW, LEDGER_ROW};
    let (Some(with), Some(beside)) = (
        sitesync.iter().find(|r| r.name.starts_with(LEDGER_ROW)),
        sitesync.iter().find(|r| r.name.starts_with(BESIDE_ROW)),
    ) else {
        return Vec::new();
    };
    let idle = find(sitesync, "no-change");
    let ratio = with.usage.wall_s / beside.usage.wall_s;
    vec![
        Ratio::new(
            &with.name,
            with.usage.wall_s,
            beside.usage.wall_s,
            "s",
            beside.name.clone(),
            Some(("≤ 1.05×", ratio <= 1.05)),
        ),
        Ratio::new(
            &format!("{}, vs the tree alone", with.name),
            with.usage.wall_s,
            idle.usage.wall_s,
            "s",
            format!("{} (no retired objects to list)", idle.name),
            None,
        ),
    ]
}
