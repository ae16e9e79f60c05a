//! Keeping an object before a run changes it: one HeadObject and one server-side CopyObject to
//! `kept/ID/KEY`, run by the sink's worker just before it overwrites or deletes the key.
//!
//! CopyObject copies bytes, but not the website redirect location, and with
//! `MetadataDirective=REPLACE` (the only way to name headers at all) nothing else either: so every
//! header the HEAD returned is given again, the redirect location moved into the kept object's
//! metadata (a kept object must not redirect itself). A key kept under its hash is named there too
//! (`KEPT_KEY`, percent-encoded: a header value is ASCII); a nested one is named by its own key,
//! and its name is not repeated in metadata, which S3 caps at 2 KB. The copy is conditional on the
//! ETag the HEAD saw, so the headers and the bytes kept are of one object. The restore
//! ([`Headers::restored`]) gives every header back to the key, the redirect location included.
//!
//! On a bucket that keeps versions (GetBucketVersioning says `Enabled`), the HEAD's version id is
//! recorded instead of a copy: the version is already kept by the bucket. A key found absent is
//! recorded as such (the change made it). An object larger than one CopyObject can copy (5 GB) is
//! not kept: its line says `unkept`, and a rollback names it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_s3::operation::copy_object::builders::CopyObjectFluentBuilder;
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::types::{BucketVersioningStatus, MetadataDirective};
use aws_smithy_types::date_time::{DateTime, Format};
use percent_encoding::{percent_decode_str, utf8_percent_encode};

use super::{DeployId, KEPT_KEY, KEPT_REDIRECT, StoreError, kept_key};
use crate::journal::{Change, Journal};
use crate::keys::target::{KEY_SAFE, Target};
use crate::model::ObjectMeta;
use crate::model::fields::{FIELDS, Field};
use crate::s3client::Op;

/// The largest object one CopyObject can copy.
pub const MAX_COPY: i64 = 5_000_000_000;

/// What keeping a key did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// Copied to `kept/ID/KEY`.
    Copied,
    /// Its version recorded.
    Version,
    /// There was no object: nothing to keep.
    Absent,
    /// Too large to copy in one request: not kept.
    TooLarge,
}

/// Keeps objects before a run changes them, and records what it kept.
pub struct Keeper {
    client: aws_sdk_s3::Client,
    target: Target,
    /// The deploy the objects are kept for.
    pub id: DeployId,
    /// Whether the bucket keeps versions, asked once, at the first object kept.
    versioned: tokio::sync::OnceCell<bool>,
    log: Journal,
    kept: AtomicU64,
}

impl Keeper {
    pub fn new(client: aws_sdk_s3::Client, target: Target, id: DeployId) -> Keeper {
        let versioned = tokio::sync::OnceCell::new();
        Keeper { client, target, id, versioned, log: Journal::default(), kept: AtomicU64::new(0) }
    }

    /// The record of what was kept: [`Change::Kept`] and [`Change::Absent`] records.
    pub fn log(&self) -> &Journal {
        &self.log
    }

    /// Objects kept (or versions recorded) so far.
    pub fn count(&self) -> u64 {
        self.kept.load(Ordering::Relaxed)
    }

    /// Keeps `key` (relative to the prefix) as it is now.
    pub async fn keep(&self, key: &str) -> Result<Kept, StoreError> {
        let full = self.target.key(key);
        let url = format!("s3://{}/{full}", self.target.bucket);
        let head = match self.client.head_object().bucket(&self.target.bucket).key(&full).send().await {
            Ok(head) => head,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => {
                self.log.kept(key, Change::Absent, None);
                return Ok(Kept::Absent);
            }
            Err(e) => return Err(StoreError::sdk(Op::Head, url, e)),
        };
        let versioned = *self.versioned.get_or_init(|| versioning(&self.client, &self.target.bucket)).await;
        if let Some(version) = head.version_id().filter(|v| versioned && *v != "null") {
            self.log.kept(key, Change::Kept, Some(version.to_owned()));
            self.kept.fetch_add(1, Ordering::Relaxed);
            return Ok(Kept::Version);
        }
        if head.content_length().unwrap_or(0) > MAX_COPY {
            tracing::warn!(
                "{} is larger than 5 GB: it is not kept, and a rollback cannot restore it",
                printable(&full)
            );
            return Ok(Kept::TooLarge);
        }
        let kept = kept_key(&self.id, key, self.target.prefix.len());
        let nested = kept == format!("{}{}/{key}", super::KEPT, self.id);
        let headers = Headers::of(&head).for_kept(key, nested);
        let to = self.target.key(&kept);
        let copy = copy(&self.client, &self.target.bucket, &full, None, &headers).key(&to);
        let copy = match head.e_tag() {
            Some(etag) => copy.copy_source_if_match(etag),
            None => copy,
        };
        copy.send().await.map_err(|e| StoreError::sdk(Op::Copy, format!("{url} to {}", printable(&to)), e))?;
        self.log.kept(key, Change::Kept, None);
        self.kept.fetch_add(1, Ordering::Relaxed);
        Ok(Kept::Copied)
    }
}

fn printable(key: &str) -> String {
    crate::keys::names::printable(key).into_owned()
}

