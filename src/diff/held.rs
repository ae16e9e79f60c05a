//! The local entries the diff holds ahead of the listing: in memory up to [`IN_MEMORY`], in
//! sorted runs on disk beyond it.
//!
//! A chain that creates keys (a whole-tree `prefix_duplicate`, a plugin) yields keys far ahead of
//! the listing: `mirror/…` comes with each file, long before the listing gets there. Each such
//! entry waits until the listing reaches its key, so without a bound a mirrored site held one
//! entry per file. The listing is ordered, so these entries are needed in key order: past
//! [`IN_MEMORY`], the greater half is written out as a sorted run (in blocks, each block's first
//! key kept in memory), and before the diff reads a page of the listing every entry up to that
//! page's last key is read back. Entries still held when the listing ends are read back in
//! blocks, to be uploaded. The file is an unlinked temporary one, written and read on the blocking
//! pool ([`Held::spill`], [`Held::reload_upto`]), never on the async workers.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;

use crate::disk::anonymous_file;
use crate::model::LocalFile;
use crate::model::record::{get_file, put_file};

/// Entries kept in memory; past it, the greater half goes to disk.
pub(super) const IN_MEMORY: usize = 20_000;
/// Entries per block of a run: what one read brings back.
const BLOCK: usize = 256;

/// The local entries waiting for the listing to reach their keys.
#[derive(Default)]
pub(super) struct Held {
    pub memory: BTreeMap<String, LocalFile>,
    disk: Disk,
    /// The disk failed us once: everything stays in memory from then on.
    memory_only: bool,
}

/// The runs written out so far, in one file.
#[derive(Default)]
struct Disk {
    file: Option<File>,
    end: u64,
    runs: Vec<Run>,
    /// Entries on disk, not yet read back.
    entries: usize,
}

/// One sorted run: its blocks not yet read, and the rest of the block being read.
struct Run {
    blocks: VecDeque<Block>,
    read: VecDeque<LocalFile>,
}

struct Block {
    first: String,
    at: u64,
    len: u64,
    count: usize,
}

impl Held {
    pub fn len(&self) -> usize {
        self.memory.len() + self.disk.entries
    }

    /// Whether some entries are on disk.
    pub fn spilled(&self) -> bool {
        self.disk.entries > 0
    }

    /// Writes the greater half of the entries to disk once memory holds more than [`IN_MEMORY`].
    /// A disk that fails keeps everything in memory, with a warning.
    pub async fn spill(&mut self) {
        if self.memory.len() <= IN_MEMORY || self.memory_only {
            return;
        }
        let at = self.memory.keys().nth(self.memory.len() / 2).cloned().expect("more than IN_MEMORY entries");
        let far = self.memory.split_off(&at);
        let disk = std::mem::take(&mut self.disk);
        match on_blocking(move || disk.write(far)).await {
            Ok(disk) => self.disk = disk,
            Err((e, disk, far)) => {
                tracing::warn!("cannot spill held entries to a temporary file ({e}); keeping them in memory");
                self.disk = disk;
                self.memory.extend(far);
                self.memory_only = true;
            }
        }
    }

    /// Brings every entry on disk whose key is at most `bound` back to memory.
    pub async fn reload_upto(&mut self, bound: &str) -> io::Result<()> {
        if !self.disk.has_upto(bound) {
            return Ok(());
        }
        let (disk, bound) = (std::mem::take(&mut self.disk), bound.to_owned());
        let (disk, back) = on_blocking(move || disk.read(Some(&bound))).await?;
        self.disk = disk;
        self.memory.extend(back.into_iter().map(|f| (f.key.clone(), f)));
        Ok(())
    }

    /// Brings the next blocks on disk back to memory, whatever their keys (the listing has ended).
    pub async fn reload_some(&mut self) -> io::Result<()> {
        let disk = std::mem::take(&mut self.disk);
        let (disk, back) = on_blocking(move || disk.read(None)).await?;
        self.disk = disk;
        self.memory.extend(back.into_iter().map(|f| (f.key.clone(), f)));
        Ok(())
    }
}

/// Runs `work` on the blocking pool; a panic there is raised here.
async fn on_blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(out) => out,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

type WriteFailed = (io::Error, Disk, BTreeMap<String, LocalFile>);

impl Disk {
    /// Appends `far` (sorted by key) as a run of its own.
    fn write(mut self, far: BTreeMap<String, LocalFile>) -> Result<Disk, WriteFailed> {
        match self.append(&far) {
            Ok(run) => {
                self.entries += far.len();
                self.runs.push(run);
                Ok(self)
            }
            Err(e) => Err((e, self, far)),
        }
    }

