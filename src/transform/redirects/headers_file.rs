//! `_headers`, read as Netlify reads it, and applied to the keys it matches.
//!
//! A line starting with `/` opens a block for the paths that pattern matches (`*` and
//! `:placeholder`, see [`Pattern`]); the lines under it are `Name: value` headers (indented or
//! not); `#` lines and blank lines are skipped. A header named twice in one block is joined with
//! `, `; between blocks, a later one overrides an earlier one field by field, as Netlify merges
//! them. A pattern is matched against the paths a visitor asks for an object by: `/KEY`, and
//! `/FOLDER/` (`/` for the root) for a folder's `index.html`.
//!
//! S3 stores a few headers with an object and serves them: Cache-Control, Content-Type,
//! Content-Language, Content-Disposition, Content-Encoding and `x-amz-meta-*`. Those apply to the
//! matching keys, after the chain's `headers` rules. Any other header (a Content-Security-Policy,
//! X-Frame-Options) cannot be stored: serving it needs a CDN's response headers policy. It is a
//! warning naming the header and its line, or an error under `strict`.

use super::SiteError;
use super::pattern::Pattern;
use crate::model::LocalFile;
use crate::model::fields::{Field, ObjectMeta, check_metadata_name, visible_ascii};

/// The headers S3 stores, as `_headers` names them (lowercase).
const STORED: [(&str, Field); 5] = [
    ("cache-control", Field::CacheControl),
    ("content-type", Field::ContentType),
    ("content-language", Field::ContentLanguage),
    ("content-disposition", Field::ContentDisposition),
    ("content-encoding", Field::ContentEncoding),
];

#[derive(Debug, Clone)]
struct Block {
    /// The pattern as written, for the chain marker.
    written: String,
    pattern: Pattern,
    meta: ObjectMeta,
}

/// What `_headers` sets, block by block in file order.
#[derive(Debug, Clone, Default)]
pub struct HeadersFile {
    blocks: Vec<Block>,
}

impl HeadersFile {
    /// Reads `text`; `file` names it in messages. Headers S3 cannot store are returned as
    /// warnings, or refused when `strict`.
    pub fn parse(text: &str, file: &str, strict: bool) -> Result<(HeadersFile, Vec<String>), SiteError> {
        let mut blocks: Vec<Block> = Vec::new();
        let mut warnings = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let at = format!("{file} line {}", index + 1);
            let bad = |why: String| SiteError::Rule { at: at.clone(), why };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with('/') {
                let pattern = Pattern::parse(line, true).map_err(bad)?;
                blocks.push(Block { written: line.to_owned(), pattern, meta: ObjectMeta::default() });
                continue;
            }
            let Some((name, value)) = line.split_once(':') else {
                return Err(bad(format!("{line:?} is neither a path (starting with '/') nor a `Name: value` header")));
            };
            let (name, value) = (name.trim(), value.trim());
            let Some(block) = blocks.last_mut() else {
                return Err(bad(format!("the header {name:?} comes before any path line")));
            };
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(bad(format!("{name:?} is not a header name")));
            }
            if value.is_empty() {
                return Err(bad(format!("{name}: no value")));
            }
            visible_ascii(value).map_err(|why| bad(format!("{name}: {why}")))?;
            if !set(&mut block.meta, name, value).map_err(bad)? {
                let why = format!(
                    "{name} is not a header S3 stores with an object, so it cannot be served from the bucket: send it \
                     with a CDN response headers policy (CloudFront: a response headers policy)"
                );
                match strict {
                    true => return Err(bad(format!("{why} (refused under --strict)"))),
                    false => warnings.push(format!("{at}: {why}; left out")),
                }
            }
        }
        Ok((HeadersFile { blocks }, warnings))
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.iter().all(|b| b.meta.is_empty())
    }

    /// What the chain marker records of the file: each pattern with the headers it sets.
    pub fn recorded(&self) -> serde_json::Value {
        let blocks = self.blocks.iter().filter(|b| !b.meta.is_empty());
        blocks.map(|b| serde_json::json!([b.written, b.meta.shown()])).collect()
    }

    /// Sets on `file` what the blocks matching its paths set.
    pub fn apply(&self, file: &mut LocalFile) {
        if self.blocks.is_empty() {
            return;
        }
        let index_of = match file.key.as_str() {
            "index.html" => Some(String::from("/")),
            key => key.strip_suffix("/index.html").map(|folder| format!("/{folder}/")),
        };
        let path = format!("/{}", file.key);
        for block in self.blocks.iter().filter(|b| !b.meta.is_empty()) {
            let hit = block.pattern.matches(&path).is_some()
                || index_of.as_deref().is_some_and(|p| block.pattern.matches(p).is_some());
            if hit {
                file.meta.get_or_insert_default().merge(&block.meta);
            }
        }
    }
}

