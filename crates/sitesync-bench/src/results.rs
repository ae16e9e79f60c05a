//! The results of a run: the data saved as JSON, and the Markdown tables printed on stdout.
//!
//! Absolute times on a shared 2-core machine are noise; what compares across runs and machines is
//! each sitesync figure divided by its physical baseline measured minutes apart on the same
//! server and tree, so the tables lead with those ratios.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use crate::check::Check;
use crate::measure::Usage;
use crate::paths;
use crate::server;
use crate::tree::Manifest;

#[derive(Debug, Serialize)]
pub struct Results {
    pub started_utc: String,
    pub command: String,
    pub machine: Machine,
    pub server: server::Info,
    /// The server's peak resident set over the whole run (VmHWM).
    pub server_peak_rss_mib: Option<f64>,
    pub sitesync: Binary,
    pub workers: usize,
    pub sitesync_env: Vec<String>,
    pub repeat: usize,
    pub sizes: Vec<SizeResult>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub hostname: String,
    pub cpu_model: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
}

#[derive(Debug, Serialize)]
pub struct Binary {
    #[serde(serialize_with = "paths::serialize")]
    pub path: PathBuf,
    pub version: String,
    pub git_commit: String,
}

#[derive(Debug, Serialize)]
pub struct SizeResult {
    pub files: u64,
    pub tree: Manifest,
    #[serde(serialize_with = "paths::serialize")]
    pub tree_dir: PathBuf,
    /// "reused", or how it was made and how long that took.
    pub tree_prepared: String,
    pub changed: u64,
    pub removed: u64,
    pub sitesync: Vec<Row>,
    pub baselines: Vec<Row>,
    pub ratios: Vec<Ratio>,
    /// /proc/loadavg before and after this size: how busy the shared machine was.
    pub load_before: String,
    pub load_after: String,
}

/// One measured figure: the median run (by wall time) of `runs`.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: String,
    /// What the CPU per item is divided by: files of the tree, keys listed, objects put.
    pub items: u64,
    pub usage: Usage,
    pub runs_wall_s: Vec<f64>,
    /// Whether the run did what it had to (a sync that uploaded when nothing changed did not).
    pub check: Check,
    pub detail: String,
}

impl Row {
    pub fn rate(&self) -> f64 {
        self.items as f64 / self.usage.wall_s
    }

    pub fn cpu_us_per_item(&self) -> f64 {
        self.usage.cpu_s() * 1e6 / self.items.max(1) as f64
    }

    pub fn server_us_per_item(&self) -> Option<f64> {
        self.usage.server_cpu_s.map(|s| s * 1e6 / self.items.max(1) as f64)
    }
}

/// A sitesync figure against its baseline.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub figure: String,
    pub sitesync: f64,
    pub baseline: f64,
    pub unit: &'static str,
    /// How the baseline is made from the baseline rows.
    pub baseline_is: String,
    pub ratio: f64,
    pub target: Option<String>,
    pub met: Option<bool>,
}

impl Ratio {
    /// sitesync's figure `s` against the baseline's `b`, with the target it must meet, if any.
    pub fn new(figure: &str, s: f64, b: f64, unit: &'static str, is: String, target: Option<(&str, bool)>) -> Ratio {
        Ratio {
            figure: figure.into(),
            sitesync: s,
            baseline: b,
            unit,
            baseline_is: is,
            ratio: s / b,
            target: target.map(|(t, _)| t.to_owned()),
            met: target.map(|(_, m)| m),
        }
    }
}

