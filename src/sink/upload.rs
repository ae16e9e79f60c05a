//! Uploading one file: a single PutObject, or a multipart upload above the threshold.
//!
//! The file is stat'ed before and after the upload. If its size or mtime moved meanwhile, what
//! reached S3 may be a mix of old and new content, and `LastModified` may already be later than the
//! new mtime, so the next run would not notice: the file is sent again, and reported as failed if
//! it keeps changing.
//!
//! A site is mostly small files, and for those the trips to the blocking thread pool cost more
//! CPU than the reading: a small file is stat'ed, opened and read in one trip and sent from
//! memory, and its check after the upload rides on the same worker's next trip (see
//! [`Unchecked`]). Only then is it counted as uploaded.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use super::SinkContext;
use crate::model::LocalFile;
use crate::s3client::{self, describe};

const ATTEMPTS: usize = 3;

/// The file an entry is read from; the chain turns entries without one into reported problems,
/// so none reaches the sink, but a slip would be a failure, not a panic.
fn source(file: &LocalFile) -> Result<&Path, String> {
    file.path().ok_or_else(|| "nothing to upload: the entry has no file".to_owned())
}

/// Uploads a file and checks it afterwards before returning.
pub(super) async fn run_checked(ctx: &SinkContext, file: &LocalFile) {
    match upload(ctx, file).await {
        Ok(bytes) => ctx.tracker.uploaded(bytes),
        Err(error) => ctx.tracker.failed(file.key.clone(), "upload", error),
    }
}

/// A small file sent whose check after the upload is still to be done.
///
/// Each worker keeps at most one, and checks it on its next trip to the blocking pool, the one
/// that reads the next file: a small file then costs one trip instead of two.
pub(super) struct Unchecked {
    file: LocalFile,
    before: Stat,
    bytes: u64,
}

/// Uploads `file`, and settles the worker's `previous` upload on the same trip to the blocking
/// pool. Returns the upload to check on the next trip; large files are checked at once.
pub(super) async fn run(ctx: &SinkContext, file: LocalFile, previous: Option<Unchecked>) -> Option<Unchecked> {
    let check = previous.as_ref().and_then(|p| p.file.path()).map(Path::to_owned);
    let path = match source(&file) {
        Ok(path) => path,
        Err(error) => {
            finish(ctx, previous).await;
            ctx.tracker.failed(file.key.clone(), "upload", error);
            return None;
        }
    };
    let (opened, checked) = open_and_check(path, check).await;
    if let (Some(previous), Some(after)) = (previous, checked) {
        settle(ctx, previous, after).await;
    }
    let body = match opened {
        Ok((before, Some(bytes))) if before.0 < ctx.multipart_threshold => Some((before, bytes)),
        Ok(_) => None,
        Err(error) => {
            ctx.tracker.failed(file.key.clone(), "upload", error);
            return None;
        }
    };
    let Some((before, bytes)) = body else {
        run_checked(ctx, &file).await;
        return None;
    };
    let key = ctx.target.key(&file.key);
    let length = bytes.len() as u64;
    match put(ctx, &key, &file, length, ByteStream::from(bytes)).await {
        Ok(()) => Some(Unchecked { file, before, bytes: length }),
        Err(error) => {
            ctx.tracker.failed(file.key.clone(), "upload", error);
            None
        }
    }
}

/// Checks the worker's last upload, when it has no next file to read.
pub(super) async fn finish(ctx: &SinkContext, last: Option<Unchecked>) {
    if let Some(last) = last {
        let after = match source(&last.file) {
            Ok(path) => stat(path).await,
            Err(e) => Err(e),
        };
        settle(ctx, last, after).await;
    }
}

/// Counts an upload whose file did not move during it, and sends again one whose file did.
async fn settle(ctx: &SinkContext, sent: Unchecked, after: Result<Stat, String>) {
    match after {
        Ok(after) if after == sent.before => ctx.tracker.uploaded(sent.bytes),
        Ok(_) => {
            tracing::warn!("{} changed during upload (attempt 1 of {ATTEMPTS})", ctx.target.key(&sent.file.key));
            match upload_from(ctx, &sent.file, 2).await {
                Ok(bytes) => ctx.tracker.uploaded(bytes),
                Err(error) => ctx.tracker.failed(sent.file.key.clone(), "upload", error),
            }
        }
        Err(e) => ctx.tracker.failed(sent.file.key.clone(), "upload", format!("changed during upload: {e}")),
    }
}

/// Files up to this size are read into memory in one blocking call and sent from there; larger
/// ones are streamed from disk. Small files are most of a site, and each trip to the blocking
/// thread pool costs more CPU than reading one of them.
const READ_WHOLE: u64 = 1024 * 1024;

async fn upload(ctx: &SinkContext, file: &LocalFile) -> Result<u64, String> {
    upload_from(ctx, file, 1).await
}

/// Attempts `first..=ATTEMPTS` of an upload checked right after the request.
async fn upload_from(ctx: &SinkContext, file: &LocalFile, first: usize) -> Result<u64, String> {
    let key = ctx.target.key(&file.key);
    let path = source(file)?;
    for attempt in first..=ATTEMPTS {
        let (before, body) = open(path).await?;
        if before.0 >= ctx.multipart_threshold {
            multipart(ctx, &key, file, before.0).await?;
        } else {
            // What was read is what is sent, even if the file changed size meanwhile.
            let (length, body) = match body {
                Some(bytes) => (bytes.len() as u64, ByteStream::from(bytes)),
                None => (
                    before.0,
                    ByteStream::read_from()
                        .path(path)
                        .length(Length::Exact(before.0))
                        .build()
                        .await
                        .map_err(|e| format!("cannot read file: {e}"))?,
                ),
            };
            put(ctx, &key, file, length, body).await?;
        }
        // Checked after the upload, not after the read: `LastModified` is stamped when the request
        // ends, so a change made in between would otherwise look older than the object.
        let after = stat(path).await.map_err(|e| format!("changed during upload: {e}"))?;
        if after == before {
            return Ok(before.0);
        }
        tracing::warn!("{key} changed during upload (attempt {attempt} of {ATTEMPTS})");
    }
    Err(format!("kept changing during upload ({ATTEMPTS} attempts); the object may not match the file"))
}

