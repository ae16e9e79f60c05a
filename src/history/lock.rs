//! The bucket lock: two syncs of one target must not interleave, from whichever machines they run.
//!
//! The local lock (`run::lock`) keeps apart the runs of one machine. Two machines (a CI re-run
//! beside the first run, a laptop and CI) would each list, decide and write, and leave a mix of
//! both sites (nango#6320). So a sync also holds a lock in the bucket, `PREFIX/.sitesync/lock`
//! (`lock.K-of-N` for a shard: the shards of a split run run at once), made of S3's conditional
//! writes. It is created with `If-None-Match: *`, which only one of two runs can do, and names its
//! holder ([`Holder`]: host, pid, start, sitesync version). The holder renews it every 30 s with
//! `If-Match` on its ETag. A lock not renewed for 2 minutes (its `ttl`, counted from the object's
//! `LastModified` against the server's clock as measured, so no machine's clock matters) has
//! expired: the next run takes it over with `If-Match` on the stale ETag and a warning naming the
//! old holder. A lock left by a run of this machine whose pid no longer runs (a killed run) is
//! taken over at once. Otherwise a second run fails naming the holder, or waits (`--wait-lock`).
//! A renewal that finds the lock taken over says so ([`BucketLock::when_lost`]), so the run can
//! stop before it changes more.
//!
//! Not every server honours conditional writes (Garage 2.5 ignores them), and a lock that keeps
//! nothing apart is worse than none. Each run finds out with the lock's own requests: a second
//! `If-None-Match: *` PUT of the lock it has just written, and an `If-Match` PUT on an ETag the
//! lock does not have, must both be refused. Where they are not, the lock it wrote is deleted and
//! the run goes on with the local lock only (`remote_lock = "auto"`, with a warning) or is refused
//! (`"required"`).

mod holder;
mod object;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use holder::Holder;
use object::{Cond, Found, Refused};

use crate::clock::Clock;
use crate::keys::shard::Shard;
use crate::keys::target::Target;
use crate::model::Time;
use crate::s3client::{Op, StoreError};

/// `remote_lock`: whether a sync holds the lock in the bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// Where the server honours conditional writes; elsewhere the local lock only, with a warning.
    #[default]
    Auto,
    /// Always: a server without conditional writes is refused.
    Required,
    /// Never: the local lock only, and no request about it.
    Off,
}

/// How long a lock lives, how often it is renewed and how often a waiting run looks again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub ttl: Duration,
    pub renew_every: Duration,
    pub poll: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing { ttl: Duration::from_secs(120), renew_every: Duration::from_secs(30), poll: Duration::from_secs(2) }
    }
}

/// What to lock, and how.
pub struct Request<'a> {
    /// A client whose responses feed `clock`.
    pub client: &'a aws_sdk_s3::Client,
    pub clock: Arc<Clock>,
    pub target: &'a Target,
    pub shard: Option<&'a Shard>,
    pub mode: Mode,
    /// Wait for another run's lock instead of failing.
    pub wait: bool,
    pub timing: Timing,
}

#[derive(Debug, thiserror::Error)]
pub enum BucketLockError {
    #[error("another sitesync run ({holder}) holds the bucket lock {url}; pass --wait-lock to wait for it")]
    Busy { holder: String, url: String },
    #[error(
        "remote_lock = \"required\", but the server does not honour conditional writes ({why}), so the lock {url} cannot keep two runs apart; remote_lock = \"auto\" runs with this machine's lock only"
    )]
    Unsupported { url: String, why: String },
    #[error("lost the bucket lock {url}: {why}; the run stopped before changing more")]
    Lost { url: String, why: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The run was asked to stop while it waited for another run's lock.
    #[error("stopped while waiting for the bucket lock {url}")]
    Interrupted { url: String },
}

/// The lock in the bucket, held: renewed by a task beside the run until [`BucketLock::release`].
/// Dropped without a release, it stops being renewed and expires.
pub struct BucketLock {
    lock: Arc<Lock>,
    lost: watch::Receiver<Option<String>>,
    stop: watch::Sender<bool>,
    renewal: Option<JoinHandle<()>>,
}

