//! `compress`: publishes the files a glob matches compressed, under their own keys.
//!
//! The step only marks the entries ([`Body::Compressed`]); the bytes are compressed when they are
//! read, by the upload or the content check, with the fixed settings of [`crate::compress`], so
//! the chain stays free of I/O. An entry is marked when its key matches one of `glob` and its
//! file has at least `min_size` bytes (below about a kilobyte, gzip's header and the request cost
//! more than compression saves). Its Content-Type stays the one its key gives (`.css` stays
//! `text/css`), and it is sent with `Content-Encoding: gzip` or `br`, unless compressing does not
//! shrink it, when it is published as it is. A later `compress` step that matches an entry sets
//! its encoding again.

use globset::GlobSet;
use serde::Deserialize;

use super::filter::globs;
use super::{BuildError, StepError, Transform};
use crate::model::{Body, Encoding, LocalFile};

/// `[[transform]] type = "compress"`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompressConfig {
    /// Keys to publish compressed (required).
    pub glob: Option<Vec<String>>,
    /// `"gzip"` or `"br"` (required).
    pub encoding: Option<String>,
    /// Files smaller than this many bytes are published as they are.
    #[serde(default = "default_min_size")]
    pub min_size: u64,
}

fn default_min_size() -> u64 {
    1024
}

impl CompressConfig {
    /// Checks the table; `at` names it in errors (`transform[1]`).
    pub fn build(&self, at: &str) -> Result<Compress, BuildError> {
        let patterns = self
            .glob
            .as_ref()
            .ok_or_else(|| BuildError::new(format!("{at}.glob"), "missing: which keys to compress"))?;
        if patterns.is_empty() {
            return Err(BuildError::new(format!("{at}.glob"), "no globs"));
        }
        let set = globs(patterns, &format!("{at}.glob"))?;
        let token = self
            .encoding
            .as_deref()
            .ok_or_else(|| BuildError::new(format!("{at}.encoding"), "missing: \"gzip\" or \"br\""))?;
        let encoding = Encoding::by_token(token)
            .ok_or_else(|| BuildError::new(format!("{at}.encoding"), format!("{token:?} is not \"gzip\" or \"br\"")))?;
        Ok(Compress { set, encoding, min_size: self.min_size })
    }
}

#[derive(Debug, Clone)]
pub struct Compress {
    set: GlobSet,
    encoding: Encoding,
    min_size: u64,
}

impl Transform for Compress {
    fn apply(&mut self, mut batch: Vec<LocalFile>) -> Result<Vec<LocalFile>, StepError> {
        for file in &mut batch {
            if file.size < self.min_size || !self.set.is_match(&file.key) {
                continue;
            }
            let body = std::mem::replace(&mut file.body, Body::File(Default::default()));
            file.body = match body {
                Body::File(path) | Body::Compressed { path, .. } => Body::Compressed { path, encoding: self.encoding },
                unreadable => unreadable,
            };
        }
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::Time;

    fn step(table: serde_json::Value) -> Result<Compress, BuildError> {
        serde_json::from_value::<CompressConfig>(table).unwrap().build("transform[1]")
    }

    #[test]
    fn matching_files_of_min_size_are_marked() {
        let mut c = step(json!({"glob": ["**/*.css", "*.js"], "encoding": "br", "min_size": 100})).unwrap();
        let batch = [("css/a.css", 100), ("css/small.css", 99), ("js/app.js", 5000), ("index.html", 5000)]
            .map(|(k, size)| LocalFile::new(k.into(), format!("/src/{k}").into(), size, Time(0)))
            .to_vec();
        let out = c.apply(batch).unwrap();
        let marked: Vec<_> = out.iter().map(|f| (f.key.as_str(), f.encoding())).collect();
        assert_eq!(
            marked,
            [
                ("css/a.css", Some(Encoding::Br)),
                ("css/small.css", None),
                ("js/app.js", Some(Encoding::Br)),
                ("index.html", None)
            ]
        );
        assert_eq!(out[0].path(), Some(std::path::Path::new("/src/css/a.css")), "the file is still read from its path");
        assert_eq!(step(json!({"glob": ["*"], "encoding": "gzip"})).unwrap().min_size, 1024, "the default");
    }

    #[test]
    fn a_generated_page_is_published_as_it_was_made() {
        let mut c = step(json!({"glob": ["**/*.html"], "encoding": "gzip", "min_size": 1})).unwrap();
        let page: std::sync::Arc<[u8]> = std::sync::Arc::from(&b"<p>index</p>"[..]);
        let out = c.apply(vec![LocalFile::inline("docs/index.html".into(), page, Time(0))]).unwrap();
        assert_eq!((out[0].encoding(), out[0].inline_bytes().map(|b| &b[..])), (None, Some(&b"<p>index</p>"[..])));
    }

    #[test]
    fn wrong_tables_name_the_key() {
        let key = |table: serde_json::Value| step(table).unwrap_err().key;
        assert_eq!(key(json!({"encoding": "gzip"})), "transform[1].glob");
        assert_eq!(key(json!({"glob": [], "encoding": "gzip"})), "transform[1].glob");
        assert_eq!(key(json!({"glob": ["ok", "a["], "encoding": "gzip"})), "transform[1].glob[1]");
        assert_eq!(key(json!({"glob": ["*"]})), "transform[1].encoding");
        let e = step(json!({"glob": ["*"], "encoding": "zstd"})).unwrap_err();
        assert_eq!((e.key.as_str(), e.why.as_str()), ("transform[1].encoding", "\"zstd\" is not \"gzip\" or \"br\""));
    }
}
