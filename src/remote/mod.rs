//! The other side of the diff: where the objects under the prefix come from.
//!
//! A [`RemoteSource`] sends every object under the prefix, in S3's key order, in batches; the
//! pipeline does not know which one it runs: the split ListObjectsV2 listing ([`Listing`]), or an
//! S3 Inventory report ([`Inventory`], `remote_inventory`); a saved state is another of the same
//! kind.

mod inventory;
mod listing;
mod restored;
mod trusted;

use tokio::sync::mpsc;

use crate::model::RemoteObject;

pub use crate::error::{InventoryError, RemoteError};
pub use inventory::Inventory;
pub use listing::{Listing, decode_key, to_time};
pub use restored::RestoredState;
pub use trusted::TrustedState;

/// Where the diff's other side comes from.
#[async_trait::async_trait]
pub trait RemoteSource: Send + 'static {
    /// What it reads, for messages: `listing s3://bucket/site/`.
    fn describe(&self) -> String;

    /// Sends every object under the prefix in S3's key order, in batches, until done or until
    /// the receiver is dropped. `Ok` means every object was sent: a source that cannot finish
    /// must say why ([`RemoteError`]), or the objects it did not send would read as deleted files.
    async fn send(self: Box<Self>, tx: mpsc::Sender<Vec<RemoteObject>>) -> Result<(), RemoteError>;
}
