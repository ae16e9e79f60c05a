//! The keys a sync must compare by content because a rollback restored them.
//!
//! A restored object gets a new `LastModified`, later than any file of the tree the site was
//! built from, so the mtime rule would take it as up to date whatever bytes it holds; and a local
//! state recorded the object it replaced. So a sync reads the records of the rollbacks made since
//! the last complete sync of its layout (the whole site, or its shard) and hands their keys to the
//! diff as suspects, compared by content. Each rollback record says what it restored (size and
//! ETag) or deleted, which stands for the bucket where a run trusts its local state instead of a
//! listing. The records are read newest first and the reading stops at that sync's record: one
//! ranged GET when no rollback happened since. The keys are held in memory: as many as the
//! rollbacks since restored, not the site's.

use std::collections::BTreeMap;

use super::record::{Changed, Kind, Status};
use super::{DEPLOYS, DeployId, HistoryError, store};
use crate::keys::shard::Shard;
use crate::keys::target::Target;
use crate::model::Time;

/// What the bucket holds under a key a rollback restored, as the rollback's record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restored {
    /// Copied back: its size and ETag, and when the rollback ended (its `LastModified` is no later).
    Present { size: u64, etag: Option<String>, at: Time },
    /// Deleted.
    Absent,
    /// Attempted, not known to have happened.
    Unknown,
}

/// The keys restored by rollbacks since the last complete sync of the run's layout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Suspects {
    keys: BTreeMap<String, Restored>,
}

impl Suspects {
    pub fn get(&self, key: &str) -> Option<&Restored> {
        self.keys.get(key)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Every suspect in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Restored)> {
        self.keys.iter()
    }
}

/// The suspects of a run of layout `shard` (owning only its keys), from the records `ids`.
pub async fn read(
    client: &aws_sdk_s3::Client,
    target: &Target,
    ids: &[DeployId],
    shard: Option<&Shard>,
) -> Result<Suspects, HistoryError> {
    let layout = shard.map(|s| (s.index, s.count));
    let mut suspects = Suspects::default();
    for id in ids.iter().rev() {
        let header = store::header(client, target, id).await?;
        if header.kind == Kind::Sync && header.status == Status::Complete && id.shard() == layout {
            break;
        }
        if header.kind != Kind::Rollback {
            continue;
        }
        let at = DeployId::parse(&header.id).and_then(|i| i.time()).unwrap_or(Time(0));
        let name = format!("{DEPLOYS}{id}");
        let file = store::download(client, target, &name).await?;
        let lines = tokio::task::spawn_blocking(move || -> Result<Vec<(String, Restored)>, String> {
            let (header, lines) = super::record::read(file, &name)?;
            let at = super::parse_rfc3339(&header.finished).unwrap_or(at);
            lines.map(|line| line.map(|l| (l.key.clone(), restored(l, at)))).collect()
        });
        let lines = lines.await.map_err(std::io::Error::other)?;
        let lines = lines.map_err(|why| HistoryError::Record { key: format!("{DEPLOYS}{id}"), why })?;
        for (key, restored) in lines {
            if shard.is_none_or(|s| s.owns(&key)) {
                // Newest first: a later rollback's word on a key stands.
                suspects.keys.entry(key).or_insert(restored);
            }
        }
    }
    if !suspects.is_empty() {
        tracing::info!("{} keys restored by a rollback since the last sync are compared by content", suspects.len());
    }
    Ok(suspects)
}

fn restored(line: super::record::Line, at: Time) -> Restored {
    match line.change {
        Changed::Copied | Changed::Uploaded => match line.size {
            Some(size) => Restored::Present { size, etag: line.etag, at },
            None => Restored::Unknown,
        },
        Changed::Deleted => Restored::Absent,
        _ => Restored::Unknown,
    }
}

#[cfg(test)]
impl Suspects {
    pub fn of(keys: impl IntoIterator<Item = (String, Restored)>) -> Suspects {
        Suspects { keys: keys.into_iter().collect() }
    }
}
