//! The plan: every action a run would take, one per line, in the order a sync takes them.
//!
//! `plan` and `sync --dry-run` print it; snapshot tests pin it. The order is that of a site
//! publish (assets, then HTML pages, then server-side copies, then deletes, then what cannot be
//! done), each group sorted by key, so the same inputs always print the same plan.

use std::fmt::Write;

use crate::model::{Event, LocalFile, ObjectMeta, Reason};
use crate::target::Target;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Everything that is not a page: uploaded first so no page points at a missing asset.
    Assets,
    Pages,
    /// Keys made by server-side copy: duplicates of a file uploaded under another key, and
    /// objects re-published in place because the chain's configuration changed.
    Copies,
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

/// The plan step of one diff event; the headers the chain set follow its detail.
pub fn step(event: &Event, target: &Target) -> Step {
    let mut step = bare_step(event, target);
    if let Event::Upload { file, .. } = event
        && let Some(meta) = file.meta.as_deref()
    {
        step.detail.push_str(&headers(meta));
    }
    step
}

/// ` [Cache-Control: max-age=60; x-amz-meta-team: web]`: what the chain set, in a fixed order.
fn headers(meta: &ObjectMeta) -> String {
    let fields = [
        ("Cache-Control", &meta.cache_control),
        ("Content-Type", &meta.content_type),
        ("Content-Encoding", &meta.content_encoding),
        ("Content-Disposition", &meta.content_disposition),
        ("Content-Language", &meta.content_language),
        ("x-amz-storage-class", &meta.storage_class),
        ("x-amz-website-redirect-location", &meta.website_redirect_location),
    ];
    let mut parts: Vec<String> =
        fields.iter().filter_map(|(name, value)| Some(format!("{name}: {}", value.as_deref()?))).collect();
    parts.extend(meta.metadata.iter().map(|(k, v)| format!("x-amz-meta-{k}: {v}")));
    if parts.is_empty() { String::new() } else { format!(" [{}]", parts.join("; ")) }
}

fn bare_step(event: &Event, target: &Target) -> Step {
    match event {
        Event::Upload { file, reason: Reason::Chain } => Step {
            phase: Phase::Copies,
            key: target.key(&file.key),
            detail: format!("(in place, {})", Reason::Chain.as_str()),
            bytes: 0,
        },
        Event::Upload { file, reason } => match &file.copy_of {
            Some(source) => Step {
                phase: Phase::Copies,
                key: target.key(&file.key),
                detail: format!("(from {}, {})", printable(&target.key(source)), reason.as_str()),
                bytes: 0,
            },
            None => {
                let phase = if is_page(&file.key) { Phase::Pages } else { Phase::Assets };
                Step::upload(phase, target.key(&file.key), file, *reason)
            }
        },
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

/// A key as a plan line shows it: as it is, but for control characters, which are escaped.
fn printable(key: &str) -> String {
    key.chars().map(|c| if c.is_control() { c.escape_debug().to_string() } else { c.into() }).collect()
}

/// Renders the plan: one line per step, then a summary line.
pub fn render(steps: &mut [Step], unchanged: u64) -> String {
    steps.sort_by(|a, b| (a.phase, &a.key).cmp(&(b.phase, &b.key)));
    // A sync sends no delete once anything failed, and what the scan could not read fails for sure.
    let withheld = steps.iter().any(|s| s.phase == Phase::Problems);
    let mut out = String::new();
    let (mut uploads, mut bytes, mut copies, mut deletes, mut problems) = (0, 0u64, 0, 0, 0);
    for step in steps.iter() {
        let verb = match step.phase {
            Phase::Assets | Phase::Pages => {
                uploads += 1;
                bytes += step.bytes;
                "upload"
            }
            Phase::Copies => {
                copies += 1;
                "copy"
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
        // Keys are printed as they are, but for control characters, which would break the line; a
        // problem's place may already hold escaped bytes (`caf\xe9`), which thus show escaped once.
        let key = printable(&step.key);
        let detail = match step.phase {
            Phase::Deletes if withheld => "(withheld: a failure below)",
            _ => step.detail.as_str(),
        };
        if detail.is_empty() {
            let _ = writeln!(out, "{verb} {key}");
        } else {
            let _ = writeln!(out, "{verb} {key} {detail}");
        }
    }
    // Copies only appear with a transform chain; plans without one keep their summary.
    let copies = if copies > 0 { format!("{copies} to copy, ") } else { String::new() };
    let deletes = if withheld && deletes > 0 {
        format!("{deletes} to delete (withheld)")
    } else {
        format!("{deletes} to delete")
    };
    let _ = writeln!(
        out,
        "plan: {uploads} to upload ({bytes} bytes), {copies}{deletes}, {unchanged} unchanged, {problems} failed"
    );
    out
}
