//! From changed keys to the paths of one CloudFront invalidation, folded while the keys stream by.
//!
//! A run may change a million keys, so the paths are folded as the record of changes is read, in
//! key order, without a map of the site: the keys under a folder are contiguous in that order, so
//! only the folders above the current key are open ([`Fold`]), each holding at most `max_paths`
//! paths before it becomes one wildcard, `/folder/*`. A folder counts the paths of its files and
//! what each of its subfolders came to (one wildcard, or its paths), so the deepest folder that
//! has too many paths is the one folded. The served root never folds by that count; it becomes
//! `/*` only past what CloudFront accepts at once ([`MAX_PATHS`], [`MAX_WILDCARDS`]). Held at
//! once: the root's paths (at most [`MAX_PATHS`]) and `max_paths` per open folder.
//!
//! Paths are what a browser asks CloudFront for ([`url_path`]): a leading `/`, and
//! percent-encoding only where CloudFront's documentation asks for it (non-ASCII, controls and
//! RFC 1738's unsafe characters, plus `?`, which would start a query string); any other
//! character is left as it is, or the path would no longer match what viewers request (`@` in
//! `logo@2x.png` stays `@`). A key holding `*` cannot be sent as a path (CloudFront reads `*` as
//! a wildcard, and refuses it anywhere but last), so its folder is sent as a wildcard instead.

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// File paths one distribution may have in progress at once; a wildcard path counts as one.
pub const MAX_PATHS: usize = 3000;
/// Wildcard paths one distribution may have in progress at once.
pub const MAX_WILDCARDS: usize = 15;

/// What CloudFront wants percent-encoded in a path: controls, space and RFC 1738's unsafe
/// characters (but `~`, which RFC 3986 made unreserved and browsers send as it is), and `?`.
/// Non-ASCII bytes are always encoded.
const PATH_UNSAFE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// The page a folder's URL serves.
const INDEX: &str = "index.html";

/// The URL path of a key relative to the origin path: `a b/é.html` → `/a%20b/%C3%A9.html`.
pub fn url_path(served: &str) -> String {
    format!("/{}", utf8_percent_encode(served, PATH_UNSAFE))
}

/// Which keys a distribution serves, and under which URL path: its origin path `/site` serves
/// `site/a.html` as `/a.html`, and nothing outside `site/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// The key prefix the origin path stands for: empty, or a folder ending with `/`.
    root: String,
}

impl Served {
    pub fn new(origin_path: &str) -> Served {
        let path = origin_path.trim_matches('/');
        Served { root: if path.is_empty() { String::new() } else { format!("{path}/") } }
    }

    /// The part of a full key (the target's prefix included) after the origin path; `None` for
    /// a key the distribution does not serve.
    pub fn relative<'k>(&self, full_key: &'k str) -> Option<&'k str> {
        full_key.strip_prefix(self.root.as_str()).filter(|rest| !rest.is_empty())
    }
}

/// A folder above the current key.
#[derive(Debug)]
struct Open {
    /// The length of its key prefix (`docs/api/`) in [`Fold::current`].
    len: usize,
    /// What it comes to so far, unless it is already a wildcard.
    paths: Vec<String>,
    wildcard: bool,
}

impl Open {
    fn at(len: usize) -> Open {
        Open { len, paths: Vec::new(), wildcard: false }
    }
}

/// The paths of one invalidation, folded as keys (relative to the origin path) come in key order.
/// Keys out of order are still all covered; only the folding by folder is then less tight.
#[derive(Debug)]
pub struct Fold {
    max_paths: usize,
    /// The folder of the last key, as a key prefix (`docs/api/`).
    current: String,
    /// The folders of `current`, the served root first.
    open: Vec<Open>,
    /// Wildcard paths among the root's.
    wildcards: usize,
    last: String,
}

impl Fold {
    /// A folder with more than `max_paths` paths is sent as `/folder/*`.
    pub fn new(max_paths: usize) -> Fold {
        Fold { max_paths, current: String::new(), open: vec![Open::at(0)], wildcards: 0, last: String::new() }
    }

    /// Whether everything is invalidated already (`/*`): the keys still to come change nothing.
    pub fn everything(&self) -> bool {
        self.open[0].wildcard
    }

