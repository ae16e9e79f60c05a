//! One benchmark run: start the server, then for each tree size measure the baselines and the
//! four sitesync syncs on the same server and tree, and turn them into ratios.
//!
//! Order per size: walk+stat (which also warms the page cache), sitesync's first sync, the
//! PutObject loop into a bucket of its own, the two listings of sitesync's bucket, the no-change
//! syncs, then 1% of the files changed and synced, then another 1% removed and synced. The tree is
//! put back afterwards, even when a step fails.

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::check::Expected;
use crate::floors;
use crate::harness::{Ctx, Options, repeat};
use crate::machine::{binary_info, loadavg, machine, utc_now};
use crate::measure;
use crate::paths;
use crate::ratios;
use crate::realsite;
use crate::results::{Results, Row, SizeResult};
use crate::rows;
use crate::server::Server;
use crate::tree::{self, Tree};
use crate::variants;

/// Above this many files the embedded store's listing (a folder walk per page) dominates.
const EMBEDDED_COMFORT: u64 = 20_000;

/// Runs the benchmark; the results are printed, saved as JSON, and returned. A run whose syncs
/// did not do what they had to (or hung) is an error, after its results are saved.
pub fn run(opts: &Options) -> Result<Results> {
    let started_utc = utc_now();
    let sitesync = binary_info(&opts.sitesync)?;
    let mut warnings = Warnings(Vec::new());
    warnings.debug_builds(opts)?;
    let server = Server::start(opts.server, opts.garage_bin.as_deref(), &opts.server_dir, opts.keep_server)?;
    eprintln!("bench: {} {} at {}", server.info.kind, server.info.version, server.info.endpoint);
    warnings.server(&server, &opts.files);
    let ctx = Ctx {
        opts,
        server: &server,
        cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        runtime: tokio::runtime::Builder::new_current_thread().enable_all().build()?,
    };
    let (sizes, failed) = bench_all(&ctx, &mut warnings);
    let results = Results {
        started_utc: started_utc.clone(),
        command: paths::command_line(std::env::args()),
        machine: machine(),
        server_peak_rss_mib: measure::process_peak_rss_mib(server.pid()),
        server: server.info.clone(),
        sitesync,
        workers: opts.workers,
        sitesync_env: opts.sitesync_env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        repeat: opts.repeat,
        sizes,
        warnings: warnings.0,
    };
    drop(ctx);
    drop(server);
    save_and_print(&results, &opts.results)?;
    if let Some(e) = failed {
        return Err(e);
    }
    every_check_passed(&results)?;
    Ok(results)
}

/// What the results say besides the figures; each is also printed as it is found.
struct Warnings(Vec<String>);

impl Warnings {
    fn push(&mut self, level: &str, warning: String) {
        eprintln!("bench: {level}: {warning}");
        self.0.push(warning);
    }

    /// Debug builds of the bench or of sitesync measure the compiler's checks, not the engine.
    fn debug_builds(&mut self, opts: &Options) -> Result<()> {
        let exe = std::env::current_exe()?;
        for (what, path) in [("sitesync-bench", exe.as_path()), ("sitesync", opts.sitesync.as_path())] {
            if path.components().any(|c| c.as_os_str() == "debug") {
                self.push(
                    "WARNING",
                    format!("{what} is a debug build ({}); build both with --release", paths::shown(path)),
                );
            }
        }
        Ok(())
    }

    /// The embedded store gives indicative figures only, and slow listings of large trees.
    fn server(&mut self, server: &Server, files: &[u64]) {
        if server.is_garage() {
            return;
        }
        self.0.push("the embedded store (s3s-fs) is not a production S3 server: figures are indicative only".into());
        if let Some(n) = files.iter().find(|&&n| n > EMBEDDED_COMFORT) {
            let w =
                format!("{n} files on the embedded store: its listing re-walks its folder per page, expect minutes");
            self.push("WARNING", w);
        }
    }
}

/// The real site, then every tree size, until one fails: the sizes measured, and the error that
/// stopped the run, if one did.
fn bench_all(ctx: &Ctx, warnings: &mut Warnings) -> (Vec<SizeResult>, Option<anyhow::Error>) {
    let mut sizes = Vec::new();
    let mut failed = None;
    if let Some(site) = &ctx.opts.site {
        match realsite::bench(ctx, site) {
            Ok(size) => sizes.push(size),
            Err(e) => {
                warnings.push("ERROR", format!("{}: the run stopped: {e:#}", paths::shown(site)));
                failed = Some(e);
            }
        }
    }
    for &n in &ctx.opts.files {
        match bench_size(ctx, n) {
            Ok(size) => sizes.push(size),
            Err(e) => {
                warnings.push("ERROR", format!("{n} files: the run stopped: {e:#}"));
                failed = Some(e);
                break;
            }
        }
    }
    (sizes, failed)
}

/// The JSON in `dir`, named after the run's start, and the Markdown on stdout.
fn save_and_print(results: &Results, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = dir.join(format!("{}.json", results.started_utc.replace(':', "-")));
    std::fs::write(&json, serde_json::to_vec_pretty(results)?)?;
    println!("{}", results.markdown());
    eprintln!("bench: results saved to {}", paths::shown(&json));
    Ok(())
}

