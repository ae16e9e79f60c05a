//! Uploading a large file in parts.
//!
//! Parts are `multipart_chunk_size` bytes (grown for very large files: S3 allows at most 10,000
//! parts), each read from disk as it is sent and retried on its own by the SDK. An upload that
//! cannot complete is aborted, whatever stopped it (a part that failed, a refused completion, a
//! signal between two parts): an upload neither completed nor aborted keeps its parts, unseen and
//! billed, until a lifecycle rule reclaims them. A compressed entry's parts are ranges of its
//! compressed bytes, read from their temporary file.

use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use super::SinkContext;
use super::file::{Sending, Source, UploadError, recorded_source, stream};
use super::made::Made;
use crate::error::{Op, StoreError};
use crate::model::{LocalFile, Time};

/// Uploads the `size` bytes of `source` under `file`'s key, sent with `Content-Encoding:
/// encoding` when it is set, made from `read` bytes of the file; says what it made.
pub(super) async fn upload(
    ctx: &SinkContext,
    file: &LocalFile,
    source: Source<'_>,
    (size, encoding): Sending,
    read: u64,
) -> Result<Made, UploadError> {
    let key = ctx.target.key(&file.key);
    // Servers stamp `LastModified` at the start or at the end of a multipart upload.
    let sent = Time::now();
    let url = format!("s3://{}/{key}", ctx.target.bucket);
    let create = crate::with_headers!(
        ctx.client.create_multipart_upload().bucket(&ctx.target.bucket).key(&key),
        file.content_type(&ctx.charset),
        file.meta.as_deref()
    );
    let create = match encoding {
        Some(encoding) => create.content_encoding(encoding.token()),
        None => create,
    };
    let create = match recorded_source(file, read) {
        Some(size) => create.metadata(crate::model::fields::SOURCE_SIZE, size),
        None => create,
    };
    let created = create.send().await.map_err(|e| StoreError::sdk(Op::CreateMultipartUpload, &url, e))?;
    let Some(upload_id) = created.upload_id().map(str::to_owned) else {
        return Err(StoreError::answer(Op::CreateMultipartUpload, &url, "the answer has no upload id").into());
    };
    let completed = match upload_parts(ctx, &key, &upload_id, source, size).await {
        Ok(parts) => complete(ctx, &key, &upload_id, parts).await.map(|etag| Made::between(ctx, sent, etag.as_deref())),
        Err(e) => Err(e),
    };
    if completed.is_err() {
        let aborted =
            ctx.client.abort_multipart_upload().bucket(&ctx.target.bucket).key(&key).upload_id(&upload_id).send().await;
        if let Err(e) = aborted {
            tracing::warn!("{}", StoreError::sdk(Op::AbortMultipartUpload, format!("{url} ({upload_id})"), e));
        }
    }
    completed
}

/// Completes the upload; its answer's ETag.
async fn complete(
    ctx: &SinkContext,
    key: &str,
    upload_id: &str,
    parts: Vec<CompletedPart>,
) -> Result<Option<String>, UploadError> {
    ctx.client
        .complete_multipart_upload()
        .bucket(&ctx.target.bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await
        .map(|done| done.e_tag().map(str::to_owned))
        .map_err(|e| {
            StoreError::sdk(Op::CompleteMultipartUpload, format!("s3://{}/{key}", ctx.target.bucket), e).into()
        })
}

async fn upload_parts(
    ctx: &SinkContext,
    key: &str,
    upload_id: &str,
    source: Source<'_>,
    size: u64,
) -> Result<Vec<CompletedPart>, UploadError> {
    // S3 allows at most 10,000 parts: grow the part size for very large files.
    let chunk = ctx.multipart_chunk_size.max(size.div_ceil(10_000));
    let mut parts = Vec::new();
    let mut offset = 0;
    let mut number = 1;
    while offset < size || number == 1 {
        // A part is a request of its own: after a signal, no new one starts.
        if ctx.cancelled() {
            return Err(UploadError::Stopped(parts.len() as u64));
        }
        let length = chunk.min(size - offset);
        let request = ctx
            .client
            .upload_part()
            .bucket(&ctx.target.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .content_length(length as i64)
            .body(stream(source, offset, length).await?);
        let part = crate::send_sized!(request, &ctx.client, length).map_err(|e| UploadError::Part {
            number,
            error: StoreError::sdk(Op::UploadPart, format!("s3://{}/{key} part {number}", ctx.target.bucket), e),
        })?;
        parts.push(CompletedPart::builder().set_e_tag(part.e_tag().map(str::to_owned)).part_number(number).build());
        offset += length;
        number += 1;
    }
    Ok(parts)
}
