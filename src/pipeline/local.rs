//! The local side of a run after the walk: the transform chain, then the local state joined to
//! what it yields, on a thread of their own between the walk and the merge.
//!
//! The thread owns the walk's end too: once the walk's channel closes it joins the walk, and only
//! after a clean end asks the chain for what its steps held back ([`Chain::finish`]: a folder's
//! index, say). A walk that failed or died has seen part of the tree, and what a step would make
//! of that part (an index missing entries) must not be published; its error is the thread's
//! result instead, for the merge to fail the run with.

use std::thread::JoinHandle;

use tokio::sync::mpsc;

use crate::model::LocalItem;
use crate::scan::WalkError;
use crate::transform::{Chain, TransformError};

/// What the chain thread hands the merge: a batch, or the transform error that stopped it.
pub type Yielded = Result<Vec<LocalItem>, TransformError>;

/// Runs the chain on its own thread between the walk (`rx`, fed by `walker`) and the diff (`tx`),
/// and joins each entry it yields with what the local `state` knows of its key. A failing
/// transform sends its error and stops, which stops the walk. The thread's result is the walk's.
pub fn spawn(
    mut chain: Chain,
    mut state: Option<crate::state::Cursor>,
    walker: JoinHandle<Result<(), WalkError>>,
    mut rx: mpsc::Receiver<Vec<LocalItem>>,
    tx: mpsc::Sender<Yielded>,
) -> JoinHandle<Result<(), WalkError>> {
    std::thread::Builder::new()
        .name("sitesync-chain".into())
        .spawn(move || {
            let mut attach = |result: &mut Yielded| {
                if let (Some(cursor), Ok(batch)) = (&mut state, result)
                    && let Err(e) = cursor.attach(batch)
                {
                    tracing::warn!("the local state cannot be read any further ({e}); the rest is compared without it");
                    state = None;
                }
            };
            let mut stopped = false;
            while let Some(batch) = rx.blocking_recv() {
                let mut result = if chain.is_empty() { Ok(batch) } else { chain.apply(batch) };
                attach(&mut result);
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
                Err(panic) => Err(WalkError(crate::panic::message(panic.as_ref()))),
            };
            if !stopped && walked.is_ok() && !chain.is_empty() {
                let mut last = chain.finish();
                attach(&mut last);
                if !matches!(&last, Ok(batch) if batch.is_empty()) {
                    let _ = tx.blocking_send(last);
                }
            }
            walked
        })
        .expect("spawning the chain thread")
}
