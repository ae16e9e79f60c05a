//! Splitting one sync into N runs, each owning a provable part of the keys (`--shard K/N`).
//!
//! A key belongs to the shard `fnv1a(folder) mod N + 1`, where `folder` is the key's folder (the
//! part before its last `/`; the root's keys share the folder `""`) after the chain's duplicates
//! are traced back to the file they copy (`latest/a/x`, made from `v2/a/x` by a
//! `prefix_duplicate`, counts as `v2/a`). The invariant the split rests on, that the owner is a
//! function of the key alone and a file and every key the chain makes of it have one owner, holds
//! for the rule sets [`back`] accepts, and its doc proves it; the others are refused with
//! `--shard`. Why this rule:
//!
//! - it depends on the key alone, never on what either side holds, so every shard computes the
//!   same owner for every key, the listing's keys included, and two shards never act on one key;
//! - a file and the keys the chain makes of it stay in one shard, so a copy always finds its
//!   source uploaded by the same run: duplicates map back to their source's folder, and steps that
//!   rename within a folder (clean URLs) keep it;
//! - whole folders go to one shard, so with the built-in steps a shard reads every directory (to
//!   find its folders) but stats only the files of its own, and sites with millions of files
//!   (tiles in `z/x/`, mirrors, archives) have many folders to spread. A top-level folder would
//!   cut listings into ranges, but those sites have few top-level folders and would not spread; a
//!   hash of the whole key would spread best but make every shard stat every file, and split a
//!   file from its clean URL.
//!
//! A plugin may make keys in any folder, and pages from what it saw of the whole tree (a folder's
//! index lists subfolders that are other shards'), so with one in the chain every shard walks the
//! whole tree and keeps its own keys of what the chain yields (`pipeline::local`); a copy whose
//! source is another shard's is then made as an upload.
//!
//! The listing cannot be cut by such a rule, so every shard lists the prefix (or reads the
//! inventory) and keeps its own keys. What a shard cannot read (a directory, a link) may hide any
//! shard's keys, so every shard reports it, and none deletes anything that run.

mod back;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use back::{CopyRule, MapBack, Unmappable};

use crate::keys::target::fnv1a;

/// One shard of a split run, and how keys are assigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// 1-based.
    pub index: u32,
    pub count: u32,
    /// How keys the chain copies count as their file's.
    back: MapBack,
}

impl Shard {
    pub fn new(index: u32, count: u32) -> Shard {
        Shard { index, count, back: MapBack::default() }
    }

    /// Keys the chain's `prefix_duplicate` rules (in chain order) make count as their file's;
    /// refused when they cannot all be traced back (see [`back`]).
    pub fn mapping_back(mut self, rules: Vec<CopyRule>) -> Result<Shard, Unmappable> {
        self.back = MapBack::new(rules)?;
        Ok(self)
    }

    /// How this shard traces keys back to their files.
    pub fn mapping(&self) -> &MapBack {
        &self.back
    }

    /// Shard `index` of `count` whose keys are traced back by `back` (see [`MapBack`]).
    pub fn with_mapping(index: u32, count: u32, back: MapBack) -> Shard {
        Shard { index, count, back }
    }

    /// The folder a key counts under (without its trailing `/`).
    pub fn unit(&self, key: &str) -> String {
        let source = self.back.source(key);
        source.rsplit_once('/').map_or(String::new(), |(folder, _)| folder.to_owned())
    }

    /// Whether this shard owns `key` (relative to the prefix).
    pub fn owns(&self, key: &str) -> bool {
        self.owns_unit(&self.unit(key))
    }

    /// Whether this shard owns the files directly in `folder` (a key prefix ending with `/`, or
    /// `""` for the root).
    pub fn owns_folder(&self, folder: &str) -> bool {
        self.owns(&format!("{folder}x"))
    }

    fn owns_unit(&self, unit: &str) -> bool {
        fnv1a(unit.as_bytes()) % u64::from(self.count) == u64::from(self.index - 1)
    }

