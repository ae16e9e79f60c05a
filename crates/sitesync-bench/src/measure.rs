//! Running one measured process: wall time, user and system CPU, and peak RSS.
//!
//! Everything measured (sitesync and each baseline) runs as its own process and is reaped with
//! `wait4`, whose `rusage` is exactly that process's CPU and peak resident set, startup included.
//! It is started by a small trampoline process rather than by the bench itself, because the peak
//! RSS of a process includes that of the process it was forked from. The server's CPU is read
//! from `/proc/<pid>/stat` before and after, so each figure can be split into what the client
//! spent and what it cost the server.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// What one process cost.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Usage {
    pub wall_s: f64,
    pub user_s: f64,
    pub sys_s: f64,
    pub max_rss_mib: f64,
    /// The server's CPU (user+sys) during the run, when its process is known.
    pub server_cpu_s: Option<f64>,
}

impl Usage {
    pub fn cpu_s(&self) -> f64 {
        self.user_s + self.sys_s
    }
}

#[derive(Debug)]
pub struct Outcome {
    pub usage: Usage,
    pub exit_code: i32,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to completion through the `exec-measured` trampoline, capturing its output;
/// `server_pid` is sampled around it. A process still running after `limit` is killed (SIGKILL,
/// with the trampoline: they share a process group) and reported with exit code 137.
pub fn run(cmd: &Command, server_pid: Option<u32>, limit: Duration) -> Result<Outcome> {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let report = std::env::temp_dir().join(format!(
        "sitesync-bench-{}-{}.json",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    let mut wrapped = trampoline(cmd, &report)?;
    let server_before = server_pid.map(process_cpu_seconds).transpose()?;
    let started = Instant::now();
    let mut child = wrapped.spawn().with_context(|| format!("starting {}", cmd.get_program().to_string_lossy()))?;
    let stdout = read_to_end(child.stdout.take().context("child stdout")?);
    let stderr = read_to_end(child.stderr.take().context("child stderr")?);
    let pid = child.id() as libc::pid_t;
    let watchdog = Watchdog::start(pid, limit);
    let (status, ru) = wait(pid)?;
    let wall_s = started.elapsed().as_secs_f64();
    let timed_out = watchdog.stop();
    let server_after = server_pid.map(process_cpu_seconds).transpose()?;
    let (stdout, stderr) = (stdout.join().unwrap_or_default(), stderr.join().unwrap_or_default());
    let measured: Option<Measured> = std::fs::read(&report).ok().and_then(|b| serde_json::from_slice(&b).ok());
    let _ = std::fs::remove_file(&report);
    // Without the trampoline's report (it was killed), its own rusage is the best there is.
    let measured = measured.unwrap_or_else(|| Measured::from_wait(status, &ru));
    let usage = Usage {
        wall_s,
        user_s: measured.user_s,
        sys_s: measured.sys_s,
        max_rss_mib: measured.max_rss_kib as f64 / 1024.0,
        server_cpu_s: server_before.zip(server_after).map(|(b, a)| a - b),
    };
    Ok(Outcome { usage, exit_code: measured.exit_code, timed_out, stdout, stderr })
}

/// `cmd` run by this binary's `exec-measured` role, which writes the usage to `report`: the same
/// program, arguments, environment and folder, its output piped, in a process group of its own.
fn trampoline(cmd: &Command, report: &Path) -> Result<Command> {
    let mut wrapped = Command::new(std::env::current_exe()?);
    wrapped.arg("exec-measured").arg(report).arg("--").arg(cmd.get_program()).args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    Ok(wrapped)
}

/// Reads a child's pipe to its end on a thread of its own, so neither pipe can fill and stall it.
fn read_to_end(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = pipe.read_to_string(&mut s);
        s
    })
}

/// Kills a process group that outlives its time limit.
struct Watchdog {
    done: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<bool>,
}

impl Watchdog {
    fn start(pid: libc::pid_t, limit: Duration) -> Watchdog {
        let (done, finished) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            if finished.recv_timeout(limit) == Err(mpsc::RecvTimeoutError::Timeout) {
                // SAFETY: plain syscall on the process group the trampoline leads; it is still ours
                // unless the limit expires in the instant between the reap and `done` being sent.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
                return true;
            }
            false
        });
        Watchdog { done, thread }
    }

    /// Called once the process is reaped: whether it had to be killed.
    fn stop(self) -> bool {
        let _ = self.done.send(());
        self.thread.join().unwrap_or(false)
    }
}

/// What the trampoline reports about the process it ran.
#[derive(Debug, Serialize, Deserialize)]
struct Measured {
    user_s: f64,
    sys_s: f64,
    max_rss_kib: i64,
    exit_code: i32,
}

impl Measured {
    fn from_wait(status: libc::c_int, ru: &libc::rusage) -> Measured {
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        let exit_code = if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else if libc::WIFSIGNALED(status) {
            128 + libc::WTERMSIG(status)
        } else {
            -1
        };
        // Linux reports ru_maxrss in KiB.
        Measured { user_s: tv(ru.ru_utime), sys_s: tv(ru.ru_stime), max_rss_kib: ru.ru_maxrss, exit_code }
    }
}

/// Reaps `pid` with its resource usage.
fn wait(pid: libc::pid_t) -> Result<(libc::c_int, libc::rusage)> {
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 fills it for the child we spawned.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: plain syscall on our own child's pid with valid out-pointers.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            return Ok((status, ru));
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            bail!("wait4 on {pid}: {e}");
        }
    }
}

/// The `exec-measured` role: run `command` as our child and write its exact usage to `report`.
///
/// A process's peak RSS (`ru_maxrss`) survives `exec`: a child spawned straight from the bench
/// would report at least the bench's own peak (its tree list can weigh 100 MB at 1M files). This
/// small process is the measured program's parent instead, so the floor is a few MiB.
pub fn exec_measured(report: &Path, command: &[OsString]) -> Result<i32> {
    let (program, args) = command.split_first().context("no command to run")?;
    let child = Command::new(program).args(args).spawn().with_context(|| format!("starting {program:?}"))?;
    let (status, ru) = wait(child.id() as libc::pid_t)?;
    let measured = Measured::from_wait(status, &ru);
    std::fs::write(report, serde_json::to_vec(&measured)?)?;
    Ok(measured.exit_code)
}

/// User+system CPU seconds of a live process, all its threads included.
pub fn process_cpu_seconds(pid: u32) -> Result<f64> {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name is in parentheses and may hold spaces: count fields after the last `)`.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).context("malformed /proc stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: state(0) ... utime is field 14 of the whole line, index 11 here; stime 12.
    let ticks: u64 =
        fields.get(11).context("utime")?.parse::<u64>()? + fields.get(12).context("stime")?.parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok(ticks as f64 / hz)
}

/// The peak resident set of a live process (VmHWM), in MiB.
pub fn process_peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The median of some runs, by wall time: the index into `runs`.
pub fn median_index(runs: &[Usage]) -> usize {
    let mut order: Vec<usize> = (0..runs.len()).collect();
    order.sort_by(|&a, &b| runs[a].wall_s.total_cmp(&runs[b].wall_s));
    order[runs.len() / 2]
}
