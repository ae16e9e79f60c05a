//! An S3 Inventory report as the other side of the diff (`remote_inventory`), instead of a listing.
//!
//! Listing tens of millions of keys takes tens of thousands of ListObjectsV2 round trips, paid
//! for on every run; S3 Inventory writes the same list once a day (or week) as gzip CSV files. A
//! run reads the inventory's `manifest.json` (checked against `manifest.checksum` when present;
//! `manifest`), then streams each data file from S3 to the blocking pool, where its MD5 is checked
//! as it arrives and its rows are decompressed and parsed (`rows`). Data files are not sorted
//! across files, so the objects under the prefix go through an external sort (`sort`: sorted runs
//! spilled to disk and merged) and are sent in S3's key order, like a listing's. Only the
//! download's network I/O runs on the async workers; hashing, gunzip, parsing, sorting and the
//! temporary files are on the blocking pool. Nothing is sent before every data file was read and
//! checked, so a bad file fails the run before the merge sees a key, and no delete is ever sent
//! on the strength of half an inventory.
//!
//! **Staleness.** An inventory is a snapshot taken at its `creationTimestamp`; objects written or
//! deleted after it are unknown to it. The diff's rules keep that safe for what this tool does
//! to the bucket: a key the inventory lacks reads as new and is uploaded (a PUT of the same bytes
//! is harmless), a file changed since its object was listed is uploaded as usual, and deletes
//! are only of keys the inventory lists, so deleting one that a later run already removed is
//! asked again, which S3 answers as a success. What a stale inventory cannot see: an object
//! created after it (by this tool or anything else) whose file is gone now is left in place until
//! an inventory lists it, and an object deleted or overwritten behind the tool's back after it is
//! not noticed until the next inventory. The run logs the inventory's date and age.

mod manifest;
mod rows;
mod sort;

use bytes::Bytes;
use flate2::read::MultiGzDecoder;
use md5::{Digest, Md5};
use std::io::{self, Read};
use tokio::sync::mpsc;

use super::{RemoteError, RemoteSource};
use crate::error::{InventoryError, Op, StoreError};
use crate::keys::shard::Shard;
use crate::keys::target::{ObjectUrl, Target};
use crate::model::{BATCH, RemoteObject};
use manifest::{DataFile, Manifest};
use rows::Columns;
use sort::Sorter;

/// Chunks of a data file in flight between the download and the reader.
const PIECES_AHEAD: usize = 8;

/// The objects under the prefix, from an S3 Inventory report.
pub struct Inventory {
    pub client: aws_sdk_s3::Client,
    pub target: Target,
    /// The report's `manifest.json`; its data files are read from the same bucket.
    pub manifest: ObjectUrl,
    /// A split run's shard: only its keys are sorted and sent, so each shard sorts its own part.
    pub shard: Option<Shard>,
}

#[async_trait::async_trait]
impl RemoteSource for Inventory {
    fn describe(&self) -> String {
        format!("inventory {}", self.manifest)
    }

    async fn send(self: Box<Self>, tx: mpsc::Sender<Vec<RemoteObject>>) -> Result<(), RemoteError> {
        let manifest = manifest::read(&self.client, &self.manifest, &self.target).await?;
        manifest.log_age(&self.manifest);
        let Manifest { columns, files, .. } = manifest;
        let (pieces_tx, pieces_rx) = mpsc::channel(PIECES_AHEAD);
        let reader = Reader {
            bucket: self.manifest.bucket.clone(),
            files: files.clone(),
            columns,
            target: self.target,
            shard: self.shard,
        };
        let reading = tokio::task::spawn_blocking(move || reader.run(pieces_rx, tx));
        let downloaded = download(&self.client, &self.manifest.bucket, &files, pieces_tx).await;
        let read = reading.await.unwrap_or_else(|e| {
            let why = match e.try_into_panic() {
                Ok(panic) => crate::run::panic::message(panic.as_ref()),
                Err(e) => e.to_string(),
            };
            Err(RemoteError::Died { reader: "inventory's reader", why })
        });
        // A failed download is why the reader stopped, whatever the reader says.
        downloaded?;
        read
    }
}

/// A part of a data file as it arrives; each file ends with `End`.
enum Piece {
    Bytes(Bytes),
    End,
}

