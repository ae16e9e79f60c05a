//! A deploy's record, `deploys/ID`: JSON lines, a header, then one line per key the deploy
//! changed, in key order, saying how it changed and what it was before.
//!
//! The record is what makes a deploy undoable: with what was kept, each key's line says how to
//! bring back the state before the deploy: `kept` (copy it back from `kept/ID/KEY`), `absent`
//! (delete it), `{"version": V}` (copy back that version, on a bucket that keeps versions). A key
//! whose object was not kept says why (`unkept`: the first deploy under the prefix keeps nothing,
//! as there is nothing to roll back to; `purged`: removed by `deploys purge`). A key kept whose
//! change is not known to have happened (its request failed, perhaps after the server applied it)
//! is listed as `attempted`, so a rollback restores it all the same.
//!
//! The lines are made by merging two records of the run, both in key order: the journal of
//! changes the sink applied, and the keeper's journal of what it kept; they are written to a
//! temporary file and uploaded whole at the end of the run, after everything they name was kept.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Seek, Write};
use std::iter::Peekable;

use serde::{Deserialize, Serialize};

use crate::journal::{Change, Changes, Record};

/// The format's version, the header's `v`.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Sync,
    Rollback,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The run was clean: every key it had to change was changed.
    Complete,
    /// Something failed, or the run was refused or stopped: what it did is recorded all the same.
    Failed,
}

/// The first line of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub v: u32,
    pub id: String,
    /// When the deploy started and ended, RFC 3339 in the server's clock.
    pub time: String,
    pub finished: String,
    pub kind: Kind,
    /// A rollback's: the deploy whose state it restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    pub message: Option<String>,
    /// The sitesync version that wrote it.
    pub version: String,
    /// `K/N` for a shard of a split run.
    pub shard: Option<String>,
    pub status: Status,
    /// The chain marker's content once the deploy was done: the chain its objects were published
    /// with, which a rollback to it restores.
    pub chain: String,
    pub uploaded: u64,
    pub copied: u64,
    pub deleted: u64,
    #[serde(default)]
    pub retired: u64,
    /// Objects kept (or versions recorded) before they were changed.
    #[serde(default)]
    pub kept: u64,
}

/// How a key changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Changed {
    Uploaded,
    Copied,
    Deleted,
    /// Kept, then its change failed (it may or may not have reached the bucket).
    Attempted,
    Retired,
    Unretired,
}

/// What a key was before the deploy changed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Before {
    /// `"kept"`, `"absent"`, `"unkept"` or `"purged"`.
    Word(Word),
    /// The version of the object, on a bucket that keeps versions.
    Version { version: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Word {
    Kept,
    Absent,
    Unkept,
    Purged,
}

impl Before {
    pub const KEPT: Before = Before::Word(Word::Kept);
    pub const ABSENT: Before = Before::Word(Word::Absent);
    pub const UNKEPT: Before = Before::Word(Word::Unkept);
    pub const PURGED: Before = Before::Word(Word::Purged);
}

/// One key of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub key: String,
    pub change: Changed,
    pub before: Before,
    /// A rollback's: the size and ETag of what it restored, so a run that trusts its local state
    /// knows what the bucket holds now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

/// The lines of a run's record, in key order, from its journal of `changes` and its keeper's
/// journal of what was `kept` (both read in key order: a blocking read). With `restored`, a copy's
/// line carries what it made (a rollback's record).
pub fn lines<'a>(
    changes: &'a Changes,
    kept: &'a Changes,
    restored: bool,
) -> io::Result<impl Iterator<Item = io::Result<Line>> + 'a> {
    let changes = changes.sorted()?.filter(|r| r.as_ref().map_or(true, |r| applied(r.change)));
    Ok(Lines { changes: changes.peekable(), kept: kept.sorted()?.peekable(), restored })
}

/// A change a record lists (the journal records keys found the same too).
fn applied(change: Change) -> bool {
    matches!(change, Change::Uploaded | Change::Copied | Change::Deleted | Change::Retired)
}

