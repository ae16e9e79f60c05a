//! The deploy's record, written after the run (a sync or a rollback) from what it applied and what
//! it kept, then, after a clean sync, the deploys that aged out of the history deleted.
//!
//! A run that changed nothing and kept nothing writes no record, unless it settled what rollbacks
//! restored (then the next sync need not compare those keys again). Any other run writes one,
//! clean or not: a deploy that failed (exit 1), was refused or stopped by a signal is recorded as `failed`
//! with what it did, and can be rolled back like any other. The record is written after the sink
//! is done, so after everything it names was kept; a run killed before it leaves its kept folder
//! alone, which a rollback reads as a stopped run's.

use std::sync::Arc;

use super::{AfterError, AfterRun, Outcome, Said};
use crate::history::keep::Keeper;
use crate::history::record::{self, FORMAT, Header, Kind, Status};
use crate::history::{DEPLOYS, DeployId, HistoryError, retention, rfc3339, server_now, store};
use crate::journal::Changes;
use crate::keys::target::Target;

/// Writes the run's record, and prunes the history after a clean sync.
pub struct WriteRecord {
    pub client: aws_sdk_s3::Client,
    pub target: Target,
    pub id: DeployId,
    pub kind: Kind,
    /// A rollback's: the deploy it went to.
    pub to: Option<DeployId>,
    pub message: Option<String>,
    pub shard: Option<String>,
    /// The chain marker's content after the run when it is clean, and otherwise.
    pub chain: (String, String),
    pub keeper: Option<Arc<Keeper>>,
    /// A sync's: the records listed when it started, and how many deploys to keep.
    pub retention: Option<(Vec<DeployId>, u32)>,
    /// A sync's: it compared keys rollbacks restored (suspects). Once it is clean, its record,
    /// even without a change, is where the next sync stops reading rollbacks.
    pub settles: bool,
    /// The run's clock, to date the record's end in the server's.
    pub clock: Arc<crate::clock::Clock>,
    /// `delete_grace` in nanoseconds, when one is set: no record younger is pruned.
    pub grace: Option<i64>,
}

#[async_trait::async_trait]
impl AfterRun for WriteRecord {
    async fn run(self: Box<Self>, outcome: &Outcome<'_>) -> Result<Said, AfterError> {
        if outcome.dry_run {
            return Ok(Said::default());
        }
        let fail = |source: HistoryError| AfterError::Record { key: format!("{DEPLOYS}{}", self.id), source };
        let kept = match &self.keeper {
            Some(keeper) => keeper.log().take().await,
            None => Changes::default(),
        };
        let mut said = Said::default();
        let applied = outcome.applied;
        // `keep_deploys = 0`: no history, not even the record of this deploy.
        let recording = self.retention.as_ref().is_none_or(|(_, keep)| *keep > 0);
        let changed = applied.uploaded + applied.copied + applied.deleted + applied.retired > 0 || !kept.is_empty();
        let written = recording && (changed || (self.settles && outcome.clean));
        if written {
            self.write(outcome, &kept).await.map_err(fail)?;
            said.fields.insert("deploy".into(), self.id.0.clone().into());
        }
        said.fields.insert("kept".into(), self.keeper.as_ref().map_or(0, |k| k.count()).into());
        if let Some((mut ids, keep)) = self.retention.clone().filter(|_| outcome.clean) {
            if written {
                ids.push(self.id.clone());
            }
            // With `delete_grace`, a record younger than the grace stays: its retirements are not
            // deleted yet, and a rollback past them needs it.
            let min_age = self.grace.map(|grace| (server_now(self.clock.bounds()), grace));
            retention::prune(&self.client, &self.target, &ids, keep, min_age).await.map_err(fail)?;
        }
        Ok(said)
    }
}

impl WriteRecord {
    /// Writes the record (its lines on the blocking pool's time) and uploads it.
    async fn write(&self, outcome: &Outcome<'_>, kept: &Changes) -> Result<(), HistoryError> {
        let applied = outcome.applied;
        let header = Header {
            v: FORMAT,
            id: self.id.0.clone(),
            time: self.id.time().map(rfc3339).unwrap_or_default(),
            finished: rfc3339(server_now(self.clock.bounds())),
            kind: self.kind,
            to: self.to.as_ref().map(|to| to.0.clone()),
            message: self.message.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            shard: self.shard.clone(),
            status: if outcome.clean { Status::Complete } else { Status::Failed },
            chain: if outcome.clean { self.chain.0.clone() } else { self.chain.1.clone() },
            uploaded: applied.uploaded,
            copied: applied.copied,
            deleted: applied.deleted,
            retired: applied.retired,
            kept: self.keeper.as_ref().map_or(0, |k| k.count()),
        };
        let restored = self.kind == Kind::Rollback;
        let written =
            tokio::task::block_in_place(|| record::write(&header, record::lines(&applied.changes, kept, restored)?))?;
        let name = format!("{DEPLOYS}{}", self.id);
        store::put_file(&self.client, &self.target, &name, written.file, written.len).await?;
        tracing::debug!("history: recorded deploy {} ({} keys)", self.id, written.lines);
        Ok(())
    }
}