    /// Adds a key relative to the origin path.
    pub fn push(&mut self, key: &str) {
        if self.everything() || key == self.last {
            return;
        }
        self.last.clear();
        self.last.push_str(key);
        let folder = &key[..key.rfind('/').map_or(0, |i| i + 1)];
        while self.open.len() > 1 {
            let len = self.open[self.open.len() - 1].len;
            if folder.as_bytes().starts_with(&self.current.as_bytes()[..len]) {
                break;
            }
            self.close();
        }
        let mut at = self.open[self.open.len() - 1].len;
        while let Some(slash) = folder[at..].find('/') {
            at += slash + 1;
            self.open.push(Open::at(at));
        }
        self.current.clear();
        self.current.push_str(folder);
        let top = self.open.len() - 1;
        if self.open.iter().any(|o| o.wildcard) {
            return;
        }
        if key.contains('*') {
            self.fold(top);
            return;
        }
        self.open[top].paths.push(url_path(key));
        if &key[folder.len()..] == INDEX {
            self.open[top].paths.push(url_path(folder));
        }
        self.check(top);
    }

    /// The paths to send, sorted: `["/*"]`, or each path and `/folder/*` once.
    pub fn finish(mut self) -> Vec<String> {
        while self.open.len() > 1 {
            self.close();
        }
        if self.everything() {
            return vec!["/*".to_owned()];
        }
        let mut paths = std::mem::take(&mut self.open[0].paths);
        paths.sort_unstable();
        paths.dedup();
        paths
    }

    /// Ends the deepest open folder: what it came to joins its parent's paths.
    fn close(&mut self) {
        let Some(folder) = self.open.pop() else { return };
        let parent = self.open.len() - 1;
        if self.open[parent].wildcard {
            return;
        }
        if folder.wildcard {
            let path = format!("{}*", url_path(&self.current[..folder.len]));
            self.open[parent].paths.push(path);
            if parent == 0 {
                self.wildcards += 1;
            }
        } else {
            self.open[parent].paths.extend(folder.paths);
        }
        self.check(parent);
    }

    /// Folds folder `i` once it holds more paths than it may.
    fn check(&mut self, i: usize) {
        let over = match i {
            0 => self.open[0].paths.len() > MAX_PATHS || self.wildcards > MAX_WILDCARDS,
            _ => self.open[i].paths.len() > self.max_paths,
        };
        if over {
            self.fold(i);
        }
    }

