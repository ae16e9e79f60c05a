//! The `delete` section: whether objects whose file is gone are deleted, after which grace, and the
//! limits that refuse a run that would delete too much (the usual sign of a broken build).

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::error::{ConfigError, Origins};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct DeleteConfig {
    /// Delete objects that have no file any more.
    pub delete: bool,
    /// Refuse a run that would delete more objects than this.
    pub max_delete: u64,
    /// Refuse a run that would delete more than this percentage of the objects under the prefix.
    pub max_delete_percent: u8,
    /// Keep an object whose file is gone this long before deleting it, so pages still open (or
    /// cached) that name it keep working: `"48h"`, with the units s, m, h and d; `0` deletes at
    /// once. A number in the file or the environment is read as text, so `0` works as written.
    #[serde(deserialize_with = "text_or_number")]
    pub delete_grace: String,
}

impl Default for DeleteConfig {
    fn default() -> Self {
        DeleteConfig { delete: true, max_delete: 1000, max_delete_percent: 50, delete_grace: "0".into() }
    }
}

/// Whether a run deletes, when, and how much it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeleteSettings {
    /// Objects whose file is gone are deleted.
    pub enabled: bool,
    /// Refuse more deletes than this.
    pub max: u64,
    /// Refuse deleting more than this share of the objects under the prefix, in percent.
    pub max_percent: u8,
    /// Retire such objects instead, and delete them this long after (`history::ledger`); `None`:
    /// delete at once.
    pub grace: Option<Duration>,
}

/// The longest grace: ten years, far past any cache, and well inside the ledger's clock.
const MAX_GRACE_DAYS: u64 = 3650;

impl DeleteConfig {
    pub fn build(self, origins: Origins) -> Result<DeleteSettings, ConfigError> {
        if self.max_delete_percent > 100 {
            let why = format!("{} is not a percentage (0 to 100)", self.max_delete_percent);
            return Err(origins.bad("max_delete_percent", why));
        }
        let grace = duration(&self.delete_grace).map_err(|why| origins.bad("delete_grace", why))?;
        Ok(DeleteSettings {
            enabled: self.delete,
            max: self.max_delete,
            max_percent: self.max_delete_percent,
            grace: Some(grace).filter(|g| !g.is_zero()),
        })
    }
}

/// A duration as `delete_grace` writes it: a whole number and a unit (`90s`, `30m`, `48h`, `7d`),
/// or `0`.
fn duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let bad = || {
        format!("{text:?} is not a duration: a whole number and a unit (s, m, h or d), like \"48h\"; 0 turns it off")
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} has no unit: give one of s, m, h or d, like \"{text}h\"; 0 turns it off"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    let total = number.checked_mul(seconds).filter(|&s| s <= MAX_GRACE_DAYS * 86_400);
    let total = total.ok_or_else(|| format!("{text:?} is longer than {MAX_GRACE_DAYS}d"))?;
    Ok(Duration::from_secs(total))
}

/// A duration written as text (`"48h"`) or as a bare number (`0`, which TOML and the environment
/// give as an integer), kept as text for [`duration`] to read and its errors to quote.
fn text_or_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct Visitor;
    impl serde::de::Visitor<'_> for Visitor {
        type Value = String;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a duration like \"48h\", or 0")
        }

        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }

        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }

        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    deserializer.deserialize_any(Visitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grace_is_a_whole_number_and_a_unit_or_zero() {
        let secs = |n| Ok(Duration::from_secs(n));
        assert_eq!(duration("48h"), secs(48 * 3600));
        assert_eq!(duration("2s"), secs(2));
        assert_eq!(duration("90m"), secs(5400));
        assert_eq!(duration(" 7d "), secs(7 * 86_400));
        assert_eq!(duration("0"), secs(0));
        assert_eq!(duration("0h"), secs(0));
        assert!(duration("30").unwrap_err().contains("has no unit"), "{:?}", duration("30"));
        for bad in ["48x", "h", "", "1.5h", "-1h", "48 hours", "3651d"] {
            assert!(duration(bad).is_err(), "{bad:?}");
        }
    }
}
