//! The local walk, in S3's key order, on its own thread.
//!
//! A naive depth-first walk is not in S3 order: `a.b` sorts before `a/b` because `.` (0x2E) is
//! below `/` (0x2F). So each directory's entries are sorted by their decoded key component, with
//! `/` appended to directory names, before the walk descends; the resulting stream of keys is
//! exactly the order a ListObjectsV2 returns, which lets the diff match keys as the two scans go.
//!
//! The walk does blocking syscalls, so it runs on plain threads rather than on the async
//! runtime's workers: one thread emits keys in order and hands batches to the pipeline through a
//! bounded channel, while a few others read and stat the directories it will enter next
//! (`prefetch`). Reading one directory is `listing`'s job.
//!
//! Symlinks are followed, so a link back to a directory above it would make the walk endless: the
//! (device, inode) of every directory on the current path is kept, and a directory met again is
//! reported as a loop instead of entered. Keys longer than S3's 1,024 bytes (prefix included) are
//! reported here, where the file can be named, rather than failing one by one at upload time.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use super::WalkError;
use super::listing::{Child, DirId, Kind, Reader};
use super::options::WalkOptions;
use super::prefetch::Prefetch;
use crate::model::{BATCH, LocalFile, LocalItem, Problem};
use crate::run::thread::SpawnError;

/// Walks `root` on a new thread, sending batches until done or until the receiver is dropped.
/// The thread's result says whether the walk got to its end (or its receiver went away).
pub fn spawn(
    root: PathBuf,
    opts: WalkOptions,
    tx: mpsc::Sender<Vec<LocalItem>>,
) -> Result<std::thread::JoinHandle<Result<(), WalkError>>, SpawnError> {
    crate::run::thread::spawn("sitesync-walk", move || Walk { tx, batch: Vec::with_capacity(BATCH) }.run(&root, opts))
}

/// Walks `root` into a vector, waiting for the whole walk: for tests and tools.
pub fn walk_all(root: &Path, opts: WalkOptions) -> Result<Vec<LocalItem>, WalkError> {
    let (tx, mut rx) = mpsc::channel(4);
    let walker = spawn(root.to_owned(), opts, tx)?;
    let mut items = Vec::new();
    while let Some(batch) = rx.blocking_recv() {
        items.extend(batch);
    }
    walker.join().map_err(|panic| WalkError::Died(crate::run::panic::message(panic.as_ref())))??;
    Ok(items)
}

/// Directory reader threads beside the walk: enough to keep a disk's queue busy on a cold cache
/// and the cores busy on a warm one.
fn reader_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8)
}

struct Walk {
    tx: mpsc::Sender<Vec<LocalItem>>,
    batch: Vec<LocalItem>,
}

impl Walk {
    fn run(mut self, root: &Path, opts: WalkOptions) -> Result<(), WalkError> {
        let reader = Reader::new(opts, root);
        let prefetch = Prefetch::start(&reader, reader_threads())?;
        // A stack of sorted directory listings, each consumed from the end, and beside it the
        // identity of each directory on the stack.
        let mut stack = vec![self.enter(&prefetch, &reader, root, "")?];
        let mut ancestors: Vec<Option<DirId>> = vec![fs::metadata(root).ok().map(|m| (m.dev(), m.ino()))];
        while let Some(top) = stack.last_mut() {
            let Some(child) = top.pop() else {
                stack.pop();
                ancestors.pop();
                continue;
            };
            let sent = match child.kind {
                Kind::Dir(id) => {
                    if id.is_some() && ancestors.contains(&id) {
                        let why = "symlink loop: leads back to a directory that contains it";
                        self.push(LocalItem::Problem(Problem::new(child.key, why.into())))
                    } else {
                        stack.push(self.enter(&prefetch, &reader, &child.path, &child.key)?);
                        ancestors.push(id);
                        true
                    }
                }
                Kind::File { size, mtime } => {
                    self.push(LocalItem::File(LocalFile::new(child.key, child.path, size, mtime)))
                }
                Kind::Unpublishable(message) => self.push(LocalItem::Problem(Problem::new(child.key, message))),
            };
            if !sent {
                return Ok(());
            }
        }
        self.flush();
        Ok(())
    }

