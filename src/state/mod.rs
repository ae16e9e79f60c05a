//! The local state: what the last runs learned of each key, so the next one reads no byte it
//! need not.
//!
//! Per key it records the file's size, mtime and MD5 (when a run read the file) and the object's
//! ETag and `LastModified` as that run saw or made them (for an upload, the window its
//! `LastModified` must fall in). A file with the same size and mtime as recorded, whose object is
//! unchanged since, is the same without being read; one whose mtime moved (a rebuild) is read and
//! compared with the recorded MD5 when the listing's ETag cannot tell.
//!
//! One file per target and source (`$XDG_CACHE_HOME/sitesync/`, else `~/.cache/sitesync/`, or
//! `state_dir`), named after a hash of both. It is stored sorted by key and read as a cursor that
//! moves forward with the walk, so memory stays flat at millions of files; it is checked whole
//! before it is used (its header, its identity, and a checksum and count at its end), so a state
//! that is corrupt, truncated, from another version or for another target is ignored with a
//! warning, never trusted. It is replaced atomically (a temporary file renamed over it), so a run
//! killed while writing it leaves the old one. `save` writes it after a run; `trusted` reads it as
//! the remote side (`--trust-state`).

mod cursor;

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use md5::{Digest, Md5};

pub use cursor::Cursor;

use crate::disk::{get_array, get_bytes, get_string, get_u64, put_bytes, put_u64};
pub use crate::error::Unusable;
use crate::journal::{get_known, put_known};
pub use crate::model::Known;

/// The first line of a state file; the version changes with the format.
const MAGIC: &[u8] = b"sitesync-state 1\n";

/// What follows the last record, before the count and the checksum.
const END: &[u8; 4] = b"\0end";

fn write_record(out: &mut impl Write, key: &str, known: &Known) -> io::Result<()> {
    put_bytes(out, key.as_bytes())?;
    put_known(out, known)
}

fn read_record(input: &mut impl Read) -> io::Result<(String, Known)> {
    let key = get_string(input)?;
    Ok((key, get_known(input)?))
}

/// Writes a state file: the header, the records in key order, then their count and checksum.
pub struct Writer<W: Write> {
    out: W,
    hasher: Md5,
    count: u64,
    last: Option<String>,
}

impl<W: Write> Writer<W> {
    pub fn new(mut out: W, identity: &str) -> io::Result<Writer<W>> {
        out.write_all(MAGIC)?;
        put_bytes(&mut out, identity.as_bytes())?;
        Ok(Writer { out, hasher: Md5::new(), count: 0, last: None })
    }

