//! The deploys under a prefix in the order they happened: which records make one deploy, which
//! deploy's state is live, and which one a rollback goes to.
//!
//! Ids sort as the deploys started, in the server's clock, so the order needs no reading. The
//! shards of a split run each write a record (`ID-K-of-N`): consecutive records of one N with
//! distinct K are one deploy, whose point in time is its last record's id: rolling back to it
//! keeps everything any of its shards did. A rollback's state is the state of the deploy it went
//! to, so after rolling back from v3 to v2, v2's is live and the next rollback goes to the deploy
//! before v2: repeated rollbacks walk back through history. A deploy id older than the oldest
//! record was pruned by `keep_deploys`, and is named as such.

use std::collections::BTreeSet;

use serde::Serialize;

use super::record::{Header, Kind, Status};
use super::{DeployId, HistoryError, StoreError, store};
use crate::keys::target::Target;

/// Record headers read at once.
const READ_AT_ONCE: usize = 8;

/// What the bucket holds of the history.
#[derive(Debug, Clone)]
pub struct Timeline {
    pub target: Target,
    /// The records, oldest first, with their headers.
    pub records: Vec<(DeployId, Header)>,
    /// Kept folders without a record: runs stopped before they wrote one, oldest first.
    pub stopped: Vec<DeployId>,
}

/// Records that make one deploy (a split run's shards), as indexes into `records`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub records: Vec<usize>,
}

/// Where a rollback goes: right after this deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Point {
    /// The deploy's last record: everything later is undone.
    pub id: DeployId,
    /// The id the user named, or the deploy's first record.
    pub named: DeployId,
    /// The chain marker's content after the deploy, and the markers its records kept (one per
    /// shard of a split run).
    pub chain: String,
    pub shards: Vec<Option<(u32, u32)>>,
}

impl Timeline {
    /// Reads the records' headers, and the kept folders without a record.
    pub async fn read(client: &aws_sdk_s3::Client, target: &Target) -> Result<Timeline, HistoryError> {
        let ids = store::records(client, target).await?;
        let folders = store::kept_folders(client, target).await?;
        let recorded: BTreeSet<&DeployId> = ids.iter().collect();
        let stopped = folders.iter().filter(|id| !recorded.contains(id)).cloned().collect();
        let records = headers(client, target, ids).await?;
        Ok(Timeline { target: target.clone(), records, stopped })
    }

    /// The deploys, oldest first.
    pub fn groups(&self) -> Vec<Group> {
        let ids: Vec<&DeployId> = self.records.iter().map(|(id, _)| id).collect();
        groups_of(&ids)
    }

    fn last_id(&self, group: &Group) -> &DeployId {
        &self.records[*group.records.last().unwrap_or(&0)].0
    }

    /// The deploy whose state `groups[at]` left: itself, or for a rollback the deploy it went to.
    fn state(&self, groups: &[Group], at: usize) -> usize {
        let (_, header) = &self.records[groups[at].records[0]];
        let to = header.to.as_deref().filter(|_| header.kind == Kind::Rollback);
        let found = to.and_then(|to| groups[..at].iter().position(|g| self.last_id(g).0 == to));
        match found {
            Some(went) => self.state(groups, went),
            None => at,
        }
    }

    /// The deploy whose state is live (the last one's, followed through rollbacks).
    pub fn live(&self, groups: &[Group]) -> Option<usize> {
        groups.len().checked_sub(1).map(|last| self.state(groups, last))
    }

    /// Where a rollback goes: right after deploy `to`, or by default after the deploy before the
    /// one whose state is live.
    pub fn resolve(&self, to: Option<&str>) -> Result<Point, HistoryError> {
        let groups = self.groups();
        let target = self.target.to_string();
        let at = match to {
            Some(named) => self.find(&groups, named)?,
            None => {
                let live = self.live(&groups).ok_or_else(|| HistoryError::Nothing {
                    target: target.clone(),
                    why: "no deploy is recorded under it (a sync records one, unless keep_deploys = 0)".into(),
                })?;
                live.checked_sub(1).ok_or_else(|| HistoryError::Nothing {
                    target,
                    why: format!("{} is the oldest deploy kept", self.last_id(&groups[live])),
                })?
            }
        };
        let group = &groups[at];
        let (first, header) = &self.records[group.records[0]];
        let named = to.and_then(DeployId::parse).unwrap_or_else(|| first.clone());
        let shards = group.records.iter().map(|&i| self.records[i].0.shard()).collect();
        Ok(Point { id: self.last_id(group).clone(), named, chain: header.chain.clone(), shards })
    }

