//! Uploading one file: a single PutObject, or a multipart upload above the threshold.
//!
//! The file is stat'ed before and after the upload. If its size or mtime moved meanwhile, what
//! reached S3 may be a mix of old and new content, and `LastModified` may already be later than the
//! new mtime, so the next run would not notice: the file is sent again, and reported as failed if
//! it keeps changing.
//!
//! A site is mostly small files, and for those the trips to the blocking thread pool cost more CPU
//! than the reading: a worker stats, opens and reads a batch of small files in one trip and sends
//! them from memory, and their checks after the upload ride on the same worker's next trip (see
//! [`Unchecked`]). Only then is each counted as uploaded. A compressed entry is compressed on that
//! same trip (a large one into a temporary file, see `packed`), at most one a core at a time; what
//! is sent, and what decides a multipart upload, is then the compressed bytes, while the local
//! state records the source file's size and mtime with their MD5, and the object the source's size
//! (see `file::recorded_source`).
//!
//! An inline body (bytes a transform made, such as a generated index page) is sent from memory in
//! one PutObject, with no stat: there is no file to change under it.

use std::path::Path;

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

use super::file::{
    ATTEMPTS, Content, Opened, Sending, Source, Stat, UploadError, open, open_and_check, recorded_source, source, stat,
    stat_all, stream,
};
use super::made::Made;
use super::{FailedOp, SinkContext};
use crate::content::md5_of;
use crate::error::{Op, StoreError};
use crate::model::{Encoding, Known, LocalFile, Time, fields};
use crate::s3client::direct::DIRECT_BELOW;

/// What an upload made, and how many bytes it sent.
pub(super) struct Sent {
    known: Known,
    bytes: u64,
}

/// Uploads a file and checks it afterwards before returning.
pub(super) async fn run_checked(ctx: &SinkContext, file: &LocalFile, added: bool) {
    let sent = match file.inline_bytes() {
        Some(bytes) => send_inline(ctx, file, bytes).await,
        None => upload_from(ctx, file, 1, None).await,
    };
    record(ctx, file, added, sent);
}

fn record(ctx: &SinkContext, file: &LocalFile, added: bool, sent: Result<Sent, UploadError>) {
    match sent {
        Ok(Sent { known, bytes }) => ctx.tracker.uploaded(&file.key, added, known, bytes),
        Err(error) => ctx.tracker.failed(file.key.clone(), FailedOp::Upload, error.to_string()),
    }
}

/// A small file sent whose check after the upload is still to be done.
///
/// A worker keeps those of its last batch, and checks them on its next trip to the blocking pool,
/// the one that reads its next batch: a small file then costs a share of one trip instead of two.
pub(super) struct Unchecked {
    file: LocalFile,
    added: bool,
    before: Stat,
    /// What the upload made, as the state will know it once the check passes.
    sent: Sent,
}

/// Files a worker reads on one trip to the blocking pool, at most.
pub(super) const BATCH_FILES: usize = 8;

/// The bytes of a batch, by the sizes the scan saw: what a worker holds read ahead of its
/// requests stays what one file read whole may be.
pub(super) const BATCH_BYTES: u64 = super::file::READ_WHOLE;

/// Whether `file` may share a trip to the blocking pool with others: a plain file small enough
/// that several fit in a batch. A compressed entry waits for a compression slot on its own trip.
pub(super) fn batchable(file: &LocalFile) -> bool {
    file.path().is_some() && file.encoding().is_none() && file.size <= BATCH_BYTES / 4
}

/// Uploads `files`, reading every one on a single trip to the blocking pool that also settles the
/// worker's `previous` uploads (several files when they are [`batchable`], else one). Returns the
/// uploads to check on the next trip; large files are checked at once. Once the run is stopping,
/// files read but not yet sent are dropped as queued jobs are.
pub(super) async fn run(ctx: &SinkContext, files: Vec<(LocalFile, bool)>, previous: Vec<Unchecked>) -> Vec<Unchecked> {
    let (mut reading, mut opens) = (Vec::with_capacity(files.len()), Vec::with_capacity(files.len()));
    for (file, added) in files {
        if file.inline_bytes().is_some() {
            // Nothing to read: the worker's last uploads are checked on its next trip to the pool.
            run_checked(ctx, &file, added).await;
            continue;
        }
        match source(&file) {
            Ok(path) => opens.push((path.to_owned(), file.encoding())),
            Err(error) => {
                ctx.tracker.failed(file.key.clone(), FailedOp::Upload, error.to_string());
                continue;
            }
        }
        reading.push((file, added));
    }
    if reading.is_empty() {
        return previous;
    }
    let checks = previous.iter().map(|p| p.file.path().map(Path::to_owned)).collect();
    let (opened, checked) = {
        let _slot = compressing(ctx, opens.iter().find_map(|(_, encoding)| *encoding)).await;
        open_and_check(opens, checks).await
    };
    for (previous, after) in previous.into_iter().zip(checked) {
        settle(ctx, previous, after).await;
    }
    let mut unchecked = Vec::with_capacity(reading.len());
    for ((file, added), opened) in reading.into_iter().zip(opened) {
        if ctx.cancelled() {
            break;
        }
        unchecked.extend(send_opened(ctx, file, added, opened).await);
    }
    unchecked
}

