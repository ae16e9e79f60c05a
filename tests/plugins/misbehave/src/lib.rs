//! A plugin that misbehaves on request, for sitesync's plugin tests. Settings:
//! `create = "error" | "panic"`, `transform = "error" | "panic"`, `after = N` (fail on the
//! batch after N entries have been passed through unchanged), and `finish = "error" | "panic"`
//! (fail at the end, after every batch went through).

use sitesync_plugin_sdk::serde_json::Value;
use sitesync_plugin_sdk::{Entry, EntryRef, Transform, export_plugin};

struct Misbehave {
    transform: Option<String>,
    finish: Option<String>,
    after: u64,
    seen: u64,
}

impl Transform for Misbehave {
    fn new(config: Value) -> Result<Self, String> {
        match config.get("create").and_then(Value::as_str) {
            Some("error") => return Err("refusing to start: create = \"error\"".into()),
            Some("panic") => panic!("create = \"panic\""),
            _ => {}
        }
        Ok(Misbehave {
            transform: config.get("transform").and_then(Value::as_str).map(str::to_owned),
            finish: config.get("finish").and_then(Value::as_str).map(str::to_owned),
            after: config.get("after").and_then(Value::as_u64).unwrap_or(0),
            seen: 0,
        })
    }

    fn transform(&mut self, batch: &[EntryRef<'_>]) -> Result<Vec<Entry>, String> {
        if self.seen >= self.after {
            match self.transform.as_deref() {
                Some("error") => return Err(format!("cannot transform {}: transform = \"error\"", batch[0].key())),
                Some("panic") => panic!("transform = \"panic\" at {}", batch[0].key()),
                _ => {}
            }
        }
        self.seen += batch.len() as u64;
        Ok(batch.iter().map(EntryRef::to_entry).collect())
    }

    fn finish(&mut self) -> Result<Vec<Entry>, String> {
        match self.finish.as_deref() {
            Some("error") => Err(format!("cannot finish after {} entries: finish = \"error\"", self.seen)),
            Some("panic") => panic!("finish = \"panic\""),
            _ => Ok(Vec::new()),
        }
    }
}

export_plugin!(Misbehave);
