//! Reading one directory: its entries decoded into keys, classified, stat'ed and sorted.
//!
//! This is the unit of work of the walk, and it is self-contained (it needs no state of the walk
//! but the options), so the prefetching threads can read directories ahead of the ordered walk.
//! Entries are sorted by key with `/` appended to directory names, which is S3's listing order.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::options::{SymlinkPolicy, WalkOptions};
use crate::keys::names::escape;
use crate::keys::target::MAX_KEY_BYTES;
use crate::model::{Problem, Time};

/// A directory's identity, to recognise it when a symlink leads back to it.
pub(super) type DirId = (u64, u64);

/// What a directory entry turned out to be.
pub(super) enum Kind {
    /// A directory (or a symlink to one), with its (device, inode) when known.
    Dir(Option<DirId>),
    File {
        size: u64,
        mtime: Time,
    },
    /// Something that cannot be published, and why.
    Unpublishable(String),
}

pub(super) struct Child {
    /// The key relative to the root; directories end with `/`.
    pub key: String,
    pub path: PathBuf,
    pub kind: Kind,
}

/// One directory's entries, sorted so that `pop` yields them in key order, and what went wrong.
#[derive(Default)]
pub(super) struct Listing {
    pub children: Vec<Child>,
    pub problems: Vec<Problem>,
}

/// Reads directories; cheap to clone into the prefetching threads.
#[derive(Clone)]
pub(super) struct Reader {
    pub opts: WalkOptions,
    /// The canonical root, to tell symlinks that leave the tree (with `symlinks = "skip"`).
    pub real_root: Option<PathBuf>,
}

impl Reader {
    pub fn new(opts: WalkOptions, root: &Path) -> Reader {
        let real_root = (opts.symlinks == SymlinkPolicy::Skip).then(|| fs::canonicalize(root).ok()).flatten();
        Reader { opts, real_root }
    }

    /// Reads `dir`, whose entries' keys start with `key_prefix`.
    pub fn read(&self, dir: &Path, key_prefix: &str) -> Listing {
        // A fault point for the tests of a reader that dies: a directory of this name panics.
        #[cfg(test)]
        if dir.file_name().is_some_and(|n| n == "sitesync-test-panic") {
            panic!("reading {} (a fault point of the tests)", dir.display());
        }
        let mut listing = Listing::default();
        // What cannot be read may hide keys of any folder, any shard's: `Problem::hiding`.
        let mut report = |problem: Problem| listing.problems.push(problem);
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                report(Problem::hiding(dir_place(key_prefix, dir), format!("cannot read directory: {e}")));
                return listing;
            }
        };
        let mut children = Vec::new();
        // A shard reads every directory, for the folders under it, but only its own folders'
        // files: the others are not even stat'ed (the directory entry's type is enough).
        let owned = self.opts.shard.as_ref().is_none_or(|shard| shard.owns_folder(key_prefix));
        let mut elsewhere = 0;
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    report(Problem::hiding(dir_place(key_prefix, dir), format!("cannot read directory: {e}")));
                    continue;
                }
            };
            if !owned && entry.file_type().is_ok_and(|t| !t.is_dir() && !t.is_symlink()) {
                elsewhere += 1;
                continue;
            }
            let name = entry.file_name();
            let component = match self.opts.names.decode(&name) {
                Ok(c) => c,
                Err(why) => {
                    let place = format!("{key_prefix}{}", escape(name.as_bytes()));
                    match entry.file_type().is_ok_and(|t| t.is_file()) {
                        true => report(Problem::new(place, format!("skipped: {why}"))),
                        false => report(Problem::hiding(place, format!("skipped: {why}"))),
                    }
                    continue;
                }
            };
            let path = entry.path();
            let mut key = String::with_capacity(key_prefix.len() + component.len() + 1);
            key.push_str(key_prefix);
            key.push_str(&component);
            let kind = match entry.file_type() {
                Ok(t) if t.is_dir() => Kind::Dir(entry.metadata().ok().map(|m| (m.dev(), m.ino()))),
                // A symlink is followed: it is whatever its target is.
                Ok(t) if t.is_symlink() => match self.follow(&path, &key) {
                    Ok(Some(meta)) => kind_of(&meta),
                    Ok(None) => continue,
                    // A link that cannot be followed may stand for a directory, whose keys
                    // may be any shard's: every shard reports it, and so none deletes.
                    Err(why) => {
                        report(Problem::hiding(key, why));
                        continue;
                    }
                },
                Ok(_) => match entry.metadata() {
                    Ok(meta) => kind_of(&meta),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        Kind::Unpublishable("broken symlink or vanished file".into())
                    }
                    Err(e) => Kind::Unpublishable(format!("cannot stat: {e}")),
                },
                Err(e) => Kind::Unpublishable(format!("cannot stat: {e}")),
            };
            let is_dir = matches!(kind, Kind::Dir(_));
            if !owned && !is_dir {
                elsewhere += 1;
                continue;
            }
            if is_dir && self.opts.skip.as_ref().is_some_and(|skip| skip.skips(&key)) {
                tracing::debug!("skipped {key}/: a filter excludes everything under it");
                continue;
            }
            let full = self.opts.prefix_len + key.len();
            if is_dir && full + 2 > MAX_KEY_BYTES {
                let why = format!(
                    "every key under this directory is over S3's {MAX_KEY_BYTES}-byte limit (at least {} bytes with the prefix)",
                    full + 2
                );
                report(Problem::new(format!("{key}/"), why));
                continue;
            }
            if !is_dir && full > MAX_KEY_BYTES {
                report(Problem::new(
                    key,
                    format!("key is {full} bytes with the prefix, over S3's {MAX_KEY_BYTES}-byte limit"),
                ));
                continue;
            }
            if is_dir {
                key.push('/');
            }
            children.push(Child { key, path, kind });
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
                report(Problem::new(
                    key,
                    "several names on disk give this key (normalize = \"nfc\"); none is published".into(),
                ));
            }
        }
        self.opts.elsewhere.add(elsewhere);
        listing.children = children;
        listing
    }

    /// Where a symlink leads: `Ok(Some(metadata))` to follow it, `Ok(None)` to skip it, or why it
    /// cannot be published.
    fn follow(&self, path: &Path, key: &str) -> Result<Option<fs::Metadata>, String> {
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
        if let Some(root) = &self.real_root {
            let inside = fs::canonicalize(path).is_ok_and(|real| real.starts_with(root));
            if !inside {
                tracing::warn!("skipped {key}: symlink to {} outside the source (symlinks = \"skip\")", target());
                return Ok(None);
            }
        }
        Ok(Some(meta))
    }
}

fn kind_of(meta: &fs::Metadata) -> Kind {
    if meta.is_dir() {
        Kind::Dir(Some((meta.dev(), meta.ino())))
    } else if meta.is_file() {
        Kind::File { size: meta.len(), mtime: meta.modified().map(Time::from_system).unwrap_or(Time(0)) }
    } else {
        Kind::Unpublishable("not a regular file (FIFO, socket or device)".into())
    }
}

fn dir_place(key_prefix: &str, dir: &Path) -> String {
    if key_prefix.is_empty() { escape(dir.as_os_str().as_bytes()) } else { key_prefix.to_owned() }
}
