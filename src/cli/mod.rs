//! The command line: subcommands and flags, and the configuration layer they make.
//!
//! [`SyncArgs`] is itself the top layer of the configuration: serialized, it holds the keys of the
//! flags given, named like `sync.toml`'s, and nothing else, so an unset flag never hides a value
//! from `sync.toml` or the environment. A flag that is not a config key is `#[serde(skip)]` (one
//! left out would be refused as an unknown key). This definition is the only description of the
//! command line:
//! `--help`, the shell completions and the man page ([`generate`]) are all made from it, so none
//! of them can miss a flag.

pub mod generate;
pub mod init;

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueHint};
use serde::{Serialize, Serializer};

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
    /// List the deploys recorded under the target, newest first (`deploys purge` removes keys
    /// from them).
    Deploys(DeploysArgs),
    /// Make the target what it was right after an earlier deploy, from what the deploys kept.
    Rollback(RollbackArgs),
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

/// The flags of `sync` and `plan`. Each config key's field has the key's name; an `Option` is
/// skipped when `None`, a switch when not given.
#[derive(Debug, Args, Serialize)]
pub struct SyncArgs {
    /// The local directory to publish (or `source` in sync.toml).
    #[arg(value_hint = ValueHint::DirPath)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<PathBuf>,
    /// The destination, s3://BUCKET[/PREFIX] (or `destination` in sync.toml).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    #[command(flatten)]
    #[serde(flatten)]
    pub connection: ConnectionArgs,
    /// Concurrent S3 operations.
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// Read the objects under the prefix from this S3 Inventory report (s3://BUCKET/.../manifest.json)
    /// instead of listing them.
    #[arg(long, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_inventory: Option<String>,
    /// Never delete objects, even when their file is gone.
    #[arg(long)]
    #[serde(rename = "delete", skip_serializing_if = "unset", serialize_with = "turned_off")]
    pub no_delete: bool,
    /// Refuse to delete more than N objects.
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_delete: Option<u64>,
    /// Keep an object whose file is gone this long before deleting it (48h; units s, m, h, d; 0:
    /// delete at once), so pages still open keep working.
    #[arg(long, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_grace: Option<String>,
    /// Delete even past the safety limits, and sync an empty source.
    #[arg(long)]
    #[serde(skip)]
    pub force_delete: bool,
    /// Margin in seconds added to the measured clock offset.
    #[arg(long, value_name = "SECONDS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock_fudge: Option<f64>,
    /// Encoding of file names on disk (utf-8, latin-1, windows-1252, ...).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// How "changed" is decided: auto (metadata, then the bytes where it cannot tell), mtime
    /// (size and mtime only) or checksum (the bytes of every file, every run).
    #[arg(long, value_name = "MODE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compare: Option<String>,
    /// Sync only this part of the keys, K of N (1-based), for a run split across machines; auto/N
    /// takes K from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job, 0-based).
    #[arg(long, value_name = "K/N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// Where the local state lives [default: $XDG_CACHE_HOME/sitesync, else ~/.cache/sitesync].
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<PathBuf>,
    /// Keep no local state (and read none).
    #[arg(long)]
    #[serde(rename = "state", skip_serializing_if = "unset", serialize_with = "turned_off")]
    pub no_state: bool,
    /// Take the bucket's contents from the local state instead of listing it (for buckets only
    /// sitesync writes).
    #[arg(long)]
    #[serde(skip_serializing_if = "unset")]
    pub trust_state: bool,
    /// Print the plan and change nothing.
    #[arg(long)]
    #[serde(skip)]
    pub dry_run: bool,
    /// The lock in the bucket that keeps runs on different machines apart: auto (where the server
    /// honours conditional writes, else this machine's lock only, with a warning), required
    /// (refuse a server without them) or off.
    #[arg(long, value_name = "MODE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_lock: Option<String>,
    /// When another run holds the target's lock, wait for it instead of failing.
    #[arg(long)]
    #[serde(skip)]
    pub wait_lock: bool,
    /// After the sync, invalidate the changed paths in this CloudFront distribution.
    #[arg(long, value_name = "ID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloudfront_distribution_id: Option<String>,
    /// Invalidate added keys too, not only changed and deleted ones.
    #[arg(long)]
    #[serde(skip_serializing_if = "unset")]
    pub invalidate_added: bool,
    /// Invalidate a folder with more than N paths as /folder/*.
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalidate_max_paths: Option<usize>,
    /// Cache-Control by name: auto (a year and immutable for fingerprinted names like
    /// app.3f2a91c7.js, must-revalidate for the rest; headers rules override it) or off.
    #[arg(long, value_name = "MODE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_policy: Option<String>,
    /// Upload a key whose Cache-Control holds `immutable` even when its object holds other bytes
    /// (otherwise refused, exit 1).
    #[arg(long)]
    #[serde(skip)]
    pub allow_immutable_change: bool,
    /// Refuse the run, instead of warning, when _headers sets a header S3 cannot store.
    #[arg(long)]
    #[serde(rename = "redirects", skip_serializing_if = "unset", serialize_with = "strict_redirects")]
    pub strict: bool,
    /// Wait for the CloudFront invalidation to complete before exiting.
    #[arg(long)]
    #[serde(skip)]
    pub wait: bool,
    /// Deploys kept under PREFIX/.sitesync/ to roll back to (0: no history).
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_deploys: Option<u32>,
    /// What the deploy's record says of it [default: the CI's commit id, when there is one].
    #[arg(long, value_name = "TEXT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Print a machine-readable report on stdout.
    #[arg(long)]
    #[serde(skip)]
    pub json: bool,
    /// Show progress: a bar on a terminal (the default there, unless -q), a line every 10 s
    /// otherwise.
    #[arg(long, overrides_with = "no_progress")]
    #[serde(skip)]
    pub progress: bool,
    /// Show no progress, even on a terminal.
    #[arg(long, overrides_with = "progress")]
    #[serde(skip)]
    pub no_progress: bool,
    /// More output (-v: each action, the clock offset; -vv: S3 requests).
    #[arg(short, long, action = ArgAction::Count)]
    #[serde(skip)]
    pub verbose: u8,
    /// Less output (-q: warnings and errors only).
    #[arg(short, long, action = ArgAction::Count, conflicts_with = "verbose")]
    #[serde(skip)]
    pub quiet: u8,
}

