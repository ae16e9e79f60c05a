//! Matching the local tree against the bucket while both are still being scanned.
//!
//! Each side's keys go into a map of keys the other side has not yet shown; a key seen on both
//! sides is judged and forgotten at once. Both scans yield keys in S3's order (UTF-8 bytes), so a
//! key still unmatched once the other side has moved past it never will be: it is retired as an
//! upload or a delete straight away. Memory therefore holds only the keys between the two scan
//! positions, not two maps of the whole tree. If a side ever yields keys out of order, the diff
//! stays correct and only stops retiring early from that side's position. The loop that feeds it
//! from the two scans is [`merge`]. A chain that creates keys makes the local side yield keys far
//! ahead of the listing (`mirror/…` with every file): those local entries spill to disk in sorted
//! runs and come back as the listing nears them ([`held`]), and the listing is read no further
//! ahead of such a local side than the diff holds in memory ([`Diff::remote_ahead`]).

mod held;
mod judge;
mod limits;
pub mod merge;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use judge::{Compare, CompareMode, Decision};
pub use limits::DeleteLimits;
pub use merge::{Ended, Offsets, Read, Schedule, Sides, merge};

use crate::clock::{ChangeRule, Offset, Verdict};
use crate::history::suspects::{Restored, Suspects};
use crate::model::{Event, LocalFile, LocalItem, Reason, RemoteObject};
use crate::transform::RemoteFilter;

/// How far one side has got.
#[derive(Debug, Default)]
struct Side {
    /// The greatest key seen so far.
    last: Option<String>,
    /// False once a key arrived out of order: `last` then proves nothing.
    disordered: bool,
    done: bool,
}

impl Side {
    fn saw(&mut self, key: &str) {
        match &mut self.last {
            Some(last) if key <= last.as_str() => self.disordered = true,
            Some(last) => {
                last.clear();
                last.push_str(key);
            }
            None => self.last = Some(key.to_owned()),
        }
    }

    /// Every key up to this bound that this side will ever yield has been yielded.
    fn passed(&self) -> Option<&str> {
        if self.disordered { None } else { self.last.as_deref() }
    }
}

/// Running totals, for the report and for delete safety.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub local_files: u64,
    pub remote_objects: u64,
    pub unchanged: u64,
    pub uploads: u64,
    pub deletes: u64,
    pub problems: u64,
    /// Listed keys ignored because they came again or out of order.
    pub misordered: u64,
    /// Pairs handed on to be read and compared, or their objects asked (a HEAD).
    pub checks: u64,
    /// Files of other shards' folders the walk passed by (a split run).
    pub files_elsewhere: u64,
}

pub struct Diff {
    rule: ChangeRule,
    /// Local entries the listing has not reached yet.
    local: held::Held,
    remote: BTreeMap<String, RemoteObject>,
    local_side: Side,
    remote_side: Side,
    /// Pairs the clock offset could not settle yet.
    unsure: Vec<(LocalFile, RemoteObject)>,
    tally: Tally,
    /// Re-publish current objects too: the chain's configuration changed since they were written.
    refresh: bool,
    /// The listed keys the diff must not see (the reserved folder, what filters hide).
    hidden: RemoteFilter,
    /// How "changed" is decided beyond the mtime rule.
    compare: Compare,
    /// This run's part of a split run: listed keys of other shards are not this run's.
    shard: Option<crate::keys::shard::Shard>,
    /// What the walk saw of the other shards' files.
    elsewhere: crate::keys::shard::SeenElsewhere,
    /// Keys a rollback restored since the last sync: compared by content.
    suspects: Arc<Suspects>,
    /// The most entries both maps held in memory at once.
    #[cfg(test)]
    peak: usize,
}

impl Diff {
    pub fn new(rule: ChangeRule) -> Diff {
        Diff {
            rule,
            local: held::Held::default(),
            remote: BTreeMap::new(),
            local_side: Side::default(),
            remote_side: Side::default(),
            unsure: Vec::new(),
            tally: Tally::default(),
            refresh: false,
            hidden: RemoteFilter::default(),
            compare: Compare::default(),
            shard: None,
            elsewhere: crate::keys::shard::SeenElsewhere::default(),
            suspects: Arc::default(),
            #[cfg(test)]
            peak: 0,
        }
    }

    /// Compares the keys a rollback restored by content, whatever the mode (see
    /// [`judge::restored`]).
    pub fn suspects(&mut self, suspects: Arc<Suspects>) {
        self.suspects = suspects;
    }

    /// Compares only the listed keys `shard` owns; `elsewhere` is the walk's count of the files
    /// it left to the other shards.
    pub fn shard(&mut self, shard: Option<crate::keys::shard::Shard>, elsewhere: crate::keys::shard::SeenElsewhere) {
        self.shard = shard;
        self.elsewhere = elsewhere;
    }

