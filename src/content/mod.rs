//! Whether a file's bytes are the object's: the one place where content is compared.
//!
//! An object's ETag is, unless it is encrypted with SSE-KMS or SSE-C, the hex MD5 of its bytes
//! (a single PutObject) or the MD5 of its parts' MD5s followed by `-N` (a multipart upload of N
//! parts). The listing gives it for free, so a file is compared with its object by reading the
//! file once and computing its MD5 and, for a multipart ETag, the ETag it would have had with
//! each part size that gives N parts: sitesync's own, and the common tools' defaults (8 MiB: the
//! aws cli and s3sync; 5 MiB: rclone; 16 MiB). When the ETag says nothing (encrypted, an unknown
//! part size, a server that lists none), the local state may: it recorded the MD5 of what a run
//! uploaded or checked, and the ETag and `LastModified` the object had then. Bodies that are not
//! the file itself (compressed, generated) are compared by what would be uploaded, through the
//! same [`Digest`].

pub mod compress;

use std::io::Write;
use std::path::Path;

use md5::{Digest as _, Md5};

use crate::model::{Encoding, Known, Reason, RemoteObject, Settled, Time};
use compress::{Encoder, PumpError};

const MIB: u64 = 1024 * 1024;

/// Part sizes other tools upload with, besides sitesync's own.
const COMMON_PARTS: [u64; 3] = [8 * MIB, 5 * MIB, 16 * MIB];

/// What reading a body once tells of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    /// The MD5 of the bytes an upload sends (compressed, for a compressed entry).
    pub md5: [u8; 16],
    /// The multipart ETags (`hex-N`) of the part sizes asked for.
    pub multipart: Vec<String>,
    /// Bytes read from the file (more than were digested when they were compressed).
    pub bytes: u64,
}

/// Which multipart ETags a read must compute to compare with `etag`, for a body of `size`.
pub fn part_sizes(etag: Option<&str>, size: u64, own_part: u64) -> Vec<u64> {
    let Some(parts) = etag.and_then(multipart_count) else { return Vec::new() };
    // A tool grows its part size so a file stays within S3's 10,000 parts.
    let own = own_part.max(size.div_ceil(10_000));
    let mut sizes: Vec<u64> = std::iter::once(own).chain(COMMON_PARTS).filter(|p| size.div_ceil(*p) == parts).collect();
    sizes.dedup();
    sizes
}

