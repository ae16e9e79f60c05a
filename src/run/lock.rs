//! The run lock: two syncs to one target must not interleave.
//!
//! Two overlapping runs can each decide from a listing the other is changing: one deletes what the
//! other just uploaded, or an older tree overwrites a newer one. So a sync holds an exclusive
//! `flock` on a lock file for its whole run and writes its pid into it, and a second run fails at
//! once naming that pid (or waits, with `--wait-lock`). The kernel drops the lock when the process
//! ends, however it ends, so a killed run never leaves a stale lock. The file itself is left in
//! place: removing it would let a third run lock a fresh file while the second still holds the
//! old one.
//!
//! By default the file lives in the temp directory and is named after the target (endpoint,
//! bucket, prefix), not the source: what must not be written twice at once is the prefix, whichever
//! directory it is published from, and the source may be read-only or be wiped by a build. Runs on
//! different machines are not kept apart; set `lock_file` to a shared path if that matters.
//!
//! The embedded store keeps its folder to one server the same way ([`wait_for`]).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another sitesync run ({holder}) holds the lock {path} for {target}; pass --wait-lock to wait for it")]
    Busy { holder: String, path: PathBuf, target: String },
    #[error("cannot use the lock file {path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
}

/// Held for the whole run; dropping it releases the lock.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

/// Takes the lock, or fails naming its holder; with `wait`, polls until it is free.
pub async fn acquire(path: &Path, target: &str, wait: bool) -> Result<RunLock, LockError> {
    let busy = if wait { Busy::Wait(format!("the lock {}", path.display())) } else { Busy::Fail(target) };
    take(path, busy).await
}

/// Takes the lock, waiting as long as another process holds it; `what` names for the message
/// what is waited for.
pub async fn wait_for(path: &Path, what: &str) -> Result<RunLock, LockError> {
    take(path, Busy::Wait(what.to_owned())).await
}

/// What to do when another process holds the lock.
enum Busy<'a> {
    /// Fail naming the holder and this target.
    Fail(&'a str),
    /// Wait, saying once what for and who holds it.
    Wait(String),
}

async fn take(path: &Path, busy: Busy<'_>) -> Result<RunLock, LockError> {
    let io = |err| LockError::Io { path: path.to_owned(), err };
    let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io)?;
    let mut announced = false;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {
                let holder = holder(&mut file);
                let what = match &busy {
                    Busy::Fail(target) => {
                        return Err(LockError::Busy { holder, path: path.to_owned(), target: (*target).to_owned() });
                    }
                    Busy::Wait(what) => what,
                };
                if !announced {
                    tracing::info!("waiting for {what} held by another sitesync run ({holder})");
                    announced = true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(TryLockError::Error(err)) => return Err(io(err)),
        }
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    Ok(RunLock { _file: file })
}

/// "pid N", from what the holder wrote into the file.
fn holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.rewind().and_then(|_| file.read_to_string(&mut text));
    match text.trim().parse::<u32>() {
        Ok(pid) => format!("pid {pid}"),
        Err(_) => "pid unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_lock_fails_naming_the_first_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.lock");
        let held = acquire(&path, "s3://b/p/", false).await.unwrap();
        // flock locks belong to an open file: a second open of the same file conflicts, even here.
        let err = acquire(&path, "s3://b/p/", false).await.unwrap_err().to_string();
        let pid = format!("(pid {}) holds the lock", std::process::id());
        assert!(err.contains(&pid) && err.contains("s3://b/p/"), "{err}");
        drop(held);
        acquire(&path, "s3://b/p/", false).await.expect("free again once the holder is gone");
    }
}
