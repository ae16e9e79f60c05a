//! Reading the ledger: every layout's file listed, each downloaded as a stream to an unlinked
//! temporary file, then read with a forward cursor, a chunk of lines at a time on the blocking
//! pool. A run holds a chunk of each file, never the ledger: a million retired keys cost what a
//! thousand do.
//!
//! [`Retired`] answers for the keys the diff would delete, asked in key order (`lookup`), and walks
//! every key a layout owns (`next_owned`, for rewriting a file whole); both apply the authority
//! rule of the module above (the newest file whose layout owns a key says whether it is retired).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek};

use aws_sdk_s3::types::EncodingType;
use md5::{Digest as _, Md5};
use tokio::io::AsyncWriteExt;

use super::{Header, Layout, LedgerError, LedgerFile, NewLedger, Opened, VERSION, parse_line};
use crate::disk::anonymous_file;
use crate::keys::shard::MapBack;
use crate::keys::target::Target;
use crate::model::Time;
use crate::s3client::{Op, StoreError};

/// Lines read in one trip to the blocking pool.
pub(super) const CHUNK: usize = 1024;

/// No line of a ledger is longer: a key of 1,024 bytes percent-encodes to at most 3,072.
const MAX_LINE: u64 = 16 * 1024;

/// Every ledger file of the prefix, read for the run of layout `own`; the shards' files trace
/// keys back through `mapping` (the chain's `prefix_duplicate` rules), as `--shard` does.
pub async fn fetch(
    client: &aws_sdk_s3::Client,
    target: &Target,
    own: Layout,
    mapping: &MapBack,
) -> Result<Retired, LedgerError> {
    let mut files = Vec::new();
    for name in list(client, target).await? {
        let Some(layout) = Layout::named(&name, mapping) else {
            tracing::warn!("{name}: not a ledger sitesync writes; left alone");
            continue;
        };
        // Deleted since it was listed: by a run of its layout that found nothing retired.
        let Some((file, digest)) = download(client, target, &name).await? else { continue };
        files.push(Opened { key: name, layout, file, digest });
    }
    Retired::open(own, files).await
}

/// The ledger files under the prefix, relative to it.
async fn list(client: &aws_sdk_s3::Client, target: &Target) -> Result<Vec<String>, LedgerError> {
    let prefix = target.key(crate::history::LEDGER);
    let (mut names, mut token) = (Vec::new(), None);
    loop {
        let page = client
            .list_objects_v2()
            .bucket(&target.bucket)
            .prefix(&prefix)
            .encoding_type(EncodingType::Url)
            .set_continuation_token(token.take())
            .send()
            .await
            .map_err(|e| StoreError::sdk(Op::List, format!("s3://{}/{prefix}", target.bucket), e))?;
        let encoded = page.encoding_type() == Some(&EncodingType::Url);
        for key in page.contents().iter().filter_map(|o| o.key()) {
            let key = match encoded {
                true => percent_encoding::percent_decode_str(&key.replace('+', " ")).decode_utf8_lossy().into_owned(),
                false => key.to_owned(),
            };
            names.extend(key.strip_prefix(target.prefix.as_str()).map(str::to_owned));
        }
        match page.next_continuation_token() {
            Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
            _ => return Ok(names),
        }
    }
}

/// Streams a ledger file to a temporary file; with the MD5 of its lines after the header. `None`
/// when it is gone.
async fn download(
    client: &aws_sdk_s3::Client,
    target: &Target,
    name: &str,
) -> Result<Option<(File, [u8; 16])>, LedgerError> {
    let url = format!("s3://{}/{}", target.bucket, target.key(name));
    let got = match client.get_object().bucket(&target.bucket).key(target.key(name)).send().await {
        Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(None),
        got => got.map_err(|e| StoreError::sdk(Op::Get, &url, e))?,
    };
    let disk = |source| LedgerError::Disk { key: name.to_owned(), source };
    let mut file = tokio::fs::File::from_std(anonymous_file("ledger").map_err(disk)?);
    let (mut body, mut lines, mut in_header) = (got.body, Md5::new(), true);
    while let Some(bytes) = body.try_next().await.map_err(|e| StoreError::invalid(Op::Get, &url, e))? {
        let mut rest = &bytes[..];
        if in_header && let Some(end) = rest.iter().position(|&b| b == b'\n') {
            rest = &rest[end + 1..];
            in_header = false;
        }
        if !in_header {
            lines.update(rest);
        }
        file.write_all(&bytes).await.map_err(disk)?;
    }
    file.flush().await.map_err(disk)?;
    let mut file = file.into_std().await;
    file.rewind().map_err(disk)?;
    Ok(Some((file, lines.finalize().into())))
}