    /// The group holding record `named`; refused naming it when there is none.
    fn find(&self, groups: &[Group], named: &str) -> Result<usize, HistoryError> {
        if let Some(at) = groups.iter().position(|g| g.records.iter().any(|&i| self.records[i].0.0 == named)) {
            return Ok(at);
        }
        let why = match (DeployId::parse(named), self.records.first()) {
            (None, _) => {
                "not a deploy id (they look like 20260105T104500.123Z-3fa91c; `sitesync deploys` lists them)".into()
            }
            (Some(id), Some((oldest, _))) if id < *oldest => {
                format!("it was pruned: the oldest deploy kept is {oldest} (keep_deploys sets how many are kept)")
            }
            (Some(_), _) => "no such deploy is recorded (`sitesync deploys` lists them)".into(),
        };
        Err(HistoryError::Unknown { id: named.to_owned(), target: self.target.to_string(), why })
    }

    /// The records and the stopped runs after `point`, oldest first: what a rollback undoes.
    pub fn after(&self, point: &Point) -> (Vec<DeployId>, Vec<DeployId>) {
        let records = self.records.iter().map(|(id, _)| id).filter(|id| **id > point.id).cloned().collect();
        let stopped = self.stopped.iter().filter(|id| **id > point.id).cloned().collect();
        (records, stopped)
    }

    /// The deploys as `sitesync deploys` lists them, newest first.
    pub fn listed(&self) -> Vec<Listed> {
        let groups = self.groups();
        let live = self.live(&groups).map(|at| groups[at].records.clone()).unwrap_or_default();
        let mut listed: Vec<Listed> = self
            .records
            .iter()
            .enumerate()
            .map(|(i, (id, header))| Listed::of(id, header, live.contains(&i)))
            .collect();
        listed.reverse();
        listed
    }
}

/// The deploys that records `ids` (oldest first) make: a whole run's record alone, the records of
/// a split run's shards together (consecutive, one N, each K once).
pub fn groups_of(ids: &[&DeployId]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let joins = match (id.shard(), groups.last()) {
            (Some((k, n)), Some(last)) => {
                let shards: Vec<_> = last.records.iter().map(|&j| ids[j].shard()).collect();
                shards.iter().all(|s| s.is_some_and(|(_, m)| m == n)) && !shards.contains(&Some((k, n)))
            }
            _ => false,
        };
        match (joins, groups.last_mut()) {
            (true, Some(last)) => last.records.push(i),
            _ => groups.push(Group { records: vec![i] }),
        }
    }
    groups
}

/// The headers of records `ids`, a few read at once, in the order of `ids`.
async fn headers(
    client: &aws_sdk_s3::Client,
    target: &Target,
    ids: Vec<DeployId>,
) -> Result<Vec<(DeployId, Header)>, HistoryError> {
    let mut read = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(READ_AT_ONCE) {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, id) in chunk.iter().enumerate() {
            let (client, target, id) = (client.clone(), target.clone(), id.clone());
            tasks.spawn(async move { (i, store::header(&client, &target, &id).await) });
        }
        let mut got = Vec::with_capacity(chunk.len());
        while let Some(joined) = tasks.join_next().await {
            let (i, header) =
                joined.map_err(|e| StoreError::answer(crate::s3client::Op::Get, "a record", e.to_string()))?;
            got.push((i, header?));
        }
        got.sort_by_key(|(i, _)| *i);
        read.extend(got.into_iter().map(|(i, header)| (chunk[i].clone(), header)));
    }
    Ok(read)
}

/// One deploy as `sitesync deploys --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub id: String,
    pub time: String,
    pub kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    pub message: Option<String>,
    pub status: Status,
    pub shard: Option<String>,
    pub uploaded: u64,
    pub copied: u64,
    pub deleted: u64,
    pub kept: u64,
    /// Its state is the one the site serves now.
    pub live: bool,
}

impl Listed {
    fn of(id: &DeployId, h: &Header, live: bool) -> Listed {
        Listed {
            id: id.0.clone(),
            time: h.time.clone(),
            kind: h.kind,
            to: h.to.clone(),
            message: h.message.clone(),
            status: h.status,
            shard: h.shard.clone(),
            uploaded: h.uploaded,
            copied: h.copied,
            deleted: h.deleted,
            kept: h.kept,
            live,
        }
    }

    /// One line of `sitesync deploys`.
    pub fn line(&self) -> String {
        let what = match (&self.kind, &self.to) {
            (Kind::Rollback, Some(to)) => format!("rollback to {to}"),
            (Kind::Rollback, None) => "rollback".into(),
            (Kind::Sync, _) => "sync".into(),
        };
        let mut line = format!(
            "{}  {}  {what}: {} uploaded, {} copied, {} deleted",
            self.id, self.time, self.uploaded, self.copied, self.deleted
        );
        if self.status == Status::Failed {
            line.push_str(" (failed)");
        }
        if let Some(message) = &self.message {
            line.push_str(&format!("  {}", crate::keys::names::printable(message)));
        }
        if self.live {
            line.push_str("  [live]");
        }
        line
    }
}
