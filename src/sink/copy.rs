//! Server-side copies: the other keys of a file uploaded once, and objects re-published in place
//! when the chain's configuration changed.
//!
//! CopyObject is sent with `MetadataDirective=REPLACE` and every header of the entry, Content-Type
//! included: with REPLACE, S3 keeps none of the source's. It runs after every upload, so a copy
//! whose source failed to upload is reported failed instead of copying a stale object. Above
//! 5 GB, where one CopyObject cannot go, the file is uploaded instead.

use aws_sdk_s3::types::MetadataDirective;
use percent_encoding::utf8_percent_encode;

use super::made::Made;
use super::{FailedOp, SinkContext};
use crate::error::{Op, StoreError};
use crate::keys::target::KEY_SAFE;
use crate::model::{LocalFile, Time};
use crate::remote::to_time;

/// The largest object one CopyObject can copy.
const MAX_COPY: u64 = 5 * 1000 * 1000 * 1000;

/// Copies `source` (relative to the prefix) to `file.key` with `file`'s headers.
pub(super) async fn run(ctx: &SinkContext, file: &LocalFile, source: &str, added: bool) {
    if file.size > MAX_COPY {
        return super::upload::run_checked(ctx, file, added).await;
    }
    let key = ctx.target.key(&file.key);
    let from = format!("{}/{}", ctx.target.bucket, ctx.target.key(source));
    let request = crate::with_headers!(
        ctx.client
            .copy_object()
            .bucket(&ctx.target.bucket)
            .key(&key)
            .copy_source(utf8_percent_encode(&from, KEY_SAFE).to_string())
            .metadata_directive(MetadataDirective::Replace),
        file.content_type(&ctx.charset),
        file.meta.as_deref()
    );
    // A large copy takes the server a while: its attempt timeout grows with the size, as an upload's.
    let sent = Time::now();
    match crate::send_sized!(request, &ctx.client, file.size) {
        Ok(copied) => {
            tracing::debug!("copied {key} from {from}");
            let result = copied.copy_object_result();
            let mut made = Made::between(ctx, sent, result.and_then(|r| r.e_tag()));
            if let Some(lm) = result.and_then(|r| r.last_modified()) {
                made.exactly(to_time(lm));
            }
            ctx.tracker.copied(&file.key, added, made.known(file.size, file.mtime, None));
        }
        Err(e) => {
            let error = StoreError::sdk(Op::Copy, format!("s3://{from}"), e);
            ctx.tracker.failed(file.key.clone(), FailedOp::Copy, format!("from {source}: {}", error.message));
        }
    }
}
