//! Progress while a run goes: what the two scans have seen, then files and bytes done of those
//! planned, with the rate and the time left.
//!
//! Stages count into one [`Counts`] (the merge's sides what they read, `sink::Counting` what the
//! diff plans, the S3 sink's tracker what was done), and a thread of its own draws them a few
//! times a second: a bar redrawn in place on a terminal (indicatif), or on anything else, when
//! asked for, a plain line every ten seconds, so a CI log gets a heartbeat and no redraws.
//! Log lines go through [`LogWriter`], which lifts the bar while they print.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::model::Event;
use crate::run::thread::SpawnError;

/// How progress is shown; the binary decides from the flags and whether stderr is a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Show {
    #[default]
    Off,
    /// A bar redrawn in place: stderr is a terminal.
    Bar,
    /// A line every [`LINE_EVERY`]: asked for, and stderr is a file or a pipe.
    Lines,
}

impl Show {
    /// `--progress` / `--no-progress`, else on only on a terminal and without `-q`. A terminal
    /// without a `TERM` (or a dumb one) cannot redraw a line: it gets the lines.
    pub fn choose(progress: bool, no_progress: bool, quiet: bool) -> Show {
        let term = std::env::var_os("TERM").filter(|t| !t.is_empty() && t != "dumb");
        let terminal = std::io::stderr().is_terminal() && term.is_some();
        match (progress, no_progress) {
            (_, true) => Show::Off,
            (true, _) if terminal => Show::Bar,
            (true, _) => Show::Lines,
            _ if terminal && !quiet => Show::Bar,
            _ => Show::Off,
        }
    }
}

/// How often a line is printed in [`Show::Lines`].
const LINE_EVERY: Duration = Duration::from_secs(10);
/// How often the bar is redrawn.
const DRAW_EVERY: Duration = Duration::from_millis(125);

/// What the sink has done so far, as the display shows it: files done, bytes sent.
pub trait Done: Send + Sync {
    fn progress(&self) -> (u64, u64);
}

/// What the stages have counted so far.
#[derive(Debug, Default)]
pub struct Counts {
    local: AtomicU64,
    remote: AtomicU64,
    local_done: AtomicBool,
    remote_done: AtomicBool,
    uploads: AtomicU64,
    upload_bytes: AtomicU64,
    copies: AtomicU64,
    deletes: AtomicU64,
    unchanged: AtomicU64,
}

