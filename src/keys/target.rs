//! The destination: an `s3://BUCKET[/PREFIX]` URL, validated once.
//!
//! The prefix is always treated as a folder: `s3://b/site` means keys under `site/`, so a run can
//! never reach `site2/x` or `sitea.txt`. Prefixes that could be read two ways (`..`, `//`, a
//! leading `/`) are refused rather than guessed at.

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

/// S3's limit on the length of a key, in bytes of UTF-8, prefix included.
pub const MAX_KEY_BYTES: usize = 1024;

/// S3's limit on the size of one PutObject: an inline body (bytes a transform made) is sent in
/// one request, so none may be larger.
pub const MAX_PUT_BYTES: u64 = 5 * 1024 * 1024 * 1024;

/// The characters S3 leaves as they are when it percent-encodes a key (in a listing made with
/// `EncodingType=url`, in `x-amz-copy-source`); `/` separates folders and stays too.
pub const KEY_SAFE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub bucket: String,
    /// Empty, or a folder prefix ending with `/`.
    pub prefix: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid destination {url:?}: {why}")]
pub struct TargetError {
    pub url: String,
    pub why: &'static str,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, TargetError> {
        let fail = |why| TargetError { url: url.to_owned(), why };
        let rest = url.strip_prefix("s3://").ok_or_else(|| fail("expected s3://BUCKET[/PREFIX]"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if !valid_bucket(bucket) {
            return Err(fail("bucket names are 3 to 63 lowercase letters, digits, dots and hyphens"));
        }
        let prefix = prefix.strip_suffix('/').unwrap_or(prefix);
        if prefix.starts_with('/') {
            return Err(fail("the prefix must not start with '/'"));
        }
        if !prefix.is_empty() {
            for segment in prefix.split('/') {
                match segment {
                    "" => return Err(fail("the prefix must not contain '//'")),
                    "." | ".." => return Err(fail("the prefix must not contain '.' or '..' segments")),
                    _ => {}
                }
            }
        }
        if prefix.len() > 512 {
            return Err(fail("the prefix is longer than 512 bytes"));
        }
        let prefix = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
        Ok(Target { bucket: bucket.to_owned(), prefix })
    }

    /// The full S3 key for a key relative to the prefix.
    pub fn key(&self, relative: &str) -> String {
        let mut key = String::with_capacity(self.prefix.len() + relative.len());
        key.push_str(&self.prefix);
        key.push_str(relative);
        key
    }
}

/// Decodes a key of a listing made with `EncodingType=url`: AWS encodes a space as `+`, Garage
/// as `%20`; both encode a literal `+` as `%2B`.
pub fn decode_key(encoded: &str) -> String {
    let plus_as_space = encoded.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space).decode_utf8_lossy().into_owned()
}

/// Whether XML 1.0 can carry the key (a DeleteObjects request is XML): it allows only tab, LF and
/// CR below U+0020, even as `&#x1;`.
pub fn xml_can_carry(key: &str) -> bool {
    key.chars()
        .all(|c| !matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}'))
}

/// FNV-1a: a hash that, unlike std's, is the same in every build, so every version of sitesync
/// names a target's lock and state files alike.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// One object named by an `s3://BUCKET/KEY` URL (an S3 Inventory's manifest); its bucket need not
/// be the target's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectUrl {
    pub bucket: String,
    pub key: String,
}

impl ObjectUrl {
    pub fn parse(url: &str) -> Result<ObjectUrl, TargetError> {
        let fail = |why| TargetError { url: url.to_owned(), why };
        let rest = url.strip_prefix("s3://").ok_or_else(|| fail("expected s3://BUCKET/KEY"))?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if !valid_bucket(bucket) {
            return Err(fail("bucket names are 3 to 63 lowercase letters, digits, dots and hyphens"));
        }
        if key.is_empty() {
            return Err(fail("expected s3://BUCKET/KEY: there is no key after the bucket"));
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(fail("the key is longer than S3's 1024 bytes"));
        }
        Ok(ObjectUrl { bucket: bucket.to_owned(), key: key.to_owned() })
    }
}

impl fmt::Display for ObjectUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

fn valid_bucket(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric()
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_a_folder() {
        let t = Target::parse("s3://bucket/site").unwrap();
        assert_eq!(t.prefix, "site/");
        assert_eq!(t.key("a.html"), "site/a.html");
        assert_eq!(Target::parse("s3://bucket/site/").unwrap(), t);
        assert_eq!(Target::parse("s3://bucket").unwrap().prefix, "");
        assert_eq!(Target::parse("s3://bucket/").unwrap().prefix, "");
        assert_eq!(Target::parse("s3://bucket/a/b").unwrap().prefix, "a/b/");
    }

    #[test]
    fn ambiguous_prefixes_are_refused() {
        for bad in [
            "s3://bucket//site",
            "s3://bucket/a//b",
            "s3://bucket/a/../b",
            "s3://bucket/./b",
            "bucket/site",
            "s3://B/site",
            "s3://ab",
            "http://bucket/x",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn object_urls_name_a_bucket_and_a_key() {
        let url = ObjectUrl::parse("s3://inv-bucket/inv/bkt/cfg/2024-01-02T03-04Z/manifest.json").unwrap();
        assert_eq!(
            (url.bucket.as_str(), url.key.as_str()),
            ("inv-bucket", "inv/bkt/cfg/2024-01-02T03-04Z/manifest.json")
        );
        assert_eq!(url.to_string(), "s3://inv-bucket/inv/bkt/cfg/2024-01-02T03-04Z/manifest.json");
        for bad in ["s3://inv-bucket", "s3://inv-bucket/", "s3://IN/manifest.json", "https://b/manifest.json"] {
            assert!(ObjectUrl::parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
