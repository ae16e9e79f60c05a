//! Pages waiting for the assets, kept in memory up to a point and spilled to disk beyond it.
//!
//! Pages are uploaded after every asset, so on a first sync of a large site every page waits in
//! the sink until the asset phase is over: a million pages would hold hundreds of megabytes. This
//! queue keeps at most two chunks in memory and writes the rest to an unlinked temporary file, in
//! chunks, on the blocking thread pool so the async workers never wait on the disk. An inline body
//! (a generated page) is written out with its entry, bytes and all.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use crate::disk::{
    anonymous_file, get_array, get_bytes, get_bytes_up_to, get_option, get_string, get_u64, put_bytes, put_option,
    put_u64,
};
use crate::model::{Body, Encoding, LocalFile, ObjectMeta, Problem, Time};

/// An upload or copy waiting for its phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Waiting {
    pub file: LocalFile,
    /// No object had the key before.
    pub added: bool,
}

/// Files kept in memory before a chunk is written out, and read back at a time.
pub(super) const CHUNK: usize = 10_000;

#[derive(Default)]
pub(super) struct Spill {
    memory: Vec<Waiting>,
    /// The spill file and how many chunks it holds; `None` until the first chunk is written.
    file: Option<(File, usize)>,
    /// Chunks read back so far.
    read: usize,
    reader: Option<BufReader<File>>,
    /// Set when the disk failed us: everything then stays in memory.
    memory_only: bool,
}

impl Spill {
    pub fn is_empty(&self) -> bool {
        self.memory.is_empty() && self.file.as_ref().is_none_or(|(_, chunks)| *chunks == 0)
    }

    /// Entries held in memory (the rest is on disk).
    #[cfg(test)]
    pub fn in_memory(&self) -> usize {
        self.memory.len()
    }

