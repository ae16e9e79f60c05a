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
//! The ledger of retired keys is read and written by [`ledger`].

pub mod ledger;

pub mod lock;

use crate::clock::Offset;
use crate::keys::shard::Shard;
use crate::model::Time;

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
    fn each_shard_has_its_own_marker_lock_and_ledger() {
        assert_eq!(per_shard(LOCK, None), ".sitesync/lock");
        assert_eq!(per_shard(LEDGER, Some(&Shard::new(1, 3))), ".sitesync/retired.1-of-3");
        for key in [MARKER, LOCK, LEDGER, DEPLOYS, KEPT] {
            assert!(key.starts_with(FOLDER));
        }
    }
}
