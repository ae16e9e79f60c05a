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

use std::path::Path;

use aws_sdk_s3::primitives::ByteStream;

use super::SinkContext;
use super::file::{ATTEMPTS, Stat, UploadError, open, open_and_check, source, stat, stream};
use super::made::Made;
use crate::content::md5_of;
use crate::error::{Op, StoreError};
use crate::model::{Known, LocalFile, Time};

/// Uploads a file and checks it afterwards before returning.
pub(super) async fn run_checked(ctx: &SinkContext, file: &LocalFile, added: bool) {
    match upload_from(ctx, file, 1).await {
        Ok(known) => ctx.tracker.uploaded(&file.key, added, known),
        Err(error) => ctx.tracker.failed(file.key.clone(), "upload", error.to_string()),
    }
}

/// A small file sent whose check after the upload is still to be done.
///
/// Each worker keeps at most one, and checks it on its next trip to the blocking pool, the one
/// that reads the next file: a small file then costs one trip instead of two.
pub(super) struct Unchecked {
    file: LocalFile,
    added: bool,
    before: Stat,
    /// What the upload made, as the state will know it once the check passes.
    known: Known,
}

/// Uploads `file`, and settles the worker's `previous` upload on the same trip to the blocking
/// pool. Returns the upload to check on the next trip; large files are checked at once.
pub(super) async fn run(
    ctx: &SinkContext,
    file: LocalFile,
    added: bool,
    previous: Option<Unchecked>,
) -> Option<Unchecked> {
    let path = match source(&file) {
        Ok(path) => path,
        Err(error) => {
            finish(ctx, previous).await;
            ctx.tracker.failed(file.key.clone(), "upload", error.to_string());
            return None;
        }
    };
    let check = previous.as_ref().and_then(|p| p.file.path()).map(Path::to_owned);
    let (opened, checked) = open_and_check(path, check).await;
    if let (Some(previous), Some(after)) = (previous, checked) {
        settle(ctx, previous, after).await;
    }
    let (before, bytes) = match opened {
        Ok((before, Some(bytes))) if before.0 < ctx.multipart_threshold => (before, bytes),
        Ok(_) => {
            run_checked(ctx, &file, added).await;
            return None;
        }
        Err(error) => {
            ctx.tracker.failed(file.key.clone(), "upload", error.to_string());
            return None;
        }
    };
    let length = bytes.len() as u64;
    let md5 = ctx.learn.then(|| md5_of(&bytes));
    match put(ctx, &file, length, ByteStream::from(bytes)).await {
        Ok(made) => Some(Unchecked { known: made.known(length, mtime_of(before), md5), file, added, before }),
        Err(error) => {
            ctx.tracker.failed(file.key.clone(), "upload", error.to_string());
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
async fn settle(ctx: &SinkContext, sent: Unchecked, after: Result<Stat, UploadError>) {
    let key = sent.file.key.clone();
    match after {
        Ok(after) if after == sent.before => ctx.tracker.uploaded(&key, sent.added, sent.known),
        Ok(_) => {
            tracing::warn!("{} changed during upload (attempt 1 of {ATTEMPTS})", ctx.target.key(&key));
            match upload_from(ctx, &sent.file, 2).await {
                Ok(known) => ctx.tracker.uploaded(&key, sent.added, known),
                Err(error) => ctx.tracker.failed(key, "upload", error.to_string()),
            }
        }
        Err(e) => ctx.tracker.failed(key, "upload", UploadError::Changed(Box::new(e)).to_string()),
    }
}

/// Attempts `first..=ATTEMPTS` of an upload checked right after the request; says what it made.
async fn upload_from(ctx: &SinkContext, file: &LocalFile, first: usize) -> Result<Known, UploadError> {
    let path = source(file)?;
    for attempt in first..=ATTEMPTS {
        let (before, body) = open(path).await?;
        let known = if before.0 >= ctx.multipart_threshold {
            super::multipart::upload(ctx, file, path, before.0).await?.known(before.0, mtime_of(before), None)
        } else {
            // What was read is what is sent, even if the file changed size meanwhile.
            let md5 = body.as_deref().filter(|_| ctx.learn).map(md5_of);
            let (length, body) = match body {
                Some(bytes) => (bytes.len() as u64, ByteStream::from(bytes)),
                None => (before.0, stream(path, 0, before.0).await?),
            };
            put(ctx, file, length, body).await?.known(length, mtime_of(before), md5)
        };
        // Checked after the upload, not after the read: `LastModified` is stamped when the request
        // ends, so a change made in between would otherwise look older than the object.
        let after = stat(path).await.map_err(|e| UploadError::Changed(Box::new(e)))?;
        if after == before {
            return Ok(known);
        }
        tracing::warn!("{} changed during upload (attempt {attempt} of {ATTEMPTS})", ctx.target.key(&file.key));
    }
    Err(UploadError::KeptChanging)
}

/// One PutObject of `length` bytes.
async fn put(ctx: &SinkContext, file: &LocalFile, length: u64, body: ByteStream) -> Result<Made, UploadError> {
    let key = ctx.target.key(&file.key);
    let request = crate::with_headers!(
        ctx.client.put_object().bucket(&ctx.target.bucket).key(&key).content_length(length as i64),
        file.content_type(&ctx.charset),
        file.meta.as_deref()
    )
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