    /// `K-of-N`, for names that must differ between shards (the chain marker, the lock).
    pub fn tag(&self) -> String {
        format!("{}-of-{}", self.index, self.count)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// How many files of other shards' folders the walk passed by (without a stat). A shard whose own
/// folders hold no file is no sign of an empty source when the others' hold some: the delete
/// limit that refuses to empty the prefix from an empty source asks this.
#[derive(Debug, Clone, Default)]
pub struct SeenElsewhere(Arc<AtomicU64>);

impl SeenElsewhere {
    pub fn add(&self, files: u64) {
        if files > 0 {
            self.0.fetch_add(files, Ordering::Relaxed);
        }
    }

    pub fn files(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Reads `K/N`, or `auto/N` with K from `JOB_COMPLETION_INDEX` (0-based, as a Kubernetes Indexed
/// Job sets it), given that variable's value.
pub fn parse(text: &str, job_index: Option<&str>) -> Result<Shard, String> {
    let (k, n) = text.split_once('/').ok_or_else(|| format!("{text:?} is not K/N (like 2/8) or auto/N"))?;
    let count = match number(n) {
        Number::Whole(0) => return Err(format!("{text:?}: N must be at least 1")),
        Number::Whole(count) => count,
        Number::TooLarge => return Err(format!("{text:?}: N is too large: at most {}", u32::MAX)),
        Number::NotOne => return Err(format!("{text:?}: N must be a whole number")),
    };
    let out_of_range = || format!("{text:?}: K must be between 1 and {count}");
    let index = match k.trim() {
        "auto" => {
            let Some(value) = job_index else {
                return Err(format!(
                    "{text:?}: JOB_COMPLETION_INDEX is not set (auto/N reads K from it, counting from 0)"
                ));
            };
            match number(value) {
                Number::Whole(zero_based) if zero_based < count => zero_based + 1,
                Number::NotOne => return Err(format!("JOB_COMPLETION_INDEX {value:?} is not a whole number")),
                _ => {
                    return Err(format!(
                        "{text:?}: JOB_COMPLETION_INDEX is {}, but counts from 0 to {}; the Job's completions must be {count}",
                        value.trim(),
                        count - 1
                    ));
                }
            }
        }
        k => match number(k) {
            Number::Whole(index) if (1..=count).contains(&index) => index,
            Number::NotOne => return Err(format!("{text:?}: K must be a whole number or auto")),
            _ => return Err(out_of_range()),
        },
    };
    Ok(Shard::new(index, count))
}

/// A number of `--shard`. K and N are 32-bit: no engine runs four billion copies of a run, so a
/// larger number is a typo, and is named as too large rather than as not a number.
enum Number {
    Whole(u32),
    /// Digits, past `u32::MAX`.
    TooLarge,
    NotOne,
}

fn number(text: &str) -> Number {
    let text = text.trim();
    match text.parse() {
        Ok(n) => Number::Whole(n),
        Err(_) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => Number::TooLarge,
        Err(_) => Number::NotOne,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_exactly_one_owner() {
        let keys = ["a", "a/b", "a/b/c.html", "日本/語", "a b/+c", "", "x/y/"];
        for n in 1..=8 {
            let shards: Vec<Shard> = (1..=n).map(|k| Shard::new(k, n)).collect();
            for key in keys {
                let owners = shards.iter().filter(|s| s.owns(key)).count();
                assert_eq!(owners, 1, "{key:?} with {n} shards");
            }
        }
    }

    fn rules(pairs: &[(&str, &str)]) -> Vec<CopyRule> {
        let rule = |(i, (from, to)): (usize, &(&str, &str))| CopyRule {
            at: format!("transform[0].rules[{i}]"),
            from: from.to_string(),
            to: to.to_string(),
        };
        pairs.iter().enumerate().map(rule).collect()
    }

    #[test]
    fn duplicates_and_folder_mates_share_their_source_shard() {
        let rules = rules(&[("v2/", "latest/"), ("", "mirror/")]);
        for n in 1..=8 {
            for k in 1..=n {
                let shard = Shard::new(k, n).mapping_back(rules.clone()).unwrap();
                assert_eq!(shard.owns("latest/a/x.js"), shard.owns("v2/a/x.js"));
                assert_eq!(shard.owns("mirror/docs/a.html"), shard.owns("docs/a.html"));
                assert_eq!(shard.owns("mirror/mirror/a.html"), shard.owns("mirror/a.html"), "a real mirror/");
                assert_eq!(shard.owns("docs/about"), shard.owns("docs/about.html"), "a clean URL");
                assert_eq!(shard.owns_folder("docs/"), shard.owns("docs/about.html"));
            }
        }
    }

    /// splitmix64: a seeded stream of numbers, the same on every run.
    struct Seeded(u64);

    impl Seeded {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) % n as u64) as usize
        }

        /// A folder of up to `depth` names from a small alphabet, so that rules and keys meet.
        fn folder(&mut self, depth: usize) -> String {
            (0..self.below(depth + 1)).map(|_| ["a/", "b/", "m/"][self.below(3)]).collect()
        }
    }

    /// Runs `steps` (each a `prefix_duplicate` step's rules) over `keys` with the product's step:
    /// every key yielded, with the key of the file it was made of.
    fn chain(steps: &[Vec<(String, String)>], keys: &[String]) -> Option<Vec<(String, String)>> {
        use crate::transform::{DuplicateConfig, Transform};
        let mut batch: Vec<_> =
            keys.iter().map(|k| crate::model::LocalFile::new(k.clone(), k.into(), 1, crate::model::Time(0))).collect();
        for (i, rules) in steps.iter().enumerate() {
            let rules: Vec<_> = rules.iter().map(|(from, to)| serde_json::json!({ "from": from, "to": to })).collect();
            let config: DuplicateConfig = serde_json::from_value(serde_json::json!({ "rules": rules })).unwrap();
            batch = config.build(&format!("transform[{i}]")).ok()?.apply(batch).unwrap();
        }
        Some(batch.into_iter().map(|f| (f.copy_of.clone().unwrap_or_else(|| f.key.clone()), f.key)).collect())
    }

    #[test]
    fn every_key_the_chain_makes_of_a_file_has_the_files_owner_under_every_accepted_rule_set() {
        let mut random = Seeded(17);
        let (mut accepted, mut refused) = (0, 0);
        while accepted < 2000 {
            let steps: Vec<Vec<(String, String)>> = (0..=random.below(2))
                .map(|_| (0..=random.below(2)).map(|_| (random.folder(2), random.folder(2))).collect())
                .collect();
            let keys: Vec<String> =
                (0..24).map(|_| format!("{}{}", random.folder(4), ["x", "y.html"][random.below(2)])).collect();
            let Some(made) = chain(&steps, &keys) else { continue };
            let copies = steps.iter().enumerate().flat_map(|(i, rules)| named(i, rules)).collect();
            let Ok(shard) = Shard::new(1, 1).mapping_back(copies) else {
                refused += 1;
                continue;
            };
            accepted += 1;
            for (source, key) in &made {
                assert_eq!(shard.unit(key), shard.unit(source), "{key} made of {source} by {steps:?}");
                let folder = source.rsplit_once('/').map_or(String::new(), |(folder, _)| format!("{folder}/"));
                assert_eq!(shard.unit(&format!("{folder}x")), shard.unit(source), "{source}'s folder, {steps:?}");
                for k in 1..=3 {
                    let shard = Shard { index: k, count: 3, back: shard.back.clone() };
                    assert_eq!(shard.owns(key), shard.owns(source), "{key} made of {source} by {steps:?}");
                    assert_eq!(shard.owns_folder(&folder), shard.owns(source), "{source} by {steps:?}");
                }
            }
        }
        eprintln!("{accepted} rule sets accepted, {refused} refused");
        assert!(refused > 500, "the rule sets tried include refused ones: {refused}");
    }

    /// One step's rules, named as the config would name them.
    fn named(step: usize, rules: &[(String, String)]) -> Vec<CopyRule> {
        let rule = |(i, (from, to)): (usize, &(String, String))| CopyRule {
            at: format!("transform[{step}].rules[{i}]"),
            from: from.clone(),
            to: to.clone(),
        };
        rules.iter().enumerate().map(rule).collect()
    }

    #[test]
    fn shards_are_read_as_written() {
        assert_eq!(parse("2/8", None).unwrap(), Shard::new(2, 8));
        assert_eq!(parse("auto/4", Some("3")).unwrap(), Shard::new(4, 4));
        assert!(parse("auto/4", Some("4")).unwrap_err().contains("completions must be 4"));
        assert!(parse("auto/4", None).unwrap_err().contains("JOB_COMPLETION_INDEX"));
        assert!(parse("1/4294967296", None).unwrap_err().contains("N is too large: at most 4294967295"));
        assert_eq!(parse("4294967295/4294967295", None).unwrap(), Shard::new(u32::MAX, u32::MAX));
        for bad in ["0/3", "4/3", "1/0", "x/3", "3", "1/-1"] {
            assert!(parse(bad, None).is_err(), "{bad}");
        }
    }
}
