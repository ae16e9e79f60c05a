//! The chain marker: an object under the prefix recording the transform chain configuration the
//! objects were last published with.
//!
//! LIST returns no headers, so a run cannot see that an object's Cache-Control is stale. Instead
//! the run reads the marker first; when it differs from the current chain's fingerprint, every key
//! the diff finds unchanged is re-published (copied onto itself with the new headers), and the
//! marker is rewritten once everything succeeded. The marker key is hidden from the diff, so it is
//! never deleted. An absent marker stands for the empty chain: runs without transforms never
//! write one.

use aws_sdk_s3::primitives::ByteStream;

use crate::s3client::describe;
use crate::target::Target;
use crate::transform::MARKER_KEY;

/// The recorded fingerprint; empty when there is no marker.
pub async fn read(client: &aws_sdk_s3::Client, target: &Target) -> Result<String, String> {
    let key = target.key(MARKER_KEY);
    match client.get_object().bucket(&target.bucket).key(&key).send().await {
        Ok(out) => {
            let bytes = out.body.collect().await.map_err(|e| format!("reading {key}: {e}"))?.into_bytes();
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        }
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(String::new()),
        Err(e) => Err(format!("reading the chain marker {key}: {}", describe(&e))),
    }
}

pub async fn write(client: &aws_sdk_s3::Client, target: &Target, fingerprint: &str) -> Result<(), String> {
    client
        .put_object()
        .bucket(&target.bucket)
        .key(target.key(MARKER_KEY))
        .content_type("application/json")
        .body(ByteStream::from(fingerprint.as_bytes().to_vec()))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| describe(&e))
}