struct Lines<C: Iterator<Item = io::Result<Record>>, K: Iterator<Item = io::Result<Record>>> {
    changes: Peekable<C>,
    kept: Peekable<K>,
    restored: bool,
}

impl<C: Iterator<Item = io::Result<Record>>, K: Iterator<Item = io::Result<Record>>> Iterator for Lines<C, K> {
    type Item = io::Result<Line>;

    fn next(&mut self) -> Option<io::Result<Line>> {
        if let Some(Err(_)) = self.changes.peek() {
            return self.changes.next().and_then(Result::err).map(Err);
        }
        if let Some(Err(_)) = self.kept.peek() {
            return self.kept.next().and_then(Result::err).map(Err);
        }
        let key = match (self.changes.peek(), self.kept.peek()) {
            (Some(Ok(c)), Some(Ok(k))) => c.key.as_str().min(k.key.as_str()).to_owned(),
            (Some(Ok(c)), None) => c.key.clone(),
            (None, Some(Ok(k))) => k.key.clone(),
            _ => return None,
        };
        let change = take(&mut self.changes, &key);
        let kept = take(&mut self.kept, &key);
        Some(Ok(line(key, change, kept, self.restored)))
    }
}

/// The next record of `records` if it is `key`'s, and any more of that key skipped.
fn take(records: &mut Peekable<impl Iterator<Item = io::Result<Record>>>, key: &str) -> Option<Record> {
    let first = records.next_if(|r| r.as_ref().is_ok_and(|r| r.key == key))?.ok();
    while records.next_if(|r| r.as_ref().is_ok_and(|r| r.key == key)).is_some() {}
    first
}

/// A key's line, from its change (if one is recorded) and what was kept of it (if anything was).
fn line(key: String, change: Option<Record>, kept: Option<Record>, restored: bool) -> Line {
    let before = match (&kept, &change) {
        (Some(Record { change: Change::Kept, version: Some(version), .. }), _) => {
            Before::Version { version: version.clone() }
        }
        (Some(Record { change: Change::Kept, .. }), _) => Before::KEPT,
        (Some(_), _) => Before::ABSENT,
        (None, Some(change)) if change.added => Before::ABSENT,
        (None, _) => Before::UNKEPT,
    };
    let (changed, known) = match change {
        Some(Record { change: Change::Uploaded, known, .. }) => (Changed::Uploaded, known),
        Some(Record { change: Change::Copied, known, .. }) => (Changed::Copied, known),
        Some(Record { change: Change::Deleted, .. }) => (Changed::Deleted, None),
        Some(Record { change: Change::Retired, .. }) => (Changed::Retired, None),
        _ => (Changed::Attempted, None),
    };
    let known = known.filter(|_| restored);
    let etag = known.as_ref().and_then(|k| k.etag.clone());
    Line { key, change: changed, before, size: known.map(|k| k.size), etag }
}

/// A record written to an unlinked temporary file, rewound, with its length and line count.
pub struct Written {
    pub file: File,
    pub len: u64,
    pub lines: u64,
}

/// Writes `header` and `lines` (a blocking write).
pub fn write(header: &Header, lines: impl Iterator<Item = io::Result<Line>>) -> io::Result<Written> {
    let mut out = BufWriter::new(crate::disk::anonymous_file("record")?);
    serde_json::to_writer(&mut out, header)?;
    out.write_all(b"\n")?;
    let mut count = 0;
    for line in lines {
        serde_json::to_writer(&mut out, &line?)?;
        out.write_all(b"\n")?;
        count += 1;
    }
    let mut file = out.into_inner().map_err(|e| e.into_error())?;
    let len = file.stream_position()?;
    file.rewind()?;
    Ok(Written { file, len, lines: count })
}