/// How to reach the bucket, and where the configuration is: the flags every command that talks to
/// the bucket shares (`sync`, `plan`, `deploys`, `rollback`).
#[derive(Debug, Args, Serialize)]
pub struct ConnectionArgs {
    /// Configuration file [default: ./sync.toml if it exists].
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// An S3-compatible endpoint (AWS_ENDPOINT_URL is honoured too).
    #[arg(long, value_name = "URL", value_hint = ValueHint::Url)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// Use path-style addressing (http://host/bucket/key).
    #[arg(long)]
    #[serde(skip_serializing_if = "unset")]
    pub path_style: bool,
    /// The region of the bucket [default: from the AWS chain, else us-east-1].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// A profile of the shared AWS config files.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Serve an embedded S3-compatible store from DIR (no AWS account needed) and sync to it.
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_store: Option<PathBuf>,
}

/// `sitesync deploys`: list the deploys recorded under the target, or purge keys from them.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DeploysArgs {
    #[command(subcommand)]
    pub command: Option<DeploysCommand>,
    #[command(flatten)]
    pub bucket: BucketArgs,
    /// Print the deploys as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum DeploysCommand {
    /// Delete KEY from every deploy that kept it (a secret published by mistake).
    Purge(PurgeArgs),
}

/// A configuration layer like [`BucketArgs`], whose target is required.
#[derive(Debug, Args, Serialize)]
pub struct PurgeArgs {
    /// The target, s3://BUCKET[/PREFIX].
    #[arg(value_name = "TARGET")]
    #[serde(rename = "destination")]
    pub target: String,
    /// The keys to purge, relative to the prefix (`secrets.env`, `drafts/x.html`).
    #[arg(required = true, value_name = "KEY")]
    #[serde(skip)]
    pub keys: Vec<String>,
    #[command(flatten)]
    #[serde(flatten)]
    pub connection: ConnectionArgs,
    /// More output (-v: each action; -vv: S3 requests).
    #[arg(short, long, action = ArgAction::Count)]
    #[serde(skip)]
    pub verbose: u8,
}

/// The target of a command on the bucket alone, and how to reach it; a configuration layer like
/// [`SyncArgs`].
#[derive(Debug, Args, Serialize)]
pub struct BucketArgs {
    /// The target, s3://BUCKET[/PREFIX] (or `destination` in sync.toml).
    #[arg(value_name = "TARGET")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    #[command(flatten)]
    #[serde(flatten)]
    pub connection: ConnectionArgs,
    /// More output (-v: each action; -vv: S3 requests).
    #[arg(short, long, action = ArgAction::Count)]
    #[serde(skip)]
    pub verbose: u8,
    /// Less output (-q: warnings and errors only).
    #[arg(short, long, action = ArgAction::Count, conflicts_with = "verbose")]
    #[serde(skip)]
    pub quiet: u8,
}

/// `sitesync rollback`: make the prefix what it was right after an earlier deploy.
#[derive(Debug, Args, Serialize)]
pub struct RollbackArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub bucket: BucketArgs,
    /// The deploy to go back to (an id `sitesync deploys` lists) [default: the deploy before the
    /// one whose state is live].
    #[arg(long, value_name = "ID")]
    #[serde(skip)]
    pub to: Option<String>,
    /// Print what the rollback would do, and change nothing.
    #[arg(long)]
    #[serde(skip)]
    pub dry_run: bool,
    /// What the rollback's record says of it [default: the CI's commit id, when there is one].
    #[arg(long, value_name = "TEXT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Concurrent S3 operations.
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// Refuse to delete more than N objects.
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_delete: Option<u64>,
    /// Delete past the safety limit.
    #[arg(long)]
    #[serde(skip)]
    pub force_delete: bool,
    /// After the rollback, invalidate the restored paths in this CloudFront distribution.
    #[arg(long, value_name = "ID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloudfront_distribution_id: Option<String>,
    /// Wait for the CloudFront invalidation to complete before exiting.
    #[arg(long)]
    #[serde(skip)]
    pub wait: bool,
    /// When another run holds the target's lock, wait for it instead of failing.
    #[arg(long)]
    #[serde(skip)]
    pub wait_lock: bool,
    /// Print the report as JSON on stdout (as `sync --json` does).
    #[arg(long)]
    #[serde(skip)]
    pub json: bool,
}

/// A switch that was not given says nothing.
fn unset(given: &bool) -> bool {
    !given
}

/// A `--no-X` switch, given: `X = false`.
fn turned_off<S: Serializer>(_given: &bool, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bool(false)
}

/// `--strict`, given: `[redirects] strict = true`, which figment merges into the file's table.
fn strict_redirects<S: Serializer>(_given: &bool, serializer: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut table = serializer.serialize_map(Some(1))?;
    table.serialize_entry("strict", &true)?;
    table.end()
}
