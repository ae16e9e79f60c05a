//! Grace-period deletes (`delete_grace`): an object whose file is gone is retired, not deleted, and
//! deleted by the first run after its grace, so a page still open in a browser, or kept by a CDN,
//! can still load the assets it names.
//!
//! [`Retiring`] wraps the sink, outermost, and asks the ledger of retired keys
//! (`history::ledger`) about each delete the diff finds, in the diff's key order:
//!
//! - not in the ledger: retired now (`Retire`, `since: None`), which the delete limits count;
//! - retired at `t`, its grace not over: kept as it is (`Retire`, `since: Some`), counted nowhere;
//! - retired at `t`, its grace over: deleted (`Delete`, `retired: Some`), counted as a delete.
//!
//! An object written after the time the ledger gives is not the object retired (it was published
//! again, by another writer, or while the grace was off): its retirement starts now. "After" allows
//! for the clocks: the ledger's times and `LastModified` are both the server's, but a run knows
//! the server's clock only to its measured offset ([`slack`]). A key that
//! came back is not a delete at all, so it is simply left out of the new ledger. Every key still
//! retired goes to the new file of this run's layout as it comes, which is uploaded after the
//! deletes, and only when the run was clean: otherwise the old ledger stays, and the keys this run
//! would have retired count as withheld deletes (the next clean run retires them). It asks the
//! ledger on the runtime, reading its files a chunk at a time on the blocking pool, which the diff,
//! a synchronous loop, could not.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{Applied, FailedOp, Failure, Finish, Sink};
use crate::clock::Offset;
use crate::history::ledger::{Layout, LedgerError, NewLedger, Retired};
use crate::keys::names::printable;
use crate::keys::target::Target;
use crate::model::{Event, Problem, RemoteObject, Since, Time};

/// How much later than the ledger's time an object's `LastModified` may be and the object still be
/// the one retired: half the width of the run's measure of the server's clock (the time it
/// recorded may be off by as much), doubled for the run that recorded it, and a few seconds more.
/// With no `Date` header to measure by, the offset is any within 15 minutes either way, and the
/// slack half an hour.
pub fn slack(offset: Offset) -> Duration {
    Duration::from_nanos(u64::try_from(offset.width()).unwrap_or(0)) + Duration::from_secs(5)
}

/// The ledger file an error is about (relative to the prefix).
fn ledger_key(e: &LedgerError) -> String {
    match e {
        LedgerError::Corrupt { key, .. } | LedgerError::Disk { key, .. } => key.clone(),
        LedgerError::Store(_) => crate::history::LEDGER.to_owned(),
    }
}

/// A sink that retires what it is asked to delete, as the ledger says, and hands the rest on.
pub struct Retiring {
    inner: Box<dyn Sink>,
    ledger: Retired,
    grace: Duration,
    /// This run's time on the server's clock: what a key retired now is retired at.
    now: Time,
    /// How much later than its retirement an object may have been written and still be the
    /// object retired.
    slack: Duration,
    /// The new file of this run's layout, and where it goes; `None` in a plan.
    writing: Option<(NewLedger, Upload)>,
    /// Keys this run retired.
    retiring: u64,
    /// The ledger could not be read or written: its failure withholds the deletes, which go on
    /// as the diff gave them.
    broken: bool,
    /// That failure, when it was found before the first batch.
    unreadable: Option<Event>,
}

/// Where a sync uploads the new ledger.
pub struct Upload {
    pub client: aws_sdk_s3::Client,
    pub target: Target,
    /// Set when a signal stops the run: the ledger is not written then.
    pub cancel: Arc<AtomicBool>,
}

impl Retiring {
    /// `inner` behind `ledger`, keeping retired keys for `grace`; `offset` is the run's measure of
    /// the server's clock, `now` the time it gives.
    pub fn new(inner: Box<dyn Sink>, ledger: Retired, grace: Duration, (now, offset): (Time, Offset)) -> Retiring {
        let slack = slack(offset);
        Retiring { inner, ledger, grace, now, slack, writing: None, retiring: 0, broken: false, unreadable: None }
    }

