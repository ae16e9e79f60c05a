//! dir-index: publishes `FOLDER/index.html`, a page listing the folder, for every folder that has
//! no `index.html` of its own, so a plain S3 website endpoint shows a listing at `/FOLDER/`
//! instead of an error (the original tool's `-g`).
//!
//! The page lists the folder's files with their sizes and its subfolders with a trailing `/`, in
//! key order, with a link up (`../`) except at the root; names starting with `.` are left out,
//! and no index is made inside a folder whose name starts with `.` (`.well-known/`). Names are
//! HTML-escaped in the text and percent-encoded in the links. The page holds no date, so a folder
//! that did not change gives the same bytes, which sitesync compares by content: a re-run uploads
//! none. It is sent with `Content-Type: text/html; charset=utf-8`.
//!
//! Memory stays bounded by the depth of the tree: the walk yields a folder's entries one after
//! the other, so only the folders on the current path are held, and a folder's page is made as
//! soon as an entry outside it comes (the rest, the root included, once the walk is over, in
//! `finish`). An entry that comes after its folder's page was made (a step before this one
//! created it out of order) fails the run: list dir-index before steps that publish files under
//! other folders (`prefix_duplicate`, other plugins). Steps that add keys in the same folder
//! (clean-urls) may come before it, and their keys are listed. Settings, in the plugin's
//! `[[transform]]` table:
//!
//! ```toml
//! [[transform]]
//! plugin = "plugins/libdir_index.so"
//! root = true    # default true: the root gets an index too when it has no index.html
//! ```

mod page;

use std::collections::HashSet;

use page::{Listed, render};
use sitesync_plugin_sdk::serde_json::Value;
use sitesync_plugin_sdk::{Entry, EntryRef, Transform, export_plugin};

/// The name of the page a folder is served by, and the one this plugin writes.
const INDEX: &str = "index.html";

pub struct DirIndex {
    /// Whether the root gets an index.
    root: bool,
    /// The folders on the current path, the root first.
    open: Vec<Folder>,
}

/// A folder whose entries are still coming.
struct Folder {
    /// Its keys' prefix: `""` for the root, `docs/api/` for a folder.
    prefix: String,
    listed: Vec<Listed>,
    /// The names of its subfolders, to notice one coming again after its page was made.
    subfolders: HashSet<String>,
    /// It has an `index.html` of its own.
    has_index: bool,
    /// It or a folder above it is a dot-folder: no page is made for it.
    hidden: bool,
}

impl Folder {
    fn new(prefix: String, hidden: bool) -> Folder {
        Folder { prefix, listed: Vec::new(), subfolders: HashSet::new(), has_index: false, hidden }
    }
}

impl Transform for DirIndex {
    fn new(config: Value) -> Result<Self, String> {
        let mut root = true;
        let Value::Object(table) = config else { return Err("configuration is not a table".into()) };
        for (key, value) in table {
            match (key.as_str(), value) {
                ("root", Value::Bool(b)) => root = b,
                ("root", other) => return Err(format!("`root`: expected true or false, not {other}")),
                _ => return Err(format!("unknown key `{key}` (expected `root`)")),
            }
        }
        Ok(DirIndex { root, open: vec![Folder::new(String::new(), false)] })
    }

