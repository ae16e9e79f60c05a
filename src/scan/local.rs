//! The local walk, in S3's key order, on its own thread.
//!
//! A naive depth-first walk is not in S3 order: `a.b` sorts before `a/b` because `.` (0x2E) is
//! below `/` (0x2F). So each directory's entries are sorted by their decoded key component, with
//! `/` appended to directory names, before the walk descends; the resulting stream of keys is
//! exactly the order a ListObjectsV2 returns, which lets the diff match keys as the two scans go.
//!
//! The walk does blocking syscalls, so it runs on a plain thread rather than on the async
//! runtime's workers, and hands batches to the pipeline through a bounded channel.
//!
//! Symlinks are followed, so a link back to a directory above it would make the walk endless: the
//! (device, inode) of every directory on the current path is kept, and a directory met again is
//! reported as a loop instead of entered. Keys longer than S3's 1,024 bytes (prefix included) are
//! reported here, where the file can be named, rather than failing one by one at upload time.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use crate::model::{BATCH, LocalFile, LocalItem, Problem, Time};
use crate::names::{NameDecoder, escape};

/// S3's limit on the length of a key, in bytes of UTF-8, prefix included.
pub const MAX_KEY_BYTES: usize = 1024;

/// What to do with a symlink whose target lies outside the source directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SymlinkPolicy {
    /// Publish what it points to, like any file or directory.
    #[default]
    Follow,
    /// Leave it out, with a warning: it is treated as absent.
    Skip,
}

/// How the walk turns directory entries into keys.
#[derive(Debug, Clone, Copy)]
pub struct WalkOptions {
    pub names: NameDecoder,
    pub symlinks: SymlinkPolicy,
    /// Bytes of the target prefix, which count toward [`MAX_KEY_BYTES`].
    pub prefix_len: usize,
}

/// A directory's identity, to recognise it when a symlink leads back to it.
type DirId = (u64, u64);

/// A directory entry waiting to be visited.
struct Child {
    /// The key (relative to the root), with `/` appended for directories: the sort key.
    key: String,
    path: PathBuf,
    is_dir: bool,
    /// For directories: (device, inode) of the directory itself, symlinks followed.
    id: Option<DirId>,
}

/// Walks `root` on a new thread, sending batches until done or until the receiver is dropped.
pub fn spawn(root: PathBuf, names: NameDecoder, tx: mpsc::Sender<Vec<LocalItem>>) -> std::thread::JoinHandle<()> {
    spawn_with(root, WalkOptions { names, symlinks: SymlinkPolicy::Follow, prefix_len: 0 }, tx)
}

/// [`spawn`] with every option.
pub fn spawn_with(root: PathBuf, opts: WalkOptions, tx: mpsc::Sender<Vec<LocalItem>>) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("sitesync-walk".into())
        .spawn(move || {
            let mut walk = Walk { opts, tx, batch: Vec::with_capacity(BATCH), real_root: None };
            walk.run(&root);
        })
        .expect("spawning the walk thread")
}

struct Walk {
    opts: WalkOptions,
    tx: mpsc::Sender<Vec<LocalItem>>,
    batch: Vec<LocalItem>,
    /// The canonical root, to tell symlinks that leave the tree (resolved on first need).
    real_root: Option<PathBuf>,
}

impl Walk {
    fn run(&mut self, root: &Path) {
        // A stack of sorted directory listings, each consumed from the end, and beside it the
        // identity of each directory on the stack.
        let mut stack = vec![self.list(root, "")];
        let mut ancestors: Vec<Option<DirId>> = vec![fs::metadata(root).ok().map(|m| (m.dev(), m.ino()))];
        while let Some(top) = stack.last_mut() {
            let Some(child) = top.pop() else {
                stack.pop();
                ancestors.pop();
                continue;
            };
            if child.is_dir {
                if child.id.is_some() && ancestors.contains(&child.id) {
                    self.problem(child.key, "symlink loop: leads back to a directory that contains it".into());
                    continue;
                }
                stack.push(self.list(&child.path, &child.key));
                ancestors.push(child.id);
            } else if !self.stat(child) {
                return;
            }
        }
        self.flush();
    }

