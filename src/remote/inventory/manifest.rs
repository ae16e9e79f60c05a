//! An S3 Inventory's `manifest.json`: read, checked, and said aloud.
//!
//! The manifest says which bucket the inventory is of, in what format, with which columns, when
//! it was made, and which data files hold its rows, each with its MD5. Everything that would make
//! the rows mean something else is refused here, before a data file is read: a manifest that
//! does not match its `manifest.checksum`, an inventory of another bucket (its keys would all
//! read as deleted files), a format other than CSV, a schema without the columns the diff needs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use md5::{Digest, Md5};
use serde::Deserialize;

use super::InventoryError;
use super::rows::Columns;
use crate::content::hex;
use crate::error::{Op, StoreError};
use crate::keys::target::{ObjectUrl, Target};
use crate::remote::RemoteError;

/// A larger manifest is not an inventory's: a data file of AWS's holds millions of rows, so even
/// a billion keys make a manifest of a few megabytes.
const MAX_MANIFEST_BYTES: usize = 64 * 1024 * 1024;

/// The fields of `manifest.json` a run reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    source_bucket: String,
    file_format: String,
    #[serde(default)]
    file_schema: String,
    /// Milliseconds since the epoch, as a string (or, from some tools, a number).
    #[serde(default)]
    creation_timestamp: Option<serde_json::Value>,
    files: Vec<DataFile>,
}

/// One data file of the inventory, in the bucket the manifest is in.
#[derive(Debug, Clone, Deserialize)]
pub struct DataFile {
    pub key: String,
    pub size: u64,
    #[serde(rename = "MD5checksum")]
    pub md5: String,
}

/// A manifest whose inventory can stand for the target's listing.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub columns: Columns,
    pub files: Vec<DataFile>,
    /// When the inventory was made, when the manifest says.
    pub created: Option<SystemTime>,
}

/// Reads and checks the manifest at `url` for the target.
pub async fn read(client: &aws_sdk_s3::Client, url: &ObjectUrl, target: &Target) -> Result<Manifest, RemoteError> {
    let wrong = |source| RemoteError::Inventory { on: url.to_string(), source };
    let text = get(client, url, MAX_MANIFEST_BYTES).await?.ok_or_else(|| {
        StoreError::answer(Op::Get, url.to_string(), "no such key: there is no inventory manifest here")
    })?;
    let checksum = ObjectUrl { bucket: url.bucket.clone(), key: checksum_key(&url.key) };
    match get(client, &checksum, 1024).await? {
        Some(expected) => check_md5(&text, &expected).map_err(wrong)?,
        None => tracing::debug!("no {checksum}: the manifest's integrity is not checked"),
    }
    parse(&text, target).map_err(wrong)
}

/// `manifest.checksum`, beside `manifest.json`.
fn checksum_key(manifest: &str) -> String {
    let stem = manifest.strip_suffix(".json").unwrap_or(manifest);
    format!("{stem}.checksum")
}

/// The object's bytes, or `None` when there is no such key.
async fn get(client: &aws_sdk_s3::Client, url: &ObjectUrl, limit: usize) -> Result<Option<Vec<u8>>, StoreError> {
    let out = match client.get_object().bucket(&url.bucket).key(&url.key).send().await {
        Ok(out) => out,
        Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(None),
        Err(e) => return Err(StoreError::sdk(Op::Get, url.to_string(), e)),
    };
    let length = usize::try_from(out.content_length().unwrap_or(0)).unwrap_or(usize::MAX);
    if length > limit {
        return Err(StoreError::answer(Op::Get, url.to_string(), format!("{length} bytes, more than {limit}")));
    }
    let body = out.body.collect().await.map_err(|e| StoreError::invalid(Op::Get, url.to_string(), e))?;
    Ok(Some(body.to_vec()))
}

fn check_md5(manifest: &[u8], checksum: &[u8]) -> Result<(), InventoryError> {
    let expected = String::from_utf8_lossy(checksum).trim().to_ascii_lowercase();
    let actual = hex(&Md5::digest(manifest));
    match actual == expected {
        true => Ok(()),
        false => Err(InventoryError::ManifestChecksum { expected, actual }),
    }
}

/// Parses the manifest and refuses what the run cannot use.
fn parse(text: &[u8], target: &Target) -> Result<Manifest, InventoryError> {
    let raw: Raw = serde_json::from_slice(text).map_err(InventoryError::Manifest)?;
    if raw.source_bucket != target.bucket {
        return Err(InventoryError::OtherBucket { inventory: raw.source_bucket, target: target.bucket.clone() });
    }
    if !raw.file_format.eq_ignore_ascii_case("CSV") {
        return Err(InventoryError::Format(raw.file_format));
    }
    let columns = Columns::parse(&raw.file_schema)?;
    let created = raw.creation_timestamp.as_ref().and_then(millis).map(|ms| UNIX_EPOCH + Duration::from_millis(ms));
    Ok(Manifest { columns, files: raw.files, created })
}

