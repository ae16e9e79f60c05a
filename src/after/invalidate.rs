//! The CloudFront invalidation: after a run, one CreateInvalidation for what the run changed.
//!
//! A CDN keeps serving what it cached until its TTL ends, so a sync that replaced or deleted
//! objects asks CloudFront to drop them. The paths come from the record of changes ([`Outcome`]),
//! mapped through the distribution's origin path (read with GetDistributionConfig) and folded by
//! [`fold`]. Keys that were added are left out unless asked for: an edge can only have cached
//! their 404. The step runs after a partial failure, a refusal or a signal too, for what was done:
//! those objects are live, and the next run will not see them as changed again. Nothing to
//! invalidate sends no request at all; a dry run reads the distribution but sends nothing, and
//! shows the paths in the plan instead.

pub mod fold;

use std::io;
use std::time::{Duration, Instant};

use aws_sdk_cloudfront::error::SdkError;
use aws_sdk_cloudfront::operation::create_invalidation::CreateInvalidationError;
use aws_sdk_cloudfront::operation::get_distribution_config::GetDistributionConfigError;
use aws_sdk_cloudfront::operation::get_invalidation::GetInvalidationError;
use aws_sdk_cloudfront::types::{DistributionConfig, InvalidationBatch, Paths};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use serde_json::Value;

use super::{AfterError, AfterRun, Outcome, Said};
pub use crate::config::InvalidateSettings as Settings;
use crate::journal::{Change, Changes, Record};
use crate::keys::target::Target;
use crate::s3client::describe;
use fold::{Fold, Served};

#[derive(Debug, thiserror::Error)]
pub enum InvalidateError {
    #[error("cannot read the configuration of distribution {id}: {}", describe(source.as_ref()))]
    Distribution {
        id: String,
        #[source]
        source: Box<SdkError<GetDistributionConfigError, HttpResponse>>,
    },
    #[error("distribution {id} has no origin for bucket {bucket} (and more than one origin)")]
    NoOrigin { id: String, bucket: String },
    #[error("cannot read the record of changes: {0}")]
    Changes(#[source] io::Error),
    #[error("CreateInvalidation on distribution {id}: {}", describe(source.as_ref()))]
    Create {
        id: String,
        #[source]
        source: Box<SdkError<CreateInvalidationError, HttpResponse>>,
    },
    #[error("GetInvalidation {invalidation} on distribution {id}: {}", describe(source.as_ref()))]
    Wait {
        id: String,
        invalidation: String,
        #[source]
        source: Box<SdkError<GetInvalidationError, HttpResponse>>,
    },
    #[error("invalidation {invalidation} on distribution {id} still {status} after {}s", after.as_secs())]
    TimedOut { id: String, invalidation: String, status: String, after: Duration },
}

/// Invalidates what a run changed under the target in one distribution.
pub struct Invalidate {
    pub client: aws_sdk_cloudfront::Client,
    pub target: Target,
    pub settings: Settings,
}

#[async_trait::async_trait]
impl AfterRun for Invalidate {
    async fn run(self: Box<Self>, outcome: &Outcome<'_>) -> Result<Said, AfterError> {
        Ok(self.invalidate(outcome).await?)
    }
}

impl Invalidate {
    async fn invalidate(&self, outcome: &Outcome<'_>) -> Result<Said, InvalidateError> {
        let changes = &outcome.applied.changes;
        let include_added = self.settings.include_added;
        let any = tokio::task::block_in_place(|| any_to_invalidate(changes, include_added))?;
        if !any {
            return Ok(said(None, &[], false));
        }
        let served = self.served().await?;
        let paths = tokio::task::block_in_place(|| self.paths(changes, &served))?;
        if paths.is_empty() || outcome.dry_run {
            return Ok(said(None, &paths, outcome.dry_run));
        }
        let id = self.create(&paths).await?;
        tracing::info!(
            "CloudFront invalidation {id} of {} paths on distribution {}",
            paths.len(),
            self.settings.distribution_id
        );
        if self.settings.wait && !outcome.stopped {
            let poll = |id: String| self.status(id);
            wait(&self.settings.distribution_id, &id, Poll::DEFAULT, poll).await?;
            tracing::info!("CloudFront invalidation {id} completed");
        }
        Ok(said(Some(id), &paths, false))
    }

    /// Which keys the distribution serves from the target's bucket, and under which path.
    async fn served(&self) -> Result<Served, InvalidateError> {
        let id = &self.settings.distribution_id;
        let out = self
            .client
            .get_distribution_config()
            .id(id)
            .send()
            .await
            .map_err(|source| InvalidateError::Distribution { id: id.clone(), source: Box::new(source) })?;
        let origin = out.distribution_config().and_then(|c| origin_path(c, &self.target.bucket, id));
        let origin =
            origin.ok_or_else(|| InvalidateError::NoOrigin { id: id.clone(), bucket: self.target.bucket.clone() })?;
        Ok(Served::new(&origin))
    }