/// Sends a file from what its trip to the blocking pool prepared: a small one is left to check on
/// the worker's next trip, a large one is checked at once.
async fn send_opened(ctx: &SinkContext, file: LocalFile, added: bool, opened: Opened) -> Option<Unchecked> {
    let (before, content) = match opened {
        Ok(opened) => opened,
        Err(error) => {
            ctx.tracker.failed(file.key.clone(), FailedOp::Upload, error.to_string());
            return None;
        }
    };
    if !matches!(content, Content::Whole { .. }) {
        let sent = upload_from(ctx, &file, 1, Some((before, content))).await;
        record(ctx, &file, added, sent);
        return None;
    }
    let sent = match source(&file) {
        Ok(path) => send(ctx, &file, path, before, content).await,
        Err(error) => Err(error),
    };
    match sent {
        Ok(sent) => Some(Unchecked { file, added, before, sent }),
        Err(error) => {
            ctx.tracker.failed(file.key.clone(), FailedOp::Upload, error.to_string());
            None
        }
    }
}

/// A compressed entry waits for one of the run's compression slots (one a core): compressing is
/// CPU and memory, and more at once than cores only holds more encoders.
async fn compressing(ctx: &SinkContext, encoding: Option<Encoding>) -> Option<tokio::sync::SemaphorePermit<'_>> {
    encoding?;
    ctx.compressing.acquire().await.ok()
}

/// Checks the worker's last uploads, when it has no next file to read, in one trip.
pub(super) async fn finish(ctx: &SinkContext, last: Vec<Unchecked>) {
    if last.is_empty() {
        return;
    }
    let after = stat_all(last.iter().map(|l| l.file.path().map(Path::to_owned)).collect()).await;
    for (last, after) in last.into_iter().zip(after) {
        settle(ctx, last, after).await;
    }
}

/// Counts an upload whose file did not move during it, and sends again one whose file did.
async fn settle(ctx: &SinkContext, sent: Unchecked, after: Result<Stat, UploadError>) {
    match after {
        Ok(after) if after == sent.before => record(ctx, &sent.file, sent.added, Ok(sent.sent)),
        Ok(_) => {
            tracing::warn!("{} changed during upload (attempt 1 of {ATTEMPTS})", ctx.target.key(&sent.file.key));
            let again = upload_from(ctx, &sent.file, 2, None).await;
            record(ctx, &sent.file, sent.added, again);
        }
        Err(e) => record(ctx, &sent.file, sent.added, Err(UploadError::Changed(Box::new(e)))),
    }
}

/// Attempts `first..=ATTEMPTS` of an upload checked right after the request, the first from what
/// was `prepared` when given; says what it made.
async fn upload_from(
    ctx: &SinkContext,
    file: &LocalFile,
    first: usize,
    mut prepared: Option<(Stat, Content)>,
) -> Result<Sent, UploadError> {
    let path = source(file)?;
    for attempt in first..=ATTEMPTS {
        let (before, content) = match prepared.take() {
            Some(prepared) => prepared,
            None => {
                let _slot = compressing(ctx, file.encoding()).await;
                open(path, file.encoding()).await?
            }
        };
        let sent = send(ctx, file, path, before, content).await?;
        // Checked after the upload, not after the read: `LastModified` is stamped when the request
        // ends, so a change made in between would otherwise look older than the object.
        let after = stat(path).await.map_err(|e| UploadError::Changed(Box::new(e)))?;
        if after == before {
            return Ok(sent);
        }
        tracing::warn!("{} changed during upload (attempt {attempt} of {ATTEMPTS})", ctx.target.key(&file.key));
    }
    Err(UploadError::KeptChanging)
}

/// Sends an inline body (bytes a transform made) from memory, in one PutObject whatever its size:
/// nothing can change under it, so nothing is stat'ed before or after.
async fn send_inline(ctx: &SinkContext, file: &LocalFile, bytes: &[u8]) -> Result<Sent, UploadError> {
    let length = bytes.len() as u64;
    let md5 = ctx.learn.then(|| md5_of(bytes));
    let made = put_bytes(ctx, file, (length, None), length, Bytes::copy_from_slice(bytes)).await?;
    Ok(Sent { known: made.known(length, file.mtime, md5), bytes: length })
}