    /// Decides changes as `compare` says (by default, the mtime rule alone).
    pub fn compare(&mut self, compare: Compare) {
        self.compare = compare;
    }

    /// Hides the listed keys `hidden` drops: they are neither compared nor deleted.
    pub fn hide(&mut self, hidden: RemoteFilter) {
        self.hidden = hidden;
    }

    /// Makes every key that would be unchanged an upload with [`Reason::Chain`] instead: LIST does
    /// not return headers, so a changed chain can only be applied by writing every object again.
    /// Declares that the local side may yield keys out of order (a chain that creates keys), so
    /// its position proves nothing: a jump forward would otherwise retire objects whose key it
    /// has yet to yield. Objects missing locally then wait for the end of the local side.
    pub fn local_unordered(&mut self) {
        self.local_side.disordered = true;
    }

    pub fn refresh_unchanged(&mut self) {
        self.refresh = true;
    }

    pub fn tally(&self) -> Tally {
        Tally { files_elsewhere: self.elsewhere.files(), ..self.tally }
    }

    /// Keys held because the other side has not reached them yet.
    pub fn pending(&self) -> usize {
        self.local.len() + self.remote.len() + self.unsure.len()
    }

    /// The greatest key each side has yielded, to read from the side that is behind.
    pub fn positions(&self) -> (Option<&str>, Option<&str>) {
        (self.local_side.last.as_deref(), self.remote_side.last.as_deref())
    }

    pub fn local_batch(&mut self, batch: Vec<LocalItem>, offset: Offset, out: &mut Vec<Event>) {
        for item in batch {
            match item {
                LocalItem::File(file) => {
                    self.tally.local_files += 1;
                    self.local_side.saw(&file.key);
                    match self.remote.remove(&file.key) {
                        Some(object) => self.judge(file, object, offset, out),
                        None => {
                            self.local.memory.insert(file.key.clone(), file);
                        }
                    }
                }
                LocalItem::Problem(p) => {
                    self.tally.problems += 1;
                    out.push(Event::Problem(p));
                }
            }
        }
        self.retire(out);
    }

    pub fn remote_batch(&mut self, batch: Vec<RemoteObject>, offset: Offset, out: &mut Vec<Event>) {
        for object in batch {
            // A listing is in key order. A key at or before one already listed is a page listed
            // twice (a retried or overlapping page of a non-compliant server): its first sighting
            // may already be matched, and seeing it again must not read as an object without a
            // file. Skipping it can only cost an upload or leave an object for the next run.
            if self.remote_side.last.as_deref().is_some_and(|last| object.key.as_str() <= last) {
                self.tally.misordered += 1;
                tracing::warn!(
                    "the listing returned {} again or out of order; ignored",
                    crate::keys::names::printable(&object.key)
                );
                continue;
            }
            self.remote_side.saw(&object.key);
            if !self.hidden.keeps(&object.key) || self.shard.as_ref().is_some_and(|s| !s.owns(&object.key)) {
                continue;
            }
            self.tally.remote_objects += 1;
            // Every held entry up to this page's end is in memory (`before_remote`).
            match self.local.memory.remove(&object.key) {
                Some(file) => self.judge(file, object, offset, out),
                None => {
                    self.remote.insert(object.key.clone(), object);
                }
            }
        }
        self.retire(out);
    }

    /// Writes the local entries held past the in-memory bound to disk.
    pub async fn spill(&mut self) {
        self.local.spill().await;
    }

    /// Before a page of the listing whose last key is `last`: the held local entries it may
    /// match, back in memory.
    pub async fn before_remote(&mut self, last: &str) -> std::io::Result<()> {
        self.local.reload_upto(last).await
    }

    /// Once the listing has ended: retires the next local entries held on disk, as uploads.
    /// False when none are left.
    pub async fn retire_spilled(&mut self, out: &mut Vec<Event>) -> std::io::Result<bool> {
        if !self.remote_side.done || !self.local.spilled() {
            return Ok(false);
        }
        self.local.reload_some().await?;
        self.retire(out);
        Ok(true)
    }

    /// The listing is ahead of an unordered local side by more objects than the diff keeps in
    /// memory: read the local side, whose entries can spill, until it catches up.
    pub fn remote_ahead(&self) -> bool {
        self.remote.len() > held::IN_MEMORY
    }

    pub fn local_done(&mut self, out: &mut Vec<Event>) {
        self.local_side.done = true;
        self.retire(out);
    }

    pub fn remote_done(&mut self, out: &mut Vec<Event>) {
        self.remote_side.done = true;
        self.retire(out);
    }