    /// Sends folder `i` as one wildcard, or the deepest folder above it whose name holds no `*`.
    fn fold(&mut self, i: usize) {
        let star = self.current.find('*').unwrap_or(usize::MAX);
        let i = (0..=i).rev().find(|&j| self.open[j].len <= star).unwrap_or(0);
        let folder = &mut self.open[i];
        folder.wildcard = true;
        folder.paths = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fold(max: usize, keys: &[&str]) -> Vec<String> {
        let mut fold = Fold::new(max);
        for key in keys {
            fold.push(key);
        }
        fold.finish()
    }

    /// CloudFront's rules for a path, which moto does not check.
    fn valid(path: &str) -> bool {
        path.starts_with('/') && path.find('*').is_none_or(|i| i == path.len() - 1)
    }

    #[test]
    fn paths_are_urls_under_the_origin_path() {
        let served = Served::new("/site");
        assert_eq!(served.relative("site/a.html"), Some("a.html"));
        assert_eq!(served.relative("site/d/e.css"), Some("d/e.css"));
        assert_eq!(served.relative("site2/a.html"), None, "a prefix is a folder, not a string");
        assert_eq!(served.relative("other/a.html"), None);
        assert_eq!(Served::new("").relative("site/a.html"), Some("site/a.html"));
        assert_eq!(Served::new("/").relative("a.html"), Some("a.html"));
        assert_eq!(Served::new("/a/b").relative("a/b/c"), Some("c"));
    }

    #[test]
    fn unsafe_characters_are_encoded_and_others_left_alone() {
        assert_eq!(url_path("a b/é.html"), "/a%20b/%C3%A9.html");
        assert_eq!(url_path("q?x#y%z.html"), "/q%3Fx%23y%25z.html");
        assert_eq!(url_path("img/logo@2x.png"), "/img/logo@2x.png");
        assert_eq!(url_path("a+b(1),c=d&e;f:g!h'$~.txt"), "/a+b(1),c=d&e;f:g!h'$~.txt");
        assert_eq!(url_path("<{|}>[\\]^`\"\u{7}"), "/%3C%7B%7C%7D%3E%5B%5C%5D%5E%60%22%07");
        assert_eq!(url_path(""), "/");
    }

    #[test]
    fn index_pages_are_also_their_folder() {
        assert_eq!(fold(50, &["a.html", "index.html"]), ["/", "/a.html", "/index.html"]);
        assert_eq!(fold(50, &["dir/index.html", "dir/x.css"]), ["/dir/", "/dir/index.html", "/dir/x.css"]);
        assert_eq!(fold(50, &["dir/index.htm", "dir/my-index.html"]), ["/dir/index.htm", "/dir/my-index.html"]);
    }

    #[test]
    fn a_folder_past_the_limit_is_one_wildcard() {
        assert_eq!(fold(3, &["a/1", "a/2", "a/3", "b"]), ["/a/1", "/a/2", "/a/3", "/b"]);
        assert_eq!(fold(3, &["a/1", "a/2", "a/3", "a/4", "b"]), ["/a/*", "/b"]);
        // The index page's folder path counts as one of the folder's paths.
        assert_eq!(fold(3, &["a/1", "a/2", "a/index.html"]), ["/a/*"]);
    }

    #[test]
    fn the_deepest_folder_past_the_limit_folds_and_its_parent_counts_one() {
        let keys = ["d/1", "d/s/1", "d/s/2", "d/s/3", "d/s/4", "d/s/5", "d/t/1", "e"];
        assert_eq!(fold(4, &keys), ["/d/1", "/d/s/*", "/d/t/1", "/e"]);
        // Subfolders interleave with files in key order (`d/a` < `d/b/…` < `d/c`).
        let keys = ["d/a", "d/b/1", "d/b/2", "d/c", "d/e"];
        assert_eq!(fold(3, &keys), ["/d/*"], "3 files and a folder of 2: more than 3 paths under d/");
    }

    #[test]
    fn the_root_folds_only_past_cloudfronts_limits() {
        let keys: Vec<String> = (0..MAX_PATHS).map(|i| format!("f{i:05}")).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        assert_eq!(fold(1, &refs).len(), MAX_PATHS, "the root is not a folder that folds at max_paths");
        let keys: Vec<String> = (0..=MAX_PATHS).map(|i| format!("f{i:05}")).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        assert_eq!(fold(50, &refs), ["/*"]);
        // 3,001 files spread over folders small enough to stay files.
        let keys: Vec<String> = (0..=MAX_PATHS).map(|i| format!("d{:04}/f{i:05}", i / 10)).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        assert_eq!(fold(50, &refs), ["/*"]);
    }

    #[test]
    fn more_than_fifteen_wildcards_is_everything() {
        let keys: Vec<String> = (0..MAX_WILDCARDS).flat_map(|d| [format!("d{d:02}/1"), format!("d{d:02}/2")]).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let paths = fold(1, &refs);
        assert_eq!(paths.len(), MAX_WILDCARDS);
        assert!(paths.iter().all(|p| p.ends_with("/*") && valid(p)), "{paths:?}");
        let keys: Vec<String> =
            (0..=MAX_WILDCARDS).flat_map(|d| [format!("d{d:02}/1"), format!("d{d:02}/2")]).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        assert_eq!(fold(1, &refs), ["/*"]);
    }

    #[test]
    fn a_key_with_a_star_invalidates_its_folder() {
        assert_eq!(fold(50, &["a/b*c.html", "a/d.html", "e.html"]), ["/a/*", "/e.html"]);
        assert_eq!(fold(50, &["a/x.html", "star*.html"]), ["/*"]);
        // A wildcard path cannot hold another `*`: the folder above is sent instead.
        assert_eq!(fold(50, &["a b/c*/d.html", "z"]), ["/a%20b/*", "/z"]);
        let many: Vec<String> = (0..5).map(|i| format!("x/y*/{i}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let paths = fold(50, &refs);
        assert_eq!(paths, ["/x/*"]);
        assert!(paths.iter().all(|p| valid(p)));
    }

    #[test]
    fn wildcards_name_their_folder_encoded() {
        assert_eq!(fold(1, &["é b/1", "é b/2"]), ["/%C3%A9%20b/*"]);
    }

    #[test]
    fn duplicates_and_disorder_still_cover_every_key() {
        assert_eq!(fold(50, &["a/x", "a/x", "b"]), ["/a/x", "/b"]);
        let paths = fold(50, &["b/2", "a/1", "b/1"]);
        assert_eq!(paths, ["/a/1", "/b/1", "/b/2"]);
    }

    #[test]
    fn memory_is_bounded_by_the_open_folders() {
        // 100,000 keys in 1,000 folders: each folds as soon as it passes the limit.
        let mut fold = Fold::new(50);
        let mut held = 0;
        for i in 0..100_000 {
            fold.push(&format!("d{:03}/f{i:06}", i / 100));
            held = held.max(fold.open.iter().map(|o| o.paths.len()).sum::<usize>());
        }
        assert!(held <= MAX_PATHS + 50, "held {held} paths at once");
        assert_eq!(fold.finish(), ["/*"], "more folder wildcards than CloudFront's 15");
    }
}