/// One file being read.
struct Cursor {
    /// Its key, relative to the prefix.
    key: String,
    layout: Layout,
    written: Time,
    digest: [u8; 16],
    /// `None` once read to its end.
    reader: Option<BufReader<File>>,
    /// The entries read and not yet passed.
    buffer: VecDeque<(String, Time)>,
    /// Lines read so far, the header's included.
    line: u64,
    /// The last key read, to check the order.
    last: Option<String>,
}

impl Cursor {
    /// Reads the header of a downloaded file. Blocking.
    fn open(opened: Opened) -> Result<Cursor, LedgerError> {
        let Opened { key, layout, file, digest } = opened;
        let corrupt = |why: String| LedgerError::Corrupt { key: key.clone(), line: 1, why };
        let mut reader = BufReader::new(file);
        let mut first = Vec::new();
        let read = reader.by_ref().take(MAX_LINE).read_until(b'\n', &mut first);
        read.map_err(|source| LedgerError::Disk { key: key.clone(), source })?;
        if first.last() != Some(&b'\n') {
            return Err(corrupt("no header line".into()));
        }
        let header: Header =
            serde_json::from_slice(&first).map_err(|e| corrupt(format!("not a ledger's header: {e}")))?;
        if header.v != VERSION {
            return Err(corrupt(format!(
                "format {}, which this version of sitesync cannot read (it reads {VERSION})",
                header.v
            )));
        }
        if header.shard != layout.tag() {
            return Err(corrupt(format!("the header says shard {:?}, the name another layout", header.shard)));
        }
        let written = Time(header.written.saturating_mul(1_000_000));
        Ok(Cursor { key, layout, written, digest, reader: Some(reader), buffer: VecDeque::new(), line: 1, last: None })
    }

    /// The next entry, reading a chunk when none is buffered.
    async fn front(&mut self) -> Result<Option<&(String, Time)>, LedgerError> {
        while self.buffer.is_empty() && self.reader.is_some() {
            self.refill().await?;
        }
        Ok(self.buffer.front())
    }

    /// Whether the file lists `key`, and since when, passing every entry before it: keys are
    /// asked in increasing order.
    async fn find(&mut self, key: &str) -> Result<Option<Time>, LedgerError> {
        loop {
            let Some((listed, at)) = self.front().await? else { return Ok(None) };
            match listed.as_str().cmp(key) {
                std::cmp::Ordering::Less => self.buffer.pop_front(),
                std::cmp::Ordering::Equal => {
                    let at = *at;
                    self.buffer.pop_front();
                    return Ok(Some(at));
                }
                std::cmp::Ordering::Greater => return Ok(None),
            };
        }
    }

    /// Reads up to [`CHUNK`] lines on the blocking pool.
    async fn refill(&mut self) -> Result<(), LedgerError> {
        let Some(mut reader) = self.reader.take() else { return Ok(()) };
        let (key, mut line, mut last) = (self.key.clone(), self.line, self.last.take());
        let read = tokio::task::spawn_blocking(move || {
            let mut entries = Vec::new();
            let more = read_chunk(&mut reader, &key, (&mut line, &mut last), &mut entries);
            (reader, line, last, entries, more)
        });
        let died = |e: tokio::task::JoinError| LedgerError::Disk { key: self.key.clone(), source: io::Error::other(e) };
        let (reader, line, last, entries, more) = read.await.map_err(died)?;
        (self.line, self.last) = (line, last);
        self.buffer.extend(entries);
        if more? {
            self.reader = Some(reader);
        }
        Ok(())
    }
}

/// Reads up to [`CHUNK`] entries into `entries`; false at the end of the file. `at` is where
/// the file has been read to: its line number and its last key.
fn read_chunk(
    reader: &mut BufReader<File>,
    key: &str,
    (line, last): (&mut u64, &mut Option<String>),
    entries: &mut Vec<(String, Time)>,
) -> Result<bool, LedgerError> {
    let mut text = Vec::new();
    while entries.len() < CHUNK {
        text.clear();
        let read = reader.by_ref().take(MAX_LINE).read_until(b'\n', &mut text);
        let n = read.map_err(|source| LedgerError::Disk { key: key.to_owned(), source })?;
        if n == 0 {
            return Ok(false);
        }
        *line += 1;
        let corrupt = |why: String| LedgerError::Corrupt { key: key.to_owned(), line: *line, why };
        if text.last() != Some(&b'\n') {
            let why = if n as u64 == MAX_LINE { "a line too long" } else { "its last line is cut short" };
            return Err(corrupt(why.into()));
        }
        let (listed, at) = parse_line(&text[..n - 1]).map_err(corrupt)?;
        if let Some(before) = last.as_deref().filter(|before| listed.as_str() <= *before) {
            return Err(corrupt(format!("{listed:?} comes after {before:?}: the keys are not sorted")));
        }
        *last = Some(listed.clone());
        entries.push((listed, at));
    }
    Ok(true)
}

