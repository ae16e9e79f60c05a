//! Stopping a run cleanly on SIGINT or SIGTERM.
//!
//! The first signal sets the run's cancel flag: the pipeline stops reading the scans, the sink
//! drops the work it has not started and sends no deletes, and the requests already in flight get
//! a bounded grace period to finish, so no object is left half-written by us and the summary still
//! says what was done. A second signal exits at once. Either way a re-run finishes the job: every
//! request sitesync sends is idempotent, and deletes only ever follow a complete run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// How long in-flight requests may take to finish after the first signal.
pub const GRACE: Duration = Duration::from_secs(15);

/// Watches for SIGINT and SIGTERM for the rest of the run.
pub struct Stop {
    flag: Arc<AtomicBool>,
    signals: watch::Receiver<Option<&'static str>>,
}

impl Stop {
    /// Starts listening; `flag` is set on the first signal.
    pub fn listen(flag: Arc<AtomicBool>) -> std::io::Result<Stop> {
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let (tx, rx) = watch::channel(None);
        let set = flag.clone();
        tokio::spawn(async move {
            let mut count = 0;
            loop {
                let name = tokio::select! {
                    _ = interrupt.recv() => "SIGINT",
                    _ = terminate.recv() => "SIGTERM",
                };
                count += 1;
                if count > 1 {
                    eprintln!("error: {name} again: exiting now; run again to finish");
                    std::process::exit(i32::from(crate::error::EXIT_INTERRUPTED));
                }
                tracing::warn!("{name}: finishing the requests in flight (up to {}s), then stopping", GRACE.as_secs());
                set.store(true, Ordering::SeqCst);
                let _ = tx.send(Some(name));
                // The pipeline waits at most GRACE for the sink; this bounds everything else.
                tokio::spawn(async {
                    tokio::time::sleep(GRACE + Duration::from_secs(5)).await;
                    eprintln!(
                        "error: still busy {}s after the signal: exiting now; run again to finish",
                        GRACE.as_secs() + 5
                    );
                    std::process::exit(i32::from(crate::error::EXIT_INTERRUPTED));
                });
            }
        });
        Ok(Stop { flag, signals: rx })
    }

    /// The signal that stopped the run, if one did.
    pub fn signal(&self) -> Option<&'static str> {
        *self.signals.borrow()
    }

    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Resolves when a stop is requested (at once if it already was).
    pub async fn requested_wait(&self) {
        let mut rx = self.signals.clone();
        let _ = rx.wait_for(Option::is_some).await;
    }

    /// Resolves [`GRACE`] after a stop is requested: the end of the wait for in-flight requests.
    pub async fn deadline(&self) {
        self.requested_wait().await;
        tokio::time::sleep(GRACE).await;
    }
}