/// Whether the bucket keeps versions: then a version id is recorded instead of a copy. A bucket
/// that cannot say (no such request on this server, or no permission) is taken not to.
pub async fn versioning(client: &aws_sdk_s3::Client, bucket: &str) -> bool {
    match client.get_bucket_versioning().bucket(bucket).send().await {
        Ok(out) => out.status() == Some(&BucketVersioningStatus::Enabled),
        Err(e) => {
            tracing::debug!("GetBucketVersioning: {}; objects are kept by copy", crate::s3client::describe(&e));
            false
        }
    }
}

/// An object's stored headers, as a HEAD returns them and a CopyObject with REPLACE sets them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Headers {
    pub content_type: Option<String>,
    /// Every other field of the table, and the user metadata.
    pub meta: ObjectMeta,
    pub expires: Option<DateTime>,
    pub size: u64,
    pub etag: Option<String>,
}

impl Headers {
    pub fn of(head: &HeadObjectOutput) -> Headers {
        let mut meta = ObjectMeta::default();
        for spec in &FIELDS {
            let value = match spec.field {
                Field::CacheControl => head.cache_control(),
                Field::ContentType => None,
                Field::ContentEncoding => head.content_encoding(),
                Field::ContentDisposition => head.content_disposition(),
                Field::ContentLanguage => head.content_language(),
                Field::StorageClass => head.storage_class().map(|c| c.as_str()),
                Field::WebsiteRedirectLocation => head.website_redirect_location(),
            };
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                meta.set(spec.field, value);
            }
        }
        meta.metadata = head.metadata().map(|m| m.clone().into_iter().collect()).unwrap_or_default();
        Headers {
            content_type: head.content_type().map(str::to_owned),
            meta,
            expires: head.expires_string().and_then(|e| DateTime::from_str(e, Format::HttpDate).ok()),
            size: head.content_length().unwrap_or(0).max(0) as u64,
            etag: head.e_tag().map(|e| e.trim_matches('"').to_owned()),
        }
    }

    /// As a kept copy of `key` carries them: the redirect location in the metadata, and the key
    /// named there unless the kept copy is `nested` under it.
    fn for_kept(mut self, key: &str, nested: bool) -> Headers {
        if let Some(location) = self.meta.take(Field::WebsiteRedirectLocation) {
            self.meta.metadata.insert(KEPT_REDIRECT.into(), location);
        }
        if !nested {
            self.meta.metadata.insert(KEPT_KEY.into(), utf8_percent_encode(key, KEY_SAFE).to_string());
        }
        self
    }

    /// As a kept copy gives them back to its key; the key it names, when it names one.
    pub fn restored(mut self) -> (Headers, Option<String>) {
        if let Some(location) = self.meta.metadata.remove(KEPT_REDIRECT) {
            self.meta.set(Field::WebsiteRedirectLocation, location);
        }
        let key = self.meta.metadata.remove(KEPT_KEY);
        let key = key.and_then(|k| percent_decode_str(&k).decode_utf8().ok().map(|k| k.into_owned()));
        (self, key)
    }
}

/// A CopyObject of `from` (a full key of `bucket`, at `version` when given) with `headers` and
/// REPLACE; its destination is the caller's to set.
pub fn copy(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    from: &str,
    version: Option<&str>,
    headers: &Headers,
) -> CopyObjectFluentBuilder {
    let mut source = utf8_percent_encode(&format!("{bucket}/{from}"), KEY_SAFE).to_string();
    if let Some(version) = version {
        source.push_str(&format!("?versionId={}", utf8_percent_encode(version, KEY_SAFE)));
    }
    let request =
        client.copy_object().bucket(bucket).copy_source(source).metadata_directive(MetadataDirective::Replace);
    let request = crate::with_headers!(request, "", Some(&headers.meta)).set_content_type(headers.content_type.clone());
    let metadata: HashMap<String, String> = headers.meta.metadata.clone().into_iter().collect();
    let request = request.set_metadata((!metadata.is_empty()).then_some(metadata));
    match headers.expires {
        Some(expires) => request.expires(expires),
        None => request,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_copy_carries_the_redirect_and_its_key_in_metadata_and_gives_them_back() {
        let head = HeadObjectOutput::builder()
            .content_type("text/html; charset=utf-8")
            .cache_control("max-age=60")
            .content_encoding("gzip")
            .website_redirect_location("/new/")
            .metadata("sitesync-source-size", "120")
            .expires_string("Wed, 21 Oct 2015 07:28:00 GMT")
            .content_length(7)
            .e_tag("\"abc\"")
            .build();
        let headers = Headers::of(&head);
        assert_eq!(headers.meta.get(Field::WebsiteRedirectLocation), Some("/new/"));
        assert_eq!((headers.size, headers.etag.as_deref()), (7, Some("abc")));
        assert!(headers.expires.is_some());
        let kept = headers.clone().for_kept("caf\u{e9} +.html", false);
        assert_eq!(kept.meta.get(Field::WebsiteRedirectLocation), None, "a kept copy does not redirect");
        assert_eq!(kept.meta.metadata[KEPT_KEY], "caf%C3%A9%20%2B.html");
        let (restored, key) = kept.restored();
        assert_eq!(key.as_deref(), Some("caf\u{e9} +.html"));
        assert_eq!(restored, headers, "every header back, the redirect included");
        let nested = headers.clone().for_kept("a.html", true);
        assert!(!nested.meta.metadata.contains_key(KEPT_KEY), "named by its own key");
        assert_eq!(nested.restored(), (headers, None));
    }
}
