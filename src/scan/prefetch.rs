//! Reading directories ahead of the walk, on a few threads.
//!
//! The walk must yield keys in order, one directory after another, but the syscalls behind it
//! (`getdents`, `stat`) need not wait for that: while the walk emits one directory, these threads
//! read the directories it will enter next. Work is taken newest first, which follows the
//! depth-first order of the walk: the subdirectories of the directory just entered are read
//! before those of its ancestors. At most [`AHEAD`] directories are read ahead, so memory stays
//! bounded whatever the tree's shape.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::listing::{Listing, Reader};

/// Directories queued, being read or read but not yet entered, at most.
const AHEAD: usize = 256;

enum Slot {
    Queued,
    Reading,
    Ready(Listing),
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
    pub fn start(reader: &Reader, threads: usize) -> Prefetch {
        let shared = Arc::new(Shared::default());
        let threads = (0..threads)
            .map(|i| {
                let (shared, reader) = (shared.clone(), reader.clone());
                std::thread::Builder::new()
                    .name(format!("sitesync-read-{i}"))
                    .spawn(move || work(&shared, &reader))
                    .expect("spawning a directory reader thread")
            })
            .collect();
        Prefetch { shared, threads }
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
    pub fn take(&self, reader: &Reader, dir: &Path, key_prefix: &str) -> Listing {
        let mut state = self.shared.lock();
        loop {
            match state.slots.remove(dir) {
                Some(Slot::Ready(listing)) => return listing,
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
        reader.read(dir, key_prefix)
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
        let listing = reader.read(&path, &prefix);
        state = shared.lock();
        state.slots.insert(path, Slot::Ready(listing));
        shared.done.notify_all();
    }
}