    /// The folded paths of every change the distribution serves (a blocking read).
    fn paths(&self, changes: &Changes, served: &Served) -> Result<Vec<String>, InvalidateError> {
        let mut fold = Fold::new(self.settings.max_paths);
        let mut full = self.target.prefix.clone();
        for record in changes.sorted().map_err(InvalidateError::Changes)? {
            let record = record.map_err(InvalidateError::Changes)?;
            if !wanted(&record, self.settings.include_added) {
                continue;
            }
            full.truncate(self.target.prefix.len());
            full.push_str(&record.key);
            if let Some(key) = served.relative(&full) {
                fold.push(key);
            }
            if fold.everything() {
                break;
            }
        }
        Ok(fold.finish())
    }

    async fn create(&self, paths: &[String]) -> Result<String, InvalidateError> {
        let id = &self.settings.distribution_id;
        let unbuilt =
            |e| InvalidateError::Create { id: id.clone(), source: Box::new(SdkError::construction_failure(e)) };
        let items = Paths::builder().quantity(paths.len() as i32).set_items(Some(paths.to_vec())).build();
        let batch = InvalidationBatch::builder()
            .caller_reference(caller_reference())
            .paths(items.map_err(unbuilt)?)
            .build()
            .map_err(unbuilt)?;
        let out = self
            .client
            .create_invalidation()
            .distribution_id(id)
            .invalidation_batch(batch)
            .send()
            .await
            .map_err(|source| InvalidateError::Create { id: id.clone(), source: Box::new(source) })?;
        Ok(out.invalidation().map(|i| i.id().to_owned()).unwrap_or_default())
    }

