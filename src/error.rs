//! The library's top-level error, and the exit status each kind of failure maps to.

use crate::config::ConfigError;
use crate::lock::LockError;
use crate::transform::TransformError;

/// Exit status when every planned operation succeeded.
pub const EXIT_OK: u8 = 0;
/// Exit status when some operation failed; the report names each.
pub const EXIT_FAILED: u8 = 1;
/// Exit status for usage and configuration errors, and for runs refused for safety.
pub const EXIT_USAGE: u8 = 2;
/// Exit status of a run stopped by SIGINT or SIGTERM (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;

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
    /// A transform failed during the run (a plugin returned an error or panicked).
    #[error(transparent)]
    Transform(#[from] TransformError),
    /// Another run holds the target's lock, or the lock file cannot be used.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// A signal stopped the run before it sent anything.
    #[error("stopped by {0} before anything was sent")]
    Interrupted(&'static str),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::Usage(_) | Error::Lock(_) => EXIT_USAGE,
            Error::Store(_) | Error::Transform(_) => EXIT_FAILED,
            Error::Interrupted(_) => EXIT_INTERRUPTED,
        }
    }
}
