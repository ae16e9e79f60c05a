//! The wiring of the commands on the history: `deploys` (list), `deploys purge`, and `rollback`.
//!
//! A rollback is a run like a sync, without a source: it takes the target's lock, reads the
//! history (`history::timeline`), plans (`history::rollback`), checks the delete limit, restores
//! the chain marker of the deploy it goes to (the chain its objects were published with: a sync
//! from a tree built with another chain then re-publishes what it must), applies the plan with the
//! sink's workers and phases (`sink::Restorer`), keeping what it overwrites, and ends with the
//! post-run steps of a sync: its own record, and the CloudFront invalidation.

use std::sync::Arc;
use std::time::Instant;

use aws_sdk_s3::primitives::ByteStream;

use super::connect::connect;
use super::locks;
use super::stages::{self, Finished};
use crate::after::{AfterRun, WriteRecord};
use crate::clock::Clock;
use crate::config::BucketConfig;
use crate::diff::{DeleteLimits, Tally};
use crate::error::{Error, Op, StoreError};
use crate::history::keep::Keeper;
use crate::history::record::Kind;
use crate::history::retention::{self, Purged};
use crate::history::rollback::{self, Plan};
use crate::history::timeline::{Listed, Point, Timeline};
use crate::history::{DeployId, HistoryError, MARKER, per_shard, server_now, store};
use crate::keys::names::printable;
use crate::keys::shard::Shard;
use crate::keys::target::Target;
use crate::report::Report;
use crate::run::lock::{self, RunLock};
use crate::run::stop::Stop;
use crate::sink::{Applied, FailedOp, Phase, Restorer, SinkContext, Tracker};

/// Per-run choices of a rollback that are not configuration.
#[derive(Debug, Clone, Default)]
pub struct RollbackOptions {
    /// The deploy to go back to; `None`: the one before the live state's.
    pub to: Option<String>,
    pub dry_run: bool,
    pub force_delete: bool,
    pub wait_lock: bool,
    pub wait_invalidation: bool,
}

/// The deploys recorded under the target, newest first.
pub async fn deploys(config: &BucketConfig) -> Result<Vec<Listed>, Error> {
    let client = connect(&config.store, &config.target.bucket, Arc::default()).await?.0;
    Ok(Timeline::read(&client, &config.target).await?.listed())
}

/// Removes `keys` from every deploy that kept them, under the target's lock.
pub async fn purge(config: &BucketConfig, keys: &[String]) -> Result<Purged, Error> {
    let _lock = lock::acquire(&config.lock_path(), &config.target.to_string(), false).await?;
    let client = connect(&config.store, &config.target.bucket, Arc::default()).await?.0;
    Ok(retention::purge(&client, &config.target, keys).await?)
}

/// Runs one rollback (or, with `dry_run`, plans it). A second signal cuts it short.
pub async fn run(config: &BucketConfig, opts: &RollbackOptions) -> Result<Report, Error> {
    if let Some(shard) = &config.shard {
        return Err(HistoryError::Sharded(shard.clone()).into());
    }
    let stop = Stop::listen().map_err(Error::Signals)?;
    tokio::select! {
        report = run_until_stopped(config, opts, &stop) => report,
        signal = stop.forced() => Err(Error::CutShort(signal)),
    }
}

async fn run_until_stopped(config: &BucketConfig, opts: &RollbackOptions, stop: &Stop) -> Result<Report, Error> {
    let started = Instant::now();
    let _lock = take_lock(config, opts, stop).await?;
    let clock = Arc::new(Clock::default());
    let client = connect(&config.store, &config.target.bucket, clock.clone()).await?.0;
    // The same lock in the bucket as a sync of the whole target: a rollback and a deploy never
    // interleave, on one machine or several.
    let held = match opts.dry_run {
        true => None,
        false => {
            let what = locks::LockedTarget {
                target: &config.target,
                shard: None,
                mode: config.remote_lock,
                wait: opts.wait_lock,
            };
            locks::take_bucket_lock(what, (&client, &clock), stop).await?
        }
    };
    let outcome = roll_back(config, opts, stop, (client, clock), started).await;
    match held {
        Some(lock) => locks::release(lock, outcome).await,
        None => outcome,
    }
}

