//! The baseline rows of a tree: this binary's baseline roles (`baseline.rs`) run as measured
//! child processes on the run's server and tree, and turned into rows. Each is the least work any
//! sync of the same tree and bucket must do: a walk+stat, a PutObject loop, a ListObjectsV2 of the
//! bucket, md5sum of every file.

use anyhow::{Context, Result};

use crate::harness::{Ctx, repeat};
use crate::results::Row;
use crate::rows;
use crate::tree::Tree;

/// walk+stat of the tree on 1 thread and on one per core (2 at least), the median of the repeats.
pub fn walks(ctx: &Ctx, tree: &Tree) -> Result<Vec<Row>> {
    let n = tree.manifest.files;
    let site = site_arg(tree)?;
    let mut rows = Vec::new();
    for threads in [1, ctx.cores.max(2)] {
        let label =
            if threads == 1 { "walk+stat, 1 thread".to_owned() } else { format!("walk+stat, {threads} threads") };
        eprintln!("bench: {n} files: {label}");
        let args = ["walk", site.as_str(), "--threads", &threads.to_string()].map(str::to_owned);
        let runs = repeat(ctx.opts.repeat, || ctx.baseline(&args, n))?;
        rows.push(rows::counted(&label, &runs, n, "")?);
    }
    Ok(rows)
}

/// PutObject of every file of the tree into `bucket`, as many in flight as sitesync's workers.
pub fn put_loop(ctx: &Ctx, tree: &Tree, bucket: &str) -> Result<Row> {
    let n = tree.manifest.files;
    let workers = ctx.opts.workers.to_string();
    eprintln!("bench: {n} files: PutObject loop, {workers} in flight");
    let site = site_arg(tree)?;
    let args = [
        "put",
        "--endpoint",
        &ctx.server.info.endpoint,
        "--bucket",
        bucket,
        "--prefix",
        "site/",
        "--root",
        &site,
        "--workers",
        &workers,
    ]
    .map(str::to_owned);
    let mut args = args.to_vec();
    if ctx.opts.sdk_loop {
        args.push("--sdk".into());
    }
    let put = ctx.baseline(&args, n)?;
    let through = if ctx.opts.sdk_loop { ", through the SDK" } else { "" };
    rows::counted("PutObject loop", &[put], n, &format!("{workers} in flight{through}, separate bucket"))
}

/// ListObjectsV2 of the `n` keys sitesync put in `bucket`: one stream, then split by the
/// first-level prefixes with 16 in flight.
pub fn listings(ctx: &Ctx, bucket: &str, n: u64) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for split in [false, true] {
        let label = if split { "ListObjectsV2, split by prefix" } else { "ListObjectsV2, sequential" };
        eprintln!("bench: {n} files: {label}");
        let mut args = ["list", "--endpoint", &ctx.server.info.endpoint, "--bucket", bucket, "--prefix", "site/"]
            .map(str::to_owned)
            .to_vec();
        if split {
            args.extend(["--split".to_owned(), "--parallel".to_owned(), "16".to_owned()]);
        }
        let runs = repeat(ctx.opts.repeat, || ctx.baseline(&args, n))?;
        let detail = if split { "first-level prefixes, 16 in flight" } else { "one stream" };
        rows.push(rows::counted(label, &runs, n, detail)?);
    }
    Ok(rows)
}

/// GNU md5sum of every file of the tree, one process per core (2 at least): the floor of reading
/// and hashing it.
pub fn md5sum(ctx: &Ctx, tree: &Tree) -> Result<Row> {
    let n = tree.manifest.files;
    let processes = ctx.cores.max(2);
    eprintln!("bench: {n} files: md5sum, {processes} processes");
    let site = site_arg(tree)?;
    let args = ["md5sum", site.as_str(), "--threads", &processes.to_string()].map(str::to_owned);
    let runs = repeat(ctx.opts.repeat, || ctx.baseline(&args, n))?;
    rows::counted(&format!("md5sum, {processes} processes"), &runs, n, "xargs -0 -P")
}

/// The tree's site folder as an argument of a baseline role.
fn site_arg(tree: &Tree) -> Result<String> {
    Ok(tree.site.to_str().context("tree path is not UTF-8")?.to_owned())
}
