//! Temporary files for what a run keeps out of memory (pages and copies waiting for their phase,
//! the record of applied changes, a compressed body, the ledger of retired keys), the small binary
//! encoding they are written in, the body that uploads a range of one ([`body`]: read at its own
//! offsets on the blocking pool, so the SDK can send it again), and opening a source file to read
//! it.
//!
//! The files are unlinked as soon as they are created, so no other process can open them and
//! they vanish with their last handle, even when the run is killed.

use std::fs::File;
use std::future::Future;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::task::JoinHandle;

/// Opens a source file to read it, refusing at once what is not a regular file. The scan found a
/// file at `path`, but it may have been replaced since, and opening a FIFO to read waits for a
/// writer: so it is opened without waiting (`O_NONBLOCK`, which changes nothing for a regular
/// file) and its type checked through the handle, so what is read is what was checked.
pub fn open_regular(path: &Path) -> io::Result<(File, std::fs::Metadata)> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = File::options().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, NOT_A_FILE));
    }
    Ok((file, meta))
}

/// Why [`open_regular`] refused a path.
pub const NOT_A_FILE: &str = "not a regular file (FIFO, socket or device)";

/// A temporary file that no other process can open and that vanishes with its last handle.
pub fn anonymous_file(what: &str) -> io::Result<File> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("sitesync-{what}-{}-{n}", std::process::id()));
    let file = File::options().read(true).write(true).create_new(true).open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

pub fn put_u64(out: &mut impl Write, n: u64) -> io::Result<()> {
    out.write_all(&n.to_le_bytes())
}

pub fn get_u64(input: &mut impl Read) -> io::Result<u64> {
    Ok(u64::from_le_bytes(get_array(input)?))
}

pub fn put_bytes(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    put_u64(out, bytes.len() as u64)?;
    out.write_all(bytes)
}

/// No field these files hold is longer (a path, a key, a JSON of headers): a longer length is a
/// corrupt file, not a reason to allocate it.
const MAX_FIELD: u64 = 1 << 20;

pub fn get_bytes(input: &mut impl Read) -> io::Result<Vec<u8>> {
    get_bytes_up_to(input, MAX_FIELD)
}

/// A field that may be longer than [`get_bytes`] allows (an inline body), up to `max` bytes.
pub fn get_bytes_up_to(input: &mut impl Read, max: u64) -> io::Result<Vec<u8>> {
    let len = get_u64(input)?;
    if len > max {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("a field of {len} bytes")));
    }
    let len = len as usize;
    let mut buf = vec![0; len];
    input.read_exact(&mut buf)?;
    Ok(buf)
}

pub fn get_string(input: &mut impl Read) -> io::Result<String> {
    String::from_utf8(get_bytes(input)?).map_err(io::Error::other)
}

pub fn put_option(out: &mut impl Write, bytes: Option<&[u8]>) -> io::Result<()> {
    out.write_all(&[u8::from(bytes.is_some())])?;
    bytes.map_or(Ok(()), |b| put_bytes(out, b))
}

pub fn get_option(input: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    match get_array::<1>(input)? {
        [0] => Ok(None),
        _ => get_bytes(input).map(Some),
    }
}

pub fn get_array<const N: usize>(input: &mut impl Read) -> io::Result<[u8; N]> {
    let mut buf = [0; N];
    input.read_exact(&mut buf)?;
    Ok(buf)
}

/// `length` bytes of `file` from `offset`, as a body the SDK can send again.
pub fn body(file: Arc<File>, offset: u64, length: u64) -> ByteStream {
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
        let mut file = anonymous_file("test").unwrap();
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
