//! Reading the file behind an upload: stat'ed, opened, and read whole or streamed (compressed
//! first when the entry is, see `packed`), off the async runtime's workers, and why that failed
//! when it did.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use aws_sdk_s3::primitives::{ByteStream, Length};

use super::packed::{self, Spool};
use crate::content::compress::PumpError;
use crate::error::{Op, StoreError};
use crate::model::{Encoding, LocalFile};

/// Tries of an upload whose file keeps changing under it.
pub(super) const ATTEMPTS: usize = 3;

/// Why a file could not be uploaded.
#[derive(Debug, thiserror::Error)]
pub(super) enum UploadError {
    #[error("nothing to upload: the entry has no file")]
    NoFile,
    #[error("vanished after the scan")]
    Vanished,
    #[error("not a regular file")]
    NotAFile,
    #[error("cannot read file: {0}")]
    Read(std::io::Error),
    /// The compressed bytes could not be written to their temporary file.
    #[error("cannot compress: {0}")]
    Compress(std::io::Error),
    /// The stat after the upload failed.
    #[error("changed during upload: {0}")]
    Changed(Box<UploadError>),
    #[error("kept changing during upload ({ATTEMPTS} attempts); the object may not match the file")]
    KeptChanging,
    #[error("stopped by a signal after {0} of its parts")]
    Stopped(u64),
    /// The store refused or did not answer; the line is the store's, after the S3 operation when
    /// the upload took several (a multipart upload).
    #[error("{}", sent_as(.0))]
    Store(#[from] StoreError),
    /// A part of a multipart upload failed.
    #[error("{} (part {number}): {}", .error.op, .error.message)]
    Part { number: i32, error: StoreError },
}

/// A failed request of an upload, as its failure says it: a PutObject is the upload itself, any
/// other request is named.
fn sent_as(error: &StoreError) -> String {
    match error.op {
        Op::Put => error.message.clone(),
        op => format!("{op}: {}", error.message),
    }
}

/// The file an entry is read from; the chain turns entries without one into reported problems,
/// so none reaches the sink, but a slip would be a failure, not a panic.
pub(super) fn source(file: &LocalFile) -> Result<&Path, UploadError> {
    file.path().ok_or(UploadError::NoFile)
}

/// Files up to this size are read into memory in one blocking call and sent from there; larger
/// ones are streamed from disk. Small files are most of a site, and each trip to the blocking
/// thread pool costs more CPU than reading one of them.
pub(super) const READ_WHOLE: u64 = 1024 * 1024;

/// Where a streamed body is read from.
#[derive(Clone, Copy)]
pub(super) enum Source<'a> {
    /// The file itself.
    Path(&'a Path),
    /// Its compressed bytes, in a temporary file.
    Spool(&'a Arc<std::fs::File>),
}

/// `length` bytes of the source from `offset`, read as they are sent.
pub(super) async fn stream(source: Source<'_>, offset: u64, length: u64) -> Result<ByteStream, UploadError> {
    match source {
        Source::Path(path) => ByteStream::read_from()
            .path(path)
            .offset(offset)
            .length(Length::Exact(length))
            .build()
            .await
            .map_err(|e| UploadError::Read(std::io::Error::other(e))),
        Source::Spool(file) => Ok(crate::s3client::body::from_file(file.clone(), offset, length)),
    }
}

/// What is sent: its length, and its encoding when it is compressed.
pub(super) type Sending = (u64, Option<Encoding>);

/// The size a compressed entry's object records of its source (`source` bytes), as the user
/// metadata [`SOURCE_SIZE`](crate::model::fields::SOURCE_SIZE): whether or not its bytes shrank, so a
/// run without a state can tell an edit of its file by a HEAD (see `head`). `None` for any other
/// entry, whose object's own size says it.
pub(super) fn recorded_source(file: &LocalFile, source: u64) -> Option<String> {
    file.encoding().map(|_| source.to_string())
}

/// What a trip to the blocking pool prepared for an upload.
pub(super) enum Content {
    /// A small file read whole: its bytes, or its compressed bytes (`encoding`) when the entry is
    /// compressed and they are fewer.
    Whole { bytes: Vec<u8>, encoding: Option<Encoding> },
    /// A large file sent as it is, read from disk as it is sent.
    Stream,
    /// A large file compressed into a temporary file.
    Spooled(Spool),
}

/// What a stat says of a file: its size and mtime.
pub(super) type Stat = (u64, Option<SystemTime>);

pub(super) type Opened = Result<(Stat, Content), UploadError>;

/// Stats the file and checks it can be read, in one trip to the blocking pool; a small file is
/// read whole on the same trip, a compressed entry compressed.
pub(super) async fn open(path: &Path, encoding: Option<Encoding>) -> Opened {
    let (mut opened, _) = open_and_check(vec![(path.to_owned(), encoding)], Vec::new()).await;
    opened.pop().unwrap_or(Err(UploadError::NoFile))
}

/// [`open`] of each file of `files`, and on the same trip the stat of each of `checks`, files
/// uploaded before (`None`: an entry without a file): one trip for a batch of small files and the
/// checks of the batch before it. The answers come in the order asked.
pub(super) async fn open_and_check(
    files: Vec<(PathBuf, Option<Encoding>)>,
    checks: Vec<Option<PathBuf>>,
) -> (Vec<Opened>, Vec<Result<Stat, UploadError>>) {
    let trip = tokio::task::spawn_blocking(move || {
        let checked = checks.iter().map(|c| c.as_deref().map_or(Err(UploadError::NoFile), stat_now)).collect();
        (files.iter().map(|(path, encoding)| open_now(path, *encoding)).collect(), checked)
    });
    match trip.await {
        Ok(done) => done,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// [`stat`] of each of `paths`, in one trip.
pub(super) async fn stat_all(paths: Vec<Option<PathBuf>>) -> Vec<Result<Stat, UploadError>> {
    open_and_check(Vec::new(), paths).await.1
}

fn open_now(path: &Path, encoding: Option<Encoding>) -> Opened {
    // The body is otherwise opened only as it is sent; a file we may not read should say so, not
    // fail deep inside the HTTP client.
    let (mut handle, meta) = crate::disk::open_regular(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => UploadError::Vanished,
        std::io::ErrorKind::InvalidInput => UploadError::NotAFile,
        _ => UploadError::Read(e),
    })?;
    let stat = (meta.len(), meta.modified().ok());
    if stat.0 > READ_WHOLE {
        return match encoding {
            None => Ok((stat, Content::Stream)),
            Some(encoding) => {
                let spooled = packed::spool(handle, encoding).map_err(|e| match e {
                    PumpError::Read(e) => UploadError::Read(e),
                    PumpError::Write(e) => UploadError::Compress(e),
                })?;
                Ok((stat, spooled.map_or(Content::Stream, Content::Spooled)))
            }
        };
    }
    let mut bytes = Vec::with_capacity(stat.0 as usize);
    handle.read_to_end(&mut bytes).map_err(UploadError::Read)?;
    // A file that changed while it was read is sent anyway: the check after the upload sees it.
    let content = match encoding {
        None => Content::Whole { bytes, encoding: None },
        Some(encoding) => {
            let (bytes, encoding) = packed::in_memory(bytes, encoding).map_err(UploadError::Compress)?;
            Content::Whole { bytes, encoding }
        }
    };
    Ok((stat, content))
}

pub(super) async fn stat(path: &Path) -> Result<Stat, UploadError> {
    let path = path.to_owned();
    match tokio::task::spawn_blocking(move || stat_now(&path)).await {
        Ok(stat) => stat,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

fn stat_now(path: &Path) -> Result<Stat, UploadError> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => UploadError::Vanished,
        _ => UploadError::Read(e),
    })?;
    if !meta.is_file() {
        return Err(UploadError::NotAFile);
    }
    Ok((meta.len(), meta.modified().ok()))
}
