//! The locks a run holds on its target: this machine's (a file beside the local state) and the
//! one in the bucket (see `history::lock`), taken before anything is listed and released however
//! the run ends. A sync and a rollback take them by the same steps; a plan changes nothing, so it
//! neither waits for nor keeps out a sync.

use std::sync::Arc;

use super::{RunOptions, Stop};
use crate::clock::Clock;
use crate::config::Config;
use crate::error::Error;
use crate::history::lock::{self as bucket, BucketLock, BucketLockError};
use crate::report::Report;
use crate::run::lock::{self, RunLock};

/// The target's lock for a sync; a plan changes nothing, so it neither waits for nor keeps out
/// a sync.
pub async fn lock(config: &Config, opts: &RunOptions, stop: &Stop) -> Result<Option<RunLock>, Error> {
    if opts.dry_run {
        return Ok(None);
    }
    this_machines_lock(&config.lock_path(), &config.target.to_string(), opts.wait_lock, stop).await.map(Some)
}

/// This machine's lock on a target (a sync's or a rollback's), given up at a signal.
pub async fn this_machines_lock(
    path: &std::path::Path,
    target: &str,
    wait: bool,
    stop: &Stop,
) -> Result<RunLock, Error> {
    tokio::select! {
        lock = lock::acquire(path, target, wait) => Ok(lock?),
        _ = stop.requested_wait() => Err(Error::Interrupted(stop.signal().unwrap_or("a signal"))),
    }
}

/// The target's lock in the bucket for a sync (see `history::lock`), waited for until a signal;
/// when a renewal finds it lost, the run is halted as by a signal. None for a plan.
pub(super) async fn bucket_lock(
    config: &Config,
    opts: &RunOptions,
    (client, clock): (&aws_sdk_s3::Client, &Arc<Clock>),
    stop: &Stop,
) -> Result<Option<BucketLock>, Error> {
    if opts.dry_run {
        return Ok(None);
    }
    let what = LockedTarget {
        target: &config.target,
        shard: config.shard.as_ref(),
        mode: config.remote_lock,
        wait: opts.wait_lock,
    };
    take_bucket_lock(what, (client, clock), stop).await
}

/// What a lock in the bucket is taken for: a sync's target (or its shard's part), or a
/// rollback's whole target.
pub struct LockedTarget<'a> {
    pub target: &'a crate::keys::target::Target,
    pub shard: Option<&'a crate::keys::shard::Shard>,
    pub mode: bucket::Mode,
    pub wait: bool,
}

/// Takes the lock in the bucket (see `history::lock`), waiting for it until a signal when asked;
/// when a renewal finds it lost, the run is halted as by a signal.
pub async fn take_bucket_lock(
    what: LockedTarget<'_>,
    (client, clock): (&aws_sdk_s3::Client, &Arc<Clock>),
    stop: &Stop,
) -> Result<Option<BucketLock>, Error> {
    let request = bucket::Request {
        client,
        clock: clock.clone(),
        target: what.target,
        shard: what.shard,
        mode: what.mode,
        wait: what.wait,
        timing: bucket::Timing::default(),
    };
    let held = BucketLock::acquire(request, stop.requested_wait()).await.map_err(|e| match e {
        BucketLockError::Interrupted { .. } => Error::Interrupted(stop.signal().unwrap_or("a signal")),
        e => e.into(),
    })?;
    if let Some(lock) = &held {
        let (lost, halt) = (lock.when_lost(), stop.halt());
        tokio::spawn(async move {
            if lost.await {
                halt.halt();
            }
        });
    }
    Ok(held)
}

/// How long releasing the bucket lock may take at the end of a run.
const RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Releases the run's lock in the bucket, however the run ended; a lock lost during the run is
/// the run's error. A release that fails is only a warning: the lock expires by itself.
pub async fn release(lock: BucketLock, outcome: Result<Report, Error>) -> Result<Report, Error> {
    let (url, lost) = (lock.url().to_owned(), lock.lost());
    let failed = match tokio::time::timeout(RELEASE_WAIT, lock.release()).await {
        Ok(Ok(())) => return outcome,
        Ok(Err(lost @ BucketLockError::Lost { .. })) => return Err(lost.into()),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {}s", RELEASE_WAIT.as_secs()),
    };
    tracing::warn!(
        "could not release the bucket lock {url} ({failed}); it expires by itself, and the next run of this machine takes it over at once"
    );
    match lost {
        Some(lost) => Err(lost.into()),
        None => outcome,
    }
}
