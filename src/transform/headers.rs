//! `headers`: sets object headers and user metadata by glob.
//!
//! Rules are matched against the key relative to the prefix, in the order they are written, and
//! **every** matching rule applies: a later rule overrides the fields an earlier one set, field by
//! field, and metadata merges name by name. So write general rules first and exceptions after.
//! Fields no rule sets keep what earlier steps of the chain gave them; Content-Type, when nothing
//! sets it, is guessed from the extension by the sink.

use std::collections::BTreeMap;

use globset::{GlobSet, GlobSetBuilder};
use serde::Deserialize;

use super::filter::glob;
use super::{BuildError, Transform};
use crate::model::{LocalFile, ObjectMeta};

/// `[[transform]] type = "headers"`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadersConfig {
    pub rules: Vec<HeaderRule>,
}

/// One `[[transform.rules]]` table: a glob and the headers of the keys it matches.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderRule {
    pub glob: String,
    pub cache_control: Option<String>,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    /// User metadata: lowercase names, sent as `x-amz-meta-NAME`.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// `STANDARD`, `STANDARD_IA`, `INTELLIGENT_TIERING`, ...
    pub storage_class: Option<String>,
    /// A path on the same site (`/new/`) or an `http(s)://` URL.
    pub website_redirect_location: Option<String>,
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
            set.add(glob(&rule.glob, &format!("{at}.glob"))?);
            metas.push(rule.meta(&at)?);
        }
        let set = set.build().map_err(|e| BuildError::new(at, e.to_string()))?;
        Ok(Headers { set, metas, matched: Vec::new() })
    }
}

impl HeaderRule {
    fn meta(&self, at: &str) -> Result<ObjectMeta, BuildError> {
        let fields = [
            ("cache_control", &self.cache_control),
            ("content_type", &self.content_type),
            ("content_encoding", &self.content_encoding),
            ("content_disposition", &self.content_disposition),
            ("content_language", &self.content_language),
            ("website_redirect_location", &self.website_redirect_location),
        ];
        for (name, value) in fields {
            if let Some(v) = value {
                header_value(v).map_err(|why| BuildError::new(format!("{at}.{name}"), why))?;
            }
        }
        for (name, value) in &self.metadata {
            let key = format!("{at}.metadata.{name}");
            let valid = !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
            if !valid {
                return Err(BuildError::new(key, "metadata names are lowercase letters, digits, '-', '_' and '.'"));
            }
            header_value(value).map_err(|why| BuildError::new(key, why))?;
        }
        if let Some(class) = &self.storage_class {
            let known = aws_sdk_s3::types::StorageClass::values();
            if !known.contains(&class.as_str()) {
                return Err(BuildError::new(
                    format!("{at}.storage_class"),
                    format!("unknown storage class {class:?} (one of {})", known.join(", ")),
                ));
            }
        }
        if let Some(location) = &self.website_redirect_location
            && !(location.starts_with('/') || location.starts_with("http://") || location.starts_with("https://"))
        {
            return Err(BuildError::new(
                format!("{at}.website_redirect_location"),
                format!("{location:?} must start with '/', http:// or https://"),
            ));
        }
        Ok(ObjectMeta {
            cache_control: self.cache_control.clone(),
            content_type: self.content_type.clone(),
            content_encoding: self.content_encoding.clone(),
            content_disposition: self.content_disposition.clone(),
            content_language: self.content_language.clone(),
            metadata: self.metadata.clone(),
            storage_class: self.storage_class.clone(),
            website_redirect_location: self.website_redirect_location.clone(),
        })
    }
}

/// HTTP header values: visible ASCII, spaces and tabs.
fn header_value(v: &str) -> Result<(), String> {
    if v.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)) {
        Ok(())
    } else {
        Err(format!("{v:?} cannot be sent as an HTTP header (visible ASCII only)"))
    }
}

#[derive(Debug, Clone)]
pub struct Headers {
    set: GlobSet,
    metas: Vec<ObjectMeta>,
    /// Reused between entries.
    matched: Vec<usize>,
}

impl Transform for Headers {
    fn apply(&mut self, mut batch: Vec<LocalFile>) -> Result<Vec<LocalFile>, String> {
        for file in &mut batch {
            self.set.matches_into(file.key.as_str(), &mut self.matched);
            if self.matched.is_empty() {
                continue;
            }
            let meta = file.meta.get_or_insert_default();
            for &i in &self.matched {
                merge(meta, &self.metas[i]);
            }
        }
        Ok(batch)
    }
}

/// Sets in `into` every field `rule` sets.
fn merge(into: &mut ObjectMeta, rule: &ObjectMeta) {
    let set = |into: &mut Option<String>, from: &Option<String>| {
        if from.is_some() {
            into.clone_from(from);
        }
    };
    set(&mut into.cache_control, &rule.cache_control);
    set(&mut into.content_type, &rule.content_type);
    set(&mut into.content_encoding, &rule.content_encoding);
    set(&mut into.content_disposition, &rule.content_disposition);
    set(&mut into.content_language, &rule.content_language);
    set(&mut into.storage_class, &rule.storage_class);
    set(&mut into.website_redirect_location, &rule.website_redirect_location);
    for (k, v) in &rule.metadata {
        into.metadata.insert(k.clone(), v.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Time;

    fn rule(glob: &str) -> HeaderRule {
        HeaderRule { glob: glob.into(), ..Default::default() }
    }

    #[test]
    fn every_matching_rule_applies_in_order() {
        let mut all = rule("**");
        all.cache_control = Some("max-age=60".into());
        all.metadata.insert("team".into(), "web".into());
        let mut assets = rule("assets/**");
        assets.cache_control = Some("max-age=31536000, immutable".into());
        assets.metadata.insert("tier".into(), "static".into());
        let mut gz = rule("*.gz");
        gz.content_encoding = Some("gzip".into());
        gz.content_type = Some("application/javascript".into());
        let mut h = HeadersConfig { rules: vec![all, assets, gz] }.build("transform[0]").unwrap();
        let batch = ["index.html", "assets/app.js.gz"].map(|k| LocalFile::new(k.into(), k.into(), 1, Time(0))).to_vec();
        let out = h.apply(batch).unwrap();
        let page = out[0].meta.as_deref().unwrap();
        assert_eq!(page.cache_control.as_deref(), Some("max-age=60"));
        assert_eq!(out[0].content_type(), "text/html");
        let asset = out[1].meta.as_deref().unwrap();
        assert_eq!(asset.cache_control.as_deref(), Some("max-age=31536000, immutable"));
        assert_eq!(asset.content_encoding.as_deref(), Some("gzip"));
        assert_eq!(out[1].content_type(), "application/javascript");
        assert_eq!(asset.metadata.len(), 2);
    }

    #[test]
    fn bad_values_are_named() {
        let build = |r: HeaderRule| HeadersConfig { rules: vec![rule("**"), r] }.build("transform[2]").unwrap_err().key;
        let mut r = rule("*");
        r.storage_class = Some("COLD".into());
        assert_eq!(build(r), "transform[2].rules[1].storage_class");
        let mut r = rule("*");
        r.metadata.insert("Team".into(), "x".into());
        assert_eq!(build(r), "transform[2].rules[1].metadata.Team");
        let mut r = rule("*");
        r.cache_control = Some("max-age=1\n".into());
        assert_eq!(build(r), "transform[2].rules[1].cache_control");
        let mut r = rule("*");
        r.website_redirect_location = Some("elsewhere".into());
        assert_eq!(build(r), "transform[2].rules[1].website_redirect_location");
        assert_eq!(build(rule("{")), "transform[2].rules[1].glob");
    }
}
