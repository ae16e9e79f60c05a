//! The local side of a run after the walk: the transform chain, then the local state joined to
//! what it yields, on a thread of their own between the walk and the merge.

use tokio::sync::mpsc;

use crate::model::LocalItem;
use crate::transform::{Chain, TransformError};

/// Runs the chain on its own thread between the walk (`rx`) and the diff (`tx`), and joins
/// each entry it yields with what the local `state` knows of its key. A failing transform sends
/// its error and stops, which stops the walk.
pub fn spawn(
    mut chain: Chain,
    mut state: Option<crate::state::Cursor>,
    mut rx: mpsc::Receiver<Vec<LocalItem>>,
    tx: mpsc::Sender<Result<Vec<LocalItem>, TransformError>>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("sitesync-chain".into())
        .spawn(move || {
            while let Some(batch) = rx.blocking_recv() {
                let mut result = if chain.is_empty() { Ok(batch) } else { chain.apply(batch) };
                if let (Some(cursor), Ok(batch)) = (&mut state, &mut result)
                    && let Err(e) = cursor.attach(batch)
                {
                    tracing::warn!("the local state cannot be read any further ({e}); the rest is compared without it");
                    state = None;
                }
                let failed = result.is_err();
                if tx.blocking_send(result).is_err() || failed {
                    break;
                }
            }
        })
        .expect("spawning the chain thread")
}
