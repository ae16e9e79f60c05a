//! The deploy history's cost, measured on the same server and tree: a deploy changing 1% of the
//! files synced into a bucket with the history off (`--keep-deploys 0`) and one keeping it (the
//! default): the difference is what keeping costs, a HEAD and a CopyObject per file changed
//! (`kept` in the report) plus the versioning check and the record. Then that deploy rolled back
//! by server-side copies, beside what a rollback saves you from: syncing the previous build again
//! (and the first sync of the whole tree, in the table above).

use anyhow::{Result, bail};

use crate::check::{Expected, report_of};
use crate::harness::Ctx;
use crate::measure::Outcome;
use crate::results::Row;
use crate::rows;
use crate::tree::Tree;

/// The rows of the history scenario, on the tree as the mutations left it (`n` files present).
pub fn history(ctx: &Ctx, tree: &Tree, n: u64) -> Result<Vec<Row>> {
    let (off, keep) = (format!("history-off-{n}"), format!("history-keep-{n}"));
    for bucket in [&off, &keep] {
        ctx.create_bucket(bucket)?;
    }
    eprintln!("bench: {n} files: the deploy history, first syncs");
    ctx.sync(tree, &off, &["--keep-deploys", "0"])?;
    ctx.sync(tree, &keep, &[])?;
    let changed = tree.change_one_percent()?;
    let same = Expected::counts(changed, 0, n - changed);
    eprintln!("bench: {n} files: {changed} changed, history off then kept");
    let without = ctx.sync(tree, &off, &["--keep-deploys", "0"])?;
    let without = rows::synced("1% changed, history off", &[without], n, same);
    let with = ctx.sync(tree, &keep, &[])?;
    let kept = kept(&with, changed)?;
    let mut with = rows::synced("1% changed, keeping the history", &[with], n, same);
    with.detail.push_str(&format!(", {kept} kept: {} more requests", 2 * kept + 2));

    eprintln!("bench: {n} files: rollback of that deploy");
    let rollback = ctx.rollback(&keep, n)?;
    let rollback = rows::synced("rollback of the 1% deploy", &[rollback], n, Expected::counts(0, 0, 0).copied(changed));
    tree.revert_change()?;
    eprintln!("bench: {n} files: the previous build synced again instead");
    let resync = ctx.sync(tree, &off, &["--keep-deploys", "0"])?;
    // The tree is back as the mutations left it, for its restore.
    let resync = rows::synced("the previous build synced again", &[resync], n, same);
    Ok(vec![without, with, rollback, resync])
}

/// The objects a sync kept, which must be the files it changed.
fn kept(run: &Outcome, changed: u64) -> Result<u64> {
    let json: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap_or_default();
    let kept = json["kept"].as_u64().unwrap_or(0);
    if report_of(run).is_some() && kept != changed {
        bail!("the sync keeping the history kept {kept} objects, not the {changed} it changed");
    }
    Ok(kept)
}
