//! The library's top-level error, and the exit status each kind of failure maps to.

use crate::config::ConfigError;

/// Exit status when every planned operation succeeded.
pub const EXIT_OK: u8 = 0;
/// Exit status when some operation failed; the report names each.
pub const EXIT_FAILED: u8 = 1;
/// Exit status for usage and configuration errors, and for runs refused for safety.
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The command cannot run as given (missing or empty source, for example).
    #[error("{0}")]
    Usage(String),
    /// Talking to S3 failed in a way that stops the whole run (listing, bucket, credentials).
    #[error("{0}")]
    Store(String),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::Usage(_) => EXIT_USAGE,
            Error::Store(_) => EXIT_FAILED,
        }
    }
}