/// `N` of a multipart ETag `hex-N`.
fn multipart_count(etag: &str) -> Option<u64> {
    let (hex, n) = etag.split_once('-')?;
    (hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(())?;
    n.parse().ok().filter(|n| *n >= 1)
}

/// Reads `path` once, computing the MD5 and the multipart ETags for `parts` of the bytes an
/// upload sends: the file's own, or, with an `encoding`, the compressed ones when they are fewer
/// (a blocking read: call it off the async runtime's workers).
pub fn digest(path: &Path, encoding: Option<Encoding>, parts: &[u64]) -> std::io::Result<Digest> {
    let (file, _) = crate::disk::open_regular(path)?;
    let mut plain = Hasher::new(parts);
    let Some(encoding) = encoding else {
        compress::pump(file, |piece| plain.write_all(piece)).map_err(pumped)?;
        return Ok(plain.finish());
    };
    // Both at once: which one is sent is known only at the end.
    let mut packed = Encoder::new(encoding, Hasher::new(parts));
    compress::pump(file, |piece| {
        plain.update(piece);
        packed.write_all(piece)
    })
    .map_err(pumped)?;
    let packed = packed.finish()?;
    let read = plain.bytes;
    let sent = if compress::shrinks(packed.bytes, read) { packed.finish() } else { plain.finish() };
    Ok(Digest { bytes: read, ..sent })
}

fn pumped(e: PumpError) -> std::io::Error {
    match e {
        PumpError::Read(e) | PumpError::Write(e) => e,
    }
}

/// The same digest of bytes already in memory (an inline body): what [`digest`] would say of a
/// file holding them.
pub fn digest_of(bytes: &[u8], parts: &[u64]) -> Digest {
    let mut hasher = Hasher::new(parts);
    hasher.update(bytes);
    hasher.finish()
}

/// The running digest of a stream of bytes: its MD5, its multipart ETags, its length.
pub struct Hasher {
    whole: Md5,
    multipart: Vec<Parts>,
    bytes: u64,
}

impl Hasher {
    /// A digest that also computes the multipart ETags of `parts` (part sizes).
    pub fn new(parts: &[u64]) -> Hasher {
        Hasher { whole: Md5::new(), multipart: parts.iter().map(|&size| Parts::new(size)).collect(), bytes: 0 }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.whole.update(bytes);
        for p in &mut self.multipart {
            p.update(bytes);
        }
        self.bytes += bytes.len() as u64;
    }

    pub fn finish(self) -> Digest {
        let multipart = self.multipart.into_iter().map(Parts::etag).collect();
        Digest { md5: self.whole.finalize().into(), multipart, bytes: self.bytes }
    }
}

impl Write for Hasher {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The MD5 of bytes already in memory.
pub fn md5_of(bytes: &[u8]) -> [u8; 16] {
    Md5::digest(bytes).into()
}

/// The running parts of a multipart ETag.
struct Parts {
    size: u64,
    filled: u64,
    current: Md5,
    digests: Vec<u8>,
    count: u64,
}

impl Parts {
    fn new(size: u64) -> Parts {
        Parts { size, filled: 0, current: Md5::new(), digests: Vec::new(), count: 0 }
    }

    fn update(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let take = ((self.size - self.filled) as usize).min(bytes.len());
            self.current.update(&bytes[..take]);
            self.filled += take as u64;
            bytes = &bytes[take..];
            if self.filled == self.size {
                self.close();
            }
        }
    }

    fn close(&mut self) {
        let part = std::mem::replace(&mut self.current, Md5::new());
        self.digests.extend_from_slice(&part.finalize());
        self.filled = 0;
        self.count += 1;
    }

    fn etag(mut self) -> String {
        if self.filled > 0 || self.count == 0 {
            self.close();
        }
        format!("{}-{}", hex(&Md5::digest(&self.digests)), self.count)
    }
}

/// `bytes` in lowercase hexadecimal, as S3 writes an ETag and SigV4 a digest.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 * bytes.len());
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// What a digest says of an object's ETag: equal, different, or nothing (the ETag is absent, or
/// of a form this digest cannot reproduce).
fn etag_says(digest: &Digest, etag: Option<&str>) -> Option<bool> {
    let etag = etag?.to_ascii_lowercase();
    if multipart_count(&etag).is_some() {
        if digest.multipart.is_empty() {
            return None;
        }
        return Some(digest.multipart.contains(&etag));
    }
    single_part(&etag).then(|| etag == hex(&digest.md5))
}

/// Whether an ETag can be compared with a file of `size` without an extra request.
pub fn comparable(etag: Option<&str>, size: u64, own_part: u64) -> bool {
    match etag {
        Some(e) if multipart_count(e).is_some() => !part_sizes(Some(e), size, own_part).is_empty(),
        Some(e) => single_part(e),
        None => false,
    }
}

/// Whether the object is still the one the state recorded: the same ETag when both are known,
/// else a `LastModified` within the window the state recorded (widened by a second for servers
/// that list whole seconds).
pub fn unchanged_since(object: &RemoteObject, known: &Known) -> bool {
    seen_again(object.etag.as_deref(), (object.last_modified, object.last_modified), known)
}

/// Whether two records of a key describe one object: [`unchanged_since`] for what a run learned.
pub fn same_object(now: &Known, then: &Known) -> bool {
    seen_again(now.etag.as_deref(), (now.lm_lo, now.lm_hi), then)
}

fn seen_again(etag: Option<&str>, (lo, hi): (Time, Time), then: &Known) -> bool {
    if let (Some(now), Some(then)) = (etag, &then.etag) {
        return now.eq_ignore_ascii_case(then);
    }
    lo.0 >= then.lm_lo.0 - Time::NANOS_PER_SEC && hi.0 <= then.lm_hi.0 + Time::NANOS_PER_SEC
}

/// Whether an ETag is a single-part object's: the hex MD5 of its bytes (unless it is encrypted).
pub fn single_part(etag: &str) -> bool {
    etag.len() == 32 && etag.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Compares a digest with the object's ETag, then with the MD5 the state recorded for the object
/// as it still is (the same ETag, or `LastModified`); `otherwise` is the verdict when neither can
/// tell. The record's "same" stands over an ETag's "different" only because a record pairs an MD5
/// with the ETag of the bytes it is the MD5 of (see `state::save`): then the ETag is not an MD5
/// (SSE-KMS, SSE-C) and only looks like one.
pub fn compare(digest: &Digest, object: &RemoteObject, known: Option<&Known>, otherwise: Settled) -> Settled {
    let recorded = known.filter(|k| k.md5.is_some() && unchanged_since(object, k));
    let state_says = recorded.map(|k| k.md5 == Some(digest.md5));
    match (etag_says(digest, object.etag.as_deref()), state_says) {
        (Some(true), _) | (_, Some(true)) => Settled::Same,
        (Some(false), _) | (None, Some(false)) => Settled::Upload(Reason::Content),
        (None, None) => otherwise,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(etag: Option<&str>) -> RemoteObject {
        RemoteObject { key: "k".into(), size: 0, last_modified: Time(0), etag: etag.map(str::to_owned) }
    }

    fn file(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, bytes).unwrap();
        f
    }

    #[test]
    fn single_part_etags_are_the_md5() {
        let f = file(b"hello");
        let d = digest(f.path(), None, &[]).unwrap();
        assert_eq!(hex(&d.md5), "5d41402abc4b2a76b9719d911017c592");
        let same = object(Some("5D41402ABC4B2A76B9719D911017C592"));
        assert_eq!(compare(&d, &same, None, Settled::Upload(Reason::Newer)), Settled::Same);
        let other = object(Some("00000000000000000000000000000000"));
        assert_eq!(compare(&d, &other, None, Settled::Same), Settled::Upload(Reason::Content));
        assert_eq!(compare(&d, &object(None), None, Settled::Upload(Reason::Newer)), Settled::Upload(Reason::Newer));
    }

    #[test]
    fn multipart_etags_are_recomputed_for_the_part_sizes_that_fit() {
        // 13 MiB in 8 MiB parts is 2 parts; in 5 MiB parts, 3.
        let bytes: Vec<u8> = (0..13 * MIB).map(|i| (i % 251) as u8).collect();
        let f = file(&bytes);
        let mut parts = bytes.chunks(8 * MIB as usize).map(md5_of).collect::<Vec<_>>().concat();
        let aws_cli = format!("{}-2", hex(&md5_of(&parts)));
        assert_eq!(part_sizes(Some(&aws_cli), 13 * MIB, 16 * MIB), [8 * MIB]);
        let d = digest(f.path(), None, &part_sizes(Some(&aws_cli), 13 * MIB, 16 * MIB)).unwrap();
        assert_eq!(compare(&d, &object(Some(&aws_cli)), None, Settled::Upload(Reason::Newer)), Settled::Same);
        parts = bytes.chunks(5 * MIB as usize).map(md5_of).collect::<Vec<_>>().concat();
        let rclone = format!("{}-3", hex(&md5_of(&parts)));
        let d = digest(f.path(), None, &part_sizes(Some(&rclone), 13 * MIB, 16 * MIB)).unwrap();
        assert_eq!(compare(&d, &object(Some(&rclone)), None, Settled::Upload(Reason::Newer)), Settled::Same);
        // Seven parts fit no known part size: the ETag says nothing.
        let unknown = format!("{}-7", hex(&md5_of(b"x")));
        assert!(!comparable(Some(&unknown), 13 * MIB, 16 * MIB));
        assert!(comparable(Some(&aws_cli), 13 * MIB, 16 * MIB));
    }

    #[test]
    fn bytes_in_memory_digest_as_the_same_file_would() {
        let bytes: Vec<u8> = (0..6 * MIB).map(|i| (i % 253) as u8).collect();
        let f = file(&bytes);
        let parts = [5 * MIB, 8 * MIB];
        let from_memory = digest_of(&bytes, &parts);
        assert_eq!(from_memory, digest(f.path(), None, &parts).unwrap());
        assert_eq!(from_memory.md5, md5_of(&bytes));
        assert_eq!(from_memory.bytes, 6 * MIB);
        assert_eq!(from_memory.multipart.len(), 2);
        assert!(from_memory.multipart[0].ends_with("-2") && from_memory.multipart[1].ends_with("-1"));
    }

    #[test]
    fn a_compressed_body_is_digested_as_it_is_sent() {
        let css: Vec<u8> = (0..50_000).map(|i| b"h1 { color: red }\n"[i % 17]).collect();
        for encoding in [Encoding::Gzip, Encoding::Br] {
            let sent = compress::in_memory(&css, encoding).unwrap();
            let d = digest(file(&css).path(), Some(encoding), &[]).unwrap();
            assert_eq!((d.md5, d.bytes), (md5_of(&sent), css.len() as u64), "{encoding:?}");
        }
        // Noise does not shrink: what is sent, and digested, is the file as it is.
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let noise: Vec<u8> = (0..5000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let d = digest(file(&noise).path(), Some(Encoding::Gzip), &[]).unwrap();
        assert_eq!((d.md5, d.bytes), (md5_of(&noise), 5000));
    }

    #[test]
    fn a_fifo_is_refused_at_once_instead_of_waiting_for_a_writer() {
        // A file that became a FIFO after the scan: opening it to read would wait for a writer.
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(digest(&fifo, None, &[]).map(|_| ())));
        let read = rx.recv_timeout(std::time::Duration::from_secs(30)).expect("reading a FIFO hung");
        let error = read.expect_err("a FIFO is not a file to publish");
        assert!(error.to_string().contains("not a regular file"), "{error}");
    }

    #[test]
    fn an_opaque_etag_falls_back_to_the_state() {
        let f = file(b"hello");
        let d = digest(f.path(), None, &[]).unwrap();
        // SSE-KMS: 32 hex digits that are not the MD5.
        let object = object(Some("0123456789abcdef0123456789abcdef"));
        let known = Known {
            size: 5,
            mtime: Time(1),
            md5: Some(d.md5),
            etag: Some("0123456789abcdef0123456789abcdef".into()),
            lm_lo: Time(0),
            lm_hi: Time(0),
        };
        assert_eq!(compare(&d, &object, Some(&known), Settled::Same), Settled::Same);
        let rewritten = Known { etag: Some("ffffffffffffffffffffffffffffffff".into()), ..known };
        assert_eq!(compare(&d, &object, Some(&rewritten), Settled::Same), Settled::Upload(Reason::Content));
    }
}
