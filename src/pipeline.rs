//! The wiring of one run: config → local scan ‖ S3 scan → diff → sink, and the safety checks
//! between them.
//!
//! The two scans run at the same time and feed the diff over bounded channels. The diff reads
//! from whichever side is behind in key order, so the side that is ahead waits on its full
//! channel instead of filling memory. Deletes are checked against the limits as they are found
//! and again at the end, before the sink may send any.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::clock::{Clock, Offset};
use crate::model::Time;
use crate::config::{Config, ConfigError};
use crate::diff::{Diff, Tally};
use crate::error::Error;
use crate::local_store::LocalStore;
use crate::lock;
use crate::marker;
use crate::plan;
use crate::report::{Report, Tracker};
use crate::s3client::{self, Connection, describe};
use crate::scan;
use crate::sink::{Sink, SinkContext};
use crate::stop::{self, Stop};
use crate::transform;

/// Per-run choices that are not configuration.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub dry_run: bool,
    /// Delete past the safety limits, and accept an empty source.
    pub force_delete: bool,
    /// Wait for another run's lock on the target instead of failing.
    pub wait_lock: bool,
}

/// Batches buffered between each scan and the diff.
const SCAN_QUEUE: usize = 4;

pub async fn run(config: &Config, opts: &RunOptions) -> Result<Report, Error> {
    let started = Instant::now();
    check_source(config, opts.force_delete)?;
    // Plugins are created before anything is sent: a plugin that refuses its settings is a
    // configuration error.
    let chain = config.chain.start().map_err(|e| ConfigError::Transform {
        origin: config.chain.origin.clone(),
        key: e.key,
        why: e.why,
    })?;
    let chain = chain.under_prefix(config.target.prefix.len()).over_source(config.source.clone(), config.names);
    let cancel = Arc::new(AtomicBool::new(false));
    let stop = Stop::listen(cancel.clone()).map_err(|e| Error::Usage(format!("cannot watch for signals: {e}")))?;
    let interrupted = || Error::Interrupted(stop.signal().unwrap_or("a signal"));
    // A plan changes nothing, so it does not wait for (or keep out) a sync.
    let (lock_path, target) = (lock::path(config), config.target.to_string());
    let _lock = match opts.dry_run {
        true => None,
        false => tokio::select! {
            lock = lock::acquire(&lock_path, &target, opts.wait_lock) => Some(lock?),
            _ = stop.requested_wait() => return Err(interrupted()),
        },
    };
    let clock = Arc::new(Clock::default());
    let client = tokio::select! {
        client = connect(config, clock.clone()) => client?,
        _ = stop.requested_wait() => return Err(interrupted()),
    };

    let tracker = Arc::new(Tracker::default());
    let ctx = Arc::new(SinkContext {
        client: client.clone(),
        target: config.target.clone(),
        tracker: tracker.clone(),
        multipart_threshold: config.multipart_threshold,
        multipart_chunk_size: config.multipart_chunk_size,
        cancel: cancel.clone(),
    });
    let mut sink = Sink::new(ctx, config.workers, opts.dry_run, config.delete);
    // Objects published under another chain configuration may carry stale headers.
    let recorded = marker::read(&client, &config.target).await.map_err(Error::Store)?;
    let refresh = recorded != config.chain.fingerprint();
    if refresh {
        if recorded.is_empty() {
            tracing::debug!("no transform chain recorded under the prefix: current objects get its headers");
        } else {
            tracing::info!("the transform chain changed since the last run: re-publishing every current object");
        }
        sink.write_marker(config.chain.fingerprint().to_owned());
    }

    let (walk_tx, walk_rx) = mpsc::channel(SCAN_QUEUE);
    let walker = scan::local::spawn_with(config.source.clone(), config.walk_options(), walk_tx);
    let (local_tx, mut local_rx) = mpsc::channel(SCAN_QUEUE);
    let chain = transform::spawn(chain, walk_rx, local_tx);
    let remote_filter = config.chain.remote_filter();
    let (remote_tx, mut remote_rx) = mpsc::channel(SCAN_QUEUE);
    let lister = {
        let (client, target, parallel) = (client.clone(), config.target.clone(), config.list_parallel);
        tokio::spawn(async move { scan::s3::list(&client, &target, parallel, remote_tx).await })
    };

    let mut diff = Diff::new(config.rule);
    if !config.chain.keeps_order() {
        diff.local_unordered();
    }
    if refresh {
        diff.refresh_unchanged();
    }
    let mut events = Vec::new();
    let (mut local_open, mut remote_open) = (true, true);
    let mut lister = Some(lister);
    let mut refused = None;
    let mut fatal = None;
    while local_open || remote_open {
        let (local_at, remote_at) = diff.positions();
        let read_local = local_open && (!remote_open || local_at <= remote_at);
        let read_remote = remote_open && (!local_open || remote_at <= local_at);
        tokio::select! {
            _ = stop.requested_wait() => break,
            batch = local_rx.recv(), if read_local => match batch {
                Some(Ok(batch)) => diff.local_batch(batch, offset(&clock), &mut events),
                Some(Err(e)) => {
                    fatal = Some(Error::Transform(e));
                    break;
                }
                None => {
                    local_open = false;
                    diff.local_done(&mut events);
                }
            },
            batch = remote_rx.recv(), if read_remote => match batch {
                Some(mut batch) => {
                    batch.retain(|o| remote_filter.keeps(&o.key));
                    diff.remote_batch(batch, offset(&clock), &mut events)
                }
                None => {
                    remote_open = false;
                    // A listing that stopped early must not look like a bucket without those keys.
                    if let Err(e) = finish_listing(lister.take()).await {
                        fatal = Some(e);
                        break;
                    }
                    diff.remote_done(&mut events);
                }
            },
        }
        if !events.is_empty() {
            sink.accept(std::mem::take(&mut events)).await;
        }
        if stop.requested() {
            break;
        }
        // A run where something failed sends no deletes at all, so the delete limits need not
        // stop it: the rest is still synced, and the next clean run checks the limits.
        if !opts.dry_run
            && tracker.failure_count() == 0
            && let Some(why) = delete_limit(config, opts, sink.deletes_planned(), None)
        {
            refused = Some(why);
            break;
        }
    }
    drop(local_rx);
    drop(remote_rx);
    if let Some(lister) = lister {
        lister.abort();
    }
    let _ = tokio::task::spawn_blocking(move || (chain.join(), walker.join())).await;

    if let Some(e) = fatal {
        cancel.store(true, Ordering::Relaxed);
        sink.finish(false).await;
        return Err(e);
    }
    if refused.is_none() && !stop.requested() {
        refine(&client, config, &clock, &diff).await;
        diff.finish(offset(&clock), &mut events);
        sink.accept(std::mem::take(&mut events)).await;
        if tracker.failure_count() == 0 {
            refused = delete_limit(config, opts, sink.deletes_planned(), Some(diff.tally()));
        }
    }
    log_clock(config, &clock);
    if refused.is_some() {
        cancel.store(true, Ordering::Relaxed);
    }
    let planned_deletes = sink.deletes_planned();
    // After a signal, the requests in flight get a bounded time to finish; then they are dropped.
    let finished = tokio::select! {
        finished = sink.finish(refused.is_none() && !stop.requested()) => Some(finished),
        _ = stop.deadline() => None,
    };

    let tally = diff.tally();
    let mut report = tracker.report(opts.dry_run, tally.unchanged, started.elapsed());
    let (steps, withheld) = finished.unwrap_or_else(|| {
        tracing::warn!("requests still in flight after {}s were abandoned", stop::GRACE.as_secs());
        (None, planned_deletes.saturating_sub(report.deleted))
    });
    report.deletes_withheld = withheld;
    report.interrupted = stop.signal();
    if let Some(mut steps) = steps {
        report.uploaded = steps.iter().filter(|s| s.phase <= plan::Phase::Pages).count() as u64;
        report.copied = steps.iter().filter(|s| s.phase == plan::Phase::Copies).count() as u64;
        report.bytes_uploaded = steps.iter().map(|s| s.bytes).sum();
        report.deleted = steps.iter().filter(|s| s.phase == plan::Phase::Deletes).count() as u64;
        report.plan = plan::render(&mut steps, tally.unchanged);
    }
    report.refused = refused;
    Ok(report)
}

