//! The plan: every action a run would take, one per line, in the order a sync takes them.
//!
//! `plan` and `sync --dry-run` run the [`PlanSink`], which takes the same events as the S3 sink
//! and renders them instead of sending them; snapshot tests pin what it prints. The order is
//! that of a site publish (assets, then HTML pages, then redirect objects, which a sync sends with
//! the pages, then server-side copies, then deletes, then what cannot be done: the [`Phase`] the
//! S3 sink holds each action back for), each group sorted
//! by key, so the same inputs always print the same plan. With `delete_grace`, the keys retired
//! instead of deleted follow the deletes (`retire KEY`), and a delete of a key whose grace ended
//! says since when it was retired (`delete KEY (retired 2d ago)`).

use std::fmt::Write;

use super::phase::{Phase, in_place};
use super::{Applied, Finish, Sink};
use super::{FailedOp, Tracker};
use crate::journal::Change;
use crate::keys::names::printable;
use crate::keys::target::Target;
use crate::model::fields::Field;
use crate::model::{Event, LocalFile, Reason};

/// The sink of a dry run: every event becomes a [`Step`] of the plan, and nothing is sent.
pub struct PlanSink {
    target: Target,
    /// False with `--no-delete`: delete events are dropped, as the S3 sink drops them.
    delete: bool,
    steps: Vec<Step>,
    tracker: Tracker,
}

impl PlanSink {
    pub fn new(target: Target, delete: bool) -> PlanSink {
        PlanSink { target, delete, steps: Vec::new(), tracker: Tracker::default() }
    }
}

#[async_trait::async_trait]
impl Sink for PlanSink {
    async fn accept(&mut self, events: Vec<Event>) {
        for event in events {
            let event = super::unread(event);
            match &event {
                Event::Delete { .. } | Event::Retire { .. } if !self.delete => continue,
                Event::Delete { object, .. } => {
                    self.tracker.journal().record(object.key.clone(), Change::Deleted, false)
                }
                // A retirement changes no object; one kept through its grace is not an action.
                Event::Retire { since: None, .. } => {}
                Event::Retire { since: Some(_), .. } => continue,
                Event::Upload { file, reason } => {
                    let copied = Phase::of_upload(file, *reason) == Phase::Copies;
                    let change = if copied { Change::Copied } else { Change::Uploaded };
                    self.tracker.journal().record(file.key.clone(), change, *reason == Reason::New);
                }
                Event::Problem(p) => self.tracker.failed(p.place.clone(), p.op.clone(), p.message.clone()),
                // Nothing to do for it; only a sync records it.
                Event::Same { .. } | Event::Check { .. } | Event::Head { .. } => continue,
            }
            self.steps.push(step(&event, &self.target));
        }
        if let Err(e) = self.tracker.journal().spill().await {
            self.tracker.failed("(changes)", FailedOp::Plan, format!("cannot write the record of changes: {e}"));
        }
    }

    fn deletes_planned(&self) -> u64 {
        self.steps.iter().filter(|s| matches!(s.phase, Phase::Deletes | Phase::Retires)).count() as u64
    }

    fn failures(&self) -> u64 {
        self.tracker.failure_count()
    }

    async fn finish(mut self: Box<Self>, finish: Finish) -> Applied {
        let mut applied = self.tracker.applied(0);
        let count = |phase: fn(Phase) -> bool| self.steps.iter().filter(|s| phase(s.phase)).count() as u64;
        applied.uploaded = count(|p| p <= Phase::Redirects);
        applied.copied = count(|p| p == Phase::Copies);
        applied.deleted = count(|p| p == Phase::Deletes);
        applied.retired = count(|p| p == Phase::Retires);
        applied.bytes_uploaded = self.steps.iter().map(|s| s.bytes).sum();
        applied.plan = render(&mut self.steps, finish.unchanged, finish.hashed);
        applied.changes = self.tracker.journal().take().await;
        applied
    }
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
    /// An upload of `file`. A compressed one is shown with its file's size, which its upload does
    /// not exceed (it is compressed only when it is sent): `(new, 5000 bytes before gzip)`.
    pub fn upload(phase: Phase, key: String, file: &LocalFile, reason: Reason) -> Step {
        let detail = match file.encoding() {
            None => format!("({}, {} bytes)", reason.as_str(), file.size),
            Some(e) => format!("({}, {} bytes before {})", reason.as_str(), file.size, e.token()),
        };
        Step { phase, key, detail, bytes: file.size }
    }
}

/// The plan step of one diff event; the headers the chain set follow its detail.
pub fn step(event: &Event, target: &Target) -> Step {
    let mut step = bare_step(event, target);
    if let Event::Upload { file, .. } = event
        && let Some(meta) = file.meta.as_deref()
        && step.phase != Phase::Redirects
    {
        step.detail.push_str(&meta.shown());
    }
    step
}

