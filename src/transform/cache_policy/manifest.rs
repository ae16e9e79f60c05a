//! A bundler's build manifest, the stronger signal of which names are fingerprinted.
//!
//! The name rule misses many of Vite's hashes: Rollup writes them in base64url, so one in five
//! holds a `-` or `_` (which the rule splits at: `index-C-fTYq3D.js`) and one in four no digit
//! (`index-BxKqaLmz.js`). Vite's manifest (`.vite/manifest.json`, or `manifest.json` before Vite 5)
//! lists the files the build wrote, relative to its output folder: each entry's `file`, `css` and
//! `assets`. Hashing can be turned off in Vite's config (a backend integration often does, and
//! keeps the manifest), so a listed file counts only when its name ends the way Vite's default
//! `[name]-[hash]` does: a `-` and 8 characters of Rollup's alphabet, with a digit or two capital
//! letters among them (a word such as `-overview` or `-Dropdown` is not a hash).
//!
//! webpack's `manifest.json` (webpack-manifest-plugin) is not read: its hashes are hex, which the
//! name rule already finds, its paths carry the public path, and the name is shared with the web
//! app manifest of every PWA. A manifest that cannot be read or is not Vite's is left out, with a
//! warning: the name rule still applies.

use std::path::Path;

use serde_json::Value;

use super::Listed;

/// Where Vite writes its manifest, relative to its output folder (the source), newest first.
const MANIFESTS: [&str; 2] = [".vite/manifest.json", "manifest.json"];

/// A manifest larger than this is not read: Vite's are a few hundred bytes an entry.
const MAX_BYTES: u64 = 64 << 20;

/// The fingerprinted files the manifests under `root` list. A blocking read.
pub fn read(root: &Path) -> Listed {
    let mut listed = Listed::default();
    for name in MANIFESTS {
        let path = root.join(name);
        let text = match std::fs::metadata(&path) {
            Err(_) => continue,
            Ok(meta) if meta.len() > MAX_BYTES => {
                tracing::warn!("cache policy: {} is over {MAX_BYTES} bytes; not read", path.display());
                continue;
            }
            Ok(_) => match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) => {
                    tracing::warn!("cache policy: cannot read {}: {e}; the name rule alone applies", path.display());
                    continue;
                }
            },
        };
        match outputs(&text) {
            Some(files) => {
                let before = listed.len();
                listed.keys.extend(files.into_iter().filter(|f| hashed_by_rollup(f)));
                tracing::debug!("cache policy: {} lists {} fingerprinted files", path.display(), listed.len() - before);
            }
            // `manifest.json` at the root is usually a web app manifest, not Vite's: no warning.
            None if name == MANIFESTS[1] => tracing::debug!("cache policy: {} is not a Vite manifest", path.display()),
            None => {
                tracing::warn!("cache policy: {} is not a Vite manifest; the name rule alone applies", path.display())
            }
        }
    }
    listed
}

/// Every output file a Vite manifest lists; `None` when the text is not one (every value of its
/// top-level object is an entry with a `file`).
fn outputs(text: &str) -> Option<Vec<String>> {
    let Ok(Value::Object(entries)) = serde_json::from_str::<Value>(text) else { return None };
    let mut files = Vec::new();
    for entry in entries.values() {
        let Value::String(file) = entry.get("file")? else { return None };
        files.push(file.clone());
        for list in ["css", "assets"] {
            if let Some(Value::Array(names)) = entry.get(list) {
                files.extend(names.iter().filter_map(Value::as_str).map(str::to_owned));
            }
        }
    }
    Some(files.into_iter().map(|f| f.trim_start_matches("./").to_owned()).collect())
}

/// Whether `path`'s name, without its last extension, ends in `-` and a hash of Rollup's
/// alphabet, 8 characters holding a digit or two capital letters.
fn hashed_by_rollup(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let stem = name.rfind('.').map_or(name, |dot| &name[..dot]).as_bytes();
    let Some(split) = stem.len().checked_sub(9) else { return false };
    let (dash, hash) = (stem[split], &stem[split + 1..]);
    let alphabet = hash.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_');
    let capitals = hash.iter().filter(|b| b.is_ascii_uppercase()).count();
    dash == b'-' && split > 0 && alphabet && (hash.iter().any(u8::is_ascii_digit) || capitals >= 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VITE: &str = r#"{
      "_shared-ChJ_j-JJ.js": { "file": "assets/shared-ChJ_j-JJ.js", "name": "shared", "css": ["assets/shared-BxKqaLmz.css"] },
      "index.html": { "file": "assets/index-C-fTYq3D.js", "name": "index", "src": "index.html", "isEntry": true,
                      "assets": ["assets/logo-Dq3fAb9x.svg"], "imports": ["_shared-ChJ_j-JJ.js"] },
      "src/plain.ts": { "file": "assets/plain.js", "src": "src/plain.ts" },
      "src/Menu.vue": { "file": "assets/site-Dropdown.js", "src": "src/Menu.vue" }
    }"#;

    #[test]
    fn a_vite_manifest_lists_the_hashed_files_it_wrote() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(".vite")).unwrap();
        std::fs::write(root.path().join(".vite/manifest.json"), VITE).unwrap();
        let listed = read(root.path());
        let mut keys: Vec<&str> = listed.keys.iter().map(String::as_str).collect();
        keys.sort();
        // Not `plain.js` (hashing off) nor `site-Dropdown.js` (a word, not a hash).
        assert_eq!(
            keys,
            [
                "assets/index-C-fTYq3D.js",
                "assets/logo-Dq3fAb9x.svg",
                "assets/shared-BxKqaLmz.css",
                "assets/shared-ChJ_j-JJ.js"
            ]
        );
    }

    #[test]
    fn a_web_app_manifest_or_a_broken_one_lists_nothing() {
        let root = tempfile::tempdir().unwrap();
        let pwa = r#"{"name": "Site", "icons": [{"src": "icon-a1b2c3d4.png"}], "start_url": "."}"#;
        std::fs::write(root.path().join("manifest.json"), pwa).unwrap();
        std::fs::create_dir(root.path().join(".vite")).unwrap();
        std::fs::write(root.path().join(".vite/manifest.json"), "{ not json").unwrap();
        assert!(read(root.path()).is_empty());
        assert!(read(&root.path().join("missing")).is_empty());
    }

    #[test]
    fn only_a_dash_and_eight_hash_characters_end_a_hashed_name() {
        for name in ["a-C-fTYq3D.js", "x/index-BxKqaLmz.js", "a-a1b2c3d4", "a-ab_cd-e1.css"] {
            assert!(hashed_by_rollup(name), "{name}");
        }
        for name in ["C-fTYq3D.js", "-C-fTYq3D.js", "a.C-fTYq3D.js", "a-overview.js", "a-Dropdown.js", "a-b1.js"] {
            assert!(!hashed_by_rollup(name), "{name}");
        }
    }
}
