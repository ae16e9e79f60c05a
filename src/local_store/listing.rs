//! ListObjectsV2 for the embedded store, made from the stored names (see `layout`).
//!
//! It behaves as S3 does: keys in UTF-8 byte order, a raw string prefix, a delimiter folding
//! keys into common prefixes, pages of `max-keys` resumed from an opaque token or `start-after`,
//! and `EncodingType=url` encoding the keys (and the echoed prefix, delimiter and start-after)
//! the way AWS and Garage do, with each object's ETag as s3s-fs recorded it (unless the store was
//! started to list none, as some servers do). The folder is walked again for every page, so the
//! store suits tests and demos, not large buckets. Keys too long for their plain name are read
//! from their key files (`long`).

use std::path::Path;
use std::time::SystemTime;

use percent_encoding::{percent_decode_str, utf8_percent_encode};
use s3s::dto::*;
use s3s::{S3Result, s3_error};

use super::keys::{key_of, stored};
use super::long;
use crate::keys::target::KEY_SAFE;

fn encode_key(key: &str) -> String {
    utf8_percent_encode(key, KEY_SAFE).to_string()
}

struct Stored {
    key: String,
    /// The name the key is stored under, to find its ETag.
    name: String,
    size: u64,
    modified: SystemTime,
}

pub(super) async fn list(root: &Path, input: ListObjectsV2Input, etags: bool) -> S3Result<ListObjectsV2Output> {
    let bucket = root.join(&input.bucket);
    if !bucket.is_dir() {
        return Err(s3_error!(NoSuchBucket));
    }
    let prefix = input.prefix.clone().unwrap_or_default();
    let mut objects = {
        let prefix = prefix.clone();
        tokio::task::spawn_blocking(move || walk(&bucket, &prefix))
            .await
            .map_err(|e| s3_error!(InternalError, "listing stopped: {e}"))?
            .map_err(|e| s3_error!(InternalError, "listing failed: {e}"))?
    };
    objects.sort_unstable_by(|a, b| a.key.cmp(&b.key));
    let page = Page::of(objects, &input, &prefix);
    Ok(page.output(root, input, prefix, etags))
}

/// One page of a listing: the objects and the common prefixes it shows, in S3's order.
struct Page {
    contents: Vec<Stored>,
    folders: Vec<String>,
    /// The last key or prefix shown, where the next page starts.
    last: Option<String>,
    truncated: bool,
}

impl Page {
    /// The page `input` asks for of `objects` (sorted by key, all under `prefix`).
    fn of(objects: Vec<Stored>, input: &ListObjectsV2Input, prefix: &str) -> Page {
        let token = input.continuation_token.as_deref().map(|t| percent_decode_str(t).decode_utf8_lossy().into_owned());
        let after = token.into_iter().chain(input.start_after.clone()).max().unwrap_or_default();
        let max_keys = usize::try_from(input.max_keys.unwrap_or(1000)).unwrap_or(0);
        let delimiter = input.delimiter.as_deref().filter(|d| !d.is_empty());
        let mut page = Page { contents: Vec::new(), folders: Vec::new(), last: None, truncated: false };
        for object in objects.into_iter().filter(|o| o.key > after) {
            let folder = delimiter.and_then(|d| {
                let rest = &object.key[prefix.len()..];
                rest.find(d).map(|at| object.key[..prefix.len() + at + d.len()].to_owned())
            });
            if let Some(folder) = &folder
                && (folder.as_str() <= after.as_str() || page.folders.last() == Some(folder))
            {
                continue;
            }
            if page.contents.len() + page.folders.len() == max_keys {
                page.truncated = true;
                break;
            }
            match folder {
                Some(folder) => {
                    page.last = Some(folder.clone());
                    page.folders.push(folder);
                }
                None => {
                    page.last = Some(object.key.clone());
                    page.contents.push(object);
                }
            }
        }
        page
    }

