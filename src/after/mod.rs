//! Post-run steps: what a run does once the sink is done, from the record of what it applied.
//!
//! Each step is a small type behind [`AfterRun`], in a file of its own, and reads the same
//! [`Outcome`]: the counts, the failures and every key changed ([`Applied`]), and whether the
//! run was clean: the chain marker, the CloudFront invalidation, the site's routing rules
//! (`website`); the local state of the content check is another of the same kind, one new file and
//! one line of wiring. A step that fails says why in an [`AfterError`] that keeps its cause; the
//! report names it as a [`Failure`] ([`AfterError::failure`]).

pub mod invalidate;
pub mod marker;
pub mod record;
mod save_state;
pub mod website;

pub use invalidate::{Invalidate, InvalidateError};
pub use marker::WriteMarker;
pub use record::WriteRecord;
pub use save_state::SaveState;

use crate::diff::Tally;
use crate::error::StoreError;
use crate::sink::{Applied, FailedOp, Failure};

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
    async fn run(self: Box<Self>, outcome: &Outcome<'_>) -> Result<Said, AfterError>;
}

/// Why a post-run step failed, with its cause kept; the report names it as a [`Failure`].
#[derive(Debug, thiserror::Error)]
pub enum AfterError {
    /// The chain marker (`key`, relative to the prefix) could not be written.
    #[error("the chain marker: {source}")]
    Marker { key: String, source: StoreError },
    #[error(transparent)]
    Invalidate(#[from] InvalidateError),
    /// The site's redirects: the record of what was made, or the bucket's website configuration.
    #[error("{0}")]
    Website(String),
    /// The deploy's record (`key`, relative to the prefix), or the history's retention.
    #[error("the deploy history: {source}")]
    Record { key: String, source: crate::history::HistoryError },
}

impl AfterError {
    /// The failure as the report names it: the key, the op and the message.
    pub fn failure(&self) -> Failure {
        let (key, op, error) = match self {
            AfterError::Marker { key, source } => (key.clone(), FailedOp::Upload, source.message.clone()),
            AfterError::Invalidate(e) => ("(cloudfront)".to_owned(), FailedOp::Invalidate, e.to_string()),
            AfterError::Website(why) => ("(website)".to_owned(), FailedOp::Website, why.clone()),
            AfterError::Record { key, source } => (key.clone(), FailedOp::Upload, source.to_string()),
        };
        Failure { key, op, error }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Op;

    #[test]
    fn a_step_that_failed_keeps_its_cause_and_is_reported_as_before() {
        let put = StoreError::answer(Op::Put, "s3://bkt/site/.sitesync/chain", "SlowDown: Reduce your request rate");
        let e = AfterError::Marker { key: ".sitesync/chain".into(), source: put };
        let cause = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<StoreError>());
        assert_eq!(cause.map(|s| s.op), Some(Op::Put), "the store's error is kept as the source");
        let failure = e.failure();
        assert_eq!((failure.key.as_str(), failure.op), (".sitesync/chain", FailedOp::Upload));
        assert_eq!(failure.error, "SlowDown: Reduce your request rate");

        let e = AfterError::from(InvalidateError::NoOrigin { id: "E1".into(), bucket: "bkt".into() });
        let failure = e.failure();
        assert_eq!((failure.key.as_str(), failure.op), ("(cloudfront)", FailedOp::Invalidate));
        assert_eq!(failure.error, "distribution E1 has no origin for bucket bkt (and more than one origin)");
    }
}
