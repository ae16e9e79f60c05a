//! Starting the run's own threads: the walk, its directory readers, the chain and the progress
//! display.
//!
//! A thread can fail to start (the system is out of threads or memory); that is an error the run
//! fails with, naming the thread, not a panic. Where the thread is started by a stage that is
//! itself a thread (the walk's directory readers), the error is that stage's result, which the
//! merge checks like any other end of a side.

use std::thread::JoinHandle;

/// A thread that could not be started.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the thread {name}: {source}")]
pub struct SpawnError {
    pub name: String,
    pub source: std::io::Error,
}

/// Starts `f` on a new thread named `name`.
pub fn spawn<F, T>(name: impl Into<String>, f: F) -> Result<JoinHandle<T>, SpawnError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let name = name.into();
    #[cfg(test)]
    if fault::refused(&name) {
        let source = std::io::Error::new(std::io::ErrorKind::WouldBlock, "refused (a fault point of the tests)");
        return Err(SpawnError { name, source });
    }
    #[cfg(test)]
    let f = fault::inherited(f);
    std::thread::Builder::new().name(name.clone()).spawn(f).map_err(|source| SpawnError { name, source })
}

/// A fault point for the tests of a thread that cannot start: the threads a test (and the threads
/// it starts) asks to refuse fail to start, and no other test's.
#[cfg(test)]
pub mod fault {
    use std::cell::RefCell;

    thread_local! {
        static REFUSED: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    }

    /// Threads whose names start with `prefix` cannot be started from this thread, or from the
    /// threads it starts through [`super::spawn`].
    pub fn refuse(prefix: &str) {
        REFUSED.with(|refused| refused.borrow_mut().push(prefix.to_owned()));
    }

    pub(super) fn refused(name: &str) -> bool {
        REFUSED.with(|refused| refused.borrow().iter().any(|prefix| name.starts_with(prefix.as_str())))
    }

    /// `f`, run with the refusals of the thread that starts it.
    pub(super) fn inherited<F, T>(f: F) -> impl FnOnce() -> T + Send + 'static
    where
        F: FnOnce() -> T + Send + 'static,
    {
        let refused = REFUSED.with(|refused| refused.borrow().clone());
        move || {
            REFUSED.with(|mine| *mine.borrow_mut() = refused);
            f()
        }
    }
}
