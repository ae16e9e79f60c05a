//! Joining the entries the chain yields with what the state knows of their keys, as they go by.
//!
//! The walk yields keys in S3's order, and the state is stored in that order, so one reader moving
//! forward with the walk finds every key with a record's worth of memory. But a chain may yield
//! several ordered streams interleaved: a whole-tree `prefix_duplicate` yields `a`, `mirror/a`,
//! `b`, `mirror/b`, … One reader would run ahead to `mirror/a` and miss `b`, so the keys a chain
//! makes would never use the state, and be read again on every run. So a cursor keeps a few
//! readers ("lanes") of the one file, each where one stream has got to, and starts a lane at any
//! key through the state's index of blocks: a key is looked up by the lane that can reach it
//! within its block, or by a lane started at the key's block. Each stream is then read once, and a
//! key out of every order costs at most one block's reading.

use std::io;
use std::sync::Arc;

use super::{INDEX_EVERY, Index, Known, Reader};
use crate::model::LocalItem;

/// Readers kept at once; a chain with more interleaved streams re-reads a block now and then.
const LANES: usize = 4;

/// Joins each entry of a batch with what the state knows of its key.
pub struct Cursor {
    lanes: Vec<Lane>,
    index: Arc<Index>,
    /// Counts lookups, to reuse the lane used longest ago.
    tick: u64,
}

/// One reader of the state, and how far it has got.
struct Lane {
    reader: Reader,
    /// The next record, not yet passed; `None` at the end.
    next: Option<(String, Known)>,
    /// The ordinal of `next` in the file.
    ordinal: u64,
    /// The key of the last record read past; `None` when the lane starts at `next`, so it can
    /// answer for any key from `next`'s on.
    passed: Option<String>,
    used: u64,
}

impl Lane {
    fn start(mut reader: Reader, ordinal: u64) -> io::Result<Lane> {
        let next = reader.next_record()?;
        Ok(Lane { reader, next, ordinal, passed: None, used: 0 })
    }

    /// Whether no record of `key` lies behind the lane: it can say if the state holds it.
    fn can_answer(&self, key: &str) -> bool {
        match (&self.passed, &self.next) {
            (Some(passed), _) => key > passed.as_str(),
            (None, Some((next, _))) => key >= next.as_str(),
            (None, None) => true,
        }
    }

    fn block(&self) -> usize {
        (self.ordinal / INDEX_EVERY) as usize
    }

    /// Whether `key`'s record, if any, lies in the lane's block (nothing to read past but it).
    fn reaches(&self, key: &str, index: &Index) -> bool {
        self.can_answer(key) && index.first_key(self.block() + 1).is_none_or(|first| key < first)
    }

    /// Moves to `key` and returns what the state knows of it.
    fn find(&mut self, key: &str) -> io::Result<Option<Known>> {
        while self.next.as_ref().is_some_and(|(next, _)| next.as_str() < key) {
            self.passed = self.next.take().map(|(passed, _)| passed);
            self.next = self.reader.next_record()?;
            self.ordinal += 1;
        }
        Ok(self.next.as_ref().filter(|(next, _)| next == key).map(|(_, known)| known.clone()))
    }
}

impl Cursor {
    pub fn new(reader: Reader) -> io::Result<Cursor> {
        let index = reader.index().clone();
        Ok(Cursor { lanes: vec![Lane::start(reader, 0)?], index, tick: 0 })
    }

    pub fn attach(&mut self, batch: &mut [LocalItem]) -> io::Result<()> {
        for item in batch {
            let LocalItem::File(file) = item else { continue };
            file.known = self.find(&file.key)?.map(Box::new);
        }
        Ok(())
    }

    /// What the state knows of `key`.
    fn find(&mut self, key: &str) -> io::Result<Option<Known>> {
        self.tick += 1;
        let lane = match self.lanes.iter().position(|lane| lane.reaches(key, &self.index)) {
            Some(lane) => lane,
            None => {
                let Some(block) = self.index.block_of(key) else { return Ok(None) };
                // A lane one block behind reads on; otherwise a lane starts at the key's block.
                match self.lanes.iter().position(|lane| lane.can_answer(key) && lane.block() + 1 >= block) {
                    Some(lane) => lane,
                    None => self.lane_at(block)?,
                }
            }
        };
        let lane = &mut self.lanes[lane];
        lane.used = self.tick;
        lane.find(key)
    }

    /// A lane at the start of `block`: a new one, or the one used longest ago.
    fn lane_at(&mut self, block: usize) -> io::Result<usize> {
        let lane = Lane::start(self.lanes[0].reader.at_block(block), block as u64 * INDEX_EVERY)?;
        if self.lanes.len() < LANES {
            self.lanes.push(lane);
            return Ok(self.lanes.len() - 1);
        }
        let oldest = (0..self.lanes.len()).min_by_key(|&i| self.lanes[i].used).unwrap_or(0);
        self.lanes[oldest] = lane;
        Ok(oldest)
    }
}
