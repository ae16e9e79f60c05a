//! One benchmark run: start the server, then for each tree size measure the baselines and the
//! four sitesync syncs on the same server and tree, and turn them into ratios.
//!
//! Order per size: walk+stat (which also warms the page cache), sitesync's first sync, the
//! PutObject loop into a bucket of its own, the two listings of sitesync's bucket, the no-change
//! syncs, then 1% of the files changed and synced, then another 1% removed and synced. The tree is
//! put back afterwards, even when a step fails.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::baseline::{self, Counted};
use crate::machine::{binary_info, loadavg, machine, utc_now};
use crate::measure::{self, Outcome};
use crate::results::{Ratio, Results, Row, SizeResult};
use crate::server::{self, Server};
use crate::tree::{self, Tree};
use crate::variants;

#[derive(Debug, Clone)]
pub struct Options {
    pub files: Vec<u64>,
    pub workers: usize,
    pub keep_server: bool,
    pub server: server::Choice,
    pub garage_bin: Option<PathBuf>,
    pub trees: PathBuf,
    pub results: PathBuf,
    pub server_dir: PathBuf,
    pub sitesync: PathBuf,
    pub repeat: usize,
    pub seed: u64,
    /// Extra `KEY=VALUE` environment for sitesync (e.g. `SITESYNC_LIST_PARALLEL=1`).
    pub sitesync_env: Vec<(String, String)>,
    /// Also measure a chain that publishes the whole tree twice.
    pub mirror: bool,
    /// Also measure the tree synced by this many `--shard K/N` runs at once.
    pub shards: Option<u32>,
    /// A real site to measure, from a copy.
    pub site: Option<PathBuf>,
}

/// Above this many files the embedded store's listing (a folder walk per page) dominates.
const EMBEDDED_COMFORT: u64 = 20_000;

pub struct Ctx<'a> {
    pub opts: &'a Options,
    pub server: &'a Server,
    pub cores: usize,
    pub runtime: tokio::runtime::Runtime,
}

