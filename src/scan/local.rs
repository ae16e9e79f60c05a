//! The local walk, in S3's key order, on its own thread.
//!
//! A naive depth-first walk is not in S3 order: `a.b` sorts before `a/b` because `.` (0x2E) is
//! below `/` (0x2F). So each directory's entries are sorted by their decoded key component, with
//! `/` appended to directory names, before the walk descends; the resulting stream of keys is
//! exactly the order a ListObjectsV2 returns, which lets the diff match keys as the two scans go.
//!
//! The walk does blocking syscalls, so it runs on a plain thread rather than on the async
//! runtime's workers, and hands batches to the pipeline through a bounded channel.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use crate::model::{BATCH, LocalFile, LocalItem, Problem, Time};
use crate::names::{NameDecoder, escape};

/// A directory entry waiting to be visited.
struct Child {
    /// The key (relative to the root), with `/` appended for directories: the sort key.
    key: String,
    path: PathBuf,
    is_dir: bool,
}

/// Walks `root` on a new thread, sending batches until done or until the receiver is dropped.
pub fn spawn(root: PathBuf, names: NameDecoder, tx: mpsc::Sender<Vec<LocalItem>>) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("sitesync-walk".into())
        .spawn(move || {
            let mut walk = Walk { names, tx, batch: Vec::with_capacity(BATCH) };
            walk.run(&root);
        })
        .expect("spawning the walk thread")
}

struct Walk {
    names: NameDecoder,
    tx: mpsc::Sender<Vec<LocalItem>>,
    batch: Vec<LocalItem>,
}

impl Walk {
    fn run(&mut self, root: &Path) {
        // A stack of sorted directory listings, each consumed from the end.
        let mut stack = vec![self.list(root, "")];
        while let Some(top) = stack.last_mut() {
            let Some(child) = top.pop() else {
                stack.pop();
                continue;
            };
            if child.is_dir {
                stack.push(self.list(&child.path, &child.key));
            } else if !self.stat(child) {
                return;
            }
        }
        self.flush();
    }

    /// The entries of one directory, sorted so that `pop` yields them in key order.
    fn list(&mut self, dir: &Path, key_prefix: &str) -> Vec<Child> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                self.problem(dir_place(key_prefix, dir), format!("cannot read directory: {e}"));
                return Vec::new();
            }
        };
        let mut children = Vec::new();
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    self.problem(dir_place(key_prefix, dir), format!("cannot read directory: {e}"));
                    continue;
                }
            };
            let name = entry.file_name();
            let component = match self.names.decode(&name) {
                Ok(c) => c,
                Err(why) => {
                    let place = format!("{key_prefix}{}", escape(name.as_bytes()));
                    self.problem(place, format!("skipped: {why}"));
                    continue;
                }
            };
            let path = entry.path();
            let is_dir = match entry.file_type() {
                Ok(t) if t.is_dir() => true,
                // A symlink is followed: it is a directory if its target is one.
                Ok(t) if t.is_symlink() => fs::metadata(&path).map(|m| m.is_dir()).unwrap_or(false),
                Ok(_) => false,
                Err(_) => false,
            };
            let mut key = String::with_capacity(key_prefix.len() + component.len() + 1);
            key.push_str(key_prefix);
            key.push_str(&component);
            if is_dir {
                key.push('/');
            }
            children.push(Child { key, path, is_dir });
        }
        children.sort_unstable_by(|a, b| b.key.cmp(&a.key));
        children
    }

    /// Stats a file and queues it; false when the receiver is gone.
    fn stat(&mut self, child: Child) -> bool {
        let item = match fs::metadata(&child.path) {
            Ok(meta) if meta.is_file() => LocalItem::File(LocalFile {
                key: child.key,
                path: child.path,
                size: meta.len(),
                mtime: meta.modified().map(Time::from_system).unwrap_or(Time(0)),
            }),
            Ok(_) => LocalItem::Problem(Problem {
                place: child.key,
                message: "not a regular file (FIFO, socket or device)".into(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                LocalItem::Problem(Problem { place: child.key, message: "broken symlink or vanished file".into() })
            }
            Err(e) => LocalItem::Problem(Problem { place: child.key, message: format!("cannot stat: {e}") }),
        };
        self.push(item)
    }

    fn problem(&mut self, place: String, message: String) {
        self.push(LocalItem::Problem(Problem { place, message }));
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

fn dir_place(key_prefix: &str, dir: &Path) -> String {
    if key_prefix.is_empty() { escape(dir.as_os_str().as_bytes()) } else { key_prefix.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(root: &Path, names: NameDecoder) -> Vec<LocalItem> {
        let (tx, mut rx) = mpsc::channel(4);
        let handle = spawn(root.to_owned(), names, tx);
        let mut items = Vec::new();
        while let Some(batch) = rx.blocking_recv() {
            items.extend(batch);
        }
        handle.join().unwrap();
        items
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
}