/// Streams every data file, in the manifest's order, to the reader.
async fn download(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    files: &[DataFile],
    pieces: mpsc::Sender<Piece>,
) -> Result<(), StoreError> {
    for file in files {
        let url = format!("s3://{bucket}/{}", file.key);
        let out = client.get_object().bucket(bucket).key(&file.key).send().await;
        let mut body = out.map_err(|e| StoreError::sdk(Op::Get, &url, e))?.body;
        while let Some(bytes) = body.try_next().await.map_err(|e| StoreError::invalid(Op::Get, &url, e))? {
            if pieces.send(Piece::Bytes(bytes)).await.is_err() {
                // The reader stopped, and says why.
                return Ok(());
            }
        }
        if pieces.send(Piece::End).await.is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// The blocking half: checks, decompresses and parses each data file as it arrives, sorts the
/// objects, and sends them in key order once every file was read.
struct Reader {
    bucket: String,
    files: Vec<DataFile>,
    columns: Columns,
    target: Target,
    shard: Option<Shard>,
}

impl Reader {
    fn run(self, mut pieces: mpsc::Receiver<Piece>, tx: mpsc::Sender<Vec<RemoteObject>>) -> Result<(), RemoteError> {
        let mut sorter = Sorter::default();
        let mut kept = 0u64;
        for file in &self.files {
            let url = format!("s3://{}/{}", self.bucket, file.key);
            let read = self.read_file(&mut pieces, file, &mut sorter);
            let (rows, objects) = read.map_err(|source| RemoteError::Inventory { on: url.clone(), source })?;
            tracing::debug!("{url}: {rows} rows, {objects} under the prefix");
            kept += objects;
        }
        drop(pieces);
        tracing::debug!("inventory: {kept} objects under {}", self.target);
        let spilled = |e| RemoteError::Inventory {
            on: format!("inventory of {}", self.target),
            source: InventoryError::Spill(e),
        };
        let mut batch = Vec::with_capacity(BATCH);
        for object in sorter.finish().map_err(spilled)? {
            batch.push(object.map_err(spilled)?);
            if batch.len() == BATCH
                && tx.blocking_send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH))).is_err()
            {
                return Ok(());
            }
        }
        if !batch.is_empty() {
            let _ = tx.blocking_send(batch);
        }
        Ok(())
    }

    /// Reads one data file into the sorter: (rows read, objects kept). The file's MD5 and size
    /// are checked after its last byte, and speak first: a damaged file usually fails to
    /// decompress too, and its checksum says why.
    fn read_file(
        &self,
        pieces: &mut mpsc::Receiver<Piece>,
        file: &DataFile,
        sorter: &mut Sorter,
    ) -> Result<(u64, u64), InventoryError> {
        let mut data = Download { pieces, chunk: Bytes::new(), md5: Md5::new(), bytes: 0, ended: false };
        let mut kept = 0;
        let keep = |object: RemoteObject| {
            if self.shard.as_ref().is_some_and(|shard| !shard.owns(&object.key)) {
                return Ok(());
            }
            kept += 1;
            sorter.push(object).map_err(InventoryError::Spill)
        };
        let rows = rows::read(MultiGzDecoder::new(&mut data), &self.columns, &self.target, keep);
        io::copy(&mut data, &mut io::sink()).map_err(|_| InventoryError::Cut)?;
        let actual = crate::content::hex(&data.md5.finalize());
        if !actual.eq_ignore_ascii_case(file.md5.trim()) {
            return Err(InventoryError::FileChecksum { expected: file.md5.clone(), actual });
        }
        if data.bytes != file.size {
            return Err(InventoryError::FileSize { expected: file.size, actual: data.bytes });
        }
        Ok((rows?, kept))
    }
}

/// One data file as the download hands it over, hashed as it comes.
struct Download<'a> {
    pieces: &'a mut mpsc::Receiver<Piece>,
    chunk: Bytes,
    md5: Md5,
    bytes: u64,
    ended: bool,
}

impl Read for Download<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() && !self.ended {
            match self.pieces.blocking_recv() {
                Some(Piece::Bytes(bytes)) => {
                    self.md5.update(&bytes);
                    self.bytes += bytes.len() as u64;
                    self.chunk = bytes;
                }
                Some(Piece::End) => self.ended = true,
                None => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, InventoryError::Cut)),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}