impl Counts {
    /// The local side yielded `n` more keys.
    pub fn local(&self, n: usize) {
        self.local.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The remote side yielded `n` more objects.
    pub fn remote(&self, n: usize) {
        self.remote.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn local_done(&self) {
        self.local_done.store(true, Ordering::Relaxed);
    }

    pub fn remote_done(&self) {
        self.remote_done.store(true, Ordering::Relaxed);
    }

    /// Counts what the diff planned in `events`.
    pub fn planned(&self, events: &[Event]) {
        let (mut uploads, mut bytes, mut copies, mut deletes, mut unchanged) = (0, 0, 0, 0, 0);
        for event in events {
            match event {
                Event::Upload { file, .. } if file.copy_of.is_some() => copies += 1,
                Event::Upload { file, .. } => {
                    uploads += 1;
                    bytes += file.size;
                }
                Event::Delete { .. } => deletes += 1,
                // Kept, not deleted: the run sends nothing for it.
                Event::Retire { .. } => {}
                Event::Same { .. } => unchanged += 1,
                Event::Problem(_) | Event::Check { .. } | Event::Head { .. } => {}
            }
        }
        self.uploads.fetch_add(uploads, Ordering::Relaxed);
        self.upload_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.copies.fetch_add(copies, Ordering::Relaxed);
        self.deletes.fetch_add(deletes, Ordering::Relaxed);
        self.unchanged.fetch_add(unchanged, Ordering::Relaxed);
    }
}

/// One look at the counts, with what was done.
struct Seen {
    local: u64,
    remote: u64,
    scanning: bool,
    planned: u64,
    bytes: u64,
    deletes: u64,
    unchanged: u64,
    done: u64,
    bytes_done: u64,
}

impl Seen {
    fn take(counts: &Counts, tracker: Option<&dyn Done>) -> Seen {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (done, bytes_done) = tracker.map_or((0, 0), Done::progress);
        Seen {
            local: get(&counts.local),
            remote: get(&counts.remote),
            scanning: !(counts.local_done.load(Ordering::Relaxed) && counts.remote_done.load(Ordering::Relaxed)),
            planned: get(&counts.uploads) + get(&counts.copies),
            bytes: get(&counts.upload_bytes),
            deletes: get(&counts.deletes),
            unchanged: get(&counts.unchanged),
            done,
            bytes_done,
        }
    }

    /// The words beside the bar: files and what the scans saw, or what they came to.
    fn message(&self) -> String {
        let files = format!("{}/{} files", thousands(self.done), thousands(self.planned));
        let scan = match self.scanning {
            true => format!("scanning: {} here, {} there", thousands(self.local), thousands(self.remote)),
            false => format!("{} unchanged", thousands(self.unchanged)),
        };
        let deletes = match self.deletes {
            0 => String::new(),
            n => format!(", {} to delete", thousands(n)),
        };
        format!("{files}{deletes} · {scan}")
    }
}

/// A progress display for one run; dropping it stops the drawing and clears the bar.
pub struct Progress {
    counts: Arc<Counts>,
    tracker: Arc<Mutex<Option<Arc<dyn Done>>>>,
    stop: Arc<AtomicBool>,
    drawer: Option<std::thread::JoinHandle<()>>,
}

/// The bar being drawn, for [`LogWriter`].
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

impl Progress {
    /// Starts drawing as `show` says; `Off` draws nothing but still counts. Fails when the
    /// drawing thread cannot start.
    pub fn start(show: Show) -> Result<Progress, SpawnError> {
        let counts = Arc::new(Counts::default());
        let tracker = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let drawer = match show {
            Show::Off => None,
            Show::Bar => Some(draw_bar(counts.clone(), tracker.clone(), stop.clone())?),
            Show::Lines => Some(draw_lines(counts.clone(), tracker.clone(), stop.clone())?),
        };
        Ok(Progress { counts, tracker, stop, drawer })
    }

    pub fn counts(&self) -> Arc<Counts> {
        self.counts.clone()
    }

    /// Reads what was done from the S3 sink's tracker.
    pub fn follow(&self, tracker: Arc<dyn Done>) {
        *self.tracker.lock().unwrap_or_else(|e| e.into_inner()) = Some(tracker);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(drawer) = self.drawer.take() {
            drawer.thread().unpark();
            let _ = drawer.join();
        }
    }
}

fn draw_bar(
    counts: Arc<Counts>,
    tracker: Arc<Mutex<Option<Arc<dyn Done>>>>,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, SpawnError> {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(8));
    let scanning = ProgressStyle::with_template("{spinner} {msg}").expect("a valid template");
    let sending =
        ProgressStyle::with_template("{bar:24} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} · {msg}")
            .expect("a valid template")
            .progress_chars("=> ");
    *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
    bar.set_style(scanning);
    // The first frame is drawn before the run goes on, however short it is.
    bar.set_message(Seen::take(&counts, None).message());
    bar.tick();
    let drawn = bar.clone();
    let drawing = crate::run::thread::spawn("sitesync-progress", move || {
        let mut styled = false;
        while !stop.load(Ordering::Relaxed) {
            std::thread::park_timeout(DRAW_EVERY);
            let tracker = tracker.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let seen = Seen::take(&counts, tracker.as_deref());
            // The total is known once both scans ended: then a bar, with the time left.
            if !seen.scanning && !styled {
                bar.set_style(sending.clone());
                styled = true;
            }
            bar.set_length(seen.bytes);
            bar.set_position(seen.bytes_done.min(seen.bytes));
            bar.set_message(seen.message());
            bar.tick();
        }
        *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = None;
        bar.finish_and_clear();
    });
    // Without its thread, the bar is not left on the screen, nor lifted for log lines.
    drawing.inspect_err(|_| {
        *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = None;
        drawn.finish_and_clear();
    })
}

fn draw_lines(
    counts: Arc<Counts>,
    tracker: Arc<Mutex<Option<Arc<dyn Done>>>>,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, SpawnError> {
    crate::run::thread::spawn("sitesync-progress", move || {
        let started = Instant::now();
        let mut next = started + LINE_EVERY;
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now < next {
                std::thread::park_timeout(next - now);
                continue;
            }
            next += LINE_EVERY;
            let tracker = tracker.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let seen = Seen::take(&counts, tracker.as_deref());
            let rate = seen.bytes_done as f64 / started.elapsed().as_secs_f64().max(0.001);
            let line = format!(
                "progress: {} · {}/{} · {}/s\n",
                seen.message(),
                indicatif::HumanBytes(seen.bytes_done),
                indicatif::HumanBytes(seen.bytes),
                indicatif::HumanBytes(rate as u64)
            );
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    })
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    indicatif::HumanCount(n).to_string()
}

/// Where log lines go: stderr, with the progress bar lifted while one prints.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let active = ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match active {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf)).map(|()| buf.len()),
            None => std::io::stderr().write_all(buf).map(|()| buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_says_what_the_scans_saw_then_what_they_came_to() {
        let counts = Counts::default();
        counts.local(1500);
        counts.remote(1200);
        let seen = Seen::take(&counts, None);
        assert_eq!(seen.message(), "0/0 files · scanning: 1,500 here, 1,200 there");
        counts.local_done();
        counts.remote_done();
        counts.deletes.store(3, Ordering::Relaxed);
        counts.unchanged.store(1490, Ordering::Relaxed);
        counts.uploads.store(10, Ordering::Relaxed);
        assert_eq!(Seen::take(&counts, None).message(), "0/10 files, 3 to delete · 1,490 unchanged");
    }

    #[test]
    fn a_display_whose_thread_cannot_start_is_an_error_and_leaves_no_bar() {
        crate::run::thread::fault::refuse("sitesync-progress");
        for show in [Show::Lines, Show::Bar] {
            let e = Progress::start(show).err().expect("the thread was refused");
            assert_eq!(
                e.to_string(),
                "cannot start the thread sitesync-progress: refused (a fault point of the tests)"
            );
            assert!(ACTIVE.lock().unwrap().is_none(), "{show:?}: a bar is left to lift for log lines");
        }
        assert!(Progress::start(Show::Off).is_ok(), "no display, no thread");
    }
}
