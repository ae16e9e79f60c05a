//! The local state as the remote side (`--trust-state`): no listing at all.
//!
//! For a bucket only sitesync writes, what the last run recorded is what the bucket holds, so a
//! run can skip the listing (the original tool's `-i`): the state's keys become the objects the
//! diff compares with, with the ETag and the earliest `LastModified` recorded. A stale state
//! (someone else wrote to the bucket) makes such a run wrong about those keys until a normal run,
//! which lists and repairs the state.

use std::path::PathBuf;

use tokio::sync::mpsc;

use super::{Reader, Unusable};
use crate::error::{Op, StoreError};
use crate::model::{BATCH, RemoteObject};
use crate::remote::RemoteSource;

pub struct TrustedState {
    pub path: PathBuf,
    pub identity: String,
}

#[async_trait::async_trait]
impl RemoteSource for TrustedState {
    fn describe(&self) -> String {
        format!("local state {}", self.path.display())
    }

    async fn send(self: Box<Self>, tx: mpsc::Sender<Vec<RemoteObject>>) -> Result<(), StoreError> {
        let shown = self.path.display().to_string();
        let failed = |why: String| StoreError::answer(Op::List, &shown, why);
        let read = tokio::task::spawn_blocking(move || send_all(&self.path, &self.identity, &tx));
        match read.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(failed(e.to_string())),
            Err(e) => Err(failed(format!("reading the state stopped: {e}"))),
        }
    }
}

/// Reads the whole state into batches of objects (a blocking read, on the blocking pool).
fn send_all(path: &std::path::Path, identity: &str, tx: &mpsc::Sender<Vec<RemoteObject>>) -> Result<(), Unusable> {
    let Some(mut reader) = Reader::open(path, identity)? else {
        return Err(Unusable::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "there is no local state to trust: run once without --trust-state",
        )));
    };
    let mut batch = Vec::with_capacity(BATCH);
    while let Some((key, known)) = reader.next_record()? {
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
