//! Reading the files the diff could not judge by their metadata, and comparing their bytes with
//! the objects, before the decisions reach the sink that applies or plans them.
//!
//! It wraps a sink ([`Checking`]): the pairs of a batch that need it are read in parallel on the
//! blocking pool, each file once, and their verdicts ([`content::compare`]) replace them in the
//! batch, in order, before it is handed on. So a plan shows `upload KEY (content differs)` for
//! the same reason a sync sends it. A file that cannot be read is handed on as an upload, whose
//! own read then reports why. A compressed entry is compressed as it is read, as its upload
//! would compress it, and those bytes are compared.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::{Applied, Finish, Sink};
use crate::content::{self, digest, part_sizes};
use crate::model::{Event, LocalFile, Reason, RemoteObject, Settled};

/// A sink that reads and compares before handing on.
pub struct Checking {
    inner: Box<dyn Sink>,
    own_part: u64,
    /// The chain changed: a file found the same is re-published in place.
    refresh: bool,
    /// Files read at once.
    reads: Arc<Semaphore>,
    hashed: u64,
    bytes_hashed: u64,
    /// Pairs found the same once read.
    same: u64,
}

impl Checking {
    pub fn new(inner: Box<dyn Sink>, own_part: u64, refresh: bool) -> Checking {
        let parallel = std::thread::available_parallelism().map_or(2, |n| n.get()) * 2;
        let reads = Arc::new(Semaphore::new(parallel));
        Checking { inner, own_part, refresh, reads, hashed: 0, bytes_hashed: 0, same: 0 }
    }

    /// The event a pair becomes once its file was read (or could not be).
    fn resolve(
        &mut self,
        file: LocalFile,
        object: RemoteObject,
        otherwise: Settled,
        read: Option<content::Digest>,
    ) -> Event {
        let Some(digest) = read else {
            let reason = match otherwise {
                Settled::Upload(reason) => reason,
                Settled::Same => Reason::Unverified,
            };
            return Event::Upload { file, reason };
        };
        self.hashed += 1;
        self.bytes_hashed += digest.bytes;
        match content::compare(&digest, &object, file.known.as_deref(), otherwise) {
            Settled::Same if self.refresh => Event::Upload { file, reason: Reason::Chain },
            Settled::Same => {
                self.same += 1;
                Event::Same { file, object, md5: Some(digest.md5) }
            }
            Settled::Upload(reason) => Event::Upload { file, reason },
        }
    }
}

#[async_trait::async_trait]
impl Sink for Checking {
    async fn accept(&mut self, events: Vec<Event>) {
        // Start every read of the batch, then hand the batch on in its order.
        let mut reads = Vec::new();
        for event in &events {
            if let Event::Check { file, object, .. } = event {
                let (path, encoding) = (file.path().map(|p| p.to_owned()), file.encoding());
                // The object's size: a compressed entry's parts are of its compressed bytes.
                let parts = part_sizes(object.etag.as_deref(), object.size, self.own_part);
                let permits = self.reads.clone();
                reads.push(tokio::spawn(async move {
                    let _permit = permits.acquire_owned().await.ok()?;
                    let path = path?;
                    let read = tokio::task::spawn_blocking(move || digest(&path, encoding, &parts)).await.ok()?;
                    read.ok()
                }));
            }
        }
        let mut reads = reads.into_iter();
        let mut out = Vec::with_capacity(events.len());
        for event in events {
            match event {
                Event::Check { file, object, otherwise } => {
                    let read = match reads.next() {
                        Some(task) => task.await.ok().flatten(),
                        None => None,
                    };
                    out.push(self.resolve(file, object, otherwise, read));
                }
                other => out.push(other),
            }
        }
        self.inner.accept(out).await;
    }

    fn deletes_planned(&self) -> u64 {
        self.inner.deletes_planned()
    }

    fn failures(&self) -> u64 {
        self.inner.failures()
    }

    async fn finish(self: Box<Self>, finish: Finish) -> Applied {
        let Checking { inner, hashed, bytes_hashed, same, .. } = *self;
        let finish = Finish { unchanged: finish.unchanged + same, hashed, ..finish };
        let mut applied = inner.finish(finish).await;
        applied.hashed = hashed;
        applied.bytes_hashed = bytes_hashed;
        applied.verified = same;
        applied
    }
}
