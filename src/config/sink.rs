//! The `sink` section: how objects are sent (how many requests at once, in how large parts, with
//! which charset on text).

use serde::Deserialize;

use super::error::{ConfigError, Origins};
use crate::model::mime::Charset;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct SinkConfig {
    /// Concurrent S3 operations.
    pub workers: usize,
    /// Files of at least this many bytes are uploaded in parts.
    pub multipart_threshold: u64,
    pub multipart_chunk_size: u64,
    /// The charset the text types' default Content-Type names (`text/html; charset=utf-8`); an
    /// empty string names none.
    pub default_charset: String,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            workers: 64,
            multipart_threshold: 16 * 1024 * 1024,
            multipart_chunk_size: 8 * 1024 * 1024,
            default_charset: "utf-8".into(),
        }
    }
}

/// How a run sends objects.
#[derive(Debug, Clone)]
pub struct SinkSettings {
    /// Concurrent S3 operations.
    pub workers: usize,
    /// Files of at least this many bytes are uploaded in parts ...
    pub multipart_threshold: u64,
    /// ... of this size.
    pub multipart_chunk_size: u64,
    /// The charset of the text types' default Content-Type.
    pub charset: Charset,
}

impl SinkConfig {
    pub fn build(self, origins: Origins) -> Result<SinkSettings, ConfigError> {
        const MIN_PART: u64 = 5 * 1024 * 1024;
        const MAX_PART: u64 = 5 * 1024 * 1024 * 1024;
        if !(MIN_PART..=MAX_PART).contains(&self.multipart_chunk_size) {
            let why = format!("{} is out of range (5 MiB to 5 GiB)", self.multipart_chunk_size);
            return Err(origins.bad("multipart_chunk_size", why));
        }
        if self.multipart_threshold < MIN_PART {
            let why = format!("{} is below S3's 5 MiB minimum part size", self.multipart_threshold);
            return Err(origins.bad("multipart_threshold", why));
        }
        Ok(SinkSettings {
            workers: origins.in_range("workers", self.workers, 1..=4096, "")?,
            multipart_threshold: self.multipart_threshold,
            multipart_chunk_size: self.multipart_chunk_size,
            charset: Charset::parse(&self.default_charset).map_err(|why| origins.bad("default_charset", why))?,
        })
    }
}