impl BucketLock {
    /// Takes the lock of `request.target` (and shard), waiting for another run's with
    /// `request.wait` until `interrupted` resolves. `None`: no lock in the bucket, by `mode`, or
    /// because the server does not honour conditional writes (`auto`, which warned).
    pub async fn acquire(
        request: Request<'_>,
        interrupted: impl Future<Output = ()>,
    ) -> Result<Option<BucketLock>, BucketLockError> {
        if request.mode == Mode::Off {
            return Ok(None);
        }
        let lock = Arc::new(Lock::new(&request).await);
        match lock.take(request.wait, request.timing.poll, interrupted).await? {
            Taken::Unsupported(why) => lock.without(request.mode, why, false).await,
            Taken::Held { etag, created } => match lock.unhonoured(created).await {
                Ok(None) => Ok(Some(BucketLock::start(lock, etag, request.timing))),
                Ok(Some(why)) => lock.without(request.mode, why, true).await,
                Err(e) => {
                    let _ = lock.delete_if_ours().await;
                    Err(e)
                }
            },
        }
    }

    fn start(lock: Arc<Lock>, etag: String, timing: Timing) -> BucketLock {
        let (lost_tx, lost) = watch::channel(None);
        let (stop, stopped) = watch::channel(false);
        let renewal = tokio::spawn(renew(lock.clone(), etag, timing, lost_tx, stopped));
        BucketLock { lock, lost, stop, renewal: Some(renewal) }
    }

    /// `s3://BUCKET/KEY` of the lock.
    pub fn url(&self) -> &str {
        &self.lock.url
    }

    /// The error of a lock lost since it was taken (taken over, or not renewed in time).
    pub fn lost(&self) -> Option<BucketLockError> {
        let why = self.lost.borrow().clone()?;
        Some(BucketLockError::Lost { url: self.lock.url.clone(), why })
    }

    /// Resolves `true` when the lock is lost, `false` when it is released or dropped first.
    pub fn when_lost(&self) -> impl Future<Output = bool> + Send + 'static {
        let mut lost = self.lost.clone();
        async move { lost.wait_for(Option::is_some).await.is_ok() }
    }

    /// Stops renewing (a renewal in flight ends first) and deletes the lock if it is still this
    /// run's. [`BucketLockError::Lost`] when it was lost by then: another run's lock is kept.
    pub async fn release(mut self) -> Result<(), BucketLockError> {
        self.stop.send_replace(true);
        if let Some(renewal) = self.renewal.take() {
            let _ = renewal.await;
        }
        if let Some(lost) = self.lost() {
            return Err(lost);
        }
        self.lock.delete_if_ours().await?;
        Ok(())
    }
}

impl Drop for BucketLock {
    fn drop(&mut self) {
        if let Some(renewal) = self.renewal.take() {
            renewal.abort();
        }
    }
}

/// Renews the lock every `renew_every` until told to stop; says why when it is lost.
async fn renew(
    lock: Arc<Lock>,
    mut etag: String,
    timing: Timing,
    lost: watch::Sender<Option<String>>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut written = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(timing.renew_every) => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
        let failed = match tokio::time::timeout(timing.renew_every, lock.renew(&etag)).await {
            Ok(Ok(renewed)) => {
                (etag, written) = (renewed, Instant::now());
                continue;
            }
            Ok(Err(Renewal::TakenOver(why))) => {
                tracing::warn!("lost the bucket lock {}: {why}; stopping", lock.url);
                lost.send_replace(Some(why));
                return;
            }
            Ok(Err(Renewal::Failed(why))) => why,
            Err(_) => format!("no answer within {}s", timing.renew_every.as_secs()),
        };
        let since = written.elapsed();
        if since + timing.renew_every >= timing.ttl {
            let why =
                format!("it could not be renewed for {}s ({failed}), so another run may take it over", since.as_secs());
            tracing::warn!("lost the bucket lock {}: {why}; stopping", lock.url);
            lost.send_replace(Some(why));
            return;
        }
        tracing::warn!(
            "could not renew the bucket lock {}: {failed}; trying again in {}s",
            lock.url,
            timing.renew_every.as_secs()
        );
    }
}

/// What looking for the lock found.
enum Attempt {
    Held { etag: String, created: bool },
    Busy(Found),
    Unsupported(String),
}

/// The outcome of [`Lock::take`].
enum Taken {
    /// This run holds the lock: it created it (`If-None-Match: *`) or took it over.
    Held {
        etag: String,
        created: bool,
    },
    Unsupported(String),
}

