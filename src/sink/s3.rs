//! The sink that applies the diff's decisions to the bucket.
//!
//! A site must never point at an asset that is not there yet, so it works in phases (`phase`
//! says which an action runs in, for the plan too): assets are
//! uploaded as the diff finds them, pages (HTML) wait until every asset is up, then the keys made
//! by server-side copy (a file's other keys, once it is up; objects re-published because the
//! chain changed), and deletes come last, in batches of up to 1,000 keys, and only if nothing
//! failed. Pages and copies waiting for their phase spill to disk past a chunk ([`Spill`]).

use std::sync::Arc;

use super::phase::{Phase, in_place};
use super::pool::{Job, Pool, SinkContext};
use super::spill::{Spill, Waiting};
use super::{Applied, FailedOp, Finish, Sink};
use crate::journal::Change;
use crate::model::{Event, Known, LocalFile, Reason, RemoteObject};

pub struct S3Sink {
    ctx: Arc<SinkContext>,
    workers: usize,
    assets: Option<Pool>,
    /// Pages wait for every asset; a large first sync spills them to disk.
    pages: Spill,
    /// Keys to make by server-side copy once every upload is done, each with its source in
    /// `copy_of`.
    copies: Spill,
    /// False with `--no-delete`: delete events are dropped.
    delete: bool,
    deletes: Vec<RemoteObject>,
    /// Keys this run retires instead of deleting (`sink::Retiring` records them): they count
    /// toward the delete limits as deletes do.
    retiring: u64,
}

impl S3Sink {
    pub fn new(ctx: Arc<SinkContext>, workers: usize, delete: bool) -> S3Sink {
        let assets = Some(Pool::start(&ctx, workers));
        let (pages, copies) = (Spill::default(), Spill::default());
        S3Sink { ctx, workers, assets, pages, copies, delete, deletes: Vec::new(), retiring: 0 }
    }

    async fn upload(&mut self, mut file: LocalFile, reason: Reason) {
        let added = reason == Reason::New;
        let phase = Phase::of_upload(&file, reason);
        // Re-publishing a current object copies it onto itself (a compressed one is uploaded
        // again); another key of a file copies it from the key it is uploaded under.
        if in_place(&file, reason) {
            file.copy_of = Some(file.key.clone());
        }
        let key = self.ctx.target.key(&file.key);
        match &file.copy_of {
            Some(source) => tracing::debug!("copy {key} from {source} ({})", reason.as_str()),
            None => tracing::debug!("upload {key} ({})", reason.as_str()),
        }
        let waiting = Waiting { file, added };
        match (phase, &self.assets) {
            (Phase::Copies, _) => self.copies.push(waiting).await,
            // Redirect objects go with the pages: Phase::Redirects is a plan's group only.
            (Phase::Assets, Some(pool)) => pool.send(Job::Upload { file: waiting.file, added }).await,
            _ => self.pages.push(waiting).await,
        }
    }

    /// Runs the jobs `job` makes of what `waiting` holds, on a pool of their own; a `None` job
    /// is one `job` has already reported as failed.
    async fn drain(&self, mut waiting: Spill, what: &str, mut job: impl FnMut(Waiting) -> Option<Job>) {
        if waiting.is_empty() || self.ctx.cancelled() {
            return;
        }
        let pool = Pool::start(&self.ctx, self.workers);
        loop {
            match waiting.next_chunk().await {
                Ok(Some(chunk)) => {
                    for waiting in chunk {
                        if let Some(job) = job(waiting) {
                            pool.send(job).await;
                        }
                    }
                    self.spill_journal().await;
                }
                Ok(None) => break,
                Err(e) => {
                    let why = format!("cannot read back the waiting {what}: {e}");
                    self.ctx.tracker.failed(format!("({what})"), FailedOp::Upload, why);
                    break;
                }
            }
        }
        pool.finish().await;
    }

    async fn spill_journal(&self) {
        let kept = match &self.ctx.keep {
            Some(keeper) => keeper.log().spill().await,
            None => Ok(()),
        };
        if let Err(e) = kept.and(self.ctx.tracker.journal().spill().await) {
            self.ctx.tracker.failed("(changes)", FailedOp::Upload, format!("cannot write the record of changes: {e}"));
        }
    }

    /// The copy phase: after every upload, so a copy never reads a source that is not up yet.
    async fn copy(&mut self) {
        let copies = std::mem::take(&mut self.copies);
        let failed = self.ctx.tracker.failed_keys(FailedOp::Upload);
        let tracker = self.ctx.tracker.clone();
        self.drain(copies, "copies", |Waiting { mut file, added }| {
            let source = file.copy_of.take()?;
            if failed.contains(&source) {
                tracker.failed(file.key, FailedOp::Copy, format!("not copied: its source {source} failed to upload"));
                return None;
            }
            Some(Job::Copy { file, source, added })
        })
        .await;
    }

