//! Building the S3 client (and the CloudFront one beside it): the standard AWS chain,
//! S3-compatible endpoints, and the clock probe; and how a request that failed is named
//! ([`StoreError`]: which operation, on what, and why), below every module that sends one.
//!
//! Credentials and region come from aws-config's default chain (environment, shared profiles, SSO,
//! web identity, container and instance roles) unless the embedded store is selected. Request
//! checksums are computed only where S3 requires them: they cost CPU per byte and some
//! S3-compatible servers reject the trailing-checksum encoding. Every response's `Date` header
//! feeds the [`Clock`], so measuring the clock offset costs no extra request.
//!
//! Retries: throttling (503 SlowDown), 500s, timeouts and connection resets are retried with
//! exponential backoff and jitter, up to `max_attempts` per request. The SDK's default also caps
//! retries per *client* with a token bucket, so a long run against a flaky store would stop
//! retrying halfway through; here the budget is per operation only. A request that gets no
//! complete answer within the attempt timeout is abandoned and retried, so a stalled connection
//! costs one timeout, not the run.
//!
//! A request that fails is a [`StoreError`]: which operation ([`Op`]) on what, and why, with the
//! SDK's error kept. It is declared here, beside the client and below every module that sends a
//! request, and named by `error` with the run's other errors.
//!
//! Per request, the client does no more than a correct request needs: the endpoint rules run
//! once per bucket ([`endpoints`]), and the SDK's stalled-stream protection watches only bodies
//! large enough to stall (1 MiB and up, see [`sending`]); a small body is written in one go, and
//! its request is bounded by the attempt timeout like any other. A small body held in memory is
//! not even sent through the SDK's orchestrator: [`direct`] signs and sends that PutObject itself,
//! with the same endpoint, credentials, retries, timeouts and clock.

pub mod body;
pub mod direct;
pub mod error;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::config::interceptors::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_s3::config::retry::{RetryConfig, RetryPartition, TokenBucket};
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, ConfigBag, Credentials, Intercept, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    RuntimeComponents, StalledStreamProtectionConfig,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_async::rt::sleep::{SharedAsyncSleep, TokioSleep};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::HttpConnectorSettings;
use aws_smithy_runtime_api::client::identity::Identity;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use aws_smithy_types::date_time::{DateTime, Format};

use crate::clock::Clock;
use crate::model::Time;
pub use direct::Direct;
use direct::Keys;
pub use error::{Op, StoreError};

mod endpoints;
mod sigv4;

/// Where and how to reach S3.
#[derive(Debug, Clone)]
pub struct Connection {
    pub endpoint_url: Option<String>,
    pub path_style: bool,
    pub region: Option<String>,
    pub profile: Option<String>,
    /// Fixed credentials (the embedded store); `None` uses the standard chain.
    pub static_credentials: Option<(String, String)>,
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    pub retry_mode: RetryMode,
    /// Time one attempt of a request may take before it is abandoned and retried.
    pub timeout: Duration,
    /// Small bodies go up by the [`Direct`] PutObject; `false` sends everything through the SDK.
    pub direct_put: bool,
}

/// Attempts per request, the first included, unless configured (`max_attempts`).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// Seconds one attempt may take, unless configured (`timeout`).
pub const DEFAULT_TIMEOUT_SECS: f64 = 60.0;

impl Default for Connection {
    /// The standard AWS chain, with the default retries and timeouts.
    fn default() -> Self {
        Connection {
            endpoint_url: None,
            path_style: false,
            region: None,
            profile: None,
            static_credentials: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            retry_mode: RetryMode::default(),
            timeout: Duration::from_secs_f64(DEFAULT_TIMEOUT_SECS),
            direct_put: true,
        }
    }
}

/// How retries are paced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RetryMode {
    /// Exponential backoff with jitter.
    #[default]
    Standard,
    /// Standard, plus a client-side send rate that drops when the server throttles.
    Adaptive,
}

