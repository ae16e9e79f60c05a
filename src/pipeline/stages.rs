//! The stages of a run, built from the config, and how a run ends.
//!
//! Each stage is chosen here, once: the sink (the bucket, or the plan of a dry run), the remote
//! source, the diff's settings, the delete limits and the post-run steps. A new stage of an
//! existing kind (a remote source read from an inventory, a post-run step) is one more line here.

use std::sync::Arc;
use std::time::Instant;

use super::connect::connect;
use super::probe::Probe;
use super::{RunOptions, Stop};
use crate::after::invalidate::{Invalidate, Settings};
use crate::after::website::Website;
use crate::after::{self, AfterRun, Outcome, WriteMarker};
use crate::clock::Clock;
use crate::config::{Config, ConfigError};
use crate::diff::{Compare, DeleteLimits, Diff, Ended, Tally};
use crate::error::Error;
use crate::lock::{self, RunLock};
use crate::progress::{Counting, Progress};
use crate::remote::{Inventory, Listing, RemoteSource};
use crate::report::Report;
use crate::s3client::{self, Connection};
use crate::scan::WalkOptions;
use crate::sink::{Applied, Checking, Finish, Heads, PlanSink, S3Sink, Sink, SinkContext, Tracker};
use crate::state::{self, SaveState, TrustedState};
use crate::transform::Chain;

/// Everything a run connects, but the scans' threads.
pub struct Stages {
    /// How the walk reads the source; it counts for the diff what it leaves to other shards.
    pub walk: WalkOptions,
    pub remote: Box<dyn RemoteSource>,
    /// The local state, read beside the walk.
    pub state: Option<state::Cursor>,
    pub diff: Diff,
    pub sink: Box<dyn Sink>,
    /// The S3 sink's tracker, to count what was done even when its requests are abandoned.
    pub tracker: Option<Arc<Tracker>>,
    pub probe: Probe,
    pub limits: DeleteLimits,
    pub after: Vec<Box<dyn AfterRun>>,
    /// Draws what the stages count, until dropped.
    pub progress: Progress,
}

/// The transform chain of the run, its plugins created.
pub fn chain(config: &Config) -> Result<Chain, ConfigError> {
    let chain = config.chain.start().map_err(|e| ConfigError::Transform {
        origin: config.chain.origin.clone(),
        key: e.key,
        why: e.why,
    })?;
    Ok(chain.under_prefix(config.target.prefix.len()).over_source(config.source.clone(), config.names))
}

/// The target's lock for a sync; a plan changes nothing, so it neither waits for nor keeps out
/// a sync.
pub async fn lock(config: &Config, opts: &RunOptions, stop: &Stop) -> Result<Option<RunLock>, Error> {
    if opts.dry_run {
        return Ok(None);
    }
    let (path, target) = (lock::path(config), config.target.to_string());
    tokio::select! {
        lock = lock::acquire(&path, &target, opts.wait_lock) => Ok(Some(lock?)),
        _ = stop.requested_wait() => Err(Error::Interrupted(stop.signal().unwrap_or("a signal"))),
    }
}

