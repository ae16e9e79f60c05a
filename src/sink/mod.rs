//! The sink: applies the diff's events with a pool of workers fed from a bounded queue.
//!
//! A site must never point at an asset that is not there yet, so the sink works in phases: assets
//! are uploaded as the diff finds them, pages (HTML) wait until every asset is up, then the keys
//! made by server-side copy (a file's other keys, once it is up; objects re-published because the
//! chain changed), then the chain marker, and deletes come last, in batches of up to 1,000 keys,
//! and only if nothing failed. In a dry run the same events become [`Step`]s of the plan and
//! nothing is sent.

/// Sets Content-Type and the chain's headers of a [`LocalFile`] on a PutObject,
/// CreateMultipartUpload or CopyObject request (same setters, no common trait).
macro_rules! with_headers {
    ($builder:expr, $file:expr) => {{
        let file: &$crate::model::LocalFile = $file;
        let mut b = $builder.content_type(file.content_type());
        if let Some(m) = file.meta.as_deref() {
            if let Some(v) = &m.cache_control {
                b = b.cache_control(v);
            }
            if let Some(v) = &m.content_encoding {
                b = b.content_encoding(v);
            }
            if let Some(v) = &m.content_disposition {
                b = b.content_disposition(v);
            }
            if let Some(v) = &m.content_language {
                b = b.content_language(v);
            }
            if let Some(v) = &m.storage_class {
                b = b.storage_class(aws_sdk_s3::types::StorageClass::from(v.as_str()));
            }
            if let Some(v) = &m.website_redirect_location {
                b = b.website_redirect_location(v);
            }
            for (k, v) in &m.metadata {
                b = b.metadata(k, v);
            }
        }
        b
    }};
}

mod copy;
mod delete;
mod spill;
mod upload;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinSet;

use crate::model::{Event, LocalFile, Reason, RemoteObject};
use crate::plan::{self, Step, is_page};
use crate::report::Tracker;
use crate::target::Target;
use crate::transform::MARKER_KEY;
use spill::Spill;

/// What every worker needs.
pub struct SinkContext {
    pub client: aws_sdk_s3::Client,
    pub target: Target,
    pub tracker: Arc<Tracker>,
    pub multipart_threshold: u64,
    pub multipart_chunk_size: u64,
    /// Set when the run is stopping: queued work is dropped, in-flight requests finish.
    pub cancel: Arc<AtomicBool>,
}

enum Job {
    Upload(LocalFile),
    /// Make `file.key` by copying `source` (both relative to the prefix).
    Copy {
        file: LocalFile,
        source: String,
    },
    Delete(Vec<String>),
}

/// A set of workers sharing one bounded queue.
struct Pool {
    tx: mpsc::Sender<Job>,
    workers: JoinSet<()>,
}

