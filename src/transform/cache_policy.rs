//! `cache_policy = "auto"`: Cache-Control for every key, decided by whether its name carries a
//! content hash.
//!
//! A fingerprinted name (`app.3f2a91c7.js`) changes whenever its bytes do, so its URL can be
//! cached for ever ([`IMMUTABLE`]); every other key must be asked again each time ([`REVALIDATE`]),
//! or a visitor keeps a stale page. Hand-written globs for this are the most common deploy config
//! and a wrong one is invisible until someone gets a stale page, so the policy names the rule once:
//! [`is_fingerprinted`] is the one function that decides, for the chain, the plan and the tests.
//!
//! The policy is the chain's first word on Cache-Control and every step has a later one: it is
//! applied where the chain settles what its steps made ([`Policy::settle`]), to the keys no step
//! gave a Cache-Control, so a `headers` rule (or a plugin) overrides it field by field and the
//! keys steps create (duplicates, generated pages) get it too. It is part of the chain marker's
//! fingerprint, so turning it on or off re-publishes every key's headers once, by copy.

mod manifest;

use std::collections::HashSet;
use std::path::PathBuf;

use crate::model::LocalFile;
use crate::model::fields::Field;

/// The Cache-Control of a fingerprinted key: a year, and never revalidated.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The Cache-Control of every other key: cached, but asked again before each use.
pub const REVALIDATE: &str = "public, max-age=0, must-revalidate";

/// `cache_policy` in `sync.toml`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CachePolicy {
    /// No Cache-Control but what the chain's steps set.
    #[default]
    Off,
    /// [`IMMUTABLE`] for fingerprinted names, [`REVALIDATE`] for the rest.
    Auto,
}

