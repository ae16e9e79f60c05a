//! Everything sitesync keeps in the bucket, under the target prefix's `.sitesync/` folder: what
//! each key there is called, and the one clock its records are dated by.
//!
//! What a run needs to know beyond one machine lives in the bucket, so every machine, every shard
//! and a CI runner with no cache sees it: the chain marker (`chain`), the bucket lock (`lock`),
//! the ledger of keys retired by a deploy and not deleted yet (`retired`), one record per deploy
//! (`deploys/ID`) and the objects a deploy replaced or deleted, kept so it can be undone
//! (`kept/ID/KEY`). Each of those is named here and nowhere else; a shard of a split run has its
//! own marker, lock and ledger (`.K-of-N`), since the shards run at once. The folder is hidden
//! from the diff, so nothing in it is ever compared with the source or deleted as stale, and no
//! entry of the source may be published in it.
//!
//! Records are dated by the server's clock (this machine's clock moved by the measured offset), so
//! that runs from machines whose clocks disagree agree on what happened first and how long ago.
//! The ledger of retired keys is read and written by [`ledger`], the lock in the bucket by
//! [`lock`].
//!
//! The deploy history is made of: the record format (`record`), keeping an object before a run
//! changes it (`keep`), reading what the bucket holds (`store`: ids, headers, records), the
//! deploys in order and which one a rollback goes to (`timeline`), what a rollback must do
//! (`rollback`), the keys the next sync compares by content after a rollback (`suspects`), and
//! what is deleted as deploys age (`retention`, and `purge`). Nothing here sends a change to the
//! site's own keys: the sink does, from what these modules plan.

pub mod keep;
pub mod ledger;
pub mod lock;
pub mod record;
pub mod retention;
pub mod rollback;
pub mod store;
pub mod suspects;
pub mod timeline;

use crate::clock::Offset;
use crate::keys::shard::Shard;
use crate::keys::target::MAX_KEY_BYTES;
use crate::model::Time;
pub use crate::s3client::StoreError;

/// The folder, relative to the prefix, where sitesync keeps its own objects.
pub const FOLDER: &str = ".sitesync/";

/// The key of the object recording the chain configuration the objects were last published with.
pub const MARKER: &str = ".sitesync/chain";

/// The bucket lock's key.
pub const LOCK: &str = ".sitesync/lock";

/// The ledger of retired keys.
pub const LEDGER: &str = ".sitesync/retired";

/// The folder of deploy records, one object each, named by [`DeployId`].
pub const DEPLOYS: &str = ".sitesync/deploys/";

/// The folder of kept objects: `kept/ID/KEY`, what deploy ID replaced or deleted.
pub const KEPT: &str = ".sitesync/kept/";

/// The user metadata of a kept object naming the key it was kept from (percent-encoded, as a
/// header value must be ASCII), and the key's website redirect location (which a kept object must
/// not carry itself: the website endpoint would serve it as a redirect).
pub const KEPT_KEY: &str = "sitesync-key";
pub const KEPT_REDIRECT: &str = "sitesync-redirect";

/// The key (relative to the prefix) of what deploy `id` kept of `key`: `kept/ID/KEY`, or, when
/// that would be longer than S3 allows under a prefix of `prefix_len` bytes, `kept/ID/#MD5` with
/// the hex MD5 of the key (the kept object's metadata names the key anyway).
pub fn kept_key(id: &DeployId, key: &str, prefix_len: usize) -> String {
    let nested = format!("{KEPT}{id}/{key}");
    if prefix_len + nested.len() <= MAX_KEY_BYTES {
        return nested;
    }
    let digest = crate::content::md5_of(key.as_bytes());
    format!("{KEPT}{id}/#{}", crate::content::hex(&digest))
}

/// Why the history cannot be read, or a rollback cannot go where it was asked.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `--to ID` names no deploy recorded under the target: unknown, or pruned.
    #[error("no deploy {id} under {target}: {why}")]
    Unknown { id: String, target: String, why: String },
    /// There is no deploy to roll back to.
    #[error("nothing to roll back to under {target}: {why}")]
    Nothing { target: String, why: String },
    /// A record (`key`, relative to the prefix) that cannot be read as one.
    #[error("{key}: not a deploy record sitesync can read ({why})")]
    Record { key: String, why: String },
    /// A temporary file holding a record or a plan.
    #[error("a temporary file of the history: {0}")]
    Io(#[from] std::io::Error),
    /// A rollback restores the whole site: it is not split across machines.
    #[error("a rollback restores the whole site: run it once, without --shard (shard = {0:?})")]
    Sharded(String),
}

