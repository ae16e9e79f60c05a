//! `compress`: publishes the files a glob matches compressed, under their own keys.
//!
//! The step only marks the entries ([`Body::Compressed`]); the bytes are compressed when they are
//! read, by the upload or the content check, with the fixed settings of [`crate::content::compress`], so
//! the chain stays free of I/O. An entry is marked when its key matches one of `glob` and its
//! file has at least `min_size` bytes (below about a kilobyte, gzip's header and the request cost
//! more than compression saves). Its Content-Type stays the one its key gives (`.css` stays
//! `text/css`), and it is sent with `Content-Encoding: gzip` or `br`, unless compressing does not
//! shrink it, when it is published as it is. A later `compress` step that matches an entry sets
//! its encoding again.
//!
//! Where a step's glob matched a key, its Content-Encoding is the bytes' alone: compressed, or
//! none when they go as they are (below `min_size`, or not smaller). A `content_encoding` another
//! step set on such a key would label raw bytes as gzip, so the chain drops it, with a warning
//! ([`EncodedKeys`]), whichever step came first; a key no `compress` step matched (a `.js.gz`
//! compressed before the run) keeps it.

use globset::GlobSet;
use serde::Deserialize;

use super::filter::globs;
use super::{BuildError, StepError, Transform};
use crate::model::fields::Field;
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

impl Compress {
    /// Whether the step's glob matches `key`, whatever the size of its file.
    pub fn matches(&self, key: &str) -> bool {
        self.set.is_match(key)
    }
}

/// The keys the chain's `compress` steps match, whose Content-Encoding follows the bytes sent.
#[derive(Debug, Clone, Default)]
pub struct EncodedKeys {
    steps: Vec<Compress>,
    /// Content-Encodings dropped so far.
    dropped: u64,
}

impl EncodedKeys {
    pub fn of(steps: Vec<Compress>) -> EncodedKeys {
        EncodedKeys { steps, dropped: 0 }
    }

    /// Drops the Content-Encoding a step set on `file` when a `compress` step matched it: the
    /// first time with a warning, then in the debug log (see [`EncodedKeys::dropped`]).
    pub fn settle(&mut self, file: &mut LocalFile) {
        let matched = match &file.body {
            Body::Compressed { .. } => true,
            Body::File(_) => self.steps.iter().any(|step| step.matches(&file.key)),
            Body::Inline(_) | Body::Unreadable(_) => false,
        };
        let Some(meta) = file.meta.as_deref_mut().filter(|_| matched) else { return };
        let Some(value) = meta.take(Field::ContentEncoding) else { return };
        self.dropped += 1;
        let key = crate::keys::names::printable(&file.key);
        let why = "a compress step matched the key, so Content-Encoding follows the bytes sent (none when they \
                   are sent as they are)";
        match self.dropped {
            1 => tracing::warn!("{key}: Content-Encoding {value:?} set by the chain is dropped: {why}"),
            _ => tracing::debug!("{key}: Content-Encoding {value:?} set by the chain is dropped: {why}"),
        }
    }

    /// How many keys had their Content-Encoding dropped.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
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
    fn a_content_encoding_is_dropped_only_where_a_compress_step_matched() {
        let mut c = step(json!({"glob": ["**/*.css", "**/*.html"], "encoding": "gzip"})).unwrap();
        let page: std::sync::Arc<[u8]> = std::sync::Arc::from(&b"<p>made</p>"[..]);
        let mut batch = vec![
            LocalFile::new("big.css".into(), "/src/big.css".into(), 5000, Time(0)),
            LocalFile::new("tiny.css".into(), "/src/tiny.css".into(), 10, Time(0)),
            LocalFile::new("app.js.gz".into(), "/src/app.js.gz".into(), 5000, Time(0)),
            LocalFile::inline("index.html".into(), page, Time(0)),
        ];
        for file in &mut batch {
            file.meta.get_or_insert_default().set(Field::ContentEncoding, "gzip");
        }
        let mut encoded = EncodedKeys::of(vec![c.clone()]);
        let mut out = c.apply(batch).unwrap();
        out.iter_mut().for_each(|file| encoded.settle(file));
        let kept: Vec<_> = out.iter().map(|f| f.meta.as_deref().unwrap().get(Field::ContentEncoding)).collect();
        // Compressed, or below min_size: the bytes decide. Not matched, or made by a plugin: kept.
        assert_eq!(kept, [None, None, Some("gzip"), Some("gzip")]);
        assert_eq!(encoded.dropped(), 2);
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
