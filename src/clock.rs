//! The change rule, and the clock offset it depends on.
//!
//! S3 stamps `LastModified` with the server's clock; file mtimes come from ours. Instead of the
//! original tool's fixed 1200 s fudge, every response's `Date` header bounds the offset: a request
//! sent at local time `t0` whose response, dated `D` (whole seconds), arrived at `t1` says
//! `offset = server - local` lies in `(D - t1, D + 1 - t0)`. Intersecting the intervals of all
//! requests of a run narrows the offset to about a round trip. The rule then needs only a small
//! margin (`clock_fudge`) for file-system timestamp granularity, and a decision that the interval
//! cannot settle yet is deferred until it has narrowed, instead of being guessed.

use std::sync::Mutex;

use crate::model::{LocalFile, Reason, RemoteObject, Time};

/// Bounds on `server clock - local clock`, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offset {
    pub lo: i64,
    pub hi: i64,
}

impl Offset {
    /// An offset known exactly, for tests and fixtures.
    pub fn exact(nanos: i64) -> Offset {
        Offset { lo: nanos, hi: nanos }
    }

    /// What a run assumes while no response has carried a `Date` header (some gateways strip
    /// it): any offset within 15 minutes either way, the skew beyond which AWS refuses a signed
    /// request. Decisions inside that window are uploads, never a guess of 0.
    pub const UNKNOWN: Offset = Offset { lo: -15 * 60 * Time::NANOS_PER_SEC, hi: 15 * 60 * Time::NANOS_PER_SEC };

    pub fn width(self) -> i64 {
        self.hi - self.lo
    }

    pub fn midpoint(self) -> i64 {
        self.lo + self.width() / 2
    }
}

/// Collects `Date` samples from every response of a run.
#[derive(Debug, Default)]
pub struct Clock {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    bound: Option<Offset>,
    samples: u64,
}

impl Clock {
    /// Records one response: sent at `sent`, received at `received`, `Date` header `date`.
    pub fn observe(&self, sent: Time, received: Time, date_secs: i64) {
        let date = date_secs.saturating_mul(Time::NANOS_PER_SEC);
        let sample = Offset { lo: date - received.0, hi: date + Time::NANOS_PER_SEC - sent.0 };
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.samples += 1;
        state.bound = Some(match state.bound {
            // Disjoint intervals mean a clock stepped during the run: trust the newest sample.
            Some(b) if b.lo.max(sample.lo) <= b.hi.min(sample.hi) => {
                Offset { lo: b.lo.max(sample.lo), hi: b.hi.min(sample.hi) }
            }
            _ => sample,
        });
    }

    /// The current bounds, or `None` before any response carried a `Date` header.
    pub fn offset(&self) -> Option<Offset> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).bound
    }

    /// The current bounds, or [`Offset::UNKNOWN`] while none is measured.
    pub fn bounds(&self) -> Offset {
        self.offset().unwrap_or(Offset::UNKNOWN)
    }

    pub fn samples(&self) -> u64 {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).samples
    }
}

/// What the rule says about a file and the object under its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Same,
    Upload(Reason),
    /// The answer depends on where in its interval the clock offset lies.
    Unsure,
}

/// Size first (free; for a compressed entry only an object larger than its source is ruled
/// out, see [`LocalFile::size_rules_out`]), then mtime against `LastModified` moved to the local
/// clock, less a margin.
/// With the offset measured, the margin only has to cover what the measurement cannot see, such
/// as a file system with timestamps coarser than a second (FAT's two seconds); whole-second
/// mtimes are already read as "some time within that second".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeRule {
    /// Margin in nanoseconds: a file modified up to this long before its upload is sent again.
    pub fudge: i64,
}

impl ChangeRule {
    pub fn judge(&self, file: &LocalFile, object: &RemoteObject, offset: Offset) -> Verdict {
        if file.size_rules_out(object.size) {
            return Verdict::Upload(Reason::Size);
        }
        // The object was written at local time `last_modified - offset`.
        let written = object.last_modified.0;
        let latest_write = written - offset.lo - self.fudge;
        let earliest_write = written - offset.hi - self.fudge;
        // A whole-second mtime may come from a file system that truncates: the file may have been
        // written as late as the end of that second.
        let mtime =
            if file.mtime.0 % Time::NANOS_PER_SEC == 0 { file.mtime.0 + Time::NANOS_PER_SEC - 1 } else { file.mtime.0 };
        if mtime > latest_write {
            Verdict::Upload(Reason::Newer)
        } else if mtime <= earliest_write {
            Verdict::Same
        } else {
            Verdict::Unsure
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = Time::NANOS_PER_SEC;

    fn file(size: u64, mtime: i64) -> LocalFile {
        LocalFile::new("k".into(), "k".into(), size, Time(mtime))
    }

    fn object(size: u64, last_modified: i64) -> RemoteObject {
        RemoteObject { key: "k".into(), size, last_modified: Time(last_modified), etag: None }
    }

    #[test]
    fn samples_intersect() {
        let clock = Clock::default();
        // Server is exactly 10.3 s ahead; requests take 20 ms.
        for start_ms in [0_i64, 250, 500, 750, 900] {
            let sent = 1_000 * S + start_ms * 1_000_000;
            let received = sent + 20_000_000;
            let server_at = sent + 10 * S + 300_000_000 + 10_000_000;
            clock.observe(Time(sent), Time(received), server_at.div_euclid(S));
        }
        let offset = clock.offset().unwrap();
        assert!(offset.lo <= 10_300_000_000 && 10_300_000_000 <= offset.hi, "{offset:?}");
        assert!(offset.width() < 300_000_000, "five phases narrow a 1 s interval: {offset:?}");
        assert_eq!(clock.samples(), 5);
    }

    #[test]
    fn rule_uses_size_then_time() {
        let rule = ChangeRule { fudge: S / 2 };
        let exact = Offset::exact(0);
        assert_eq!(rule.judge(&file(1, 0), &object(2, 100 * S), exact), Verdict::Upload(Reason::Size));
        assert_eq!(rule.judge(&file(1, 99 * S + 1), &object(1, 100 * S), exact), Verdict::Same);
        // A whole-second mtime may be truncated: 99.0 s could be as late as 99.999 s.
        assert_eq!(
            rule.judge(&file(1, 99 * S), &object(1, 99 * S + S / 2), Offset::exact(0)),
            Verdict::Upload(Reason::Newer)
        );
        assert_eq!(rule.judge(&file(1, 100 * S - S / 4), &object(1, 100 * S), exact), Verdict::Upload(Reason::Newer));
        // Server 60 s ahead: an object stamped 100 s was written at local 40 s.
        let ahead = Offset::exact(60 * S);
        assert_eq!(rule.judge(&file(1, 50 * S + 1), &object(1, 100 * S), ahead), Verdict::Upload(Reason::Newer));
        assert_eq!(rule.judge(&file(1, 30 * S + 1), &object(1, 100 * S), ahead), Verdict::Same);
        // An interval that straddles the mtime cannot decide.
        let wide = Offset { lo: 0, hi: S };
        assert_eq!(rule.judge(&file(1, 99 * S + 1), &object(1, 100 * S), wide), Verdict::Unsure);
    }
}
