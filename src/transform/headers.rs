//! `headers`: sets object headers and user metadata by glob.
//!
//! Rules are matched against the key relative to the prefix, in the order they are written, and
//! **every** matching rule applies: a later rule overrides the fields an earlier one set, field by
//! field, and metadata merges name by name. So write general rules first and exceptions after.
//! Fields no rule sets keep what earlier steps of the chain gave them; Content-Type, when nothing
//! sets it, is guessed from the extension by the sink. The fields a rule may set are those of
//! [`FIELDS`](crate::model::fields::FIELDS).

use std::collections::BTreeMap;

use globset::{GlobSet, GlobSetBuilder};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::filter::glob;
use super::{BuildError, StepError, Transform};
use crate::model::LocalFile;
use crate::model::fields::{FIELDS, Field, ObjectMeta, check_metadata_name};

/// `[[transform]] type = "headers"`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadersConfig {
    /// `[[transform.rules]]` tables: `glob`, `metadata` and any key of a header field.
    pub rules: Vec<Map<String, Value>>,
}

impl HeadersConfig {
    pub fn build(&self, at: &str) -> Result<Headers, BuildError> {
        if self.rules.is_empty() {
            return Err(BuildError::new(format!("{at}.rules"), "no rules"));
        }
        let mut set = GlobSetBuilder::new();
        let mut metas = Vec::with_capacity(self.rules.len());
        for (i, rule) in self.rules.iter().enumerate() {
            let at = format!("{at}.rules[{i}]");
            let (pattern, meta) = rule_of(rule, &at)?;
            set.add(glob(&pattern, &format!("{at}.glob"))?);
            metas.push(meta);
        }
        let set = set.build().map_err(|e| BuildError::new(at, e.to_string()))?;
        Ok(Headers { set, metas, matched: Vec::new() })
    }
}

/// One rule: its glob, and the headers it sets, each checked.
fn rule_of(rule: &Map<String, Value>, at: &str) -> Result<(String, ObjectMeta), BuildError> {
    let text = |key: &str, value: &Value| match value {
        Value::String(s) => Ok(s.clone()),
        _ => Err(BuildError::new(format!("{at}.{key}"), "expected a string")),
    };
    let mut pattern = None;
    let mut meta = ObjectMeta::default();
    for (key, value) in rule {
        match key.as_str() {
            "glob" => pattern = Some(text(key, value)?),
            "metadata" => meta.metadata = metadata(value, &format!("{at}.metadata"))?,
            _ => {
                let Some(field) = Field::by_key(key) else {
                    let known: Vec<&str> = FIELDS.iter().map(|s| s.key).collect();
                    return Err(BuildError::new(
                        format!("{at}.{key}"),
                        format!("unknown key (expected glob, metadata, {})", known.join(", ")),
                    ));
                };
                let value = text(key, value)?;
                (field.spec().check)(&value).map_err(|why| BuildError::new(format!("{at}.{key}"), why))?;
                meta.set(field, value);
            }
        }
    }
    let pattern =
        pattern.ok_or_else(|| BuildError::new(format!("{at}.glob"), "missing: which keys the rule is for"))?;
    Ok((pattern, meta))
}

fn metadata(value: &Value, at: &str) -> Result<BTreeMap<String, String>, BuildError> {
    let Value::Object(map) = value else { return Err(BuildError::new(at, "expected a table of names and values")) };
    let mut out = BTreeMap::new();
    for (name, value) in map {
        let key = format!("{at}.{name}");
        check_metadata_name(name).map_err(|why| BuildError::new(&key, why))?;
        let Value::String(value) = value else { return Err(BuildError::new(key, "expected a string")) };
        crate::model::fields::visible_ascii(value).map_err(|why| BuildError::new(&key, why))?;
        out.insert(name.clone(), value.clone());
    }
    Ok(out)
}

#[derive(Debug, Clone)]
pub struct Headers {
    set: GlobSet,
    metas: Vec<ObjectMeta>,
    /// Reused between entries.
    matched: Vec<usize>,
}

impl Headers {
    /// The last rule that sets a `website_redirect_location` on `key`, if one does.
    pub fn redirect_rule(&self, key: &str) -> Option<usize> {
        let matched = self.set.matches(key);
        matched.into_iter().rev().find(|&i| self.metas[i].get(Field::WebsiteRedirectLocation).is_some())
    }
}

impl Transform for Headers {
    fn apply(&mut self, mut batch: Vec<LocalFile>) -> Result<Vec<LocalFile>, StepError> {
        for file in &mut batch {
            self.set.matches_into(file.key.as_str(), &mut self.matched);
            if self.matched.is_empty() {
                continue;
            }
            let meta = file.meta.get_or_insert_default();
            for &i in &self.matched {
                meta.merge(&self.metas[i]);
            }
        }
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Time;
    use crate::model::mime::Charset;

    fn rules(rules: Value) -> Result<Headers, BuildError> {
        let rules = rules.as_array().unwrap().iter().map(|r| r.as_object().unwrap().clone()).collect();
        HeadersConfig { rules }.build("transform[2]")
    }

    #[test]
    fn every_matching_rule_applies_in_order() {
        let mut h = rules(serde_json::json!([
            {"glob": "**", "cache_control": "max-age=60", "metadata": {"team": "web"}},
            {"glob": "assets/**", "cache_control": "max-age=31536000, immutable", "metadata": {"tier": "static"}},
            {"glob": "*.gz", "content_encoding": "gzip", "content_type": "application/javascript"},
        ]))
        .unwrap();
        let batch = ["index.html", "assets/app.js.gz"].map(|k| LocalFile::new(k.into(), k.into(), 1, Time(0))).to_vec();
        let out = h.apply(batch).unwrap();
        let page = out[0].meta.as_deref().unwrap();
        assert_eq!(page.get(Field::CacheControl), Some("max-age=60"));
        assert_eq!(out[0].content_type(&Charset::default()), "text/html; charset=utf-8");
        let asset = out[1].meta.as_deref().unwrap();
        assert_eq!(asset.get(Field::CacheControl), Some("max-age=31536000, immutable"));
        assert_eq!(asset.get(Field::ContentEncoding), Some("gzip"));
        assert_eq!(out[1].content_type(&Charset::default()), "application/javascript", "a rule's type as it is");
        assert_eq!(asset.metadata.len(), 2);
    }

    #[test]
    fn bad_values_are_named() {
        let key = |rule: Value| rules(serde_json::json!([{"glob": "**"}, rule])).unwrap_err().key;
        assert_eq!(
            key(serde_json::json!({"glob": "*", "storage_class": "COLD"})),
            "transform[2].rules[1].storage_class"
        );
        assert_eq!(
            key(serde_json::json!({"glob": "*", "metadata": {"Team": "x"}})),
            "transform[2].rules[1].metadata.Team"
        );
        assert_eq!(
            key(serde_json::json!({"glob": "*", "cache_control": "max-age=1\n"})),
            "transform[2].rules[1].cache_control"
        );
        assert_eq!(
            key(serde_json::json!({"glob": "*", "website_redirect_location": "elsewhere"})),
            "transform[2].rules[1].website_redirect_location"
        );
        assert_eq!(key(serde_json::json!({"glob": "{"})), "transform[2].rules[1].glob");
        assert_eq!(key(serde_json::json!({"glob": "*", "cache_contrl": "x"})), "transform[2].rules[1].cache_contrl");
        assert_eq!(key(serde_json::json!({"cache_control": "x"})), "transform[2].rules[1].glob");
    }
}
