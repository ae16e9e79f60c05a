//! Reading the files the diff could not judge by their metadata, and comparing their bytes with
//! the objects, before the decisions reach the sink that applies or plans them.
//!
//! It wraps a sink ([`Checking`]): the pairs of a batch that need it are read in parallel on the
//! blocking pool, each file once, and their verdicts ([`content::compare`]) replace them in the
//! batch, in order, before it is handed on. So a plan shows `upload KEY (content differs)` for
//! the same reason a sync sends it. A file that cannot be read is handed on as an upload, whose
//! own read then reports why. An inline body (bytes a transform made) is hashed from memory, as
//! its file would be read. A compressed entry is compressed as it is read, as its upload would
//! compress it, and those bytes are compared.
//!
//! A compressed key the diff could not settle without its bytes' source size is asked for it
//! instead ([`Event::Head`], see `head`): the HEADs of a batch start with its reads and are
//! awaited in the same order.
//!
//! A site is mostly small files, and for those a trip to the blocking pool costs more than the
//! read: the files of a batch are read in groups (up to [`GROUP_FILES`] files or
//! [`GROUP_BYTES`] bytes, in batch order), each group in one trip, a few groups a core at once.
//! And a batch with reads is held while the next one's reads start, so the cores read on while a
//! batch is resolved and handed on; what a held batch will add (its deletes, its problems) is
//! counted as if it were handed on already, so the delete limits see it.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::Semaphore;

use super::head::{Heads, Recorded};
use super::{Applied, Finish, Sink};
use crate::content::{self, digest, digest_of, part_sizes};
use crate::model::{Event, LocalFile, Reason, RemoteObject, Settled};

/// Inline bodies up to this size are hashed on the spot: a page costs less than a trip to the
/// blocking pool, where larger ones go.
const HASH_AT_ONCE: usize = 1024 * 1024;

/// Files read in one trip to the blocking pool, at most: one trip per small file cost about as
/// much CPU as the reading.
const GROUP_FILES: usize = 64;
const GROUP_BYTES: u64 = 8 << 20;

/// The digest of one pair: being computed on the blocking pool (a large inline body), computed at
/// once (a small inline body), or the next of the batch's file reads.
enum Read {
    Pending(tokio::task::JoinHandle<Option<content::Digest>>),
    Done(Option<content::Digest>),
    File,
    /// A HEAD under way; `None` when the sink has no client to send it with.
    Head(Option<tokio::task::JoinHandle<Recorded>>),
}

/// One file to read, and how.
struct FileRead {
    path: Option<PathBuf>,
    encoding: Option<crate::model::Encoding>,
    parts: Vec<u64>,
}

impl FileRead {
    /// A blocking read: call it off the async runtime's workers.
    fn digest(&self) -> Option<content::Digest> {
        digest(self.path.as_deref()?, self.encoding, &self.parts).ok()
    }
}

/// The digests of a batch's files, read in groups, handed out in the batch's order.
struct FileReads {
    /// Each group's size, and its reads.
    groups: VecDeque<(usize, tokio::task::JoinHandle<Vec<Option<content::Digest>>>)>,
    current: std::vec::IntoIter<Option<content::Digest>>,
}

impl FileReads {
    /// Starts reading `files` in groups, at most as many groups at once as `permits` allows.
    fn start(files: Vec<(FileRead, u64)>, permits: &Arc<Semaphore>) -> FileReads {
        let mut groups = VecDeque::new();
        let mut files = files.into_iter().peekable();
        while files.peek().is_some() {
            let (mut group, mut bytes) = (Vec::new(), 0);
            while let Some((read, size)) = files.next_if(|_| group.len() < GROUP_FILES && bytes < GROUP_BYTES) {
                group.push(read);
                bytes += size;
            }
            let (len, permits) = (group.len(), permits.clone());
            groups.push_back((
                len,
                tokio::spawn(async move {
                    let _permit = permits.acquire_owned().await;
                    let read = move || group.iter().map(FileRead::digest).collect();
                    tokio::task::spawn_blocking(read).await.unwrap_or_else(|_| vec![None; len])
                }),
            ));
        }
        FileReads { groups, current: Vec::new().into_iter() }
    }

