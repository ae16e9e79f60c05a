//! Saving the local state after a run: the old state merged with what the run learned.
//!
//! The old state and the run's record of changes are both read in key order, so the merge is
//! one pass over each, with a record's worth of memory: a key the run uploaded, copied or
//! confirmed gets what the run learned of it, a key it deleted is dropped, every other key keeps
//! what the old state said. A run that learned nothing leaves the file as it is.

use std::path::PathBuf;

use super::{Known, Reader, Writer, open_for_run, replace};
use crate::after::{AfterRun, Outcome, Said};
use crate::journal::{Change, Changes, Record};
use crate::sink::Failure;

/// Writes the state of this run's target and source after the run.
pub struct SaveState {
    pub path: PathBuf,
    pub identity: String,
}

#[async_trait::async_trait]
impl AfterRun for SaveState {
    async fn run(self: Box<Self>, outcome: &Outcome<'_>) -> Result<Said, Failure> {
        if outcome.dry_run || outcome.applied.changes.is_empty() {
            return Ok(Said::default());
        }
        let changes = &outcome.applied.changes;
        let failed = |e: std::io::Error| Failure {
            key: self.path.display().to_string(),
            op: "state".into(),
            error: format!("cannot save the local state: {e}"),
        };
        // The merge reads files: on a thread of the blocking pool's kind, waited for here.
        tokio::task::block_in_place(|| merge(&self, changes)).map_err(failed)?;
        Ok(Said::default())
    }
}

fn merge(save: &SaveState, changes: &Changes) -> std::io::Result<()> {
    let mut old = open_for_run(&save.path, &save.identity);
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
        (_, Some(known)) => {
            let mut known = known.clone();
            // An upload streamed from disk learns no MD5; the bytes are those it knew if the
            // file is the same.
            if known.md5.is_none()
                && let Some(b) = before.as_ref().filter(|b| b.size == known.size && b.mtime == known.mtime)
            {
                known.md5 = b.md5;
            }
            Some(known)
        }
        (_, None) => before,
    }
}
