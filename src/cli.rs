//! The command line: subcommands and flags, and the config overrides they carry.
//!
//! Every flag that feeds the configuration is optional, so an unset flag never hides a value from
//! `sync.toml` or the environment.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

use crate::config::Overrides;

#[derive(Debug, Parser)]
#[command(name = "sitesync", version, about = "Publish a static site from a local directory to an S3 prefix")]
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
}

impl Command {
    pub fn args(&self) -> &SyncArgs {
        match self {
            Command::Sync(a) | Command::Plan(a) => a,
        }
    }

    pub fn dry_run(&self) -> bool {
        match self {
            Command::Sync(a) => a.dry_run,
            Command::Plan(_) => true,
        }
    }
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The local directory to publish (or `source` in sync.toml).
    pub source: Option<PathBuf>,
    /// The destination, s3://BUCKET[/PREFIX] (or `destination` in sync.toml).
    pub destination: Option<String>,
    /// Configuration file [default: ./sync.toml if it exists].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// An S3-compatible endpoint (AWS_ENDPOINT_URL is honoured too).
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Use path-style addressing (http://host/bucket/key).
    #[arg(long)]
    pub path_style: bool,
    #[arg(long)]
    pub region: Option<String>,
    /// A profile of the shared AWS config files.
    #[arg(long)]
    pub profile: Option<String>,
    /// Serve an embedded S3-compatible store from DIR (no AWS account needed) and sync to it.
    #[arg(long, value_name = "DIR")]
    pub local_store: Option<PathBuf>,
    /// Concurrent S3 operations.
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
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
    /// Print a machine-readable report on stdout.
    #[arg(long)]
    pub json: bool,
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
            delete: self.no_delete.then_some(false),
            max_delete: self.max_delete,
            clock_fudge: self.clock_fudge,
            encoding: self.encoding.clone(),
            cloudfront_distribution_id: self.cloudfront_distribution_id.clone(),
            invalidate_added: self.invalidate_added.then_some(true),
            invalidate_max_paths: self.invalidate_max_paths,
        }
    }
}
