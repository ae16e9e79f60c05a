//! The delete limits: a run that would delete too much of the prefix is refused.
//!
//! They guard against a source pointed at the wrong folder, or a build that produced half a
//! site. The count limit is checked as deletes are found, so such a run stops early; the share
//! of the prefix needs the final tally. A run where something failed sends no deletes at all, so
//! the limits need not stop it.

use super::Tally;
use crate::config::DeleteSettings;

#[derive(Debug, Clone, Copy)]
pub struct DeleteLimits {
    /// Whether the limits apply: deletes are on and not forced.
    pub enforced: bool,
    /// Refuse more deletes than this.
    pub max: u64,
    /// Refuse deleting more than this share of the objects under the prefix, in percent.
    pub max_percent: u8,
    /// Stop the run as soon as the count limit is crossed (a sync), rather than only report it
    /// at the end (a plan).
    pub early: bool,
}

impl DeleteLimits {
    /// The limits of a run as configured: none when it does not delete or `forced`
    /// (`--force-delete`); `early` for a sync, which stops as soon as the count limit is crossed.
    pub fn new(settings: &DeleteSettings, forced: bool, early: bool) -> DeleteLimits {
        let DeleteSettings { enabled, max, max_percent, .. } = *settings;
        DeleteLimits { enforced: enabled && !forced, max, max_percent, early }
    }

    /// Why `deletes` exceed a limit, if they do. Without the final tally only the count limit can
    /// be checked, and only when the run stops early.
    pub fn check(&self, deletes: u64, tally: Option<Tally>) -> Option<String> {
        if !self.enforced || deletes == 0 || (tally.is_none() && !self.early) {
            return None;
        }
        if deletes > self.max {
            return Some(format!(
                "refusing to delete more than max_delete = {} objects ({deletes} or more planned); pass --force-delete or raise max_delete",
                self.max
            ));
        }
        let tally = tally?;
        // A shard may own no file while the others' folders hold some: the source is not empty.
        if tally.local_files == 0 && tally.files_elsewhere == 0 {
            return Some(format!(
                "refusing to delete {deletes} objects: the source holds no files; pass --force-delete to do it anyway"
            ));
        }
        let percent = u64::from(self.max_percent);
        if deletes >= 2 && deletes * 100 > percent * tally.remote_objects {
            return Some(format!(
                "refusing to delete {deletes} of the {} objects under the prefix (more than max_delete_percent = {percent}%); pass --force-delete or raise max_delete_percent",
                tally.remote_objects
            ));
        }
        None
    }
}
