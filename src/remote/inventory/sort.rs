//! Putting an inventory's objects into S3's key order with bounded memory.
//!
//! An inventory's data files are not sorted across files (nor promised sorted within one), and it
//! may list tens of millions of keys, which do not fit in memory as a vector. So objects gather
//! in a chunk of a fixed memory budget; a full chunk is sorted and written to an unlinked
//! temporary file as one sorted run, and the runs are merged into one stream at the end, the way
//! `journal.rs` does with the record of changes. Runs are merged a level up whenever [`FAN_IN`] of
//! them gather, so the final merge never holds more than a few hundred files open. Everything here
//! blocks: it runs on the blocking pool, never on the async runtime's workers.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Seek};

use crate::disk::{anonymous_file, get_option, get_string, get_u64, put_bytes, put_option, put_u64};
use crate::model::{RemoteObject, Time};

/// Memory a chunk of objects may take before it is written out as a sorted run.
const CHUNK_BYTES: usize = 32 * 1024 * 1024;
/// Runs of one level merged into one run of the next level.
const FAN_IN: usize = 64;

/// Objects in any order in, objects in key order out.
pub struct Sorter {
    chunk: Vec<RemoteObject>,
    /// What `chunk` takes, roughly: its objects and their strings.
    bytes: usize,
    budget: usize,
    fan_in: usize,
    /// Sorted runs on disk, by level: a run of level n+1 is `fan_in` runs of level n merged.
    levels: Vec<Vec<File>>,
}

impl Default for Sorter {
    fn default() -> Self {
        Sorter::with_budget(CHUNK_BYTES, FAN_IN)
    }
}

impl Sorter {
    pub fn with_budget(budget: usize, fan_in: usize) -> Sorter {
        Sorter { chunk: Vec::new(), bytes: 0, budget, fan_in: fan_in.max(2), levels: Vec::new() }
    }

    pub fn push(&mut self, object: RemoteObject) -> io::Result<()> {
        self.bytes += footprint(&object);
        self.chunk.push(object);
        if self.bytes >= self.budget {
            let chunk = std::mem::take(&mut self.chunk);
            self.bytes = 0;
            let run = write_run(sorted(chunk).map(Ok))?;
            self.add_run(0, run)?;
        }
        Ok(())
    }

    /// Files a run at `level`, merging that level into one run of the next when it is full.
    fn add_run(&mut self, level: usize, run: File) -> io::Result<()> {
        if self.levels.len() <= level {
            self.levels.resize_with(level + 1, Vec::new);
        }
        self.levels[level].push(run);
        if self.levels[level].len() < self.fan_in {
            return Ok(());
        }
        let runs = std::mem::take(&mut self.levels[level]);
        let merged = write_run(Merged::new(runs.into_iter().map(Source::run).collect())?)?;
        self.add_run(level + 1, merged)
    }

    /// Runs on disk so far, for tests.
    #[cfg(test)]
    fn runs(&self) -> Vec<usize> {
        self.levels.iter().map(Vec::len).collect()
    }

    /// Every object pushed, in key order; equal keys come in no particular order.
    pub fn finish(self) -> io::Result<Merged> {
        let mut sources: Vec<Source> = self.levels.into_iter().flatten().map(Source::run).collect();
        sources.push(Source::Memory(sorted(self.chunk)));
        Merged::new(sources)
    }
}

/// Roughly what an object takes in memory.
fn footprint(object: &RemoteObject) -> usize {
    std::mem::size_of::<RemoteObject>() + object.key.capacity() + object.etag.as_ref().map_or(0, String::capacity)
}

fn sorted(mut chunk: Vec<RemoteObject>) -> std::vec::IntoIter<RemoteObject> {
    chunk.sort_unstable_by(|a, b| a.key.cmp(&b.key));
    chunk.into_iter()
}

/// Writes objects, already in order, to a temporary file, and rewinds it for reading.
fn write_run(objects: impl Iterator<Item = io::Result<RemoteObject>>) -> io::Result<File> {
    let mut out = BufWriter::new(anonymous_file("inventory")?);
    for object in objects {
        let object = object?;
        put_bytes(&mut out, object.key.as_bytes())?;
        put_u64(&mut out, object.size)?;
        put_u64(&mut out, object.last_modified.0 as u64)?;
        put_option(&mut out, object.etag.as_deref().map(str::as_bytes))?;
    }
    let mut file = out.into_inner().map_err(|e| e.into_error())?;
    file.rewind()?;
    Ok(file)
}

