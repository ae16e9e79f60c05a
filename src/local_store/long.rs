//! Keys too long for the file names s3s-fs makes of them.
//!
//! s3s-fs keeps an object's ETag and headers in side files in the store's root, named after the
//! bucket and the object's stored name in base64 (the longest:
//! `.bucket-B.object-N.upload-ID.metadata.json`); past about 130 bytes of stored name, such a
//! name passes the 255 bytes a file name may have, and every request on the key failed with
//! `InternalError`. S3 allows 1,024 bytes. So such a key is stored as `%h/HEX` in its bucket's
//! folder, HEX being the MD5 of the key, with the key itself in the file `%h/HEX%k` beside it,
//! where the listing reads it back. `%h` is no folder a key is stored in (those end with `%d`,
//! see `keys`), so the two kinds of names never meet. A key file stays when its object is
//! deleted: it is a few bytes, and no delete can then race with a write of the same key.
//!
//! An earlier sitesync stored keys under their plain name up to s3s-fs's limit for a PutObject
//! (which names no upload, so allows longer names); such an object keeps its name, so a key is
//! never stored under both.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use md5::{Digest as _, Md5};
use s3s::{S3Result, s3_error};

use super::keys::stored;

/// The folder, in a bucket's folder, of the objects whose keys are too long.
pub const FOLDER: &str = "%h";
/// The end of the name of the file that holds such an object's key.
const KEY_FILE: &str = "%k";
/// The longest file name (`NAME_MAX` on Linux, macOS and Windows alike).
const NAME_MAX: usize = 255;

/// Whether s3s-fs can keep the object stored as `name` in `bucket`: each segment of its path,
/// and the longest side file it names after both, fit in a file name. `upload`: the side file of
/// a multipart upload, which carries the upload's id too.
fn fits(bucket: &str, name: &str, upload: bool) -> bool {
    let base64 = |n: usize| (n * 4).div_ceil(3);
    let id = if upload { ".upload-".len() + 36 } else { 0 };
    let side = ".bucket-.object-.metadata.json".len() + base64(bucket.len()) + base64(name.len()) + id;
    side <= NAME_MAX && name.split('/').all(|segment| segment.len() <= NAME_MAX)
}

/// The name of a key too long for its plain name.
fn hashed(key: &str) -> String {
    format!("{FOLDER}/{:032x}", u128::from_be_bytes(Md5::digest(key.as_bytes()).into()))
}

/// Where each key is stored in one store's folder.
pub struct Names {
    root: PathBuf,
    /// Numbers the temporary files of key files (one server serves a folder).
    temp: AtomicU64,
}

impl Names {
    pub fn new(root: &Path) -> Names {
        Names { root: root.to_owned(), temp: AtomicU64::new(0) }
    }

    /// The name `key` of `bucket` is stored under, relative to the bucket's folder.
    pub async fn of(&self, bucket: &str, key: &str) -> String {
        let plain = stored(key);
        if fits(bucket, &plain, true) {
            return plain;
        }
        let earlier = fits(bucket, &plain, false)
            && tokio::fs::try_exists(self.root.join(bucket).join(&plain)).await.unwrap_or(false);
        if earlier { plain } else { hashed(key) }
    }

    /// The name to write `key` of `bucket` under; a hashed one gets its key file first.
    pub async fn for_write(&self, bucket: &str, key: &str) -> S3Result<String> {
        let name = self.of(bucket, key).await;
        if name.starts_with(FOLDER) {
            self.remember(bucket, &name, key).await?;
        }
        Ok(name)
    }

    /// Writes the key file of a hashed name, unless it is there already. A missing bucket is
    /// left for s3s-fs to report.
    async fn remember(&self, bucket: &str, name: &str, key: &str) -> S3Result<()> {
        let internal = |e: std::io::Error| s3_error!(InternalError, "key file of {name}: {e}");
        let path = self.root.join(bucket).join(format!("{name}{KEY_FILE}"));
        match tokio::fs::read(&path).await {
            Ok(known) if known == key.as_bytes() => return Ok(()),
            Ok(_) => return Err(s3_error!(InternalError, "another key is stored as {name}")),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(internal(e)),
        }
        match tokio::fs::create_dir(self.root.join(bucket).join(FOLDER)).await {
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.kind() != ErrorKind::AlreadyExists => return Err(internal(e)),
            _ => {}
        }
        // Written whole, then renamed: a listing never reads half a key.
        let temp = path.with_extension(format!("{}", self.temp.fetch_add(1, Ordering::Relaxed)));
        tokio::fs::write(&temp, key).await.map_err(internal)?;
        tokio::fs::rename(&temp, &path).await.map_err(internal)
    }
}

/// The key stored as `FOLDER/file` in `bucket`, from its key file; `None` for a file that is no
/// object (a key file, a temporary file). Blocking: for the listing's walk.
pub fn key_in(bucket: &Path, file: &str) -> Option<String> {
    if file.len() != 32 || !file.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let key = std::fs::read(bucket.join(FOLDER).join(format!("{file}{KEY_FILE}"))).ok()?;
    String::from_utf8(key).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_hashed_only_past_what_s3s_fs_can_name_a_file_after() {
        let bucket = "bkt";
        // 74 bytes of fixed text, 4 of bucket and 177 of name in base64: 255.
        let longest = "a".repeat(132);
        assert!(fits(bucket, &longest, true));
        assert!(!fits(bucket, &format!("{longest}a"), true));
        assert!(fits(bucket, &format!("{longest}a"), false), "a PutObject names no upload");
        assert!(!fits(bucket, &format!("a/{}", "b".repeat(256)), false), "a segment too long");
        let name = hashed(&"k".repeat(1024));
        assert!(name.starts_with("%h/") && name.len() == 35, "{name}");
        assert!(fits(&"b".repeat(63), &name, true), "with the longest bucket name");
        assert_eq!(super::super::keys::key_of(&name), None, "no key is stored in %h");
    }

    #[tokio::test]
    async fn an_object_an_earlier_sitesync_stored_under_its_plain_name_keeps_it() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("bkt")).unwrap();
        let names = Names::new(root.path());
        let (short, between, long) = ("s".repeat(132), "b".repeat(150), "l".repeat(200));
        assert_eq!(names.of("bkt", &short).await, short);
        assert_eq!(names.of("bkt", &between).await, hashed(&between));
        std::fs::write(root.path().join("bkt").join(&between), "earlier").unwrap();
        assert_eq!(names.of("bkt", &between).await, between, "PutObject could store it");
        assert_eq!(names.for_write("bkt", &long).await.unwrap(), hashed(&long));
        let file = hashed(&long)[3..].to_owned();
        assert_eq!(key_in(&root.path().join("bkt"), &file), Some(long.clone()));
        assert_eq!(key_in(&root.path().join("bkt"), &format!("{file}{KEY_FILE}")), None);
    }
}
