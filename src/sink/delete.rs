//! Deleting objects with DeleteObjects, up to 1,000 keys a request.
//!
//! A DeleteObjects call answers 200 even when some keys failed; the per-key errors in the body are
//! read and reported one by one. Its request is XML, which cannot carry most control characters
//! (XML 1.0 allows only tab, LF and CR below U+0020, even as `&#x1;`): one such key would fail the
//! whole batch, so those keys are deleted one by one with DeleteObject, whose key is in the URL.

use aws_sdk_s3::types::{Delete, ObjectIdentifier};

use super::{FailedOp, SinkContext};
use crate::error::{Op, StoreError};
use crate::keys::target::xml_can_carry;

pub(super) async fn run(ctx: &SinkContext, keys: Vec<String>) {
    let (batch, alone): (Vec<String>, Vec<String>) = keys.into_iter().partition(|k| xml_can_carry(k));
    for key in alone {
        delete_one(ctx, key).await;
    }
    if !batch.is_empty() {
        delete_batch(ctx, batch).await;
    }
}

fn relative(ctx: &SinkContext, key: &str) -> String {
    key.strip_prefix(ctx.target.prefix.as_str()).unwrap_or(key).to_owned()
}

async fn delete_one(ctx: &SinkContext, key: String) {
    match ctx.client.delete_object().bucket(&ctx.target.bucket).key(&key).send().await {
        Ok(_) => {
            tracing::debug!("deleted {}", crate::keys::names::printable(&key));
            ctx.tracker.deleted([relative(ctx, &key).as_str()]);
        }
        Err(e) => {
            let error = StoreError::sdk(Op::Delete, format!("s3://{}/{key}", ctx.target.bucket), e);
            ctx.tracker.failed(relative(ctx, &key), FailedOp::Delete, error.message);
        }
    }
}

async fn delete_batch(ctx: &SinkContext, keys: Vec<String>) {
    let objects: Result<Vec<_>, _> = keys.iter().map(|k| ObjectIdentifier::builder().key(k).build()).collect();
    let delete = objects.and_then(|objects| Delete::builder().set_objects(Some(objects)).quiet(true).build());
    let delete = match delete {
        Ok(delete) => delete,
        Err(e) => {
            for key in &keys {
                ctx.tracker.failed(relative(ctx, key), FailedOp::Delete, e.to_string());
            }
            return;
        }
    };
    match ctx.client.delete_objects().bucket(&ctx.target.bucket).delete(delete).send().await {
        Ok(out) => {
            let mut failed = std::collections::HashSet::new();
            for error in out.errors() {
                let key = error.key().unwrap_or("?");
                let message = format!("{}: {}", error.code().unwrap_or("UnknownError"), error.message().unwrap_or(""));
                ctx.tracker.failed(relative(ctx, key), FailedOp::Delete, message);
                failed.insert(key);
            }
            let deleted: Vec<String> =
                keys.iter().filter(|k| !failed.contains(k.as_str())).map(|k| relative(ctx, k)).collect();
            for key in &deleted {
                tracing::debug!("deleted {}", crate::keys::names::printable(key));
            }
            ctx.tracker.deleted(deleted.iter().map(String::as_str));
        }
        Err(e) => {
            let error = StoreError::sdk(
                Op::Delete,
                format!("{} keys of s3://{}/{}", keys.len(), ctx.target.bucket, ctx.target.prefix),
                e,
            );
            for key in &keys {
                ctx.tracker.failed(relative(ctx, key), FailedOp::Delete, error.message.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_with_control_characters_are_not_sent_in_xml() {
        assert!(crate::keys::target::xml_can_carry("tab\there/new\nline\r.txt"));
        assert!(crate::keys::target::xml_can_carry("café 日本 <&>.html"));
        assert!(!crate::keys::target::xml_can_carry("bell\u{7}.txt"));
        assert!(!crate::keys::target::xml_can_carry("esc\u{1b}/x"));
    }
}
