//! The `store` section: which S3 a run talks to, and how patiently.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::error::{ConfigError, Origins};
use crate::s3client::{self, Connection, RetryMode};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct StoreConfig {
    /// An S3-compatible endpoint; `AWS_ENDPOINT_URL` is also honoured.
    pub endpoint_url: Option<String>,
    /// Path-style addressing (`http://host/bucket/key`), which most S3-compatible servers need.
    pub path_style: bool,
    pub region: Option<String>,
    /// A profile of the shared AWS config files; `AWS_PROFILE` is also honoured.
    pub profile: Option<String>,
    /// Serve an embedded S3-compatible store from this directory and sync to it.
    pub local_store: Option<PathBuf>,
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// How retries are paced: "standard" (backoff with jitter) or "adaptive" (also slows the
    /// send rate while the server throttles).
    pub retry_mode: String,
    /// Seconds one attempt of a request may take before it is abandoned and retried; uploads
    /// get 4 s more per MiB they send.
    pub timeout: f64,
    /// A body under 1 MiB goes up by sitesync's own signed PutObject (`s3client::direct`);
    /// `false` sends every request through the SDK.
    pub direct_put: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            endpoint_url: None,
            path_style: false,
            region: None,
            profile: None,
            local_store: None,
            max_attempts: s3client::DEFAULT_MAX_ATTEMPTS,
            retry_mode: "standard".into(),
            timeout: s3client::DEFAULT_TIMEOUT_SECS,
            direct_put: true,
        }
    }
}

/// The S3 of a run.
#[derive(Debug, Clone)]
pub struct Store {
    /// How to reach it; with `local_store`, only its retries and timeout apply.
    pub connection: Connection,
    /// The folder of the embedded store the run serves and syncs to.
    pub local_store: Option<PathBuf>,
}

impl StoreConfig {
    pub fn build(self, origins: Origins) -> Result<Store, ConfigError> {
        if let Some(url) = &self.endpoint_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(origins.bad("endpoint_url", format!("{url:?} is not an http:// or https:// URL")));
        }
        let modes = [("standard", RetryMode::Standard), ("adaptive", RetryMode::Adaptive)];
        let connection = Connection {
            endpoint_url: self.endpoint_url,
            path_style: self.path_style,
            region: self.region,
            profile: self.profile,
            static_credentials: None,
            max_attempts: origins.in_range("max_attempts", self.max_attempts, 1..=20, "")?,
            retry_mode: origins.choice("retry_mode", &self.retry_mode, &modes)?,
            timeout: Duration::from_secs_f64(origins.in_range("timeout", self.timeout, 0.1..=3600.0, " seconds")?),
            direct_put: self.direct_put,
        };
        Ok(Store { connection, local_store: self.local_store })
    }
}
