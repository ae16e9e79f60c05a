//! The merge loop: the two scans read into the diff, and what it decides handed to the sink.
//!
//! The loop reads from whichever side is behind in key order ([`Schedule::Behind`]), so the side
//! that is ahead waits on its full channel instead of filling memory. It does not know where the
//! sides come from ([`Sides`]) nor where its events go (a [`Sink`]): the pipeline runs it over
//! the scans' channels and an S3 or plan sink, and a plan over an in-memory bucket (which the
//! snapshot tests pin) runs the very same loop over in-memory scans ([`InMemory`]), under other
//! schedules too, to prove the plan does not depend on how the scans interleave.

use std::collections::VecDeque;
use std::sync::Mutex;

use super::{DeleteLimits, Diff};
use crate::clock::Offset;
use crate::error::Error;
use crate::model::{Event, LocalItem, RemoteObject};
use crate::sink::Sink;

/// What one read of a side gave.
pub enum Read<T> {
    Batch(T),
    /// The side is complete: every key it has was sent.
    End,
    /// The side cannot finish; the run fails.
    Failed(Error),
    /// A signal asked the run to stop.
    Stopped,
}

/// The two scans, as the merge reads them.
#[allow(async_fn_in_trait)]
pub trait Sides {
    async fn local(&mut self) -> Read<Vec<LocalItem>>;
    async fn remote(&mut self) -> Read<Vec<RemoteObject>>;
}

/// The clock offset the judgements use, and a way to narrow it when a decision waits on it.
#[allow(async_fn_in_trait)]
pub trait Offsets {
    fn now(&self) -> Offset;
    /// Narrows the offset while some pair of `diff` cannot be settled with it.
    async fn narrow(&self, diff: &Diff);
}

/// Which side the merge reads next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// The side whose scan position is behind: how a run reads.
    Behind,
    /// One side, then the other, starting with the local side when `local_first`.
    Alternate { local_first: bool },
}

/// How a merge ended.
#[derive(Debug)]
pub enum Ended {
    /// Both sides were read to their end and every decision was handed over.
    Complete,
    /// The delete limits refused the run, for this reason.
    Refused(String),
    Stopped,
    Failed(Error),
}

/// Reads both sides to their end into `diff`, handing its events to `sink` as they come.
pub async fn merge(
    diff: &mut Diff,
    sides: &mut impl Sides,
    offsets: &impl Offsets,
    sink: &mut dyn Sink,
    limits: &DeleteLimits,
    schedule: Schedule,
) -> Ended {
    let mut open =
        Open { local: true, remote: true, local_turn: schedule != Schedule::Alternate { local_first: false } };
    let mut events = Vec::new();
    while open.local || open.remote {
        let read = if open.reads_local(schedule, diff) {
            read_local(diff, sides, offsets, &mut open, &mut events).await
        } else {
            read_remote(diff, sides, offsets, &mut open, &mut events).await
        };
        if let Err(ended) = read {
            return ended;
        }
        if let Err(ended) = hand_over(diff, sink, limits, &mut events).await {
            return ended;
        }
    }
    offsets.narrow(diff).await;
    diff.finish(offsets.now(), &mut events);
    sink.accept(events).await;
    match refusal(limits, sink, Some(diff.tally())) {
        Some(why) => Ended::Refused(why),
        None => Ended::Complete,
    }
}

/// Which sides have more to read, and whose turn it is under [`Schedule::Alternate`].
struct Open {
    local: bool,
    remote: bool,
    local_turn: bool,
}

impl Open {
    /// Whether the next read is of the local side (and, alternating, the turn passes).
    fn reads_local(&mut self, schedule: Schedule, diff: &Diff) -> bool {
        let local = match schedule {
            Schedule::Behind => {
                let (local_at, remote_at) = diff.positions();
                self.local && (!self.remote || local_at <= remote_at || diff.remote_ahead())
            }
            Schedule::Alternate { .. } => self.local && (self.local_turn || !self.remote),
        };
        self.local_turn = !self.local_turn;
        local
    }
}

async fn read_local(
    diff: &mut Diff,
    sides: &mut impl Sides,
    offsets: &impl Offsets,
    open: &mut Open,
    events: &mut Vec<Event>,
) -> Result<(), Ended> {
    match sides.local().await {
        Read::Batch(batch) => {
            diff.local_batch(batch, offsets.now(), events);
            diff.spill().await;
        }
        Read::End => {
            open.local = false;
            diff.local_done(events);
        }
        other => return Err(other.ended()),
    }
    Ok(())
}

async fn read_remote(
    diff: &mut Diff,
    sides: &mut impl Sides,
    offsets: &impl Offsets,
    open: &mut Open,
    events: &mut Vec<Event>,
) -> Result<(), Ended> {
    match sides.remote().await {
        Read::Batch(batch) => {
            if let Some(last) = batch.last() {
                diff.before_remote(&last.key).await.map_err(unreadable)?;
            }
            diff.remote_batch(batch, offsets.now(), events);
        }
        Read::End => {
            open.remote = false;
            diff.remote_done(events);
        }
        other => return Err(other.ended()),
    }
    Ok(())
}

/// Hands the events to the sink, and once the listing has ended, the local entries left on disk
/// as uploads, a block at a time; stops at a refusal of the delete limits.
async fn hand_over(
    diff: &mut Diff,
    sink: &mut dyn Sink,
    limits: &DeleteLimits,
    events: &mut Vec<Event>,
) -> Result<(), Ended> {
    loop {
        sink.accept(std::mem::take(events)).await;
        if let Some(why) = refusal(limits, sink, None) {
            return Err(Ended::Refused(why));
        }
        if !diff.retire_spilled(events).await.map_err(unreadable)? {
            return Ok(());
        }
    }
}