/// Why a renewal failed.
enum Renewal {
    /// Another run holds the lock now, or it is gone.
    TakenOver(String),
    /// The request failed; the lock may still be this run's.
    Failed(String),
}

/// Whether a lock found may be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// This run's own (a write whose answer was lost).
    Ours,
    Live,
    /// Left by a run of this machine that no longer runs.
    Gone,
    Expired,
}

/// A lock of one target: where it is, and who this run is.
struct Lock {
    client: aws_sdk_s3::Client,
    clock: Arc<Clock>,
    bucket: String,
    key: String,
    url: String,
    me: Holder,
}

/// Looks taken at most this many times in a row, while the lock keeps changing under this run.
const TRIES: usize = 20;

/// The ETag an `If-Match` probe names: no object has it.
const NO_SUCH_ETAG: &str = "\"00000000000000000000000000000000\"";

impl Lock {
    async fn new(request: &Request<'_>) -> Lock {
        let key = request.target.key(&super::per_shard(super::LOCK, request.shard));
        let (start, ttl) = (super::server_now(request.clock.bounds()), request.timing.ttl.as_secs());
        let me = tokio::task::spawn_blocking(move || Holder::this_process(start, ttl)).await;
        let me = me.unwrap_or_else(|_| Holder::this_process(start, ttl));
        Lock {
            client: request.client.clone(),
            clock: request.clock.clone(),
            url: format!("s3://{}/{key}", request.target.bucket),
            bucket: request.target.bucket.clone(),
            key,
            me,
        }
    }

    /// Takes the lock; with `wait`, looks again every `poll` while another run holds it.
    async fn take(
        &self,
        wait: bool,
        poll: Duration,
        interrupted: impl Future<Output = ()>,
    ) -> Result<Taken, BucketLockError> {
        tokio::pin!(interrupted);
        let mut announced = false;
        loop {
            match self.attempt().await? {
                Attempt::Held { etag, created } => return Ok(Taken::Held { etag, created }),
                Attempt::Unsupported(why) => return Ok(Taken::Unsupported(why)),
                Attempt::Busy(found) if !wait => {
                    return Err(BucketLockError::Busy { holder: found.describe(), url: self.url.clone() });
                }
                Attempt::Busy(found) => {
                    if !announced {
                        tracing::info!(
                            "waiting for the bucket lock {} held by another sitesync run ({})",
                            self.url,
                            found.describe()
                        );
                        announced = true;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(poll) => {}
                        _ = &mut interrupted => return Err(BucketLockError::Interrupted { url: self.url.clone() }),
                    }
                }
            }
        }
    }

    /// Creates the lock, or takes over one that is expired or whose holder is gone.
    async fn attempt(&self) -> Result<Attempt, BucketLockError> {
        for _ in 0..TRIES {
            match self.put(Cond::Create).await {
                Ok(etag) => return Ok(Attempt::Held { etag, created: true }),
                Err(Refused::Precondition | Refused::Conflict) => {}
                Err(Refused::Unsupported(why)) => return Ok(Attempt::Unsupported(why)),
                Err(Refused::Store(e)) => return Err(e.into()),
            }
            let Some(found) = self.read().await? else { continue };
            let standing = self.standing(&found).await;
            match standing {
                Standing::Ours => return Ok(Attempt::Held { etag: found.etag, created: true }),
                Standing::Live => return Ok(Attempt::Busy(found)),
                Standing::Gone | Standing::Expired => {}
            }
            match self.put(Cond::Replace(&found.etag)).await {
                Ok(etag) => {
                    self.took_over(&found, standing);
                    return Ok(Attempt::Held { etag, created: false });
                }
                // Another run was quicker, or the holder renewed it: look again.
                Err(Refused::Precondition | Refused::Conflict) => {}
                Err(Refused::Unsupported(why)) => return Ok(Attempt::Unsupported(why)),
                Err(Refused::Store(e)) => return Err(e.into()),
            }
        }
        Err(StoreError::answer(Op::Put, &self.url, "the lock kept changing while this run tried to take it").into())
    }

