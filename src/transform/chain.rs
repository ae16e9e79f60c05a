//! The chain of one run: every step applied to each scan batch in turn, on a thread of its own.
//!
//! What the scan could not read travels through the steps too, as an entry with an
//! [`Unreadable`](Body::Unreadable) body: a step that drops the entry (a filter) drops the problem
//! with it, since what is not published cannot fail the run; what survives is reported once.
//! After the steps, every key is checked (S3's limits, the reserved folder) and, when the chain
//! creates keys, given to one entry only ([`Claims`]); where a `compress` step matched a key, a
//! Content-Encoding a step set is dropped ([`EncodedKeys`]); with `cache_policy = "auto"`, a key no
//! step gave a Cache-Control gets the policy's ([`Policy`]).

use std::collections::HashMap;
use std::sync::Arc;

use super::cache_policy::{CachePolicy, Policy};
use super::claims::Claims;
use super::compress::EncodedKeys;
use super::{MARKER_KEY, RESERVED_FOLDER, Transform, TransformError};
use crate::keys::target::MAX_KEY_BYTES;
use crate::model::{Body, LocalFile, LocalItem, Problem, Time};

/// The chain of one run.
pub struct Chain {
    steps: Vec<(String, Box<dyn Transform>)>,
    /// Who publishes each key, when a step can create keys.
    claims: Option<Claims>,
    /// The longest key, relative to the prefix, S3 accepts under the target prefix.
    max_key: usize,
    /// The keys whose Content-Encoding the bytes sent decide.
    encoded: EncodedKeys,
    /// `cache_policy = "auto"`: the Cache-Control of the keys no step gave one.
    policy: Option<Policy>,
    /// Keys of the walk no step sees and nothing publishes (the site's `_redirects`).
    left_out: &'static [&'static str],
}

impl Chain {
    /// A chain of `steps`, each with the name its errors give it. `creates_keys` says whether a
    /// step may yield keys it was not given, which makes the chain settle who publishes a key
    /// that several entries claim.
    pub fn of(steps: Vec<(String, Box<dyn Transform>)>, creates_keys: bool) -> Chain {
        let claims = creates_keys.then(Claims::default);
        let (encoded, policy, left_out) = (Default::default(), None, &[][..]);
        Chain { steps, claims, max_key: MAX_KEY_BYTES, encoded, policy, left_out }
    }

    /// Applies `policy` to what the steps yield (see [`super::cache_policy`]).
    pub fn cache_policy(mut self, policy: CachePolicy) -> Chain {
        self.policy = (policy == CachePolicy::Auto).then(Policy::default);
        self
    }

