//! `prefix_duplicate`: publishes the files under one folder again under another.
//!
//! Each rule maps a `from` folder (empty: the whole tree) to a `to` folder; an entry whose key
//! starts with `from` is kept and also published as `to` + the rest of its key. Rules apply to
//! the entries that reach this step, not to each other's duplicates. A duplicate is the same file
//! under another key, so the sink uploads it once and copies it server-side; the duplicates are
//! keys like any other for the diff, so deleting the file deletes them too.

use serde::Deserialize;

use super::{BuildError, StepError, Transform};
use crate::keys::shard::CopyRule;
use crate::model::LocalFile;

/// `[[transform]] type = "prefix_duplicate"`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DuplicateConfig {
    pub rules: Vec<DuplicateRule>,
}

/// `{ from = "d1/d2/", to = "d2/" }`: both are folders, ending with `/`, or empty (the root).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DuplicateRule {
    pub from: String,
    pub to: String,
}

impl DuplicateConfig {
    pub fn build(&self, at: &str) -> Result<Duplicate, BuildError> {
        if self.rules.is_empty() {
            return Err(BuildError::new(format!("{at}.rules"), "no rules"));
        }
        for (i, rule) in self.rules.iter().enumerate() {
            for (name, value) in [("from", &rule.from), ("to", &rule.to)] {
                let key = format!("{at}.rules[{i}].{name}");
                if !value.is_empty() && !value.ends_with('/') {
                    return Err(BuildError::new(
                        key,
                        format!("{value:?} is not a folder: end it with '/', or leave it empty for the root"),
                    ));
                }
                if value.starts_with('/') || value.contains("//") {
                    return Err(BuildError::new(key, format!("{value:?} must not start with '/' or contain '//'")));
                }
            }
            if rule.from == rule.to {
                return Err(BuildError::new(format!("{at}.rules[{i}]"), "`from` and `to` are the same folder"));
            }
        }
        Ok(Duplicate { rules: self.rules.clone() })
    }
}

#[derive(Debug, Clone)]
pub struct Duplicate {
    rules: Vec<DuplicateRule>,
}

impl Duplicate {
    /// The rules, named as the config has them: `at` is this step's name (`transform[1]`).
    pub fn rules(&self, at: &str) -> Vec<CopyRule> {
        let rule = |(i, r): (usize, &DuplicateRule)| CopyRule {
            at: format!("{at}.rules[{i}]"),
            from: r.from.clone(),
            to: r.to.clone(),
        };
        self.rules.iter().enumerate().map(rule).collect()
    }

    /// The folders this step creates keys in (`""`: the root).
    pub fn destinations(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.to.as_str())
    }
}

impl Transform for Duplicate {
    fn apply(&mut self, batch: Vec<LocalFile>) -> Result<Vec<LocalFile>, StepError> {
        let mut out = Vec::with_capacity(batch.len() * 2);
        for file in batch {
            let primary = file.copy_of.clone().unwrap_or_else(|| file.key.clone());
            let at = out.len();
            out.push(file);
            for rule in &self.rules {
                if let Some(rest) = out[at].key.strip_prefix(rule.from.as_str()) {
                    let mut copy = out[at].clone();
                    copy.key = format!("{}{rest}", rule.to);
                    copy.copy_of = Some(primary.clone());
                    out.push(copy);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Time;

    fn rules(pairs: &[(&str, &str)]) -> Result<Duplicate, BuildError> {
        let rules = pairs.iter().map(|(f, t)| DuplicateRule { from: f.to_string(), to: t.to_string() }).collect();
        DuplicateConfig { rules }.build("transform[0]")
    }

    fn keys(d: &mut Duplicate, keys: &[&str]) -> Vec<String> {
        let batch = keys.iter().map(|k| LocalFile::new(k.to_string(), k.into(), 1, Time(0))).collect();
        d.apply(batch).unwrap().into_iter().map(|f| format!("{}<{}", f.key, f.copy_of.unwrap_or_default())).collect()
    }

    #[test]
    fn folders_are_published_twice() {
        let mut d = rules(&[("d1/d2/", "d2/"), ("", "mirror/")]).unwrap();
        assert_eq!(
            keys(&mut d, &["a", "d1/d2/x"]),
            ["a<", "mirror/a<a", "d1/d2/x<", "d2/x<d1/d2/x", "mirror/d1/d2/x<d1/d2/x"]
        );
    }

    #[test]
    fn rules_must_name_folders() {
        assert_eq!(rules(&[("img", "x/")]).unwrap_err().key, "transform[0].rules[0].from");
        assert_eq!(rules(&[("", "/x/")]).unwrap_err().key, "transform[0].rules[0].to");
        assert_eq!(rules(&[("a/", "a/")]).unwrap_err().key, "transform[0].rules[0]");
        assert_eq!(rules(&[]).unwrap_err().key, "transform[0].rules");
    }
}