/// The rollback itself, its locks held: plans it from the history, restores (assets, pages,
/// deletes), un-retires what it brought back, and records it.
async fn roll_back(
    config: &BucketConfig,
    opts: &RollbackOptions,
    stop: &Stop,
    (client, clock): (aws_sdk_s3::Client, Arc<Clock>),
    started: Instant,
) -> Result<Report, Error> {
    let timeline = Timeline::read(&client, &config.target).await?;
    let point = timeline.resolve(opts.to.as_deref())?;
    let plan = rollback::plan(&client, &timeline, point).await?;
    for id in &plan.stopped {
        tracing::warn!(
            "run {id} stopped before it recorded its deploy: what it changed is restored, what it added is left"
        );
    }
    if opts.dry_run {
        return Ok(planned(&plan, &config.target, started));
    }
    let limits = DeleteLimits::new(&config.delete, opts.force_delete, true);
    if let Some(why) = limits.check(plan.deletes.len() as u64, None) {
        let mut report = Report::new(Applied::default(), false, 0, started.elapsed());
        report.refused = Some(why);
        return Ok(report);
    }
    restore_markers(&client, &config.target, &plan.point).await?;
    let newest = timeline.records.iter().map(|(id, _)| id).chain(&timeline.stopped).max();
    let id = DeployId::after(server_now(clock.bounds()), None, newest);
    let keeper = Arc::new(Keeper::new(client.clone(), config.target.clone(), id.clone()));
    let tracker = Arc::new(Tracker::default());
    let ctx = context(config, &client, (&clock, &tracker), stop, keeper.clone());
    let restorer = Restorer { ctx, workers: config.sink.workers };
    let applied = restorer.apply(&plan, config.delete.enabled).await;
    // Keys later deploys retired are part of the state rolled back to: no grace runs out on them.
    if !plan.unretire.is_empty() {
        let keys: std::collections::BTreeSet<String> = plan.unretire.iter().cloned().collect();
        let dropped = crate::history::ledger::unretire(&client, &config.target, None, &keys).await?;
        tracing::info!("{dropped} retired keys are back in the site and no longer retired");
    }
    let steps = after_steps(config, opts, &client, (id, keeper, clock), &plan.point).await;
    let finished = Finished { applied, tally: Tally::default(), refused: None, complete: true, failed: None };
    let mut report = stages::after(finished, steps, false, stop, started).await?;
    report.extra.insert("to".into(), plan.point.id.0.clone().into());
    Ok(report)
}

/// The target's lock, as a sync of the whole target takes it; a dry run changes nothing.
async fn take_lock(config: &BucketConfig, opts: &RollbackOptions, stop: &Stop) -> Result<Option<RunLock>, Error> {
    if opts.dry_run {
        return Ok(None);
    }
    locks::this_machines_lock(&config.lock_path(), &config.target.to_string(), opts.wait_lock, stop).await.map(Some)
}

fn context(
    config: &BucketConfig,
    client: &aws_sdk_s3::Client,
    (clock, tracker): (&Arc<Clock>, &Arc<Tracker>),
    stop: &Stop,
    keeper: Arc<Keeper>,
) -> Arc<SinkContext> {
    Arc::new(SinkContext {
        client: client.clone(),
        // A rollback copies; its only upload is its record.
        direct: None,
        target: config.target.clone(),
        tracker: tracker.clone(),
        multipart_threshold: config.sink.multipart_threshold,
        multipart_chunk_size: config.sink.multipart_chunk_size,
        clock: clock.clone(),
        compressing: SinkContext::compression_slots(),
        charset: config.sink.charset.clone(),
        learn: false,
        cancel: stop.flag(),
        keep: Some(keeper),
    })
}

