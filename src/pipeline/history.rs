//! A sync's part in the deploy history, read before the run: its deploy id, the keeper that keeps
//! objects before the sink changes them, the keys rollbacks restored since the last sync, and the
//! post-run step that records the deploy and prunes what aged out.
//!
//! One listing of `deploys/` a run, and a ranged GET of the newest record (for the suspects);
//! GetBucketVersioning once, when the run keeps its first object. Objects are kept only when a deploy is
//! recorded already (the first one has nothing to roll back to) and `keep_deploys` is 2 or more.

use std::sync::Arc;

use super::RunOptions;
use crate::after::WriteRecord;
use crate::clock::Clock;
use crate::config::Config;
use crate::error::Error;
use crate::history::keep::Keeper;
use crate::history::record::Kind;
use crate::history::suspects::{self, Suspects};
use crate::history::{DeployId, server_now, store};

/// What a sync knows of the history when it starts.
pub struct SyncHistory {
    pub id: DeployId,
    /// The records under the prefix, oldest first.
    pub records: Vec<DeployId>,
    pub keeper: Option<Arc<Keeper>>,
    pub suspects: Arc<Suspects>,
}

impl SyncHistory {
    /// Reads the history of the target; a dry run keeps nothing.
    pub async fn open(
        config: &Config,
        opts: &RunOptions,
        client: &aws_sdk_s3::Client,
        clock: &Clock,
    ) -> Result<SyncHistory, Error> {
        let target = &config.target;
        let records = store::records(client, target).await?;
        let suspects = suspects::read(client, target, &records, config.shard.as_ref()).await?;
        // After a request, so the clock has measured the server's.
        let id = DeployId::after(server_now(clock.bounds()), config.shard.as_ref(), records.last());
        let keeps = !opts.dry_run && config.history.keeps() && !records.is_empty();
        let keeper = keeps.then(|| Arc::new(Keeper::new(client.clone(), target.clone(), id.clone())));
        Ok(SyncHistory { id, records, keeper, suspects: Arc::new(suspects) })
    }

    /// The step that records the deploy: `chain` is the chain marker's content after a clean run
    /// and otherwise.
    pub fn record(
        &self,
        config: &Config,
        client: &aws_sdk_s3::Client,
        clock: Arc<Clock>,
        chain: (String, String),
    ) -> WriteRecord {
        WriteRecord {
            client: client.clone(),
            target: config.target.clone(),
            id: self.id.clone(),
            kind: Kind::Sync,
            to: None,
            message: config.history.message.clone(),
            shard: config.shard.as_ref().map(ToString::to_string),
            chain,
            keeper: self.keeper.clone(),
            retention: Some((self.records.clone(), config.history.keep)),
            settles: !self.suspects.is_empty(),
            clock,
            grace: config.delete.grace.map(|g| i64::try_from(g.as_nanos()).unwrap_or(i64::MAX)),
        }
    }
}
