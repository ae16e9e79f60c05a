//! Applying a rollback: restoring keys from what a deploy kept, by server-side copy, with the
//! workers and in the phases of a sync.
//!
//! Restores of assets go first, then of pages (HTML), then the deletes of keys later deploys
//! added, and only when nothing failed: the order a sync keeps, so a page never points at an asset
//! that is not back yet. A rollback is itself a deploy: each key is kept before it is overwritten
//! or deleted (`pool`), so the rollback can be undone too. A restore asks the kept object (or the
//! version) for its headers, then copies it to its key with `MetadataDirective=REPLACE` and all of
//! them, the website redirect location included (CopyObject never copies it), on the condition
//! that the source is still the object the HEAD saw. No byte goes through this machine.

use std::sync::Arc;

use super::made::Made;
use super::pool::{Job, Pool, SinkContext};
use super::s3::delete_kept;
use super::{Applied, FailedOp};
use crate::error::{Op, StoreError};
use crate::history::keep::{Headers, Kept, copy};
use crate::history::rollback::{From, Plan, Step, Steps};
use crate::model::Time;
use crate::s3client::to_time;

/// Restores read from a plan's file at a time.
const CHUNK: usize = 1000;

/// Restores `step.key` from where the step says.
pub(super) async fn run(ctx: &SinkContext, step: Step) {
    let Some(kept) = ctx.keep_first(&step.key, false, FailedOp::Copy).await else { return };
    let (source, version) = match &step.from {
        From::Kept { kept } => (ctx.target.key(kept), None),
        From::Version { version } => (ctx.target.key(&step.key), Some(version.as_str())),
    };
    let url = match version {
        Some(v) => format!("s3://{}/{source}?versionId={v}", ctx.target.bucket),
        None => format!("s3://{}/{source}", ctx.target.bucket),
    };
    let fail = |why: String| ctx.tracker.failed(step.key.clone(), FailedOp::Copy, why);
    let head =
        ctx.client.head_object().bucket(&ctx.target.bucket).key(&source).set_version_id(version.map(str::to_owned));
    let headers = match head.send().await {
        Ok(head) => Headers::of(&head),
        Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => {
            return fail(format!("what deploy {} kept of it is gone ({url}): purged, or deleted by hand", step.deploy));
        }
        Err(e) => return fail(StoreError::sdk(Op::Head, url, e).message),
    };
    let (headers, etag) = match version {
        Some(_) => (headers.clone(), headers.etag),
        None => (headers.clone().restored().0, headers.etag),
    };
    let key = ctx.target.key(&step.key);
    let request = copy(&ctx.client, &ctx.target.bucket, &source, version, &headers).key(&key);
    let request = match etag.as_deref() {
        Some(etag) => request.copy_source_if_match(format!("\"{etag}\"")),
        None => request,
    };
    let sent = Time::now();
    match crate::send_sized!(request, &ctx.client, headers.size) {
        Ok(copied) => {
            tracing::debug!("restored {key} from {url}");
            let result = copied.copy_object_result();
            let mut made = Made::between(ctx, sent, result.and_then(|r| r.e_tag()));
            if let Some(lm) = result.and_then(|r| r.last_modified()) {
                made.exactly(to_time(lm));
            }
            ctx.tracker.copied(&step.key, kept == Kept::Absent, made.known(headers.size, Time(0), None));
        }
        Err(e) => fail(format!("from {url}: {}", StoreError::sdk(Op::Copy, &url, e).message)),
    }
}

/// Applies a rollback's plan with a pool of `workers`.
pub struct Restorer {
    pub ctx: Arc<SinkContext>,
    pub workers: usize,
}

impl Restorer {
    /// Restores, then deletes when `deletes` (the limits allow them) and nothing failed; says
    /// what was done.
    pub async fn apply(&self, plan: &Plan, deletes: bool) -> Applied {
        for steps in [&plan.assets, &plan.pages] {
            if !self.ctx.cancelled() {
                self.phase(steps).await;
            }
        }
        for (key, why) in &plan.unrestorable {
            self.ctx.tracker.failed(key.clone(), FailedOp::Copy, format!("cannot restore it: {why}"));
        }
        let failed = self.ctx.tracker.failure_count() > 0;
        let withheld = match !plan.deletes.is_empty() && deletes && !failed && !self.ctx.cancelled() {
            true => delete_kept(&self.ctx, self.workers, plan.deletes.clone()).await,
            false => plan.deletes.len() as u64,
        };
        if failed && !plan.deletes.is_empty() {
            tracing::warn!("{} deletes withheld because something failed; run the rollback again", plan.deletes.len());
        }
        let mut applied = self.ctx.tracker.applied(withheld);
        applied.changes = self.ctx.tracker.journal().take().await;
        applied
    }

    /// Sends every restore of `steps`, read from their file a chunk at a time.
    async fn phase(&self, steps: &Steps) {
        if steps.count == 0 {
            return;
        }
        let mut read = match steps.read() {
            Ok(read) => Some(read),
            Err(e) => return self.ctx.tracker.failed("(rollback plan)", FailedOp::Copy, e.to_string()),
        };
        let pool = Pool::start(&self.ctx, self.workers);
        while let Some(mut steps) = read.take() {
            let chunk = tokio::task::spawn_blocking(move || {
                let chunk: Vec<std::io::Result<Step>> = steps.by_ref().take(CHUNK).collect();
                (chunk, steps)
            });
            let Ok((chunk, rest)) = chunk.await else { break };
            if chunk.is_empty() || self.ctx.cancelled() {
                break;
            }
            for step in chunk {
                match step {
                    Ok(step) => pool.send(Job::Restore(step)).await,
                    Err(e) => self.ctx.tracker.failed("(rollback plan)", FailedOp::Copy, e.to_string()),
                }
            }
            self.spill().await;
            read = Some(rest);
        }
        pool.finish().await;
    }

    async fn spill(&self) {
        let kept = match &self.ctx.keep {
            Some(keeper) => keeper.log().spill().await,
            None => Ok(()),
        };
        if let Err(e) = kept.and(self.ctx.tracker.journal().spill().await) {
            self.ctx.tracker.failed("(changes)", FailedOp::Copy, format!("cannot write the record of changes: {e}"));
        }
    }
}