impl Pool {
    fn start(ctx: &Arc<SinkContext>, workers: usize) -> Pool {
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
                    if ctx.cancel.load(Ordering::Relaxed) {
                        continue;
                    }
                    match job {
                        Job::Upload(file) => unchecked = upload::run(&ctx, file, unchecked.take()).await,
                        Job::Copy { file, source } => copy::run(&ctx, &file, &source).await,
                        Job::Delete(keys) => delete::run(&ctx, keys).await,
                    }
                }
                upload::finish(&ctx, unchecked).await;
            });
        }
        Pool { tx, workers: set }
    }

    async fn send(&self, job: Job) {
        // The workers only stop after the sender is dropped, so this cannot fail.
        let _ = self.tx.send(job).await;
    }

    async fn finish(self) {
        drop(self.tx);
        let mut workers = self.workers;
        while let Some(joined) = workers.join_next().await {
            if let Err(e) = joined
                && e.is_panic()
            {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }
}

pub struct Sink {
    ctx: Arc<SinkContext>,
    workers: usize,
    assets: Option<Pool>,
    /// Pages wait for every asset; a large first sync spills them to disk.
    pages: Spill,
    /// Keys to make by server-side copy once every upload is done, each with its source in
    /// `copy_of`; a large site's copies spill to disk like its pages.
    copies: Spill,
    /// The chain fingerprint to record under the prefix once everything else succeeded.
    marker: Option<String>,
    /// False with `--no-delete`: delete events are dropped.
    delete: bool,
    deletes: Vec<RemoteObject>,
    /// `Some` in a dry run: the plan being collected.
    plan: Option<Vec<Step>>,
}

impl Sink {
    pub fn new(ctx: Arc<SinkContext>, workers: usize, dry_run: bool, delete: bool) -> Sink {
        let assets = (!dry_run).then(|| Pool::start(&ctx, workers));
        let plan = dry_run.then(Vec::new);
        Sink {
            ctx,
            workers,
            assets,
            pages: Spill::default(),
            copies: Spill::default(),
            marker: None,
            delete,
            deletes: Vec::new(),
            plan,
        }
    }

    /// Records `fingerprint` as the chain marker after the copies, if nothing failed.
    pub fn write_marker(&mut self, fingerprint: String) {
        self.marker = Some(fingerprint);
    }

    pub async fn accept(&mut self, events: Vec<Event>) {
        for event in events {
            if matches!(event, Event::Delete { .. }) && !self.delete {
                continue;
            }
            if let Some(plan) = &mut self.plan {
                if let Event::Problem(p) = &event {
                    self.ctx.tracker.failed(p.place.clone(), "scan", p.message.clone());
                }
                plan.push(plan::step(&event, &self.ctx.target));
                continue;
            }
            match event {
                Event::Upload { file, reason } => self.upload(file, reason).await,
                Event::Delete { object } => self.deletes.push(object),
                Event::Problem(p) => self.ctx.tracker.failed(p.place, "scan", p.message),
            }
        }
    }

    async fn upload(&mut self, mut file: LocalFile, reason: Reason) {
        // Re-publishing a current object copies it onto itself; another key of a file copies it
        // from the key it is uploaded under.
        if reason == Reason::Chain {
            file.copy_of = Some(file.key.clone());
        }
        if let Some(source) = &file.copy_of {
            tracing::debug!("copy {} from {source} ({})", self.ctx.target.key(&file.key), reason.as_str());
            self.copies.push(file).await;
            return;
        }
        tracing::debug!("upload {} ({})", self.ctx.target.key(&file.key), reason.as_str());
        match &self.assets {
            Some(pool) if !is_page(&file.key) => pool.send(Job::Upload(file)).await,
            _ => self.pages.push(file).await,
        }
    }

    /// Runs the jobs `job` makes of what `waiting` holds, on a pool of their own; a `None` job
    /// is one `job` has already reported as failed.
    async fn drain(&self, mut waiting: Spill, what: &str, mut job: impl FnMut(LocalFile) -> Option<Job>) {
        if waiting.is_empty() || self.ctx.cancel.load(Ordering::Relaxed) {
            return;
        }
        let pool = Pool::start(&self.ctx, self.workers);
        loop {
            match waiting.next_chunk().await {
                Ok(Some(chunk)) => {
                    for file in chunk {
                        if let Some(job) = job(file) {
                            pool.send(job).await;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let why = format!("cannot read back the waiting {what}: {e}");
                    self.ctx.tracker.failed(format!("({what})"), "upload", why);
                    break;
                }
            }
        }
        pool.finish().await;
    }

    /// Number of deletes the diff asked for so far.
    pub fn deletes_planned(&self) -> u64 {
        match &self.plan {
            Some(plan) => plan.iter().filter(|s| s.phase == plan::Phase::Deletes).count() as u64,
            None => self.deletes.len() as u64,
        }
    }

    /// Finishes the uploads, then sends the deletes if `allow_deletes` and nothing failed.
    /// Returns the plan in a dry run, and how many deletes were withheld.
    pub async fn finish(mut self, allow_deletes: bool) -> (Option<Vec<Step>>, u64) {
        if let Some(plan) = self.plan.take() {
            return (Some(plan), 0);
        }
        if let Some(assets) = self.assets.take() {
            assets.finish().await;
        }
        let pages = std::mem::take(&mut self.pages);
        self.drain(pages, "pages", |file| Some(Job::Upload(file))).await;
        // The copy phase: after every upload, so a copy never reads a source that is not up yet.
        let copies = std::mem::take(&mut self.copies);
        let failed = self.ctx.tracker.failed_keys("upload");
        let tracker = self.ctx.tracker.clone();
        self.drain(copies, "copies", |mut file| {
            let source = file.copy_of.take()?;
            if failed.contains(&source) {
                tracker.failed(file.key, "copy", format!("not copied: its source {source} failed to upload"));
                return None;
            }
            Some(Job::Copy { file, source })
        })
        .await;
        // The marker says every object under the prefix has the chain's headers: any failure (a
        // file that could not be read keeps its object, with the old headers, unless it changes)
        // keeps it back, so the next run re-publishes again.
        if let Some(fingerprint) = self.marker.take()
            && self.ctx.tracker.failure_count() == 0
            && !self.ctx.cancel.load(Ordering::Relaxed)
            && let Err(e) = crate::marker::write(&self.ctx.client, &self.ctx.target, &fingerprint).await
        {
            self.ctx.tracker.failed(MARKER_KEY, "upload", e);
        }
        let deletes = std::mem::take(&mut self.deletes);
        let cancelled = self.ctx.cancel.load(Ordering::Relaxed);
        if deletes.is_empty() {
            return (None, 0);
        }
        if !allow_deletes || cancelled || self.ctx.tracker.failure_count() > 0 {
            if self.ctx.tracker.failure_count() > 0 {
                tracing::warn!(
                    "{} deletes withheld because something failed; a clean run will send them",
                    deletes.len()
                );
            }
            return (None, deletes.len() as u64);
        }
        let pool = Pool::start(&self.ctx, self.workers.min(8));
        for chunk in deletes.chunks(1000) {
            let keys = chunk.iter().map(|o| self.ctx.target.key(&o.key)).collect();
            pool.send(Job::Delete(keys)).await;
        }
        pool.finish().await;
        (None, 0)
    }
}
