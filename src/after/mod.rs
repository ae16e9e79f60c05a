//! Post-run steps: what a run does once the sink is done, from the record of what it applied.
//!
//! Each step is a small type behind [`AfterRun`], in a file of its own, and reads the same
//! [`Outcome`]: the counts, the failures and every key changed ([`Applied`]), and whether the
//! run was clean: the chain marker, the CloudFront invalidation, the site's routing rules
//! (`website`); the local state of the content check is another of the same kind, one new file and
//! one line of wiring.

pub mod invalidate;
pub mod marker;
pub mod website;

pub use invalidate::Invalidate;
pub use marker::WriteMarker;

use crate::diff::Tally;
use crate::sink::{Applied, Failure};

/// What a post-run step knows of the run.
pub struct Outcome<'a> {
    pub applied: &'a Applied,
    pub tally: Tally,
    pub dry_run: bool,
    /// Both scans were read to the end, nothing failed, and the run was neither refused nor
    /// stopped: every key of the prefix was published, or checked, by this run.
    pub clean: bool,
    /// A signal asked the run to stop: a step may still do its part, but should not linger.
    pub stopped: bool,
}

/// What a step adds to the run's report.
#[derive(Debug, Default)]
pub struct Said {
    /// Fields added to the `--json` report.
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// Lines added to a dry run's plan, after its actions.
    pub plan: Vec<String>,
}

/// A step that runs after the sink.
#[async_trait::async_trait]
pub trait AfterRun: Send {
    /// Runs the step; a failure of it is a failure of the run.
    async fn run(self: Box<Self>, outcome: &Outcome<'_>) -> Result<Said, Failure>;
}
