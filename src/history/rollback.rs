//! What a rollback to a deploy must do: for every key a later deploy changed, the state right
//! after that deploy, which is what the earliest later deploy found before it changed the key.
//!
//! The records after the point (and the kept folders of runs stopped before they wrote one, whose
//! kept objects are their befores) are read as streams in key order and merged: for each key the
//! earliest deploy's line wins. `kept` becomes a restore from `kept/ID/KEY`, `{"version": V}` a
//! restore from that version, `absent` a delete; a key whose object was not kept is named, not
//! guessed at. Restores are written to two temporary files, assets and pages, in the order the
//! sink will send them (assets before pages, deletes last, as a sync). A stopped run's keys that
//! it added are not known (its record was never written): they are left as they are, and said so.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Seek, Write};

use serde::{Deserialize, Serialize};

use super::record::{Before, Changed, Word};
use super::timeline::{Point, Timeline};
use super::{DEPLOYS, DeployId, HistoryError, KEPT, StoreError, keep::Headers, kept_key, store};
use crate::journal::{Change, Changes, Journal};
use crate::keys::target::Target;
use crate::s3client::Op;

/// Where a key is restored from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum From {
    /// The kept object's key, relative to the prefix.
    Kept { kept: String },
    /// The key's own version, on a bucket that keeps versions.
    Version { version: String },
}

/// One restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub key: String,
    /// The deploy that kept it.
    pub deploy: String,
    #[serde(flatten)]
    pub from: From,
}

/// Restores waiting in a temporary file, in key order.
#[derive(Debug)]
pub struct Steps {
    file: File,
    pub count: u64,
}

impl Steps {
    /// The steps, read from the start (a blocking read).
    pub fn read(&self) -> io::Result<impl Iterator<Item = io::Result<Step>> + Send + use<>> {
        let mut file = self.file.try_clone()?;
        file.rewind()?;
        Ok(BufReader::new(file).lines().map(|line| serde_json::from_str(&line?).map_err(io::Error::other)))
    }
}

/// What a rollback does.
#[derive(Debug)]
pub struct Plan {
    pub point: Point,
    /// Restores of assets, then of pages (HTML), as a sync orders its uploads.
    pub assets: Steps,
    pub pages: Steps,
    /// Keys a later deploy added: deleted last.
    pub deletes: Vec<String>,
    /// Keys that cannot be restored, and why.
    pub unrestorable: Vec<(String, String)>,
    /// Keys a later deploy retired (removed from the site, not deleted yet): they come back.
    pub unretire: Vec<String>,
    /// Runs stopped before they wrote their record, after the point.
    pub stopped: Vec<DeployId>,
}

/// Plans the rollback to `point`.
pub async fn plan(client: &aws_sdk_s3::Client, timeline: &Timeline, point: Point) -> Result<Plan, HistoryError> {
    let target = &timeline.target;
    let (records, stopped) = timeline.after(&point);
    let mut sources = Vec::new();
    for id in records {
        let file = store::download(client, target, &format!("{DEPLOYS}{id}")).await?;
        sources.push((id, Source::Record(file)));
    }
    for id in &stopped {
        sources.push((id.clone(), Source::Stopped(kept_by(client, target, id).await?)));
    }
    sources.sort_by(|a, b| a.0.cmp(&b.0));
    let prefix_len = target.prefix.len();
    let merged = tokio::task::spawn_blocking(move || merge(sources, prefix_len)).await.map_err(io::Error::other)?;
    let (assets, pages, Others { deletes, unrestorable, unretire }) = merged?;
    Ok(Plan { point, assets, pages, deletes, unrestorable, unretire, stopped })
}

/// Where a deploy's befores come from: its record, or the kept objects of a run stopped before it
/// wrote one.
enum Source {
    Record(File),
    Stopped(Changes),
}

/// The keys a stopped run kept, in key order: their names under `kept/ID/`, and for a key kept
/// under its hash, the key its metadata names.
async fn kept_by(client: &aws_sdk_s3::Client, target: &Target, id: &DeployId) -> Result<Changes, HistoryError> {
    let folder = format!("{KEPT}{id}/");
    let journal = Journal::default();
    for name in store::keys_under(client, target, &folder).await? {
        // A key kept under its hash names itself in metadata; a key that starts with `#` is kept
        // under its own name, and names nothing.
        let key = match name.starts_with('#') {
            false => name,
            true => named_by(client, target, &format!("{folder}{name}")).await?.unwrap_or(name),
        };
        journal.kept(key, Change::Kept, None);
        journal.spill().await?;
    }
    Ok(journal.take().await)
}

/// The key a kept object (`rel`) names in its metadata.
async fn named_by(client: &aws_sdk_s3::Client, target: &Target, rel: &str) -> Result<Option<String>, StoreError> {
    let key = target.key(rel);
    let head = client.head_object().bucket(&target.bucket).key(&key).send().await;
    let head = head.map_err(|e| StoreError::sdk(Op::Head, format!("s3://{}/{key}", target.bucket), e))?;
    Ok(Headers::of(&head).restored().1)
}

