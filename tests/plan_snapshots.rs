//! The plan as a spec: every `fixtures/<case>/` pairs a `sync.toml` with a source tree
//! (`local.toml`) and the bucket it meets (`remote.toml`), and `insta` pins the plan a dry run
//! prints for it.
//!
//! The tree is built on disk and walked by the real local scan, so name decoding, NFC and the
//! walk's S3 key order are part of what is pinned; the walk goes through the case's transform
//! chain, as in a run. The listing is fed in S3 order, as ListObjectsV2 returns it, less the keys
//! the chain hides. Both sides then go through the real diff under several schedules (alternating
//! small batches either way round, and the pipeline's read-the-side-that-is-behind rule): the
//! streaming match must give the same plan whichever way the scans interleave. When the delete
//! limits would refuse the run, a `refused:` line follows the plan.
//!
//! `local.toml`: `[[entry]]` tables with `name` (a UTF-8 relative path) or `name_hex` (its raw
//! bytes in hex, for names git cannot hold), then `size` (bytes of filler) or `content`, and
//! `mtime` in seconds relative to [`T0`]; `kind = "dir" | "fifo" | "dangling_symlink"`, or
//! `kind = "symlink"` with a `target`, makes something other than a regular file. Names are
//! relative to the source directory; one starting with `../` is outside it.
//!
//! `remote.toml`: `[[object]]` tables with `key` (relative to the prefix), `size` and
//! `last_modified` (seconds relative to [`T0`]); the clock offset (server minus local, seconds)
//! measured while scanning, `offset` or `offset_lo` and `offset_hi`; and optionally the offset
//! after the run narrowed it for the pairs it could not settle, `final_offset` or `final_lo` and
//! `final_hi` (by default the interval does not narrow); and the chain marker the bucket holds,
//! `marker = "current"` for the case's own chain or the recorded text (by default none).
//!
//! The cases named `chain-*` hold a transform chain; one naming a plugin gets the workspace's
//! example plugins in a `plugins/` folder beside its `sync.toml`.

mod plugin_build;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use sitesync::clock::Offset;
use sitesync::config::{self, Config, Overrides};
use sitesync::diff::{Diff, Tally};
use sitesync::model::{Event, LocalItem, RemoteObject, Time};
use sitesync::pipeline::{RunOptions, delete_limit};
use sitesync::plan;

/// The instant fixture times are relative to (2023-11-14T22:13:20Z).
const T0: i64 = 1_700_000_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LocalSpec {
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: Option<String>,
    name_hex: Option<String>,
    size: Option<u64>,
    content: Option<String>,
    mtime: Option<f64>,
    #[serde(default)]
    kind: Kind,
    target: Option<String>,
}

#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Kind {
    #[default]
    File,
    Dir,
    Fifo,
    DanglingSymlink,
    Symlink,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoteSpec {
    offset: Option<f64>,
    offset_lo: Option<f64>,
    offset_hi: Option<f64>,
    final_offset: Option<f64>,
    final_lo: Option<f64>,
    final_hi: Option<f64>,
    marker: Option<String>,
    #[serde(default)]
    object: Vec<ObjectSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ObjectSpec {
    key: String,
    size: u64,
    last_modified: f64,
}

fn at(secs_from_t0: f64) -> Time {
    Time(T0 * Time::NANOS_PER_SEC + Time::from_secs_f64(secs_from_t0).0)
}

fn offset(what: &str, exact: Option<f64>, lo: Option<f64>, hi: Option<f64>) -> Option<Offset> {
    let nanos = |s: f64| Time::from_secs_f64(s).0;
    match (exact, lo, hi) {
        (None, None, None) => None,
        (Some(o), None, None) => Some(Offset::exact(nanos(o))),
        (None, Some(lo), Some(hi)) if lo <= hi => Some(Offset { lo: nanos(lo), hi: nanos(hi) }),
        _ => panic!("remote.toml: give either `{what}`, or `{what}_lo` <= `{what}_hi`"),
    }
}

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2) && s.is_ascii(), "name_hex {s:?}: expected pairs of hex digits");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("name_hex: not hex")).collect()
}

