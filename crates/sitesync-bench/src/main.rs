//! `sitesync-bench`: how fast is sitesync next to the physical limits of this machine?
//!
//! It starts a real S3 server on 127.0.0.1 (Garage, else the embedded store), generates or reuses
//! synthetic site trees, runs the release `sitesync` binary as a child process for a first sync, a
//! no-change sync, a sync after 1% of the files changed and one after 1% were removed (and, when
//! asked, a mirrored chain, N shards at once, a ledger of retired keys and the deploy history), and
//! measures on the same server and tree the baselines those figures are divided by: a bare
//! walk+stat, a bare ListObjectsV2 loop and a bare PutObject loop at the same concurrency. Results go to stdout as
//! Markdown and to a JSON file. The hidden subcommands are the roles of its child processes.
//!
//! ```text
//! cargo build --release -p sitesync -p sitesync-bench
//! target/release/sitesync-bench --files 10k,100k
//! ```

mod baseline;
mod check;
mod floors;
mod harness;
mod history;
mod machine;
mod measure;
mod paths;
mod ratios;
mod realsite;
mod results;
mod rows;
mod run;
mod server;
mod tree;
mod variants;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "sitesync-bench", version, args_conflicts_with_subcommands = true)]
#[command(about = "Benchmark sitesync against a real S3 server and the physical baselines of this machine")]
struct Cli {
    #[command(subcommand)]
    role: Option<Role>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Tree sizes in files, repeatable or comma-separated (10000, 10k, 1M) [default: 10k].
    #[arg(long = "files", value_name = "N", value_delimiter = ',', value_parser = parse_count)]
    files: Vec<u64>,
    /// Concurrent requests: sitesync's --workers, and the PutObject loop's.
    #[arg(long, value_name = "N", default_value_t = 64)]
    workers: usize,
    /// Leave the server running at the end (its pid, endpoint and folder are printed).
    #[arg(long)]
    keep_server: bool,
    /// Which S3 server to run.
    #[arg(long, value_enum, default_value = "auto")]
    server: server::Choice,
    /// The garage binary [default: garage on PATH, else $GARAGE_BIN].
    #[arg(long, value_name = "FILE")]
    garage_bin: Option<PathBuf>,
    /// Where generated trees are cached [default: <target>/bench-trees].
    #[arg(long, value_name = "DIR")]
    trees: Option<PathBuf>,
    /// Where the JSON results are written [default: <target>/bench-results].
    #[arg(long, value_name = "DIR")]
    results: Option<PathBuf>,
    /// The sitesync binary to measure [default: `sitesync` next to this binary].
    #[arg(long, value_name = "FILE")]
    sitesync: Option<PathBuf>,
    /// Runs of each cheap figure (walks, listings, no-change sync); the median is reported.
    #[arg(long, value_name = "N", default_value_t = 3)]
    repeat: usize,
    /// Seed of the synthetic trees.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also sync each tree with a chain that publishes it twice (`prefix_duplicate` from the root
    /// to `mirror/`), first and unchanged, to measure the copies' memory.
    #[arg(long)]
    mirror: bool,
    /// A real site (a folder) to measure besides the synthetic trees (or instead, without --files):
    /// a copy is synced first, unchanged, after a rebuild and unchanged again, with --compare auto
    /// and with --compare mtime. E.g. the toolchain's docs: `--site "$(dirname "$(rustup doc --path)")"`.
    #[arg(long, value_name = "DIR")]
    site: Option<PathBuf>,
    /// Also sync each tree with N runs at once (`--shard 1/N` .. `N/N`), first and unchanged,
    /// into a bucket of their own, to measure what the split costs over one run.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    shards: Option<u32>,
    /// Also measure a no-change sync over a ledger of N retired keys (`delete_grace`; e.g. 10k),
    /// against the same bucket synced with --no-delete, which reads no ledger.
    #[arg(long, value_name = "N", value_parser = parse_count)]
    ledger: Option<u64>,
    /// Also measure the deploy history: a deploy changing 1% of the files with the history off
    /// and on (what keeping costs), a rollback of it, and a sync of the build it rolls back to.
    #[arg(long)]
    history: bool,
    /// The PutObject loop sends every request through the SDK's client, as sitesync did before
    /// its direct PutObject of small bodies: the loop to compare an older binary with.
    #[arg(long)]
    sdk_loop: bool,
    /// Extra environment for sitesync, repeatable (e.g. SITESYNC_LIST_PARALLEL=1) to compare settings.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_env)]
    sitesync_env: Vec<(String, String)>,
}

