//! The stages of a run, built from the config, and how a run ends (its locks: `locks`).
//!
//! Each stage is made here, once, by a step named after it: the diff's settings, the remote
//! source (the one the config chose, [`RemoteChoice`]), the sink (the bucket, or the plan of a
//! dry run) and the checks around it (with `delete_grace`, the ledger of retired keys too), the
//! delete limits and the post-run steps. A new stage of an
//! existing kind (a remote source, a post-run step) is one more line in its step.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::connect::connect;
use super::history::SyncHistory;
use super::locks::bucket_lock;
use super::probe::Probe;
use super::{RunOptions, Stop};
use crate::after::SaveState;
use crate::after::invalidate::{Invalidate, Settings};
use crate::after::website::Website;
use crate::after::{self, AfterRun, Outcome, WriteMarker, WriteRecord};
use crate::clock::Clock;
use crate::config::{Config, ConfigError, RemoteChoice};
use crate::diff::{Compare, DeleteLimits, Diff, Ended, Tally};
use crate::error::Error;
use crate::history::keep::Keeper;
use crate::history::ledger::{self, Layout, LedgerError, NewLedger};
use crate::history::lock::BucketLock;
use crate::history::suspects::Suspects;
use crate::keys::shard::MapBack;
use crate::remote::{Inventory, Listing, RemoteSource};
use crate::remote::{RestoredState, TrustedState};
use crate::report::Report;
use crate::run::progress::Progress;
use crate::s3client::{self, Connection, Direct};
use crate::scan::WalkOptions;
use crate::sink::{
    Applied, Checking, Counting, Finish, Guarded, Heads, PlanSink, Retiring, S3Sink, Sink, SinkContext, Tracker, Upload,
};
use crate::state;
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

impl Stages {
    /// The stages of a run; a sync takes the target's lock in the bucket first, into `held`, so
    /// that the run releases it however it ends.
    pub async fn build(
        config: &Config,
        opts: &RunOptions,
        stop: &Stop,
        held: &mut Option<BucketLock>,
    ) -> Result<Stages, Error> {
        let clock = Arc::new(Clock::default());
        let (client, direct) = tokio::select! {
            client = connect(&config.store, &config.target.bucket, clock.clone()) => client?,
            _ = stop.requested_wait() => return Err(Error::Interrupted(stop.signal().unwrap_or("a signal"))),
        };
        *held = bucket_lock(config, opts, (&client, &clock), stop).await?;
        let walk = config.walk_options();
        let identity = config.state_identity();
        let state = match &config.state {
            Some(path) => open_state(path, &identity).await,
            None => None,
        };
        let (recorded, marker) = chain_marker(config, &client).await?;
        let refresh = marker.is_some();
        let guard = !opts.allow_immutable_change;
        let history = SyncHistory::open(config, opts, &client, &clock).await?;
        let mut diff = diff_for(config, &walk, refresh, guard);
        diff.suspects(history.suspects.clone());
        let chain = (config.chain.fingerprint().to_owned(), recorded);
        let record = history.record(config, &client, clock.clone(), chain);
        let after = after_steps(config, opts, (&identity, &client), marker, record).await;
        let progress = Progress::start(opts.progress)?;
        let (sink, tracker) = sink(config, opts, (&client, direct), &clock, stop, history.keeper.clone());
        let sink = checked(config, sink, tracker.as_ref(), &progress, &client, (refresh, guard));
        let sink = match grace(config) {
            Some(grace) => retiring(config, opts, (&client, &clock), stop, (sink, grace)).await?,
            None => sink,
        };
        let remote = remote(config, &client, identity, &history.suspects);
        let limits = limits_for(config, opts);
        let probe = Probe { clock, client, bucket: config.target.bucket.clone() };
        Ok(Stages { walk, remote, state, diff, sink, tracker, probe, limits, after, progress })
    }
}

/// The diff of the run: its change rule, the keys the chain hides on the remote side, the shard
/// it owns (and what the walk leaves to other shards), how "changed" is decided; with `refresh`,
/// the chain changed since the objects were published; with `guard`, an immutable key's bytes
/// are read before it is uploaded.
pub fn diff_for(config: &Config, walk: &WalkOptions, refresh: bool, guard: bool) -> Diff {
    let mut diff = Diff::new(config.rule);
    diff.hide(config.chain.remote_filter());
    diff.shard(config.shard.clone(), walk.elsewhere.clone());
    let own_part = config.sink.multipart_chunk_size;
    diff.compare(Compare { mode: config.compare, own_part, learn: config.state.is_some(), guard });
    if !config.chain.keeps_order() {
        diff.local_unordered();
    }
    if refresh {
        diff.refresh_unchanged();
    }
    diff
}

