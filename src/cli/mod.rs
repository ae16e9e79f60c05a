//! The command line: subcommands and flags, and the config overrides they carry.
//!
//! Every flag that feeds the configuration is optional, so an unset flag never hides a value from
//! `sync.toml` or the environment. This definition is the only description of the command line:
//! `--help`, the shell completions and the man page ([`generate`]) are all made from it, so none
//! of them can miss a flag.

pub mod generate;

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueHint};

use crate::config::{Overrides, RedirectsOverrides};

#[derive(Debug, Parser)]
#[command(
    name = "sitesync",
    version,
    about = "Publish a static site from a local directory to an S3 prefix",
    after_help = "`sitesync help COMMAND` shows the flags of a command; `sitesync man` prints them all."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make the S3 prefix match the local tree.
    Sync(SyncArgs),
    /// Print what `sync` would do, and change nothing.
    Plan(SyncArgs),
    /// Write a commented sync.toml for the site in DIR, with its built folder detected.
    Init(InitArgs),
    /// Print a completion script for SHELL on stdout.
    Completions(CompletionsArgs),
    /// Print the man page (roff) on stdout, every command and flag included.
    Man,
    /// Work with `--json` reports.
    #[command(subcommand)]
    Report(ReportCommand),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The site's directory, where sync.toml is written.
    #[arg(default_value = ".", value_hint = ValueHint::DirPath)]
    pub dir: PathBuf,
    /// Overwrite an existing sync.toml.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Add the `--json` reports of runs split across machines into the report of the whole run.
    Merge(MergeArgs),
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The reports, as `sitesync sync --json` printed them; a split run's, one of every shard.
    #[arg(required = true, value_name = "REPORT", value_hint = ValueHint::FilePath)]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The local directory to publish (or `source` in sync.toml).
    #[arg(value_hint = ValueHint::DirPath)]
    pub source: Option<PathBuf>,
    /// The destination, s3://BUCKET[/PREFIX] (or `destination` in sync.toml).
    pub destination: Option<String>,
    /// Configuration file [default: ./sync.toml if it exists].
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub config: Option<PathBuf>,
    /// An S3-compatible endpoint (AWS_ENDPOINT_URL is honoured too).
    #[arg(long, value_name = "URL", value_hint = ValueHint::Url)]
    pub endpoint_url: Option<String>,
    /// Use path-style addressing (http://host/bucket/key).
    #[arg(long)]
    pub path_style: bool,
    /// The region of the bucket [default: from the AWS chain, else us-east-1].
    #[arg(long)]
    pub region: Option<String>,
    /// A profile of the shared AWS config files.
    #[arg(long)]
    pub profile: Option<String>,
    /// Serve an embedded S3-compatible store from DIR (no AWS account needed) and sync to it.
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub local_store: Option<PathBuf>,
    /// Concurrent S3 operations.
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Read the objects under the prefix from this S3 Inventory report (s3://BUCKET/.../manifest.json)
    /// instead of listing them.
    #[arg(long, value_name = "URL")]
    pub remote_inventory: Option<String>,
    /// Never delete objects, even when their file is gone.
    #[arg(long)]
    pub no_delete: bool,
    /// Refuse to delete more than N objects.
    #[arg(long, value_name = "N")]
    pub max_delete: Option<u64>,
    /// Delete even past the safety limits, and sync an empty source.
    #[arg(long)]
    pub force_delete: bool,
    /// Margin in seconds added to the measured clock offset.
    #[arg(long, value_name = "SECONDS")]
    pub clock_fudge: Option<f64>,
    /// Encoding of file names on disk (utf-8, latin-1, windows-1252, ...).
    #[arg(long)]
    pub encoding: Option<String>,
    /// How "changed" is decided: auto (metadata, then the bytes where it cannot tell), mtime
    /// (size and mtime only) or checksum (the bytes of every file, every run).
    #[arg(long, value_name = "MODE")]
    pub compare: Option<String>,
    /// Sync only this part of the keys, K of N (1-based), for a run split across machines; auto/N
    /// takes K from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job, 0-based).
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// Where the local state lives [default: $XDG_CACHE_HOME/sitesync, else ~/.cache/sitesync].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Keep no local state (and read none).
    #[arg(long)]
    pub no_state: bool,
    /// Take the bucket's contents from the local state instead of listing it (for buckets only
    /// sitesync writes).
    #[arg(long)]
    pub trust_state: bool,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// When another run holds the target's lock, wait for it instead of failing.
    #[arg(long)]
    pub wait_lock: bool,
    /// After the sync, invalidate the changed paths in this CloudFront distribution.
    #[arg(long, value_name = "ID")]
    pub cloudfront_distribution_id: Option<String>,
    /// Invalidate added keys too, not only changed and deleted ones.
    #[arg(long)]
    pub invalidate_added: bool,
    /// Invalidate a folder with more than N paths as /folder/*.
    #[arg(long, value_name = "N")]
    pub invalidate_max_paths: Option<usize>,
    /// Wait for the CloudFront invalidation to complete before exiting.
    #[arg(long)]
    pub wait: bool,
    /// Refuse the run, instead of warning, when _headers sets a header S3 cannot store.
    #[arg(long)]
    pub strict: bool,
    /// Print a machine-readable report on stdout.
    #[arg(long)]
    pub json: bool,
    /// Show progress: a bar on a terminal (the default there, unless -q), a line every 10 s
    /// otherwise.
    #[arg(long, overrides_with = "no_progress")]
    pub progress: bool,
    /// Show no progress, even on a terminal.
    #[arg(long, overrides_with = "progress")]
    pub no_progress: bool,
    /// More output (-v: each action, the clock offset; -vv: S3 requests).
    #[arg(short, long, action = ArgAction::Count)]
    pub verbose: u8,
    /// Less output (-q: warnings and errors only).
    #[arg(short, long, action = ArgAction::Count, conflicts_with = "verbose")]
    pub quiet: u8,
}

impl SyncArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            source: self.source.clone(),
            destination: self.destination.clone(),
            endpoint_url: self.endpoint_url.clone(),
            path_style: self.path_style.then_some(true),
            region: self.region.clone(),
            profile: self.profile.clone(),
            local_store: self.local_store.clone(),
            workers: self.workers,
            remote_inventory: self.remote_inventory.clone(),
            delete: self.no_delete.then_some(false),
            max_delete: self.max_delete,
            clock_fudge: self.clock_fudge,
            encoding: self.encoding.clone(),
            compare: self.compare.clone(),
            state: self.no_state.then_some(false),
            state_dir: self.state_dir.clone(),
            trust_state: self.trust_state.then_some(true),
            shard: self.shard.clone(),
            cloudfront_distribution_id: self.cloudfront_distribution_id.clone(),
            invalidate_added: self.invalidate_added.then_some(true),
            invalidate_max_paths: self.invalidate_max_paths,
            redirects: self.strict.then_some(RedirectsOverrides { strict: Some(true) }),
        }
    }
}
