//! A real site instead of a synthetic tree (`--site DIR`): a copy of it synced first, unchanged,
//! after a rebuild (every mtime new, every byte the same) and unchanged again, once with
//! `--compare auto` (the default) and once with `--compare mtime` (the rule alone), each into a
//! bucket of its own; beside them md5sum of the site on every core.

use std::path::Path;

use anyhow::Result;

use crate::check::Expected;
use crate::floors;
use crate::harness::{Ctx, repeat};
use crate::machine::loadavg;
use crate::paths;
use crate::results::{Ratio, Row, SizeResult};
use crate::rows;
use crate::tree::Tree;

/// The site at `original`, measured on a copy: its syncs in both modes, md5sum, and the ratios.
pub fn bench(ctx: &Ctx, original: &Path) -> Result<SizeResult> {
    let load_before = loadavg();
    eprintln!("bench: copying {} ...", paths::shown(original));
    let tree = Tree::copy_of(original, &ctx.opts.trees)?;
    let n = tree.manifest.files;
    eprintln!("bench: {n} files in {}", paths::shown(&tree.site));
    let mut rows = Vec::new();
    for mode in ["auto", "mtime"] {
        rows.extend(syncs(ctx, &tree, mode)?);
    }
    let md5sum = floors::md5sum(ctx, &tree)?;
    let ratios = ratios(&rows, &md5sum);
    let _ = std::fs::remove_dir_all(&tree.dir);
    Ok(SizeResult {
        files: n,
        tree: tree.manifest.clone(),
        tree_dir: original.to_owned(),
        tree_prepared: format!("a copy of {} (cp -a, {:.1} s)", paths::shown(original), tree.prepared_seconds),
        changed: 0,
        removed: 0,
        sitesync: rows,
        baselines: vec![md5sum],
        ratios,
        load_before,
        load_after: loadavg(),
    })
}

/// First, unchanged, rebuilt, unchanged again, with `--compare mode`.
fn syncs(ctx: &Ctx, tree: &Tree, mode: &str) -> Result<Vec<Row>> {
    let n = tree.manifest.files;
    let bucket = format!("real-{mode}");
    ctx.create_bucket(&bucket)?;
    let args = ["--compare", mode];
    let sync = || ctx.sync(tree, &bucket, &args);
    let mut rows = Vec::new();
    eprintln!("bench: real site, {mode}: first sync");
    rows.push(rows::synced(&format!("{mode}: first sync"), &[sync()?], n, Expected::counts(n, 0, 0)));
    eprintln!("bench: real site, {mode}: no-change sync");
    let runs = repeat(ctx.opts.repeat, sync)?;
    rows.push(rows::synced(&format!("{mode}: no-change sync"), &runs, n, Expected::counts(0, 0, n)));
    tree.rebuild()?;
    // The rule alone sends every file again; a content check sends none.
    let uploads = if mode == "mtime" { n } else { 0 };
    eprintln!("bench: real site, {mode}: after a rebuild");
    let rebuilt = Expected::counts(uploads, 0, n - uploads);
    rows.push(rows::synced(&format!("{mode}: rebuild sync"), &[sync()?], n, rebuilt));
    eprintln!("bench: real site, {mode}: no-change sync after the rebuild");
    let runs = repeat(ctx.opts.repeat, sync)?;
    let idle = Expected::counts(0, 0, n).hashed(0);
    rows.push(rows::synced(&format!("{mode}: no-change after rebuild"), &runs, n, idle));
    Ok(rows)
}

fn ratios(rows: &[Row], md5sum: &Row) -> Vec<Ratio> {
    let wall = |name: &str| rows.iter().find(|r| r.name == name).map_or(f64::NAN, |r| r.usage.wall_s);
    let (auto, mtime, idle) = (wall("auto: rebuild sync"), wall("mtime: rebuild sync"), wall("auto: no-change sync"));
    let floor = idle + md5sum.usage.wall_s;
    vec![
        Ratio::new(
            "rebuild sync, auto",
            auto,
            floor,
            "s",
            format!("no-change sync {idle:.3} + md5sum on every core {:.3}", md5sum.usage.wall_s),
            Some(("≤ 1.3×", auto <= 1.3 * floor)),
        ),
        Ratio::new("rebuild sync, auto vs mtime", auto, mtime, "s", "the mtime rule's rebuild sync".into(), None),
    ]
}
