//! Deciding a key that both sides hold: metadata first, the local state next, the bytes last.
//!
//! The sizes decide for free. Then, with `compare = "mtime"`, the mtime rule alone (the original
//! tool's, no byte read). With `"checksum"`, every file whose size matches is read and compared,
//! every run, and one nothing can be compared with is uploaded. With `"auto"`, a key the state
//! has a record of is settled by the record or by the bytes, never by the mtime rule: the same
//! without a read when neither the file (size, mtime) nor the object (ETag, `LastModified`)
//! moved since the record; otherwise read and compared when the ETag or the record can say
//! anything of its bytes, and uploaded when nothing can (the object changed since the state saw
//! it, or the file did, and nothing can tell whether they still match). A key the state does not
//! know is read when the mtime rule would upload it and its ETag can say whether the bytes
//! differ; otherwise the mtime rule stands. Reading happens later, off the merge loop: the diff
//! only says which pairs need it ([`Decision::Check`]).
//!
//! What the state learns of a pair found the same without a read is only the mtime rule's guess,
//! so it is learned only for a key the state had no record of (where the rule is all there is
//! anyway); a record the run could not confirm is kept as it was, so a later run still sees that
//! something moved since it.
//!
//! An inline body (bytes a transform made) whose size matches is always compared by content,
//! whatever the mode: reading memory costs nothing, and its mtime (0, or its source's) says
//! nothing of its bytes, so the mtime rule would never see it change.
//!
//! A compressed entry (`compress` transform) is published with fewer bytes than its file, and how
//! many is known only once it is compressed, so its size settles nothing but an object larger
//! than the file. The rest holds as it is: the local state records the *source* file's size and
//! mtime with the MD5 and ETag of the compressed bytes sent, so an unchanged source whose object
//! is unchanged since is settled without reading it; otherwise it is read, compressed as the
//! upload would compress it, and those bytes are compared with the ETag or the state's MD5. In
//! `"auto"`, one the mtime rule finds unchanged and nothing above settles (no state: a fresh CI
//! cache) is not taken on its mtime alone, which hides an edit copied with an old mtime: its
//! object is asked for the source size its upload recorded ([`Decision::Head`]), as a plain
//! file's size is compared for free.
//!
//! A key the chain publishes `immutable` must never get other bytes under its name (the guard,
//! `sink::guard`, refuses such an upload). So while the guard is on, a decision to upload one
//! without knowing whether its bytes differ (the mtime rule, an unsettled clock, a record that
//! moved, a HEAD) becomes a read wherever the ETag or the state can compare them, in every mode,
//! `mtime` too: the guard then refuses only bytes that really changed, and a rebuild with the same
//! bytes uploads nothing. Where nothing can compare them the upload stays, and the guard refuses it.

use crate::clock::{ChangeRule, Offset, Verdict};
pub use crate::config::CompareMode;
use crate::content::{comparable, unchanged_since};
use crate::model::{LocalFile, Reason, RemoteObject, Settled};
use crate::transform::is_immutable;

/// The settings of the decision.
#[derive(Debug, Clone, Copy)]
pub struct Compare {
    pub mode: CompareMode,
    /// The part size sitesync uploads large files with, to recompute their multipart ETags.
    pub own_part: u64,
    /// Whether what a run learns of unchanged keys is kept (the local state is on).
    pub learn: bool,
    /// Whether keys published `immutable` are guarded: then their bytes are compared wherever
    /// something can compare them, before they are uploaded.
    pub guard: bool,
}

impl Default for Compare {
    fn default() -> Self {
        Compare { mode: CompareMode::Mtime, own_part: 8 * 1024 * 1024, learn: false, guard: false }
    }
}

/// What the diff decides for a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The same; `learn` when the state should record the pair (it did not know it as it is).
    Same {
        learn: bool,
    },
    Upload(Reason),
    /// The answer depends on where in its interval the clock offset lies.
    Unsure,
    /// Read the file and compare; `otherwise` is the verdict when nothing can be compared.
    Check {
        otherwise: Settled,
    },
    /// Ask the object for the size of the source it was compressed from.
    Head,
}