/// The ledger as a run reads it: every layout's file, newest first.
pub struct Retired {
    own: Layout,
    files: Vec<Cursor>,
}

impl Retired {
    /// The ledger of a prefix that has none.
    pub fn empty(own: Layout) -> Retired {
        Retired { own, files: Vec::new() }
    }

    /// The ledger `files` make, as if downloaded: the plan over an in-memory bucket reads it.
    pub async fn of_files(own: Layout, files: &[LedgerFile]) -> Result<Retired, LedgerError> {
        let opened: Result<Vec<Opened>, LedgerError> = files.iter().map(super::write::opened).collect();
        Retired::open(own, opened?).await
    }

    /// Reads the headers of the downloaded files (on the blocking pool).
    pub(super) async fn open(own: Layout, opened: Vec<Opened>) -> Result<Retired, LedgerError> {
        let opening = tokio::task::spawn_blocking(move || opened.into_iter().map(Cursor::open).collect());
        let files: Result<Vec<Cursor>, LedgerError> = opening
            .await
            .map_err(|e| LedgerError::Disk { key: crate::history::LEDGER.into(), source: io::Error::other(e) })?;
        let mut files = files?;
        files.sort_by(|a, b| (b.written, &b.key).cmp(&(a.written, &a.key)));
        for file in &files {
            tracing::debug!("ledger {}: written at {} (server clock)", file.key, file.written.0 / 1_000_000);
        }
        Ok(Retired { own, files })
    }

    /// Entries held in memory, every file's together.
    #[cfg(test)]
    pub(super) fn buffered(&self) -> usize {
        self.files.iter().map(|file| file.buffer.len()).sum()
    }

    /// The layout of the run reading it.
    pub fn own(&self) -> &Layout {
        &self.own
    }

    /// When the ledger `key` (relative to the prefix) says the key was retired; `None` when it is
    /// not retired. Keys are asked in increasing order.
    pub async fn lookup(&mut self, key: &str) -> Result<Option<Time>, LedgerError> {
        match self.files.iter_mut().find(|file| file.layout.owns(key)) {
            Some(authority) => authority.find(key).await,
            None => Ok(None),
        }
    }

    /// The next key this run's layout owns that the ledger says is retired, in key order, with
    /// since when: for rewriting this layout's file whole.
    pub async fn next_owned(&mut self) -> Result<Option<(String, Time)>, LedgerError> {
        loop {
            let mut smallest: Option<String> = None;
            for file in &mut self.files {
                if let Some((key, _)) = file.front().await?
                    && smallest.as_ref().is_none_or(|s| key < s)
                {
                    smallest = Some(key.clone());
                }
            }
            let Some(key) = smallest else { return Ok(None) };
            let at = self.lookup(&key).await?;
            // Every file passes the key, listed or not: the next round starts after it.
            for file in &mut self.files {
                file.find(&key).await?;
            }
            if let Some(at) = at.filter(|_| self.own.owns(&key)) {
                return Ok(Some((key, at)));
            }
        }
    }

    /// The time a new file of this layout must say it was written at, at least, to speak for
    /// every key it owns: after every file read. A machine whose clock is behind still writes the
    /// newest file.
    pub fn written_after(&self) -> Option<Time> {
        self.files.iter().map(|file| Time(file.written.0 + 1_000_000)).max()
    }

    /// Whether `new` must be uploaded: its lines differ from this layout's file, or a newer file
    /// of another layout speaks for some of its keys. An unchanged ledger costs no request.
    pub fn needs_rewrite(&self, new: &NewLedger) -> bool {
        let own_key = self.own.key();
        let own = self.files.iter().find(|file| file.key == own_key);
        let digest = own.map_or_else(|| Md5::digest(b"").into(), |file| file.digest);
        let newer = |file: &&Cursor| own.is_none_or(|own| file.written > own.written);
        let spoken_for =
            self.files.iter().filter(|f| f.key != own_key && f.layout.overlaps(&self.own)).any(|f| newer(&f));
        digest != new.digest() || spoken_for
    }
}
