//! Pages waiting for the assets, kept in memory up to a point and spilled to disk beyond it.
//!
//! Pages are uploaded after every asset, so on a first sync of a large site every page waits in
//! the sink until the asset phase is over: a million pages would hold hundreds of megabytes. This
//! queue keeps at most two chunks in memory and writes the rest to an unlinked temporary file, in
//! chunks, on the blocking thread pool so the async workers never wait on the disk. An inline body
//! (a generated page) is written out with its entry, bytes and all.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Seek, Write};

use crate::disk::{anonymous_file, get_array, get_u64, put_u64};
use crate::model::LocalFile;
use crate::model::record::{get_file, put_file};

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
        put_file(&mut out, f)?;
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    Ok((file, chunks + 1))
}

fn read_chunk(mut input: BufReader<File>) -> io::Result<(BufReader<File>, Vec<Waiting>)> {
    let count = get_u64(&mut input)? as usize;
    let mut chunk = Vec::with_capacity(count);
    for _ in 0..count {
        let [added] = get_array::<1>(&mut input)?;
        let file = get_file(&mut input)?;
        chunk.push(Waiting { file, added: added == 1 });
    }
    Ok((input, chunk))
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    use std::path::PathBuf;

    use super::*;
    use crate::model::{Body, Encoding, ObjectMeta, Time};

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