/// The delete limits of a run: a plan reports crossing them at the end, a sync stops at once.
pub fn limits_for(config: &Config, opts: &RunOptions) -> DeleteLimits {
    DeleteLimits::new(&config.delete, opts.force_delete, !opts.dry_run)
}

/// Whether the chain changed since the objects under the prefix were published, whose marker
/// records `recorded` (empty when there is none).
pub fn chain_changed(config: &Config, recorded: &str) -> bool {
    recorded != config.chain.fingerprint()
}

/// The remote side the config chose: the listing, an S3 Inventory report, or the trusted state
/// (corrected by what rollbacks restored since, the `suspects`).
fn remote(
    config: &Config,
    client: &aws_sdk_s3::Client,
    identity: String,
    suspects: &Arc<Suspects>,
) -> Box<dyn RemoteSource> {
    let (client, target) = (client.clone(), config.target.clone());
    match &config.remote {
        RemoteChoice::Listing { parallel } => Box::new(Listing { client, target, parallel: *parallel }),
        RemoteChoice::Inventory { manifest } => {
            Box::new(Inventory { client, target, manifest: manifest.clone(), shard: config.shard.clone() })
        }
        RemoteChoice::TrustedState { path } => {
            let inner = Box::new(TrustedState { path: path.clone(), identity });
            match suspects.is_empty() {
                true => inner,
                false => Box::new(RestoredState { inner, suspects: suspects.clone() }),
            }
        }
    }
}

/// The post-run steps, in order: save the local state, record the deploy, write the chain's
/// marker, invalidate the CDN.
async fn after_steps(
    config: &Config,
    opts: &RunOptions,
    (identity, client): (&str, &aws_sdk_s3::Client),
    marker: Option<WriteMarker>,
    record: WriteRecord,
) -> Vec<Box<dyn AfterRun>> {
    let mut after: Vec<Box<dyn AfterRun>> = Vec::new();
    if let Some(path) = &config.state {
        after.push(Box::new(SaveState { path: path.clone(), identity: identity.to_owned() }));
    }
    after.push(Box::new(record));
    if let Some(marker) = marker {
        after.push(Box::new(marker));
    }
    if let Some(website) = website(config, client) {
        after.push(Box::new(website));
    }
    if let Some(invalidate) = invalidate(config, opts).await {
        after.push(Box::new(invalidate));
    }
    after
}

/// What the marker records, and the marker to write when the chain changed since the objects
/// under the prefix were published (they may carry stale headers, so every current object is
/// published again); `None` when the recorded chain is this one. Refused with `--trust-state`.
async fn chain_marker(config: &Config, client: &aws_sdk_s3::Client) -> Result<(String, Option<WriteMarker>), Error> {
    let (target, marker) = (&config.target, after::marker::key(config.shard.as_ref()));
    let recorded = after::marker::read(client, target, &marker).await?;
    if !chain_changed(config, &recorded) {
        return Ok((recorded, None));
    }
    let fingerprint = config.chain.fingerprint();
    // The state holds a compressed key's source size, not whether its object holds compressed
    // bytes: after a `compress` step changed, a plain file could be copied in place over gzip
    // bytes. Only a listing shows the objects' sizes.
    if matches!(config.remote, RemoteChoice::TrustedState { .. }) {
        return Err(Error::Untrusted("the transform chain changed since the objects under the prefix were published"));
    }
    match recorded.is_empty() {
        true => tracing::debug!("no transform chain recorded under the prefix: current objects get its headers"),
        false => tracing::info!("the transform chain changed since the last run: re-publishing every current object"),
    }
    let write = WriteMarker { client: client.clone(), target: target.clone(), marker, fingerprint: fingerprint.into() };
    Ok((recorded, Some(write)))
}

/// The sink of the run: the plan (`--dry-run`) or the S3 sink with the tracker of what it did.
fn sink(
    config: &Config,
    opts: &RunOptions,
    (client, direct): (&aws_sdk_s3::Client, Option<Arc<Direct>>),
    clock: &Arc<Clock>,
    stop: &Stop,
    keep: Option<Arc<Keeper>>,
) -> (Box<dyn Sink>, Option<Arc<Tracker>>) {
    let target = config.target.clone();
    if opts.dry_run {
        return (plan_sink(config), None);
    }
    let tracker = Arc::new(Tracker::default());
    let ctx = Arc::new(SinkContext {
        client: client.clone(),
        direct,
        target,
        tracker: tracker.clone(),
        multipart_threshold: config.sink.multipart_threshold,
        multipart_chunk_size: config.sink.multipart_chunk_size,
        clock: clock.clone(),
        compressing: SinkContext::compression_slots(),
        charset: config.sink.charset.clone(),
        learn: config.state.is_some(),
        cancel: stop.flag(),
        keep,
    });
    (Box::new(S3Sink::new(ctx, config.sink.workers, config.delete.enabled)), Some(tracker))
}

