//! sitesync: make an S3 prefix match a local directory tree, fast.
//!
//! The pipeline is config → local scan → transform chain ‖ remote source → diff → sink →
//! post-run steps; each stage is a module named after what it owns, and the data between them
//! lives in [`model`]. `docs/architecture.md` draws the stages and the seams between them. The
//! binary only parses the command line, calls [`execute`] (or [`rollback`], [`deploys`],
//! [`purge`], [`cli::init`], [`report::merge`], the [`cli::generate`] functions) and maps the
//! outcome to an exit status.

pub mod after;
pub mod cli;
pub mod clock;
pub mod config;
pub mod content;
pub mod diff;
pub mod disk;
pub mod error;
pub mod history;
pub mod journal;
pub mod keys;
#[cfg(feature = "local-store")]
pub mod local_store;
pub mod model;
pub mod pipeline;
pub mod remote;
pub mod report;
pub mod run;
pub mod s3client;
pub mod scan;
pub mod sink;
pub mod state;
pub mod transform;

pub use error::Error;
pub use report::Report;

/// Runs `sync` (or `plan`, when `dry_run`): loads the layered configuration, then syncs or plans.
pub async fn execute(args: &cli::SyncArgs, dry_run: bool) -> Result<Report, Error> {
    let file = config::config_file(args.connection.config.as_deref())?;
    let config = config::Config::build(&config::figment(file.as_deref(), args))?;
    if args.wait && config.invalidate.is_none() {
        let why = "--wait waits for a CloudFront invalidation, but no cloudfront_distribution_id is set";
        return Err(config::ConfigError::Invalid(why.into()).into());
    }
    let opts = pipeline::RunOptions {
        dry_run,
        force_delete: args.force_delete,
        wait_lock: args.wait_lock,
        allow_immutable_change: args.allow_immutable_change,
        wait_invalidation: args.wait,
        progress: run::progress::Show::choose(args.progress, args.no_progress, args.quiet > 0),
    };
    pipeline::run(&config, &opts).await.map_err(|e| at_endpoint(e, &config.store))
}

/// Runs `rollback` (or plans it with `--dry-run`): loads the layered configuration, reads the
/// history, restores.
pub async fn rollback(args: &cli::RollbackArgs) -> Result<Report, Error> {
    let config = bucket_config(args, args.bucket.connection.config.as_deref())?;
    let opts = pipeline::rollback::RollbackOptions {
        to: args.to.clone(),
        dry_run: args.dry_run,
        force_delete: args.force_delete,
        wait_lock: args.wait_lock,
        wait_invalidation: args.wait,
    };
    if args.wait && config.invalidate.is_none() {
        let why = "--wait waits for a CloudFront invalidation, but no cloudfront_distribution_id is set";
        return Err(config::ConfigError::Invalid(why.into()).into());
    }
    pipeline::rollback::run(&config, &opts).await.map_err(|e| at_endpoint(e, &config.store))
}

/// `deploys`: the deploys recorded under the target, newest first.
pub async fn deploys(args: &cli::BucketArgs) -> Result<Vec<history::timeline::Listed>, Error> {
    let config = bucket_config(args, args.connection.config.as_deref())?;
    pipeline::rollback::deploys(&config).await.map_err(|e| at_endpoint(e, &config.store))
}

/// `deploys purge`: removes keys from every deploy that kept them.
pub async fn purge(args: &cli::PurgeArgs) -> Result<history::retention::Purged, Error> {
    let config = bucket_config(args, args.connection.config.as_deref())?;
    pipeline::rollback::purge(&config, &args.keys).await.map_err(|e| at_endpoint(e, &config.store))
}

/// The configuration of a command on the bucket alone, from the layers and `flags`.
fn bucket_config(flags: &impl serde::Serialize, file: Option<&std::path::Path>) -> Result<config::BucketConfig, Error> {
    let file = config::config_file(file)?;
    Ok(config::BucketConfig::build(&config::figment(file.as_deref(), flags))?)
}

/// A store error names the endpoint it came from, unless that is AWS itself.
fn at_endpoint(e: Error, store: &config::Store) -> Error {
    match e {
        Error::Store(e) => Error::Store(e.at(store.connection.endpoint_url.as_deref())),
        e => e,
    }
}