    /// Leaves the walk's entries under these keys out, before any step sees them.
    pub fn leaving_out(mut self, keys: &'static [&'static str]) -> Chain {
        self.left_out = keys;
        self
    }

    /// Drops a Content-Encoding a step set on the keys `encoded` matches (the `compress` steps').
    pub fn encoded(mut self, encoded: EncodedKeys) -> Chain {
        self.encoded = encoded;
        self
    }

    /// Counts the target prefix's bytes toward S3's key limit.
    pub fn under_prefix(mut self, prefix_len: usize) -> Chain {
        self.max_key = MAX_KEY_BYTES.saturating_sub(prefix_len);
        self
    }

    /// Lets the chain look at the source on disk: for a file, to settle a key a step created
    /// ahead of the walk (see [`Claims`]); for a bundler's manifest, for the cache policy.
    pub fn over_source(mut self, root: std::path::PathBuf, names: crate::keys::names::NameDecoder) -> Chain {
        if let Some(policy) = &mut self.policy {
            policy.over_source(root.clone());
        }
        if let Some(claims) = &mut self.claims {
            claims.over_source(root, names);
        }
        self
    }

    /// Whether the chain leaves every entry as it is: no step and no cache policy.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty() && self.policy.is_none()
    }

    /// Passes a scan batch through every step.
    pub fn apply(&mut self, items: Vec<LocalItem>) -> Result<Vec<LocalItem>, TransformError> {
        let mut files: Vec<LocalFile> = items.into_iter().map(entry).collect();
        files.retain(|f| !self.left_out.contains(&f.key.as_str()));
        let walked = self.claims.as_mut().map(|c| c.walked(&files));
        for (index, (name, step)) in self.steps.iter_mut().enumerate() {
            if files.is_empty() {
                break;
            }
            files = step.apply(files).map_err(|error| TransformError { index, name: name.clone(), error })?;
        }
        Ok(self.settle(files, walked))
    }

    /// Once the walk's last batch went through: asks every step, in order, for what it held back,
    /// and passes what a step yields through the steps after it. What comes out is the chain's
    /// last batch. The walk is over, so everything in it is an entry the steps created.
    pub fn finish(&mut self) -> Result<Vec<LocalItem>, TransformError> {
        let walked = self.claims.as_mut().map(|c| c.walked(&[]));
        let mut files = Vec::new();
        for (index, (name, step)) in self.steps.iter_mut().enumerate() {
            let failed = |error| TransformError { index, name: name.clone(), error };
            if !files.is_empty() {
                files = step.apply(files).map_err(failed)?;
            }
            files.extend(step.finish().map_err(failed)?);
        }
        let settled = self.settle(files, walked);
        if self.encoded.dropped() > 1 {
            let n = self.encoded.dropped();
            tracing::warn!(
                "Content-Encoding set by the chain dropped on {n} keys a compress step matched (-v names each)"
            );
        }
        Ok(settled)
    }

    /// What the steps made of a batch, checked: problems reported once, keys refused or settled
    /// between claimants, copies linked.
    fn settle(&mut self, files: Vec<LocalFile>, walked: Option<super::claims::Walked>) -> Vec<LocalItem> {
        let mut out = Vec::with_capacity(files.len());
        let mut accepted = Vec::with_capacity(files.len());
        let mut reported: Vec<*const Problem> = Vec::new();
        for file in files {
            if let Body::Unreadable(problem) = &file.body {
                if !reported.contains(&Arc::as_ptr(problem)) {
                    reported.push(Arc::as_ptr(problem));
                    out.push(LocalItem::Problem((**problem).clone()));
                }
                continue;
            }
            match self.refuse(&file) {
                Some(why) => out.push(LocalItem::Problem(Problem::new(file.key, why))),
                None => {
                    let mut file = file;
                    self.encoded.settle(&mut file);
                    if let Some(policy) = &mut self.policy {
                        policy.settle(&mut file);
                    }
                    accepted.push(file);
                }
            }
        }
        if let (Some(claims), Some(walked)) = (&mut self.claims, walked) {
            for (file, why) in claims.settle(&mut accepted, &walked) {
                out.push(LocalItem::Problem(Problem::new(file.key, why)));
            }
        }
        // Only among the accepted: a copy must never name a refused key, which may be another
        // file's.
        link_copies(&mut accepted);
        out.extend(accepted.into_iter().map(LocalItem::File));
        out
    }

    fn refuse(&self, file: &LocalFile) -> Option<String> {
        if file.key.is_empty() || file.key.starts_with('/') {
            return Some("the transform chain made an empty key or one starting with '/'".into());
        }
        if file.key.len() > self.max_key {
            return Some(format!(
                "the transform chain made a key of {} bytes; with the prefix it exceeds S3's {MAX_KEY_BYTES}",
                file.key.len()
            ));
        }
        if file.key.starts_with(RESERVED_FOLDER) {
            return Some(format!("{RESERVED_FOLDER} is reserved for sitesync's own objects ({MARKER_KEY})"));
        }
        None
    }
}

/// A scan item as an entry of the chain: what could not be read travels as an unreadable one.
fn entry(item: LocalItem) -> LocalFile {
    match item {
        LocalItem::File(file) => file,
        LocalItem::Problem(problem) => LocalFile {
            key: problem.place.clone(),
            body: Body::Unreadable(Arc::new(problem)),
            size: 0,
            mtime: Time(0),
            meta: None,
            copy_of: None,
            known: None,
        },
    }
}

