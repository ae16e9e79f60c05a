//! Pre-compression of a body, the same bytes every time: the one encoder the upload and the
//! content check share.
//!
//! S3 compares nothing but bytes: an unchanged file must compress to the very same bytes on every
//! run, or every run would find it changed. So the settings are fixed here: gzip at level 9
//! (flate2's best; miniz_oxide, pure Rust) with a header that holds no time, no file name and a
//! fixed OS byte (255, "unknown"); brotli at quality 7 with a 1 MiB window (`lgwin` 20; most web
//! assets fit in it whole). Neither encoder holds more than its window, its tables and a fixed
//! buffer, whatever the size of the input (about 0.5 MiB for gzip, 25 MiB for brotli), so a
//! large file is compressed as it is read. A body that does not shrink is
//! published as it is ([`shrinks`]); the upload and the content check both ask that one question,
//! so they agree on what is sent. A new version of flate2 or brotli may compress differently: the
//! next run then finds the objects changed once (`content differs`) and sends them again.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};

use flate2::{Compression, GzBuilder};
use md5::{Digest as _, Md5};

pub use crate::model::Encoding;

/// gzip's level: the smallest output, still fast (about 20 MB/s a core).
pub const GZIP_LEVEL: u32 = 9;

/// brotli's quality. Measured here on 400 source files of 1 to 40 KB: quality 7 is 5% smaller
/// than gzip at level 9 at about its speed; 9 is no smaller and costs 9 ms more a file (its
/// 32 MiB hash table); 11 is 11% smaller but 35 times slower (0.5 MB/s a core), and a rebuilt
/// site's compressed files are compressed again to be compared, on every run.
pub const BROTLI_QUALITY: u32 = 7;

/// brotli's window, as a power of two: 1 MiB.
pub const BROTLI_LGWIN: u32 = 20;

/// The gzip header's OS byte: "unknown", whatever machine compressed it.
const GZIP_OS_UNKNOWN: u8 = 255;

/// Bytes read from the source at a time.
const READ_SIZE: usize = 64 * 1024;

/// Whether `compressed` bytes are sent instead of the `source` bytes they were made from: only
/// when they are fewer.
pub fn shrinks(compressed: u64, source: u64) -> bool {
    compressed < source
}

/// A writer that compresses what it is given into `W`.
pub struct Encoder<W: Write> {
    inner: Inner<W>,
}

enum Inner<W: Write> {
    Gzip(flate2::write::GzEncoder<W>),
    Br(Box<brotli::CompressorWriter<Latch<W>>>),
}

impl<W: Write> Encoder<W> {
    pub fn new(encoding: Encoding, out: W) -> Encoder<W> {
        let inner = match encoding {
            Encoding::Gzip => Inner::Gzip(
                GzBuilder::new().mtime(0).operating_system(GZIP_OS_UNKNOWN).write(out, Compression::new(GZIP_LEVEL)),
            ),
            Encoding::Br => {
                let latch = Latch { out, error: None };
                Inner::Br(Box::new(brotli::CompressorWriter::new(latch, READ_SIZE, BROTLI_QUALITY, BROTLI_LGWIN)))
            }
        };
        Encoder { inner }
    }

    /// Writes the end of the stream and gives the writer back.
    pub fn finish(self) -> io::Result<W> {
        match self.inner {
            Inner::Gzip(gz) => gz.finish(),
            Inner::Br(br) => {
                // brotli's writer drops the error of its last write: the latch kept it.
                let latch = br.into_inner();
                match latch.error {
                    Some(e) => Err(e),
                    None => Ok(latch.out),
                }
            }
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Gzip(gz) => gz.write(buf),
            Inner::Br(br) => br.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Inner::Gzip(gz) => gz.flush(),
            Inner::Br(br) => br.flush(),
        }
    }
}

/// Keeps the first error its writer returned.
struct Latch<W> {
    out: W,
    error: Option<io::Error>,
}

impl<W: Write> Write for Latch<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf).inspect_err(|e| {
            self.error.get_or_insert_with(|| io::Error::new(e.kind(), e.to_string()));
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush().inspect_err(|e| {
            self.error.get_or_insert_with(|| io::Error::new(e.kind(), e.to_string()));
        })
    }
}

/// Why a copy through an encoder stopped: the source could not be read, or the output not be
/// written.
#[derive(Debug, thiserror::Error)]
pub enum PumpError {
    #[error("cannot read the file: {0}")]
    Read(io::Error),
    #[error("cannot write the compressed bytes: {0}")]
    Write(io::Error),
}

/// Reads `input` to its end in fixed-size pieces, giving each to `each` (which writes it
/// somewhere); returns how many bytes were read.
pub fn pump(mut input: impl Read, mut each: impl FnMut(&[u8]) -> io::Result<()>) -> Result<u64, PumpError> {
    let mut buf = vec![0u8; READ_SIZE];
    let mut total = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(PumpError::Read(e)),
        };
        each(&buf[..n]).map_err(PumpError::Write)?;
        total += n as u64;
    }
}