/// Builds the tree `local.toml` describes under `root`.
fn build_tree(spec: &LocalSpec, root: &Path) {
    for entry in &spec.entry {
        let name = match (&entry.name, &entry.name_hex) {
            (Some(name), None) => name.as_bytes().to_vec(),
            (None, Some(h)) => hex(h),
            _ => panic!("local.toml: an entry needs exactly one of `name` and `name_hex`: {entry:?}"),
        };
        let path = root.join(OsStr::from_bytes(&name));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        match entry.kind {
            Kind::Dir => std::fs::create_dir_all(&path).unwrap(),
            Kind::Fifo => {
                let status = std::process::Command::new("mkfifo").arg(&path).status().expect("running mkfifo");
                assert!(status.success(), "mkfifo {}", path.display());
            }
            Kind::DanglingSymlink => std::os::unix::fs::symlink("no-such-file", &path).unwrap(),
            Kind::Symlink => {
                let target = entry
                    .target
                    .as_deref()
                    .unwrap_or_else(|| panic!("local.toml: a symlink needs a `target`: {entry:?}"));
                std::os::unix::fs::symlink(target, &path).unwrap();
            }
            Kind::File => {
                let bytes = match (&entry.content, entry.size) {
                    (Some(c), None) => c.as_bytes().to_vec(),
                    (None, size) => vec![b'x'; size.unwrap_or(0) as usize],
                    (Some(_), Some(_)) => panic!("local.toml: give `size` or `content`, not both: {entry:?}"),
                };
                std::fs::write(&path, bytes).unwrap();
                let mtime = entry.mtime.unwrap_or_else(|| panic!("local.toml: a file needs an `mtime`: {entry:?}"));
                let nanos = at(mtime).0;
                let when = SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::try_from(nanos).unwrap());
                std::fs::File::options().write(true).open(&path).unwrap().set_modified(when).unwrap();
            }
        }
    }
}

/// Everything the real walk yields, in its order.
fn walk(config: &Config) -> Vec<LocalItem> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let walker = sitesync::scan::local::spawn_with(config.source.clone(), config.walk_options(), tx);
    let mut items = Vec::new();
    while let Some(batch) = rx.blocking_recv() {
        items.extend(batch);
    }
    walker.join().unwrap();
    items
}

/// The walk through the transform chain, as the diff receives it (a small tree is one batch).
fn transform(config: &Config, items: Vec<LocalItem>) -> Vec<LocalItem> {
    if config.chain.is_empty() {
        return items;
    }
    let mut chain = config.chain.start().unwrap_or_else(|e| panic!("starting the chain: {e}"));
    chain.apply(items).unwrap_or_else(|e| panic!("the chain failed: {e}"))
}

/// The order in which the two scans' batches reach the diff.
#[derive(Debug, Clone, Copy)]
enum Schedule {
    /// One local batch, one remote batch, and so on.
    LocalFirst,
    RemoteFirst,
    /// As the pipeline reads: from the side whose scan position is behind.
    Behind,
}

/// What the two scans of a case found, and what the run knows of the bucket and its clock.
struct Scanned {
    config: Config,
    local: Vec<LocalItem>,
    /// In S3 order, without the keys the chain hides.
    remote: Vec<RemoteObject>,
    /// The clock offset while scanning, and once the run narrowed it.
    scan: Offset,
    last: Offset,
    /// The bucket's chain marker differs from the chain: unchanged keys are published again.
    refresh: bool,
}

/// What a dry run would print: the plan, and why the run would be refused, if it would.
fn plan(case: &Scanned, schedule: Schedule, chunk: usize) -> (String, Tally) {
    let Scanned { config, scan, last, .. } = case;
    let (scan, last) = (*scan, *last);
    let mut local_batches = case.local.chunks(chunk).map(<[_]>::to_vec);
    let mut remote_batches = case.remote.chunks(chunk).map(<[_]>::to_vec);
    let mut diff = Diff::new(config.rule);
    if !config.chain.keeps_order() {
        diff.local_unordered();
    }
    if case.refresh {
        diff.refresh_unchanged();
    }
    let mut events = Vec::new();
    let (mut local_open, mut remote_open) = (true, true);
    let mut turn_local = !matches!(schedule, Schedule::RemoteFirst);
    while local_open || remote_open {
        let read_local = match schedule {
            Schedule::Behind => {
                let (local_at, remote_at) = diff.positions();
                local_open && (!remote_open || local_at <= remote_at)
            }
            _ => local_open && (turn_local || !remote_open),
        };
        turn_local = !turn_local;
        if read_local {
            match local_batches.next() {
                Some(batch) => diff.local_batch(batch, scan, &mut events),
                None => {
                    local_open = false;
                    diff.local_done(&mut events);
                }
            }
        } else {
            match remote_batches.next() {
                Some(batch) => diff.remote_batch(batch, scan, &mut events),
                None => {
                    remote_open = false;
                    diff.remote_done(&mut events);
                }
            }
        }
    }
    diff.finish(last, &mut events);
    assert_eq!(diff.pending(), 0, "the diff holds keys after both scans ended");

    // As the sink does: without `delete`, delete events are dropped.
    let mut steps: Vec<plan::Step> = events
        .iter()
        .filter(|e| config.delete || !matches!(e, Event::Delete { .. }))
        .map(|e| plan::step(e, &config.target))
        .collect();
    let deletes = steps.iter().filter(|s| s.phase == plan::Phase::Deletes).count() as u64;
    let tally = diff.tally();
    let mut out = plan::render(&mut steps, tally.unchanged);
    let dry_run = RunOptions { dry_run: true, ..Default::default() };
    if let Some(why) = delete_limit(config, &dry_run, deletes, Some(tally)) {
        out.push_str(&format!("refused: {why}\n"));
    }
    (out, tally)
}