/// Sets header `name` on `meta`, joining a second value; false when S3 cannot store it.
fn set(meta: &mut ObjectMeta, name: &str, value: &str) -> Result<bool, String> {
    let lower = name.to_ascii_lowercase();
    if let Some(meta_name) = lower.strip_prefix("x-amz-meta-") {
        check_metadata_name(meta_name).map_err(|why| format!("{name}: {why}"))?;
        let joined = match meta.metadata.get(meta_name) {
            Some(first) => format!("{first}, {value}"),
            None => value.to_owned(),
        };
        meta.metadata.insert(meta_name.to_owned(), joined);
        return Ok(true);
    }
    let Some(&(_, field)) = STORED.iter().find(|(n, _)| *n == lower) else { return Ok(false) };
    let joined = match meta.get(field) {
        Some(first) => format!("{first}, {value}"),
        None => value.to_owned(),
    };
    (field.spec().check)(&joined).map_err(|why| format!("{name}: {why}"))?;
    meta.set(field, joined);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Time;

    fn headers(text: &str) -> HeadersFile {
        HeadersFile::parse(text, "_headers", false).unwrap().0
    }

    fn applied(file: &HeadersFile, key: &str) -> String {
        let mut entry = LocalFile::new(key.into(), key.into(), 1, Time(0));
        file.apply(&mut entry);
        entry.meta.map(|m| m.shown()).unwrap_or_default()
    }

    #[test]
    fn later_blocks_override_and_a_block_joins_its_repeats() {
        let file = headers(
            "/*\n  Cache-Control: public, max-age=300\n  X-Amz-Meta-Team: web\n\n/assets/*\n  Cache-Control: max-age=31536000\n  Cache-Control: immutable\n",
        );
        assert_eq!(applied(&file, "index.html"), " [Cache-Control: public, max-age=300; x-amz-meta-team: web]");
        assert_eq!(
            applied(&file, "assets/app.js"),
            " [Cache-Control: max-age=31536000, immutable; x-amz-meta-team: web]"
        );
    }

    #[test]
    fn a_folder_index_matches_the_folder_path_too() {
        let file = headers(
            "/docs/\n  Content-Language: en\n/\n  Cache-Control: no-cache\n/:page\n  Content-Type: text/html\n",
        );
        assert_eq!(applied(&file, "docs/index.html"), " [Content-Language: en]");
        assert_eq!(applied(&file, "index.html"), " [Cache-Control: no-cache; Content-Type: text/html]");
        assert_eq!(applied(&file, "docs/a.html"), "", "a placeholder is one segment");
        assert_eq!(applied(&file, "about"), " [Content-Type: text/html]");
    }

    #[test]
    fn headers_s3_cannot_store_warn_or_are_refused_when_strict() {
        let text = "/*\n  X-Frame-Options: DENY\n  Cache-Control: no-cache\n";
        let (file, warnings) = HeadersFile::parse(text, "_headers", false).unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].starts_with("_headers line 2: X-Frame-Options is not a header S3 stores"), "{warnings:?}");
        assert!(warnings[0].contains("response headers policy"), "{warnings:?}");
        assert_eq!(applied(&file, "a"), " [Cache-Control: no-cache]");
        let e = HeadersFile::parse(text, "_headers", true).unwrap_err().to_string();
        assert!(e.starts_with("_headers line 2: X-Frame-Options") && e.contains("--strict"), "{e}");
    }

    #[test]
    fn lines_that_do_not_read_are_refused_with_their_number() {
        let e = |text: &str| HeadersFile::parse(text, "_headers", false).unwrap_err().to_string();
        assert!(e("  Cache-Control: x\n").contains("line 1: the header \"Cache-Control\" comes before any path"));
        assert!(e("/*\n  nonsense\n").contains("line 2: \"nonsense\" is neither a path"));
        assert!(e("/*\n  Cache-Control:\n").contains("line 2: Cache-Control: no value"));
        assert!(e("/*\n  X-Amz-Meta-A b: c\n").contains("line 2: \"X-Amz-Meta-A b\" is not a header name"));
        assert!(e("/*\n  Cache-Control: caf\u{e9}\n").contains("line 2: Cache-Control:"));
    }
}