    /// The sorted entries of a directory about to be walked; its problems are queued, and its
    /// subdirectories are handed to the readers, to be ready when the walk gets to them.
    fn enter(
        &mut self,
        prefetch: &Prefetch,
        reader: &Reader,
        dir: &Path,
        key_prefix: &str,
    ) -> Result<Vec<Child>, WalkError> {
        let listing = prefetch.take(reader, dir, key_prefix)?;
        for problem in listing.problems {
            self.push(LocalItem::Problem(problem));
        }
        let subdirs = listing
            .children
            .iter()
            .rev()
            .filter(|c| matches!(c.kind, Kind::Dir(_)))
            .map(|c| (c.path.clone(), c.key.clone()))
            .collect();
        prefetch.submit(subdirs);
        Ok(listing.children)
    }

    fn push(&mut self, item: LocalItem) -> bool {
        self.batch.push(item);
        if self.batch.len() >= BATCH { self.flush() } else { true }
    }

    fn flush(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        self.tx.blocking_send(batch).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::names::NameDecoder;

    fn walk(root: &Path, names: NameDecoder) -> Vec<LocalItem> {
        walk_all(root, WalkOptions::new(names)).unwrap()
    }

    #[test]
    fn keys_come_in_s3_order() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["a.b", "a/b", "a/c/d", "a0", "a-b/x", "b", "A"] {
            let p = dir.path().join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, f).unwrap();
        }
        let keys: Vec<String> = walk(dir.path(), NameDecoder::new("utf-8", "none").unwrap())
            .into_iter()
            .map(|i| match i {
                LocalItem::File(f) => f.key,
                LocalItem::Problem(p) => panic!("{p:?}"),
            })
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(keys, ["A", "a-b/x", "a.b", "a/b", "a/c/d", "a0", "b"]);
    }

    #[test]
    fn names_that_normalise_to_one_key_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["caf\u{e9}.txt", "cafe\u{301}.txt", "z.txt"] {
            fs::write(dir.path().join(name), name).unwrap();
        }
        let items = walk(dir.path(), NameDecoder::new("utf-8", "nfc").unwrap());
        let described: Vec<String> = items
            .into_iter()
            .map(|i| match i {
                LocalItem::File(f) => format!("file {}", f.key),
                LocalItem::Problem(p) => format!("problem {}", p.place),
            })
            .collect();
        assert_eq!(described, ["problem caf\u{e9}.txt", "file z.txt"]);
    }

    fn outcome(items: Vec<LocalItem>) -> Vec<String> {
        items
            .into_iter()
            .map(|i| match i {
                LocalItem::File(f) => f.key,
                LocalItem::Problem(p) => format!("{}: {}", p.place, p.message),
            })
            .collect()
    }

    #[test]
    fn symlink_loops_are_reported_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("a/b")).unwrap();
        fs::write(dir.path().join("a/b/f"), "f").unwrap();
        std::os::unix::fs::symlink("../..", dir.path().join("a/b/up")).unwrap();
        std::os::unix::fs::symlink("../b", dir.path().join("a/b/same")).unwrap();
        std::os::unix::fs::symlink("me", dir.path().join("me")).unwrap();
        let got = outcome(walk(dir.path(), NameDecoder::new("utf-8", "none").unwrap()));
        assert_eq!(
            got,
            [
                "me: symlink loop: me never resolves",
                "a/b/f",
                "a/b/same/: symlink loop: leads back to a directory that contains it",
                "a/b/up/: symlink loop: leads back to a directory that contains it",
            ]
        );
    }

    #[test]
    fn keys_over_s3s_limit_are_reported_with_the_prefix_counted() {
        let dir = tempfile::tempdir().unwrap();
        let long = "x".repeat(200);
        fs::create_dir_all(dir.path().join(&long)).unwrap();
        fs::write(dir.path().join(&long).join("f"), "f").unwrap();
        fs::write(dir.path().join("short"), "s").unwrap();
        let names = NameDecoder::new("utf-8", "none").unwrap();
        let items = |prefix_len| {
            let (tx, mut rx) = mpsc::channel(4);
            let opts = WalkOptions { prefix_len, ..WalkOptions::new(names) };
            let handle = spawn(dir.path().to_owned(), opts, tx).unwrap();
            let mut items = Vec::new();
            while let Some(batch) = rx.blocking_recv() {
                items.extend(batch);
            }
            handle.join().unwrap().unwrap();
            outcome(items)
        };
        // 200 + "/f" = 202 bytes: fits under a 822-byte prefix, not under an 823-byte one.
        assert_eq!(items(822), ["short".to_owned(), format!("{long}/f")]);
        let over = items(823);
        assert_eq!(over.len(), 2);
        assert!(over[0].starts_with(&format!("{long}/: every key under this directory is over")), "{over:?}");
    }
}
