//! The workers of the S3 sink: a pool of tasks sharing one bounded queue of jobs.
//!
//! The queue holds twice as many jobs as there are workers, so whoever feeds it waits while the
//! workers are busy instead of filling memory. A worker that takes a small upload also takes the
//! small uploads queued behind it, up to a batch (`gather`), and reads them on one trip to the
//! blocking pool: a trip costs more CPU than reading a small file. It still sends one request at a
//! time, so the workers are the requests in flight. A worker that panics is reported as a failure
//! of the run (which then sends no deletes), not left to bring the process down or to pass unseen.
//!
//! When the run keeps a history, a worker keeps the object under a key (`history::keep`) just
//! before it overwrites it, as part of the same job: keeping is bounded by the same workers, and
//! a key whose object could not be kept is not changed (it is reported failed, so the run sends
//! no deletes and exits 1).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinSet;

use super::{FailedOp, Tracker};
use super::{copy, delete, restore, upload};
use crate::history::keep::{Keeper, Kept};
use crate::history::rollback::Step;
use crate::journal::Change;
use crate::keys::target::Target;
use crate::model::LocalFile;

/// What every worker needs.
pub struct SinkContext {
    pub client: aws_sdk_s3::Client,
    /// Sends the small uploads the client would, without its orchestrator, when it can.
    pub direct: Option<Arc<crate::s3client::Direct>>,
    pub target: Target,
    pub tracker: Arc<Tracker>,
    pub multipart_threshold: u64,
    pub multipart_chunk_size: u64,
    /// The run's clock, to know when the server stamped what it made.
    pub clock: Arc<crate::clock::Clock>,
    /// What the text types' Content-Type says of their charset (`default_charset`).
    pub charset: crate::model::mime::Charset,
    /// Compressions at once (one a core), see `upload`.
    pub compressing: tokio::sync::Semaphore,
    /// The local state is on: compute the MD5 of what is uploaded from memory.
    pub learn: bool,
    /// Set when the run is stopping: queued work is dropped, in-flight requests finish.
    pub cancel: Arc<AtomicBool>,
    /// Keeps objects before they are changed, when the run keeps a history.
    pub keep: Option<Arc<Keeper>>,
}

impl SinkContext {
    /// As many compression slots as cores.
    pub fn compression_slots() -> tokio::sync::Semaphore {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    }

    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// Keeps `key`'s object before `op` changes it, when the run keeps a history; an `added` key
    /// had no object at all. `None` when it could not be kept (reported): the key is left as it is.
    pub(super) async fn keep_first(&self, key: &str, added: bool, op: FailedOp) -> Option<Kept> {
        let Some(keeper) = &self.keep else { return Some(Kept::Absent) };
        if added {
            keeper.log().kept(key, Change::Absent, None);
            return Some(Kept::Absent);
        }
        match keeper.keep(key).await {
            Ok(kept) => Some(kept),
            Err(e) => {
                self.tracker.failed(key, op, format!("not changed: its object could not be kept first: {e}"));
                None
            }
        }
    }
}

pub(super) enum Job {
    /// Upload `file`; `added` when no object had its key.
    Upload {
        file: LocalFile,
        added: bool,
    },
    /// Make `file.key` by copying `source` (both relative to the prefix).
    Copy {
        file: LocalFile,
        source: String,
        added: bool,
    },
    Delete(Vec<String>),
    /// Keep `key` (relative to the prefix) before it is deleted.
    Keep(String),
    /// Restore a key from what a deploy kept (a rollback).
    Restore(Step),
}

/// A set of workers sharing one bounded queue.
pub(super) struct Pool {
    tx: mpsc::Sender<Job>,
    workers: JoinSet<()>,
    ctx: Arc<SinkContext>,
}

impl Pool {
    pub fn start(ctx: &Arc<SinkContext>, workers: usize) -> Pool {
        let (tx, rx) = mpsc::channel(workers * 2);
        let rx = Arc::new(Mutex::new(rx));
        let mut set = JoinSet::new();
        for _ in 0..workers {
            let (ctx, rx) = (ctx.clone(), rx.clone());
            set.spawn(async move {
                // The worker's last small uploads, checked on its next trip to the blocking pool.
                let mut unchecked = Vec::new();
                // A job taken from the queue after a batch it could not join.
                let mut next = None;
                loop {
                    let (job, batch) = match next.take() {
                        Some(job) => (job, Vec::new()),
                        None => {
                            let mut rx = rx.lock().await;
                            let Some(job) = rx.recv().await else { break };
                            let batch = gather(&mut rx, &job, &mut next);
                            (job, batch)
                        }
                    };
                    if ctx.cancelled() {
                        continue;
                    }
                    match job {
                        Job::Upload { file, added } => {
                            let mut kept = Vec::with_capacity(batch.len() + 1);
                            for (file, added) in std::iter::once((file, added)).chain(batch) {
                                if ctx.keep_first(&file.key, added, FailedOp::Upload).await.is_some() {
                                    kept.push((file, added));
                                }
                            }
                            unchecked = upload::run(&ctx, kept, std::mem::take(&mut unchecked)).await;
                        }
                        Job::Copy { file, source, added } => {
                            if ctx.keep_first(&file.key, added, FailedOp::Copy).await.is_some() {
                                copy::run(&ctx, &file, &source, added).await;
                            }
                        }
                        Job::Delete(keys) => delete::run(&ctx, keys).await,
                        Job::Keep(key) => {
                            ctx.keep_first(&key, false, FailedOp::Delete).await;
                        }
                        Job::Restore(step) => restore::run(&ctx, step).await,
                    }
                }
                upload::finish(&ctx, unchecked).await;
            });
        }
        Pool { tx, workers: set, ctx: ctx.clone() }
    }

    pub async fn send(&self, job: Job) {
        // The workers only stop after the sender is dropped, so this cannot fail.
        let _ = self.tx.send(job).await;
    }

    /// Waits for the queued jobs to be done.
    pub async fn finish(self) {
        drop(self.tx);
        let mut workers = self.workers;
        while let Some(joined) = workers.join_next().await {
            if let Err(e) = joined {
                let why = if e.is_panic() {
                    crate::run::panic::message(e.into_panic().as_ref())
                } else {
                    "cancelled".to_owned()
                };
                self.ctx.tracker.failed(
                    "(worker)",
                    FailedOp::Upload,
                    format!("a worker stopped before its jobs were done: {why}"),
                );
            }
        }
    }
}

/// The small uploads queued right now behind `first` when it is one, to read on the same trip to
/// the blocking pool (see `upload::batchable`): at most [`upload::BATCH_FILES`] files and
/// [`upload::BATCH_BYTES`] in all. Taking only what is already queued keeps a worker from waiting
/// for a batch to fill, and from holding the last files of a run while the others are idle. A job
/// that cannot join the batch is left in `next`, the queue having no way to look before taking.
fn gather(rx: &mut mpsc::Receiver<Job>, first: &Job, next: &mut Option<Job>) -> Vec<(LocalFile, bool)> {
    let Job::Upload { file, .. } = first else { return Vec::new() };
    if !upload::batchable(file) {
        return Vec::new();
    }
    let (mut batch, mut bytes) = (Vec::new(), file.size);
    while batch.len() + 1 < upload::BATCH_FILES {
        match rx.try_recv() {
            Ok(Job::Upload { file, added }) if upload::batchable(&file) && bytes + file.size <= upload::BATCH_BYTES => {
                bytes += file.size;
                batch.push((file, added));
            }
            Ok(other) => {
                *next = Some(other);
                break;
            }
            Err(_) => break,
        }
    }
    batch
}