fn bare_step(event: &Event, target: &Target) -> Step {
    let key = |key: &str| target.key(key);
    // An event that is not an action never gets this far: the plan sink drops it.
    let phase = Phase::of(event).unwrap_or(Phase::Problems);
    match event {
        Event::Upload { file, reason } if in_place(file, *reason) => {
            Step { phase, key: key(&file.key), detail: format!("(in place, {})", reason.as_str()), bytes: 0 }
        }
        Event::Upload { file, reason } => match &file.copy_of {
            Some(source) => Step {
                phase,
                key: key(&file.key),
                detail: format!("(from {}, {})", printable(&key(source)), reason.as_str()),
                bytes: 0,
            },
            None if super::phase::is_redirect(file) => redirect(file, *reason, target),
            None => Step::upload(phase, key(&file.key), file, *reason),
        },
        Event::Delete { object, retired } => {
            let detail = retired.map(|since| format!("(retired {} ago)", since.ago_text())).unwrap_or_default();
            Step { phase, key: key(&object.key), detail, bytes: 0 }
        }
        Event::Retire { object, .. } => Step { phase, key: key(&object.key), detail: String::new(), bytes: 0 },
        Event::Problem(p) => Step { phase, key: key(&p.place), detail: p.message.clone(), bytes: 0 },
        Event::Same { file, .. } | Event::Check { file, .. } | Event::Head { file, .. } => {
            Step { phase, key: key(&file.key), detail: "(not an action)".into(), bytes: 0 }
        }
    }
}

/// `redirect KEY -> TARGET (reason)`, then the headers besides the two every redirect object has.
fn redirect(file: &LocalFile, reason: Reason, target: &Target) -> Step {
    let mut meta = file.meta.as_deref().cloned().unwrap_or_default();
    let location = meta.take(Field::WebsiteRedirectLocation).unwrap_or_default();
    meta.take(Field::ContentType);
    let detail = format!("-> {} ({}){}", printable(&location), reason.as_str(), meta.shown());
    Step { phase: Phase::Redirects, key: target.key(&file.key), detail, bytes: file.size }
}

/// Renders the plan: one line per step, then a summary line.
pub fn render(steps: &mut [Step], unchanged: u64, hashed: u64) -> String {
    steps.sort_by(|a, b| (a.phase, &a.key).cmp(&(b.phase, &b.key)));
    // A sync sends no delete once anything failed, and what the scan could not read fails for sure.
    let withheld = steps.iter().any(|s| s.phase == Phase::Problems);
    let mut out = String::new();
    let mut counts = Counts::default();
    for step in steps.iter() {
        let verb = counts.add(step);
        // Keys are printed as they are, but for control characters, which would break the line; a
        // problem's place may already hold escaped bytes (`caf\xe9`), which thus show escaped once.
        let key = printable(&step.key);
        let detail = match step.phase {
            Phase::Deletes | Phase::Retires if withheld => "(withheld: a failure below)",
            _ => step.detail.as_str(),
        };
        if detail.is_empty() {
            let _ = writeln!(out, "{verb} {key}");
        } else {
            let _ = writeln!(out, "{verb} {key} {detail}");
        }
    }
    let _ = writeln!(out, "{}", counts.summary(withheld, unchanged, hashed));
    out
}

/// The steps of a plan, counted by kind for its summary line.
#[derive(Default, Clone, Copy)]
struct Counts {
    uploads: u64,
    bytes: u64,
    copies: u64,
    deletes: u64,
    retires: u64,
    problems: u64,
}

impl Counts {
    /// Counts `step`; the verb its line starts with.
    fn add(&mut self, step: &Step) -> &'static str {
        match step.phase {
            Phase::Assets | Phase::Pages | Phase::Redirects => {
                self.uploads += 1;
                self.bytes += step.bytes;
                if step.phase == Phase::Redirects { "redirect" } else { "upload" }
            }
            Phase::Copies => {
                self.copies += 1;
                "copy"
            }
            Phase::Deletes => {
                self.deletes += 1;
                "delete"
            }
            Phase::Retires => {
                self.retires += 1;
                "retire"
            }
            Phase::Problems => {
                self.problems += 1;
                "fail"
            }
        }
    }

    /// `plan: 2 to upload (650 bytes), 1 to delete, 4 unchanged, 1 failed`.
    fn summary(&self, withheld: bool, unchanged: u64, hashed: u64) -> String {
        let Counts { uploads, bytes, copies, deletes, retires, problems } = *self;
        // Copies only appear with a transform chain; plans without one keep their summary.
        let copies = if copies > 0 { format!("{copies} to copy, ") } else { String::new() };
        let deletes = if withheld && deletes + retires > 0 {
            format!("{deletes} to delete (withheld)")
        } else {
            format!("{deletes} to delete")
        };
        // Retirements only appear with delete_grace; plans without one keep their summary.
        let retires = if retires > 0 { format!(", {retires} to retire") } else { String::new() };
        // Files read to compare them appear only when there were some.
        let hashed = if hashed > 0 { format!(" ({hashed} read to compare)") } else { String::new() };
        format!(
            "plan: {uploads} to upload ({bytes} bytes), {copies}{deletes}{retires}, {unchanged} unchanged{hashed}, {problems} failed"
        )
    }
}
