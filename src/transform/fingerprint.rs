//! The chain marker's text: a digest of the tables that decide what keys are published
//! with, and the plugins by name and version. The marker is an object under the prefix, so a
//! public website serves it: it must not show the tables themselves (plugin paths, header
//! values), only what the comparison needs.

use md5::{Digest, Md5};
use serde_json::Value;

use super::{CachePolicy, LoadedPlugin};

#[derive(Debug, Clone, Default)]
pub(super) struct Fingerprint {
    tables: Vec<Value>,
    plugins: Vec<String>,
}

impl Fingerprint {
    pub fn add(&mut self, table: &Value) {
        self.tables.push(table.clone());
    }

    /// A plugin's table without its path (the same library may live elsewhere on another
    /// machine), with its name and version: a new version may publish other headers.
    pub fn add_plugin(&mut self, table: &Value, plugin: &LoadedPlugin) {
        let mut table = table.clone();
        if let Value::Object(t) = &mut table {
            t.remove("plugin");
        }
        let named = format!("{} {}", plugin.name, plugin.version);
        self.tables.push(serde_json::json!({ "plugin": named, "settings": table }));
        self.plugins.push(named);
    }

    /// The marker's text; the cache policy, when on, comes first, as it applies before the
    /// steps. With it off the text is what it was before the policy existed.
    pub fn finish(&self, policy: CachePolicy) -> String {
        let mut tables = Vec::with_capacity(self.tables.len() + 1);
        if policy == CachePolicy::Auto {
            tables.push(serde_json::json!({ "cache_policy": "auto" }));
        }
        tables.extend(self.tables.iter().cloned());
        if tables.is_empty() {
            return String::new();
        }
        let digest = Md5::digest(Value::Array(tables).to_string().as_bytes());
        let hex = crate::content::hex(&digest);
        let v = serde_json::json!({ "sitesync_chain": 2, "digest": hex, "plugins": &self.plugins });
        format!("{v}\n")
    }
}
