//! What is wrong with a configuration, and where the wrong value came from.
//!
//! Every error names the layer that set the bad value (the file, the environment variable or the
//! command line, as figment recorded it) and the key, so a user can fix it without guessing. The
//! sections' `build()` functions report through [`Origins`], which looks the layer up.

use std::path::PathBuf;

use figment::{Figment, Metadata};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    Missing(PathBuf),
    #[error("{0}")]
    Invalid(String),
    #[error("{origin}: key `{key}`: {why}")]
    BadValue { origin: String, key: &'static str, why: String },
    #[error("no {0} given (pass it as an argument or set it in sync.toml)")]
    Required(&'static str),
    /// A `[[transform]]` table, or a plugin it names, is wrong: `key` is `transform[2].include`.
    #[error("{origin}: key `{key}`: {why}")]
    Transform { origin: String, key: String, why: String },
    /// Two keys that each decide the same thing are both set.
    #[error("key `{key}` ({origin}) and key `{other}` ({other_origin}) {why}")]
    Conflict { key: &'static str, origin: String, other: &'static str, other_origin: String, why: &'static str },
    /// `_redirects`, `_headers` or `[redirects]` cannot be served as written.
    #[error(transparent)]
    Site(#[from] crate::transform::redirects::SiteError),
}

/// The name the command line's layer goes by, in figment and in messages.
pub(super) const COMMAND_LINE: &str = "command line";

/// Where the merged layers found each key: what a section's `build()` reports errors through.
#[derive(Clone, Copy)]
pub struct Origins<'a>(pub(super) &'a Figment);

impl Origins<'_> {
    /// Where the value of `key` came from: a file path, an environment variable, or the command
    /// line.
    pub fn of(&self, key: &str) -> String {
        named(self.0.find_metadata(key), key)
    }

    /// The error for the value of `key`, naming where it came from.
    pub fn bad(&self, key: &'static str, why: impl Into<String>) -> ConfigError {
        ConfigError::BadValue { origin: self.of(key), key, why: why.into() }
    }

    /// The file that set `key`, when a file did.
    pub fn file_of(&self, key: &str) -> Option<PathBuf> {
        self.0.find_metadata(key).and_then(|md| match &md.source {
            Some(figment::Source::File(path)) => Some(path.clone()),
            _ => None,
        })
    }

    /// `value` within `range` (a float must be finite too), or the error for `key`.
    pub fn in_range<T: PartialOrd + std::fmt::Display>(
        &self,
        key: &'static str,
        value: T,
        range: std::ops::RangeInclusive<T>,
        unit: &str,
    ) -> Result<T, ConfigError> {
        // A NaN is in no range.
        if range.contains(&value) {
            return Ok(value);
        }
        Err(self.bad(key, format!("{value} is out of range ({} to {}{unit})", range.start(), range.end())))
    }

    /// The value one of `choices` names, or the error for `key` listing them.
    pub fn choice<T: Copy>(&self, key: &'static str, value: &str, choices: &[(&str, T)]) -> Result<T, ConfigError> {
        if let Some((_, chosen)) = choices.iter().find(|(name, _)| *name == value) {
            return Ok(*chosen);
        }
        let names: Vec<String> = choices.iter().map(|(name, _)| format!("{name:?}")).collect();
        Err(self.bad(key, format!("{value:?} is not {}", names.join(" or "))))
    }
}

/// The layer `metadata` describes, for `key` (an environment variable is named after the key).
fn named(metadata: Option<&Metadata>, key: &str) -> String {
    let Some(md) = metadata else { return "configuration".into() };
    match &md.source {
        Some(figment::Source::File(path)) => path.display().to_string(),
        _ if md.name.contains("environment") && !key.is_empty() => {
            format!("environment variable SITESYNC_{}", key.to_ascii_uppercase())
        }
        _ => md.name.to_string(),
    }
}

/// A figment error as lines: the source, the key and what is wrong with it.
pub(super) fn describe(error: figment::Error) -> ConfigError {
    let mut lines = Vec::new();
    for e in error {
        let key = e.path.clone();
        let origin = named(e.metadata.as_ref(), &key.join("_"));
        let line = match &e.kind {
            kind if !key.is_empty() => format!("{origin}: key `{}`: {kind}", key.join(".")),
            kind => format!("{origin}: {}", one_line(&kind.to_string())),
        };
        lines.push(line);
    }
    ConfigError::Invalid(lines.join("\n"))
}

/// A TOML parse error in one line: its position, then what is wrong, without the code frame
/// ("TOML parse error at line 1, column 13: invalid array, expected `]`").
fn one_line(message: &str) -> String {
    let mut lines = message.lines().map(str::trim_end).filter(|l| {
        let frame =
            l.trim_start().starts_with('|') || l.split('|').next().is_some_and(|n| n.trim().parse::<u32>().is_ok());
        !l.trim().is_empty() && !frame
    });
    let first = lines.next().unwrap_or_default().to_owned();
    let rest: Vec<&str> = lines.map(str::trim).collect();
    if rest.is_empty() { first } else { format!("{first}: {}", rest.join(", ")) }
}
