//! A body the SDK can send again, read from a file at offsets: a retry, or each part of a
//! multipart upload, reads its own range of one file, on the blocking pool, piece by piece.

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

/// `length` bytes of `file` from `offset`, as a body the SDK can send again.
pub fn from_file(file: Arc<File>, offset: u64, length: u64) -> ByteStream {
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
        let stream = from_file(file.clone(), offset, length);
        let body = stream.into_inner();
        let again = body.try_clone().expect("retryable");
        for body in [body, again] {
            let got = ByteStream::new(body).collect().await.unwrap().into_bytes();
            assert_eq!(&got[..], &bytes[offset as usize..(offset + length) as usize]);
        }
    }
}