/// Runs the benchmark; the results are printed, saved as JSON, and returned. A run whose syncs
/// did not do what they had to (or hung) is an error, after its results are saved.
pub fn run(opts: &Options) -> Result<Results> {
    let started_utc = utc_now();
    let mut warnings = Vec::new();
    let sitesync = binary_info(&opts.sitesync)?;
    let exe = std::env::current_exe()?;
    for (what, path) in [("sitesync-bench", exe.as_path()), ("sitesync", opts.sitesync.as_path())] {
        if path.components().any(|c| c.as_os_str() == "debug") {
            let w = format!("{what} is a debug build ({}); build both with --release", path.display());
            eprintln!("bench: WARNING: {w}");
            warnings.push(w);
        }
    }
    let server = Server::start(opts.server, opts.garage_bin.as_deref(), &opts.server_dir, opts.keep_server)?;
    eprintln!("bench: {} {} at {}", server.info.kind, server.info.version, server.info.endpoint);
    if !server.is_garage() {
        warnings.push("the embedded store (s3s-fs) is not a production S3 server: figures are indicative only".into());
        if let Some(n) = opts.files.iter().find(|&&n| n > EMBEDDED_COMFORT) {
            let w =
                format!("{n} files on the embedded store: its listing re-walks its folder per page, expect minutes");
            eprintln!("bench: WARNING: {w}");
            warnings.push(w);
        }
    }
    let ctx = Ctx {
        opts,
        server: &server,
        cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        runtime: tokio::runtime::Builder::new_current_thread().enable_all().build()?,
    };
    let mut sizes = Vec::new();
    let mut failed = None;
    if let Some(site) = &opts.site {
        match crate::realsite::bench(&ctx, site) {
            Ok(size) => sizes.push(size),
            Err(e) => {
                let w = format!("{}: the run stopped: {e:#}", site.display());
                eprintln!("bench: ERROR: {w}");
                warnings.push(w);
                failed = Some(e);
            }
        }
    }
    for &n in &opts.files {
        match bench_size(&ctx, n) {
            Ok(size) => sizes.push(size),
            Err(e) => {
                let w = format!("{n} files: the run stopped: {e:#}");
                eprintln!("bench: ERROR: {w}");
                warnings.push(w);
                failed = Some(e);
                break;
            }
        }
    }
    let results = Results {
        started_utc: started_utc.clone(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine: machine(),
        server_peak_rss_mib: measure::process_peak_rss_mib(server.pid()),
        server: server.info.clone(),
        sitesync,
        workers: opts.workers,
        sitesync_env: opts.sitesync_env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        repeat: opts.repeat,
        sizes,
        warnings,
    };
    drop(ctx);
    drop(server);
    std::fs::create_dir_all(&opts.results)?;
    let json = opts.results.join(format!("{}.json", started_utc.replace(':', "-")));
    std::fs::write(&json, serde_json::to_vec_pretty(&results)?)?;
    println!("{}", results.markdown());
    eprintln!("bench: results saved to {}", json.display());
    if let Some(e) = failed {
        return Err(e);
    }
    // A figure whose sync did the wrong thing (or hung) is not a result: fail the run, loudly.
    let wrong: Vec<String> = results
        .sizes
        .iter()
        .flat_map(|size| size.sitesync.iter().chain(&size.baselines).map(move |row| (size.files, row)))
        .filter(|(_, row)| row.check != "ok")
        .map(|(files, row)| format!("{files} files, {}: {}", row.name, row.check))
        .collect();
    if !wrong.is_empty() {
        bail!("{} figures failed their check:\n  {}", wrong.len(), wrong.join("\n  "));
    }
    Ok(results)
}

fn bench_size(ctx: &Ctx, n: u64) -> Result<SizeResult> {
    let tree = tree::prepare(&ctx.opts.trees, n, ctx.opts.seed)?;
    let load_before = loadavg();
    eprintln!("bench: {n} files: tree {} ({})", tree.site.display(), tree.how);
    let (site_bucket, put_bucket) = (format!("site-{n}"), format!("put-{n}"));
    let admin = baseline::client_with(
        &ctx.server.info.endpoint,
        &ctx.server.access_key,
        &ctx.server.secret_key,
        &ctx.server.region,
    );
    ctx.runtime.block_on(async {
        baseline::create_bucket(&admin, &site_bucket).await?;
        baseline::create_bucket(&admin, &put_bucket).await
    })?;

    let mut baselines = Vec::new();
    let site = tree.site.to_str().context("tree path is not UTF-8")?.to_owned();
    for threads in [1, ctx.cores.max(2)] {
        let label =
            if threads == 1 { "walk+stat, 1 thread".to_owned() } else { format!("walk+stat, {threads} threads") };
        eprintln!("bench: {n} files: {label}");
        let args = ["walk", site.as_str(), "--threads", &threads.to_string()].map(str::to_owned);
        let runs = repeat(ctx.opts.repeat, || bench_cmd(ctx, &args, n))?;
        baselines.push(counted_row(&label, &runs, n, "")?);
    }

    let result = syncs_and_listings(ctx, &tree, &site_bucket, &put_bucket, &mut baselines);
    let restored = tree.restore();
    let (sitesync, changed, removed) = result?;
    restored.context("restoring the tree after the run")?;

    let ratios = ratios(n, tree.manifest.bytes, changed, &sitesync, &baselines);
    Ok(SizeResult {
        files: n,
        tree: tree.manifest.clone(),
        tree_dir: tree.dir.clone(),
        tree_prepared: match tree.how {
            "reused" => "reused".into(),
            how => format!("{how} in {:.1} s", tree.prepared_seconds),
        },
        changed,
        removed,
        sitesync,
        baselines,
        ratios,
        load_before,
        load_after: loadavg(),
    })
}

/// The four syncs, with the PUT loop and the listings between the first and the no-change sync.
fn syncs_and_listings(
    ctx: &Ctx,
    tree: &Tree,
    site_bucket: &str,
    put_bucket: &str,
    baselines: &mut Vec<Row>,
) -> Result<(Vec<Row>, u64, u64)> {
    let n = tree.manifest.files;
    let mut rows = Vec::new();
    eprintln!("bench: {n} files: sitesync first sync");
    let first = sync(ctx, tree, site_bucket)?;
    rows.push(sync_row("first sync", &[first], n, |r| expect(r, n, 0, 0))?);

    eprintln!("bench: {n} files: PutObject loop, {} in flight", ctx.opts.workers);
    let site = tree.site.to_str().context("tree path is not UTF-8")?.to_owned();
    let put_args = [
        "put",
        "--endpoint",
        &ctx.server.info.endpoint,
        "--bucket",
        put_bucket,
        "--prefix",
        "site/",
        "--root",
        &site,
        "--workers",
        &ctx.opts.workers.to_string(),
    ]
    .map(str::to_owned);
    let put = bench_cmd(ctx, &put_args, n)?;
    baselines.push(counted_row(
        "PutObject loop",
        &[put],
        n,
        &format!("{} in flight, separate bucket", ctx.opts.workers),
    )?);

    for split in [false, true] {
        let label = if split { "ListObjectsV2, split by prefix" } else { "ListObjectsV2, sequential" };
        eprintln!("bench: {n} files: {label}");
        let mut args = ["list", "--endpoint", &ctx.server.info.endpoint, "--bucket", site_bucket, "--prefix", "site/"]
            .map(str::to_owned)
            .to_vec();
        if split {
            args.extend(["--split".to_owned(), "--parallel".to_owned(), "16".to_owned()]);
        }
        let runs = repeat(ctx.opts.repeat, || bench_cmd(ctx, &args, n))?;
        let detail = if split { "first-level prefixes, 16 in flight" } else { "one stream" };
        baselines.push(counted_row(label, &runs, n, detail)?);
    }

    eprintln!("bench: {n} files: sitesync no-change sync x{}", ctx.opts.repeat);
    let runs = repeat(ctx.opts.repeat, || sync(ctx, tree, site_bucket))?;
    rows.push(sync_row("no-change sync", &runs, n, |r| expect(r, 0, 0, n))?);

    let (rebuilt, md5sum) = variants::rebuild(ctx, tree, site_bucket)?;
    rows.extend(rebuilt);
    baselines.push(md5sum);

    let changed = tree.change_one_percent()?;
    eprintln!("bench: {n} files: sitesync after {changed} files changed");
    let after_change = sync(ctx, tree, site_bucket)?;
    rows.push(sync_row("1% changed", &[after_change], n, |r| expect(r, changed, 0, n - changed))?);

    let removed = tree.remove_one_percent()?;
    eprintln!("bench: {n} files: sitesync after {removed} files removed");
    let after_remove = sync(ctx, tree, site_bucket)?;
    rows.push(sync_row("1% removed", &[after_remove], n, |r| expect(r, 0, removed, n - removed))?);
    if ctx.opts.mirror {
        rows.extend(variants::mirror(ctx, tree, &format!("mirror-{n}"), n - removed)?);
    }
    if let Some(shards) = ctx.opts.shards {
        rows.extend(variants::shards(ctx, tree, &format!("shards-{n}"), shards, n - removed)?);
    }
    Ok((rows, changed, removed))
}

/// Runs `once` `times` times, or until a run has to be killed: a hung sync is not retried.
pub fn repeat(times: usize, mut once: impl FnMut() -> Result<Outcome>) -> Result<Vec<Outcome>> {
    let mut runs = Vec::new();
    while runs.len() < times.max(1) {
        let run = once()?;
        let stop = run.timed_out;
        runs.push(run);
        if stop {
            break;
        }
    }
    Ok(runs)
}

/// A command with a clean AWS environment: only the server's credentials, no profile or config
/// file, no instance metadata lookups, no `SITESYNC_*` settings.
pub fn clean_env(ctx: &Ctx, cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("AWS_") || k.starts_with("SITESYNC_") {
            cmd.env_remove(&key);
        }
    }
    let nowhere = ctx.opts.server_dir.join("no-aws-config");
    // The local state of this run's syncs starts empty, in the server's folder.
    cmd.env("XDG_CACHE_HOME", ctx.opts.server_dir.join("cache"));
    cmd.env("AWS_ACCESS_KEY_ID", &ctx.server.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &ctx.server.secret_key)
        .env("AWS_REGION", &ctx.server.region)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", &nowhere)
        .env("AWS_SHARED_CREDENTIALS_FILE", &nowhere);
}