fn read<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The case's one-line description: the first comment of its `sync.toml`.
fn description(sync_toml: &Path) -> String {
    let text = std::fs::read_to_string(sync_toml).unwrap();
    let line = text.lines().find_map(|l| l.strip_prefix('#')).map(str::trim);
    line.unwrap_or_else(|| panic!("{}: start with a `# what this case shows` line", sync_toml.display())).to_owned()
}

/// The case's `sync.toml`, copied into `dir` beside the workspace's plugins in `plugins/` when it
/// names one, so a case names them as a site would (`plugin = "plugins/libclean_urls.so"`).
fn scratch_config(sync_toml: &Path, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(sync_toml).unwrap();
    if text.lines().any(|l| l.trim_start().starts_with("plugin")) {
        let plugins = dir.join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        let library = plugin_build::library("clean-urls");
        std::fs::copy(&library, plugins.join(library.file_name().unwrap())).unwrap();
    }
    let config = dir.join("sync.toml");
    std::fs::write(&config, text).unwrap();
    config
}

#[test]
fn plan_of_each_fixture() {
    insta::glob!("../fixtures", "*/sync.toml", |sync_toml| {
        let case = sync_toml.parent().unwrap();
        let local: LocalSpec = read(&case.join("local.toml"));
        let remote: RemoteSpec = read(&case.join("remote.toml"));

        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source");
        std::fs::create_dir(&source).unwrap();
        build_tree(&local, &source);
        let config_file = scratch_config(sync_toml, dir.path());
        let overrides = Overrides { source: Some(source), ..Default::default() };
        let config = Config::build(&config::figment(Some(&config_file), &overrides))
            .unwrap_or_else(|e| panic!("{}: {e}", sync_toml.display()));

        let items = walk(&config);
        let keys: Vec<&str> = items
            .iter()
            .filter_map(|i| match i {
                LocalItem::File(f) => Some(f.key.as_str()),
                LocalItem::Problem(_) => None,
            })
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "the walk is not in S3 key order: {keys:?}");
        let items = transform(&config, items);

        let mut objects: Vec<RemoteObject> = remote
            .object
            .iter()
            .map(|o| RemoteObject { key: o.key.clone(), size: o.size, last_modified: at(o.last_modified) })
            .collect();
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        let hidden = config.chain.remote_filter();
        objects.retain(|o| hidden.keeps(&o.key));
        let fingerprint = config.chain.fingerprint();
        let refresh = match remote.marker.as_deref() {
            Some("current") => false,
            marker => marker.unwrap_or_default() != fingerprint,
        };
        let scan = offset("offset", remote.offset, remote.offset_lo, remote.offset_hi)
            .expect("remote.toml: the clock offset measured while scanning is required");
        let last = offset("final", remote.final_offset, remote.final_lo, remote.final_hi).unwrap_or(scan);

        let scanned = Scanned { config, local: items, remote: objects, scan, last, refresh };
        let mut plans = Vec::new();
        for schedule in [Schedule::LocalFirst, Schedule::RemoteFirst, Schedule::Behind] {
            for chunk in [1, 2, 3, usize::MAX] {
                plans.push((schedule, chunk, plan(&scanned, schedule, chunk)));
            }
        }
        let (_, _, (first, tally)) = &plans[0];
        for (schedule, chunk, other) in &plans[1..] {
            assert_eq!(
                (first, tally),
                (&other.0, &other.1),
                "{}: {schedule:?} in batches of {chunk} gives another plan",
                case.display()
            );
        }

        let mut settings = insta::Settings::clone_current();
        settings.set_description(description(sync_toml));
        settings.set_omit_expression(true);
        settings.bind(|| insta::assert_snapshot!(first));
    });
}
