//! The local side of a run after the walk: the transform chain, this shard's part of what it
//! yields, then the local state joined to it, on a thread of their own between the walk and the
//! merge.

use tokio::sync::mpsc;

use crate::model::{LocalItem, Problem};
use crate::shard::Shard;
use crate::transform::{Chain, TransformError};

/// Runs the chain on its own thread between the walk (`rx`) and the diff (`tx`), and joins
/// each entry it yields with what the local `state` knows of its key. A failing transform sends
/// its error and stops, which stops the walk.
pub fn spawn(
    mut chain: Chain,
    shard: Option<Shard>,
    mut state: Option<crate::state::Cursor>,
    mut rx: mpsc::Receiver<Vec<LocalItem>>,
    tx: mpsc::Sender<Result<Vec<LocalItem>, TransformError>>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("sitesync-chain".into())
        .spawn(move || {
            while let Some(batch) = rx.blocking_recv() {
                let mut result = if chain.is_empty() { Ok(batch) } else { chain.apply(batch) };
                if let (Some(shard), Ok(batch)) = (&shard, &mut result) {
                    own_part(shard, batch);
                }
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

/// Keeps this shard's part of a batch. The walk yields only files of the shard's own folders, so
/// a key of another shard's here was made by the chain (a plugin that moves keys between folders):
/// publishing it would race the shard that owns it, so it is refused. Problems pass: the walk
/// reports a file's only in its own shard, and what may hide any shard's keys (a directory or a
/// link it cannot read) in every shard.
fn own_part(shard: &Shard, batch: &mut Vec<LocalItem>) {
    batch.retain_mut(|item| match item {
        LocalItem::File(file) if !shard.owns(&file.key) => {
            let message = format!(
                "the transform chain publishes this key in another shard's part than its file's (shard {shard}); \
                 a chain that moves keys between folders cannot be split into shards"
            );
            *item = LocalItem::Problem(Problem { place: std::mem::take(&mut file.key), message });
            true
        }
        LocalItem::File(_) | LocalItem::Problem(_) => true,
    });
}
