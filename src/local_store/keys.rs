//! How keys are named on the embedded store's disk.
//!
//! s3s-fs stores the object `a/b` as the file `a/b` under the bucket's folder, so the object `a`
//! (a file) and `a/b` (which needs a folder `a`) cannot both exist. Here every folder segment of a
//! key gets the suffix `%d`, a key ending with `/` ends with the segment `%e`, and `%`, a lone
//! `.` and `..` are percent-encoded: `a` is stored as `a` and `a/b` as `a%d/b`, so a folder never
//! meets a file, and every stored name decodes back to exactly one key.

use percent_encoding::percent_decode_str;

/// The name a key is stored under, relative to its bucket's folder.
pub fn stored(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 8);
    let mut segments = key.split('/').peekable();
    while let Some(segment) = segments.next() {
        match segment {
            "." => out.push_str("%2E"),
            ".." => out.push_str("%2E%2E"),
            _ => out.push_str(&segment.replace('%', "%25")),
        }
        match segments.peek() {
            Some(_) => out.push_str("%d/"),
            None if segment.is_empty() => out.push_str("%e"),
            None => {}
        }
    }
    out
}

/// The key a stored name (`/`-separated, relative to the bucket's folder) stands for; `None`
/// for a name no key is stored under.
pub fn key_of(stored: &str) -> Option<String> {
    let mut key = String::with_capacity(stored.len());
    let mut segments = stored.split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        let plain = if last { if segment == "%e" { "" } else { segment } } else { segment.strip_suffix("%d")? };
        key.push_str(&percent_decode_str(plain).decode_utf8().ok()?);
        if !last {
            key.push('/');
        }
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_never_meets_a_file_and_every_name_decodes_back() {
        let keys = ["a", "a/b", "a%d/b", "a%25", "./..", "dir/", "", "x//y", "%e", "é/日本 +?#"];
        let names: Vec<String> = keys.iter().map(|k| stored(k)).collect();
        assert_eq!(names[..4], ["a", "a%d/b", "a%25d%d/b", "a%2525"]);
        for (key, name) in keys.iter().zip(&names) {
            assert_eq!(key_of(name).as_deref(), Some(*key), "{name}");
            for segment in name.split('/') {
                assert!(!segment.is_empty() && segment != "." && segment != "..", "{key:?} → {name:?}");
            }
        }
        let unique: std::collections::HashSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
    }
}