impl Stages {
    pub async fn build(config: &Config, opts: &RunOptions, stop: &Stop) -> Result<Stages, Error> {
        let clock = Arc::new(Clock::default());
        let client = tokio::select! {
            client = connect(config, clock.clone()) => client?,
            _ = stop.requested_wait() => return Err(Error::Interrupted(stop.signal().unwrap_or("a signal"))),
        };
        let target = config.target.clone();
        let own_part = config.multipart_chunk_size;
        let mut diff = Diff::new(config.rule);
        diff.hide(config.chain.remote_filter());
        let walk = config.walk_options();
        diff.shard(config.shard.clone(), walk.elsewhere.clone());
        diff.compare(Compare { mode: config.compare, own_part, learn: config.state.is_some() });
        if !config.chain.keeps_order() {
            diff.local_unordered();
        }
        let mut after: Vec<Box<dyn AfterRun>> = Vec::new();
        let identity = config.state_identity();
        let state = match &config.state {
            Some(path) => {
                after.push(Box::new(SaveState { path: path.clone(), identity: identity.clone() }));
                open_state(path, &identity).await
            }
            None => None,
        };
        let refresh = match chain_marker(config, &client).await? {
            Some(marker) => {
                diff.refresh_unchanged();
                after.push(Box::new(marker));
                true
            }
            None => false,
        };
        if let Some(website) = website(config, &client) {
            after.push(Box::new(website));
        }
        if let Some(invalidate) = invalidate(config, opts).await {
            after.push(Box::new(invalidate));
        }
        let (sink, tracker) = sink(config, opts, &client, &clock, stop);
        let progress = Progress::start(opts.progress);
        if let Some(tracker) = &tracker {
            progress.follow(tracker.clone());
        }
        let sink: Box<dyn Sink> = Box::new(Counting::new(sink, progress.counts()));
        // Even with `compare = "mtime"`: the inline bodies of a transform are compared by content.
        let heads = Heads::new(client.clone(), target.clone(), config.workers);
        let sink: Box<dyn Sink> = Box::new(Checking::new(sink, own_part, refresh).with_heads(heads));
        let remote: Box<dyn RemoteSource> = match (&config.state, config.trust_state, config.remote_inventory.clone()) {
            (Some(path), true, _) => Box::new(TrustedState { path: path.clone(), identity }),
            (_, _, Some(manifest)) => Box::new(Inventory {
                client: client.clone(),
                target: target.clone(),
                manifest,
                shard: config.shard.clone(),
            }),
            _ => Box::new(Listing { client: client.clone(), target: target.clone(), parallel: config.list_parallel }),
        };
        let limits = DeleteLimits {
            enforced: config.delete && !opts.force_delete,
            max: config.max_delete,
            max_percent: config.max_delete_percent,
            early: !opts.dry_run,
        };
        let probe = Probe { clock, client, bucket: target.bucket };
        Ok(Stages { walk, remote, state, diff, sink, tracker, probe, limits, after, progress })
    }
}

/// The marker to write when the chain changed since the objects under the prefix were published
/// (they may carry stale headers, so every current object is published again); `None` when the
/// recorded chain is this one. Refused with `--trust-state`.
async fn chain_marker(config: &Config, client: &aws_sdk_s3::Client) -> Result<Option<WriteMarker>, Error> {
    let (target, marker) = (&config.target, after::marker::key(config.shard.as_ref()));
    let recorded = after::marker::read(client, target, &marker).await?;
    let fingerprint = config.chain.fingerprint();
    if recorded == fingerprint {
        return Ok(None);
    }
    // The state holds a compressed key's source size, not whether its object holds compressed
    // bytes: after a `compress` step changed, a plain file could be copied in place over gzip
    // bytes. Only a listing shows the objects' sizes.
    if config.trust_state {
        return Err(Error::Untrusted("the transform chain changed since the objects under the prefix were published"));
    }
    match recorded.is_empty() {
        true => tracing::debug!("no transform chain recorded under the prefix: current objects get its headers"),
        false => tracing::info!("the transform chain changed since the last run: re-publishing every current object"),
    }
    Ok(Some(WriteMarker { client: client.clone(), target: target.clone(), marker, fingerprint: fingerprint.into() }))
}

/// The sink of the run: the plan (`--dry-run`) or the S3 sink with the tracker of what it did.
fn sink(
    config: &Config,
    opts: &RunOptions,
    client: &aws_sdk_s3::Client,
    clock: &Arc<Clock>,
    stop: &Stop,
) -> (Box<dyn Sink>, Option<Arc<Tracker>>) {
    let target = config.target.clone();
    if opts.dry_run {
        return (Box::new(PlanSink::new(target, config.delete)), None);
    }
    let tracker = Arc::new(Tracker::default());
    let ctx = Arc::new(SinkContext {
        client: client.clone(),
        target,
        tracker: tracker.clone(),
        multipart_threshold: config.multipart_threshold,
        multipart_chunk_size: config.multipart_chunk_size,
        clock: clock.clone(),
        compressing: SinkContext::compression_slots(),
        charset: config.charset.clone(),
        learn: config.state.is_some(),
        cancel: stop.flag(),
    });
    (Box::new(S3Sink::new(ctx, config.workers, config.delete)), Some(tracker))
}

/// The local state of a run, checked whole on the blocking pool, ready to be read beside the
/// walk; `None` when there is none or it cannot be trusted (which the log says).
async fn open_state(path: &std::path::Path, identity: &str) -> Option<state::Cursor> {
    let (path, identity) = (path.to_owned(), identity.to_owned());
    let opened = tokio::task::spawn_blocking(move || {
        let reader = state::open_for_run(&path, &identity)?;
        state::Cursor::new(reader).inspect_err(|e| tracing::warn!("ignoring the local state: {e}")).ok()
    });
    opened.await.ok().flatten()
}