fn sync(ctx: &Ctx, tree: &Tree, bucket: &str) -> Result<Outcome> {
    sync_with(ctx, tree, bucket, &[])
}

pub fn sync_with(ctx: &Ctx, tree: &Tree, bucket: &str, extra: &[&str]) -> Result<Outcome> {
    let cmd = sync_cmd(ctx, tree, bucket, extra);
    measure::run(&cmd, Some(ctx.server.pid()), limit(tree.manifest.files))
}

/// The `sitesync sync --json` command of every measured sync, into `bucket`.
pub fn sync_cmd(ctx: &Ctx, tree: &Tree, bucket: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new(&ctx.opts.sitesync);
    cmd.arg("sync")
        .arg(&tree.site)
        .arg(format!("s3://{bucket}/site"))
        .args(["--endpoint-url", &ctx.server.info.endpoint, "--path-style", "--region", &ctx.server.region])
        .args(["--workers", &ctx.opts.workers.to_string(), "--max-delete", "1000000000", "--json", "-q"])
        .args(extra)
        // No sync.toml is picked up from here.
        .current_dir(&tree.dir);
    clean_env(ctx, &mut cmd);
    cmd.envs(ctx.opts.sitesync_env.iter().map(|(k, v)| (k, v)));
    cmd
}

/// How long any one process may run before it is killed and reported: generous, but a hung sync
/// must not hang the benchmark.
pub fn limit(files: u64) -> Duration {
    Duration::from_secs(60) + Duration::from_millis(2 * files)
}

