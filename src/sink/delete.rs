//! Deleting objects with DeleteObjects, up to 1,000 keys a request.
//!
//! A DeleteObjects call answers 200 even when some keys failed; the per-key errors in the body are
//! read and reported one by one.

use aws_sdk_s3::types::{Delete, ObjectIdentifier};

use super::SinkContext;
use crate::s3client::describe;

pub(super) async fn run(ctx: &SinkContext, keys: Vec<String>) {
    let relative = |key: &str| key.strip_prefix(ctx.target.prefix.as_str()).unwrap_or(key).to_owned();
    let objects: Result<Vec<_>, _> = keys.iter().map(|k| ObjectIdentifier::builder().key(k).build()).collect();
    let delete = objects.and_then(|objects| Delete::builder().set_objects(Some(objects)).quiet(true).build());
    let delete = match delete {
        Ok(delete) => delete,
        Err(e) => {
            for key in &keys {
                ctx.tracker.failed(relative(key), "delete", e.to_string());
            }
            return;
        }
    };
    match ctx.client.delete_objects().bucket(&ctx.target.bucket).delete(delete).send().await {
        Ok(out) => {
            let errors = out.errors();
            for error in errors {
                let key = error.key().unwrap_or("?");
                let message = format!("{}: {}", error.code().unwrap_or("UnknownError"), error.message().unwrap_or(""));
                ctx.tracker.failed(relative(key), "delete", message);
            }
            ctx.tracker.deleted((keys.len() - errors.len().min(keys.len())) as u64);
            for key in &keys {
                tracing::debug!("deleted {key}");
            }
        }
        Err(e) => {
            let message = describe(&e);
            for key in &keys {
                ctx.tracker.failed(relative(key), "delete", message.clone());
            }
        }
    }
}