    /// The next file's digest; `None` when it could not be read.
    async fn next(&mut self) -> Option<content::Digest> {
        loop {
            if let Some(digest) = self.current.next() {
                return digest;
            }
            let (len, group) = self.groups.pop_front()?;
            self.current = group.await.unwrap_or_else(|_| vec![None; len]).into_iter();
        }
    }
}

/// A sink that reads and compares before handing on.
pub struct Checking {
    inner: Box<dyn Sink>,
    own_part: u64,
    /// The chain changed: a file found the same is re-published in place.
    refresh: bool,
    /// Groups of files read at once.
    reads: Arc<Semaphore>,
    /// What sends the HEADs of compressed keys.
    heads: Option<Heads>,
    hashed: u64,
    bytes_hashed: u64,
    /// Pairs found the same once read.
    same: u64,
    /// The batch whose reads are under way, handed on when the next one comes or at the end.
    held: Option<Started>,
}

/// A batch whose reads were started.
struct Started {
    events: Vec<Event>,
    reads: Vec<Read>,
    files: FileReads,
    /// Its deletes and its problems, which the sink will count once it has them.
    deletes: u64,
    problems: u64,
}

impl Checking {
    pub fn new(inner: Box<dyn Sink>, own_part: u64, refresh: bool) -> Checking {
        // Groups read at once: a few a core, so one waiting on the disk leaves the core busy.
        let parallel = std::thread::available_parallelism().map_or(2, |n| n.get()) * 2;
        let reads = Arc::new(Semaphore::new(parallel));
        Checking { inner, own_part, refresh, reads, heads: None, hashed: 0, bytes_hashed: 0, same: 0, held: None }
    }

    /// Sends the HEADs the diff asks for with `heads`; without, such a key is uploaded.
    pub fn with_heads(mut self, heads: Heads) -> Checking {
        self.heads = Some(heads);
        self
    }

    /// Starts every read of a batch.
    fn start(&self, events: Vec<Event>) -> Started {
        let (mut reads, mut files, mut deletes, mut problems) = (Vec::new(), Vec::new(), 0, 0);
        for event in &events {
            let (file, object) = match event {
                Event::Check { file, object, .. } => (file, object),
                Event::Head { object, .. } => {
                    reads.push(Read::Head(self.heads.as_ref().map(|heads| heads.start(&object.key))));
                    continue;
                }
                event if event.counts_as_delete() => {
                    deletes += 1;
                    continue;
                }
                Event::Problem(_) => {
                    problems += 1;
                    continue;
                }
                _ => continue,
            };
            // The object's size: a compressed entry's parts are of its compressed bytes (an inline
            // body or a plain file that got this far has the object's size).
            let parts = part_sizes(object.etag.as_deref(), object.size, self.own_part);
            reads.push(match file.inline_bytes() {
                Some(bytes) if bytes.len() <= HASH_AT_ONCE => Read::Done(Some(digest_of(bytes, &parts))),
                Some(bytes) => {
                    let bytes = bytes.clone();
                    Read::Pending(tokio::task::spawn_blocking(move || Some(digest_of(&bytes, &parts))))
                }
                None => {
                    let (path, encoding) = (file.path().map(|p| p.to_owned()), file.encoding());
                    files.push((FileRead { path, encoding, parts }, file.size));
                    Read::File
                }
            });
        }
        let files = FileReads::start(files, &self.reads);
        Started { events, reads, files, deletes, problems }
    }

    /// Waits for a batch's reads, and hands it on in its order with their verdicts.
    async fn hand_on(&mut self, started: Started) {
        let Started { events, reads, mut files, .. } = started;
        let mut reads = reads.into_iter();
        let mut out = Vec::with_capacity(events.len());
        for event in events {
            match event {
                Event::Check { file, object, otherwise } => {
                    let read = match reads.next() {
                        Some(Read::Pending(task)) => task.await.ok().flatten(),
                        Some(Read::Done(digest)) => digest,
                        Some(Read::File) => files.next().await,
                        Some(Read::Head(_)) | None => None,
                    };
                    out.push(self.resolve(file, object, otherwise, read));
                }
                Event::Head { file, object } => {
                    let recorded = match reads.next() {
                        Some(Read::Head(Some(task))) => task.await.unwrap_or(Recorded::Failed),
                        _ => Recorded::Failed,
                    };
                    let settled = recorded.settle(&file);
                    out.push(self.verdict(file, object, settled, None));
                }
                other => out.push(other),
            }
        }
        self.inner.accept(out).await;
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
        let settled = content::compare(&digest, &object, file.known.as_deref(), otherwise);
        self.verdict(file, object, settled, Some(digest.md5))
    }

