//! Saving the local state after a run: the old state merged with what the run learned.
//!
//! The old state and the run's record of changes are both read in key order, so the merge is
//! one pass over each, with a record's worth of memory: a key the run uploaded, copied or
//! confirmed gets what the run learned of it, a key it deleted is dropped, every other key keeps
//! what the old state said. A run that learned nothing leaves the file as it is.

use std::path::PathBuf;

use crate::after::{AfterError, AfterRun, Outcome, Said};
use crate::content::{hex, same_object, single_part};
use crate::journal::{Change, Changes, Record};
use crate::state::{Known, Reader, Writer, replace};

/// Writes the state of this run's target and source after the run.
pub struct SaveState {
    pub path: PathBuf,
    pub identity: String,
}

#[async_trait::async_trait]
impl AfterRun for SaveState {
    async fn run(self: Box<Self>, outcome: &Outcome<'_>) -> Result<Said, AfterError> {
        if outcome.dry_run || outcome.applied.changes.is_empty() {
            return Ok(Said::default());
        }
        let changes = &outcome.applied.changes;
        // The merge reads files: on a thread of the blocking pool's kind, waited for here. The
        // state is a cache: a run that cannot keep it did its work, and the next reads more.
        if let Err(e) = tokio::task::block_in_place(|| merge(&self, changes)) {
            tracing::warn!(
                "cannot save the local state {}: {e}; the next run reads more to compare",
                self.path.display()
            );
        }
        Ok(Said::default())
    }
}

fn merge(save: &SaveState, changes: &Changes) -> std::io::Result<()> {
    // A state the run could not use was said so when it started; it is replaced here, silently.
    let mut old = Reader::open(&save.path, &save.identity).ok().flatten();
    let mut changed = changes.sorted()?.peekable();
    replace(
        &save.path,
        |out: &mut Writer<_>| {
            let mut kept = next(&mut old)?;
            loop {
                let change = changed.next().transpose()?;
                // The old entries before the next change stay as they were.
                while let Some((key, known)) = &kept {
                    if change.as_ref().is_some_and(|c| c.key.as_str() <= key.as_str()) {
                        break;
                    }
                    out.push(key, known)?;
                    kept = next(&mut old)?;
                }
                let Some(change) = change else { return Ok(()) };
                let replaced = kept.as_ref().is_some_and(|(key, _)| *key == change.key);
                let old_known = if replaced { kept.take().map(|(_, k)| k) } else { None };
                if replaced {
                    kept = next(&mut old)?;
                }
                // Several records of one key come together: the last one says how it ended.
                let mut last = change;
                while let Some(Ok(more)) = changed.next_if(|c| c.as_ref().is_ok_and(|c| c.key == last.key)) {
                    last = more;
                }
                if let Some(known) = learned(&last, old_known) {
                    out.push(&last.key, &known)?;
                }
            }
        },
        &save.identity,
    )
}

fn next(old: &mut Option<Reader>) -> std::io::Result<Option<(String, Known)>> {
    match old {
        Some(reader) => reader.next_record(),
        None => Ok(None),
    }
}

/// What the state keeps of a key after `record`, given what it knew before.
fn learned(record: &Record, before: Option<Known>) -> Option<Known> {
    match (record.change, &record.known) {
        (Change::Deleted, _) => None,
        (change, Some(known)) => {
            let mut known = known.clone();
            // An upload streamed from disk learns no MD5; the bytes are those the state knew if
            // the file is the same.
            if known.md5.is_none()
                && let Some(before) = &before
            {
                known.md5 = before.md5.filter(|md5| carries(md5, before, &known, change));
            }
            Some(known)
        }
        (_, None) => before,
    }
}

/// Whether `md5`, which `before` recorded, is also the MD5 of the object `after` records: a record
/// pairs an MD5 only with an object whose bytes it is. So the file must be the same (size and
/// mtime), the object's ETag must not say otherwise, and a pair confirmed without a read must be
/// of the object `before` saw (an upload or a copy made the object from the file itself).
fn carries(md5: &[u8; 16], before: &Known, after: &Known, change: Change) -> bool {
    let same_file = before.size == after.size && before.mtime == after.mtime;
    let etag_agrees =
        after.etag.as_deref().is_none_or(|etag| !single_part(etag) || etag.eq_ignore_ascii_case(&hex(md5)));
    let made_or_seen = change != Change::Confirmed || same_object(after, before);
    same_file && etag_agrees && made_or_seen
}