impl HistoryError {
    /// Whether the command was refused as asked (exit status 2) rather than failed.
    pub fn refused(&self) -> bool {
        matches!(self, HistoryError::Unknown { .. } | HistoryError::Nothing { .. } | HistoryError::Sharded(_))
    }
}

/// `base` for a whole run, `base.K-of-N` for a shard of a split run.
pub fn per_shard(base: &str, shard: Option<&Shard>) -> String {
    match shard {
        Some(shard) => format!("{base}.{}", shard.tag()),
        None => base.to_owned(),
    }
}

/// The server's clock now, as well as this run knows it: the local clock moved by the middle of
/// the measured offset's interval.
pub fn server_now(offset: Offset) -> Time {
    Time(Time::now().0.saturating_add(offset.midpoint()))
}

/// A deploy's id: its server time to the millisecond, then six random hex digits (two deploys in
/// one millisecond still differ), then the shard: `20261205T104500.123Z-3fa91c[-2-of-8]`. Ids
/// sort as the deploys happened.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeployId(pub String);

impl DeployId {
    pub fn new(at: Time, shard: Option<&Shard>) -> DeployId {
        let millis = at.0.div_euclid(1_000_000);
        let (secs, ms) = (millis.div_euclid(1000), millis.rem_euclid(1000));
        let stamp = format_utc(secs);
        let random = random_hex();
        match shard {
            Some(shard) => DeployId(format!("{stamp}.{ms:03}Z-{random}-{}", shard.tag())),
            None => DeployId(format!("{stamp}.{ms:03}Z-{random}")),
        }
    }
}

impl DeployId {
    /// The id of a deploy starting at `at` that must sort after `newest` (the newest one recorded):
    /// the server's clock as a run measures it is exact to about a second, so a deploy that
    /// follows another within it is dated a millisecond after it instead.
    pub fn after(at: Time, shard: Option<&Shard>, newest: Option<&DeployId>) -> DeployId {
        let floor = newest.and_then(DeployId::time).map_or(i64::MIN, |t| t.0 + 1_000_000);
        DeployId::new(Time(at.0.max(floor)), shard)
    }

    /// The id of a listed record or kept folder, if its name is one.
    pub fn parse(name: &str) -> Option<DeployId> {
        let (stamp, rest) = name.split_once("Z-")?;
        let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
        let (date, time) = stamp.split_once('T')?;
        let (secs, ms) = time.split_once('.')?;
        let (random, layout) = match rest.split_once('-') {
            Some((random, layout)) => (random, Some(layout)),
            None => (rest, None),
        };
        let random_ok = random.len() == 6 && random.bytes().all(|b| b.is_ascii_hexdigit());
        let layout_ok = layout.is_none_or(|l| parse_layout(l).is_some());
        let ok = digits(date, 8) && digits(secs, 6) && digits(ms, 3) && random_ok && layout_ok;
        ok.then(|| DeployId(name.to_owned()))
    }

    /// The shard of a split run that made it, as `(K, N)`; `None` for a whole run.
    pub fn shard(&self) -> Option<(u32, u32)> {
        let (_, rest) = self.0.split_once("Z-")?;
        parse_layout(rest.split_once('-')?.1)
    }

    /// When the deploy started, in the server's clock, to the millisecond.
    pub fn time(&self) -> Option<Time> {
        let stamp = self.0.get(..19)?;
        let field = |range: std::ops::Range<usize>| stamp.get(range)?.parse::<i64>().ok();
        let days = days_from_civil(field(0..4)?, field(4..6)? as u32, field(6..8)? as u32);
        let secs = days * 86_400 + field(9..11)? * 3600 + field(11..13)? * 60 + field(13..15)?;
        Some(Time((secs * 1000 + field(16..19)?) * 1_000_000))
    }
}

/// `K-of-N`.
fn parse_layout(text: &str) -> Option<(u32, u32)> {
    let (k, n) = text.split_once("-of-")?;
    let (k, n) = (k.parse().ok()?, n.parse().ok()?);
    (k >= 1 && k <= n).then_some((k, n))
}

