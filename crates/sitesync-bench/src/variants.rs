//! Variants of the sync measured besides the four, on the same server and tree: a rebuild (every
//! mtime new, every byte the same) beside GNU md5sum of the tree, a chain that publishes the tree
//! twice (what the copies cost in memory), the tree split into N shards synced at once (what the
//! split costs over one run doing the same work), and a no-change sync over a ledger of retired
//! keys (what reading it costs).

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::check::Expected;
use crate::floors;
use crate::harness::{Ctx, limit, repeat};
use crate::measure::{self, Outcome, Usage};
use crate::results::Row;
use crate::rows;
use crate::tree::Tree;

/// A rebuild, as a site generator makes one: every file's mtime new, every byte the same. The
/// sync after it must upload nothing, reading each file once (the local state saw other mtimes);
/// the sync after that must read nothing. Beside them, GNU md5sum of every file on every core:
/// the floor of reading and hashing the tree. Returns the two syncs and the md5sum row.
pub fn rebuild(ctx: &Ctx, tree: &Tree, bucket: &str) -> Result<(Vec<Row>, Row)> {
    let n = tree.manifest.files;
    tree.rebuild()?;
    eprintln!("bench: {n} files: sitesync after a rebuild (new mtimes, same bytes)");
    let run = ctx.sync(tree, bucket, &[])?;
    let rebuilt = rows::synced("rebuild sync", &[run], n, Expected::counts(0, 0, n).hashed(n));
    eprintln!("bench: {n} files: sitesync no-change sync after the rebuild");
    let runs = repeat(ctx.opts.repeat, || ctx.sync(tree, bucket, &[]))?;
    let idle = rows::synced("no-change after rebuild", &runs, n, Expected::counts(0, 0, n).hashed(0));
    Ok((vec![rebuilt, idle], floors::md5sum(ctx, tree)?))
}

/// A chain that publishes the whole tree again under `mirror/`: one upload and one server-side
/// copy per file, first and then unchanged. What it measures is memory: every copy waits for the
/// copy phase, and the diff holds the keys the chain creates ahead of the listing.
pub fn mirror(ctx: &Ctx, tree: &Tree, bucket: &str, n: u64) -> Result<Vec<Row>> {
    ctx.create_bucket(bucket)?;
    let config = ctx.opts.server_dir.join("mirror.toml");
    std::fs::write(
        &config,
        "[[transform]]\ntype = \"prefix_duplicate\"\nrules = [{ from = \"\", to = \"mirror/\" }]\n",
    )?;
    let config = config.to_str().context("config path is not UTF-8")?.to_owned();
    eprintln!("bench: {n} files: sitesync first sync, mirrored");
    let first = ctx.sync(tree, bucket, &["--config", &config])?;
    let first = rows::synced("mirror chain, first sync", &[first], n, Expected::counts(n, 0, 0).copied(n));
    eprintln!("bench: {n} files: sitesync no-change sync, mirrored");
    let idle = ctx.sync(tree, bucket, &["--config", &config])?;
    let idle = rows::synced("mirror chain, no-change sync", &[idle], n, Expected::counts(0, 0, 2 * n));
    Ok(vec![first, idle])
}

/// The tree synced by `count` runs at once, `--shard 1/N` to `N/N`, into an empty bucket and then
/// unchanged. Each run is measured on its own; the row's wall time is from the first start to the
/// last end, its CPU and peak RSS the sums of the runs' (the machine held them all at once), and
/// its report what `sitesync report merge` makes of theirs: the whole must have done exactly what
/// one run does.
pub fn shards(ctx: &Ctx, tree: &Tree, bucket: &str, count: u32, n: u64) -> Result<Vec<Row>> {
    ctx.create_bucket(bucket)?;
    let mut rows = Vec::new();
    for (name, uploaded) in [("first sync", n), ("no-change sync", 0)] {
        eprintln!("bench: {n} files: {count} shards at once, {name}");
        let together = at_once(ctx, tree, bucket, count)?;
        let name = format!("{count} shards at once, {name}");
        rows.push(rows::synced(&name, &[together], n, Expected::counts(uploaded, 0, n - uploaded)));
    }
    Ok(rows)
}