impl Compare {
    pub fn decide(&self, rule: &ChangeRule, file: &LocalFile, object: &RemoteObject, offset: Offset) -> Decision {
        let mtime = rule.judge(file, object, offset);
        if let Verdict::Upload(Reason::Size) = mtime {
            return Decision::Upload(Reason::Size);
        }
        if file.inline_bytes().is_some() {
            return Decision::Check { otherwise: Settled::Upload(Reason::Unverified) };
        }
        let recorded = file.known.as_deref();
        let moved = recorded.is_some_and(|k| k.size != file.size || k.mtime != file.mtime);
        let current = recorded.filter(|k| unchanged_since(object, k));
        // The object's size, not the file's: a compressed entry's parts are of the compressed bytes,
        // and a plain file that got this far has the object's size.
        let can_compare =
            comparable(object.etag.as_deref(), object.size, self.own_part) || current.is_some_and(|k| k.md5.is_some());
        // An unconfirmed "same" is worth keeping only where the state knew nothing of the key.
        let learn = self.learn && recorded.is_none();
        let decision = match self.mode {
            CompareMode::Mtime => by_mtime(mtime, learn),
            CompareMode::Checksum if can_compare => Decision::Check { otherwise: Settled::Upload(Reason::Unverified) },
            CompareMode::Checksum => Decision::Upload(Reason::Unverified),
            CompareMode::Auto if recorded.is_some() => by_record(mtime, current.is_some(), moved, can_compare),
            CompareMode::Auto if can_compare && mtime != Verdict::Same => {
                let otherwise = match mtime {
                    Verdict::Upload(reason) => Settled::Upload(reason),
                    Verdict::Same | Verdict::Unsure => Settled::Upload(Reason::Newer),
                };
                Decision::Check { otherwise }
            }
            CompareMode::Auto if mtime == Verdict::Same && file.encoding().is_some() => Decision::Head,
            CompareMode::Auto => by_mtime(mtime, learn),
        };
        match self.guard && can_compare && is_immutable(file) {
            true => read_before_upload(decision),
            false => decision,
        }
    }
}

/// A key a rollback restored since the last sync: compared by content whatever the mode says, as
/// its `LastModified` (the rollback's) says nothing of its bytes, and a local state recorded the
/// object it replaced. Read when its ETag can say; sent otherwise, and when the rollback's record
/// does not say what it made of the key.
pub fn restored(file: &LocalFile, object: &RemoteObject, known: bool, own_part: u64) -> Decision {
    if file.size_rules_out(object.size) {
        return Decision::Upload(Reason::Size);
    }
    let readable = file.inline_bytes().is_some() || comparable(object.etag.as_deref(), object.size, own_part);
    match known && readable {
        true => Decision::Check { otherwise: Settled::Upload(Reason::Restored) },
        false => Decision::Upload(Reason::Restored),
    }
}

/// For a guarded key whose bytes something can compare: a decision that would upload it, or may,
/// without knowing whether its bytes differ becomes a read.
fn read_before_upload(decision: Decision) -> Decision {
    match decision {
        Decision::Upload(reason @ (Reason::Newer | Reason::Unverified | Reason::Replaced)) => {
            Decision::Check { otherwise: Settled::Upload(reason) }
        }
        Decision::Unsure => Decision::Check { otherwise: Settled::Upload(Reason::Newer) },
        Decision::Head => Decision::Check { otherwise: Settled::Upload(Reason::Unverified) },
        other => other,
    }
}

/// `auto` for a key the state has a record of: the record settles it while neither side moved
/// since; then the bytes do, and when nothing can compare them the file is sent.
fn by_record(mtime: Verdict, current: bool, moved: bool, can_compare: bool) -> Decision {
    if current && !moved {
        return Decision::Same { learn: false };
    }
    let reason = match mtime {
        Verdict::Upload(reason) => reason,
        _ if !current => Reason::Replaced,
        _ => Reason::Unverified,
    };
    match can_compare {
        true => Decision::Check { otherwise: Settled::Upload(reason) },
        false => Decision::Upload(reason),
    }
}

