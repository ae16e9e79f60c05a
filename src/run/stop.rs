//! Stopping a run cleanly on SIGINT or SIGTERM.
//!
//! The first signal sets the run's cancel flag: the pipeline stops reading the scans, the sink
//! drops the work it has not started and sends no deletes, and the requests already in flight get
//! a bounded grace period to finish, so no object is left half-written by us and the summary still
//! says what was done. A second signal, or the end of the grace period and a few seconds more,
//! cuts the run short ([`Stop::forced`]): the pipeline returns at once and the binary exits with
//! 130. Either way a re-run finishes the job: every request sitesync sends is idempotent, and
//! deletes only ever follow a complete run. The library never exits the process itself.
//!
//! The run can stop itself the same way, without a signal ([`Halt`]): when its lock in the bucket
//! was taken over, no new work starts and the requests in flight get the same grace period.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// How long in-flight requests may take to finish after the first signal.
pub const GRACE: Duration = Duration::from_secs(15);

/// After the grace period, how long the run may still take before it is cut short.
const LAST_CALL: Duration = Duration::from_secs(5);

/// What the signals have asked for so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Asked {
    /// The first signal, which asks the run to stop.
    first: Option<&'static str>,
    /// A second one, which cuts it short.
    again: bool,
    /// The run stopped itself ([`Halt`]).
    halted: bool,
}

impl Asked {
    fn stopping(&self) -> bool {
        self.first.is_some() || self.halted
    }
}

/// Watches for SIGINT and SIGTERM for the rest of the run.
pub struct Stop {
    flag: Arc<AtomicBool>,
    asked: watch::Receiver<Asked>,
    tell: Arc<watch::Sender<Asked>>,
}

/// Stops the run as a first signal does, for a reason of its own; see [`Stop::halt`].
#[derive(Clone)]
pub struct Halt {
    flag: Arc<AtomicBool>,
    tell: Arc<watch::Sender<Asked>>,
}

impl Halt {
    /// No new work starts; the requests in flight get the grace period. The caller says why.
    pub fn halt(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.tell.send_modify(|asked| asked.halted = true);
    }
}

impl Stop {
    /// Starts listening; the cancel flag ([`Stop::flag`]) is set on the first signal.
    pub fn listen() -> std::io::Result<Stop> {
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let (tx, rx) = watch::channel(Asked::default());
        let tell = Arc::new(tx);
        let tx = tell.clone();
        let flag = Arc::new(AtomicBool::new(false));
        let set = flag.clone();
        tokio::spawn(async move {
            loop {
                let name = tokio::select! {
                    _ = interrupt.recv() => "SIGINT",
                    _ = terminate.recv() => "SIGTERM",
                };
                if tx.borrow().first.is_some() {
                    tracing::error!("{name} again: stopping now; run again to finish");
                    tx.send_modify(|asked| asked.again = true);
                    return;
                }
                tracing::warn!("{name}: finishing the requests in flight (up to {}s), then stopping", GRACE.as_secs());
                set.store(true, Ordering::SeqCst);
                tx.send_modify(|asked| asked.first = Some(name));
            }
        });
        Ok(Stop { flag, asked: rx, tell })
    }

    /// A handle that stops the run from elsewhere (a task beside it), as a first signal does but
    /// without one: [`Stop::signal`] stays `None`.
    pub fn halt(&self) -> Halt {
        Halt { flag: self.flag.clone(), tell: self.tell.clone() }
    }

    /// The flag the sink's workers read: set once a stop is requested.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.flag.clone()
    }

    /// The signal that stopped the run, if one did.
    pub fn signal(&self) -> Option<&'static str> {
        self.asked.borrow().first
    }

    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Resolves when a stop is requested, by a signal or a [`Halt`] (at once if it already was).
    pub async fn requested_wait(&self) {
        let mut rx = self.asked.clone();
        let _ = rx.wait_for(Asked::stopping).await;
    }

    /// Resolves [`GRACE`] after a stop is requested: the end of the wait for in-flight requests.
    pub async fn deadline(&self) {
        self.requested_wait().await;
        tokio::time::sleep(GRACE).await;
    }

    /// Resolves, with the first signal's name, when the run must end now: on a second signal, or
    /// when even the grace period and a last call are over.
    pub async fn forced(&self) -> &'static str {
        let mut rx = self.asked.clone();
        let again = async {
            let _ = rx.wait_for(|asked| asked.again).await;
        };
        let overdue = async {
            let _ = self.asked.clone().wait_for(|asked| asked.first.is_some()).await;
            tokio::time::sleep(GRACE + LAST_CALL).await;
            tracing::error!(
                "still busy {}s after the signal: stopping now; run again to finish",
                (GRACE + LAST_CALL).as_secs()
            );
        };
        tokio::select! {
            _ = again => {}
            _ = overdue => {}
        }
        self.signal().unwrap_or("a signal")
    }
}