/// Runs the `count` shards at once, and adds them up into one outcome.
fn at_once(ctx: &Ctx, tree: &Tree, bucket: &str, count: u32) -> Result<Outcome> {
    let commands: Vec<Command> =
        (1..=count).map(|k| ctx.sync_cmd(tree, bucket, &["--shard", &format!("{k}/{count}")])).collect();
    let server_before = measure::process_cpu_seconds(ctx.server.pid())?;
    let started = Instant::now();
    let runs: Vec<Outcome> = std::thread::scope(|scope| {
        let running: Vec<_> = commands
            .iter()
            .map(|cmd| scope.spawn(move || measure::run(cmd, None, limit(tree.manifest.files))))
            .collect();
        running.into_iter().map(|r| r.join().expect("a shard's measuring thread panicked")).collect::<Vec<_>>()
    })
    .into_iter()
    .collect::<Result<_>>()?;
    let wall_s = started.elapsed().as_secs_f64();
    let server_after = measure::process_cpu_seconds(ctx.server.pid())?;
    let usage = Usage {
        wall_s,
        user_s: runs.iter().map(|r| r.usage.user_s).sum(),
        sys_s: runs.iter().map(|r| r.usage.sys_s).sum(),
        max_rss_mib: runs.iter().map(|r| r.usage.max_rss_mib).sum(),
        server_cpu_s: Some(server_after - server_before),
    };
    let merged = merge(ctx, &runs)?;
    let exit_code = runs.iter().map(|r| r.exit_code).max().unwrap_or(0).max(merged.exit_code);
    Ok(Outcome {
        usage,
        exit_code,
        timed_out: runs.iter().any(|r| r.timed_out),
        stdout: merged.stdout,
        stderr: runs.iter().map(|r| r.stderr.as_str()).collect::<Vec<_>>().join("\n"),
    })
}

struct Merged {
    stdout: String,
    exit_code: i32,
}

/// The shards' reports added up by `sitesync report merge`, as a user of the recipes would.
fn merge(ctx: &Ctx, runs: &[Outcome]) -> Result<Merged> {
    let dir = ctx.opts.server_dir.join("shard-reports");
    std::fs::create_dir_all(&dir)?;
    let mut files = Vec::new();
    for (k, run) in runs.iter().enumerate() {
        let file = dir.join(format!("{}.json", k + 1));
        std::fs::write(&file, &run.stdout)?;
        files.push(file);
    }
    let out = Command::new(&ctx.opts.sitesync).args(["report", "merge"]).args(&files).output()?;
    let stdout = String::from_utf8(out.stdout).context("the merged report is not UTF-8")?;
    if stdout.trim().is_empty() {
        bail!("sitesync report merge printed nothing: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(Merged { stdout, exit_code: out.status.code().unwrap_or(1) })
}

/// The grace of the ledger variant: long past the run, so every key it retires stays retired.
const GRACE: &str = "48h";

/// A no-change sync over a ledger of `retired` retired keys (`delete_grace`), against the same
/// bucket synced with `--no-delete`, which reads no ledger: both list the same objects (the tree's
/// `n`, and the retired ones, which are kept), so the difference is the ledger's cost (listing and
/// reading it, and asking it about every object whose file is gone). The bucket gets the tree, then
/// `retired` objects no file has, which one sync retires; the rows are the no-change syncs after.
pub fn ledger(ctx: &Ctx, tree: &Tree, bucket: &str, retired: u64, n: u64) -> Result<Vec<Row>> {
    ctx.create_bucket(bucket)?;
    let grace = ["--delete-grace", GRACE];
    eprintln!("bench: {n} files: sitesync first sync, then {retired} objects without a file, retired");
    let first = ctx.sync(tree, bucket, &grace)?;
    let first = rows::synced("ledger: first sync", &[first], n, Expected::counts(n, 0, 0));
    put_gone(ctx, bucket, retired)?;
    let retiring = ctx.sync(tree, bucket, &grace)?;
    let retiring = rows::synced("ledger: retiring sync", &[retiring], n, Expected::counts(0, 0, n).retired(retired));
    let mut rows = vec![first, retiring];
    for (name, extra) in [(LEDGER_ROW, grace.as_slice()), (BESIDE_ROW, ["--no-delete"].as_slice())] {
        eprintln!("bench: {n} files: sitesync {name} ({retired} retired keys) x{}", ctx.opts.repeat);
        let runs = repeat(ctx.opts.repeat, || ctx.sync(tree, bucket, extra))?;
        let name = format!("{name} ({retired} retired keys)");
        rows.push(rows::synced(&name, &runs, n, Expected::counts(0, 0, n).retired(0)));
    }
    Ok(rows)
}

/// The names the ratio finds the two rows by.
pub const LEDGER_ROW: &str = "no-change sync over a ledger";
pub const BESIDE_ROW: &str = "no-change sync, --no-delete, same bucket";

/// `count` small objects under `site/gone/` of `bucket`, put directly: objects whose files are
/// gone, as a deploy that renamed its assets leaves them.
fn put_gone(ctx: &Ctx, bucket: &str, count: u64) -> Result<()> {
    let s = ctx.server;
    let client = crate::baseline::client_with(&s.info.endpoint, &s.access_key, &s.secret_key, &s.region);
    ctx.runtime.block_on(async {
        let mut puts = tokio::task::JoinSet::new();
        for i in 0..count {
            while puts.len() >= ctx.opts.workers {
                puts.join_next().await.context("a put")???;
            }
            let (client, bucket) = (client.clone(), bucket.to_owned());
            let key = format!("site/gone/{:03}/chunk.{i:08x}.js", i % 100);
            puts.spawn(async move {
                let body = aws_sdk_s3::primitives::ByteStream::from_static(b"export default 1;\n");
                client.put_object().bucket(&bucket).key(&key).body(body).send().await.map(|_| ()).context(key)
            });
        }
        while let Some(put) = puts.join_next().await {
            put??;
        }
        Ok(())
    })
}
