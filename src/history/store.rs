//! Reading the history from the bucket: which deploys are recorded, which kept folders exist, a
//! record's header, and a whole record or object downloaded to a temporary file.
//!
//! A listing of `deploys/` is one page for up to a thousand records, and `kept/` is listed with a
//! delimiter, so only its folders come back, never the objects in them: reading the history costs
//! requests in proportion to the deploys kept, not to the site. A record's header is its first
//! line, read with a ranged GET, so listing the deploys never downloads what they changed. A whole
//! record goes to an unlinked temporary file and is read from there line by line: a deploy that
//! changed a million keys is never held in memory.

use std::fs::File;
use std::io::{self, Seek};

use aws_sdk_s3::types::EncodingType;
use tokio::io::AsyncWriteExt;

use super::record::Header;
use super::{DEPLOYS, DeployId, HistoryError, KEPT, StoreError};
use crate::keys::target::{Target, xml_can_carry};
use crate::s3client::Op;

/// The first bytes of a record fetched to read its header; a header is far shorter.
const HEADER_BYTES: u64 = 64 * 1024;

/// Every id recorded under `deploys/`, oldest first; names that are not ids are skipped.
pub async fn records(client: &aws_sdk_s3::Client, target: &Target) -> Result<Vec<DeployId>, StoreError> {
    let (keys, _) = list(client, target, DEPLOYS, false).await?;
    let mut ids: Vec<DeployId> = keys.iter().filter_map(|name| DeployId::parse(name)).collect();
    ids.sort();
    Ok(ids)
}

/// Every folder under `kept/`, as deploy ids, oldest first.
pub async fn kept_folders(client: &aws_sdk_s3::Client, target: &Target) -> Result<Vec<DeployId>, StoreError> {
    let (_, folders) = list(client, target, KEPT, true).await?;
    let mut ids: Vec<DeployId> = folders.iter().filter_map(|f| DeployId::parse(f.trim_end_matches('/'))).collect();
    ids.sort();
    Ok(ids)
}

/// Every key under the folder `rel` (relative to the prefix), as names relative to that folder.
pub async fn keys_under(client: &aws_sdk_s3::Client, target: &Target, rel: &str) -> Result<Vec<String>, StoreError> {
    Ok(list(client, target, rel, false).await?.0)
}

/// The names under `rel` (relative to it): the keys, and with `folders` the folders a delimiter
/// groups (then the keys are only those directly in `rel`).
async fn list(
    client: &aws_sdk_s3::Client,
    target: &Target,
    rel: &str,
    folders: bool,
) -> Result<(Vec<String>, Vec<String>), StoreError> {
    let prefix = target.key(rel);
    let (mut keys, mut groups, mut token) = (Vec::new(), Vec::new(), None);
    loop {
        let page = client
            .list_objects_v2()
            .bucket(&target.bucket)
            .prefix(&prefix)
            .set_delimiter(folders.then(|| "/".to_owned()))
            .encoding_type(EncodingType::Url)
            .set_continuation_token(token.take())
            .send()
            .await
            .map_err(|e| StoreError::sdk(Op::List, format!("s3://{}/{prefix}", target.bucket), e))?;
        let encoded = page.encoding_type() == Some(&EncodingType::Url);
        let name = |raw: &str| {
            let key = if encoded { crate::keys::target::decode_key(raw) } else { raw.to_owned() };
            key.strip_prefix(&prefix).map(str::to_owned)
        };
        keys.extend(page.contents().iter().filter_map(|o| name(o.key()?)));
        groups.extend(page.common_prefixes().iter().filter_map(|p| name(p.prefix()?)));
        match page.next_continuation_token() {
            Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
            _ => return Ok((keys, groups)),
        }
    }
}