/// Where the merge reads from: a sorted run on disk, or the last chunk, sorted in memory.
enum Source {
    Run(BufReader<File>),
    Memory(std::vec::IntoIter<RemoteObject>),
}

impl Source {
    fn run(file: File) -> Source {
        Source::Run(BufReader::new(file))
    }

    fn next(&mut self) -> io::Result<Option<RemoteObject>> {
        let input = match self {
            Source::Memory(objects) => return Ok(objects.next()),
            Source::Run(input) => input,
        };
        let key = match get_string(input) {
            Ok(key) => key,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        };
        let size = get_u64(input)?;
        let last_modified = Time(get_u64(input)? as i64);
        let etag = get_option(input)?.map(String::from_utf8).transpose().map_err(io::Error::other)?;
        Ok(Some(RemoteObject { key, size, last_modified, etag }))
    }
}

/// The next object of one source, ordered by key, then by source so the order is stable.
struct Head {
    object: RemoteObject,
    source: usize,
}

impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        self.object.key.cmp(&other.object.key).then(self.source.cmp(&other.source))
    }
}

impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Head {}

/// A k-way merge of sorted sources.
pub struct Merged {
    sources: Vec<Source>,
    heap: BinaryHeap<Reverse<Head>>,
}

impl Merged {
    fn new(mut sources: Vec<Source>) -> io::Result<Merged> {
        let mut heap = BinaryHeap::with_capacity(sources.len());
        for (source, input) in sources.iter_mut().enumerate() {
            if let Some(object) = input.next()? {
                heap.push(Reverse(Head { object, source }));
            }
        }
        Ok(Merged { sources, heap })
    }
}

impl Iterator for Merged {
    type Item = io::Result<RemoteObject>;

    fn next(&mut self) -> Option<io::Result<RemoteObject>> {
        let Reverse(Head { object, source }) = self.heap.pop()?;
        match self.sources[source].next() {
            Ok(Some(next)) => self.heap.push(Reverse(Head { object: next, source })),
            Ok(None) => {}
            Err(e) => return Some(Err(e)),
        }
        Some(Ok(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(key: String, n: u64) -> RemoteObject {
        let etag = (!n.is_multiple_of(3)).then(|| format!("{n:032x}"));
        RemoteObject { key, size: n, last_modified: Time(n as i64 * 1_000_000 - 5), etag }
    }

    #[test]
    fn objects_come_back_in_key_order_across_spilled_runs() {
        // A budget of about 40 objects a run and 3 runs a level: 2,000 objects make runs of
        // several levels, and the last chunk stays in memory.
        let mut sorter = Sorter::with_budget(40 * (std::mem::size_of::<RemoteObject>() + 40), 3);
        let n = 2_000u64;
        let mut expected = Vec::new();
        for i in 0..n {
            // Pushed out of order, with keys whose byte order is not their char order.
            let j = (i * 7919) % n;
            let key = match j % 4 {
                0 => format!("é/{j:05}"),
                1 => format!("a/{j:05}"),
                2 => format!("a.{j:05}"),
                _ => format!("日本/{j:05} x+y"),
            };
            expected.push(object(key.clone(), j));
            sorter.push(object(key, j)).unwrap();
        }
        let runs = sorter.runs();
        assert!(runs.len() >= 3, "runs went two levels up: {runs:?}");
        assert!(runs.iter().all(|&r| r < 3), "a full level is merged: {runs:?}");
        let merged: Vec<RemoteObject> = sorter.finish().unwrap().map(Result::unwrap).collect();
        expected.sort_by(|a, b| a.key.as_bytes().cmp(b.key.as_bytes()));
        assert_eq!(merged.len(), expected.len());
        assert_eq!(merged, expected, "every object once, whole, in UTF-8 byte order");
    }

    #[test]
    fn a_sorter_that_never_spilled_sorts_in_memory() {
        let mut sorter = Sorter::default();
        for key in ["b", "a/b", "a.b", "a"] {
            sorter.push(object(key.into(), 1)).unwrap();
        }
        assert!(sorter.runs().is_empty());
        let keys: Vec<String> = sorter.finish().unwrap().map(|o| o.unwrap().key).collect();
        assert_eq!(keys, ["a", "a.b", "a/b", "b"]);
    }
}