fn offset(clock: &Clock) -> Offset {
    clock.bounds()
}

async fn finish_listing(lister: Option<tokio::task::JoinHandle<Result<(), scan::s3::ListError>>>) -> Result<(), Error> {
    let Some(lister) = lister else { return Ok(()) };
    match lister.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Error::Store(e.to_string())),
        Err(e) => Err(Error::Store(format!("listing stopped: {e}"))),
    }
}

/// Refuses a missing source, one that is not a directory, and (unless forced) an empty one: an
/// empty directory is the usual sign of a failed build, and syncing it would delete the site. A
/// source folder named like sitesync's reserved folder is refused too, unless a filter skips it.
fn check_source(config: &Config, force: bool) -> Result<(), Error> {
    let source = config.source.as_path();
    let reserved = transform::RESERVED_FOLDER.trim_end_matches('/');
    let skipped = config.walk_options().skip.is_some_and(|skip| (skip.0)(reserved));
    if !skipped && std::fs::symlink_metadata(source.join(reserved)).is_ok() {
        return Err(Error::Usage(format!(
            "source {}: `{reserved}/` is reserved for sitesync's own objects under the prefix (the chain marker); \
             rename it, or leave it out with a filter (exclude = [\"{reserved}/**\"])",
            source.join(reserved).display()
        )));
    }
    let meta = std::fs::metadata(source).map_err(|e| Error::Usage(format!("source {}: {e}", source.display())))?;
    if !meta.is_dir() {
        return Err(Error::Usage(format!("source {} is not a directory", source.display())));
    }
    let mut entries = std::fs::read_dir(source)
        .map_err(|e| Error::Usage(format!("source {}: cannot read directory: {e}", source.display())))?;
    if !force && entries.next().is_none() {
        return Err(Error::Usage(format!(
            "source {} is empty; refusing to sync it (this would delete everything under the prefix); pass --force-delete to do it anyway",
            source.display()
        )));
    }
    Ok(())
}

