//! What ages out of the history, and what a user removes from it.
//!
//! Retention (`keep_deploys`): a clean sync keeps the newest N deploys (a split run's records
//! count as one deploy, a rollback as one) and deletes the older records, then the kept folders
//! of every deploy up to and including the oldest one kept: they hold what the site was before
//! that deploy, which no rollback can go to any more. `keep_deploys = 0` deletes everything. Only
//! the sync's own listing of `deploys/` is needed, and `kept/` is listed (its folders only) just
//! when something is pruned: a sync with nothing to prune sends no request for it.
//!
//! Purge (`sitesync deploys purge TARGET KEY…`): a secret published by mistake lives on in every
//! deploy that kept it; purging deletes `kept/*/KEY` in every folder (and the versions recorded on
//! a bucket that keeps versions), and marks the key `purged` in the records, so a rollback says it
//! cannot restore it instead of failing on a missing object.

use std::collections::BTreeSet;
use std::io::{BufWriter, Seek, Write};

use serde::Serialize;

use super::record::{Before, Line, Word};
use super::timeline::{Timeline, groups_of};
use super::{DEPLOYS, DeployId, HistoryError, KEPT, StoreError, kept_key, store};
use crate::keys::target::Target;
use crate::model::Time;
use crate::s3client::Op;

/// What a pruning deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub records: u64,
    pub folders: u64,
}

/// Keeps the newest `keep` deploys of `ids` (every record under the prefix, oldest first); with
/// `min_age` (the grace of retired keys, when one is set), a record younger than it is kept too.
pub async fn prune(
    client: &aws_sdk_s3::Client,
    target: &Target,
    ids: &[DeployId],
    keep: u32,
    min_age: Option<(Time, i64)>,
) -> Result<Pruned, HistoryError> {
    let refs: Vec<&DeployId> = ids.iter().collect();
    let groups = groups_of(&refs);
    let young =
        |id: &DeployId| min_age.is_some_and(|(now, age)| id.time().is_some_and(|t| now.0.saturating_sub(t.0) < age));
    // The oldest deploys past the newest `keep`, up to the first one still within the grace.
    let past = groups.len().saturating_sub(keep as usize);
    let drop = groups[..past].iter().position(|g| g.records.iter().any(|&i| young(&ids[i]))).unwrap_or(past);
    let dropped: Vec<&DeployId> = groups[..drop].iter().flat_map(|g| g.records.iter().map(|&i| &ids[i])).collect();
    if dropped.is_empty() {
        return Ok(Pruned::default());
    }
    // Everything up to the oldest deploy kept: its befores are of a state no rollback can reach.
    let oldest_kept = groups.get(drop).and_then(|g| g.records.last()).map(|&i| ids[i].clone());
    let folders: Vec<DeployId> = store::kept_folders(client, target)
        .await?
        .into_iter()
        .filter(|f| oldest_kept.as_ref().is_none_or(|o| f <= o))
        .collect();
    for folder in &folders {
        let under = format!("{KEPT}{folder}/");
        let names = store::keys_under(client, target, &under).await?;
        let rels: Vec<String> = names.into_iter().map(|n| format!("{under}{n}")).collect();
        store::delete(client, target, &rels).await?;
    }
    // Records last: a folder whose record is gone would read as a stopped run's.
    let records: Vec<String> = dropped.iter().map(|id| format!("{DEPLOYS}{id}")).collect();
    store::delete(client, target, &records).await?;
    let pruned = Pruned { records: records.len() as u64, folders: folders.len() as u64 };
    tracing::debug!("history: pruned {} records and {} kept folders", pruned.records, pruned.folders);
    Ok(pruned)
}

/// What a purge removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Purged {
    /// Kept objects (and versions) deleted.
    pub objects: u64,
    /// Records rewritten to say the keys were purged.
    pub records: u64,
}

