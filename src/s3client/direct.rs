//! A small upload sent as one signed PutObject, without the SDK's orchestrator.
//!
//! Half of the client's CPU a file in a first sync went to the SDK's orchestrator
//! (`docs/benchmark.md`): configuration layers built and dropped per request, the interceptors,
//! auth scheme and endpoint resolution, the retry loop's bookkeeping. None of it changes a byte on
//! the wire. For a body already in memory and under 1 MiB, most files of a site, [`Direct`] sends
//! the request the SDK would: to the endpoint S3's rules gave the bucket (the SDK's rules, run for
//! the bucket's first request, see [`super::endpoints`]), the key encoded as the SDK encodes it,
//! signed with the credentials of the client's chain as the SDK's SigV4 signer signs it (see
//! [`super::sigv4`]), over the SDK's default HTTP connector (TLS, connect timeout, connection
//! pool).
//!
//! What the orchestrator does that a correct request needs is done here too: every attempt is
//! bounded by the attempt timeout; what the SDK's standard mode retries is retried (throttling and
//! transient error codes, 500, 502, 503 and 504, timeouts and broken connections), with its
//! exponential backoff and jitter, up to the same number of attempts; every answer's `Date` feeds
//! the run's clock, whose measured offset corrects the signing time as the SDK corrects a skewed
//! clock. Anything else (adaptive retries, an endpoint that is not plain SigV4, a header value the
//! HTTP types refuse) is left to the SDK: [`Direct::put`] then sends nothing and says so.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_smithy_http::label::{EncodingStrategy, fmt_string};
use aws_smithy_runtime_api::client::http::{HttpConnector, SharedHttpConnector};
use aws_smithy_runtime_api::client::identity::Identity;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use aws_smithy_types::date_time::{DateTime, Format};
use bytes::Bytes;

use super::endpoints::{Route, Routes};
use super::error::{Op, StoreError};
use super::sigv4::{Signer, Unsigned};
use crate::clock::Clock;
use crate::model::Time;

/// Bodies below this size are sent directly; larger ones go through the SDK, whose stalled-stream
/// protection and stretched timeout they need (see [`super::sending`]).
pub const DIRECT_BELOW: u64 = 1024 * 1024;

/// Error codes the SDK's standard retry mode retries (`aws-runtime`'s classifiers: throttling, then
/// transient).
const RETRIED_CODES: [&str; 16] = [
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
    "RequestTimeout",
    "RequestTimeoutException",
];
/// HTTP statuses the SDK retries whatever the error code.
const RETRIED_STATUSES: [u16; 4] = [500, 502, 503, 504];
/// The SDK's backoff: a random share of 1 s doubled at each retry, at most 20 s.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(20);
/// Credentials that expire within this are loaded again before a request is signed with them.
const CREDENTIALS_MARGIN: Duration = Duration::from_secs(5 * 60);
const USER_AGENT: &str = concat!("sitesync/", env!("CARGO_PKG_VERSION"));

/// Sends small PutObjects itself (see the module's documentation).
#[derive(Debug)]
pub struct Direct {
    http: SharedHttpConnector,
    routes: Arc<Routes>,
    keys: Keys,
    attempts: u32,
    timeout: Duration,
    clock: Arc<Clock>,
    signer: Signer,
}

/// Where the signing identity comes from.
#[derive(Debug)]
pub(super) enum Keys {
    Fixed(Identity),
    /// The standard chain, its answer kept until shortly before it expires.
    Chain {
        provider: SharedCredentialsProvider,
        held: std::sync::RwLock<Option<Identity>>,
        loading: tokio::sync::Mutex<()>,
    },
}

impl Keys {
    pub(super) fn chain(provider: SharedCredentialsProvider) -> Keys {
        Keys::Chain { provider, held: Default::default(), loading: Default::default() }
    }

    async fn identity(&self) -> Result<Identity, String> {
        let (provider, held, loading) = match self {
            Keys::Fixed(identity) => return Ok(identity.clone()),
            Keys::Chain { provider, held, loading } => (provider, held, loading),
        };
        let fresh = |held: &std::sync::RwLock<Option<Identity>>| {
            let held = held.read().unwrap_or_else(|e| e.into_inner());
            held.as_ref()
                .filter(|id| id.expiration().is_none_or(|at| at > SystemTime::now() + CREDENTIALS_MARGIN))
                .cloned()
        };
        if let Some(identity) = fresh(held) {
            return Ok(identity);
        }
        let _one_at_a_time = loading.lock().await;
        if let Some(identity) = fresh(held) {
            return Ok(identity);
        }
        let credentials = provider.provide_credentials().await.map_err(|e| format!("no credentials: {e}"))?;
        let identity = Identity::new(credentials.clone(), credentials.expiry());
        *held.write().unwrap_or_else(|e| e.into_inner()) = Some(identity.clone());
        Ok(identity)
    }
}