    /// Sends the deletes, unless `allowed` is false or something failed; returns how many were
    /// withheld.
    async fn delete(&mut self, allowed: bool) -> u64 {
        let deletes = std::mem::take(&mut self.deletes);
        if deletes.is_empty() {
            return 0;
        }
        let failures = self.ctx.tracker.failure_count();
        if !allowed || self.ctx.cancelled() || failures > 0 {
            if failures > 0 {
                tracing::warn!(
                    "{} deletes withheld because something failed; a clean run will send them",
                    deletes.len()
                );
            }
            return deletes.len() as u64;
        }
        let keys: Vec<String> = deletes.into_iter().map(|o| o.key).collect();
        delete_kept(&self.ctx, self.workers, keys).await
    }
}

/// Deletes `keys` (relative to the prefix), each kept first when the run keeps a history; when
/// one cannot be kept, none is deleted (a clean run will). Returns how many were withheld.
pub(super) async fn delete_kept(ctx: &Arc<SinkContext>, workers: usize, keys: Vec<String>) -> u64 {
    if ctx.keep.is_some() {
        let failures = ctx.tracker.failure_count();
        let pool = Pool::start(ctx, workers);
        for key in &keys {
            pool.send(Job::Keep(key.clone())).await;
        }
        pool.finish().await;
        if ctx.tracker.failure_count() > failures || ctx.cancelled() {
            tracing::warn!("{} deletes withheld: an object could not be kept first", keys.len());
            return keys.len() as u64;
        }
    }
    let pool = Pool::start(ctx, workers.min(8));
    for chunk in keys.chunks(1000) {
        pool.send(Job::Delete(chunk.iter().map(|k| ctx.target.key(k)).collect())).await;
    }
    pool.finish().await;
    0
}

#[async_trait::async_trait]
impl Sink for S3Sink {
    async fn accept(&mut self, events: Vec<Event>) {
        for event in events {
            match super::unread(event) {
                Event::Upload { file, reason } => self.upload(file, reason).await,
                Event::Delete { object, .. } if self.delete => self.deletes.push(object),
                Event::Delete { .. } => {}
                Event::Retire { object, since } => {
                    // A new retirement is a change of the deploy (a rollback un-retires it); one
                    // still in its grace is not.
                    if since.is_none() {
                        self.retiring += 1;
                        self.ctx.tracker.journal().record(object.key, Change::Retired, false);
                    }
                }
                Event::Problem(p) => self.ctx.tracker.failed(p.place, p.op, p.message),
                Event::Same { file, object, md5 } => {
                    let known = Known::of(&file, &object, md5);
                    self.ctx.tracker.journal().learn(file.key, Change::Confirmed, false, known);
                }
                Event::Check { .. } | Event::Head { .. } => {}
            }
        }
        self.spill_journal().await;
    }

    fn deletes_planned(&self) -> u64 {
        self.deletes.len() as u64 + self.retiring
    }

    fn failures(&self) -> u64 {
        self.ctx.tracker.failure_count()
    }

    async fn finish(mut self: Box<Self>, finish: Finish) -> Applied {
        if let Some(assets) = self.assets.take() {
            assets.finish().await;
        }
        let pages = std::mem::take(&mut self.pages);
        self.drain(pages, "pages", |Waiting { file, added }| Some(Job::Upload { file, added })).await;
        self.copy().await;
        let withheld = self.delete(finish.deletes).await;
        let mut applied = self.ctx.tracker.applied(withheld);
        applied.changes = self.ctx.tracker.journal().take().await;
        applied
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::keys::target::Target;
    use crate::model::Time;
    use crate::sink::Tracker;

    #[tokio::test]
    async fn copies_waiting_for_their_phase_spill_to_disk() {
        // No request is sent before `finish`, so the client may point nowhere.
        let client = crate::s3client::client(
            &crate::s3client::Connection { endpoint_url: Some("http://127.0.0.1:9".into()), ..Default::default() },
            Default::default(),
        )
        .await;
        let ctx = Arc::new(SinkContext {
            client,
            direct: None,
            target: Target::parse("s3://bkt/site").unwrap(),
            tracker: Arc::new(Tracker::default()),
            multipart_threshold: u64::MAX,
            multipart_chunk_size: 8 << 20,
            clock: Default::default(),
            compressing: SinkContext::compression_slots(),
            charset: Default::default(),
            learn: false,
            cancel: Arc::new(AtomicBool::new(false)),
            keep: None,
        });
        let mut sink = S3Sink::new(ctx, 1, true);
        let n = super::super::spill::CHUNK * 2 + 7;
        for i in 0..n {
            let mut file = LocalFile::new(format!("mirror/{i}"), format!("/src/{i}").into(), 1, Time(0));
            file.copy_of = Some(format!("{i}"));
            sink.accept(vec![Event::Upload { file, reason: Reason::New }]).await;
        }
        assert_eq!(sink.copies.in_memory(), 7, "all but the last partial chunk went to disk");
    }
}