    /// The event of a pair once settled; `md5` when its file was read.
    fn verdict(&mut self, file: LocalFile, object: RemoteObject, settled: Settled, md5: Option<[u8; 16]>) -> Event {
        match settled {
            Settled::Same if self.refresh => Event::Upload { file, reason: Reason::Chain },
            Settled::Same => {
                self.same += 1;
                Event::Same { file, object, md5 }
            }
            Settled::Upload(reason) => Event::Upload { file, reason },
        }
    }
}

#[async_trait::async_trait]
impl Sink for Checking {
    async fn accept(&mut self, events: Vec<Event>) {
        let next = self.start(events);
        if let Some(held) = self.held.take() {
            self.hand_on(held).await;
        }
        match next.reads.is_empty() {
            true => self.hand_on(next).await,
            false => self.held = Some(next),
        }
    }

    fn deletes_planned(&self) -> u64 {
        self.inner.deletes_planned() + self.held.as_ref().map_or(0, |held| held.deletes)
    }

    fn failures(&self) -> u64 {
        self.inner.failures() + self.held.as_ref().map_or(0, |held| held.problems)
    }

    async fn finish(mut self: Box<Self>, finish: Finish) -> Applied {
        if let Some(held) = self.held.take() {
            self.hand_on(held).await;
        }
        let Checking { inner, hashed, bytes_hashed, same, heads, .. } = *self;
        if let Some(heads) = heads {
            heads.log();
        }
        let finish = Finish { unchanged: finish.unchanged + same, hashed, ..finish };
        let mut applied = inner.finish(finish).await;
        applied.hashed = hashed;
        applied.bytes_hashed = bytes_hashed;
        applied.verified = same;
        applied
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::content::{hex, md5_of};
    use crate::keys::target::Target;
    use crate::model::Time;
    use crate::sink::{Finish, PlanSink};

    fn check(key: &str, bytes: &[u8], etag: &[u8]) -> Event {
        let file = LocalFile::inline(key.into(), Arc::from(bytes), Time(0));
        let object = RemoteObject {
            key: key.into(),
            size: bytes.len() as u64,
            last_modified: Time(0),
            etag: Some(hex(&md5_of(etag))),
        };
        Event::Check { file, object, otherwise: Settled::Upload(Reason::Unverified) }
    }

    #[tokio::test]
    async fn inline_bodies_are_hashed_from_memory_and_compared_like_files() {
        let plan = PlanSink::new(Target::parse("s3://bkt/site").unwrap(), true);
        let mut sink = Checking::new(Box::new(plan), 8 << 20, false);
        // Past the size hashed at once: this one goes to the blocking pool.
        let large = vec![7u8; HASH_AT_ONCE + 1];
        let mut other = large.clone();
        other[0] = 8;
        sink.accept(vec![
            check("a/index.html", b"hello", b"hello"),
            check("b/index.html", b"hello", b"jello"),
            check("c/index.html", &large, &large),
            check("d/index.html", &large, &other),
        ])
        .await;
        let applied = Box::new(sink).finish(Finish { deletes: true, unchanged: 0, hashed: 0 }).await;
        assert_eq!((applied.hashed, applied.bytes_hashed, applied.verified), (4, 10 + 2 * large.len() as u64, 2));
        let uploads: Vec<&str> = applied.plan.lines().filter(|l| l.starts_with("upload")).collect();
        assert_eq!(
            uploads,
            [
                "upload site/b/index.html (content differs, 5 bytes)",
                "upload site/d/index.html (content differs, 1048577 bytes)"
            ],
            "{}",
            applied.plan
        );
    }

    #[tokio::test]
    async fn files_read_in_groups_keep_their_batch_order() {
        let dir = tempfile::tempdir().unwrap();
        let n = GROUP_FILES * 2 + 5;
        let mut events = Vec::new();
        for i in 0..n {
            let key = format!("p{i:03}.html");
            let bytes = format!("page {i:03}");
            let path = dir.path().join(&key);
            // Every seventh differs from its object, and the last one is gone before it is read.
            let stored = if i % 7 == 0 { format!("edit {i:03}") } else { bytes.clone() };
            if i + 1 < n {
                std::fs::write(&path, &bytes).unwrap();
            }
            let file = LocalFile::new(key.clone(), path, bytes.len() as u64, Time(0));
            let object = RemoteObject {
                key,
                size: bytes.len() as u64,
                last_modified: Time(0),
                etag: Some(hex(&md5_of(stored.as_bytes()))),
            };
            events.push(Event::Check { file, object, otherwise: Settled::Upload(Reason::Newer) });
        }
        let plan = PlanSink::new(Target::parse("s3://bkt/site").unwrap(), true);
        let mut sink = Checking::new(Box::new(plan), 8 << 20, false);
        sink.accept(events).await;
        let applied = Box::new(sink).finish(Finish { deletes: true, unchanged: 0, hashed: 0 }).await;
        let uploads: Vec<&str> = applied.plan.lines().filter(|l| l.starts_with("upload")).collect();
        let mut expected: Vec<String> = (0..n - 1)
            .filter(|i| i % 7 == 0)
            .map(|i| format!("upload site/p{i:03}.html (content differs, 8 bytes)"))
            .collect();
        expected.push(format!("upload site/p{:03}.html (newer, 8 bytes)", n - 1));
        assert_eq!(uploads, expected, "{}", applied.plan);
        assert_eq!((applied.hashed, applied.verified), (n as u64 - 1, (n as u64 - 1) - expected.len() as u64 + 1));
    }

    #[tokio::test]
    async fn a_pair_to_ask_is_uploaded_when_nothing_can_ask_and_the_reads_around_it_keep_theirs() {
        let plan = PlanSink::new(Target::parse("s3://bkt/site").unwrap(), true);
        let mut sink = Checking::new(Box::new(plan), 8 << 20, false);
        let mut file = LocalFile::new("b.css".into(), "/nowhere/b.css".into(), 5000, Time(0));
        file.body =
            crate::model::Body::Compressed { path: "/nowhere/b.css".into(), encoding: crate::model::Encoding::Gzip };
        let object = RemoteObject { key: "b.css".into(), size: 900, last_modified: Time(0), etag: None };
        sink.accept(vec![check("a.css", b"a", b"x"), Event::Head { file, object }, check("c.css", b"c", b"x")]).await;
        let applied = Box::new(sink).finish(Finish { deletes: true, unchanged: 0, hashed: 0 }).await;
        let uploads: Vec<&str> = applied.plan.lines().filter(|l| l.starts_with("upload")).collect();
        assert_eq!(
            uploads,
            [
                "upload site/a.css (content differs, 1 bytes)",
                "upload site/b.css (content not verifiable, 5000 bytes before gzip)",
                "upload site/c.css (content differs, 1 bytes)"
            ],
            "{}",
            applied.plan
        );
    }

    #[tokio::test]
    async fn a_batch_held_for_its_reads_counts_its_deletes_and_problems_already() {
        let plan = PlanSink::new(Target::parse("s3://bkt/site").unwrap(), true);
        let mut sink = Checking::new(Box::new(plan), 8 << 20, false);
        let gone = RemoteObject { key: "old.html".into(), size: 1, last_modified: Time(0), etag: None };
        let problem = crate::model::Problem::new("fifo".into(), "not a regular file".into());
        sink.accept(vec![
            check("a.html", b"a", b"a"),
            Event::Delete { object: gone, retired: None },
            Event::Problem(problem),
        ])
        .await;
        assert!(sink.held.is_some(), "the batch waits for the next one while its read runs");
        assert_eq!((sink.deletes_planned(), sink.failures()), (1, 1), "the limits see it all the same");
        sink.accept(vec![]).await;
        assert!(sink.held.is_none(), "a batch with nothing to read is handed on at once, after the held one");
        assert_eq!((sink.deletes_planned(), sink.failures()), (1, 1), "counted once, by the sink now");
        let applied = Box::new(sink).finish(Finish { deletes: true, unchanged: 0, hashed: 0 }).await;
        assert_eq!(applied.hashed, 1);
        assert!(applied.plan.contains("delete site/old.html"), "{}", applied.plan);
    }
}
