//! The plan: every action a run would take, one per line, in the order a sync takes them.
//!
//! `plan` and `sync --dry-run` print it; snapshot tests pin it. The order is that of a site
//! publish (assets, then HTML pages, then deletes, then what cannot be done), each group sorted by
//! key, so the same inputs always print the same plan.

use std::fmt::Write;

use crate::model::{Event, LocalFile, Reason};
use crate::target::Target;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Everything that is not a page: uploaded first so no page points at a missing asset.
    Assets,
    Pages,
    Deletes,
    Problems,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub phase: Phase,
    /// The full S3 key, or the escaped name of what could not be published.
    pub key: String,
    pub detail: String,
    /// Bytes this step sends.
    pub bytes: u64,
}

impl Step {
    pub fn upload(phase: Phase, key: String, file: &LocalFile, reason: Reason) -> Step {
        Step { phase, key, detail: format!("({}, {} bytes)", reason.as_str(), file.size), bytes: file.size }
    }
}

/// The plan step of one diff event.
pub fn step(event: &Event, target: &Target) -> Step {
    match event {
        Event::Upload { file, reason } => {
            let phase = if is_page(&file.key) { Phase::Pages } else { Phase::Assets };
            Step::upload(phase, target.key(&file.key), file, *reason)
        }
        Event::Delete { object } => {
            Step { phase: Phase::Deletes, key: target.key(&object.key), detail: String::new(), bytes: 0 }
        }
        Event::Problem(p) => {
            Step { phase: Phase::Problems, key: target.key(&p.place), detail: p.message.clone(), bytes: 0 }
        }
    }
}

/// Whether a key is a page, to be uploaded after the assets it may refer to.
pub fn is_page(key: &str) -> bool {
    let lower = key.rsplit('/').next().unwrap_or(key).to_ascii_lowercase();
    lower.ends_with(".html") || lower.ends_with(".htm")
}

/// Renders the plan: one line per step, then a summary line.
pub fn render(steps: &mut [Step], unchanged: u64) -> String {
    steps.sort_by(|a, b| (a.phase, &a.key).cmp(&(b.phase, &b.key)));
    let mut out = String::new();
    let (mut uploads, mut bytes, mut deletes, mut problems) = (0, 0u64, 0, 0);
    for step in steps.iter() {
        let verb = match step.phase {
            Phase::Assets | Phase::Pages => {
                uploads += 1;
                bytes += step.bytes;
                "upload"
            }
            Phase::Deletes => {
                deletes += 1;
                "delete"
            }
            Phase::Problems => {
                problems += 1;
                "fail"
            }
        };
        let key = step.key.escape_debug();
        if step.detail.is_empty() {
            let _ = writeln!(out, "{verb} {key}");
        } else {
            let _ = writeln!(out, "{verb} {key} {}", step.detail);
        }
    }
    let _ = writeln!(
        out,
        "plan: {uploads} to upload ({bytes} bytes), {deletes} to delete, {unchanged} unchanged, {problems} failed"
    );
    out
}
