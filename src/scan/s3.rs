//! Listing the objects under the target prefix with paginated ListObjectsV2.
//!
//! Listings ask for `EncodingType=url`, so keys holding characters XML cannot carry survive the
//! trip, and are decoded here: the SDK does not do it. Decoding treats `+` as a space, as AWS
//! encodes spaces that way while Garage uses `%20`; both encode a literal `+` as `%2B`.

use aws_sdk_s3::types::EncodingType;
use tokio::sync::mpsc;

use crate::model::{RemoteObject, Time};
use crate::s3client::describe;
use crate::target::Target;

#[derive(Debug, thiserror::Error)]
#[error("listing {target} failed: {message}")]
pub struct ListError {
    pub target: String,
    pub message: String,
}

/// Lists every object under the prefix in S3 order, one batch per page, until done or until the
/// receiver is dropped.
pub async fn list(
    client: &aws_sdk_s3::Client,
    target: &Target,
    tx: mpsc::Sender<Vec<RemoteObject>>,
) -> Result<(), ListError> {
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list_objects_v2()
            .bucket(&target.bucket)
            .prefix(&target.prefix)
            .encoding_type(EncodingType::Url)
            .set_continuation_token(token.take())
            .send()
            .await
            .map_err(|e| ListError { target: target.to_string(), message: describe(&e) })?;
        let encoded = page.encoding_type() == Some(&EncodingType::Url);
        let mut batch = Vec::with_capacity(page.contents().len());
        for object in page.contents() {
            let Some(raw) = object.key() else { continue };
            let key = if encoded { decode_key(raw) } else { raw.to_owned() };
            // A key outside the prefix cannot come back from a prefixed listing; never act on one.
            let Some(relative) = key.strip_prefix(target.prefix.as_str()) else { continue };
            if relative.is_empty() {
                continue; // the folder marker of the prefix itself
            }
            batch.push(RemoteObject {
                key: relative.to_owned(),
                size: object.size().unwrap_or(0).max(0) as u64,
                last_modified: object.last_modified().map(to_time).unwrap_or(Time(0)),
            });
        }
        if !batch.is_empty() && tx.send(batch).await.is_err() {
            return Ok(());
        }
        match page.next_continuation_token() {
            Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
            _ => return Ok(()),
        }
    }
}

pub fn to_time(t: &aws_sdk_s3::primitives::DateTime) -> Time {
    Time(t.secs().saturating_mul(Time::NANOS_PER_SEC) + i64::from(t.subsec_nanos()))
}

/// Decodes a key of a listing made with `EncodingType=url`.
pub fn decode_key(encoded: &str) -> String {
    let plus_as_space = encoded.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::decode_key;

    #[test]
    fn decodes_aws_and_garage_forms() {
        // Garage: `a%20b+c é.txt` comes back as below.
        assert_eq!(decode_key("a%2520b%2Bc%20%C3%A9.txt"), "a%20b+c é.txt");
        // AWS encodes spaces as `+`.
        assert_eq!(decode_key("a+b%2Bc"), "a b+c");
    }
}
