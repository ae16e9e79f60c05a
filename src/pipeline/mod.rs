//! The wiring of one run: config → local scan → transform chain ‖ remote source → merge → sink →
//! post-run steps.
//!
//! [`run`] only connects stages that live elsewhere: the walk (`scan`) and the chain (`transform`)
//! on threads, the remote source (`remote`) on a task, the merge loop (`diff::merge`) reading both
//! sides as they come, a sink (`sink`: the bucket, or the plan of a dry run) and the post-run
//! steps (`after`). Each stage is built from the config in [`stages`]; every stage's end is
//! checked ([`sides`]), so a stage that dies fails the run instead of reading as the end of the
//! tree or of the listing. The scans run at the same time over bounded channels, and the merge
//! reads from whichever side is behind, so the side ahead waits instead of filling memory.
//! [`plan::in_memory`] runs the same stages without the network, over a bucket held in memory.

mod connect;
mod history;
mod local;
mod locks;
pub mod plan;
mod probe;
pub mod rollback;
mod sides;
mod stages;

use std::time::Instant;

use tokio::sync::mpsc;

use crate::config::Config;
use crate::diff::{Schedule, merge};
use crate::error::{Error, SourceError};
use crate::report::Report;
use crate::run::stop::Stop;
use crate::{scan, transform};
use sides::ChannelSides;
use stages::Stages;
pub use stages::chain;

/// Per-run choices that are not configuration.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub dry_run: bool,
    /// Delete past the safety limits, and accept an empty source.
    pub force_delete: bool,
    /// Wait for another run's lock on the target instead of failing.
    pub wait_lock: bool,
    /// Upload keys published `immutable` whose objects hold other bytes (see `sink::guard`).
    pub allow_immutable_change: bool,
    /// Wait until the CloudFront invalidation has completed.
    pub wait_invalidation: bool,
    /// How progress is shown while the run goes.
    pub progress: crate::run::progress::Show,
}

/// Batches buffered between each scan and the merge.
const SCAN_QUEUE: usize = 4;

/// Runs one sync, or one plan with `dry_run`. A second signal cuts it short. The lock in the
/// bucket is released however the run ended.
pub async fn run(config: &Config, opts: &RunOptions) -> Result<Report, Error> {
    let stop = Stop::listen().map_err(Error::Signals)?;
    let mut bucket_lock = None;
    let outcome = tokio::select! {
        report = run_until_stopped(config, opts, &stop, &mut bucket_lock) => report,
        signal = stop.forced() => Err(Error::CutShort(signal)),
    };
    match bucket_lock {
        Some(lock) => locks::release(lock, outcome).await,
        None => outcome,
    }
}

async fn run_until_stopped(
    config: &Config,
    opts: &RunOptions,
    stop: &Stop,
    bucket_lock: &mut Option<crate::history::lock::BucketLock>,
) -> Result<Report, Error> {
    let started = Instant::now();
    check_source(config, opts.force_delete)?;
    // Plugins are created before anything is sent: one that refuses its settings is a
    // configuration error.
    let chain = stages::chain(config)?;
    let _lock = locks::lock(config, opts, stop).await?;
    // Before anything is sent: the distribution may need it once the redirects are published.
    if let Some(site) = config.chain.site().filter(|_| !opts.dry_run) {
        site.write_function().map_err(crate::config::ConfigError::from)?;
    }
    let stages = Stages::build(config, opts, stop, bucket_lock).await?;

    let (walk_tx, walk_rx) = mpsc::channel(SCAN_QUEUE);
    let (local_tx, local_rx) = mpsc::channel(SCAN_QUEUE);
    let (remote_tx, remote_rx) = mpsc::channel(SCAN_QUEUE);
    let Stages { walk, remote, state, mut diff, mut sink, probe, limits, after, tracker, progress } = stages;
    let local = local::LocalSide::new(chain, local::OwnPart::of(config, &walk), state);
    let walker = scan::spawn(config.source.clone(), walk, walk_tx)?;
    let mut sides = ChannelSides {
        chain: Some(local::spawn(local, walker, walk_rx, local_tx)?),
        source_name: remote.describe(),
        source: Some(tokio::spawn(remote.send(remote_tx))),
        local: local_rx,
        counts: progress.counts(),
        remote: remote_rx,
        stop,
    };
    let ended = merge(&mut diff, &mut sides, &probe, sink.as_mut(), &limits, Schedule::Behind).await;
    sides.close().await;
    probe.log(config.rule.fudge);
    let finished = stages::finish(ended, diff.tally(), sink, tracker, stop).await;
    let mut report = stages::after(finished, after, opts.dry_run, stop, started).await?;
    report.shard = config.shard.as_ref().map(ToString::to_string);
    Ok(report)
}

/// Refuses a missing source, one that is not a directory, and (unless forced) an empty one: an
/// empty directory is the usual sign of a failed build, and syncing it would delete the site. A
/// source folder named like sitesync's reserved folder is refused too, unless a filter skips it.
fn check_source(config: &Config, force: bool) -> Result<(), SourceError> {
    let source = config.source.as_path();
    let reserved = transform::RESERVED_FOLDER.trim_end_matches('/');
    let skipped = config.walk_options().skip.is_some_and(|skip| skip.skips(reserved));
    if !skipped && std::fs::symlink_metadata(source.join(reserved)).is_ok() {
        return Err(SourceError::Reserved(source.join(reserved)));
    }
    let meta = std::fs::metadata(source).map_err(|e| SourceError::Missing { path: source.to_owned(), source: e })?;
    if !meta.is_dir() {
        return Err(SourceError::NotADirectory(source.to_owned()));
    }
    let mut entries =
        std::fs::read_dir(source).map_err(|e| SourceError::Unreadable { path: source.to_owned(), source: e })?;
    if !force && entries.next().is_none() {
        return Err(SourceError::Empty(source.to_owned()));
    }
    Ok(())
}
