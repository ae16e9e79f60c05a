//! What every scenario of a run shares: the run's options, its server and runtime ([`Ctx`]), and
//! the two kinds of command it measures, a sitesync sync and a baseline role of this binary, each
//! in a clean environment and under a time limit.
//!
//! The scenarios (`run`, `variants`, `realsite`) all build on this module and on `rows`, and
//! never on each other's helpers, so none of them has to know where another one lives.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Result, bail};

use crate::baseline;
use crate::measure::{self, Outcome};
use crate::server::{self, Server};
use crate::tree::Tree;

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
    /// Also measure a no-change sync over a ledger of this many retired keys.
    pub ledger: Option<u64>,
    /// A real site to measure, from a copy.
    pub site: Option<PathBuf>,
    /// Also measure keeping a deploy history, and a rollback.
    pub history: bool,
    /// The PutObject loop through the SDK's client only (`put --sdk`).
    pub sdk_loop: bool,
}

/// A run in progress: its options, the server every scenario talks to, and a runtime for the
/// few requests the bench sends itself (creating buckets).
pub struct Ctx<'a> {
    pub opts: &'a Options,
    pub server: &'a Server,
    pub cores: usize,
    pub runtime: tokio::runtime::Runtime,
}

impl Ctx<'_> {
    /// Creates `bucket` on the server, accepting one that already exists.
    pub fn create_bucket(&self, bucket: &str) -> Result<()> {
        let s = self.server;
        let admin = baseline::client_with(&s.info.endpoint, &s.access_key, &s.secret_key, &s.region);
        self.runtime.block_on(baseline::create_bucket(&admin, bucket))
    }

    /// One measured `sitesync sync` of `tree` into `bucket`, with `extra` arguments.
    pub fn sync(&self, tree: &Tree, bucket: &str, extra: &[&str]) -> Result<Outcome> {
        let cmd = self.sync_cmd(tree, bucket, extra);
        measure::run(&cmd, Some(self.server.pid()), limit(tree.manifest.files))
    }

    /// The `sitesync sync --json` command of every measured sync, into `bucket`.
    pub fn sync_cmd(&self, tree: &Tree, bucket: &str, extra: &[&str]) -> Command {
        let (opts, server) = (self.opts, self.server);
        let mut cmd = Command::new(&opts.sitesync);
        cmd.arg("sync")
            .arg(&tree.site)
            .arg(format!("s3://{bucket}/site"))
            .args(["--endpoint-url", &server.info.endpoint, "--path-style", "--region", &server.region])
            .args(["--workers", &opts.workers.to_string(), "--max-delete", "1000000000", "--json", "-q"])
            .args(extra)
            // No sync.toml is picked up from here.
            .current_dir(&tree.dir);
        self.clean_env(&mut cmd);
        cmd.envs(opts.sitesync_env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// One measured `sitesync rollback` of `bucket`'s prefix, to the deploy before the live one.
    pub fn rollback(&self, bucket: &str, files: u64) -> Result<Outcome> {
        let (opts, server) = (self.opts, self.server);
        let mut cmd = Command::new(&opts.sitesync);
        cmd.arg("rollback")
            .arg(format!("s3://{bucket}/site"))
            .args(["--endpoint-url", &server.info.endpoint, "--path-style", "--region", &server.region])
            .args(["--workers", &opts.workers.to_string(), "--max-delete", "1000000000", "--json", "-q"])
            .current_dir(&opts.server_dir);
        self.clean_env(&mut cmd);
        cmd.envs(opts.sitesync_env.iter().map(|(k, v)| (k, v)));
        measure::run(&cmd, Some(self.server.pid()), limit(files))
    }

    /// One measured baseline: this binary in the role `args[0]`, over a tree of `files` files.
    pub fn baseline(&self, args: &[String], files: u64) -> Result<Outcome> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args(args);
        self.clean_env(&mut cmd);
        let out = measure::run(&cmd, Some(self.server.pid()), limit(files))?;
        if out.exit_code != 0 {
            bail!("baseline {} failed (exit {}): {}", args[0], out.exit_code, out.stderr.trim());
        }
        Ok(out)
    }

    /// A clean AWS environment: only the server's credentials, no profile or config file, no
    /// instance metadata lookups, no `SITESYNC_*` settings.
    fn clean_env(&self, cmd: &mut Command) {
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("AWS_") || k.starts_with("SITESYNC_") {
                cmd.env_remove(&key);
            }
        }
        let nowhere = self.opts.server_dir.join("no-aws-config");
        // The local state of this run's syncs starts empty, in the server's folder.
        cmd.env("XDG_CACHE_HOME", self.opts.server_dir.join("cache"));
        cmd.env("AWS_ACCESS_KEY_ID", &self.server.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.server.secret_key)
            .env("AWS_REGION", &self.server.region)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", &nowhere)
            .env("AWS_SHARED_CREDENTIALS_FILE", &nowhere);
    }
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

/// How long any one process may run before it is killed and reported: generous, but a hung sync
/// must not hang the benchmark.
pub fn limit(files: u64) -> Duration {
    Duration::from_secs(60) + Duration::from_millis(2 * files)
}