    fn append(&mut self, far: &BTreeMap<String, LocalFile>) -> io::Result<Run> {
        if self.file.is_none() {
            self.file = Some(anonymous_file("held")?);
        }
        let file = self.file.as_ref().expect("opened above");
        let mut blocks = VecDeque::new();
        let mut out = BufWriter::new(WriteAt { file, at: self.end });
        let entries: Vec<&LocalFile> = far.values().collect();
        for block in entries.chunks(BLOCK) {
            let at = out.get_ref().at + out.buffer().len() as u64;
            for f in block {
                put_file(&mut out, f)?;
            }
            let len = out.get_ref().at + out.buffer().len() as u64 - at;
            blocks.push_back(Block { first: block[0].key.clone(), at, len, count: block.len() });
        }
        out.flush()?;
        self.end = out.get_ref().at;
        Ok(Run { blocks, read: VecDeque::new() })
    }

    /// Whether an entry with a key up to `bound` is on disk.
    fn has_upto(&self, bound: &str) -> bool {
        self.runs.iter().any(|run| match (run.read.front(), run.blocks.front()) {
            (Some(next), _) => next.key.as_str() <= bound,
            (None, Some(block)) => block.first.as_str() <= bound,
            (None, None) => false,
        })
    }

    /// Reads back the entries up to `bound`, or, without one, one block of each run.
    fn read(mut self, bound: Option<&str>) -> io::Result<(Disk, Vec<LocalFile>)> {
        let file = self.file.take();
        let mut back = Vec::new();
        for run in &mut self.runs {
            loop {
                if run.read.is_empty() {
                    let Some(block) = run.blocks.front() else { break };
                    if bound.is_some_and(|b| block.first.as_str() > b) {
                        break;
                    }
                    let block = run.blocks.pop_front().expect("checked above");
                    run.read = read_block(file.as_ref().expect("a run has a file"), &block)?;
                }
                match bound {
                    Some(b) => {
                        while run.read.front().is_some_and(|f| f.key.as_str() <= b) {
                            back.extend(run.read.pop_front());
                        }
                        if !run.read.is_empty() {
                            break;
                        }
                    }
                    None => {
                        back.extend(run.read.drain(..));
                        break;
                    }
                }
            }
        }
        self.runs.retain(|run| !run.read.is_empty() || !run.blocks.is_empty());
        self.entries -= back.len();
        self.file = file;
        Ok((self, back))
    }
}

fn read_block(file: &File, block: &Block) -> io::Result<VecDeque<LocalFile>> {
    let mut bytes = vec![0; block.len as usize];
    file.read_exact_at(&mut bytes, block.at)?;
    let mut input = bytes.as_slice();
    (0..block.count).map(|_| get_file(&mut input)).collect()
}

/// Writes at a given offset of a file, moving forward.
struct WriteAt<'a> {
    file: &'a File,
    at: u64,
}

impl Write for WriteAt<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Time;

    fn file(i: usize) -> LocalFile {
        LocalFile::new(format!("mirror/p{i:07}.html"), format!("/site/p{i}.html").into(), i as u64, Time(i as i64))
    }

    #[tokio::test]
    async fn held_entries_past_the_bound_go_to_disk_and_come_back_in_order() {
        let mut held = Held::default();
        let n = IN_MEMORY * 3;
        // Inserted out of order, as a chain yields them.
        for i in (0..n).step_by(2).chain((1..n).step_by(2)) {
            held.memory.insert(file(i).key.clone(), file(i));
            held.spill().await;
        }
        assert_eq!(held.len(), n);
        assert!(held.spilled());
        assert!(held.memory.len() <= IN_MEMORY, "{} in memory", held.memory.len());
        let mut seen = Vec::new();
        for upto in (0..n).step_by(1000).skip(1).chain([n]) {
            let bound = file(upto - 1).key;
            held.reload_upto(&bound).await.unwrap();
            let kept = held.memory.split_off(&format!("{bound}\u{0}"));
            seen.extend(std::mem::replace(&mut held.memory, kept).into_values());
            assert!(held.memory.len() <= IN_MEMORY + BLOCK);
        }
        assert!(!held.spilled());
        assert_eq!(seen, (0..n).map(file).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn what_is_left_comes_back_block_by_block() {
        let mut held = Held::default();
        for i in 0..IN_MEMORY * 2 {
            held.memory.insert(file(i).key.clone(), file(i));
            held.spill().await;
        }
        let mut back = std::mem::take(&mut held.memory).into_values().collect::<Vec<_>>();
        while held.spilled() {
            held.reload_some().await.unwrap();
            back.extend(std::mem::take(&mut held.memory).into_values());
        }
        back.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!(back, (0..IN_MEMORY * 2).map(file).collect::<Vec<_>>());
    }
}