type Stat = (u64, Option<SystemTime>);

/// One PutObject of `length` bytes.
async fn put(ctx: &SinkContext, key: &str, file: &LocalFile, length: u64, body: ByteStream) -> Result<(), String> {
    let request =
        with_headers!(ctx.client.put_object().bucket(&ctx.target.bucket).key(key).content_length(length as i64), file)
            .body(body);
    match s3client::sending(&ctx.client, length) {
        Some(timeouts) => request.customize().config_override(timeouts).send().await,
        None => request.send().await,
    }
    .map(drop)
    .map_err(|e| describe(&e))
}

type Opened = Result<(Stat, Option<Vec<u8>>), String>;

/// Stats the file and checks it can be read, in one trip to the blocking pool; a small file is
/// read whole on the same trip.
async fn open(path: &Path) -> Opened {
    open_and_check(path, None).await.0
}

/// [`open`], and on the same trip the stat of `check`, a file uploaded before.
async fn open_and_check(path: &Path, check: Option<PathBuf>) -> (Opened, Option<Result<Stat, String>>) {
    let path = path.to_owned();
    let trip = tokio::task::spawn_blocking(move || {
        let checked = check.map(|c| stat_now(&c));
        (open_now(&path), checked)
    });
    match trip.await {
        Ok(done) => done,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

fn open_now(path: &Path) -> Opened {
    let stat = stat_now(path)?;
    // The body is otherwise opened only as it is sent; a file we may not read should say so, not
    // fail deep inside the HTTP client.
    let mut handle = std::fs::File::open(path).map_err(|e| format!("cannot read file: {e}"))?;
    if stat.0 > READ_WHOLE {
        return Ok((stat, None));
    }
    let mut bytes = Vec::with_capacity(stat.0 as usize);
    handle.read_to_end(&mut bytes).map_err(|e| format!("cannot read file: {e}"))?;
    // A file that changed while it was read is sent anyway: the check after the upload sees it.
    Ok((stat, Some(bytes)))
}

async fn stat(path: &Path) -> Result<Stat, String> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || stat_now(&path)).await.map_err(|e| format!("cannot read file: {e}"))?
}

fn stat_now(path: &Path) -> Result<Stat, String> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "vanished after the scan".to_owned(),
        _ => format!("cannot read file: {e}"),
    })?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    Ok((meta.len(), meta.modified().ok()))
}

async fn multipart(ctx: &SinkContext, key: &str, file: &LocalFile, size: u64) -> Result<(), String> {
    let path = source(file)?;
    let created = with_headers!(ctx.client.create_multipart_upload().bucket(&ctx.target.bucket).key(key), file)
        .send()
        .await
        .map_err(|e| describe(&e))?;
    let upload_id = created.upload_id().ok_or("CreateMultipartUpload returned no upload id")?.to_owned();
    let completed = match upload_parts(ctx, key, &upload_id, path, size).await {
        Ok(parts) => complete(ctx, key, &upload_id, parts).await,
        Err(e) => Err(e),
    };
    if completed.is_err() {
        // An upload neither completed nor aborted keeps its parts, unseen and billed.
        let aborted =
            ctx.client.abort_multipart_upload().bucket(&ctx.target.bucket).key(key).upload_id(&upload_id).send().await;
        if let Err(e) = aborted {
            tracing::warn!("{key}: cannot abort multipart upload {upload_id}: {}", describe(&e));
        }
    }
    completed
}

async fn complete(ctx: &SinkContext, key: &str, upload_id: &str, parts: Vec<CompletedPart>) -> Result<(), String> {
    ctx.client
        .complete_multipart_upload()
        .bucket(&ctx.target.bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await
        .map(drop)
        .map_err(|e| describe(&e))
}

async fn upload_parts(
    ctx: &SinkContext,
    key: &str,
    upload_id: &str,
    path: &Path,
    size: u64,
) -> Result<Vec<CompletedPart>, String> {
    // S3 allows at most 10,000 parts: grow the part size for very large files.
    let chunk = ctx.multipart_chunk_size.max(size.div_ceil(10_000));
    let mut parts = Vec::new();
    let mut offset = 0;
    let mut number = 1;
    while offset < size || number == 1 {
        // A part is a request of its own: after a signal, no new one starts.
        if ctx.cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(format!("stopped by a signal after {} of its parts", number - 1));
        }
        let length = chunk.min(size - offset);
        let body = ByteStream::read_from()
            .path(path)
            .offset(offset)
            .length(Length::Exact(length))
            .build()
            .await
            .map_err(|e| format!("cannot read file: {e}"))?;
        let request = ctx
            .client
            .upload_part()
            .bucket(&ctx.target.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .content_length(length as i64)
            .body(body);
        let part = match s3client::sending(&ctx.client, length) {
            Some(timeouts) => request.customize().config_override(timeouts).send().await,
            None => request.send().await,
        }
        .map_err(|e| describe(&e))?;
        parts.push(CompletedPart::builder().set_e_tag(part.e_tag().map(str::to_owned)).part_number(number).build());
        offset += length;
        number += 1;
    }
    Ok(parts)
}
