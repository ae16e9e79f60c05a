//! Throughput of the transform chain: a filter, a headers transform and the clean-urls plugin
//! over 1,000,000 entries, in the pipeline's batches of 1,000. Not a timed test: it prints the
//! wall time, the CPU time of the thread running the chain (which other processes on the machine
//! do not inflate) and entries per CPU second, for docs/transforms.md ("Cost").
//!
//! ```text
//! cargo build --release -p clean-urls
//! cargo run --release --example chain_bench [ENTRIES] [PLUGIN]
//! ```
//!
//! PLUGIN defaults to the clean-urls library next to this example's directory
//! (`target/release/libclean_urls.so`). The plugin is called once per batch; the last table
//! shows what that buys by running the plugin alone with smaller batches.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;
use sitesync::model::{BATCH, LocalFile, LocalItem, Time};
use sitesync::transform::{Chain, ChainSpec};

fn main() {
    let mut args = std::env::args().skip(1);
    let entries: usize = args.next().map(|n| n.parse().expect("ENTRIES: a number")).unwrap_or(1_000_000);
    let plugin = args.next().map(PathBuf::from).unwrap_or_else(default_plugin);
    assert!(plugin.is_file(), "{} not found: cargo build --release -p clean-urls", plugin.display());
    let plugin = plugin.display().to_string();

    let filter = json!({"type": "filter", "exclude": ["*.map", "drafts/**"]});
    let headers = json!({"type": "headers", "rules": [
        {"glob": "**", "cache_control": "max-age=300"},
        {"glob": "assets/**", "cache_control": "public, max-age=31536000, immutable"},
        {"glob": "*.html", "metadata": {"team": "web"}},
    ]});
    let clean = json!({"plugin": plugin});

    println!(
        "{entries} entries in batches of {BATCH}, {}",
        if cfg!(debug_assertions) { "DEBUG build" } else { "release build" }
    );
    println!("{:<36} {:>10} {:>9} {:>9} {:>14}", "chain", "out", "wall s", "cpu s", "entries/cpu-s");
    run("filter", std::slice::from_ref(&filter), entries, BATCH);
    run("headers", std::slice::from_ref(&headers), entries, BATCH);
    run("plugin (clean-urls)", std::slice::from_ref(&clean), entries, BATCH);
    run("filter + headers + plugin", &[filter, headers, clean.clone()], entries, BATCH);

    println!("\nthe plugin alone, by batch size (the call and the copy-out cost per batch):");
    let small = entries.min(200_000);
    for batch in [1, 10, 100, BATCH] {
        run(&format!("plugin, batches of {batch}"), std::slice::from_ref(&clean), small, batch);
    }
}

/// Builds the chain, feeds it `entries` entries in batches of `batch`, prints the throughput.
fn run(name: &str, tables: &[serde_json::Value], entries: usize, batch: usize) {
    let spec = ChainSpec::build(tables, Path::new("/")).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut chain: Chain = spec.start().unwrap();
    let batches: Vec<Vec<LocalItem>> =
        (0..entries).collect::<Vec<_>>().chunks(batch).map(|range| range.iter().map(|&i| entry(i)).collect()).collect();
    let (started, cpu_started) = (Instant::now(), thread_cpu());
    let mut out = 0usize;
    for batch in batches {
        out += chain.apply(batch).unwrap().len();
    }
    let (wall, cpu) = (started.elapsed().as_secs_f64(), thread_cpu() - cpu_started);
    println!("{name:<36} {out:>10} {wall:>9.3} {cpu:>9.3} {:>14.0}", entries as f64 / cpu);
}

/// A site-like mix: pages, assets, source maps, drafts, in folders of 100.
fn entry(i: usize) -> LocalItem {
    let dir = i / 100;
    let key = match i % 10 {
        0..=3 => format!("section{dir}/page{i}.html"),
        4 => format!("section{dir}/index.html"),
        5..=6 => format!("assets/{dir}/app{i}.js"),
        7 => format!("assets/{dir}/app{i}.js.map"),
        8 => format!("assets/{dir}/img{i}.png"),
        _ => format!("drafts/{dir}/post{i}.html"),
    };
    let path = PathBuf::from(format!("/srv/site/{key}"));
    LocalItem::File(LocalFile::new(key, path, 1000 + i as u64 % 5000, Time(1_700_000_000_000_000_000)))
}

/// CPU seconds this thread has used: unlike wall time, not inflated by other processes.
fn thread_cpu() -> f64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `t` is a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

fn default_plugin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(Path::parent).unwrap();
    profile.join(format!("{}clean_urls{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX))
}
