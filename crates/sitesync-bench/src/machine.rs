//! What the results say about where they were measured: the machine, its load, the binary
//! measured and the commit it was built from, and the time of the run.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::paths;
use crate::results::{Binary, Machine};

pub fn binary_info(path: &Path) -> Result<Binary> {
    let out = Command::new(path).arg("--version").output().with_context(|| {
        format!(
            "cannot run {}; build it first: cargo build --release -p sitesync -p sitesync-bench",
            paths::shown(path)
        )
    })?;
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("--no-optional-locks")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Ok(Binary {
        path: path.to_owned(),
        version: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        git_commit: if dirty { format!("{commit} + uncommitted changes") } else { commit },
    })
}

pub fn machine() -> Machine {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let mem_kib: f64 = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    Machine {
        hostname: read("/proc/sys/kernel/hostname").trim().to_owned(),
        cpu_model,
        cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        memory_gib: mem_kib / 1048576.0,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
    }
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

pub fn utc_now() -> String {
    use aws_sdk_s3::primitives::{DateTime, DateTimeFormat};
    let now = DateTime::from(std::time::SystemTime::now());
    let secs = DateTime::from_secs(now.secs());
    secs.fmt(DateTimeFormat::DateTime).unwrap_or_else(|_| now.secs().to_string())
}
