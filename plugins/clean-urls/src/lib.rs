//! clean-urls: publishes every `NAME.html` also as `NAME`, with Content-Type `text/html` (unless
//! an earlier transform set one), so a static site's pretty URLs (`/about`) work on a plain S3
//! website endpoint.
//!
//! The extensionless key is a second key for the same file: sitesync uploads the file once and
//! makes the other key by server-side copy. `dir/index.html` is left alone by default, since S3
//! website hosting already serves it for `dir/`; `index_as_directory = true` also publishes it as
//! `dir` (so `/dir` works without the redirect). Settings, in the plugin's `[[transform]]` table:
//!
//! ```toml
//! [[transform]]
//! plugin = "plugins/libclean_urls.so"
//! extensions = [".html", ".htm"]   # default [".html"]
//! index_as_directory = false       # default false
//! ```

use sitesync_plugin_sdk::serde_json::Value;
use sitesync_plugin_sdk::{Entry, EntryRef, Transform, export_plugin};

pub struct CleanUrls {
    extensions: Vec<String>,
    index_as_directory: bool,
}

impl Transform for CleanUrls {
    fn new(config: Value) -> Result<Self, String> {
        let mut plugin = CleanUrls { extensions: vec![".html".into()], index_as_directory: false };
        let Value::Object(table) = config else { return Err("configuration is not a table".into()) };
        for (key, value) in table {
            match (key.as_str(), value) {
                ("extensions", Value::Array(list)) => {
                    plugin.extensions = list
                        .into_iter()
                        .map(|v| match v {
                            Value::String(s) if s.starts_with('.') && s.len() > 1 => Ok(s),
                            other => Err(format!("`extensions`: {other} is not an extension like \".html\"")),
                        })
                        .collect::<Result<_, _>>()?;
                }
                ("index_as_directory", Value::Bool(b)) => plugin.index_as_directory = b,
                ("extensions" | "index_as_directory", other) => {
                    return Err(format!("`{key}`: unexpected value {other}"));
                }
                _ => return Err(format!("unknown key `{key}` (expected `extensions`, `index_as_directory`)")),
            }
        }
        Ok(plugin)
    }

    fn transform(&mut self, batch: &[EntryRef<'_>]) -> Result<Vec<Entry>, String> {
        let mut out = Vec::with_capacity(batch.len() + batch.len() / 4);
        for entry in batch {
            let key = entry.key();
            out.push(entry.to_entry());
            if let Some(clean) = self.clean(key) {
                // Without its extension, the key no longer tells S3 clients it is a page.
                let mut pretty = entry.to_entry().with_key(clean);
                pretty.headers.content_type.get_or_insert_with(|| "text/html".into());
                out.push(pretty);
            }
        }
        Ok(out)
    }
}

impl CleanUrls {
    /// The extra key for `key`, if it gets one.
    pub fn clean<'k>(&self, key: &'k str) -> Option<&'k str> {
        let ext = self.extensions.iter().find(|ext| ends_with_ignore_case(key, ext))?;
        let stem = &key[..key.len() - ext.len()];
        let name = stem.rsplit('/').next().unwrap_or(stem);
        if name.is_empty() {
            return None;
        }
        if name == "index" {
            let dir = stem.strip_suffix("index")?.strip_suffix('/')?;
            return (self.index_as_directory && !dir.is_empty()).then_some(dir);
        }
        Some(stem)
    }
}

fn ends_with_ignore_case(key: &str, suffix: &str) -> bool {
    key.len() > suffix.len()
        && key.is_char_boundary(key.len() - suffix.len())
        && key[key.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

export_plugin!(CleanUrls);

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(config: Value) -> CleanUrls {
        CleanUrls::new(config).unwrap()
    }

    #[test]
    fn pages_get_a_clean_key() {
        let p = plugin(Value::Object(Default::default()));
        assert_eq!(p.clean("about.html"), Some("about"));
        assert_eq!(p.clean("blog/post.HTML"), Some("blog/post"));
        assert_eq!(p.clean("index.html"), None);
        assert_eq!(p.clean("docs/index.html"), None);
        assert_eq!(p.clean("style.css"), None);
        assert_eq!(p.clean(".html"), None);
        assert_eq!(p.clean("dir/.html"), None);
    }

    #[test]
    fn index_as_directory_publishes_the_folder_name() {
        let p = plugin(
            sitesync_plugin_sdk::serde_json::json!({"index_as_directory": true, "extensions": [".html", ".htm"]}),
        );
        assert_eq!(p.clean("docs/index.html"), Some("docs"));
        assert_eq!(p.clean("a/b/index.htm"), Some("a/b"));
        assert_eq!(p.clean("index.html"), None, "the root has no name to publish it under");
    }

    #[test]
    fn unknown_settings_are_refused() {
        let e = CleanUrls::new(sitesync_plugin_sdk::serde_json::json!({"extension": [".html"]})).err().unwrap();
        assert!(e.contains("unknown key `extension`"), "{e}");
    }
}