/// The rollback's record, then the CloudFront invalidation of what it restored.
async fn after_steps(
    config: &BucketConfig,
    opts: &RollbackOptions,
    client: &aws_sdk_s3::Client,
    (id, keeper, clock): (DeployId, Arc<Keeper>, Arc<Clock>),
    point: &Point,
) -> Vec<Box<dyn AfterRun>> {
    let record = WriteRecord {
        client: client.clone(),
        target: config.target.clone(),
        id,
        kind: Kind::Rollback,
        to: Some(point.id.clone()),
        message: config.history.message.clone(),
        shard: None,
        chain: (point.chain.clone(), point.chain.clone()),
        keeper: Some(keeper),
        retention: None,
        settles: false,
        clock,
        grace: None,
    };
    let mut steps: Vec<Box<dyn AfterRun>> = vec![Box::new(record)];
    let invalidate =
        stages::invalidation(config.invalidate.as_ref(), &config.store, &config.target, opts.wait_invalidation);
    if let Some(invalidate) = invalidate.await {
        steps.push(Box::new(invalidate));
    }
    steps
}

/// Gives every chain marker of the target (the whole run's, each shard's, and those of the
/// deploy's layout) the content it had after the deploy the rollback goes to.
async fn restore_markers(client: &aws_sdk_s3::Client, target: &Target, point: &Point) -> Result<(), Error> {
    let mut markers: Vec<String> =
        store::keys_under(client, target, MARKER).await?.into_iter().map(|tail| format!("{MARKER}{tail}")).collect();
    for shard in &point.shards {
        markers.push(per_shard(MARKER, shard.map(|(k, n)| Shard::new(k, n)).as_ref()));
    }
    markers.sort();
    markers.dedup();
    for marker in markers {
        let now = crate::after::marker::read(client, target, &marker).await?;
        if now == point.chain {
            continue;
        }
        let key = target.key(&marker);
        let put = client.put_object().bucket(&target.bucket).key(&key).content_type("application/json");
        let put = put.body(ByteStream::from(point.chain.clone().into_bytes())).send().await;
        put.map_err(|e| StoreError::sdk(Op::Put, format!("s3://{}/{key}", target.bucket), e))?;
        tracing::debug!("chain marker {marker} set to the chain of deploy {}", point.id);
    }
    Ok(())
}

/// The report of a dry run: the plan, as a sync's plan reads.
fn planned(plan: &Plan, target: &Target, started: Instant) -> Report {
    let mut steps = Vec::new();
    let mut failures = Vec::new();
    for restores in [&plan.assets, &plan.pages] {
        let read = tokio::task::block_in_place(|| restores.read().map(|r| r.collect::<Vec<_>>()));
        for step in read.into_iter().flatten() {
            match step {
                Ok(step) => steps.push(crate::sink::Step {
                    phase: Phase::Copies,
                    key: target.key(&step.key),
                    detail: format!("(restore as deploy {} kept it)", step.deploy),
                    bytes: 0,
                }),
                Err(e) => failures.push(("(rollback plan)".to_owned(), e.to_string())),
            }
        }
    }
    for key in &plan.deletes {
        steps.push(crate::sink::Step { phase: Phase::Deletes, key: target.key(key), detail: String::new(), bytes: 0 });
    }
    failures.extend(plan.unrestorable.iter().map(|(key, why)| (key.clone(), format!("cannot restore it: {why}"))));
    for (key, why) in &failures {
        steps.push(crate::sink::Step { phase: Phase::Problems, key: target.key(key), detail: why.clone(), bytes: 0 });
    }
    let applied = Applied {
        copied: plan.assets.count + plan.pages.count,
        deleted: plan.deletes.len() as u64,
        failures: failures
            .into_iter()
            .map(|(key, error)| crate::sink::Failure { key, op: FailedOp::Copy, error })
            .collect(),
        plan: crate::sink::plan::render(&mut steps, 0, 0),
        ..Applied::default()
    };
    let mut report = Report::new(applied, true, 0, started.elapsed());
    report.extra.insert("to".into(), plan.point.id.0.clone().into());
    tracing::debug!("rollback to {}: {} keys", printable(&plan.point.id.0), report.copied + report.deleted);
    report
}