/// Removes `keys` (relative to the prefix) from every deploy that kept them.
pub async fn purge(client: &aws_sdk_s3::Client, target: &Target, keys: &[String]) -> Result<Purged, HistoryError> {
    let timeline = Timeline::read(client, target).await?;
    let wanted: BTreeSet<&str> = keys.iter().map(String::as_str).collect();
    let folders: BTreeSet<&DeployId> = timeline.records.iter().map(|(id, _)| id).chain(&timeline.stopped).collect();
    let mut purged = Purged::default();
    let mut kept = Vec::new();
    for id in folders {
        kept.extend(keys.iter().map(|key| kept_key(id, key, target.prefix.len())));
    }
    for rel in &kept {
        if exists(client, target, rel).await? {
            purged.objects += 1;
        }
    }
    store::delete(client, target, &kept).await?;
    for (id, _) in &timeline.records {
        let name = format!("{DEPLOYS}{id}");
        let file = store::download(client, target, &name).await?;
        let (rewritten, versions) = tokio::task::spawn_blocking({
            let (name, wanted) = (name.clone(), wanted.iter().map(|k| k.to_string()).collect::<BTreeSet<_>>());
            move || rewrite(file, &name, &wanted)
        })
        .await
        .map_err(std::io::Error::other)??;
        for (key, version) in versions {
            delete_version(client, target, &key, &version).await?;
            purged.objects += 1;
        }
        if let Some(written) = rewritten {
            store::put_file(client, target, &name, written.0, written.1).await?;
            purged.records += 1;
        }
    }
    Ok(purged)
}

/// Whether the object `rel` exists.
async fn exists(client: &aws_sdk_s3::Client, target: &Target, rel: &str) -> Result<bool, StoreError> {
    let key = target.key(rel);
    match client.head_object().bucket(&target.bucket).key(&key).send().await {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(false),
        Err(e) => Err(StoreError::sdk(Op::Head, format!("s3://{}/{key}", target.bucket), e)),
    }
}

async fn delete_version(
    client: &aws_sdk_s3::Client,
    target: &Target,
    key: &str,
    version: &str,
) -> Result<(), StoreError> {
    let full = target.key(key);
    let sent = client.delete_object().bucket(&target.bucket).key(&full).version_id(version).send().await;
    sent.map(|_| ())
        .map_err(|e| StoreError::sdk(Op::Delete, format!("s3://{}/{full}?versionId={version}", target.bucket), e))
}

/// A record rewritten (rewound, and its length), and the versions (key, version id) it recorded of
/// the purged keys.
type Rewritten = (Option<(std::fs::File, u64)>, Vec<(String, String)>);

/// A record with the lines of `wanted` keys marked purged: the new record (when a line changed)
/// and the versions it recorded of them (a blocking read and write).
fn rewrite(file: std::fs::File, name: &str, wanted: &BTreeSet<String>) -> Result<Rewritten, HistoryError> {
    let bad = |why: String| HistoryError::Record { key: name.to_owned(), why };
    let (header, lines) = super::record::read(file, name).map_err(bad)?;
    let mut out = BufWriter::new(crate::disk::anonymous_file("record")?);
    serde_json::to_writer(&mut out, &header).map_err(std::io::Error::other)?;
    out.write_all(b"\n")?;
    let (mut changed, mut versions) = (false, Vec::new());
    for line in lines {
        let mut line: Line = line.map_err(bad)?;
        if wanted.contains(&line.key) && matches!(line.before, Before::Word(Word::Kept) | Before::Version { .. }) {
            if let Before::Version { version } = &line.before {
                versions.push((line.key.clone(), version.clone()));
            }
            line.before = Before::PURGED;
            changed = true;
        }
        serde_json::to_writer(&mut out, &line).map_err(std::io::Error::other)?;
        out.write_all(b"\n")?;
    }
    if !changed {
        return Ok((None, versions));
    }
    let mut file = out.into_inner().map_err(|e| e.into_error())?;
    let len = file.stream_position()?;
    file.rewind()?;
    Ok((Some((file, len)), versions))
}
