//! The local side of a run after the walk: the transform chain, this shard's part of what it
//! yields, then the local state joined to it, on a thread of their own between the walk and the
//! merge.
//!
//! The thread owns the walk's end too: once the walk's channel closes it joins the walk, and only
//! after a clean end asks the chain for what its steps held back ([`Chain::finish`]: a folder's
//! index, say). A walk that failed or died has seen part of the tree, and what a step would make
//! of that part (an index missing entries) must not be published; its error is the thread's
//! result instead, for the merge to fail the run with.

use std::thread::JoinHandle;

use tokio::sync::mpsc;

use crate::config::Config;
use crate::keys::shard::{SeenElsewhere, Shard};
use crate::model::{LocalItem, Problem};
use crate::run::thread::SpawnError;
use crate::scan::{WalkError, WalkOptions};
use crate::transform::{Chain, TransformError};

/// What the chain thread hands the merge: a batch, or the transform error that stopped it.
pub type Yielded = Result<Vec<LocalItem>, TransformError>;

/// Runs the chain on its own thread between the walk (`rx`, fed by `walker`) and the diff (`tx`),
/// and joins each entry it yields with what the local `state` knows of its key. A failing
/// transform sends its error and stops, which stops the walk. The thread's result is the walk's.
pub fn spawn(
    mut local: LocalSide,
    walker: JoinHandle<Result<(), WalkError>>,
    mut rx: mpsc::Receiver<Vec<LocalItem>>,
    tx: mpsc::Sender<Yielded>,
) -> Result<JoinHandle<Result<(), WalkError>>, SpawnError> {
    crate::run::thread::spawn("sitesync-chain", move || {
        let mut stopped = false;
        while let Some(batch) = rx.blocking_recv() {
            let result = local.batch(batch);
            let failed = result.is_err();
            if tx.blocking_send(result).is_err() || failed {
                stopped = true;
                break;
            }
        }
        // A walk still sending stops once its receiver is gone.
        drop(rx);
        let walked = match walker.join() {
            Ok(walked) => walked,
            Err(panic) => Err(WalkError::Died(crate::run::panic::message(panic.as_ref()))),
        };
        if !stopped
            && walked.is_ok()
            && let Some(last) = local.finish()
        {
            let _ = tx.blocking_send(last);
        }
        walked
    })
}

/// What becomes of the walk's batches before the merge: the chain, this shard's part of what it
/// yields, and the local state joined to each entry. A run drives it on the chain thread
/// ([`spawn`]); a plan over an in-memory bucket drives it in place.
pub struct LocalSide {
    chain: Chain,
    part: Option<OwnPart>,
    state: Option<crate::state::Cursor>,
}

impl LocalSide {
    pub fn new(chain: Chain, part: Option<OwnPart>, state: Option<crate::state::Cursor>) -> LocalSide {
        LocalSide { chain, part, state }
    }

    /// One batch of the walk, as the merge receives it.
    pub fn batch(&mut self, batch: Vec<LocalItem>) -> Yielded {
        let mut result = if self.chain.is_empty() { Ok(batch) } else { self.chain.apply(batch) };
        self.attach(&mut result);
        result
    }

    /// Once the walk ended cleanly: what the steps held back ([`Chain::finish`]), as the last
    /// batch; `None` when they held nothing.
    pub fn finish(&mut self) -> Option<Yielded> {
        if self.chain.is_empty() {
            return None;
        }
        let mut last = self.chain.finish();
        self.attach(&mut last);
        (!matches!(&last, Ok(batch) if batch.is_empty())).then_some(last)
    }

    fn attach(&mut self, result: &mut Yielded) {
        if let (Some(part), Ok(batch)) = (&self.part, &mut *result) {
            own_part(part, batch);
        }
        if let (Some(cursor), Ok(batch)) = (&mut self.state, result)
            && let Err(e) = cursor.attach(batch)
        {
            tracing::warn!("the local state cannot be read any further ({e}); the rest is compared without it");
            self.state = None;
        }
    }
}

/// A shard's part of what the chain yields, and how the walk was cut for it.
#[derive(Debug, Clone)]
pub struct OwnPart {
    pub shard: Shard,
    /// The walk yielded every file: the chain has steps that may make keys in other folders
    /// (plugins), so it must see the whole tree, and this shard keeps its keys of what it yields.
    /// Otherwise the walk yielded only this shard's folders.
    pub whole_tree: bool,
    /// Counts the keys left to other shards here, as the walk does when it cuts.
    pub elsewhere: SeenElsewhere,
}

impl OwnPart {
    /// The part of the run's shard, if it is one, with the walk cut by `walk`.
    pub fn of(config: &Config, walk: &WalkOptions) -> Option<OwnPart> {
        let shard = config.shard.clone()?;
        Some(OwnPart { shard, whole_tree: walk.shard.is_none(), elsewhere: walk.elsewhere.clone() })
    }
}

/// Keeps this shard's part of a batch.
///
/// - A key of another shard's: with the whole tree walked, it is theirs to publish, and left.
///   Otherwise the walk yielded only this shard's folders, so the chain made it from one of them
///   in another shard's folder: publishing it would race the shard that owns it, and that shard
///   never sees the file, so it is refused (a failure, and no deletes).
/// - A copy whose source key is another shard's becomes an upload of the file: nothing orders
///   this shard's copy after the other's upload.
/// - A problem stays when it is this shard's, or may hide keys of any shard's.
fn own_part(part: &OwnPart, batch: &mut Vec<LocalItem>) {
    let shard = &part.shard;
    let mut elsewhere = 0;
    batch.retain_mut(|item| match item {
        LocalItem::File(file) if shard.owns(&file.key) => {
            if file.copy_of.as_ref().is_some_and(|source| !shard.owns(source)) {
                file.copy_of = None;
            }
            true
        }
        LocalItem::File(_) if part.whole_tree => {
            elsewhere += 1;
            false
        }
        LocalItem::File(file) => {
            let message = format!(
                "the transform chain publishes this key in another shard's part than its file's (shard {shard}); \
                 a chain that moves keys between folders cannot be split into shards"
            );
            *item = LocalItem::Problem(Problem::new(std::mem::take(&mut file.key), message));
            true
        }
        LocalItem::Problem(problem) => problem.hides || shard.owns(&problem.place),
    });
    part.elsewhere.add(elsewhere);
}