fn millis(value: &serde_json::Value) -> Option<u64> {
    match value {
        serde_json::Value::String(s) => s.trim().parse().ok(),
        value => value.as_u64(),
    }
}

impl Manifest {
    /// Says when the inventory was made, and what that means for the run.
    pub fn log_age(&self, url: &ObjectUrl) {
        let Some(created) = self.created else {
            tracing::warn!("inventory {url}: the manifest has no creationTimestamp; its age is unknown");
            return;
        };
        let ms = created.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        let date = aws_smithy_types::DateTime::from_millis(ms)
            .fmt(aws_smithy_types::date_time::Format::DateTime)
            .unwrap_or_else(|_| format!("{ms} ms after the epoch"));
        let age = SystemTime::now().duration_since(created).unwrap_or_default();
        tracing::info!(
            "inventory {url}: made {date}, {} ago, {} data files; objects written since are not in it, so keys it lacks are uploaded and only keys it lists are deleted",
            age_text(age),
            self.files.len()
        );
    }
}

/// `2d 3h`, `3h 4m`, `4m 5s`, `5s`.
fn age_text(age: Duration) -> String {
    let s = age.as_secs();
    let (d, h, m) = (s / 86_400, s / 3600 % 24, s / 60 % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m {}s", s % 60),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(source: &str, format: &str, schema: &str) -> String {
        serde_json::json!({
            "sourceBucket": source,
            "destinationBucket": "arn:aws:s3:::inv",
            "version": "2016-11-30",
            "creationTimestamp": "1704164645000",
            "fileFormat": format,
            "fileSchema": schema,
            "files": [{"key": "inv/bkt/cfg/data/1.csv.gz", "size": 123, "MD5checksum": "00ff"}]
        })
        .to_string()
    }

    #[test]
    fn a_manifest_of_the_target_in_csv_is_read() {
        let target = Target::parse("s3://bkt/site").unwrap();
        let text = manifest("bkt", "CSV", "Bucket, Key, Size, LastModifiedDate, ETag");
        let got = parse(text.as_bytes(), &target).unwrap();
        assert_eq!(got.files[0].key, "inv/bkt/cfg/data/1.csv.gz");
        assert_eq!((got.files[0].size, got.files[0].md5.as_str()), (123, "00ff"));
        assert_eq!(got.created, Some(UNIX_EPOCH + Duration::from_secs(1_704_164_645)));
    }

    #[test]
    fn what_the_run_cannot_use_is_refused_by_name() {
        let target = Target::parse("s3://bkt/site").unwrap();
        let schema = "Bucket, Key, Size, LastModifiedDate";
        let cases = [
            (manifest("other", "CSV", schema), "\"other\""),
            (manifest("bkt", "ORC", schema), "ORC"),
            (manifest("bkt", "Parquet", schema), "Parquet"),
            (manifest("bkt", "CSV", "Bucket, Key, Size"), "LastModifiedDate"),
            ("{\"sourceBucket\": \"bkt\"}".into(), "fileFormat"),
        ];
        for (text, named) in cases {
            let error = parse(text.as_bytes(), &target).unwrap_err().to_string();
            assert!(error.contains(named), "{error:?} does not name {named}");
        }
    }

    #[test]
    fn the_checksum_is_the_md5_of_the_manifest() {
        // MD5("abc"), as AWS writes it, with a newline.
        check_md5(b"abc", b"900150983cd24fb0d6963f7d28e17f72\n").unwrap();
        let error = check_md5(b"abd", b"900150983cd24fb0d6963f7d28e17f72").unwrap_err().to_string();
        assert!(error.contains("900150983cd24fb0d6963f7d28e17f72"), "{error}");
        assert_eq!(checksum_key("a/b/2024-01-02T03-04Z/manifest.json"), "a/b/2024-01-02T03-04Z/manifest.checksum");
    }

    #[test]
    fn ages_read_in_two_units() {
        assert_eq!(age_text(Duration::from_secs(5)), "5s");
        assert_eq!(age_text(Duration::from_secs(245)), "4m 5s");
        assert_eq!(age_text(Duration::from_secs(3 * 3600 + 4 * 60 + 5)), "3h 4m");
        assert_eq!(age_text(Duration::from_secs(2 * 86_400 + 3 * 3600 + 7)), "2d 3h");
    }
}
