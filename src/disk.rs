//! Temporary files for what a run keeps out of memory (pages and copies waiting for their phase,
//! the record of applied changes, a compressed body, the ledger of retired keys), the small binary
//! encoding they are written in, and opening a source file to read it. A range of a temporary file
//! is uploaded by `s3client::body`.
//!
//! The files are unlinked as soon as they are created, so no other process can open them and
//! they vanish with their last handle, even when the run is killed.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

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