pub fn bench_cmd(ctx: &Ctx, args: &[String], files: u64) -> Result<Outcome> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(args);
    clean_env(ctx, &mut cmd);
    let out = measure::run(&cmd, Some(ctx.server.pid()), limit(files))?;
    if out.exit_code != 0 {
        bail!("baseline {} failed (exit {}): {}", args[0], out.exit_code, out.stderr.trim());
    }
    Ok(out)
}

/// A baseline row; its count must equal the tree's.
pub fn counted_row(name: &str, runs: &[Outcome], n: u64, detail: &str) -> Result<Row> {
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
pub fn sync_row(name: &str, runs: &[Outcome], n: u64, check: impl Fn(&Value) -> Result<(), String>) -> Result<Row> {
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

pub fn find<'a>(rows: &'a [Row], name: &str) -> &'a Row {
    rows.iter().find(|r| r.name.starts_with(name)).expect("every row is measured before the ratios")
}

fn ratios(n: u64, bytes: u64, changed: u64, sitesync: &[Row], baselines: &[Row]) -> Vec<Ratio> {
    let first = find(sitesync, "first sync");
    let idle = find(sitesync, "no-change");
    let after_change = find(sitesync, "1% changed");
    let after_remove = find(sitesync, "1% removed");
    let walk1 = find(baselines, "walk+stat, 1 thread");
    let walks: Vec<&Row> = baselines.iter().filter(|r| r.name.starts_with("walk")).collect();
    let walk = walks.iter().map(|r| r.usage.wall_s).fold(f64::INFINITY, f64::min);
    let list = find(baselines, "ListObjectsV2, sequential");
    let split = find(baselines, "ListObjectsV2, split");
    let put = find(baselines, "PutObject");
    let floor = walk.max(list.usage.wall_s);
    let per_file = |cpu: f64| cpu * 1e6 / n as f64;
    let ratio = Ratio::new;
    let idle_ratio = idle.usage.wall_s / floor;
    let first_ratio = first.rate() / put.rate();
    let rss_mb = idle.usage.max_rss_mib * 1.048_576;
    let mut all = vec![
        ratio(
            "no-change sync",
            idle.usage.wall_s,
            floor,
            "s",
            format!("max(fastest walk {:.3}, sequential list {:.3})", walk, list.usage.wall_s),
            Some(("≤ 1.2×", idle_ratio <= 1.2)),
        ),
        ratio(
            "no-change sync vs split list",
            idle.usage.wall_s,
            walk.max(split.usage.wall_s),
            "s",
            format!("max(fastest walk, split list {:.3})", split.usage.wall_s),
            None,
        ),
        ratio(
            "first sync",
            first.rate(),
            put.rate(),
            "files/s",
            "PutObject loop, same workers".into(),
            Some(("≥ 0.9×", first_ratio >= 0.9)),
        ),
        ratio(
            "1% changed",
            after_change.usage.wall_s,
            floor + changed as f64 / put.rate(),
            "s",
            format!("max(walk, list) + {changed} files at the PUT rate"),
            None,
        ),
        ratio("1% removed", after_remove.usage.wall_s, floor, "s", "max(walk, list)".into(), None),
        ratio(
            "no-change CPU",
            per_file(idle.usage.cpu_s()),
            per_file(walk1.usage.cpu_s() + list.usage.cpu_s()),
            "µs/file",
            "1-thread walk + sequential list, client CPU".into(),
            None,
        ),
        ratio(
            "first sync CPU",
            per_file(first.usage.cpu_s()),
            per_file(put.usage.cpu_s()),
            "µs/file",
            "PutObject loop, client CPU".into(),
            None,
        ),
        ratio(
            "no-change peak RSS",
            idle.usage.max_rss_mib,
            list.usage.max_rss_mib,
            "MiB",
            "sequential list process".into(),
            (n >= 1_000_000).then_some(("≤ 150 MB at 1M files", rss_mb <= 150.0)),
        ),
    ];
    all.extend(variants::rebuild_ratios(bytes, idle, sitesync, baselines));
    // The split's overhead: N shards at once against one run doing the same work.
    for (shards, one) in [("shards at once, first sync", first), ("shards at once, no-change", idle)] {
        if let Some(row) = sitesync.iter().find(|r| r.name.contains(shards)) {
            let is = format!("one run, {}", one.name);
            all.push(ratio(&row.name, row.usage.wall_s, one.usage.wall_s, "s", is, None));
        }
    }
    all
}