/// Bytes per second an upload is given at least, on top of [`Connection::timeout`].
const MIN_SEND_RATE: f64 = 256.0 * 1024.0;
/// Connecting takes at most this long (or the attempt timeout, when shorter).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The S3 client of a run (see [`clients`]).
pub async fn client(conn: &Connection, clock: Arc<Clock>) -> aws_sdk_s3::Client {
    clients(conn, clock).await.0
}

/// The S3 client of a run, and beside it the [`Direct`] PutObject of small bodies, which shares its
/// credentials, endpoint rules, retries, timeouts and clock. No `Direct` when the connection
/// turns it off, with adaptive retries (the SDK paces those) or without credentials.
pub async fn clients(conn: &Connection, clock: Arc<Clock>) -> (aws_sdk_s3::Client, Option<Arc<Direct>>) {
    let (mut builder, keys) = match &conn.static_credentials {
        Some((access, secret)) => {
            let credentials = Credentials::new(access, secret, None, None, "sitesync-static");
            let builder = aws_sdk_s3::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(fallback_region(conn))
                .credentials_provider(credentials.clone());
            (builder, Some(Keys::Fixed(Identity::new(credentials, None))))
        }
        None => {
            let sdk = load(conn).await;
            let keys = sdk.credentials_provider().map(Keys::chain);
            let builder = aws_sdk_s3::config::Builder::from(&sdk);
            (if sdk.region().is_some() { builder } else { builder.region(fallback_region(conn)) }, keys)
        }
    };
    if let Some(url) = &conn.endpoint_url {
        builder = builder.endpoint_url(url);
    }
    let routes = Arc::new(endpoints::Routes::default());
    let config = builder
        .force_path_style(conn.path_style)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .retry_config(retry_config(conn))
        // Unlimited tokens: the budget is `max_attempts` per request, not a quota per run.
        .retry_partition(RetryPartition::custom("sitesync").token_bucket(TokenBucket::unlimited()).build())
        .timeout_config(timeout_config(conn))
        .stalled_stream_protection(stalled_stream(false))
        .endpoint_resolver(endpoints::Endpoints::writing_to(routes.clone()))
        .interceptor(DateProbe { clock: clock.clone() })
        .build();
    let direct = match (conn.retry_mode, keys) {
        (RetryMode::Standard, Some(keys)) if conn.direct_put => {
            let settings = HttpConnectorSettings::builder().connect_timeout(conn.timeout.min(CONNECT_TIMEOUT)).build();
            aws_smithy_http_client::default_connector(&settings, Some(SharedAsyncSleep::new(TokioSleep::new())))
                .map(|http| Arc::new(Direct::new(http, routes, keys, (conn.max_attempts, conn.timeout), clock)))
        }
        _ => None,
    };
    (aws_sdk_s3::Client::from_conf(config), direct)
}

/// The CloudFront client of a run, from the same AWS chain (profile, region, credentials) as the
/// S3 client. It is built from the loaded `SdkConfig`, so `AWS_ENDPOINT_URL_CLOUDFRONT` (or
/// `AWS_ENDPOINT_URL`) points it elsewhere; `endpoint_url`, `path_style` and the embedded
/// store's fixed credentials are S3's only.
pub async fn cloudfront(conn: &Connection) -> aws_sdk_cloudfront::Client {
    let sdk = load(conn).await;
    let mut builder = aws_sdk_cloudfront::config::Builder::from(&sdk);
    if sdk.region().is_none() {
        builder = builder.region(fallback_region(conn));
    }
    let config = builder.retry_config(retry_config(conn)).timeout_config(timeout_config(conn)).build();
    aws_sdk_cloudfront::Client::from_conf(config)
}

/// aws-config's default chain, with the profile and region the configuration names.
async fn load(conn: &Connection) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(profile) = &conn.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &conn.region {
        loader = loader.region(Region::new(region.clone()));
    }
    loader.load().await
}

/// S3-compatible servers ignore the region, and CloudFront is global, but signing needs one.
fn fallback_region(conn: &Connection) -> Region {
    Region::new(conn.region.clone().unwrap_or_else(|| "us-east-1".into()))
}