    fn took_over(&self, found: &Found, standing: Standing) {
        let (url, holder) = (&self.url, found.describe());
        match standing {
            Standing::Gone => {
                tracing::warn!(
                    "taking over the bucket lock {url} from a sitesync run of this machine that no longer runs ({holder})"
                )
            }
            _ => tracing::warn!(
                "the bucket lock {url} held by another sitesync run ({holder}) expired without being renewed: taking it over"
            ),
        }
    }

    /// Whether `found` is this run's, held, or may be taken.
    async fn standing(&self, found: &Found) -> Standing {
        let ttl = match &found.holder {
            Some(holder) if holder.token == self.me.token => return Standing::Ours,
            Some(holder) if holder.same_machine(&self.me) => match running(holder.pid).await {
                false => return Standing::Gone,
                true => Duration::from_secs(holder.ttl.min(86_400)),
            },
            Some(holder) => Duration::from_secs(holder.ttl.min(86_400)),
            None => Timing::default().ttl,
        };
        // The earliest the server's clock can read now, as far as this run has measured it.
        let now = Time::now().0.saturating_add(self.clock.bounds().lo);
        match found.written {
            Some(written) if written.0.saturating_add(ttl.as_nanos() as i64) < now => Standing::Expired,
            _ => Standing::Live,
        }
    }

    /// Why the server does not honour conditional writes, or `None` when it refused both probes:
    /// a second create (after this run `created` the lock) and a replace of an ETag it lacks.
    async fn unhonoured(&self, created: bool) -> Result<Option<String>, BucketLockError> {
        if created {
            match self.put(Cond::Create).await {
                Err(Refused::Precondition | Refused::Conflict) => {}
                Ok(_) => return Ok(Some("a second PUT of the lock with If-None-Match: * was not refused".into())),
                Err(Refused::Unsupported(why)) => return Ok(Some(why)),
                Err(Refused::Store(e)) => return Err(e.into()),
            }
        }
        match self.put(Cond::Replace(NO_SUCH_ETAG)).await {
            Err(Refused::Precondition | Refused::Conflict) => Ok(None),
            Ok(_) => Ok(Some("a PUT of the lock with If-Match on an ETag it does not have was not refused".into())),
            Err(Refused::Unsupported(why)) => Ok(Some(why)),
            Err(Refused::Store(e)) => Err(e.into()),
        }
    }

    /// No lock in the bucket, since the server cannot keep one: the lock written while finding
    /// out (`wrote`) is deleted, and `required` refuses the run.
    async fn without(&self, mode: Mode, why: String, wrote: bool) -> Result<Option<BucketLock>, BucketLockError> {
        if wrote {
            self.delete_if_ours().await?;
        }
        if mode == Mode::Required {
            return Err(BucketLockError::Unsupported { url: self.url.clone(), why });
        }
        tracing::warn!(
            "the server does not honour conditional writes ({why}): running with this machine's lock only, so a sync of this prefix from another machine at the same time is not kept out (remote_lock = \"required\" refuses to run instead)"
        );
        Ok(None)
    }

    /// Renews the lock whose ETag is `etag`; its new ETag.
    async fn renew(&self, etag: &str) -> Result<String, Renewal> {
        let failed = |e: StoreError| Renewal::Failed(e.to_string());
        match self.put(Cond::Replace(etag)).await {
            Ok(renewed) => Ok(renewed),
            Err(Refused::Precondition | Refused::Conflict) => match self.read().await.map_err(failed)? {
                // A renewal of this run's whose answer was lost.
                Some(found) if self.is_mine(&found) => Ok(found.etag),
                Some(found) => Err(Renewal::TakenOver(format!("another sitesync run holds it ({})", found.describe()))),
                None => Err(Renewal::TakenOver("someone deleted it".into())),
            },
            Err(Refused::Unsupported(why)) => Err(Renewal::Failed(why)),
            Err(Refused::Store(e)) => Err(failed(e)),
        }
    }

    fn is_mine(&self, found: &Found) -> bool {
        found.holder.as_ref().is_some_and(|holder| holder.token == self.me.token)
    }

    async fn delete_if_ours(&self) -> Result<(), StoreError> {
        match self.read().await? {
            Some(found) if self.is_mine(&found) => self.delete().await,
            _ => Ok(()),
        }
    }
}

/// Whether process `pid` of this machine still runs, asked off the runtime's workers.
async fn running(pid: u32) -> bool {
    tokio::task::spawn_blocking(move || holder::running(pid)).await.unwrap_or(true)
}