/// The roles of the child processes, each measured on its own.
#[derive(Debug, Subcommand)]
enum Role {
    #[command(hide = true)]
    ExecMeasured {
        report: PathBuf,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<std::ffi::OsString>,
    },
    #[command(hide = true)]
    ServeEmbedded { dir: PathBuf },
    #[command(hide = true)]
    Walk {
        root: PathBuf,
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    #[command(hide = true)]
    Md5sum {
        root: PathBuf,
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    #[command(hide = true)]
    List {
        #[command(flatten)]
        at: baseline::Endpoint,
        #[arg(long)]
        split: bool,
        #[arg(long, default_value_t = 16)]
        parallel: usize,
    },
    #[command(hide = true)]
    Put {
        #[command(flatten)]
        at: baseline::Endpoint,
        #[arg(long)]
        root: PathBuf,
        #[arg(long, default_value_t = 64)]
        workers: usize,
        /// Every PutObject through the SDK's client, small bodies included: the SDK's own floor.
        #[arg(long)]
        sdk: bool,
    },
}

fn parse_count(s: &str) -> Result<u64, String> {
    tree::parse_count(s).map_err(|e| e.to_string())
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))?;
    Ok((k.to_owned(), v.to_owned()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.role {
        Some(role) => play(role),
        None => options(cli.run).and_then(|opts| run::run(&opts)).map(|_| ExitCode::SUCCESS),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sitesync-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The target directory this binary was built into (`target/release/..` → `target`).
fn target_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().and_then(Path::parent).context("locating the target directory")?;
    Ok(dir.to_owned())
}

fn options(args: RunArgs) -> Result<harness::Options> {
    let target = target_dir()?;
    let exe = std::env::current_exe()?;
    let sitesync = args.sitesync.unwrap_or_else(|| exe.with_file_name("sitesync"));
    // It runs from the tree's folder, so a relative path would not resolve.
    let sitesync = std::fs::canonicalize(&sitesync)
        .with_context(|| format!("{}: build it first: cargo build --release -p sitesync", paths::shown(&sitesync)))?;
    let mut files = match (args.files.is_empty(), &args.site) {
        (false, _) => args.files,
        (true, Some(_)) => Vec::new(),
        (true, None) => vec![10_000],
    };
    files.dedup();
    Ok(harness::Options {
        files,
        workers: args.workers.clamp(1, 4096),
        keep_server: args.keep_server,
        server: args.server,
        garage_bin: args.garage_bin,
        trees: args.trees.unwrap_or_else(|| target.join("bench-trees")),
        results: args.results.unwrap_or_else(|| target.join("bench-results")),
        server_dir: target.join("bench-server"),
        sitesync,
        repeat: args.repeat.max(1),
        seed: args.seed,
        sitesync_env: args.sitesync_env,
        mirror: args.mirror,
        shards: args.shards,
        ledger: args.ledger,
        site: args.site,
        history: args.history,
        sdk_loop: args.sdk_loop,
    })
}

/// One child process's role; the measured ones print what they counted as one JSON line.
fn play(role: Role) -> Result<ExitCode> {
    let counted = match role {
        Role::ExecMeasured { report, command } => {
            let code = measure::exec_measured(&report, &command)?;
            return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
        }
        Role::ServeEmbedded { dir } => return server::serve_embedded(&dir).map(|()| ExitCode::SUCCESS),
        Role::Walk { root, threads } => baseline::walk(&root, threads)?,
        Role::Md5sum { root, threads } => baseline::md5sum(&root, threads)?,
        Role::List { at, split, parallel } => runtime()?.block_on(baseline::list(&at, split, parallel))?,
        Role::Put { at, root, workers, sdk } => runtime()?.block_on(baseline::put(&at, &root, workers, sdk))?,
    };
    println!("{}", serde_json::to_string(&counted)?);
    Ok(ExitCode::SUCCESS)
}

/// The same runtime sitesync uses: multi-threaded, one worker per core.
fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}