/// The sink of a dry run.
pub fn plan_sink(config: &Config) -> Box<dyn Sink> {
    Box::new(PlanSink::new(config.target.clone(), config.delete.enabled))
}

/// `sink` counted for the progress display, behind the content check that settles with the
/// bytes (or a HeadObject) what metadata cannot; `refresh` re-publishes unchanged keys, `guard`
/// refuses new bytes under an immutable key.
fn checked(
    config: &Config,
    sink: Box<dyn Sink>,
    tracker: Option<&Arc<Tracker>>,
    progress: &Progress,
    client: &aws_sdk_s3::Client,
    (refresh, guard): (bool, bool),
) -> Box<dyn Sink> {
    if let Some(tracker) = tracker {
        progress.follow(tracker.clone());
    }
    let sink: Box<dyn Sink> = Box::new(Counting::new(sink, progress.counts()));
    let heads = Heads::new(client.clone(), config.target.clone(), config.sink.workers);
    checking(config, sink, refresh, heads, guard)
}

/// The content check around the run's sink, whose HEADs `heads` answers. In every compare mode:
/// the inline bodies of a transform are compared by content. With the immutable `guard`, between
/// the two: after the check, which knows whether an immutable key's bytes differ.
pub fn checking(config: &Config, sink: Box<dyn Sink>, refresh: bool, heads: Heads, guard: bool) -> Box<dyn Sink> {
    let sink: Box<dyn Sink> = if guard { Box::new(Guarded::new(sink)) } else { sink };
    Box::new(Checking::new(sink, config.sink.multipart_chunk_size, refresh).with_heads(heads))
}

/// How long a run keeps the objects whose file is gone before it deletes them: `delete_grace`,
/// when deletes are on. `None`: deleted at once, or (`--no-delete`) never, and the ledger of
/// retired keys is left as it is.
pub fn grace(config: &Config) -> Option<Duration> {
    config.delete.grace.filter(|_| config.delete.enabled)
}

/// `sink` behind the ledger of retired keys (every layout's file, read now): deletes become
/// retirements until their grace is over. A sync writes this layout's new file as it goes and
/// uploads it after its deletes; a plan only shows what it would retire.
async fn retiring(
    config: &Config,
    opts: &RunOptions,
    (client, clock): (&aws_sdk_s3::Client, &Arc<Clock>),
    stop: &Stop,
    (sink, grace): (Box<dyn Sink>, Duration),
) -> Result<Box<dyn Sink>, Error> {
    let own = Layout::of(config.shard.as_ref());
    let mapping = MapBack::new(config.chain.duplicate_rules()).unwrap_or_default();
    let ledger = match ledger::fetch(client, &config.target, own.clone(), &mapping).await {
        Ok(ledger) => ledger,
        // A request that fails fails the run, as the listing's would; a ledger that cannot be
        // read only withholds the deletes.
        Err(LedgerError::Store(e)) => return Err(Error::Store(e)),
        Err(e) => return Ok(Box::new(Retiring::unreadable(sink, own, &e))),
    };
    // The ledger's requests have measured the clock by now.
    let offset = clock.bounds();
    let now = crate::history::server_now(offset);
    // Never older than a file read, whatever this machine's clock: the new file speaks for its keys.
    let written = ledger.written_after().map_or(now, |after| after.max(now));
    let retiring = Retiring::new(sink, ledger, grace, (now, offset));
    if opts.dry_run {
        return Ok(Box::new(retiring));
    }
    let new = NewLedger::new(&own, written).map_err(|source| LedgerError::Disk { key: own.key(), source })?;
    let upload = Upload { client: client.clone(), target: config.target.clone(), cancel: stop.flag() };
    Ok(Box::new(retiring.writing(new, upload)))
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

/// The CloudFront invalidation, when a distribution is configured.
async fn invalidate(config: &Config, opts: &RunOptions) -> Option<Invalidate> {
    invalidation(config.invalidate.as_ref(), &config.store, &config.target, opts.wait_invalidation).await
}

/// The CloudFront invalidation of `settings`, waited for with `wait`; its client comes from the
/// AWS chain even with the embedded store, whose credentials are S3's only.
pub async fn invalidation(
    settings: Option<&Settings>,
    store: &crate::config::Store,
    target: &crate::keys::target::Target,
    wait: bool,
) -> Option<Invalidate> {
    let settings = Settings { wait, ..settings?.clone() };
    let conn =
        Connection { endpoint_url: None, path_style: false, static_credentials: None, ..store.connection.clone() };
    Some(Invalidate { client: s3client::cloudfront(&conn).await, target: target.clone(), settings })
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
            tracing::warn!("requests still in flight after {}s were abandoned", crate::run::stop::GRACE.as_secs());
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
            Err(e) => {
                let failure = e.failure();
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
