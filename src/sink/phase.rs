//! Which phase of a publish an action runs in: the one decision the S3 sink (which holds each
//! action back until its phase) and the plan (which prints the actions in the order of their
//! phases) both make, made here once so the plan cannot show an order the sync does not keep.
//!
//! A site must never point at something that is not there yet: assets first, then the pages
//! (HTML) that refer to them, then the keys made by server-side copy (whose sources must be up),
//! then deletes, then the keys retired instead (recorded in the ledger after the deletes); what
//! cannot be done at all is last, and only the plan shows it.

use crate::model::fields::Field;
use crate::model::{Event, LocalFile, Reason};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Everything that is not a page: uploaded first so no page points at a missing asset.
    Assets,
    Pages,
    /// Redirect objects (`_redirects`): sent with the pages, after the assets.
    Redirects,
    /// Keys made by server-side copy: duplicates of a file uploaded under another key, and
    /// objects re-published in place because the chain's configuration changed.
    Copies,
    Deletes,
    /// Keys retired instead of deleted (`delete_grace`): recorded in the ledger once the deletes
    /// are done.
    Retires,
    Problems,
}

impl Phase {
    /// The phase of an event's action; `None` for an event that is not one (a pair found the
    /// same, or one still to be read or asked).
    pub fn of(event: &Event) -> Option<Phase> {
        match event {
            Event::Upload { file, reason } => Some(Phase::of_upload(file, *reason)),
            Event::Delete { .. } => Some(Phase::Deletes),
            Event::Retire { since: None, .. } => Some(Phase::Retires),
            // Retired by an earlier run, and kept as it is.
            Event::Retire { since: Some(_), .. } => None,
            Event::Problem(_) => Some(Phase::Problems),
            Event::Same { .. } | Event::Check { .. } | Event::Head { .. } => None,
        }
    }

    /// The phase of publishing `file` for `reason`: a copy when it is another key of a file (its
    /// `copy_of`) or an object re-published in place ([`in_place`]), else a page or an asset.
    pub fn of_upload(file: &LocalFile, reason: Reason) -> Phase {
        if in_place(file, reason) || file.copy_of.is_some() {
            Phase::Copies
        } else if is_redirect(file) {
            Phase::Redirects
        } else if is_page(&file.key) {
            Phase::Pages
        } else {
            Phase::Assets
        }
    }
}

/// Whether publishing `file` for `reason` copies its current object onto itself: only to give it
/// the changed chain's headers, and only when its bytes do not depend on the chain.
pub fn in_place(file: &LocalFile, reason: Reason) -> bool {
    reason == Reason::Chain && file.copies_in_place()
}

/// Whether an entry is a redirect object a `_redirects` rule made: bytes of its own, and the
/// website redirect header.
pub fn is_redirect(file: &LocalFile) -> bool {
    file.inline_bytes().is_some() && file.meta.as_ref().is_some_and(|m| m.get(Field::WebsiteRedirectLocation).is_some())
}

pub use crate::model::mime::is_page;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Body, Encoding, Time};

    fn file(key: &str) -> LocalFile {
        LocalFile::new(key.into(), format!("/src/{key}").into(), 1, Time(0))
    }

    #[test]
    fn copies_come_before_the_page_or_asset_rule_and_a_compressed_key_is_never_copied_in_place() {
        assert_eq!(Phase::of_upload(&file("a.css"), Reason::New), Phase::Assets);
        assert_eq!(Phase::of_upload(&file("a/Index.HTM"), Reason::New), Phase::Pages);
        assert_eq!(Phase::of_upload(&file("a.html"), Reason::Chain), Phase::Copies);
        let mut duplicate = file("latest/a.html");
        duplicate.copy_of = Some("v2/a.html".into());
        assert_eq!(Phase::of_upload(&duplicate, Reason::New), Phase::Copies);
        let mut compressed = file("a.css");
        compressed.body = Body::Compressed { path: "/src/a.css".into(), encoding: Encoding::Gzip };
        assert_eq!(Phase::of_upload(&compressed, Reason::Chain), Phase::Assets);
    }
}
