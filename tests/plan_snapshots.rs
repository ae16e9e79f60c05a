//! The plan as a spec: every `fixtures/<case>/` pairs a `sync.toml` with a source tree
//! (`local.toml`) and the bucket it meets (`remote.toml`), and `insta` pins the plan a dry run
//! prints for it.
//!
//! The plan is the product's: `sitesync::pipeline::plan::in_memory`, a dry run with the bucket
//! given instead of listed. The tree is built on disk and walked by the real local scan, so name
//! decoding, NFC and the walk's S3 key order are part of what is pinned; the walk's batches go
//! through the case's transform chain, this shard's part of what it yields and the chain's
//! `finish`, as in a run, and the diff, the delete limits and the content check are built as a
//! run builds them. The listing is fed in S3 order, as ListObjectsV2 returns it. Each case is
//! planned under several schedules (alternating small batches either way round, and the
//! pipeline's read-the-side-that-is-behind rule) and batch sizes: the streaming match must give
//! the same plan whichever way the scans interleave and wherever the batches are cut. When the
//! delete limits would refuse the run, a `refused:` line follows the plan.
//!
//! `local.toml`: `[[entry]]` tables with `name` (a UTF-8 relative path) or `name_hex` (its raw
//! bytes in hex, for names git cannot hold), then `size` (bytes of filler) or `content`, and
//! `mtime` in seconds relative to [`T0`]; `kind = "dir" | "fifo" | "dangling_symlink"`, or
//! `kind = "symlink"` with a `target`, makes something other than a regular file. Names are
//! relative to the source directory; one starting with `../` is outside it.
//!
//! `remote.toml`: `[[object]]` tables with `key` (relative to the prefix), `size` and
//! `last_modified` (seconds relative to [`T0`]), and optionally its `etag` (an MD5 in hex, for
//! the content check) and the `source_size` its upload recorded, which a HEAD of a compressed
//! key returns; the clock offset (server minus local, seconds) measured while scanning, `offset`
//! or `offset_lo` and `offset_hi`; and optionally the offset after the run narrowed it for the
//! pairs it could not settle, `final_offset` or `final_lo` and `final_hi` (by default the
//! interval does not narrow); and the chain marker the bucket holds, `marker = "current"` for the
//! case's own chain or the recorded text (by default none); and the ledger of retired keys
//! (`delete_grace`), `[[ledger]]` tables (one file each) with its `written` time, its `shard`
//! (`"K/N"`, none for a whole run's) and `[[ledger.entry]]` tables of a `key` and when it was
//! `retired`. The run's own time on the server's clock is [`T0`].
//!
//! The cases named `chain-*` hold a transform chain; one naming a plugin gets the workspace's
//! example plugins (`libclean_urls.so`, `libdir_index.so`) in a `plugins/` folder beside its
//! `sync.toml`. A case may be one shard of a split run (`shard = "K/N"` in its `sync.toml`).