    /// The answer to `input`, its keys percent-encoded when it asked for `EncodingType=url`.
    fn output(self, root: &Path, input: ListObjectsV2Input, prefix: String, etags: bool) -> ListObjectsV2Output {
        let url = input.encoding_type.as_ref().is_some_and(|e| e.as_str() == EncodingType::URL);
        let shown = |s: String| if url { encode_key(&s) } else { s };
        let key_count = (self.contents.len() + self.folders.len()) as i32;
        let etag = |name: &str| etags.then(|| etag_of(root, &input.bucket, name)).flatten();
        let contents: Vec<Object> = self
            .contents
            .into_iter()
            .map(|o| Object {
                e_tag: etag(&o.name).map(ETag::Strong),
                key: Some(shown(o.key)),
                size: Some(o.size as i64),
                last_modified: Some(Timestamp::from(o.modified)),
                ..Default::default()
            })
            .collect();
        let folders: Vec<CommonPrefix> =
            self.folders.into_iter().map(|p| CommonPrefix { prefix: Some(shown(p)) }).collect();
        ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(shown(prefix)),
            delimiter: input.delimiter.map(shown),
            start_after: input.start_after.map(shown),
            encoding_type: input.encoding_type,
            max_keys: input.max_keys.or(Some(1000)),
            key_count: Some(key_count),
            continuation_token: input.continuation_token,
            is_truncated: Some(self.truncated),
            next_continuation_token: if self.truncated { self.last.map(|k| encode_key(&k)) } else { None },
            contents: (!contents.is_empty()).then_some(contents),
            common_prefixes: (!folders.is_empty()).then_some(folders),
            ..Default::default()
        }
    }
}

/// Every object under `bucket` whose key starts with `prefix`: from the deepest folder the
/// prefix names whole, and those whose keys were too long for their plain name (`long`).
fn walk(bucket: &Path, prefix: &str) -> std::io::Result<Vec<Stored>> {
    let folder = prefix.rfind('/').map_or("", |at| &prefix[..=at]);
    // `a/b/` is stored as `a%d/b%d/%e`: its folder is everything before the last segment.
    let stored_folder = stored(folder);
    let start = bucket.join(stored_folder.rsplit_once('/').map_or("", |(f, _)| f));
    let mut objects = long_ones(bucket, prefix)?;
    let mut stack = vec![start];
    let long_folder = bucket.join(long::FOLDER);
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.extend(Some(entry.path()).filter(|path| *path != long_folder));
                continue;
            }
            let path = entry.path();
            let Some(name) = path.strip_prefix(bucket).ok().and_then(|p| p.to_str()) else { continue };
            let Some(key) = key_of(name) else { continue };
            if key.starts_with(prefix) {
                objects.push(Stored { key, name: name.to_owned(), size: meta.len(), modified: meta.modified()? });
            }
        }
    }
    Ok(objects)
}

/// The objects stored under hashed names whose keys start with `prefix`.
fn long_ones(bucket: &Path, prefix: &str) -> std::io::Result<Vec<Stored>> {
    let entries = match std::fs::read_dir(bucket.join(long::FOLDER)) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut objects = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Some(file) = entry.file_name().to_str().map(str::to_owned) else { continue };
        let Some(key) = long::key_in(bucket, &file).filter(|key| key.starts_with(prefix)) else { continue };
        let meta = entry.metadata()?;
        let name = format!("{}/{file}", long::FOLDER);
        objects.push(Stored { key, name, size: meta.len(), modified: meta.modified()? });
    }
    Ok(objects)
}

/// The ETag s3s-fs recorded for an object (beside it, in its `internal.json`), when it did.
fn etag_of(root: &Path, bucket: &str, name: &str) -> Option<String> {
    let file = root.join(format!(".bucket-{}.object-{}.internal.json", base64url(bucket), base64url(name)));
    let info: serde_json::Value = serde_json::from_slice(&std::fs::read(file).ok()?).ok()?;
    info.get("e_tag")?.as_str().map(str::to_owned)
}

/// Unpadded URL-safe base64, as s3s-fs names its side files.
fn base64url(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(text.len() * 4 / 3 + 3);
    for chunk in text.as_bytes().chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_is_urlsafe_and_unpadded() {
        assert_eq!(super::base64url("bkt"), "Ymt0");
        assert_eq!(super::base64url("site%d/a?"), "c2l0ZSVkL2E_");
        assert_eq!(super::base64url("ab"), "YWI");
    }

    #[test]
    fn keys_are_encoded_like_s3() {
        assert_eq!(super::encode_key("a b+c%/é?#.txt"), "a%20b%2Bc%25/%C3%A9%3F%23.txt");
    }
}