impl CachePolicy {
    /// The values `cache_policy` (and `--cache-policy`) takes.
    pub const CHOICES: [(&'static str, CachePolicy); 2] = [("off", CachePolicy::Off), ("auto", CachePolicy::Auto)];
}

/// Whether the file name of `key` carries a content hash: `listed` (a bundler's manifest) says
/// so, or a segment of the name does. The name is split at `.`, `-` and `_`, with its last
/// extension left out; a segment of 8 or more ASCII letters and digits (hex, or base64url between
/// the separators) holding at least one digit and one letter is a hash.
pub fn is_fingerprinted(key: &str, listed: &Listed) -> bool {
    listed.holds(key) || name_has_hash(key.rsplit('/').next().unwrap_or(key))
}

fn name_has_hash(name: &str) -> bool {
    let stem = name.rfind('.').map_or(name, |dot| &name[..dot]);
    stem.split(['.', '-', '_']).any(|segment| {
        segment.len() >= 8
            && segment.bytes().all(|b| b.is_ascii_alphanumeric())
            && segment.bytes().any(|b| b.is_ascii_digit())
            && segment.bytes().any(|b| b.is_ascii_alphabetic())
    })
}

/// Whether the Cache-Control the chain gave `file` holds the `immutable` directive: such a key
/// must never get other bytes under the same name (the immutable guard, `sink::guard`).
pub fn is_immutable(file: &LocalFile) -> bool {
    let Some(value) = file.meta.as_ref().and_then(|m| m.get(Field::CacheControl)) else { return false };
    value.split(',').any(|directive| {
        let name = directive.split('=').next().unwrap_or_default();
        name.trim().eq_ignore_ascii_case("immutable")
    })
}

/// The keys a build manifest names as fingerprinted outputs (see [`manifest`]).
#[derive(Debug, Clone, Default)]
pub struct Listed {
    keys: HashSet<String>,
}

impl Listed {
    pub fn holds(&self, key: &str) -> bool {
        self.keys.contains(key)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The policy in a run's chain. The manifest is read when the first batch is settled, on the
/// chain's thread (a file read, kept off the async runtime).
#[derive(Debug, Default)]
pub struct Policy {
    /// The source, where a bundler's manifest is looked for; `None`: the name rule alone.
    root: Option<PathBuf>,
    listed: Option<Listed>,
}

impl Policy {
    /// Looks for a bundler's manifest under `root`.
    pub fn over_source(&mut self, root: PathBuf) {
        self.root = Some(root);
    }

    /// Gives `file` the policy's Cache-Control, unless a step of the chain gave it one.
    pub fn settle(&mut self, file: &mut LocalFile) {
        if file.meta.as_ref().is_some_and(|m| m.get(Field::CacheControl).is_some()) {
            return;
        }
        let root = self.root.as_deref();
        let listed = self.listed.get_or_insert_with(|| root.map(manifest::read).unwrap_or_default());
        let value = if is_fingerprinted(&file.key, listed) { IMMUTABLE } else { REVALIDATE };
        file.meta.get_or_insert_default().set(Field::CacheControl, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Time;

    #[test]
    fn the_issues_examples_are_decided_by_name() {
        let none = Listed::default();
        for key in ["app.3f2a91c7.js", "index-BxK9a2Lm.js", "main.8e3f1c2a.chunk.js", "assets/app.3f2a91c7.js"] {
            assert!(is_fingerprinted(key, &none), "{key} is fingerprinted");
        }
        for key in ["jquery-3.7.1.min.js", "bootstrap.bundle.min.js", "2024/index.html", "logo.svg"] {
            assert!(!is_fingerprinted(key, &none), "{key} is not");
        }
    }

    #[test]
    fn the_rule_reads_the_file_name_only_and_leaves_its_last_extension_out() {
        let none = Listed::default();
        // A hash in a folder's name says nothing of the file.
        assert!(!is_fingerprinted("3f2a91c7/index.html", &none));
        // The extension is not a segment: `.a1b2c3d4e5` alone is not a hash.
        assert!(!is_fingerprinted("notes.a1b2c3d4e5", &none));
        assert!(is_fingerprinted("notes.a1b2c3d4e5.txt", &none));
        // Letters only, digits only, or shorter than 8: not a hash.
        for name in ["background.png", "20240101.html", "a1b2c3d.js", "app_3f2a-91c7.js", ".htaccess"] {
            assert!(!is_fingerprinted(name, &none), "{name}");
        }
        // The false positives the rule accepts, documented: a camera's name holds letters and digits.
        assert!(is_fingerprinted("photos/DSC01234.JPG", &none));
    }

    #[test]
    fn a_listed_key_is_fingerprinted_whatever_its_name() {
        let listed = Listed { keys: ["assets/index-C-fTYq3D.js".to_owned()].into() };
        assert!(!is_fingerprinted("assets/index-C-fTYq3D.js", &Listed::default()), "the name rule misses it");
        assert!(is_fingerprinted("assets/index-C-fTYq3D.js", &listed));
    }

    #[test]
    fn the_policy_sets_cache_control_only_where_no_step_did() {
        let mut policy = Policy::default();
        let mut files = ["app.3f2a91c7.js", "index.html", "app.3f2a91c7.css"]
            .map(|k| LocalFile::new(k.into(), k.into(), 1, Time(0)));
        files[2].meta.get_or_insert_default().set(Field::CacheControl, "no-store");
        files[2].meta.get_or_insert_default().set(Field::ContentLanguage, "en");
        for file in &mut files {
            policy.settle(file);
        }
        let cache = |f: &LocalFile| f.meta.as_ref().and_then(|m| m.get(Field::CacheControl)).map(str::to_owned);
        assert_eq!(
            files.each_ref().map(cache),
            [Some(IMMUTABLE.into()), Some(REVALIDATE.into()), Some("no-store".into())]
        );
        assert!(is_immutable(&files[0]) && !is_immutable(&files[1]) && !is_immutable(&files[2]));
    }

    #[test]
    fn immutable_is_a_directive_in_any_case_not_a_substring() {
        let with = |value: &str| {
            let mut f = LocalFile::new("k".into(), "k".into(), 1, Time(0));
            f.meta.get_or_insert_default().set(Field::CacheControl, value);
            is_immutable(&f)
        };
        assert!(with("max-age=31536000,Immutable"));
        assert!(with("public, immutable"));
        assert!(!with("public, max-age=60"));
        assert!(!with("no-immutable-please"));
        assert!(!is_immutable(&LocalFile::new("k".into(), "k".into(), 1, Time(0))));
    }
}