mod plugin_build;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use sitesync::clock::Offset;
use sitesync::config::{self, Config};
use sitesync::diff::Schedule;
use sitesync::history::ledger::{Layout, LedgerFile};
use sitesync::model::{LocalItem, RemoteObject, Time};
use sitesync::pipeline::plan::{self, Bucket, Interleave, Planned};

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
    #[serde(default)]
    ledger: Vec<LedgerSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LedgerSpec {
    shard: Option<String>,
    written: f64,
    #[serde(default)]
    entry: Vec<RetiredSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetiredSpec {
    key: String,
    retired: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ObjectSpec {
    key: String,
    size: u64,
    last_modified: f64,
    etag: Option<String>,
    source_size: Option<u64>,
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
    sitesync::scan::walk_all(&config.source, config.walk_options()).unwrap_or_else(|e| panic!("the walk: {e}"))
}

/// What a dry run would print, through the product's planner: the plan, and why the run would be
/// refused, if it would.
fn plan(config: &Config, bucket: &Bucket, interleave: Interleave) -> Planned {
    let mut planned = plan::in_memory(config, bucket, interleave).unwrap_or_else(|e| panic!("the plan: {e}"));
    if let Some(why) = &planned.refused {
        planned.plan.push_str(&format!("refused: {why}\n"));
    }
    planned
}

/// The bucket `remote.toml` describes, as a run would learn it.
fn bucket(remote: &RemoteSpec, config: &Config) -> Bucket {
    let mut objects: Vec<RemoteObject> = remote
        .object
        .iter()
        .map(|o| RemoteObject {
            key: o.key.clone(),
            size: o.size,
            last_modified: at(o.last_modified),
            etag: o.etag.clone(),
        })
        .collect();
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    let source_sizes: HashMap<String, u64> =
        remote.object.iter().filter_map(|o| Some((o.key.clone(), o.source_size?))).collect();
    let marker = match remote.marker.as_deref() {
        Some("current") => config.chain.fingerprint().to_owned(),
        marker => marker.unwrap_or_default().to_owned(),
    };
    let offset = offset("offset", remote.offset, remote.offset_lo, remote.offset_hi)
        .expect("remote.toml: the clock offset measured while scanning is required");
    let narrowed = self::offset("final", remote.final_offset, remote.final_lo, remote.final_hi).unwrap_or(offset);
    Bucket { objects, source_sizes, marker, offset, narrowed, ledger: ledger(remote), now: at(0.0) }
}

/// The ledger files `remote.toml` describes, each one's entries sorted as a run writes them.
fn ledger(remote: &RemoteSpec) -> Vec<LedgerFile> {
    let layout = |shard: Option<&str>| match shard {
        None => Layout::Whole,
        Some(text) => Layout::Shard(sitesync::keys::shard::parse(text, None).expect("remote.toml: a ledger's shard")),
    };
    remote
        .ledger
        .iter()
        .map(|file| {
            let mut entries: Vec<(String, Time)> = file.entry.iter().map(|e| (e.key.clone(), at(e.retired))).collect();
            entries.sort();
            LedgerFile { layout: layout(file.shard.as_deref()), written: at(file.written), entries }
        })
        .collect()
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

/// The case's `sync.toml`, copied into `dir` beside the workspace's plugins it names in
/// `plugins/`, so a case names them as a site would (`plugin = "plugins/libclean_urls.so"`).
fn scratch_config(sync_toml: &Path, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(sync_toml).unwrap();
    for package in ["clean-urls", "dir-index"] {
        let library = plugin_build::library(package);
        let name = library.file_name().unwrap().to_str().unwrap();
        if text.lines().any(|l| l.trim_start().starts_with("plugin") && l.contains(name)) {
            let plugins = dir.join("plugins");
            std::fs::create_dir_all(&plugins).unwrap();
            std::fs::copy(&library, plugins.join(name)).unwrap();
        }
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
        let flags = serde_json::json!({ "source": source });
        let config = Config::build(&config::figment(Some(&config_file), &flags))
            .unwrap_or_else(|e| panic!("{}: {e}", sync_toml.display()));

        let keys: Vec<String> = walk(&config)
            .into_iter()
            .filter_map(|i| match i {
                LocalItem::File(f) => Some(f.key),
                LocalItem::Problem(_) => None,
            })
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "the walk is not in S3 key order: {keys:?}");

        let bucket = bucket(&remote, &config);
        let mut plans = Vec::new();
        let alternate = |local_first| Schedule::Alternate { local_first };
        for schedule in [alternate(true), alternate(false), Schedule::Behind] {
            for batch in [1, 2, 3, usize::MAX] {
                plans.push((schedule, batch, plan(&config, &bucket, Interleave { schedule, batch })));
            }
        }
        let (_, _, first) = &plans[0];
        for (schedule, batch, other) in &plans[1..] {
            assert_eq!(
                (&first.plan, &first.tally),
                (&other.plan, &other.tally),
                "{}: {schedule:?} in batches of {batch} gives another plan",
                case.display()
            );
        }

        let mut settings = insta::Settings::clone_current();
        settings.set_description(description(sync_toml));
        settings.set_omit_expression(true);
        settings.bind(|| insta::assert_snapshot!(first.plan));
    });
}