/// An attempt that failed: whether it is worth another, and why it failed.
struct Failed {
    retry: bool,
    error: StoreError,
}

impl Direct {
    pub(super) fn new(
        http: SharedHttpConnector,
        routes: Arc<Routes>,
        keys: Keys,
        (attempts, timeout): (u32, Duration),
        clock: Arc<Clock>,
    ) -> Direct {
        Direct { http, routes, keys, attempts: attempts.max(1), timeout, clock, signer: Signer::default() }
    }

    /// Puts `body` under `key` in `bucket` with `headers` (Content-Length is added), retrying as
    /// the SDK would, and gives the object's ETag as S3 answered it. `None`
    /// when it sent nothing because the SDK must send this one: the bucket's endpoint is not known
    /// yet or not plain SigV4, or a header cannot be sent as it is.
    pub async fn put(
        &self,
        bucket: &str,
        key: &str,
        mut headers: Vec<(Cow<'static, str>, String)>,
        body: Bytes,
    ) -> Option<Result<Option<String>, StoreError>> {
        let route = self.routes.get(bucket)?;
        let valid = |(name, value): &(Cow<'static, str>, String)| {
            http::HeaderName::from_bytes(name.as_bytes()).is_ok() && http::HeaderValue::from_str(value).is_ok()
        };
        if !headers.iter().all(valid) {
            return None;
        }
        headers.push(("content-length".into(), body.len().to_string()));
        let url = format!("{}/{}", route.base, fmt_string(key, EncodingStrategy::Greedy));
        let on = format!("s3://{bucket}/{key}");
        let mut attempt = 1;
        loop {
            let sent = tokio::time::timeout(self.timeout, self.attempt(&route, (&url, &on), &headers, &body)).await;
            let failed = match sent {
                Ok(Ok(etag)) => return Some(Ok(etag)),
                Ok(Err(failed)) => failed,
                Err(_) => Failed {
                    retry: true,
                    error: StoreError::answer(Op::Put, &on, format!("no answer within {:?}", self.timeout)),
                },
            };
            if !failed.retry || attempt >= self.attempts {
                return Some(Err(failed.error));
            }
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
        }
    }

    /// One signed request and its answer.
    async fn attempt(
        &self,
        route: &Route,
        (url, on): (&str, &str),
        headers: &[(Cow<'static, str>, String)],
        body: &Bytes,
    ) -> Result<Option<String>, Failed> {
        let unsent = |retry, message: String| Failed { retry, error: StoreError::answer(Op::Put, on, message) };
        let identity = self.keys.identity().await.map_err(|e| unsent(false, e))?;
        let request = self.signed(route, url, headers, body, &identity).map_err(|e| unsent(false, e))?;
        let sent = Time::now();
        let response = self
            .http
            .call(request)
            .await
            .map_err(|e| Failed { retry: !e.is_user(), error: StoreError::unsent(Op::Put, on, e) })?;
        let received = Time::now();
        if let Some(date) = response.headers().get("date")
            && let Ok(date) = DateTime::from_str(date, Format::HttpDate)
        {
            self.clock.observe(sent, received, date.secs());
        }
        let status = response.status().as_u16();
        let etag = response.headers().get("etag").map(str::to_owned);
        let answer = ByteStream::new(response.into_body())
            .collect()
            .await
            .map_err(|e| Failed { retry: true, error: StoreError::unsent(Op::Put, on, e) })?;
        if (200..300).contains(&status) {
            return Ok(etag);
        }
        let answer = answer.into_bytes();
        let (code, message) = (element(&answer, "Code"), element(&answer, "Message"));
        let retry = RETRIED_STATUSES.contains(&status) || code.as_deref().is_some_and(|c| RETRIED_CODES.contains(&c));
        Err(Failed { retry, error: StoreError::answered(Op::Put, on, status, code, message) })
    }

    /// The request, signed for `identity` at the server's time as far as the clock knows it.
    fn signed(
        &self,
        route: &Route,
        url: &str,
        headers: &[(Cow<'static, str>, String)],
        body: &Bytes,
        identity: &Identity,
    ) -> Result<HttpRequest, String> {
        let credentials = identity.data::<Credentials>().ok_or("cannot sign: the identity is not AWS credentials")?;
        let unsigned = Unsigned { url, headers, body, region: &route.signing_region, service: &route.signing_name };
        let signature =
            self.signer.sign(&unsigned, credentials, self.server_time()).ok_or_else(|| format!("cannot sign {url}"))?;
        let bad = |e: aws_smithy_runtime_api::http::HttpError| format!("bad request: {e}");
        let mut request = HttpRequest::new(SdkBody::from(body.clone()));
        request.set_method("PUT").map_err(bad)?;
        request.set_uri(url).map_err(|e| format!("bad request: {e}"))?;
        let sent = request.headers_mut();
        sent.try_append("user-agent", USER_AGENT).map_err(bad)?;
        for (name, value) in headers {
            sent.try_append(name.clone(), value.clone()).map_err(bad)?;
        }
        sent.try_insert("x-amz-date", signature.date_time).map_err(bad)?;
        sent.try_insert("x-amz-content-sha256", signature.content_sha256).map_err(bad)?;
        if let Some(token) = signature.security_token {
            sent.try_insert("x-amz-security-token", token).map_err(bad)?;
        }
        sent.try_insert("authorization", signature.authorization).map_err(bad)?;
        Ok(request)
    }

    /// Now, on the server's clock when an answer has measured the offset.
    fn server_time(&self) -> SystemTime {
        let now = SystemTime::now();
        match self.clock.offset().map(|offset| offset.midpoint()) {
            Some(ahead) if ahead >= 0 => now + Duration::from_nanos(ahead as u64),
            Some(behind) => now - Duration::from_nanos(behind.unsigned_abs()),
            None => now,
        }
    }
}

/// The wait before attempt `attempt + 1`: the SDK's standard backoff, with full jitter.
fn backoff(attempt: u32) -> Duration {
    let ceiling = FIRST_BACKOFF.saturating_mul(1 << (attempt - 1).min(16)).min(MAX_BACKOFF);
    ceiling.mul_f64(fastrand::f64())
}

/// The text of the first `<name>` element of an S3 error document.
fn element(xml: &[u8], name: &str) -> Option<String> {
    let xml = std::str::from_utf8(xml).ok()?;
    let start = xml.find(&format!("<{name}>"))? + name.len() + 2;
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    let text = &xml[start..end];
    let text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'");
    Some(text.replace("&amp;", "&"))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use aws_credential_types::Credentials;
    use aws_credential_types::provider::future;

    use super::*;

    /// A credentials chain that counts its loads, each giving credentials valid for `lasting`.
    #[derive(Debug)]
    struct Counting {
        loads: Arc<AtomicU32>,
        lasting: Option<Duration>,
    }

    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            let n = self.loads.fetch_add(1, Ordering::SeqCst);
            let expiry = self.lasting.map(|d| SystemTime::now() + d);
            future::ProvideCredentials::ready(Ok(Credentials::new(format!("AKID{n}"), "secret", None, expiry, "test")))
        }
    }

    async fn access_key(keys: &Keys) -> String {
        let identity = keys.identity().await.unwrap();
        identity.data::<Credentials>().unwrap().access_key_id().to_owned()
    }

    #[tokio::test]
    async fn credentials_are_loaded_once_and_again_before_they_expire() {
        let loads = Arc::new(AtomicU32::new(0));
        let lasting = Keys::chain(SharedCredentialsProvider::new(Counting { loads: loads.clone(), lasting: None }));
        for _ in 0..3 {
            assert_eq!(access_key(&lasting).await, "AKID0");
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1, "credentials without an expiry are kept");

        let loads = Arc::new(AtomicU32::new(0));
        // Valid for an hour: kept. Valid for less than the margin: loaded again for each request.
        let hour = Some(Duration::from_secs(3600));
        let keys = Keys::chain(SharedCredentialsProvider::new(Counting { loads: loads.clone(), lasting: hour }));
        assert_eq!((access_key(&keys).await, access_key(&keys).await), ("AKID0".into(), "AKID0".into()));
        let soon = Some(CREDENTIALS_MARGIN / 2);
        let keys = Keys::chain(SharedCredentialsProvider::new(Counting { loads: loads.clone(), lasting: soon }));
        assert_eq!((access_key(&keys).await, access_key(&keys).await), ("AKID1".into(), "AKID2".into()));
    }

    #[test]
    fn error_documents_give_their_code_and_message() {
        let xml = b"<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>Please &amp; reduce &lt;rate&gt;</Message></Error>";
        assert_eq!(element(xml, "Code").as_deref(), Some("SlowDown"));
        assert_eq!(element(xml, "Message").as_deref(), Some("Please & reduce <rate>"));
        assert_eq!(element(b"", "Code"), None);
        assert_eq!(element(b"<html>Bad Gateway</html>", "Code"), None);
    }

    #[test]
    fn the_backoff_doubles_up_to_twenty_seconds_with_jitter() {
        for attempt in 1..40 {
            let ceiling = Duration::from_secs(1 << (attempt - 1).min(16)).min(MAX_BACKOFF);
            let wait = backoff(attempt);
            assert!(wait <= ceiling, "attempt {attempt}: {wait:?} above {ceiling:?}");
        }
        let waits: std::collections::HashSet<_> = (0..20).map(|_| backoff(3)).collect();
        assert!(waits.len() > 1, "jittered");
    }
}