/// The diff cannot read back the entries it held on disk: the run cannot tell what to delete.
fn unreadable(e: std::io::Error) -> Ended {
    let why = format!("cannot read back the entries it held in a temporary file: {e}");
    Ended::Failed(Error::Stage { stage: "diff".into(), why })
}

/// A run where something failed sends no deletes at all, so the limits need not stop it: the
/// rest is still synced, and the next clean run checks them.
fn refusal(limits: &DeleteLimits, sink: &dyn Sink, tally: Option<super::Tally>) -> Option<String> {
    if sink.failures() > 0 {
        return None;
    }
    limits.check(sink.deletes_planned(), tally)
}

impl<T> Read<T> {
    /// How the merge ends on a read that is neither a batch nor the end.
    fn ended(self) -> Ended {
        match self {
            Read::Failed(e) => Ended::Failed(e),
            _ => Ended::Stopped,
        }
    }
}

/// Both sides already scanned, in batches: the merge as a plan over an in-memory bucket drives
/// it (`pipeline::plan`). A local batch may be the error that ended the local side.
pub struct InMemory {
    pub local: VecDeque<Result<Vec<LocalItem>, Error>>,
    pub remote: VecDeque<Vec<RemoteObject>>,
}

impl InMemory {
    /// The two scans cut into batches of `size`.
    pub fn batched(local: &[LocalItem], remote: &[RemoteObject], size: usize) -> InMemory {
        InMemory {
            local: local.chunks(size.max(1)).map(|batch| Ok(batch.to_vec())).collect(),
            remote: remote.chunks(size.max(1)).map(<[_]>::to_vec).collect(),
        }
    }
}

impl Sides for InMemory {
    async fn local(&mut self) -> Read<Vec<LocalItem>> {
        match self.local.pop_front() {
            Some(Ok(batch)) => Read::Batch(batch),
            Some(Err(e)) => Read::Failed(e),
            None => Read::End,
        }
    }

    async fn remote(&mut self) -> Read<Vec<RemoteObject>> {
        self.remote.pop_front().map_or(Read::End, Read::Batch)
    }
}

/// An offset known while scanning, and the narrower one the run would measure by the end.
pub struct Fixed {
    now: Mutex<Offset>,
    narrowed: Offset,
}

impl Fixed {
    pub fn new(scanning: Offset, narrowed: Offset) -> Fixed {
        Fixed { now: Mutex::new(scanning), narrowed }
    }
}

impl Offsets for Fixed {
    fn now(&self) -> Offset {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn narrow(&self, _diff: &Diff) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = self.narrowed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ChangeRule;
    use crate::model::{Event, LocalFile, Time};
    use crate::sink::{Applied, Finish};

    /// Counts what a merge decided.
    #[derive(Default)]
    struct Tally {
        uploads: u64,
        deletes: u64,
    }

    #[async_trait::async_trait]
    impl Sink for Tally {
        async fn accept(&mut self, events: Vec<Event>) {
            for event in events {
                match event {
                    Event::Upload { .. } => self.uploads += 1,
                    Event::Delete { .. } => self.deletes += 1,
                    _ => {}
                }
            }
        }
        fn deletes_planned(&self) -> u64 {
            self.deletes
        }
        fn failures(&self) -> u64 {
            0
        }
        async fn finish(self: Box<Self>, _: Finish) -> Applied {
            Applied::default()
        }
    }

    #[tokio::test]
    async fn a_whole_tree_duplicate_holds_a_bounded_number_of_keys_in_memory() {
        // Sections on both sides of `mirror/`, each file yielded with its copy, as the chain does.
        let n = 5 * super::super::held::IN_MEMORY;
        let keys: Vec<String> =
            (0..n).map(|i| format!("{}/p{i:07}.html", ["blog", "news", "tags"][i * 3 / n])).collect();
        let file = |key: &str| LocalFile::new(key.to_owned(), format!("/site/{key}").into(), 1, Time(50));
        let local: Vec<LocalItem> =
            keys.iter().flat_map(|k| [file(k), file(&format!("mirror/{k}"))]).map(LocalItem::File).collect();
        let mut listed: Vec<RemoteObject> = local
            .iter()
            .map(|item| match item {
                LocalItem::File(f) => {
                    RemoteObject { key: f.key.clone(), size: 1, last_modified: Time(100), etag: None }
                }
                LocalItem::Problem(_) => unreachable!(),
            })
            .collect();
        listed.sort_by(|a, b| a.key.cmp(&b.key));

        let mut diff = Diff::new(ChangeRule { fudge: 0 });
        diff.local_unordered();
        let mut sides = InMemory::batched(&local, &listed, 1000);
        let offsets = Fixed::new(Offset::exact(0), Offset::exact(0));
        let mut sink = Tally::default();
        let ended = merge(
            &mut diff,
            &mut sides,
            &offsets,
            &mut sink,
            &DeleteLimits { enforced: false, max: 0, max_percent: 0, early: true },
            Schedule::Behind,
        )
        .await;
        assert!(matches!(ended, Ended::Complete), "{ended:?}");
        assert_eq!((sink.uploads, sink.deletes, diff.tally().unchanged), (0, 0, 2 * n as u64));
        assert_eq!(diff.pending(), 0);
        let bound = 2 * super::super::held::IN_MEMORY + 2000;
        assert!(
            diff.peak <= bound,
            "the diff held {} keys in memory at once, over {bound}, for {} keys",
            diff.peak,
            2 * n
        );
    }
}
