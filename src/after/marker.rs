//! The chain marker: an object under the prefix recording the transform chain configuration the
//! objects were last published with.
//!
//! LIST returns no headers, so a run cannot see that an object's Cache-Control is stale. Instead
//! the run reads the marker first ([`read`]); when it differs from the current chain's
//! fingerprint, every key the diff finds unchanged is re-published (copied onto itself with the
//! new headers), and the marker is rewritten by [`WriteMarker`], after the run, only if the run
//! was clean: a key that could not be published this time keeps its old headers, so the next run
//! must re-publish again. The reserved folder is hidden from the diff, so the marker is never
//! deleted. An absent marker stands for the empty chain: runs without transforms never write one.

use aws_sdk_s3::primitives::ByteStream;

use super::{AfterError, AfterRun, Outcome, Said};
use crate::error::{Op, StoreError};
use crate::keys::shard::Shard;
use crate::keys::target::Target;
use crate::transform::MARKER_KEY;

/// The marker's key (relative to the prefix): one per shard of a split run, since each shard
/// re-publishes only its own keys and may fail while the others succeed.
pub fn key(shard: Option<&Shard>) -> String {
    crate::history::per_shard(MARKER_KEY, shard)
}

/// The recorded fingerprint under `marker` (see [`key`]); empty when there is no marker.
pub async fn read(client: &aws_sdk_s3::Client, target: &Target, marker: &str) -> Result<String, StoreError> {
    let key = target.key(marker);
    let url = format!("s3://{}/{key}", target.bucket);
    match client.get_object().bucket(&target.bucket).key(&key).send().await {
        Ok(out) => {
            let bytes = out.body.collect().await.map_err(|e| StoreError::answer(Op::Get, &url, e.to_string()))?;
            Ok(String::from_utf8_lossy(&bytes.into_bytes()).into_owned())
        }
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(String::new()),
        Err(e) => Err(StoreError::sdk(Op::Get, url, e)),
    }
}

/// Records the chain's fingerprint under the prefix after a clean run.
pub struct WriteMarker {
    pub client: aws_sdk_s3::Client,
    pub target: Target,
    /// The marker's key, relative to the prefix.
    pub marker: String,
    pub fingerprint: String,
}

#[async_trait::async_trait]
impl AfterRun for WriteMarker {
    async fn run(self: Box<Self>, outcome: &Outcome<'_>) -> Result<Said, AfterError> {
        if outcome.dry_run || !outcome.clean {
            return Ok(Said::default());
        }
        let key = self.target.key(&self.marker);
        let put = self
            .client
            .put_object()
            .bucket(&self.target.bucket)
            .key(&key)
            .content_type("application/json")
            .body(ByteStream::from(self.fingerprint.into_bytes()))
            .send()
            .await;
        put.map(|_| Said::default()).map_err(|e| AfterError::Marker {
            key: self.marker.clone(),
            source: StoreError::sdk(Op::Put, format!("s3://{}/{key}", self.target.bucket), e),
        })
    }
}