    pub async fn push(&mut self, waiting: Waiting) {
        self.memory.push(waiting);
        if self.memory.len() < CHUNK || self.memory_only {
            return;
        }
        let chunk = std::mem::take(&mut self.memory);
        let handle = self.file.take();
        let written = tokio::task::spawn_blocking(move || write_chunk(handle, &chunk).map_err(|e| (e, chunk))).await;
        match written {
            Ok(Ok(file)) => self.file = Some(file),
            Ok(Err((e, chunk))) => {
                tracing::warn!("cannot spill waiting pages to a temporary file ({e}); keeping them in memory");
                self.memory = chunk;
                self.memory_only = true;
            }
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// The next chunk of files, in the order they were pushed: spilled chunks first, then memory.
    pub async fn next_chunk(&mut self) -> io::Result<Option<Vec<Waiting>>> {
        if let Some((file, chunks)) = &self.file
            && self.read < *chunks
        {
            let reader = match self.reader.take() {
                Some(reader) => reader,
                None => {
                    let mut file = file.try_clone()?;
                    file.rewind()?;
                    BufReader::new(file)
                }
            };
            let (reader, chunk) = tokio::task::spawn_blocking(move || read_chunk(reader))
                .await
                .map_err(|e| io::Error::other(e.to_string()))??;
            self.reader = Some(reader);
            self.read += 1;
            return Ok(Some(chunk));
        }
        if self.memory.is_empty() { Ok(None) } else { Ok(Some(std::mem::take(&mut self.memory))) }
    }
}

fn write_chunk(handle: Option<(File, usize)>, chunk: &[Waiting]) -> io::Result<(File, usize)> {
    let (file, chunks) = match handle {
        Some(handle) => handle,
        None => (anonymous_file("waiting")?, 0),
    };
    let mut out = BufWriter::new(file);
    put_u64(&mut out, chunk.len() as u64)?;
    for Waiting { file: f, added } in chunk {
        out.write_all(&[u8::from(*added)])?;
        put_bytes(&mut out, f.key.as_bytes())?;
        put_body(&mut out, &f.body)?;
        put_u64(&mut out, f.size)?;
        put_u64(&mut out, f.mtime.0 as u64)?;
        let meta = f.meta.as_deref().map(|m| serde_json::to_vec(m).expect("headers serialise"));
        put_option(&mut out, meta.as_deref())?;
        put_option(&mut out, f.copy_of.as_deref().map(str::as_bytes))?;
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    Ok((file, chunks + 1))
}

fn read_chunk(mut input: BufReader<File>) -> io::Result<(BufReader<File>, Vec<Waiting>)> {
    let count = get_u64(&mut input)? as usize;
    let mut chunk = Vec::with_capacity(count);
    for _ in 0..count {
        let [added] = get_array::<1>(&mut input)?;
        let key = get_string(&mut input)?;
        let body = get_body(&mut input)?;
        let size = get_u64(&mut input)?;
        let mtime = Time(get_u64(&mut input)? as i64);
        let meta = match get_option(&mut input)? {
            Some(json) => Some(Box::new(serde_json::from_slice::<ObjectMeta>(&json).map_err(io::Error::other)?)),
            None => None,
        };
        let copy_of = get_option(&mut input)?.map(String::from_utf8).transpose().map_err(io::Error::other)?;
        let file = LocalFile { key, body, size, mtime, meta, copy_of, known: None };
        chunk.push(Waiting { file, added: added == 1 });
    }
    Ok((input, chunk))
}

fn put_body(out: &mut impl Write, body: &Body) -> io::Result<()> {
    match body {
        Body::File(path) => {
            out.write_all(&[0])?;
            put_bytes(out, path.as_os_str().as_bytes())
        }
        Body::Unreadable(problem) => {
            out.write_all(&[1])?;
            put_bytes(out, problem.place.as_bytes())?;
            put_bytes(out, problem.message.as_bytes())
        }
        Body::Inline(bytes) => {
            out.write_all(&[2])?;
            put_bytes(out, bytes)
        }
        Body::Compressed { path, encoding } => {
            out.write_all(&[3])?;
            put_bytes(out, path.as_os_str().as_bytes())?;
            put_bytes(out, encoding.token().as_bytes())
        }
    }
}

fn get_body(input: &mut impl Read) -> io::Result<Body> {
    let path = |input: &mut _| get_bytes(input).map(|b| PathBuf::from(OsString::from_vec(b)));
    match get_array::<1>(input)? {
        [0] => Ok(Body::File(path(input)?)),
        [1] => {
            let place = get_string(input)?;
            let message = get_string(input)?;
            Ok(Body::Unreadable(std::sync::Arc::new(Problem::new(place, message))))
        }
        [2] => Ok(Body::Inline(get_bytes_up_to(input, crate::keys::target::MAX_PUT_BYTES)?.into())),
        [3] => {
            let path = path(input)?;
            let token = get_string(input)?;
            let encoding = Encoding::by_token(&token)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("an encoding {token:?}")))?;
            Ok(Body::Compressed { path, encoding })
        }
        [tag] => Err(io::Error::other(format!("a spilled entry has an unknown body tag {tag}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(i: usize) -> LocalFile {
        let mut f = LocalFile::new(
            format!("p{i:06}.html"),
            PathBuf::from(OsString::from_vec(vec![b'x', 0xe9])),
            i as u64,
            Time(-(i as i64)),
        );
        if i.is_multiple_of(3) {
            let mut meta = ObjectMeta::default();
            meta.set(crate::model::fields::Field::CacheControl, "max-age=60");
            meta.metadata.insert("team".into(), "web".into());
            f.meta = Some(Box::new(meta));
        }
        if i.is_multiple_of(5) {
            f.copy_of = Some(format!("src{i}"));
        }
        if i.is_multiple_of(7) {
            // A generated page: its bytes travel through the spill file with it.
            let bytes: std::sync::Arc<[u8]> = format!("<p>page {i}</p>").into_bytes().into();
            f = LocalFile { meta: f.meta, ..LocalFile::inline(f.key, bytes, Time(0)) };
        } else if i.is_multiple_of(5) {
            let encoding = if i.is_multiple_of(2) { Encoding::Gzip } else { Encoding::Br };
            f.body = Body::Compressed { path: f.path().unwrap().to_owned(), encoding };
        }
        f
    }

    #[tokio::test]
    async fn spilled_files_come_back_whole_and_in_order() {
        let mut spill = Spill::default();
        assert!(spill.is_empty());
        let n = CHUNK * 2 + 17;
        for i in 0..n {
            spill.push(Waiting { file: file(i), added: i % 2 == 0 }).await;
        }
        assert_eq!(spill.memory.len(), 17, "two chunks went to disk");
        let mut back = Vec::new();
        while let Some(chunk) = spill.next_chunk().await.unwrap() {
            back.extend(chunk);
        }
        assert_eq!(back, (0..n).map(|i| Waiting { file: file(i), added: i % 2 == 0 }).collect::<Vec<_>>());
    }
}