fn timeout_config(conn: &Connection) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(conn.timeout.min(CONNECT_TIMEOUT))
        .operation_attempt_timeout(conn.timeout)
        .build()
}

/// The SDK's stalled-stream protection: responses always; uploads when `large_upload` (a body of
/// [`sending`]'s size, which the override of that request turns it on for).
fn stalled_stream(large_upload: bool) -> StalledStreamProtectionConfig {
    StalledStreamProtectionConfig::enabled().upload_enabled(large_upload).build()
}

fn retry_config(conn: &Connection) -> RetryConfig {
    let config = match conn.retry_mode {
        RetryMode::Standard => RetryConfig::standard(),
        RetryMode::Adaptive => RetryConfig::adaptive(),
    };
    config.with_max_attempts(conn.max_attempts.max(1))
}

/// A config override for a request that sends `bytes`: its attempt timeout grows with the body,
/// so a large part on a slow link is not cut off while a stalled small request still is, and the
/// SDK watches the body's throughput (stalled-stream protection). `None` below 1 MiB, where the
/// client's timeout already covers it.
pub fn sending(client: &aws_sdk_s3::Client, bytes: u64) -> Option<aws_sdk_s3::config::Builder> {
    const SMALL: u64 = 1024 * 1024;
    let base = client.config().timeout_config()?;
    let attempt = base.operation_attempt_timeout()?;
    if bytes < SMALL {
        return None;
    }
    let mut timeouts = base.to_builder();
    timeouts.set_operation_attempt_timeout(Some(attempt + Duration::from_secs_f64(bytes as f64 / MIN_SEND_RATE)));
    Some(aws_sdk_s3::Config::builder().timeout_config(timeouts.build()).stalled_stream_protection(stalled_stream(true)))
}

/// Sends a request that carries `$bytes` bytes (a PutObject, an UploadPart, a large CopyObject)
/// with an attempt timeout grown to fit them (see [`sending`]).
#[macro_export]
macro_rules! send_sized {
    ($request:expr, $client:expr, $bytes:expr) => {
        match $crate::s3client::sending($client, $bytes) {
            Some(timeouts) => $request.customize().config_override(timeouts).send().await,
            None => $request.send().await,
        }
    };
}

/// One line for an SDK error: the S3 error code and message when the server answered, the whole
/// chain of causes when it did not (connection refused, timeout, DNS). An answer without an S3
/// error code (a gateway's or a firewall's page) is named by its HTTP status.
pub fn describe<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if let SdkError::ServiceError(service) = err {
        let e = service.err();
        let code = match e.code() {
            Some(code) => code.to_owned(),
            None => format!("HTTP {} without an S3 error code", service.raw().status().as_u16()),
        };
        return match e.message() {
            Some(message) => format!("{code}: {message}"),
            None => code.to_owned(),
        };
    }
    causes(err)
}

/// The chain of causes of `err`, each once: "dispatch failure: io error: ...: Connection refused".
pub fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = String::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !text.is_empty() && !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        next = e.source();
    }
    line
}

#[derive(Debug, Clone)]
struct SentAt(Time);

impl Storable for SentAt {
    type Storer = StoreReplace<Self>;
}

/// Feeds the send time, receive time and `Date` header of every attempt to the clock.
#[derive(Debug)]
struct DateProbe {
    clock: Arc<Clock>,
}

impl Intercept for DateProbe {
    fn name(&self) -> &'static str {
        "sitesync::DateProbe"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state().store_put(SentAt(Time::now()));
        Ok(())
    }

    fn read_after_transmit(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let received = Time::now();
        let date = context.response().headers().get("date");
        if let (Some(SentAt(sent)), Some(date)) = (cfg.load::<SentAt>(), date)
            && let Ok(date) = DateTime::from_str(date, Format::HttpDate)
        {
            self.clock.observe(*sent, received, date.secs());
        }
        Ok(())
    }
}

/// A time the SDK gives (`LastModified`) as a [`Time`].
pub fn to_time(t: &DateTime) -> Time {
    Time(t.secs().saturating_mul(Time::NANOS_PER_SEC) + i64::from(t.subsec_nanos()))
}
