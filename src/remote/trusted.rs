//! The local state as the remote side (`--trust-state`): no listing at all.
//!
//! For a bucket only sitesync writes, what the last run recorded is what the bucket holds, so a
//! run can skip the listing (the original tool's `-i`): the state's keys become the objects the
//! diff compares with, with the ETag and the earliest `LastModified` recorded. A stale state
//! (someone else wrote to the bucket) makes such a run wrong about those keys until a normal run,
//! which lists and repairs the state.

use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use crate::model::{BATCH, RemoteObject};
use crate::remote::{RemoteError, RemoteSource};
use crate::state::{Reader, Unusable};

pub struct TrustedState {
    pub path: PathBuf,
    pub identity: String,
}

#[async_trait::async_trait]
impl RemoteSource for TrustedState {
    fn describe(&self) -> String {
        format!("local state {}", self.path.display())
    }

    async fn send(self: Box<Self>, tx: mpsc::Sender<Vec<RemoteObject>>) -> Result<(), RemoteError> {
        let read = tokio::task::spawn_blocking(move || send_all(&self.path, &self.identity, &tx));
        read.await.unwrap_or_else(|e| {
            let why = match e.try_into_panic() {
                Ok(panic) => crate::run::panic::message(panic.as_ref()),
                Err(e) => e.to_string(),
            };
            Err(RemoteError::Died { reader: "local state's reader", why })
        })
    }
}

/// Reads the whole state into batches of objects (a blocking read, on the blocking pool).
fn send_all(path: &Path, identity: &str, tx: &mpsc::Sender<Vec<RemoteObject>>) -> Result<(), RemoteError> {
    let unusable = |source: Unusable| RemoteError::State { path: path.to_owned(), source };
    let Some(mut reader) = Reader::open(path, identity).map_err(unusable)? else {
        return Err(RemoteError::NoState { path: path.to_owned() });
    };
    let mut batch = Vec::with_capacity(BATCH);
    while let Some((key, known)) = reader.next_record().map_err(|e| unusable(e.into()))? {
        batch.push(RemoteObject { key, size: known.size, last_modified: known.lm_lo, etag: known.etag });
        if batch.len() == BATCH && tx.blocking_send(std::mem::take(&mut batch)).is_err() {
            return Ok(());
        }
    }
    if !batch.is_empty() {
        let _ = tx.blocking_send(batch);
    }
    Ok(())
}