/// What follows a run with redirect rules: its counts, and the bucket's routing rules.
fn website(config: &Config, client: &aws_sdk_s3::Client) -> Option<Website> {
    let site = config.chain.site()?;
    let objects = site.objects().iter().filter(|o| site.owns(&o.key)).map(|o| o.key.clone()).collect();
    Some(Website {
        client: client.clone(),
        target: config.target.clone(),
        objects,
        routing: site.routing_rules().map(<[_]>::to_vec),
        function: site.function().map(|f| (f.path.display().to_string(), f.rules)),
    })
}

/// The CloudFront invalidation, when a distribution is configured; its client comes from the
/// AWS chain even with the embedded store, whose credentials are S3's only.
async fn invalidate(config: &Config, opts: &RunOptions) -> Option<Invalidate> {
    let distribution_id = config.cloudfront_distribution_id.clone()?;
    let conn = Connection {
        region: config.region.clone(),
        profile: config.profile.clone(),
        max_attempts: config.max_attempts,
        retry_mode: config.retry_mode,
        timeout: config.timeout,
        ..Connection::default()
    };
    let settings = Settings {
        distribution_id,
        include_added: config.invalidate_added,
        max_paths: config.invalidate_max_paths,
        wait: opts.wait_invalidation,
    };
    Some(Invalidate { client: s3client::cloudfront(&conn).await, target: config.target.clone(), settings })
}

/// A run's sink work done, and what the post-run steps need to know of it.
pub struct Finished {
    pub applied: Applied,
    pub tally: Tally,
    pub refused: Option<String>,
    /// The merge completed and was not refused, stopped or failed.
    pub complete: bool,
    /// Why the merge failed, when it did: the run fails with it once the post-run steps ran.
    pub failed: Option<Error>,
}

/// Lets the sink finish after the merge ended: deletes only after a complete merge; after a
/// signal, the requests in flight get a bounded time, then they are abandoned, and what was done
/// by then is what the post-run steps see.
pub async fn finish(
    ended: Ended,
    tally: Tally,
    sink: Box<dyn Sink>,
    tracker: Option<Arc<Tracker>>,
    stop: &Stop,
) -> Finished {
    let (complete, refused, failed) = match ended {
        Ended::Complete => (true, None, None),
        Ended::Refused(why) => (false, Some(why), None),
        Ended::Stopped => (false, None, None),
        Ended::Failed(e) => (false, None, Some(e)),
    };
    if !complete {
        // Queued work is dropped; requests in flight finish.
        stop.flag().store(true, std::sync::atomic::Ordering::SeqCst);
    }
    let planned = sink.deletes_planned();
    let finishing = sink.finish(Finish { deletes: complete, unchanged: tally.unchanged, hashed: 0 });
    let applied = tokio::select! {
        applied = finishing => applied,
        _ = stop.deadline() => {
            tracing::warn!("requests still in flight after {}s were abandoned", crate::stop::GRACE.as_secs());
            let mut applied = Applied::default();
            if let Some(tracker) = tracker {
                applied = tracker.applied(0);
                applied.changes = tracker.journal().take().await;
            }
            applied.deletes_withheld = planned.saturating_sub(applied.deleted);
            applied
        }
    };
    Finished { applied, tally, refused, complete, failed }
}

/// Runs the post-run steps and makes the report; a step's failure is a failure of the run. The
/// steps run after a failed merge too, for what was done (a CDN would keep serving it stale), and
/// then the run fails with the merge's error.
pub async fn after(
    finished: Finished,
    steps: Vec<Box<dyn AfterRun>>,
    dry_run: bool,
    stop: &Stop,
    started: Instant,
) -> Result<Report, Error> {
    let Finished { applied, tally, refused, complete, failed } = finished;
    let stopped = stop.requested();
    let clean = complete && applied.failures.is_empty() && !stopped;
    let outcome = Outcome { applied: &applied, tally, dry_run, clean, stopped };
    let mut late = Vec::new();
    let mut said = Vec::new();
    for step in steps {
        match step.run(&outcome).await {
            Ok(step_said) => said.push(step_said),
            Err(failure) => {
                tracing::error!("{} {}: {}", failure.op, failure.key, failure.error);
                late.push(failure);
            }
        }
    }
    let mut report = Report::new(applied, dry_run, tally.unchanged, started.elapsed());
    report.failed += late.len() as u64;
    report.failures.extend(late);
    for step_said in said {
        report.extra.extend(step_said.fields);
        report.add_to_plan(&step_said.plan);
    }
    if let Some(e) = failed {
        return Err(e);
    }
    report.refused = refused;
    report.interrupted = stop.signal().map(Into::into);
    Ok(report)
}
