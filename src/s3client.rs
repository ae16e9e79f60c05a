//! Building the S3 client: the standard AWS chain, S3-compatible endpoints, and the clock probe.
//!
//! Credentials and region come from aws-config's default chain (environment, shared profiles, SSO,
//! web identity, container and instance roles) unless the embedded store is selected. Request
//! checksums are computed only where S3 requires them: they cost CPU per byte and some
//! S3-compatible servers reject the trailing-checksum encoding. Every response's `Date` header
//! feeds the [`Clock`], so measuring the clock offset costs no extra request.

use std::sync::Arc;

use aws_sdk_s3::config::interceptors::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, ConfigBag, Credentials, Intercept, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    RuntimeComponents,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use aws_smithy_types::date_time::{DateTime, Format};

use crate::clock::Clock;
use crate::model::Time;

/// Where and how to reach S3.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    pub endpoint_url: Option<String>,
    pub path_style: bool,
    pub region: Option<String>,
    pub profile: Option<String>,
    /// Fixed credentials (the embedded store); `None` uses the standard chain.
    pub static_credentials: Option<(String, String)>,
    /// Attempts per request, the first included.
    pub max_attempts: u32,
}

pub async fn client(conn: &Connection, clock: Arc<Clock>) -> aws_sdk_s3::Client {
    // S3-compatible servers ignore the region but signing needs one.
    let fallback_region = || Region::new(conn.region.clone().unwrap_or_else(|| "us-east-1".into()));
    let mut builder = match &conn.static_credentials {
        Some((access, secret)) => aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(fallback_region())
            .credentials_provider(Credentials::new(access, secret, None, None, "sitesync-static")),
        None => {
            let mut loader = aws_config::defaults(BehaviorVersion::latest());
            if let Some(profile) = &conn.profile {
                loader = loader.profile_name(profile);
            }
            if let Some(region) = &conn.region {
                loader = loader.region(Region::new(region.clone()));
            }
            let sdk = loader.load().await;
            let has_region = sdk.region().is_some();
            let builder = aws_sdk_s3::config::Builder::from(&sdk);
            if has_region { builder } else { builder.region(fallback_region()) }
        }
    };
    if let Some(url) = &conn.endpoint_url {
        builder = builder.endpoint_url(url);
    }
    let config = builder
        .force_path_style(conn.path_style)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .retry_config(RetryConfig::standard().with_max_attempts(conn.max_attempts.max(1)))
        .interceptor(DateProbe { clock })
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// One line for an SDK error: the S3 error code and message when the server answered, the whole
/// chain of causes when it did not (connection refused, timeout, DNS).
pub fn describe<E, R>(err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if let SdkError::ServiceError(service) = err {
        let e = service.err();
        let code = e.code().unwrap_or("UnknownError");
        return match e.message() {
            Some(message) => format!("{code}: {message}"),
            None => code.to_owned(),
        };
    }
    DisplayErrorContext(err).to_string()
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