    /// Whether some deferred pair still cannot be settled with this offset.
    pub fn unsure_under(&self, offset: Offset) -> bool {
        self.unsure.iter().any(|(file, object)| self.rule.judge(file, object, offset) == Verdict::Unsure)
    }

    /// Settles the deferred pairs with the final offset; a pair still unsure is uploaded, since
    /// a needless upload costs a request while a skipped change leaves the site stale.
    pub fn finish(&mut self, offset: Offset, out: &mut Vec<Event>) {
        debug_assert!(self.local_side.done && self.remote_side.done);
        for (file, object) in std::mem::take(&mut self.unsure) {
            match self.rule.judge(&file, &object, offset) {
                Verdict::Same => self.same(file, object, false, out),
                Verdict::Upload(reason) => self.upload(file, reason, out),
                Verdict::Unsure => self.upload(file, Reason::Newer, out),
            }
        }
    }

    fn judge(&mut self, file: LocalFile, object: RemoteObject, offset: Offset, out: &mut Vec<Event>) {
        let decision = match self.suspects.get(&file.key) {
            Some(restored) => {
                let known = !matches!(restored, Restored::Unknown);
                judge::restored(&file, &object, known, self.compare.own_part)
            }
            None => self.compare.decide(&self.rule, &file, &object, offset),
        };
        match decision {
            Decision::Same { learn } => self.same(file, object, learn, out),
            Decision::Upload(reason) => self.upload(file, reason, out),
            Decision::Unsure => self.unsure.push((file, object)),
            Decision::Check { otherwise } => {
                self.tally.checks += 1;
                out.push(Event::Check { file, object, otherwise });
            }
            // Re-published anyway.
            Decision::Head if self.refresh => self.upload(file, Reason::Chain, out),
            Decision::Head => {
                self.tally.checks += 1;
                out.push(Event::Head { file, object });
            }
        }
    }

    fn same(&mut self, file: LocalFile, object: RemoteObject, learn: bool, out: &mut Vec<Event>) {
        if self.refresh {
            self.upload(file, Reason::Chain, out);
            return;
        }
        self.tally.unchanged += 1;
        if learn {
            out.push(Event::Same { file, object, md5: None });
        }
    }

    fn upload(&mut self, file: LocalFile, reason: Reason, out: &mut Vec<Event>) {
        self.tally.uploads += 1;
        out.push(Event::Upload { file, reason });
    }

    fn retire(&mut self, out: &mut Vec<Event>) {
        #[cfg(test)]
        {
            self.peak = self.peak.max(self.local.memory.len() + self.remote.len());
        }
        let missing_remotely = retire_upto(&mut self.local.memory, &self.remote_side);
        for file in missing_remotely {
            self.upload(file, Reason::New, out);
        }
        for object in retire_upto(&mut self.remote, &self.local_side) {
            self.tally.deletes += 1;
            out.push(Event::Delete { object, retired: None });
        }
    }
}