/// The header of record `id`.
pub async fn header(client: &aws_sdk_s3::Client, target: &Target, id: &DeployId) -> Result<Header, HistoryError> {
    let rel = format!("{DEPLOYS}{id}");
    let key = target.key(&rel);
    let url = format!("s3://{}/{key}", target.bucket);
    let got = client.get_object().bucket(&target.bucket).key(&key).range(format!("bytes=0-{}", HEADER_BYTES - 1));
    let got = got.send().await.map_err(|e| StoreError::sdk(Op::Get, &url, e))?;
    let bytes = got.body.collect().await.map_err(|e| StoreError::answer(Op::Get, &url, e.to_string()))?.into_bytes();
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    serde_json::from_slice(line).map_err(|e| HistoryError::Record { key: rel, why: e.to_string() })
}

/// The object `rel` (relative to the prefix) in an unlinked temporary file, rewound.
pub async fn download(client: &aws_sdk_s3::Client, target: &Target, rel: &str) -> Result<File, HistoryError> {
    let key = target.key(rel);
    let url = format!("s3://{}/{key}", target.bucket);
    let mut got = client
        .get_object()
        .bucket(&target.bucket)
        .key(&key)
        .send()
        .await
        .map_err(|e| StoreError::sdk(Op::Get, &url, e))?;
    let file =
        tokio::task::spawn_blocking(|| crate::disk::anonymous_file("record")).await.map_err(io::Error::other)??;
    let mut out = tokio::fs::File::from_std(file);
    while let Some(chunk) = got.body.try_next().await.map_err(|e| StoreError::answer(Op::Get, &url, e.to_string()))? {
        out.write_all(&chunk).await?;
    }
    out.flush().await?;
    let mut file = out.into_std().await;
    file.rewind()?;
    Ok(file)
}

/// Uploads `file` (rewound, `len` bytes) as `rel` (relative to the prefix): one PutObject, so a
/// reader sees the old object or the new one, never a part.
pub async fn put_file(
    client: &aws_sdk_s3::Client,
    target: &Target,
    rel: &str,
    file: File,
    len: u64,
) -> Result<(), StoreError> {
    let key = target.key(rel);
    let url = format!("s3://{}/{key}", target.bucket);
    let body = crate::s3client::body::from_file(std::sync::Arc::new(file), 0, len);
    let request = client
        .put_object()
        .bucket(&target.bucket)
        .key(&key)
        .content_type("application/x-ndjson")
        .content_length(len as i64)
        .body(body);
    crate::send_sized!(request, client, len).map_err(|e| StoreError::sdk(Op::Put, url, e))?;
    Ok(())
}

/// Deletes the keys `rels` (relative to the prefix), a thousand a request (one by one for a key
/// XML cannot carry); a key already gone is no error.
pub async fn delete(client: &aws_sdk_s3::Client, target: &Target, rels: &[String]) -> Result<(), StoreError> {
    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    let (batch, alone): (Vec<&String>, Vec<&String>) = rels.iter().partition(|rel| xml_can_carry(rel));
    for rel in alone {
        let key = target.key(rel);
        let sent = client.delete_object().bucket(&target.bucket).key(&key).send().await;
        sent.map_err(|e| StoreError::sdk(Op::Delete, format!("s3://{}/{key}", target.bucket), e))?;
    }
    for chunk in batch.chunks(1000) {
        let url = format!("{} keys under s3://{}/{}", chunk.len(), target.bucket, target.prefix);
        let objects: Result<Vec<_>, _> =
            chunk.iter().map(|rel| ObjectIdentifier::builder().key(target.key(rel)).build()).collect();
        let delete = objects
            .and_then(|objects| Delete::builder().set_objects(Some(objects)).quiet(true).build())
            .map_err(|e| StoreError::answer(Op::Delete, &url, e.to_string()))?;
        let out = client.delete_objects().bucket(&target.bucket).delete(delete).send().await;
        let out = out.map_err(|e| StoreError::sdk(Op::Delete, &url, e))?;
        if let Some(error) = out.errors().first() {
            let why = format!("{}: {}", error.code().unwrap_or("UnknownError"), error.message().unwrap_or(""));
            let on = format!("s3://{}/{}", target.bucket, error.key().unwrap_or("?"));
            return Err(StoreError::answer(Op::Delete, on, why));
        }
    }
    Ok(())
}
