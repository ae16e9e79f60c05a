//! The bytes a compressed entry is uploaded with, made from its file as the upload reads it.
//!
//! A small file (one read whole, see `file::READ_WHOLE`) is compressed in memory. A large one is
//! compressed as it is read into an unlinked temporary file ([`compress::to_temp_file`]), which
//! also gives the MD5 of what it wrote, and sent from there: memory stays at the encoder's window
//! and a buffer, whatever the file's size, and the Content-Length (and whether it goes up in
//! parts) is the compressed length. The body sent from the temporary file reads it at offsets
//! ([`SpoolBody`]), so the SDK can build it again for a retry, and each part of a multipart
//! upload is its own range. Bytes that do not shrink are not sent: the file goes as it is.

use std::fs::File;
use std::future::Future;
use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::task::JoinHandle;

use crate::content::compress::{self, Encoding, PumpError};

/// A large file's compressed bytes, in an unlinked temporary file.
pub(super) struct Spool {
    pub file: Arc<File>,
    pub len: u64,
    /// The MD5 of the compressed bytes, for the local state.
    pub md5: [u8; 16],
    pub encoding: Encoding,
}

/// A small file's bytes to send: compressed (with their encoding), or as they are when
/// compressing does not shrink them.
pub(super) fn in_memory(bytes: Vec<u8>, encoding: Encoding) -> io::Result<(Vec<u8>, Option<Encoding>)> {
    let packed = compress::in_memory(&bytes, encoding)?;
    Ok(match compress::shrinks(packed.len() as u64, bytes.len() as u64) {
        true => (packed, Some(encoding)),
        false => (bytes, None),
    })
}

/// A large file compressed into a temporary file as it is read (a blocking call); `None` when
/// that does not shrink it.
pub(super) fn spool(source: File, encoding: Encoding) -> Result<Option<Spool>, PumpError> {
    let spooled = compress::to_temp_file(source, encoding)?;
    if !compress::shrinks(spooled.len, spooled.read) {
        return Ok(None);
    }
    Ok(Some(Spool { file: Arc::new(spooled.file), len: spooled.len, md5: spooled.md5, encoding }))
}

/// `length` bytes of `file` from `offset`, as a body the SDK can send again.
pub(super) fn body(file: Arc<File>, offset: u64, length: u64) -> ByteStream {
    let make = move || SdkBody::from_body_1_x(SpoolBody::new(file.clone(), offset, offset + length));
    ByteStream::new(SdkBody::retryable(make))
}

/// Bytes read from the temporary file at a time.
const PIECE: u64 = 256 * 1024;

/// A range of a file, read piece by piece on the blocking pool at its own offsets, so several
/// bodies (a retry, the parts of an upload) can read one file at once.
struct SpoolBody {
    file: Arc<File>,
    offset: u64,
    end: u64,
    reading: Option<JoinHandle<io::Result<Bytes>>>,
}

impl SpoolBody {
    fn new(file: Arc<File>, offset: u64, end: u64) -> SpoolBody {
        SpoolBody { file, offset, end, reading: None }
    }
}

impl Body for SpoolBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        if this.reading.is_none() {
            if this.offset >= this.end {
                return Poll::Ready(None);
            }
            let (file, offset, len) = (this.file.clone(), this.offset, (this.end - this.offset).min(PIECE));
            this.reading = Some(tokio::task::spawn_blocking(move || {
                let mut piece = vec![0; len as usize];
                file.read_exact_at(&mut piece, offset)?;
                Ok(Bytes::from(piece))
            }));
        }
        let Some(reading) = this.reading.as_mut() else { return Poll::Ready(None) };
        let read = match Pin::new(reading).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(read) => read,
        };
        this.reading = None;
        match read {
            Ok(Ok(piece)) => {
                this.offset += piece.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(piece))))
            }
            Ok(Err(e)) => Poll::Ready(Some(Err(e))),
            Err(e) => Poll::Ready(Some(Err(io::Error::other(e)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.reading.is_none() && self.offset >= self.end
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.end - self.offset)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[tokio::test]
    async fn a_range_of_the_spool_reads_back_and_again() {
        let mut file = crate::disk::anonymous_file("test").unwrap();
        let bytes: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        file.write_all(&bytes).unwrap();
        let file = Arc::new(file);
        let (offset, length) = (300_001, 600_000);
        let stream = body(file.clone(), offset, length);
        let body = stream.into_inner();
        let again = body.try_clone().expect("retryable");
        for body in [body, again] {
            let got = ByteStream::new(body).collect().await.unwrap().into_bytes();
            assert_eq!(&got[..], &bytes[offset as usize..(offset + length) as usize]);
        }
    }
}
