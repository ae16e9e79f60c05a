//! The sink: what happens to the diff's decisions.
//!
//! A sink takes the events as the merge finds them and, at the end, says what it did in one
//! record, [`Applied`], that the post-run steps read. Two implementations of one trait: the
//! [`S3Sink`] applies them to the bucket with a pool of workers (`s3`, `pool`, `upload` with
//! `file` and `packed` for the bytes it sends, `multipart`, `copy`, `delete`, and `spill` for what
//! waits for its phase), and the [`PlanSink`] renders them as the plan a dry run prints (`plan`).
//! Both take the very same events, and both ask [`Phase::of`] which phase an action runs in, so
//! a plan cannot drift from what a sync does. Around either: the content check (`check`), the
//! immutable guard (`guard`) and, with `delete_grace`, the ledger of retired keys (`retiring`).

mod check;
mod copy;
mod counting;
mod delete;
mod file;
mod guard;
mod head;
mod made;
mod multipart;
mod packed;
mod phase;
pub mod plan;
mod pool;
mod restore;
mod retiring;
mod s3;
mod spill;
mod tracker;
mod upload;

pub use check::Checking;
pub use counting::Counting;
pub use guard::Guarded;
pub use head::Heads;
pub use phase::{Phase, is_page, is_redirect};
pub use plan::{PlanSink, Step};
pub use pool::SinkContext;
pub use restore::Restorer;
pub use retiring::{Retiring, Upload};
pub use s3::S3Sink;
pub use tracker::{FailedOp, Failure, Tracker};

use crate::journal::Changes;
use crate::model::Event;

/// A pair still to be read (or asked), as a sink that cannot read takes it: an upload (the safe reading,
/// since a needless upload costs a request while a skipped change leaves the site stale).
fn unread(event: Event) -> Event {
    match event {
        Event::Check { file, otherwise, .. } => {
            let reason = match otherwise {
                crate::model::Settled::Upload(reason) => reason,
                crate::model::Settled::Same => crate::model::Reason::Unverified,
            };
            Event::Upload { file, reason }
        }
        Event::Head { file, .. } => Event::Upload { file, reason: crate::model::Reason::Unverified },
        other => other,
    }
}

/// Where the diff's decisions go.
#[async_trait::async_trait]
pub trait Sink: Send {
    /// Takes the decisions of one step of the merge, in the order they came.
    async fn accept(&mut self, events: Vec<Event>);
    /// Deletes asked for so far, for the delete limits.
    fn deletes_planned(&self) -> u64;
    /// Failures so far: a run with any sends no deletes.
    fn failures(&self) -> u64;
    /// Finishes the work and says what was done.
    async fn finish(self: Box<Self>, finish: Finish) -> Applied;
}

/// How the merge ended, as the sink needs to know it.
#[derive(Debug, Clone, Copy)]
pub struct Finish {
    /// Whether deletes may be sent: the merge completed and was not refused or stopped.
    pub deletes: bool,
    /// Keys found unchanged, for the plan's summary.
    pub unchanged: u64,
    /// Files read to compare their bytes, for the plan's summary.
    pub hashed: u64,
}

/// What a run did (or, in a dry run, would do): counts, failures, and the changes key by key.
#[derive(Debug, Default)]
pub struct Applied {
    pub uploaded: u64,
    pub copied: u64,
    pub deleted: u64,
    /// Keys retired instead of deleted (`delete_grace`) and recorded in the ledger by this run.
    pub retired: u64,
    pub bytes_uploaded: u64,
    /// Deletes planned but not sent, because of a failure, a refusal or a signal.
    pub deletes_withheld: u64,
    pub failures: Vec<Failure>,
    /// Files read to compare their bytes with the objects', and their bytes.
    pub hashed: u64,
    pub bytes_hashed: u64,
    /// Of them, and of the compressed keys whose objects were asked (a HEAD), those found the
    /// same (they are unchanged keys too).
    pub verified: u64,
    /// The rendered plan, from a [`PlanSink`].
    pub plan: String,
    /// Every key uploaded, copied or deleted, readable in key order.
    pub changes: Changes,
}