fn by_mtime(verdict: Verdict, learn: bool) -> Decision {
    match verdict {
        Verdict::Same => Decision::Same { learn },
        Verdict::Upload(reason) => Decision::Upload(reason),
        Verdict::Unsure => Decision::Unsure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Known, Time};

    const S: i64 = Time::NANOS_PER_SEC;
    const MD5_X: &str = "9dd4e461268c8034f5c8564e155c67a6";

    fn file(mtime: i64, known: Option<Known>) -> LocalFile {
        let mut f = LocalFile::new("k".into(), "k".into(), 1, Time(mtime * S));
        f.known = known.map(Box::new);
        f
    }

    fn object(lm: i64, etag: Option<&str>) -> RemoteObject {
        RemoteObject { key: "k".into(), size: 1, last_modified: Time(lm * S), etag: etag.map(str::to_owned) }
    }

    fn known(mtime: i64, lm: i64) -> Known {
        Known {
            size: 1,
            mtime: Time(mtime * S),
            md5: Some([0; 16]),
            etag: None,
            lm_lo: Time(lm * S),
            lm_hi: Time(lm * S),
        }
    }

    fn decide(mode: CompareMode, f: &LocalFile, o: &RemoteObject) -> Decision {
        let compare = Compare { mode, own_part: 8 << 20, learn: true, guard: false };
        compare.decide(&ChangeRule { fudge: 0 }, f, o, Offset::exact(0))
    }

    #[test]
    fn a_rebuilt_file_is_read_only_when_something_can_compare_it() {
        // Rewritten after its object, same size: the mtime rule would upload.
        let rebuilt = file(200, None);
        let check = Decision::Check { otherwise: Settled::Upload(Reason::Newer) };
        assert_eq!(decide(CompareMode::Auto, &rebuilt, &object(100, Some(MD5_X))), check);
        assert_eq!(decide(CompareMode::Auto, &rebuilt, &object(100, None)), Decision::Upload(Reason::Newer));
        assert_eq!(decide(CompareMode::Mtime, &rebuilt, &object(100, Some(MD5_X))), Decision::Upload(Reason::Newer));
    }

    #[test]
    fn the_state_settles_a_file_it_knows_as_it_is() {
        let settled = file(200, Some(known(200, 100)));
        assert_eq!(decide(CompareMode::Auto, &settled, &object(100, None)), Decision::Same { learn: false });
        // Checksum mode reads it anyway.
        assert!(matches!(decide(CompareMode::Checksum, &settled, &object(100, None)), Decision::Check { .. }));
        // The object changed since the state saw it (another writer): the file, unchanged, goes
        // back, since no ETag can say whether the new object holds its bytes; with one, it is read.
        let rewritten = decide(CompareMode::Auto, &settled, &object(300, None));
        assert_eq!(rewritten, Decision::Upload(Reason::Replaced));
        let comparable = decide(CompareMode::Auto, &settled, &object(300, Some(MD5_X)));
        assert_eq!(comparable, Decision::Check { otherwise: Settled::Upload(Reason::Replaced) });
        // The mtime rule alone says "same" (the file is older), but does not teach the state so.
        assert_eq!(decide(CompareMode::Mtime, &settled, &object(300, None)), Decision::Same { learn: false });
    }

    #[test]
    fn an_older_mtime_than_the_state_recorded_is_read() {
        // `cp -p` of an edit: same size, an mtime older than the object, but not the state's.
        let edited = file(50, Some(known(90, 100)));
        assert_eq!(
            decide(CompareMode::Auto, &edited, &object(100, None)),
            Decision::Check { otherwise: Settled::Upload(Reason::Unverified) }
        );
        // Nothing to compare it with (the state read no MD5, the listing has no ETag): it is sent.
        let unread = file(50, Some(Known { md5: None, ..known(90, 100) }));
        assert_eq!(decide(CompareMode::Auto, &unread, &object(100, None)), Decision::Upload(Reason::Unverified));
    }

    fn compressed(mtime: i64, known: Option<Known>) -> LocalFile {
        let mut f = file(mtime, known);
        f.size = 5000;
        f.body = crate::model::Body::Compressed { path: "k".into(), encoding: crate::model::Encoding::Gzip };
        f
    }

    fn sized(lm: i64, size: u64, etag: Option<&str>) -> RemoteObject {
        RemoteObject { size, ..object(lm, etag) }
    }

    #[test]
    fn a_compressed_entry_is_not_judged_by_its_size() {
        // Its object is smaller than the file: what compression does, not a change.
        assert_eq!(
            decide(CompareMode::Mtime, &compressed(50, None), &sized(100, 1200, None)),
            Decision::Same { learn: true }
        );
        // As large (it did not shrink) is not a change either (`auto` asks the object, below);
        // larger is.
        assert_eq!(decide(CompareMode::Auto, &compressed(50, None), &sized(100, 5000, None)), Decision::Head);
        assert_eq!(
            decide(CompareMode::Auto, &compressed(50, None), &sized(100, 5001, None)),
            Decision::Upload(Reason::Size)
        );
        // The state knows the source's size and mtime: an unchanged source settles without a read.
        let state = Known { size: 5000, ..known(200, 100) };
        assert_eq!(
            decide(CompareMode::Auto, &compressed(200, Some(state.clone())), &sized(100, 1200, None)),
            Decision::Same { learn: false }
        );
        // A rebuilt source is read and compared, by the compressed bytes' ETag or the state's MD5.
        let check = Decision::Check { otherwise: Settled::Upload(Reason::Newer) };
        assert_eq!(decide(CompareMode::Auto, &compressed(300, Some(state)), &sized(100, 1200, None)), check);
        assert_eq!(decide(CompareMode::Auto, &compressed(300, None), &sized(100, 1200, Some(MD5_X))), check);
    }

    #[test]
    fn a_compressed_entry_the_mtime_rule_alone_would_settle_asks_its_object() {
        // No state, an mtime older than the object: its size may have changed all the same.
        for etag in [None, Some(MD5_X)] {
            assert_eq!(decide(CompareMode::Auto, &compressed(50, None), &sized(100, 1200, etag)), Decision::Head);
        }
        // The state's record moved and nothing can compare the bytes: sent, as any key the state
        // knows would be.
        let moved = Known { size: 4000, ..known(50, 100) };
        let moved = Known { md5: None, ..moved };
        assert_eq!(
            decide(CompareMode::Auto, &compressed(50, Some(moved)), &sized(100, 1200, None)),
            Decision::Upload(Reason::Unverified)
        );
        // The state settles it, the mtime rule uploads it, or the mode reads nothing: no HEAD.
        let state = Known { size: 5000, ..known(50, 100) };
        assert_eq!(
            decide(CompareMode::Auto, &compressed(50, Some(state)), &sized(100, 1200, None)),
            Decision::Same { learn: false }
        );
        assert_eq!(
            decide(CompareMode::Auto, &compressed(300, None), &sized(100, 1200, None)),
            Decision::Upload(Reason::Newer)
        );
        assert_eq!(
            decide(CompareMode::Mtime, &compressed(50, None), &sized(100, 1200, None)),
            Decision::Same { learn: true }
        );
        // A plain file is not asked: its size was compared for free.
        assert_eq!(decide(CompareMode::Auto, &file(50, None), &object(100, None)), Decision::Same { learn: true });
    }

    #[test]
    fn an_inline_body_is_compared_by_content_in_every_mode() {
        let mut generated = LocalFile::inline("k".into(), std::sync::Arc::from(&b"x"[..]), Time(0));
        // The state knows it as it is, and the mtime rule says it is older than its object.
        generated.known = Some(Box::new(Known { mtime: Time(0), ..known(0, 100) }));
        let check = Decision::Check { otherwise: Settled::Upload(Reason::Unverified) };
        for mode in [CompareMode::Mtime, CompareMode::Auto, CompareMode::Checksum] {
            assert_eq!(decide(mode, &generated, &object(100, None)), check, "{mode:?}");
            assert_eq!(decide(mode, &generated, &object(100, Some(MD5_X))), check, "{mode:?}");
        }
        let bigger = RemoteObject { size: 2, ..object(100, Some(MD5_X)) };
        assert_eq!(decide(CompareMode::Mtime, &generated, &bigger), Decision::Upload(Reason::Size));
    }

    fn immutable(mut f: LocalFile) -> LocalFile {
        f.meta.get_or_insert_default().set(crate::model::fields::Field::CacheControl, "max-age=31536000, immutable");
        f
    }

    fn guarded(mode: CompareMode, f: &LocalFile, o: &RemoteObject) -> Decision {
        let compare = Compare { mode, own_part: 8 << 20, learn: true, guard: true };
        compare.decide(&ChangeRule { fudge: 0 }, f, o, Offset::exact(0))
    }

    #[test]
    fn a_guarded_immutable_key_is_read_before_an_upload_in_every_mode() {
        let rebuilt = immutable(file(200, None));
        let check = Decision::Check { otherwise: Settled::Upload(Reason::Newer) };
        for mode in [CompareMode::Mtime, CompareMode::Auto, CompareMode::Checksum] {
            assert!(matches!(guarded(mode, &rebuilt, &object(100, Some(MD5_X))), Decision::Check { .. }), "{mode:?}");
        }
        assert_eq!(guarded(CompareMode::Mtime, &rebuilt, &object(100, Some(MD5_X))), check);
        // Without the guard, or for a key that is not immutable, `mtime` reads nothing.
        assert_eq!(decide(CompareMode::Mtime, &rebuilt, &object(100, Some(MD5_X))), Decision::Upload(Reason::Newer));
        let plain = file(200, None);
        assert_eq!(guarded(CompareMode::Mtime, &plain, &object(100, Some(MD5_X))), Decision::Upload(Reason::Newer));
        // Nothing can compare it: the upload stays, for the guard to refuse.
        assert_eq!(guarded(CompareMode::Mtime, &rebuilt, &object(100, None)), Decision::Upload(Reason::Newer));
        // A size that differs needs no read; an older file is not read either.
        let other = RemoteObject { size: 2, ..object(100, Some(MD5_X)) };
        assert_eq!(guarded(CompareMode::Mtime, &rebuilt, &other), Decision::Upload(Reason::Size));
        let older = immutable(file(50, None));
        assert_eq!(guarded(CompareMode::Mtime, &older, &object(100, Some(MD5_X))), Decision::Same { learn: true });
        // A compressed key the mtime rule finds unchanged is read rather than asked for its size.
        let packed = immutable(compressed(50, None));
        assert_eq!(
            guarded(CompareMode::Auto, &packed, &sized(100, 1200, Some(MD5_X))),
            Decision::Check { otherwise: Settled::Upload(Reason::Unverified) }
        );
    }

    #[test]
    fn a_key_a_rollback_restored_is_read_whatever_the_mode_or_sent() {
        // Older than its object, and the state knows it as it was: the mtime rule and the state
        // would both call it the same.
        let restored_file = file(50, Some(known(50, 100)));
        let check = Decision::Check { otherwise: Settled::Upload(Reason::Restored) };
        assert_eq!(restored(&restored_file, &object(300, Some(MD5_X)), true, 8 << 20), check);
        assert_eq!(restored(&restored_file, &object(300, None), true, 8 << 20), Decision::Upload(Reason::Restored));
        assert_eq!(
            restored(&restored_file, &object(300, Some(MD5_X)), false, 8 << 20),
            Decision::Upload(Reason::Restored)
        );
        let other = RemoteObject { size: 2, ..object(300, Some(MD5_X)) };
        assert_eq!(restored(&restored_file, &other, true, 8 << 20), Decision::Upload(Reason::Size));
    }

    #[test]
    fn checksum_mode_uploads_what_nothing_can_compare() {
        assert_eq!(
            decide(CompareMode::Checksum, &file(50, None), &object(100, None)),
            Decision::Upload(Reason::Unverified)
        );
    }
}