    fn transform(&mut self, batch: &[EntryRef<'_>]) -> Result<Vec<Entry>, String> {
        let mut out = Vec::with_capacity(batch.len() + 1);
        for entry in batch {
            out.push(entry.to_entry());
            self.see(entry.key(), entry.size(), &mut out)?;
        }
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<Entry>, String> {
        let mut out = Vec::new();
        while let Some(folder) = self.open.pop() {
            self.close(folder, &mut out);
        }
        Ok(out)
    }
}

impl DirIndex {
    /// Lists `key` in its folder, after making the pages of the folders it leaves.
    fn see(&mut self, key: &str, size: u64, out: &mut Vec<Entry>) -> Result<(), String> {
        // A key ending with `/` names a folder the walk could not read: nothing of it is published.
        if key.is_empty() || key.ends_with('/') {
            return Ok(());
        }
        while self.open.len() > 1 && !key.starts_with(&self.open[self.open.len() - 1].prefix) {
            let left = self.open.pop().expect("more than the root is open");
            self.close(left, out);
        }
        let (folders, name) = match key.rsplit_once('/') {
            Some((folders, name)) => (folders.split('/').collect(), name),
            None => (Vec::new(), key),
        };
        let depth = self.open.len() - 1;
        for component in folders.into_iter().skip(depth) {
            let parent = self.open.last_mut().expect("the root stays open");
            if !parent.subfolders.insert(component.to_owned()) {
                return Err(format!(
                    "{key} comes after the index of its folder was made: list dir-index before the steps that \
                     publish files under other folders (prefix_duplicate, other plugins)"
                ));
            }
            parent.listed.push(Listed { name: component.to_owned(), folder: true, size: None });
            let (prefix, hidden) =
                (format!("{}{component}/", parent.prefix), parent.hidden || component.starts_with('.'));
            self.open.push(Folder::new(prefix, hidden));
        }
        let folder = self.open.last_mut().expect("the root stays open");
        folder.has_index |= name == INDEX;
        folder.listed.push(Listed { name: name.to_owned(), folder: false, size: Some(size) });
        Ok(())
    }

    /// A folder the walk has left: its page, when it gets one.
    fn close(&self, folder: Folder, out: &mut Vec<Entry>) {
        if folder.has_index || folder.hidden || (folder.prefix.is_empty() && !self.root) {
            return;
        }
        let html = render(&folder.prefix, folder.listed);
        let key = format!("{}{INDEX}", folder.prefix);
        out.push(Entry::generated(key, html).with_content_type("text/html; charset=utf-8"));
    }
}

export_plugin!(DirIndex);

#[cfg(test)]
mod tests {
    use super::*;
    use sitesync_plugin_sdk::serde_json::json;

    /// Feeds `keys` (each of size 1) in `batches`, then finishes; the keys of the pages made, in
    /// the order they were made, each with the batch it came in (`None`: at the end).
    fn pages(config: Value, batches: &[&[&str]]) -> Result<Vec<(String, Option<usize>)>, String> {
        let mut plugin = DirIndex::new(config)?;
        let mut made = Vec::new();
        let mut out = Vec::new();
        for (i, batch) in batches.iter().enumerate() {
            for key in *batch {
                plugin.see(key, 1, &mut out)?;
            }
            made.extend(out.drain(..).map(|e| (e.key, Some(i))));
        }
        made.extend(plugin.finish()?.into_iter().map(|e| (e.key, None)));
        Ok(made)
    }

    fn made(batches: &[&[&str]]) -> Vec<(String, Option<usize>)> {
        pages(json!({}), batches).unwrap()
    }

    #[test]
    fn a_folder_gets_its_page_when_the_walk_leaves_it() {
        let got = made(&[&["a.txt", "b/x", "b/y/z"], &["c/index.html", "c/w", "d/v"]]);
        let expected =
            [("b/y/index.html", Some(1)), ("b/index.html", Some(1)), ("d/index.html", None), ("index.html", None)];
        assert_eq!(got, expected.map(|(k, b)| (k.to_owned(), b)));
    }

    #[test]
    fn only_the_folders_on_the_current_path_are_held() {
        let mut plugin = DirIndex::new(json!({})).unwrap();
        let mut out = Vec::new();
        for i in 0..100 {
            plugin.see(&format!("f{i:03}/deep/er/file"), 1, &mut out).unwrap();
            assert_eq!(plugin.open.len(), 4, "the root and three folders");
        }
        assert_eq!(out.len(), 99 * 3, "each folder left got its page");
    }

    #[test]
    fn dot_folders_get_no_page_and_the_root_may_be_left_alone() {
        let got = pages(json!({"root": false}), &[&[".well-known/a", ".well-known/b/c", "x/.y/z", "x/k"]]).unwrap();
        assert_eq!(got, [("x/index.html".to_owned(), None)]);
    }

    #[test]
    fn keys_created_in_an_open_folder_are_listed_in_order() {
        // clean-urls before this plugin: `about` comes after `about.html`.
        let mut plugin = DirIndex::new(json!({})).unwrap();
        let mut out = Vec::new();
        for key in ["about.html", "about", "blog/post.html", "blog/post"] {
            plugin.see(key, 4, &mut out).unwrap();
        }
        let pages = plugin.finish().unwrap();
        let root = String::from_utf8(pages.last().unwrap().body.clone().unwrap()).unwrap();
        let names: Vec<&str> = root.lines().filter(|l| l.starts_with("<tr><td>")).collect();
        assert_eq!(
            names,
            [
                "<tr><td><a href=\"about\">about</a></td><td>4</td></tr>",
                "<tr><td><a href=\"about.html\">about.html</a></td><td>4</td></tr>",
                "<tr><td><a href=\"blog/\">blog/</a></td><td></td></tr>",
            ]
        );
    }

    #[test]
    fn an_entry_after_its_folders_page_is_refused() {
        // prefix_duplicate before this plugin: `m/a/x` and later `m/b/y`, with `b/` in between.
        let e = pages(json!({}), &[&["a/x", "m/a/x", "b/y", "m/b/y"]]).unwrap_err();
        assert!(e.starts_with("m/b/y comes after the index of its folder was made"), "{e}");
    }

    #[test]
    fn settings_are_checked() {
        assert_eq!(DirIndex::new(json!({"roots": true})).err().unwrap(), "unknown key `roots` (expected `root`)");
        assert!(DirIndex::new(json!({"root": "yes"})).err().unwrap().contains("expected true or false"));
    }
}