/// Removes from `unmatched` every key the other side has passed without yielding it.
fn retire_upto<T>(unmatched: &mut BTreeMap<String, T>, other: &Side) -> Vec<T> {
    if other.done {
        return std::mem::take(unmatched).into_values().collect();
    }
    let Some(bound) = other.passed() else { return Vec::new() };
    let first_kept = unmatched.range::<str, _>((std::ops::Bound::Excluded(bound), std::ops::Bound::Unbounded)).next();
    match first_kept.map(|(k, _)| k.clone()) {
        Some(k) => {
            let kept = unmatched.split_off(&k);
            std::mem::replace(unmatched, kept).into_values().collect()
        }
        None => std::mem::take(unmatched).into_values().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Time;

    const S: i64 = Time::NANOS_PER_SEC;

    fn local(key: &str, size: u64, mtime: i64) -> LocalItem {
        LocalItem::File(LocalFile::new(key.into(), key.into(), size, Time(mtime * S)))
    }

    fn remote(key: &str, size: u64, lm: i64) -> RemoteObject {
        RemoteObject { key: key.into(), size, last_modified: Time(lm * S), etag: None }
    }

    fn names(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                Event::Upload { file, reason } => format!("upload {} {}", file.key, reason.as_str()),
                Event::Delete { object, .. } => format!("delete {}", object.key),
                Event::Retire { object, .. } => format!("retire {}", object.key),
                Event::Problem(p) => format!("problem {}", p.place),
                Event::Check { file, .. } => format!("check {}", file.key),
                Event::Head { file, .. } => format!("head {}", file.key),
                Event::Same { file, .. } => format!("same {}", file.key),
            })
            .collect()
    }

    #[test]
    fn matches_as_soon_as_both_sides_have_seen_a_key() {
        let mut diff = Diff::new(ChangeRule { fudge: 0 });
        let off = Offset::exact(0);
        let mut out = Vec::new();
        diff.remote_batch(vec![remote("a.b", 1, 100), remote("a/b", 1, 100), remote("old", 1, 100)], off, &mut out);
        assert_eq!(diff.pending(), 3);
        diff.local_batch(vec![local("a.b", 1, 50), local("a/b", 2, 50)], off, &mut out);
        assert_eq!(names(&out), ["upload a/b size"]);
        assert_eq!(diff.pending(), 1, "only `old` waits for the local side");
        diff.local_batch(vec![local("new", 1, 50), local("p", 1, 50)], off, &mut out);
        // Each side passed a key the other holds: `new` < `old` is not listed, `old` < `p` not on disk.
        assert_eq!(names(&out), ["upload a/b size", "upload new new", "delete old"]);
        assert_eq!(diff.pending(), 1, "`p` waits: the listing may still yield it");
        diff.remote_done(&mut out);
        diff.local_done(&mut out);
        assert_eq!(names(&out), ["upload a/b size", "upload new new", "delete old", "upload p new"]);
        assert_eq!(diff.pending(), 0);
        let t = diff.tally();
        assert_eq!((t.unchanged, t.uploads, t.deletes), (1, 3, 1));
    }

    #[test]
    fn out_of_order_local_input_is_still_correct() {
        let mut diff = Diff::new(ChangeRule { fudge: 0 });
        let off = Offset::exact(0);
        let mut out = Vec::new();
        diff.remote_batch(vec![remote("a", 1, 100), remote("z", 1, 100)], off, &mut out);
        diff.local_batch(vec![local("b", 1, 50), local("a", 1, 50)], off, &mut out);
        assert_eq!(names(&out), ["upload b new"], "`z` waits: a disordered side proves nothing");
        diff.local_done(&mut out);
        diff.remote_done(&mut out);
        assert_eq!(names(&out), ["upload b new", "delete z"]);
    }

    #[test]
    fn an_unordered_local_side_never_retires_objects_early() {
        let mut diff = Diff::new(ChangeRule { fudge: 0 });
        diff.local_unordered();
        let off = Offset::exact(0);
        let mut out = Vec::new();
        diff.remote_batch(vec![remote("d1/b", 1, 100), remote("d2/a", 1, 100), remote("d2/b", 1, 100)], off, &mut out);
        // A duplicate `d2/a` jumps ahead of `d1/b`, which the local side has yet to yield.
        diff.local_batch(vec![local("d1/a", 1, 50), local("d2/a", 1, 50)], off, &mut out);
        assert!(out.iter().all(|e| !matches!(e, Event::Delete { .. })), "{:?}", names(&out));
        diff.local_batch(vec![local("d1/b", 1, 50), local("d2/b", 1, 50)], off, &mut out);
        diff.local_done(&mut out);
        diff.remote_done(&mut out);
        assert_eq!(names(&out), ["upload d1/a new"]);
        assert_eq!(diff.tally().unchanged, 3);
    }

    #[test]
    fn a_key_listed_twice_is_never_deleted() {
        let off = Offset::exact(0);
        // Overlapping pages, and a page retried whole, around the local side's batches.
        for pages in
            [vec![vec!["a", "b", "c"], vec!["b", "c", "d"]], vec![vec!["a", "b"], vec!["a", "b"], vec!["c", "d"]]]
        {
            let mut diff = Diff::new(ChangeRule { fudge: 0 });
            let mut out = Vec::new();
            diff.local_batch(vec![local("a", 1, 50), local("b", 1, 50)], off, &mut out);
            for page in pages {
                diff.remote_batch(page.into_iter().map(|k| remote(k, 1, 100)).collect(), off, &mut out);
            }
            diff.local_batch(vec![local("c", 1, 50), local("d", 1, 50)], off, &mut out);
            diff.local_done(&mut out);
            diff.remote_done(&mut out);
            assert!(out.is_empty(), "{:?}", names(&out));
            assert_eq!(diff.tally().unchanged, 4);
        }
    }

    #[test]
    fn unsure_pairs_wait_for_the_final_offset() {
        let mut diff = Diff::new(ChangeRule { fudge: 0 });
        let mut out = Vec::new();
        let wide = Offset { lo: 0, hi: 2 * S };
        diff.remote_batch(vec![remote("a", 1, 100), remote("b", 1, 100)], wide, &mut out);
        diff.local_batch(vec![local("a", 1, 99), local("b", 1, 99)], wide, &mut out);
        assert!(diff.unsure_under(wide));
        assert!(!diff.unsure_under(Offset::exact(0)));
        diff.local_done(&mut out);
        diff.remote_done(&mut out);
        diff.finish(Offset::exact(0), &mut out);
        assert!(out.is_empty());
        assert_eq!(diff.tally().unchanged, 2);
    }
}