/// The header and the lines of a downloaded record (a blocking read); `key` names it in errors.
pub fn read(file: File, key: &str) -> Result<(Header, impl Iterator<Item = Result<Line, String>> + use<>), String> {
    let mut lines = BufReader::new(file).lines();
    let first = lines.next().ok_or("it is empty")?.map_err(|e| e.to_string())?;
    let header: Header = serde_json::from_str(&first).map_err(|e| format!("its header: {e}"))?;
    let key = key.to_owned();
    let lines = lines.enumerate().map(move |(i, line)| {
        let line = line.map_err(|e| format!("{key}: {e}"))?;
        serde_json::from_str(&line).map_err(|e| format!("{key}, line {}: {e}", i + 2))
    });
    Ok((header, lines))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Journal;
    use crate::model::{Known, Time};

    fn known(size: u64, etag: &str) -> Known {
        Known { size, mtime: Time(0), md5: None, etag: Some(etag.into()), lm_lo: Time(0), lm_hi: Time(0) }
    }

    #[tokio::test]
    async fn each_key_says_how_it_changed_and_what_it_was_before() {
        let (changes, kept) = (Journal::default(), Journal::default());
        changes.learn("a.css", Change::Uploaded, false, known(3, "e1"));
        changes.record("b.html", Change::Deleted, false);
        changes.learn("c.js", Change::Uploaded, true, known(1, "e2"));
        changes.learn("d.txt", Change::Copied, false, known(4, "e3"));
        changes.learn("e.txt", Change::Confirmed, false, known(4, "e4"));
        kept.kept("a.css", Change::Kept, None);
        kept.kept("b.html", Change::Kept, Some("v7".into()));
        kept.kept("f.txt", Change::Kept, None);
        kept.kept("g.txt", Change::Absent, None);
        let (changes, kept) = (changes.take().await, kept.take().await);
        let lines: Vec<Line> = lines(&changes, &kept, true).unwrap().map(Result::unwrap).collect();
        let shown: Vec<String> = lines.iter().map(|l| serde_json::to_string(l).unwrap()).collect();
        assert_eq!(
            shown,
            [
                r#"{"key":"a.css","change":"uploaded","before":"kept","size":3,"etag":"e1"}"#,
                r#"{"key":"b.html","change":"deleted","before":{"version":"v7"}}"#,
                r#"{"key":"c.js","change":"uploaded","before":"absent","size":1,"etag":"e2"}"#,
                r#"{"key":"d.txt","change":"copied","before":"unkept","size":4,"etag":"e3"}"#,
                r#"{"key":"f.txt","change":"attempted","before":"kept"}"#,
                r#"{"key":"g.txt","change":"attempted","before":"absent"}"#,
            ]
        );
        for (line, text) in lines.iter().zip(&shown) {
            assert_eq!(&serde_json::from_str::<Line>(text).unwrap(), line, "read back");
        }
    }

    #[test]
    fn a_record_reads_back_and_a_bad_line_is_named() {
        let header = Header {
            v: FORMAT,
            id: "20231114T221320.005Z-3fa91c".into(),
            time: "2023-11-14T22:13:20.005Z".into(),
            finished: "2023-11-14T22:13:21.000Z".into(),
            kind: Kind::Rollback,
            to: Some("20231114T221300.000Z-aaaaaa".into()),
            message: Some("abc123".into()),
            version: "0.1.0".into(),
            shard: None,
            status: Status::Complete,
            chain: String::new(),
            uploaded: 0,
            copied: 1,
            deleted: 0,
            retired: 0,
            kept: 1,
        };
        let line = Line { key: "a".into(), change: Changed::Copied, before: Before::KEPT, size: None, etag: None };
        let written = write(&header, [Ok(line.clone())].into_iter()).unwrap();
        assert_eq!(written.lines, 1);
        let (read_header, lines) = read(written.file, "r").unwrap();
        assert_eq!(read_header, header);
        assert_eq!(lines.map(Result::unwrap).collect::<Vec<_>>(), [line]);

        let mut bad = crate::disk::anonymous_file("t").unwrap();
        writeln!(bad, "{}\n{{\"key\":1}}", serde_json::to_string(&header).unwrap()).unwrap();
        bad.rewind().unwrap();
        let error = read(bad, "r").unwrap().1.next().unwrap().unwrap_err();
        assert!(error.starts_with("r, line 2: "), "{error}");
    }
}
