//! Reading directories ahead of the walk, on a few threads.
//!
//! The walk must yield keys in order, one directory after another, but the syscalls behind it
//! (`getdents`, `stat`) need not wait for that: while the walk emits one directory, these threads
//! read the directories it will enter next. Work is taken newest first, which follows the
//! depth-first order of the walk: the subdirectories of the directory just entered are read
//! before those of its ancestors. At most [`AHEAD`] directories are read ahead, so memory stays
//! bounded whatever the tree's shape. A reader that panics leaves its directory marked as failed,
//! so the walk fails with it instead of waiting for it for ever.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::WalkError;
use super::listing::{Listing, Reader};
use crate::run::thread::SpawnError;

/// Directories queued, being read or read but not yet entered, at most.
const AHEAD: usize = 256;

enum Slot {
    Queued,
    Reading,
    Ready(Listing),
    /// The reader panicked on it, with what it said.
    Failed(String),
}

#[derive(Default)]
struct State {
    /// Directories to read and their key prefixes, the next one last.
    queue: Vec<(PathBuf, String)>,
    slots: HashMap<PathBuf, Slot>,
    stopping: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    work: Condvar,
    done: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(super) struct Prefetch {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Prefetch {
    /// Starts `threads` readers; when one cannot start, those started are stopped.
    pub fn start(reader: &Reader, threads: usize) -> Result<Prefetch, SpawnError> {
        let mut prefetch = Prefetch { shared: Arc::new(Shared::default()), threads: Vec::with_capacity(threads) };
        for i in 0..threads {
            let (shared, reader) = (prefetch.shared.clone(), reader.clone());
            prefetch
                .threads
                .push(crate::run::thread::spawn(format!("sitesync-read-{i}"), move || work(&shared, &reader))?);
        }
        Ok(prefetch)
    }

    /// Queues directories to read ahead, given in the order the walk will enter them.
    pub fn submit(&self, dirs: Vec<(PathBuf, String)>) {
        if dirs.is_empty() {
            return;
        }
        let mut state = self.shared.lock();
        let room = AHEAD.saturating_sub(state.slots.len());
        for (path, prefix) in dirs.into_iter().take(room).rev() {
            state.slots.insert(path.clone(), Slot::Queued);
            state.queue.push((path, prefix));
        }
        drop(state);
        self.shared.work.notify_all();
    }

    /// The listing of `dir`: read ahead when it was, otherwise read now on this thread.
    pub fn take(&self, reader: &Reader, dir: &Path, key_prefix: &str) -> Result<Listing, WalkError> {
        let mut state = self.shared.lock();
        loop {
            match state.slots.remove(dir) {
                Some(Slot::Ready(listing)) => return Ok(listing),
                Some(Slot::Failed(why)) => return Err(WalkError::Died(format!("reading {}: {why}", dir.display()))),
                Some(Slot::Reading) => {
                    state.slots.insert(dir.to_owned(), Slot::Reading);
                    state = self.shared.done.wait(state).unwrap_or_else(|e| e.into_inner());
                }
                Some(Slot::Queued) => {
                    state.queue.retain(|(path, _)| path != dir);
                    break;
                }
                None => break,
            }
        }
        drop(state);
        Ok(reader.read(dir, key_prefix))
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.work.notify_all();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn work(shared: &Shared, reader: &Reader) {
    let mut state = shared.lock();
    loop {
        if state.stopping {
            return;
        }
        let Some((path, prefix)) = state.queue.pop() else {
            state = shared.work.wait(state).unwrap_or_else(|e| e.into_inner());
            continue;
        };
        state.slots.insert(path.clone(), Slot::Reading);
        drop(state);
        let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reader.read(&path, &prefix)));
        let slot = match read {
            Ok(listing) => Slot::Ready(listing),
            Err(panic) => Slot::Failed(crate::run::panic::message(panic.as_ref())),
        };
        state = shared.lock();
        state.slots.insert(path, slot);
        shared.done.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::keys::names::NameDecoder;
    use crate::scan::local::walk_all;
    use crate::scan::options::WalkOptions;

    #[test]
    fn a_reader_that_panics_fails_the_walk_instead_of_hanging_it() {
        let dir = tempfile::tempdir().unwrap();
        // Read ahead by the readers: the walk enters `a/` first, and `b/` is queued meanwhile.
        for path in ["a/x", "b/sitesync-test-panic/y", "c/z"] {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x").unwrap();
        }
        let walked = walk_all(dir.path(), WalkOptions::new(NameDecoder::new("utf-8", "none").unwrap()));
        let why = walked.unwrap_err().to_string();
        assert!(why.contains("sitesync-test-panic") && why.contains("panicked"), "{why}");
        assert!(Path::new(&dir.path().join("c/z")).exists());
    }

    #[test]
    fn a_reader_thread_that_cannot_start_fails_the_walk_with_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "x").unwrap();
        crate::run::thread::fault::refuse("sitesync-read-");
        let walked = walk_all(dir.path(), WalkOptions::new(NameDecoder::new("utf-8", "none").unwrap()));
        let why = walked.unwrap_err().to_string();
        assert_eq!(why, "cannot start the thread sitesync-read-0: refused (a fault point of the tests)");
    }
}