/// A time as RFC 3339 in UTC, to the millisecond: `2026-12-05T10:45:00.123Z`.
pub fn rfc3339(at: Time) -> String {
    let millis = at.0.div_euclid(1_000_000);
    let (secs, ms) = (millis.div_euclid(1000), millis.rem_euclid(1000));
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

/// The time of an RFC 3339 UTC text as [`rfc3339`] writes it.
pub fn parse_rfc3339(text: &str) -> Option<Time> {
    let compact: String = text.chars().filter(|c| !matches!(c, '-' | ':')).collect();
    let stamp = compact.get(..19)?;
    DeployId(format!("{stamp}Z-000000")).time()
}

impl std::fmt::Display for DeployId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `YYYYMMDDTHHMMSS` of a Unix time in seconds (UTC).
fn format_utc(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}", rem / 3600, rem / 60 % 60, rem % 60)
}

/// A time as people read it, to the millisecond (UTC): `2026-12-05T10:45:00.123Z`.
pub fn iso_utc(at: Time) -> String {
    let millis = at.0.div_euclid(1_000_000);
    let (secs, ms) = (millis.div_euclid(1000), millis.rem_euclid(1000));
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

/// Howard Hinnant's days-to-civil: the proleptic Gregorian date of a day count from 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Howard Hinnant's days-from-civil: the day count from 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Six hex digits that differ between two ids made at once, here or on another machine.
fn random_hex() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(Time::now().0 as u128);
    hasher.write_u32(std::process::id());
    format!("{:06x}", hasher.finish() & 0xff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_as_the_deploys_happened_and_name_their_shard() {
        let at = |secs: i64, ms: i64| Time(secs * Time::NANOS_PER_SEC + ms * 1_000_000);
        let a = DeployId::new(at(1_700_000_000, 5), None);
        assert!(a.0.starts_with("20231114T221320.005Z-"), "{a}");
        let b = DeployId::new(at(1_700_000_000, 6), None);
        let c = DeployId::new(at(1_700_000_001, 0), Some(&Shard::new(2, 8)));
        assert!(a < b && b < c, "{a} {b} {c}");
        assert!(c.0.ends_with("-2-of-8"), "{c}");
        assert_ne!(DeployId::new(at(1, 0), None), DeployId::new(at(1, 0), None), "same millisecond");
        assert_eq!(format_utc(951_782_400), "20000229T000000", "a leap day");
        assert_eq!(iso_utc(at(951_782_400, 7)), "2000-02-29T00:00:00.007Z");
    }

    #[test]
    fn an_id_reads_back_its_time_and_shard_and_nothing_else_is_an_id() {
        let at = Time(1_700_000_000_005 * 1_000_000);
        let id = DeployId::new(at, Some(&Shard::new(2, 8)));
        let read = DeployId::parse(&id.0).unwrap();
        assert_eq!((read.time(), read.shard()), (Some(at), Some((2, 8))));
        let whole = DeployId::new(at, None);
        assert_eq!(DeployId::parse(&whole.0).unwrap().shard(), None);
        let next = DeployId::after(Time(at.0 - 400_000_000), None, Some(&id));
        assert!(next > id && next.time() == Some(Time(at.0 + 1_000_000)), "{next} after {id}");
        assert_eq!(rfc3339(at), "2023-11-14T22:13:20.005Z");
        assert_eq!(parse_rfc3339(&rfc3339(at)), Some(at));
        for name in ["x", "20231114T221320.005Z-3fa91", "20231114T221320.005Z-3fa91c-0-of-2", "a/b"] {
            assert_eq!(DeployId::parse(name), None, "{name}");
        }
    }

    #[test]
    fn a_key_too_long_to_nest_is_kept_under_its_hash() {
        let id = DeployId::parse("20231114T221320.005Z-3fa91c").unwrap();
        assert_eq!(kept_key(&id, "a/b.html", 5), ".sitesync/kept/20231114T221320.005Z-3fa91c/a/b.html");
        let long = "x".repeat(1000);
        let kept = kept_key(&id, &long, 5);
        assert!(kept.starts_with(".sitesync/kept/20231114T221320.005Z-3fa91c/#") && kept.len() == 15 + 27 + 2 + 32);
    }

    #[test]
    fn each_shard_has_its_own_marker_lock_and_ledger() {
        assert_eq!(per_shard(LOCK, None), ".sitesync/lock");
        assert_eq!(per_shard(LEDGER, Some(&Shard::new(1, 3))), ".sitesync/retired.1-of-3");
        for key in [MARKER, LOCK, LEDGER, DEPLOYS, KEPT] {
            assert!(key.starts_with(FOLDER));
        }
    }
}