fn num(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else if x >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Results {
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let m = &self.machine;
        let _ = writeln!(md, "## sitesync benchmark, {}\n", self.started_utc);
        let _ = writeln!(md, "- command: `{}`", self.command);
        let _ = writeln!(
            md,
            "- machine: {}, {} cores ({}), {:.1} GiB, Linux {}",
            m.hostname, m.cores, m.cpu_model, m.memory_gib, m.kernel
        );
        let _ = writeln!(
            md,
            "- server: {} {} at {}{}",
            self.server.kind,
            self.server.version,
            self.server.endpoint,
            self.server_peak_rss_mib.map(|r| format!(", peak RSS {r:.0} MiB")).unwrap_or_default()
        );
        let _ = writeln!(
            md,
            "- sitesync: {} ({}, commit {})",
            paths::shown(&self.sitesync.path),
            self.sitesync.version,
            self.sitesync.git_commit
        );
        let _ = writeln!(md, "- workers: {}; repeated figures are the median of {} runs", self.workers, self.repeat);
        if !self.sitesync_env.is_empty() {
            let _ = writeln!(md, "- sitesync environment: `{}`", self.sitesync_env.join(" "));
        }
        for w in &self.warnings {
            let _ = writeln!(md, "- **warning:** {w}");
        }
        for size in &self.sizes {
            md.push('\n');
            md.push_str(&size.markdown());
        }
        md
    }
}

impl SizeResult {
    /// The size's heading, the ratios and the table of every run.
    fn markdown(&self) -> String {
        let mut md = String::new();
        let t = &self.tree;
        let _ = writeln!(
            md,
            "### {} files ({:.1} MiB in {} directories; {} large files, {:.1} MiB) — tree {}\n",
            thousands(self.files),
            t.bytes as f64 / 1048576.0,
            thousands(t.directories),
            t.large_files,
            t.large_bytes as f64 / 1048576.0,
            self.tree_prepared
        );
        let _ = writeln!(md, "load average before: {} · after: {}\n", self.load_before, self.load_after);
        md.push_str(&self.ratios_table());
        md.push('\n');
        md.push_str(&self.runs_table());
        md
    }

    /// Each figure against its baseline, and whether it met its target.
    fn ratios_table(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "| figure | sitesync | baseline | ratio | target |");
        let _ = writeln!(md, "|---|---:|---|---:|---|");
        for r in &self.ratios {
            let verdict = match r.met {
                Some(true) => " ✅",
                Some(false) => " ❌",
                None => "",
            };
            let _ = writeln!(
                md,
                "| {} | {} {} | {} {} = {} | {:.2}× | {}{} |",
                r.figure,
                num(r.sitesync),
                r.unit,
                num(r.baseline),
                r.unit,
                r.baseline_is,
                r.ratio,
                r.target.as_deref().unwrap_or("—"),
                verdict
            );
        }
        md
    }

    /// Every sitesync run, then every baseline, with what it cost and its check.
    fn runs_table(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "| run | wall s | items/s | CPU s (user+sys) | CPU µs/item | peak RSS MiB | server CPU s | server µs/item | check |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---|");
        for (group, rows) in [("sitesync", &self.sitesync), ("baseline", &self.baselines)] {
            for row in rows {
                let _ = writeln!(md, "{}", run_line(group, row));
            }
        }
        md
    }
}