/// Points every entry that publishes the same file as an earlier one of the batch at that
/// primary (`copy_of`), and clears `copy_of` where the primary is not published: the sink then
/// uploads the file once and copies it server-side for the others. Only files on disk are linked:
/// two inline bodies are never one file, even with the same bytes. Compressed entries are left
/// out too: each is uploaded, since whether its bytes go compressed, and so its Content-Encoding,
/// is known only once they are compressed.
pub fn link_copies(files: &mut [LocalFile]) {
    // Keyed by the path's bytes: hashing a `Path` walks its components, which costs more.
    let mut primary: HashMap<&[u8], usize> = HashMap::with_capacity(files.len());
    let mut links = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let Body::File(path) = &f.body else { continue };
        match primary.get(path.as_os_str().as_encoded_bytes()) {
            Some(&p) => links.push((i, p)),
            None => {
                primary.insert(path.as_os_str().as_encoded_bytes(), i);
            }
        }
    }
    let mut copy_of: Vec<Option<String>> = vec![None; files.len()];
    for (i, p) in links {
        copy_of[i] = Some(files[p].key.clone());
    }
    for (f, c) in files.iter_mut().zip(copy_of) {
        f.copy_of = c;
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::transform::{ChainSpec, StepError};

    fn file(key: &str) -> LocalFile {
        LocalFile::new(key.into(), format!("/src/{key}").into(), 1, Time(0))
    }

    fn shown(out: &[LocalItem]) -> Vec<String> {
        out.iter()
            .map(|i| match i {
                LocalItem::File(f) => format!("{} {:?}", f.key, f.copy_of),
                LocalItem::Problem(p) => format!("problem {}", p.place),
            })
            .collect()
    }

    #[test]
    fn copies_point_at_the_first_key_of_their_file() {
        let mut files = vec![file("a.html"), file("b"), file("a.html")];
        files[2].key = "a".into();
        files[1].copy_of = Some("gone".into());
        link_copies(&mut files);
        let got: Vec<_> = files.iter().map(|f| (f.key.as_str(), f.copy_of.as_deref())).collect();
        assert_eq!(got, [("a.html", None), ("b", None), ("a", Some("a.html"))]);
    }

    #[test]
    fn inline_bodies_are_never_copies_of_each_other() {
        let bytes: Arc<[u8]> = Arc::from(&b"<p>same</p>"[..]);
        let mut files = vec![
            LocalFile::inline("a/index.html".into(), bytes.clone(), Time(0)),
            LocalFile::inline("b/index.html".into(), bytes, Time(0)),
        ];
        files[1].copy_of = Some("a/index.html".into());
        link_copies(&mut files);
        assert!(files.iter().all(|f| f.copy_of.is_none()), "{files:?}");
    }

    /// A step that passes entries through, saying which it saw, and makes one page at the end.
    struct Collect {
        name: &'static str,
        seen: Arc<std::sync::Mutex<Vec<String>>>,
    }

    impl Transform for Collect {
        fn apply(&mut self, batch: Vec<LocalFile>) -> Result<Vec<LocalFile>, StepError> {
            let mut seen = self.seen.lock().unwrap();
            seen.extend(batch.iter().map(|f| format!("{} saw {}", self.name, f.key)));
            Ok(batch)
        }

        fn finish(&mut self) -> Result<Vec<LocalFile>, StepError> {
            self.seen.lock().unwrap().push(format!("{} finished", self.name));
            let bytes: Arc<[u8]> = Arc::from(self.name.as_bytes());
            Ok(vec![LocalFile::inline(format!("{}.txt", self.name), bytes, Time(0))])
        }
    }

    #[test]
    fn finish_runs_every_step_in_order_and_passes_what_it_makes_through_the_later_ones() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let step = |name| Box::new(Collect { name, seen: seen.clone() }) as Box<dyn Transform>;
        let mut c = Chain::of(vec![("first".into(), step("first")), ("second".into(), step("second"))], true);
        let out = c.apply(vec![LocalItem::File(file("a"))]).unwrap();
        assert_eq!(shown(&out), ["a None"]);
        let out = c.finish().unwrap();
        assert_eq!(shown(&out), ["first.txt None", "second.txt None"]);
        let LocalItem::File(made) = &out[0] else { unreachable!() };
        assert_eq!((made.size, made.inline_bytes().map(|b| &b[..])), (5, Some(&b"first"[..])));
        assert_eq!(
            *seen.lock().unwrap(),
            ["first saw a", "second saw a", "first finished", "second saw first.txt", "second finished"]
        );
    }

    #[test]
    fn what_finish_makes_is_checked_like_any_entry() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let step = Box::new(Collect { name: ".sitesync/x", seen }) as Box<dyn Transform>;
        let mut c = Chain::of(vec![("maker".into(), step)], true);
        assert_eq!(shown(&c.finish().unwrap()), ["problem .sitesync/x.txt"]);
    }

    #[test]
    fn compressed_entries_are_never_copies_nor_sources() {
        let mut files = vec![file("a.css"), file("a.css"), file("a.css")];
        files[1].key = "b.css".into();
        files[2].key = "c.css".into();
        for f in &mut files[..2] {
            let path = f.path().unwrap().to_owned();
            f.body = Body::Compressed { path, encoding: crate::model::Encoding::Gzip };
        }
        link_copies(&mut files);
        let got: Vec<_> = files.iter().map(|f| f.copy_of.as_deref()).collect();
        assert_eq!(got, [None, None, None], "the plain c.css is its own primary");
    }

    fn chain(tables: &[serde_json::Value]) -> Chain {
        ChainSpec::build(tables, Path::new("/")).unwrap().start().unwrap()
    }

    #[test]
    fn a_problem_the_chain_drops_is_not_reported() {
        let problem = |place: &str| LocalItem::Problem(Problem::new(place.into(), "FIFO".into()));
        let mut c = chain(&[
            serde_json::json!({"type": "filter", "exclude": ["drafts/**", "*.tmp"]}),
            serde_json::json!({"type": "prefix_duplicate", "rules": [{"from": "", "to": "m/"}]}),
        ]);
        let out =
            c.apply(vec![problem("drafts/pipe"), problem("x.tmp"), problem("keep"), problem("private/")]).unwrap();
        // What survives is reported once, though the duplicate made two entries of it.
        assert_eq!(shown(&out), ["problem keep", "problem private/"]);
    }

    #[test]
    fn keys_in_the_reserved_folder_are_refused() {
        let mut c =
            chain(&[serde_json::json!({"type": "prefix_duplicate", "rules": [{"from": "a/", "to": ".sitesync/"}]})]);
        let out = c.apply(vec![LocalItem::File(file("a/x"))]).unwrap();
        assert_eq!(shown(&out), ["problem .sitesync/x", "a/x None"]);
    }

    /// Everything the chain yields for `batches` of files of `root`, sorted.
    fn through(c: &mut Chain, root: &Path, batches: &[&[&str]]) -> Vec<String> {
        let mut out = Vec::new();
        for batch in batches {
            let items = batch
                .iter()
                .map(|k| LocalItem::File(LocalFile::new(k.to_string(), root.join(k), 1, Time(0))))
                .collect();
            out.extend(shown(&c.apply(items).unwrap()));
        }
        out.sort();
        out
    }

    #[test]
    fn the_file_found_under_a_key_wins_over_a_created_entry_whatever_the_batches() {
        let tables = [
            serde_json::json!({"type": "prefix_duplicate", "rules": [{"from": "a/", "to": ""}, {"from": "c/", "to": "b/"}]}),
        ];
        let root = tempfile::tempdir().unwrap();
        for key in ["a/x", "b/y", "c/y", "x"] {
            std::fs::create_dir_all(root.path().join(key).parent().unwrap()).unwrap();
            std::fs::write(root.path().join(key), key).unwrap();
        }
        let names = crate::keys::names::NameDecoder::new("utf-8", "none").unwrap();
        let expected = ["a/x None", "b/y None", "c/y None", "problem b/y", "problem x", "x None"];
        // `x` is created from `a/x` before the walk reaches the file `x`; `b/y` after it found
        // the file `b/y`.
        for batches in [&[&["a/x", "b/y", "c/y", "x"][..]][..], &[&["a/x"], &["b/y"], &["c/y"], &["x"]]] {
            let mut c = chain(&tables).over_source(root.path().to_owned(), names);
            assert_eq!(through(&mut c, root.path(), batches), expected, "{batches:?}");
        }
    }
}
