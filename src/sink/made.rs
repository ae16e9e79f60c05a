//! What a request made: the object's ETag, and when the server stamped it, as the local state
//! will know it.

use super::SinkContext;
use crate::model::{Known, Time};

/// What a request made: the object's ETag, and the window its `LastModified` falls in (the
/// server stamps it between the request's start and its answer, in the server's clock).
pub(super) struct Made {
    etag: Option<String>,
    lm_lo: Time,
    lm_hi: Time,
}

impl Made {
    /// A request sent at `sent` that has just been answered.
    pub fn between(ctx: &SinkContext, sent: Time, etag: Option<&str>) -> Made {
        let offset = ctx.clock.bounds();
        Made {
            etag: etag.map(|e| e.trim_matches('"').to_owned()),
            lm_lo: Time(sent.0 + offset.lo),
            lm_hi: Time(Time::now().0 + offset.hi),
        }
    }

    /// The answer gave the `LastModified` itself.
    pub fn exactly(&mut self, last_modified: Time) {
        (self.lm_lo, self.lm_hi) = (last_modified, last_modified);
    }

    /// What the state knows of the object made from `size` bytes of a file of `mtime`.
    pub fn known(self, size: u64, mtime: Time, md5: Option<[u8; 16]>) -> Known {
        Known { size, mtime, md5, etag: self.etag, lm_lo: self.lm_lo, lm_hi: self.lm_hi }
    }
}
