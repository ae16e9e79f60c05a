//! The clock offset of a run: every response's `Date` header narrows it, and when a decision
//! still waits on it at the end, a few cheap requests narrow it further.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::{Clock, Offset};
use crate::diff::{Diff, Offsets};
use crate::model::Time;

/// The run's clock, and the request that narrows it.
pub struct Probe {
    pub clock: Arc<Clock>,
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
}

impl Offsets for Probe {
    fn now(&self) -> Offset {
        self.clock.bounds()
    }

    /// Narrows the offset while some decision depends on it: a file modified within about a
    /// second of its last upload. Requests go out at many sub-second phases, and each `Date`
    /// answer cuts the interval; this costs at most about a second, and nothing when no decision
    /// waits or when no response carries a `Date` header to learn from.
    async fn narrow(&self, diff: &Diff) {
        let started = Instant::now();
        let measured = self.clock.samples() > 0;
        while measured && diff.unsure_under(self.now()) && started.elapsed() < Duration::from_millis(1200) {
            let _ = self.client.head_bucket().bucket(&self.bucket).send().await;
            tokio::time::sleep(Duration::from_millis(37)).await;
        }
    }
}

impl Probe {
    /// What `-v` says about the clock at the end of a run.
    pub fn log(&self, fudge: i64) {
        let margin = fudge as f64 / 1e9;
        match self.clock.offset() {
            Some(o) => tracing::debug!(
                "clock: server is {:+.3}s from this machine (±{:.3}s, from {} responses); margin {:.3}s",
                o.midpoint() as f64 / 1e9,
                o.width() as f64 / 2e9,
                self.clock.samples(),
                margin
            ),
            None => tracing::debug!(
                "clock: no response carried a Date header, so the server's clock is unknown: files changed within {}s of their object's LastModified are uploaded again; margin {margin:.3}s",
                Offset::UNKNOWN.hi / Time::NANOS_PER_SEC
            ),
        }
    }
}