/// A figure whose sync did the wrong thing (or hung) is not a result: fail the run, loudly.
fn every_check_passed(results: &Results) -> Result<()> {
    let wrong: Vec<String> = results
        .sizes
        .iter()
        .flat_map(|size| size.sitesync.iter().chain(&size.baselines).map(move |row| (size.files, row)))
        .filter(|(_, row)| !row.check.is_ok())
        .map(|(files, row)| format!("{files} files, {}: {}", row.name, row.check))
        .collect();
    if !wrong.is_empty() {
        bail!("{} figures failed their check:\n  {}", wrong.len(), wrong.join("\n  "));
    }
    Ok(())
}

/// One tree size: its baselines, the syncs and their variants, and the ratios.
fn bench_size(ctx: &Ctx, n: u64) -> Result<SizeResult> {
    let tree = tree::prepare(&ctx.opts.trees, n, ctx.opts.seed)?;
    let load_before = loadavg();
    eprintln!("bench: {n} files: tree {} ({})", paths::shown(&tree.site), tree.how);
    let buckets = Buckets { site: format!("site-{n}"), put: format!("put-{n}") };
    ctx.create_bucket(&buckets.site)?;
    ctx.create_bucket(&buckets.put)?;
    let mut baselines = floors::walks(ctx, &tree)?;
    let result = syncs_and_listings(ctx, &tree, &buckets, &mut baselines);
    let restored = tree.restore();
    let Synced { rows: sitesync, changed, removed } = result?;
    restored.context("restoring the tree after the run")?;

    let ratios = ratios::of_tree(n, tree.manifest.bytes, changed, &sitesync, &baselines);
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

/// sitesync's bucket, and the PutObject loop's.
struct Buckets {
    site: String,
    put: String,
}

/// The sitesync rows of a tree, and how many files its mutations changed and removed.
struct Synced {
    rows: Vec<Row>,
    changed: u64,
    removed: u64,
}

/// The four syncs, with the PUT loop and the listings between the first and the no-change sync,
/// the rebuild after them and the variants asked for at the end.
fn syncs_and_listings(ctx: &Ctx, tree: &Tree, buckets: &Buckets, baselines: &mut Vec<Row>) -> Result<Synced> {
    let n = tree.manifest.files;
    let mut rows = Vec::new();
    eprintln!("bench: {n} files: sitesync first sync");
    let first = ctx.sync(tree, &buckets.site, &[])?;
    rows.push(rows::synced("first sync", &[first], n, Expected::counts(n, 0, 0)));

    baselines.push(floors::put_loop(ctx, tree, &buckets.put)?);
    baselines.extend(floors::listings(ctx, &buckets.site, n)?);

    eprintln!("bench: {n} files: sitesync no-change sync x{}", ctx.opts.repeat);
    let runs = repeat(ctx.opts.repeat, || ctx.sync(tree, &buckets.site, &[]))?;
    rows.push(rows::synced("no-change sync", &runs, n, Expected::counts(0, 0, n)));

    let (rebuilt, md5sum) = variants::rebuild(ctx, tree, &buckets.site)?;
    rows.extend(rebuilt);
    baselines.push(md5sum);

    let (mutated, changed, removed) = mutations(ctx, tree, &buckets.site)?;
    rows.extend(mutated);
    if ctx.opts.mirror {
        rows.extend(variants::mirror(ctx, tree, &format!("mirror-{n}"), n - removed)?);
    }
    if let Some(shards) = ctx.opts.shards {
        rows.extend(variants::shards(ctx, tree, &format!("shards-{n}"), shards, n - removed)?);
    }
    if let Some(retired) = ctx.opts.ledger {
        rows.extend(variants::ledger(ctx, tree, &format!("ledger-{n}"), retired, n - removed)?);
    }
    if ctx.opts.history {
        rows.extend(crate::history::history(ctx, tree, n - removed)?);
    }
    Ok(Synced { rows, changed, removed })
}

/// 1% of the files changed and synced, then another 1% removed and synced: the two rows, and how
/// many files each touched.
fn mutations(ctx: &Ctx, tree: &Tree, bucket: &str) -> Result<(Vec<Row>, u64, u64)> {
    let n = tree.manifest.files;
    let changed = tree.change_one_percent()?;
    eprintln!("bench: {n} files: sitesync after {changed} files changed");
    let after_change = ctx.sync(tree, bucket, &[])?;
    let after_change = rows::synced("1% changed", &[after_change], n, Expected::counts(changed, 0, n - changed));

    let removed = tree.remove_one_percent()?;
    eprintln!("bench: {n} files: sitesync after {removed} files removed");
    let after_remove = ctx.sync(tree, bucket, &[])?;
    let after_remove = rows::synced("1% removed", &[after_remove], n, Expected::counts(0, removed, n - removed));
    Ok((vec![after_change, after_remove], changed, removed))
}
