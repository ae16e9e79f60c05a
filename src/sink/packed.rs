//! The bytes a compressed entry is uploaded with, made from its file as the upload reads it.
//!
//! A small file (one read whole, see `file::READ_WHOLE`) is compressed in memory. A large one is
//! compressed as it is read into an unlinked temporary file ([`compress::to_temp_file`]), which
//! also gives the MD5 of what it wrote, and sent from there: memory stays at the encoder's window
//! and a buffer, whatever the file's size, and the Content-Length (and whether it goes up in
//! parts) is the compressed length. The body sent from the temporary file reads it at offsets
//! (`s3client::body`), so the SDK can build it again for a retry, and each part of a multipart
//! upload is its own range. Bytes that do not shrink are not sent: the file goes as it is.

use std::fs::File;
use std::io;
use std::sync::Arc;

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