/// One row of the runs table.
fn run_line(group: &str, row: &Row) -> String {
    let u = &row.usage;
    let runs = if row.runs_wall_s.len() > 1 {
        format!(" (runs: {})", row.runs_wall_s.iter().map(|w| num(*w)).collect::<Vec<_>>().join(", "))
    } else {
        String::new()
    };
    format!(
        "| {group}: {}{} | {}{} | {} | {} ({} + {}) | {:.1} | {:.1} | {} | {} | {} |",
        row.name,
        if row.detail.is_empty() { String::new() } else { format!(" — {}", row.detail) },
        num(u.wall_s),
        runs,
        num(row.rate()),
        num(u.cpu_s()),
        num(u.user_s),
        num(u.sys_s),
        row.cpu_us_per_item(),
        u.max_rss_mib,
        u.server_cpu_s.map(num).unwrap_or_else(|| "—".into()),
        row.server_us_per_item().map(|x| format!("{x:.1}")).unwrap_or_else(|| "—".into()),
        row.check
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{Check, Mismatch};

    fn row(name: &str, runs_wall_s: Vec<f64>, server_cpu_s: Option<f64>, check: Check, detail: &str) -> Row {
        let usage = Usage { wall_s: runs_wall_s[0], user_s: 0.25, sys_s: 1.5, max_rss_mib: 22.54, server_cpu_s };
        Row { name: name.into(), items: 10_000, usage, runs_wall_s, check, detail: detail.into() }
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(10_000), "10,000");
    }

    #[test]
    fn a_size_renders_as_the_tables_of_docs_benchmark_md() {
        let wrong =
            Check::Wrong { exit_code: 1, mismatches: vec![Mismatch { count: "uploaded", got: 3, expected: 0 }] };
        let size = SizeResult {
            files: 10_000,
            tree: Manifest {
                generator: 1,
                seed: 1,
                files: 10_000,
                bytes: 26_843_545,
                large_files: 3,
                large_bytes: 12_792_627,
                directories: 5_001,
            },
            tree_dir: PathBuf::from("target/bench-trees/10000"),
            tree_prepared: "reused".into(),
            changed: 100,
            removed: 100,
            sitesync: vec![
                row("no-change sync", vec![0.141, 0.317, 0.131], Some(0.09), Check::Ok, "0 uploaded, 0 deleted"),
                row("1% changed", vec![12.34], Some(120.5), wrong, ""),
            ],
            baselines: vec![row(
                "walk+stat, 1 thread",
                vec![0.064],
                None,
                Check::Miscounted { counted: 9, expected: 10 },
                "5002 directories",
            )],
            ratios: vec![
                Ratio::new(
                    "no-change sync",
                    0.141,
                    0.504,
                    "s",
                    "max(fastest walk 0.042, sequential list 0.504)".into(),
                    Some(("≤ 1.2×", true)),
                ),
                Ratio::new(
                    "first sync",
                    2561.0,
                    3211.4,
                    "files/s",
                    "PutObject loop, same workers".into(),
                    Some(("≥ 0.9×", false)),
                ),
                Ratio::new("no-change CPU", 13.5, 10.9, "µs/file", "1-thread walk".into(), None),
            ],
            load_before: "7.59 8.52 5.71".into(),
            load_after: "7.83 8.53 5.75".into(),
        };
        let expected = concat!(
            "### 10,000 files (25.6 MiB in 5,001 directories; 3 large files, 12.2 MiB) — tree reused\n",
            "\n",
            "load average before: 7.59 8.52 5.71 · after: 7.83 8.53 5.75\n",
            "\n",
            "| figure | sitesync | baseline | ratio | target |\n",
            "|---|---:|---|---:|---|\n",
            "| no-change sync | 0.141 s | 0.504 s = max(fastest walk 0.042, sequential list 0.504) | 0.28× | ≤ 1.2× ✅ |\n",
            "| first sync | 2561 files/s | 3211 files/s = PutObject loop, same workers | 0.80× | ≥ 0.9× ❌ |\n",
            "| no-change CPU | 13.5 µs/file | 10.9 µs/file = 1-thread walk | 1.24× | — |\n",
            "\n",
            "| run | wall s | items/s | CPU s (user+sys) | CPU µs/item | peak RSS MiB | server CPU s | server µs/item | check |\n",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|\n",
            "| sitesync: no-change sync — 0 uploaded, 0 deleted | 0.141 (runs: 0.141, 0.317, 0.131) | 70922 | 1.75 (0.250 + 1.50) | 175.0 | 22.5 | 0.090 | 9.0 | ok |\n",
            "| sitesync: 1% changed | 12.3 | 810 | 1.75 (0.250 + 1.50) | 175.0 | 22.5 | 120 | 12050.0 | exit 1; uploaded 3 (expected 0) |\n",
            "| baseline: walk+stat, 1 thread — 5002 directories | 0.064 | 156250 | 1.75 (0.250 + 1.50) | 175.0 | 22.5 | — | — | counted 9 of 10 |\n",
        );
        assert_eq!(size.markdown(), expected);
    }
}