    /// The status CloudFront reports for an invalidation (`InProgress`, `Completed`).
    async fn status(&self, invalidation: String) -> Result<String, InvalidateError> {
        let id = &self.settings.distribution_id;
        let out =
            self.client.get_invalidation().distribution_id(id).id(&invalidation).send().await.map_err(|source| {
                InvalidateError::Wait { id: id.clone(), invalidation: invalidation.clone(), source: Box::new(source) }
            })?;
        Ok(out.invalidation().map(|i| i.status().to_owned()).unwrap_or_default())
    }
}

/// Whether any record is one to invalidate, read until the first (a blocking read): a run that
/// changed nothing worth it sends no request at all.
fn any_to_invalidate(changes: &Changes, include_added: bool) -> Result<bool, InvalidateError> {
    for record in changes.sorted().map_err(InvalidateError::Changes)? {
        if wanted(&record.map_err(InvalidateError::Changes)?, include_added) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A changed or deleted key may be cached; an added one only as a 404.
fn wanted(record: &Record, include_added: bool) -> bool {
    match record.change {
        Change::Deleted => true,
        Change::Uploaded | Change::Copied => !record.added || include_added,
        // Found the same: nothing a cache holds is stale; what was kept aside is not served.
        Change::Confirmed | Change::Kept | Change::Absent | Change::Retired => false,
    }
}

/// The origin path of the origin that serves `bucket` (its domain is the bucket's S3 REST or
/// website endpoint), or of the only origin there is (a custom domain in front of the bucket).
fn origin_path(config: &DistributionConfig, bucket: &str, id: &str) -> Option<String> {
    let origins = config.origins().map(|o| o.items()).unwrap_or_default();
    let ours: Vec<_> = origins.iter().filter(|o| serves(o.domain_name(), bucket)).collect();
    let path = |o: &aws_sdk_cloudfront::types::Origin| o.origin_path().unwrap_or_default().to_owned();
    if ours.iter().any(|o| path(o) != path(ours[0])) {
        tracing::warn!(
            "distribution {id} has origins for bucket {bucket} with different origin paths; invalidating under the first's ({})",
            ours[0].id()
        );
    }
    match (ours.first(), origins) {
        (Some(origin), _) => Some(path(origin)),
        (None, [only]) => Some(path(only)),
        (None, _) => None,
    }
}

/// `bucket.s3.amazonaws.com`, `bucket.s3.eu-west-1.amazonaws.com`, `bucket.s3-website-…`.
fn serves(domain: &str, bucket: &str) -> bool {
    domain.strip_prefix(bucket).and_then(|rest| rest.strip_prefix('.')).is_some_and(|rest| rest.starts_with("s3"))
}

/// Unique per call (the time, the process, a count), so two runs are never taken for one, and
/// the SDK's retries of one call reuse it: CloudFront then makes no second invalidation.
fn caller_reference() -> String {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("sitesync-{}-{}-{call}", now.as_nanos(), std::process::id())
}

/// The report's fields, and in a dry run the plan's lines.
fn said(id: Option<String>, paths: &[String], dry_run: bool) -> Said {
    let mut said = Said::default();
    said.fields.insert("invalidation_id".into(), id.map_or(Value::Null, Value::String));
    said.fields.insert("invalidated_paths".into(), paths.iter().cloned().map(Value::String).collect());
    if dry_run {
        said.plan = paths.iter().map(|p| format!("invalidate {p}")).collect();
    }
    said
}

/// How the wait for completion polls: a backoff from `first`, doubling up to `cap`, for at most
/// `limit` in all.
#[derive(Debug, Clone, Copy)]
pub struct Poll {
    pub first: Duration,
    pub cap: Duration,
    pub limit: Duration,
}

impl Poll {
    /// Invalidations usually complete within minutes; past 20 the run gives up waiting.
    pub const DEFAULT: Poll =
        Poll { first: Duration::from_secs(1), cap: Duration::from_secs(20), limit: Duration::from_secs(20 * 60) };
}

/// Polls `status` until it says `Completed` (moto says `COMPLETED`), or fails past the limit.
async fn wait<F, Fut>(id: &str, invalidation: &str, poll: Poll, mut status: F) -> Result<(), InvalidateError>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<String, InvalidateError>>,
{
    let started = Instant::now();
    let mut pause = poll.first;
    loop {
        let now = status(invalidation.to_owned()).await?;
        if now.eq_ignore_ascii_case("Completed") {
            return Ok(());
        }
        if started.elapsed() + pause > poll.limit {
            return Err(InvalidateError::TimedOut {
                id: id.to_owned(),
                invalidation: invalidation.to_owned(),
                status: now,
                after: started.elapsed(),
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(poll.cap);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use aws_sdk_cloudfront::types::{Origin, Origins};

    use super::*;

    fn origin(id: &str, domain: &str, path: &str) -> Origin {
        Origin::builder().id(id).domain_name(domain).origin_path(path).build().unwrap()
    }

    fn config(origins: Vec<Origin>) -> DistributionConfig {
        let origins = Origins::builder().quantity(origins.len() as i32).set_items(Some(origins)).build().unwrap();
        DistributionConfig::builder().caller_reference("t").comment("").enabled(true).origins(origins).build().unwrap()
    }

    #[test]
    fn the_origin_of_the_bucket_is_found_by_its_domain() {
        let two = config(vec![
            origin("api", "api.example.com", "/v1"),
            origin("site", "bkt.s3.eu-west-1.amazonaws.com", "/site"),
        ]);
        assert_eq!(origin_path(&two, "bkt", "E1").as_deref(), Some("/site"));
        assert_eq!(origin_path(&two, "other", "E1"), None, "two origins, neither the bucket's");
        let one = config(vec![origin("cdn", "static.example.com", "/p")]);
        assert_eq!(origin_path(&one, "bkt", "E1").as_deref(), Some("/p"), "the only origin serves it");
        assert!(serves("bkt.s3-website-us-east-1.amazonaws.com", "bkt"));
        assert!(!serves("bkt2.s3.amazonaws.com", "bkt"));
        assert!(!serves("bkt.example.com", "bkt"));
    }

    #[test]
    fn added_keys_only_when_asked() {
        let record = |change, added| Record { key: "k".into(), change, added, known: None, version: None };
        assert!(wanted(&record(Change::Uploaded, false), false));
        assert!(wanted(&record(Change::Copied, false), false));
        assert!(wanted(&record(Change::Deleted, false), false));
        assert!(!wanted(&record(Change::Uploaded, true), false));
        assert!(!wanted(&record(Change::Copied, true), false));
        assert!(wanted(&record(Change::Uploaded, true), true));
        assert!(!wanted(&record(Change::Confirmed, false), true), "a key found the same is not stale");
    }

    #[test]
    fn caller_references_differ_between_calls() {
        assert_ne!(caller_reference(), caller_reference());
    }

    const QUICK: Poll =
        Poll { first: Duration::from_millis(1), cap: Duration::from_millis(2), limit: Duration::from_millis(200) };

    #[tokio::test]
    async fn waiting_polls_until_completed() {
        let calls = AtomicUsize::new(0);
        let status = |_| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move { Ok(if n < 3 { "InProgress".to_owned() } else { "Completed".to_owned() }) }
        };
        wait("E1", "I1", QUICK, status).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn waiting_gives_up_past_the_limit() {
        let status = |_| async { Ok("InProgress".to_owned()) };
        let error = wait("E1", "I1", QUICK, status).await.unwrap_err();
        assert!(matches!(error, InvalidateError::TimedOut { ref status, .. } if status == "InProgress"), "{error}");
        assert!(error.to_string().contains("invalidation I1 on distribution E1 still InProgress"), "{error}");
    }
}
