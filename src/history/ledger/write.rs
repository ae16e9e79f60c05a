//! Writing a layout's new ledger file as a run goes: its lines arrive in key order, gather in a
//! small buffer and go to an unlinked temporary file on the blocking pool; the file is uploaded
//! whole with one PutObject at the end, so a run killed at any point leaves the old file or the
//! new one, never a mix.

use std::fs::File;
use std::io::{self, Seek, Write};
use std::sync::Arc;

use md5::{Digest as _, Md5};

use super::{Header, Layout, LedgerError, LedgerFile, Opened, VERSION, line};
use crate::disk::anonymous_file;
use crate::keys::target::Target;
use crate::model::Time;
use crate::s3client::{Op, StoreError};

/// Bytes of lines held before they go to the temporary file.
const SPILL: usize = 256 * 1024;

/// A layout's ledger file being written.
pub struct NewLedger {
    /// Its key, relative to the prefix.
    key: String,
    /// `None` while a spill has it on the blocking pool, or after a spill failed.
    file: Option<File>,
    /// What has not reached the file yet.
    pending: Vec<u8>,
    /// The MD5 of the lines after the header, to tell whether the file changed.
    lines: Md5,
    entries: u64,
    last: Option<String>,
}

impl NewLedger {
    /// A new file of `layout`, saying it was `written` at that time (the server's clock).
    pub fn new(layout: &Layout, written: Time) -> io::Result<NewLedger> {
        let header = Header { v: VERSION, shard: layout.tag(), written: written.0.div_euclid(1_000_000) };
        let mut pending = serde_json::to_vec(&header).map_err(io::Error::other)?;
        pending.push(b'\n');
        let file = Some(anonymous_file("ledger")?);
        Ok(NewLedger { key: layout.key(), file, pending, lines: Md5::new(), entries: 0, last: None })
    }

    /// Its key, relative to the prefix.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Records that `key` was retired at `at`. Keys come in increasing order; one that does not is
    /// refused, since a file out of order could not be read back.
    pub fn push(&mut self, key: &str, at: Time) -> Result<(), LedgerError> {
        if let Some(last) = self.last.as_deref().filter(|last| key <= *last) {
            let why = format!("{key:?} came after {last:?}: retired keys must come in key order");
            return Err(LedgerError::Corrupt { key: self.key.clone(), line: self.entries + 2, why });
        }
        let text = line(key, at);
        self.lines.update(text.as_bytes());
        self.pending.extend_from_slice(text.as_bytes());
        self.entries += 1;
        self.last = Some(key.to_owned());
        Ok(())
    }

    /// Bytes held in memory, not yet in the temporary file.
    #[cfg(test)]
    pub(super) fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Keys recorded so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// The MD5 of the lines so far (the header left out), to compare with the file read.
    pub fn digest(&self) -> [u8; 16] {
        self.lines.clone().finalize().into()
    }

    /// Writes what has gathered to the temporary file, on the blocking pool, once it is a chunk.
    pub async fn spill(&mut self) -> io::Result<()> {
        match self.pending.len() >= SPILL {
            true => self.write_out().await,
            false => Ok(()),
        }
    }

    async fn write_out(&mut self) -> io::Result<()> {
        let mut file = self.file.take().ok_or_else(|| io::Error::other("an earlier write to it failed"))?;
        let pending = std::mem::take(&mut self.pending);
        let written = tokio::task::spawn_blocking(move || file.write_all(&pending).map(|()| file)).await;
        self.file = Some(written.map_err(io::Error::other)??);
        Ok(())
    }

    /// Uploads the file whole, in one PutObject.
    pub async fn upload(mut self, client: &aws_sdk_s3::Client, target: &Target) -> Result<(), LedgerError> {
        let name = self.key.clone();
        let disk = |source| LedgerError::Disk { key: name.clone(), source };
        self.write_out().await.map_err(disk)?;
        let mut file = self.file.take().ok_or_else(|| disk(io::Error::other("no file")))?;
        let len = file.stream_position().map_err(disk)?;
        let key = target.key(&self.key);
        let put = client
            .put_object()
            .bucket(&target.bucket)
            .key(&key)
            .content_type("text/plain; charset=utf-8")
            .content_length(len as i64)
            .body(crate::s3client::body::from_file(Arc::new(file), 0, len))
            .send()
            .await;
        put.map_err(|e| StoreError::sdk(Op::Put, format!("s3://{}/{key}", target.bucket), e))?;
        tracing::debug!("ledger {}: {} retired keys written", self.key, self.entries);
        Ok(())
    }
}

/// The file a run would upload for `given`, as a download leaves it. Blocking.
pub(super) fn opened(given: &LedgerFile) -> Result<Opened, LedgerError> {
    let LedgerFile { layout, written, entries } = given;
    let disk = |source| LedgerError::Disk { key: layout.key(), source };
    let mut new = NewLedger::new(layout, *written).map_err(disk)?;
    for (key, at) in entries {
        new.push(key, *at)?;
    }
    let mut file = new.file.take().ok_or_else(|| disk(io::Error::other("no file")))?;
    file.write_all(&new.pending).and_then(|()| file.rewind()).map_err(disk)?;
    Ok(Opened { key: layout.key(), layout: layout.clone(), file, digest: new.digest() })
}

impl std::fmt::Debug for NewLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NewLedger({}, {} entries)", self.key, self.entries)
    }
}