    /// Adds a record; keys must come in increasing order.
    pub fn push(&mut self, key: &str, known: &Known) -> io::Result<()> {
        if self.last.as_deref().is_some_and(|last| key <= last) {
            return Err(io::Error::other(format!("state records out of order at {key:?}")));
        }
        let mut record = Vec::with_capacity(key.len() + 80);
        write_record(&mut record, key, known)?;
        self.hasher.update(&record);
        self.out.write_all(&record)?;
        self.count += 1;
        self.last = Some(key.to_owned());
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(END)?;
        put_u64(&mut self.out, self.count)?;
        self.out.write_all(&self.hasher.finalize())?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// A state file checked whole, ready to be read in key order from the start, or from any block
/// of [`INDEX_EVERY`] records.
pub struct Reader {
    input: BufReader<At>,
    left: u64,
    index: Arc<Index>,
}

/// Where every [`INDEX_EVERY`]th record starts: enough to start reading near any key, for a few
/// bytes per thousand records.
#[derive(Debug, Default)]
pub struct Index {
    file: Option<Arc<File>>,
    /// The first key of each block, where it starts, and its record's ordinal.
    marks: Vec<(String, u64)>,
    count: u64,
}

/// Records per block of the index.
pub const INDEX_EVERY: u64 = 512;

impl Index {
    /// The block whose records may hold `key`; `None` when the state's first key is after it.
    pub fn block_of(&self, key: &str) -> Option<usize> {
        self.marks.partition_point(|(first, _)| first.as_str() <= key).checked_sub(1)
    }

    /// The first key of `block`, when there is such a block.
    pub fn first_key(&self, block: usize) -> Option<&str> {
        self.marks.get(block).map(|(key, _)| key.as_str())
    }
}

/// Reads a shared open file from a position of its own (`pread`), so several readers of one
/// file never move each other, and all read the file that was checked, even if it is replaced.
struct At {
    file: Arc<File>,
    pos: u64,
}

impl Read for At {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Reader {
    /// Opens the state at `path` for `identity`, checking it whole first. `Ok(None)`: no state.
    pub fn open(path: &Path, identity: &str) -> Result<Option<Reader>, Unusable> {
        let file = match File::open(path) {
            Ok(file) => Arc::new(file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut input = BufReader::with_capacity(256 * 1024, At { file: file.clone(), pos: 0 });
        let mut index = check(&mut input, identity)?;
        index.file = Some(file.clone());
        let mut input = BufReader::with_capacity(256 * 1024, At { file, pos: 0 });
        skip_header(&mut input)?;
        Ok(Some(Reader { left: index.count, input, index: Arc::new(index) }))
    }

    /// A reader of the same file from the start of `block` of its index.
    pub fn at_block(&self, block: usize) -> Reader {
        let (file, (_, offset)) = (self.index.file.clone().expect("an opened state"), &self.index.marks[block]);
        let input = BufReader::with_capacity(64 * 1024, At { file, pos: *offset });
        let left = self.index.count - block as u64 * INDEX_EVERY;
        Reader { input, left, index: self.index.clone() }
    }

    pub fn index(&self) -> &Arc<Index> {
        &self.index
    }

    /// The next record, in key order.
    pub fn next_record(&mut self) -> io::Result<Option<(String, Known)>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        read_record(&mut self.input).map(Some)
    }
}

fn skip_header(input: &mut impl BufRead) -> Result<String, Unusable> {
    let mut magic = Vec::new();
    input.read_until(b'\n', &mut magic)?;
    if magic != MAGIC {
        return Err(Unusable::Version);
    }
    let identity = get_bytes(input).map_err(|e| Unusable::Corrupt(e.to_string()))?;
    String::from_utf8(identity).map_err(|_| Unusable::Corrupt("identity".into()))
}

/// Reads the whole file, checking its header, identity, records, count and checksum, and indexes
/// where its blocks start.
fn check(input: &mut impl BufRead, identity: &str) -> Result<Index, Unusable> {
    if skip_header(input)? != identity {
        return Err(Unusable::Identity);
    }
    let corrupt = |e: io::Error| Unusable::Corrupt(e.to_string());
    let mut hasher = Md5::new();
    let mut index = Index::default();
    let mut offset = (MAGIC.len() + 8 + identity.len()) as u64;
    let mut record = Vec::new();
    loop {
        // The end marker cannot begin a record: its first bytes would be a key over 1 GB long.
        let head: [u8; 4] = get_array(input).map_err(corrupt)?;
        if &head == END {
            break;
        }
        let (key, known) = read_record(&mut (&head[..]).chain(&mut *input)).map_err(corrupt)?;
        record.clear();
        write_record(&mut record, &key, &known)?;
        hasher.update(&record);
        if index.count.is_multiple_of(INDEX_EVERY) {
            index.marks.push((key, offset));
        }
        offset += record.len() as u64;
        index.count += 1;
    }
    let stated = get_u64(input).map_err(corrupt)?;
    let sum: [u8; 16] = get_array(input).map_err(corrupt)?;
    if stated != index.count || sum[..] != hasher.finalize()[..] {
        return Err(Unusable::Corrupt("its checksum does not match".into()));
    }
    Ok(index)
}

/// Opens the state for a run, or says on stderr why it is not used.
pub fn open_for_run(path: &Path, identity: &str) -> Option<Reader> {
    match Reader::open(path, identity) {
        Ok(reader) => reader,
        Err(why) => {
            tracing::warn!("ignoring the local state {}: {why}", path.display());
            None
        }
    }
}

/// Writes the state through a temporary file beside `path`, renamed over it at the end.
pub fn replace(
    path: &Path,
    write: impl FnOnce(&mut Writer<BufWriter<File>>) -> io::Result<()>,
    identity: &str,
) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let temp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("state"),
        std::process::id()
    ));
    let written = (|| {
        let mut writer = Writer::new(BufWriter::new(File::create(&temp)?), identity)?;
        write(&mut writer)?;
        let file = writer.finish()?.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    })();
    match written {
        Ok(()) => std::fs::rename(&temp, path),
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests;
