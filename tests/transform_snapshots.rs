//! The plan with a transform chain, as a spec: every `fixtures/transforms/<case>/` pairs a
//! `sync.toml` holding `[[transform]]` tables with a source tree (`local.toml`) and the bucket it
//! meets (`remote.toml`), and `insta` pins the plan a dry run prints for it.
//!
//! The formats are those of `tests/plan_snapshots.rs` (`[[entry]]` with `name`, `size` or
//! `content`, `mtime`; `[[object]]` with `key`, `size`, `last_modified`, and the clock `offset`),
//! plus `chain_changed = true` in `remote.toml` when the marker under the prefix records another
//! chain configuration. The stages are the real ones, in the pipeline's order: the walk, the
//! chain (on the walk's batches), the listing without the keys the chain's filters exclude, the
//! diff under two schedules, and the plan. `sync.toml` is read from a scratch directory that also
//! holds the workspace's plugins in `plugins/`, so a case names them as a site would
//! (`plugin = "plugins/libclean_urls.so"`).

mod plugin_build;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use sitesync::clock::Offset;
use sitesync::config::{self, Config, Overrides};
use sitesync::diff::Diff;
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
    name: String,
    size: Option<u64>,
    content: Option<String>,
    mtime: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoteSpec {
    offset: f64,
    #[serde(default)]
    chain_changed: bool,
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

fn read<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn build_tree(spec: &LocalSpec, root: &Path) {
    for entry in &spec.entry {
        let path = root.join(&entry.name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let bytes = match (&entry.content, entry.size) {
            (Some(c), None) => c.as_bytes().to_vec(),
            (None, size) => vec![b'x'; size.unwrap_or(0) as usize],
            (Some(_), Some(_)) => panic!("local.toml: give `size` or `content`, not both: {entry:?}"),
        };
        std::fs::write(&path, bytes).unwrap();
        let when = SystemTime::UNIX_EPOCH + Duration::from_nanos(at(entry.mtime).0 as u64);
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(when).unwrap();
    }
}

/// The walk's batches, as the pipeline receives them.
fn walk(config: &Config) -> Vec<Vec<LocalItem>> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let walker = sitesync::scan::local::spawn_with(config.source.clone(), config.walk_options(), tx);
    let mut batches = Vec::new();
    while let Some(batch) = rx.blocking_recv() {
        batches.push(batch);
    }
    walker.join().unwrap();
    batches
}

/// The plan of a dry run, with the local side fed first or the remote side first.
fn plan(
    config: &Config,
    local: &[LocalItem],
    remote: &[RemoteObject],
    offset: Offset,
    refresh: bool,
    local_first: bool,
) -> String {
    let mut diff = Diff::new(config.rule);
    if refresh {
        diff.refresh_unchanged();
    }
    let mut events = Vec::new();
    let feed_local = |diff: &mut Diff, events: &mut Vec<Event>| {
        diff.local_batch(local.to_vec(), offset, events);
        diff.local_done(events);
    };
    let feed_remote = |diff: &mut Diff, events: &mut Vec<Event>| {
        diff.remote_batch(remote.to_vec(), offset, events);
        diff.remote_done(events);
    };
    if local_first {
        feed_local(&mut diff, &mut events);
        feed_remote(&mut diff, &mut events);
    } else {
        feed_remote(&mut diff, &mut events);
        feed_local(&mut diff, &mut events);
    }
    diff.finish(offset, &mut events);
    let mut steps: Vec<plan::Step> = events.iter().map(|e| plan::step(e, &config.target)).collect();
    let deletes = steps.iter().filter(|s| s.phase == plan::Phase::Deletes).count() as u64;
    let tally = diff.tally();
    let mut out = plan::render(&mut steps, tally.unchanged);
    let dry_run = RunOptions { dry_run: true, ..Default::default() };
    if let Some(why) = delete_limit(config, &dry_run, deletes, Some(tally)) {
        out.push_str(&format!("refused: {why}\n"));
    }
    out
}

fn description(sync_toml: &Path) -> String {
    let text = std::fs::read_to_string(sync_toml).unwrap();
    let line = text.lines().find_map(|l| l.strip_prefix('#')).map(str::trim);
    line.unwrap_or_else(|| panic!("{}: start with a `# what this case shows` line", sync_toml.display())).to_owned()
}

/// A scratch directory holding the case's `sync.toml` and the workspace plugins in `plugins/`.
fn scratch(sync_toml: &Path) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let library = plugin_build::library("clean-urls");
    std::fs::copy(&library, plugins.join(library.file_name().unwrap())).unwrap();
    let config = dir.path().join("sync.toml");
    std::fs::copy(sync_toml, &config).unwrap();
    (dir, config)
}

#[test]
fn plan_of_each_transform_case() {
    insta::glob!("../fixtures/transforms", "*/sync.toml", |sync_toml| {
        let case = sync_toml.parent().unwrap();
        let local: LocalSpec = read(&case.join("local.toml"));
        let remote: RemoteSpec = read(&case.join("remote.toml"));
        let source = tempfile::tempdir().unwrap();
        build_tree(&local, source.path());
        let (_scratch, config_file) = scratch(sync_toml);
        let overrides = Overrides { source: Some(PathBuf::from(source.path())), ..Default::default() };
        let config = Config::build(&config::figment(Some(&config_file), &overrides))
            .unwrap_or_else(|e| panic!("{}: {e}", sync_toml.display()));
        assert!(!config.chain.is_empty(), "{}: a transform case needs a chain", sync_toml.display());

        let mut chain = config.chain.start().unwrap().under_prefix(config.target.prefix.len());
        let mut items = Vec::new();
        for batch in walk(&config) {
            items.extend(chain.apply(batch).unwrap_or_else(|e| panic!("{}: {e}", case.display())));
        }
        let filter = config.chain.remote_filter();
        let mut objects: Vec<RemoteObject> = remote
            .object
            .iter()
            .filter(|o| filter.keeps(&o.key))
            .map(|o| RemoteObject { key: o.key.clone(), size: o.size, last_modified: at(o.last_modified) })
            .collect();
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        let offset = Offset::exact(Time::from_secs_f64(remote.offset).0);

        let first = plan(&config, &items, &objects, offset, remote.chain_changed, true);
        let other = plan(&config, &items, &objects, offset, remote.chain_changed, false);
        assert_eq!(first, other, "{}: the plan depends on which scan comes first", case.display());

        let mut settings = insta::Settings::clone_current();
        settings.set_description(description(sync_toml));
        settings.set_omit_expression(true);
        settings.bind(|| insta::assert_snapshot!(first));
    });
}