    /// Where a symlink leads: `Ok(Some(metadata))` to follow it, `Ok(None)` to skip it, or why it
    /// cannot be published.
    fn follow(&mut self, path: &Path, key: &str) -> Result<Option<fs::Metadata>, String> {
        let target = || fs::read_link(path).map(|t| escape(t.as_os_str().as_bytes())).unwrap_or_default();
        let meta = match fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(format!("broken symlink: {} does not exist", target()));
            }
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(format!("symlink loop: {} never resolves", target()));
            }
            Err(e) => return Err(format!("cannot follow symlink to {}: {e}", target())),
        };
        if self.opts.symlinks == SymlinkPolicy::Skip {
            let root = match &self.real_root {
                Some(root) => root.clone(),
                None => return Ok(Some(meta)),
            };
            let inside = fs::canonicalize(path).is_ok_and(|real| real.starts_with(&root));
            if !inside {
                tracing::warn!("skipped {key}: symlink to {} outside the source (symlinks = \"skip\")", target());
                return Ok(None);
            }
        }
        Ok(Some(meta))
    }

    /// The entries of one directory, sorted so that `pop` yields them in key order.
    fn list(&mut self, dir: &Path, key_prefix: &str) -> Vec<Child> {
        if key_prefix.is_empty() && self.opts.symlinks == SymlinkPolicy::Skip {
            self.real_root = fs::canonicalize(dir).ok();
        }
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
            let component = match self.opts.names.decode(&name) {
                Ok(c) => c,
                Err(why) => {
                    let place = format!("{key_prefix}{}", escape(name.as_bytes()));
                    self.problem(place, format!("skipped: {why}"));
                    continue;
                }
            };
            let path = entry.path();
            let mut key = String::with_capacity(key_prefix.len() + component.len() + 1);
            key.push_str(key_prefix);
            key.push_str(&component);
            let (is_dir, id) = match entry.file_type() {
                Ok(t) if t.is_dir() => (true, entry.metadata().ok().map(|m| (m.dev(), m.ino()))),
                // A symlink is followed: it is a directory if its target is one.
                Ok(t) if t.is_symlink() => match self.follow(&path, &key) {
                    Ok(Some(meta)) if meta.is_dir() => (true, Some((meta.dev(), meta.ino()))),
                    Ok(Some(_)) => (false, None),
                    Ok(None) => continue,
                    Err(why) => {
                        self.problem(key, why);
                        continue;
                    }
                },
                Ok(_) => (false, None),
                Err(_) => (false, None),
            };
            let full = self.opts.prefix_len + key.len();
            if is_dir && full + 2 > MAX_KEY_BYTES {
                let why = format!(
                    "every key under this directory is over S3's {MAX_KEY_BYTES}-byte limit (at least {} bytes with the prefix)",
                    full + 2
                );
                self.problem(format!("{key}/"), why);
                continue;
            }
            if !is_dir && full > MAX_KEY_BYTES {
                self.problem(key, format!("key is {full} bytes with the prefix, over S3's {MAX_KEY_BYTES}-byte limit"));
                continue;
            }
            if is_dir {
                key.push('/');
            }
            children.push(Child { key, path, is_dir, id });
        }
        children.sort_unstable_by(|a, b| b.key.cmp(&a.key));
        // Normalisation can fold two names into one key; publishing either would be a coin toss.
        let mut clashes = Vec::new();
        children.dedup_by(|later, kept| {
            let clash = later.key == kept.key;
            if clash && clashes.last() != Some(&kept.key) {
                clashes.push(kept.key.clone());
            }
            clash
        });
        if !clashes.is_empty() {
            children.retain(|c| !clashes.contains(&c.key));
            for key in clashes {
                self.problem(key, "several names on disk give this key (normalize = \"nfc\"); none is published".into());
            }
        }
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
                meta: None,
                copy_of: None,
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
            let opts = WalkOptions { names, symlinks: SymlinkPolicy::Follow, prefix_len };
            let handle = spawn_with(dir.path().to_owned(), opts, tx);
            let mut items = Vec::new();
            while let Some(batch) = rx.blocking_recv() {
                items.extend(batch);
            }
            handle.join().unwrap();
            outcome(items)
        };
        // 200 + "/f" = 202 bytes: fits under a 822-byte prefix, not under an 823-byte one.
        assert_eq!(items(822), ["short".to_owned(), format!("{long}/f")]);
        let over = items(823);
        assert_eq!(over.len(), 2);
        assert!(over[0].starts_with(&format!("{long}/: every key under this directory is over")), "{over:?}");
    }
}