/// A stream compressed into an unlinked temporary file.
pub struct Spooled {
    /// At its end: read it at offsets.
    pub file: File,
    /// Bytes written, and the MD5 of them.
    pub len: u64,
    pub md5: [u8; 16],
    /// Bytes read from the input.
    pub read: u64,
}

/// Compresses `input` into an unlinked temporary file as it is read (a blocking call): memory
/// stays at the encoder's window and two buffers, whatever the size of the input.
pub fn to_temp_file(input: impl Read, encoding: Encoding) -> Result<Spooled, PumpError> {
    let temp = crate::disk::anonymous_file("compressed").map_err(PumpError::Write)?;
    let summed = Summed { out: BufWriter::with_capacity(READ_SIZE, temp), md5: Md5::new(), len: 0 };
    let mut out = Encoder::new(encoding, summed);
    let read = pump(input, |piece| out.write_all(piece))?;
    let summed = out.finish().map_err(PumpError::Write)?;
    let file = summed.out.into_inner().map_err(|e| PumpError::Write(e.into_error()))?;
    Ok(Spooled { file, len: summed.len, md5: summed.md5.finalize().into(), read })
}

/// Counts and hashes what goes through it.
struct Summed<W> {
    out: W,
    md5: Md5,
    len: u64,
}

impl<W: Write> Write for Summed<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.md5.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// `bytes` compressed in memory.
pub fn in_memory(bytes: &[u8], encoding: Encoding) -> io::Result<Vec<u8>> {
    let mut encoder = Encoder::new(encoding, Vec::with_capacity(bytes.len() / 2 + 64));
    encoder.write_all(bytes)?;
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(n: usize) -> Vec<u8> {
        (0..n).map(|i| b"body { color: #2a5d8f; margin: 0 auto; }\n"[i % 41]).collect()
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
        out
    }

    fn unbrotli(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        brotli::Decompressor::new(bytes, 4096).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn the_same_input_gives_the_same_bytes_and_decodes_back() {
        let input = text(100_000);
        for encoding in [Encoding::Gzip, Encoding::Br] {
            let a = in_memory(&input, encoding).unwrap();
            let b = in_memory(&input, encoding).unwrap();
            assert_eq!(a, b, "{encoding:?} is deterministic");
            assert!(shrinks(a.len() as u64, input.len() as u64), "{encoding:?}");
            let back = match encoding {
                Encoding::Gzip => gunzip(&a),
                Encoding::Br => unbrotli(&a),
            };
            assert_eq!(back, input, "{encoding:?}");
        }
    }

    #[test]
    fn the_gzip_header_holds_no_time_no_name_and_a_fixed_os() {
        let gz = in_memory(b"hello hello hello", Encoding::Gzip).unwrap();
        // ID1 ID2 CM FLG MTIME(4) XFL OS: no FNAME flag, mtime 0, OS 255.
        assert_eq!(&gz[..4], &[0x1f, 0x8b, 8, 0], "no flags: no name, no comment, no extra");
        assert_eq!(&gz[4..8], &[0, 0, 0, 0], "mtime 0");
        assert_eq!(gz[9], GZIP_OS_UNKNOWN);
    }

    #[test]
    fn pumping_writes_every_piece_and_names_the_side_that_failed() {
        let input = text(200_000);
        let mut out = Encoder::new(Encoding::Gzip, Vec::new());
        let read = pump(&input[..], |piece| out.write_all(piece)).unwrap();
        assert_eq!(read, input.len() as u64);
        assert_eq!(gunzip(&out.finish().unwrap()), input);
        let failed = pump(&input[..], |_| Err(io::Error::other("disk full"))).unwrap_err();
        assert!(matches!(failed, PumpError::Write(_)), "{failed}");
    }

    #[test]
    fn a_temp_file_holds_what_memory_would() {
        use std::os::unix::fs::FileExt;
        let input = text(300_000);
        for encoding in [Encoding::Gzip, Encoding::Br] {
            let spooled = to_temp_file(&input[..], encoding).unwrap();
            let expected = in_memory(&input, encoding).unwrap();
            let mut back = vec![0; spooled.len as usize];
            spooled.file.read_exact_at(&mut back, 0).unwrap();
            assert_eq!(back, expected, "{encoding:?}");
            assert_eq!((spooled.read, spooled.md5), (input.len() as u64, Md5::digest(&expected).into()));
        }
    }

    #[test]
    fn a_brotli_write_error_is_not_lost_at_the_end() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut encoder = Encoder::new(Encoding::Br, Full);
        let _ = encoder.write_all(b"abc");
        assert!(encoder.finish().is_err());
    }
}
