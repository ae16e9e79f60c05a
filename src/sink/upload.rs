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
use crate::error::{Op, StoreError};
use crate::model::LocalFile;

/// Uploads a file and checks it afterwards before returning.
pub(super) async fn run_checked(ctx: &SinkContext, file: &LocalFile, added: bool) {
    match upload_from(ctx, file, 1).await {
        Ok(bytes) => ctx.tracker.uploaded(&file.key, bytes, added),
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
    bytes: u64,
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
    match put(ctx, &file, length, ByteStream::from(bytes)).await {
        Ok(()) => Some(Unchecked { file, added, before, bytes: length }),
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
        Ok(after) if after == sent.before => ctx.tracker.uploaded(&key, sent.bytes, sent.added),
        Ok(_) => {
            tracing::warn!("{} changed during upload (attempt 1 of {ATTEMPTS})", ctx.target.key(&key));
            match upload_from(ctx, &sent.file, 2).await {
                Ok(bytes) => ctx.tracker.uploaded(&key, bytes, sent.added),
                Err(error) => ctx.tracker.failed(key, "upload", error.to_string()),
            }
        }
        Err(e) => ctx.tracker.failed(key, "upload", UploadError::Changed(Box::new(e)).to_string()),
    }
}

/// Attempts `first..=ATTEMPTS` of an upload checked right after the request.
async fn upload_from(ctx: &SinkContext, file: &LocalFile, first: usize) -> Result<u64, UploadError> {
    let path = source(file)?;
    for attempt in first..=ATTEMPTS {
        let (before, body) = open(path).await?;
        if before.0 >= ctx.multipart_threshold {
            super::multipart::upload(ctx, file, path, before.0).await?;
        } else {
            // What was read is what is sent, even if the file changed size meanwhile.
            let (length, body) = match body {
                Some(bytes) => (bytes.len() as u64, ByteStream::from(bytes)),
                None => (before.0, stream(path, 0, before.0).await?),
            };
            put(ctx, file, length, body).await?;
        }
        // Checked after the upload, not after the read: `LastModified` is stamped when the request
        // ends, so a change made in between would otherwise look older than the object.
        let after = stat(path).await.map_err(|e| UploadError::Changed(Box::new(e)))?;
        if after == before {
            return Ok(before.0);
        }
        tracing::warn!("{} changed during upload (attempt {attempt} of {ATTEMPTS})", ctx.target.key(&file.key));
    }
    Err(UploadError::KeptChanging)
}

/// One PutObject of `length` bytes.
async fn put(ctx: &SinkContext, file: &LocalFile, length: u64, body: ByteStream) -> Result<(), UploadError> {
    let key = ctx.target.key(&file.key);
    let request = crate::with_headers!(
        ctx.client.put_object().bucket(&ctx.target.bucket).key(&key).content_length(length as i64),
        file.content_type(),
        file.meta.as_deref()
    )
    .body(body);
    crate::send_sized!(request, &ctx.client, length)
        .map(drop)
        .map_err(|e| StoreError::sdk(Op::Put, format!("s3://{}/{key}", ctx.target.bucket), e).into())
}
