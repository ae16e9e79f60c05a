//! The workers of the S3 sink: a pool of tasks sharing one bounded queue of jobs.
//!
//! The queue holds twice as many jobs as there are workers, so whoever feeds it waits while the
//! workers are busy instead of filling memory. A worker that panics is reported as a failure of
//! the run (which then sends no deletes), not left to bring the process down or to pass unseen.
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
                // The worker's last small upload, checked on its next trip to the blocking pool.
                let mut unchecked = None;
                loop {
                    let job = rx.lock().await.recv().await;
                    let Some(job) = job else { break };
                    if ctx.cancelled() {
                        continue;
                    }
                    match job {
                        Job::Upload { file, added } => {
                            if ctx.keep_first(&file.key, added, FailedOp::Upload).await.is_some() {
                                unchecked = upload::run(&ctx, file, added, unchecked.take()).await;
                            }
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
