//! A request to the store that failed, as every stage reports it: the S3 operation ([`Op`]), what
//! it was about, S3's code and message, and the SDK's error kept as the source.
//!
//! It lives beside the client, below every stage, so that the modules the stages share (the
//! history under `.sitesync/`, the journal) can report a request's failure without depending on
//! the run's own error type (`crate::error`, which re-exports it).

use std::fmt;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

/// An S3 operation, as errors and reports name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    List,
    Head,
    Get,
    Put,
    /// The three requests of a multipart upload, and the abort after one failed: S3's names, since
    /// "the multipart upload failed" does not say which of them did.
    CreateMultipartUpload,
    UploadPart,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    Copy,
    Delete,
    CreateBucket,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::List => "list",
            Op::Head => "head",
            Op::Get => "get",
            Op::Put => "put",
            Op::CreateMultipartUpload => "CreateMultipartUpload",
            Op::UploadPart => "UploadPart",
            Op::CompleteMultipartUpload => "CompleteMultipartUpload",
            Op::AbortMultipartUpload => "AbortMultipartUpload",
            Op::Copy => "copy",
            Op::Delete => "delete",
            Op::CreateBucket => "create bucket",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A request to the store that failed: which operation, on what, and why, with the SDK's error
/// kept as the source.
#[derive(Debug)]
pub struct StoreError {
    pub op: Op,
    /// What the request was about: an `s3://bucket/key` URL, or a prefix for a listing.
    pub on: String,
    /// S3's error code, when the server answered with one (`NoSuchBucket`, `SlowDown`).
    pub code: Option<String>,
    /// One line: S3's code and message, or the chain of causes when the server did not answer.
    pub message: String,
    /// The endpoint, when it is not AWS's, to tell a misconfigured one from a failing one.
    pub endpoint: Option<String>,
    source: Option<Source>,
}

impl StoreError {
    /// A failed SDK request.
    pub fn sdk<E>(op: Op, on: impl Into<String>, err: SdkError<E, HttpResponse>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let code = err.as_service_error().and_then(|e| e.code()).map(str::to_owned);
        let message = crate::s3client::describe(&err);
        StoreError { op, on: on.into(), code, message, endpoint: None, source: Some(Box::new(err)) }
    }

    /// A request sent without the SDK that the server refused with `status`, S3's `code` and
    /// `message` (from the error document, when it had one), named as [`describe`] names the
    /// SDK's.
    ///
    /// [`describe`]: crate::s3client::describe
    pub fn answered(op: Op, on: &str, status: u16, code: Option<String>, message: Option<String>) -> StoreError {
        let named = code.clone().unwrap_or_else(|| format!("HTTP {status} without an S3 error code"));
        let message = match message {
            Some(message) => format!("{named}: {message}"),
            None => named,
        };
        StoreError { op, on: on.into(), code, message, endpoint: None, source: None }
    }

    /// A request sent without the SDK that got no answer (refused, reset, timed out), with its
    /// chain of causes.
    pub fn unsent<E>(op: Op, on: &str, error: E) -> StoreError
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let message = crate::s3client::causes(&error);
        StoreError { op, on: on.into(), code: None, message, endpoint: None, source: Some(Box::new(error)) }
    }

    /// A request that went through but whose answer cannot be used.
    pub fn answer(op: Op, on: impl Into<String>, message: impl Into<String>) -> StoreError {
        StoreError { op, on: on.into(), code: None, message: message.into(), endpoint: None, source: None }
    }

    /// A request that went through but whose answer is wrong, with the typed error that says
    /// why kept as the source (an inventory's data file that fails its MD5).
    pub fn invalid<E>(op: Op, on: impl Into<String>, error: E) -> StoreError
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let message = error.to_string();
        StoreError { op, on: on.into(), code: None, message, endpoint: None, source: Some(Box::new(error)) }
    }

    /// The same error, naming the endpoint it came from.
    pub fn at(mut self, endpoint: Option<&str>) -> StoreError {
        self.endpoint = endpoint.map(str::to_owned);
        self
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} failed: {}", self.op, crate::keys::names::printable(&self.on), self.message)?;
        match &self.endpoint {
            Some(url) => write!(f, " (endpoint {url})"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}
