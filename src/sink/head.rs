//! Asking a compressed key's object what it was made from: one HeadObject, for the keys nothing
//! cheaper settles.
//!
//! A compressed object's size says nothing of its source's, so an edit copied with an old mtime
//! (`cp -p`, `SOURCE_DATE_EPOCH`) is invisible to the mtime rule even when it changed the file's
//! size, which a plain file's object shows for free. So the upload of a compressed entry records
//! its source's size in the object's user metadata ([`SOURCE_SIZE`]), which a listing does not
//! return and a HEAD does; the diff asks for it ([`Event::Head`](crate::model::Event::Head)) only
//! for the compressed keys the mtime rule finds unchanged that the local state cannot settle (a
//! run without a state). The content check sends the HEADs of a batch when the batch comes in, at
//! most a few at once, on the runtime (a request: nothing blocks), and reads their answers when
//! it hands the batch on. An object without the record (uploaded by an older version, or another
//! tool) or whose HEAD fails is uploaded: once, after which it carries the record. A plan over an
//! in-memory bucket gives [`Heads`] what the objects record instead ([`Heads::known`]), so its
//! content check asks them through the same seam.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::error::{Op, StoreError};
use crate::keys::target::Target;
use crate::model::fields::SOURCE_SIZE;
use crate::model::{LocalFile, Reason, Settled};

/// What a HEAD said of the source an object was made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The source's size, as its upload recorded it.
    Size(u64),
    /// The object holds no such record.
    Nothing,
    /// The HEAD failed (the object is gone, access denied, the server did not answer).
    Failed,
}

impl Recorded {
    /// The verdict on `file`: the same when its size is the recorded one.
    pub fn settle(self, file: &LocalFile) -> Settled {
        match self {
            Recorded::Size(size) if size == file.size => Settled::Same,
            Recorded::Size(_) => Settled::Upload(Reason::Size),
            Recorded::Nothing | Recorded::Failed => Settled::Upload(Reason::Unverified),
        }
    }
}

/// The HEADs of a run.
#[derive(Clone)]
pub struct Heads {
    asked: Asked,
    /// HEADs in flight at once.
    permits: Arc<Semaphore>,
    /// HEADs sent, and of them failed.
    sent: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

/// Who answers the HEADs.
#[derive(Clone)]
enum Asked {
    /// The bucket, over the network: a run.
    Store { client: aws_sdk_s3::Client, target: Target },
    /// What the bucket's objects record, already known (keys relative to the prefix): a plan over
    /// an in-memory bucket. A key without an entry holds no record.
    Known(Arc<HashMap<String, u64>>),
}

impl Heads {
    /// At most `at_once` HEADs in flight (the run's workers).
    pub fn new(client: aws_sdk_s3::Client, target: Target, at_once: usize) -> Heads {
        Heads::of(Asked::Store { client, target }, at_once)
    }

    /// HEADs answered by `recorded`: the source size each key's object records, as a HEAD of it
    /// would return it.
    pub fn known(recorded: HashMap<String, u64>) -> Heads {
        Heads::of(Asked::Known(Arc::new(recorded)), 1)
    }

    fn of(asked: Asked, at_once: usize) -> Heads {
        Heads { asked, permits: Arc::new(Semaphore::new(at_once.max(1))), sent: Arc::default(), failed: Arc::default() }
    }

    /// Starts the HEAD of `key` (relative to the prefix).
    pub fn start(&self, key: &str) -> JoinHandle<Recorded> {
        let (heads, key) = (self.clone(), key.to_owned());
        tokio::spawn(async move {
            let _permit = heads.permits.acquire().await;
            heads.sent.fetch_add(1, Ordering::Relaxed);
            match &heads.asked {
                Asked::Store { client, target } => heads.ask(client, target, &key).await,
                Asked::Known(recorded) => recorded.get(&key).map_or(Recorded::Nothing, |&size| Recorded::Size(size)),
            }
        })
    }

    /// One HeadObject: what the object records of its source.
    async fn ask(&self, client: &aws_sdk_s3::Client, target: &Target, key: &str) -> Recorded {
        let key = target.key(key);
        match client.head_object().bucket(&target.bucket).key(&key).send().await {
            Ok(out) => match out.metadata().and_then(|m| m.get(SOURCE_SIZE)).map(|v| v.parse()) {
                Some(Ok(size)) => Recorded::Size(size),
                _ => Recorded::Nothing,
            },
            Err(e) => {
                let error = StoreError::sdk(Op::Head, format!("s3://{}/{key}", target.bucket), e);
                match self.failed.fetch_add(1, Ordering::Relaxed) {
                    0 => tracing::warn!("{error}: the key is uploaded rather than trusted"),
                    _ => tracing::debug!("{error}: the key is uploaded rather than trusted"),
                }
                Recorded::Failed
            }
        }
    }

    /// Says how many HEADs the run sent.
    pub fn log(&self) {
        let (sent, failed) = (self.sent.load(Ordering::Relaxed), self.failed.load(Ordering::Relaxed));
        if sent > 0 {
            tracing::debug!("asked {sent} compressed objects the size of their source (HeadObject; {failed} failed)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Time;

    #[test]
    fn only_the_recorded_size_of_the_file_settles_it() {
        let file = LocalFile::new("a.css".into(), "/src/a.css".into(), 5000, Time(0));
        assert_eq!(Recorded::Size(5000).settle(&file), Settled::Same);
        assert_eq!(Recorded::Size(4999).settle(&file), Settled::Upload(Reason::Size));
        assert_eq!(Recorded::Nothing.settle(&file), Settled::Upload(Reason::Unverified));
        assert_eq!(Recorded::Failed.settle(&file), Settled::Upload(Reason::Unverified));
    }
}