/// Why the planned deletes exceed a safety limit, if they do. Without the final tally only the
/// count limit can be checked, which is done as deletes are found so a run stops early.
pub fn delete_limit(config: &Config, opts: &RunOptions, deletes: u64, tally: Option<Tally>) -> Option<String> {
    if !config.delete || opts.force_delete || deletes == 0 {
        return None;
    }
    if deletes > config.max_delete {
        return Some(format!(
            "refusing to delete more than max_delete = {} objects ({deletes} or more planned); pass --force-delete or raise max_delete",
            config.max_delete
        ));
    }
    let tally = tally?;
    if tally.local_files == 0 {
        return Some(format!(
            "refusing to delete {deletes} objects: the source holds no files; pass --force-delete to do it anyway"
        ));
    }
    let percent = u64::from(config.max_delete_percent);
    if deletes >= 2 && deletes * 100 > percent * tally.remote_objects {
        return Some(format!(
            "refusing to delete {deletes} of the {} objects under the prefix (more than max_delete_percent = {percent}%); pass --force-delete or raise max_delete_percent",
            tally.remote_objects
        ));
    }
    None
}

/// Narrows the clock offset while some decision depends on it: a file modified within about a
/// second of its last upload. Requests go out at many sub-second phases, and each `Date` answer
/// cuts the interval; this costs at most about a second, and nothing when no decision waits.
async fn refine(client: &aws_sdk_s3::Client, config: &Config, clock: &Clock, diff: &Diff) {
    let started = Instant::now();
    // Without a `Date` header so far there is nothing to narrow.
    let measured = clock.samples() > 0;
    while measured && diff.unsure_under(offset(clock)) && started.elapsed() < Duration::from_millis(1200) {
        let _ = client.head_bucket().bucket(&config.target.bucket).send().await;
        tokio::time::sleep(Duration::from_millis(37)).await;
    }
}

fn log_clock(config: &Config, clock: &Clock) {
    let margin = config.rule.fudge as f64 / 1e9;
    match clock.offset() {
        Some(o) => tracing::debug!(
            "clock: server is {:+.3}s from this machine (±{:.3}s, from {} responses); margin {:.3}s",
            o.midpoint() as f64 / 1e9,
            o.width() as f64 / 2e9,
            clock.samples(),
            margin
        ),
        None => tracing::debug!(
            "clock: no response carried a Date header, so the server's clock is unknown: files changed within {}s of their object's LastModified are uploaded again; margin {margin:.3}s",
            Offset::UNKNOWN.hi / Time::NANOS_PER_SEC
        ),
    }
}

/// The S3 client of this run: the embedded store when selected, otherwise the standard chain.
async fn connect(config: &Config, clock: Arc<Clock>) -> Result<aws_sdk_s3::Client, Error> {
    let Some(dir) = &config.local_store else {
        let conn = Connection {
            endpoint_url: config.endpoint_url.clone(),
            path_style: config.path_style,
            region: config.region.clone(),
            profile: config.profile.clone(),
            static_credentials: None,
            max_attempts: config.max_attempts,
            retry_mode: config.retry_mode,
            timeout: config.timeout,
        };
        return Ok(s3client::client(&conn, clock).await);
    };
    let store = LocalStore::start(dir)
        .await
        .map_err(|e| Error::Store(format!("cannot start the local store in {}: {e}", dir.display())))?;
    tracing::info!("local store: serving {} at {}", dir.display(), store.endpoint());
    let conn = Connection {
        max_attempts: config.max_attempts,
        retry_mode: config.retry_mode,
        timeout: config.timeout,
        ..store.connection()
    };
    let client = s3client::client(&conn, clock).await;
    let bucket = &config.target.bucket;
    if client.head_bucket().bucket(bucket).send().await.is_err() {
        client
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| Error::Store(format!("cannot create bucket {bucket} in the local store: {}", describe(&e))))?;
    }
    Ok(client)
}