    /// `inner` behind a ledger that cannot be read (`e`): everything else is published, and the
    /// failure withholds every delete and leaves the ledger as it is.
    pub fn unreadable(inner: Box<dyn Sink>, own: Layout, e: &LedgerError) -> Retiring {
        let mut retiring = Retiring::new(inner, Retired::empty(own), Duration::MAX, (Time(0), Offset::exact(0)));
        retiring.unreadable = Some(retiring.failed(ledger_key(e), e));
        retiring
    }

    /// Writes the new ledger to `new` and uploads it once the deletes are done (a sync).
    pub fn writing(mut self, new: NewLedger, upload: Upload) -> Retiring {
        self.writing = Some((new, upload));
        self
    }

    /// What becomes of the object the diff would delete.
    async fn settle(&mut self, object: RemoteObject) -> Result<Event, (LedgerError, RemoteObject)> {
        let listed = match self.ledger.lookup(&object.key).await {
            Ok(listed) => listed,
            Err(e) => return Err((e, object)),
        };
        let now = self.now;
        let slack = i64::try_from(self.slack.as_nanos()).unwrap_or(i64::MAX);
        let since = listed
            .filter(|at| object.last_modified.0 <= at.0.saturating_add(slack))
            .map(|at| Since { at, ago: Duration::from_nanos(now.0.saturating_sub(at.0).max(0) as u64) });
        let at = match since {
            Some(since) if since.ago >= self.grace => return Ok(Event::Delete { object, retired: Some(since) }),
            Some(since) => {
                tracing::debug!(
                    "retired {} ({} ago), kept through its grace",
                    printable(&object.key),
                    since.ago_text()
                );
                since.at
            }
            None if listed.is_some() => {
                tracing::debug!("{} was published again since it was retired: retired anew", printable(&object.key));
                now
            }
            None => now,
        };
        if let Some((new, _)) = &mut self.writing
            && let Err(e) = new.push(&object.key, at)
        {
            return Err((e, object));
        }
        self.retiring += u64::from(since.is_none());
        Ok(Event::Retire { object, since })
    }

    /// The failure that withholds the deletes once the ledger cannot be used.
    fn failed(&mut self, key: String, e: &LedgerError) -> Event {
        self.broken = true;
        Event::Problem(Problem { place: key, message: e.to_string(), hides: false, op: FailedOp::Delete })
    }
}

#[async_trait::async_trait]
impl Sink for Retiring {
    async fn accept(&mut self, events: Vec<Event>) {
        let mut out = Vec::with_capacity(events.len() + 1);
        out.extend(self.unreadable.take());
        for event in events {
            match event {
                Event::Delete { object, retired: None } if !self.broken => match self.settle(object).await {
                    Ok(event) => out.push(event),
                    Err((e, object)) => {
                        out.push(self.failed(ledger_key(&e), &e));
                        out.push(Event::Delete { object, retired: None });
                    }
                },
                other => out.push(other),
            }
        }
        if let Some((new, _)) = self.writing.as_mut().filter(|_| !self.broken)
            && let Err(e) = new.spill().await
        {
            let key = new.key().to_owned();
            let e = LedgerError::Disk { key: key.clone(), source: e };
            out.push(self.failed(key, &e));
        }
        self.inner.accept(out).await;
    }

    fn deletes_planned(&self) -> u64 {
        self.inner.deletes_planned()
    }

    fn failures(&self) -> u64 {
        self.inner.failures()
    }

    async fn finish(self: Box<Self>, finish: Finish) -> Applied {
        let Retiring { inner, ledger, writing, retiring, broken, .. } = *self;
        let mut applied = inner.finish(finish).await;
        // A plan: the plan sink counted the retirements it shows.
        let Some((new, upload)) = writing else { return applied };
        let clean = finish.deletes
            && !broken
            && applied.failures.is_empty()
            && applied.deletes_withheld == 0
            && !upload.cancel.load(Ordering::SeqCst);
        if !clean {
            applied.deletes_withheld += retiring;
            return applied;
        }
        if !ledger.needs_rewrite(&new) {
            return applied;
        }
        let key = new.key().to_owned();
        match new.upload(&upload.client, &upload.target).await {
            Ok(()) => applied.retired = retiring,
            Err(e) => {
                tracing::error!("upload {key}: {e}");
                applied.failures.push(Failure { key, op: FailedOp::Upload, error: e.to_string() });
                applied.deletes_withheld += retiring;
            }
        }
        applied
    }
}