/// Sends what was prepared: one PutObject, or a multipart upload of what reaches the threshold.
async fn send(
    ctx: &SinkContext,
    file: &LocalFile,
    path: &Path,
    before: Stat,
    content: Content,
) -> Result<Sent, UploadError> {
    let (size, mtime) = (before.0, mtime_of(before));
    let (made, bytes, md5) = match content {
        // What was read is what is sent, even if the file changed size meanwhile. A whole read is
        // at most `READ_WHOLE`, below any multipart threshold S3 allows.
        Content::Whole { bytes, encoding } => {
            let length = bytes.len() as u64;
            let md5 = ctx.learn.then(|| md5_of(&bytes));
            let made = put_bytes(ctx, file, (length, encoding), size, Bytes::from(bytes)).await?;
            // The state knows a compressed entry by its source's size.
            let known = made.known(if encoding.is_some() { size } else { length }, mtime, md5);
            return Ok(Sent { known, bytes: length });
        }
        Content::Stream if size >= ctx.multipart_threshold => {
            (super::multipart::upload(ctx, file, Source::Path(path), (size, None), size).await?, size, None)
        }
        Content::Stream => {
            (put(ctx, file, (size, None), size, stream(Source::Path(path), 0, size).await?).await?, size, None)
        }
        Content::Spooled(spool) => {
            let (from, encoding) = (Source::Spool(&spool.file), Some(spool.encoding));
            let made = if spool.len >= ctx.multipart_threshold {
                super::multipart::upload(ctx, file, from, (spool.len, encoding), size).await?
            } else {
                put(ctx, file, (spool.len, encoding), size, stream(from, 0, spool.len).await?).await?
            };
            (made, spool.len, Some(spool.md5))
        }
    };
    Ok(Sent { known: made.known(size, mtime, md5), bytes })
}

/// [`put`] of bytes held in memory: sent directly (`s3client::direct`) when they are small and the
/// client can, through the SDK otherwise.
async fn put_bytes(
    ctx: &SinkContext,
    file: &LocalFile,
    (length, encoding): Sending,
    source: u64,
    bytes: Bytes,
) -> Result<Made, UploadError> {
    if let Some(direct) = ctx.direct.as_ref().filter(|_| length < DIRECT_BELOW) {
        let key = ctx.target.key(&file.key);
        let mut headers = fields::header_list(&file.content_type(&ctx.charset), file.meta.as_deref());
        if let Some(encoding) = encoding {
            fields::set_header(&mut headers, "Content-Encoding".into(), encoding.token().to_owned());
        }
        if let Some(size) = recorded_source(file, source) {
            fields::set_header(&mut headers, format!("x-amz-meta-{}", fields::SOURCE_SIZE).into(), size);
        }
        let sent = Time::now();
        if let Some(put) = direct.put(&ctx.target.bucket, &key, headers, bytes.clone()).await {
            return Ok(Made::between(ctx, sent, put?.as_deref()));
        }
    }
    put(ctx, file, (length, encoding), source, ByteStream::from(bytes)).await
}

/// One PutObject of `length` bytes, compressed with `encoding` when it is set, made from `source`
/// bytes of the file.
async fn put(
    ctx: &SinkContext,
    file: &LocalFile,
    (length, encoding): Sending,
    source: u64,
    body: ByteStream,
) -> Result<Made, UploadError> {
    let key = ctx.target.key(&file.key);
    let request = crate::with_headers!(
        ctx.client.put_object().bucket(&ctx.target.bucket).key(&key).content_length(length as i64),
        file.content_type(&ctx.charset),
        file.meta.as_deref()
    );
    // Set after the chain's headers: the bytes say how they are encoded, and what they were.
    let request = match encoding {
        Some(encoding) => request.content_encoding(encoding.token()),
        None => request,
    };
    let request = match recorded_source(file, source) {
        Some(size) => request.metadata(crate::model::fields::SOURCE_SIZE, size),
        None => request,
    }
    .body(body);
    let sent = Time::now();
    let put = crate::send_sized!(request, &ctx.client, length)
        .map_err(|e| StoreError::sdk(Op::Put, format!("s3://{}/{key}", ctx.target.bucket), e))?;
    Ok(Made::between(ctx, sent, put.e_tag()))
}

/// The mtime a stat saw.
fn mtime_of(stat: Stat) -> Time {
    stat.1.map_or(Time(0), Time::from_system)
}