/// What the merge finds besides restores.
#[derive(Default)]
struct Others {
    deletes: Vec<String>,
    unrestorable: Vec<(String, String)>,
    unretire: Vec<String>,
}

type Befores<'a> = Box<dyn Iterator<Item = Result<(String, Changed, Before), HistoryError>> + 'a>;

/// Merges the deploys' befores, oldest deploy first, into the plan (a blocking read and write).
fn merge(sources: Vec<(DeployId, Source)>, prefix_len: usize) -> Result<(Steps, Steps, Others), HistoryError> {
    let mut streams: Vec<(DeployId, std::iter::Peekable<Befores>)> = Vec::new();
    for (id, source) in &sources {
        streams.push((id.clone(), befores(id, source)?.peekable()));
    }
    let (mut assets, mut pages) = (Writer::new()?, Writer::new()?);
    let mut others = Others::default();
    loop {
        let mut first: Option<(usize, String)> = None;
        for (i, (_, stream)) in streams.iter_mut().enumerate() {
            match stream.peek() {
                Some(Err(_)) => return Err(stream.next().and_then(Result::err).expect("an error was peeked")),
                Some(Ok((key, ..))) if first.as_ref().is_none_or(|(_, k)| key < k) => first = Some((i, key.clone())),
                _ => {}
            }
        }
        let Some((earliest, key)) = first else { break };
        let mut chosen = None;
        for (i, (_, stream)) in streams.iter_mut().enumerate() {
            let next = stream.next_if(|b| b.as_ref().is_ok_and(|(k, ..)| *k == key));
            if let Some(Ok((_, change, before))) = next
                && i == earliest
            {
                chosen = Some((change, before));
            }
        }
        let (change, before) = chosen.expect("the earliest stream holds the key");
        let deploy = &streams[earliest].0;
        decide(key, deploy, change, before, prefix_len, (&mut assets, &mut pages), &mut others)?;
    }
    Ok((assets.finish()?, pages.finish()?, others))
}

/// What to do with `key` given what `deploy` found before it changed it.
fn decide(
    key: String,
    deploy: &DeployId,
    change: Changed,
    before: Before,
    prefix_len: usize,
    (assets, pages): (&mut Writer, &mut Writer),
    merged: &mut Others,
) -> io::Result<()> {
    if change == Changed::Retired {
        // The object was left in place: only the ledger's entry is undone.
        merged.unretire.push(key);
        return Ok(());
    }
    let from = match before {
        Before::Word(Word::Kept) => From::Kept { kept: kept_key(deploy, &key, prefix_len) },
        Before::Version { version } => From::Version { version },
        Before::Word(Word::Absent) => {
            merged.deletes.push(key);
            return Ok(());
        }
        Before::Word(Word::Unkept) => {
            let why = format!("deploy {deploy} did not keep it (larger than 5 GB, or history was off)");
            merged.unrestorable.push((key, why));
            return Ok(());
        }
        Before::Word(Word::Purged) => {
            merged.unrestorable.push((key, format!("it was purged from deploy {deploy} (`sitesync deploys purge`)")));
            return Ok(());
        }
    };
    let writer = if crate::model::mime::is_page(&key) { pages } else { assets };
    writer.push(&Step { key, deploy: deploy.0.clone(), from })
}

/// A deploy's befores, in key order.
fn befores<'a>(id: &'a DeployId, source: &'a Source) -> Result<Befores<'a>, HistoryError> {
    match source {
        Source::Record(file) => {
            let name = format!("{DEPLOYS}{id}");
            let file = file.try_clone()?;
            let unreadable = |why: String| HistoryError::Record { key: name.clone(), why };
            let (_, lines) = super::record::read(file, &name).map_err(unreadable)?;
            let record = move |why: String| HistoryError::Record { key: name.clone(), why };
            Ok(Box::new(lines.map(move |line| line.map(|l| (l.key, l.change, l.before)).map_err(&record))))
        }
        Source::Stopped(changes) => Ok(Box::new(
            changes.sorted()?.map(|r| r.map(|r| (r.key, Changed::Attempted, Before::KEPT)).map_err(HistoryError::Io)),
        )),
    }
}

/// Steps written as JSON lines.
struct Writer {
    out: BufWriter<File>,
    count: u64,
}

impl Writer {
    fn new() -> io::Result<Writer> {
        Ok(Writer { out: BufWriter::new(crate::disk::anonymous_file("plan")?), count: 0 })
    }

    fn push(&mut self, step: &Step) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, step)?;
        self.count += 1;
        self.out.write_all(b"\n")
    }

    fn finish(self) -> io::Result<Steps> {
        let mut file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.rewind()?;
        Ok(Steps { file, count: self.count })
    }
}
