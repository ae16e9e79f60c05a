//! The trusted local state, corrected by what rollbacks restored since it was saved.
//!
//! With `--trust-state` the state stands for the bucket; a rollback changed the bucket behind its
//! back. Each rollback record says what it made of every key it touched (copied back with a size
//! and an ETag, or deleted), so this source sends the state's objects with those keys replaced,
//! added or removed: the diff then compares a restored key with what the bucket really holds
//! (by content: they are suspects), uploads a key the rollback deleted, and deletes a key it
//! brought back that the tree no longer has. Both sides are in key order; the suspects are few
//! (what the rollbacks since the last sync restored) and already in memory.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::{RemoteError, RemoteSource};
use crate::history::suspects::{Restored, Suspects};
use crate::model::{BATCH, RemoteObject};

pub struct RestoredState {
    pub inner: Box<dyn RemoteSource>,
    pub suspects: Arc<Suspects>,
}

#[async_trait::async_trait]
impl RemoteSource for RestoredState {
    fn describe(&self) -> String {
        format!("{}, with what rollbacks restored since", self.inner.describe())
    }

    async fn send(self: Box<Self>, tx: mpsc::Sender<Vec<RemoteObject>>) -> Result<(), RemoteError> {
        let RestoredState { inner, suspects } = *self;
        let (inner_tx, mut inner_rx) = mpsc::channel(2);
        let reading = tokio::spawn(inner.send(inner_tx));
        let mut overlay = Overlay { suspects: suspects.iter().peekable() };
        while let Some(batch) = inner_rx.recv().await {
            if tx.send(overlay.batch(batch)).await.is_err() {
                return Ok(());
            }
        }
        reading.await.map_err(|e| RemoteError::Died { reader: "local state's reader", why: e.to_string() })??;
        let rest = overlay.rest();
        for batch in rest.chunks(BATCH) {
            if tx.send(batch.to_vec()).await.is_err() {
                return Ok(());
            }
        }
        Ok(())
    }
}

struct Overlay<'a, I: Iterator<Item = (&'a String, &'a Restored)>> {
    suspects: std::iter::Peekable<I>,
}

impl<'a, I: Iterator<Item = (&'a String, &'a Restored)>> Overlay<'a, I> {
    /// A batch of the state's objects with the suspects up to its last key laid over it.
    fn batch(&mut self, batch: Vec<RemoteObject>) -> Vec<RemoteObject> {
        let mut out = Vec::with_capacity(batch.len());
        for object in batch {
            while let Some((key, restored)) = self.suspects.next_if(|(key, _)| **key < object.key) {
                out.extend(present(key, restored));
            }
            match self.suspects.next_if(|(key, _)| **key == object.key) {
                Some((key, restored @ Restored::Present { .. })) => out.extend(present(key, restored)),
                Some((_, Restored::Absent)) => {}
                Some((_, Restored::Unknown)) | None => out.push(object),
            }
        }
        out
    }

    /// The suspects after the state's last key.
    fn rest(&mut self) -> Vec<RemoteObject> {
        self.suspects.by_ref().filter_map(|(key, restored)| present(key, restored)).collect()
    }
}

/// The object a rollback restored under `key`, when it says it did.
fn present(key: &str, restored: &Restored) -> Option<RemoteObject> {
    match restored {
        Restored::Present { size, etag, at } => {
            Some(RemoteObject { key: key.to_owned(), size: *size, last_modified: *at, etag: etag.clone() })
        }
        Restored::Absent | Restored::Unknown => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Time;

    fn object(key: &str, size: u64) -> RemoteObject {
        RemoteObject { key: key.into(), size, last_modified: Time(1), etag: Some("s".into()) }
    }

    #[test]
    fn what_a_rollback_restored_replaces_adds_and_removes_state_entries() {
        let present = |size| Restored::Present { size, etag: Some("r".into()), at: Time(9) };
        let suspects = Suspects::of([
            ("a".to_owned(), present(1)),
            ("c".to_owned(), present(3)),
            ("d".to_owned(), Restored::Absent),
            ("e".to_owned(), Restored::Unknown),
            ("z".to_owned(), present(26)),
        ]);
        let mut overlay = Overlay { suspects: suspects.iter().peekable() };
        let first = overlay.batch(vec![object("b", 2), object("c", 30)]);
        let second = overlay.batch(vec![object("d", 4), object("e", 5), object("f", 6)]);
        let rest = overlay.rest();
        let shown: Vec<String> = [first, second, rest]
            .concat()
            .iter()
            .map(|o| format!("{} {} {}", o.key, o.size, o.etag.as_deref().unwrap_or("")))
            .collect();
        assert_eq!(shown, ["a 1 r", "b 2 s", "c 3 r", "e 5 s", "f 6 s", "z 26 r"]);
    }
}
