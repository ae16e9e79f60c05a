//! Which entry publishes a key that several entries claim.
//!
//! Only a chain that creates keys can make two entries claim one key: a duplicate or a plugin's
//! output landing on the key of a file the walk found, or two rules landing on one key. The rule
//! is that **the file found under the key wins** and the created entry is reported, whatever the
//! order in which they reach the chain and however the batches fall. Whether the walk finds (or
//! found) a file under a created key is asked of the disk, the way the walk would look: one `stat`
//! of the folder, remembered while the folder is missing (the common case: `mirror/` does not
//! exist in the source), then one of the file. So the walk's own keys are never kept: the walk
//! yields a key once (names that normalise to one key are refused by the walk itself), and a
//! walked entry only needs to know whether a created entry took its key first, which happens
//! only when its file appeared after the disk was asked. Between two created entries, the first to
//! come wins, which the walk's order fixes too.
//!
//! The created keys are kept as 128-bit hashes ([`KeyHashes`], 16 bytes a key): a set of the
//! keys themselves cost more than the rest of the chain (an allocation and a long hash per key,
//! and 100 MB for a million keys). With two independently seeded SipHash values, two keys of one
//! run collide with probability about n²/2¹²⁹ (10⁻²⁶ for a million keys). Keeping only those, not
//! the walk's keys too, halves what a whole-tree duplicate holds.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::path::PathBuf;

use super::key_hashes::{KeyHashes, Spread};
use crate::keys::names::{NameDecoder, escape};
use crate::model::LocalFile;

#[derive(Default)]
pub(super) struct Claims {
    seeds: (RandomState, RandomState),
    /// The keys created entries were given.
    created: KeyHashes,
    disk: Option<SourceFiles>,
}

/// What one batch looked like before the steps: the entries the walk made, by file and key.
pub(super) struct Walked {
    found: HashSet<u128, BuildHasherDefault<Spread>>,
}

impl Claims {
    pub fn over_source(&mut self, root: PathBuf, names: NameDecoder) {
        self.disk = Some(SourceFiles { root, names, absent: HashMap::new(), present: HashMap::new() });
    }

    fn hash(&self, parts: &[&[u8]]) -> u128 {
        let one = |state: &RandomState| {
            let mut h = state.build_hasher();
            for part in parts {
                h.write(part);
                h.write_u8(0xff);
            }
            h.finish()
        };
        (u128::from(one(&self.seeds.0)) << 64) | u128::from(one(&self.seeds.1))
    }

    fn found_hash(&self, file: &LocalFile) -> Option<u128> {
        let path = file.path()?;
        Some(self.hash(&[path.as_os_str().as_encoded_bytes(), file.key.as_bytes()]))
    }

    /// What a created entry was made from: the key it duplicates, or its file.
    fn origin(&self, file: &LocalFile) -> String {
        if let Some(key) = &file.copy_of {
            return key.clone();
        }
        if file.inline_bytes().is_some() {
            return "bytes a step generated".into();
        }
        let path = file.path().unwrap_or(std::path::Path::new(""));
        let shown = self.disk.as_ref().and_then(|d| path.strip_prefix(&d.root).ok()).unwrap_or(path);
        escape(shown.as_os_str().as_encoded_bytes())
    }

    /// Records a scan batch before the steps change it: which entries the walk made.
    pub fn walked(&self, batch: &[LocalFile]) -> Walked {
        Walked { found: batch.iter().filter_map(|f| self.found_hash(f)).collect() }
    }

    /// Gives every key of `accepted` to one entry; the others are removed and returned, with why.
    pub fn settle(&mut self, accepted: &mut Vec<LocalFile>, walked: &Walked) -> Vec<(LocalFile, String)> {
        let found: Vec<bool> =
            accepted.iter().map(|f| self.found_hash(f).is_some_and(|h| walked.found.contains(&h))).collect();
        let mut refused: Vec<Option<String>> = vec![None; accepted.len()];
        // The entries the walk found claim their keys first, then the ones the steps created.
        for (i, file) in accepted.iter().enumerate().filter(|(i, _)| found[*i]) {
            if self.created.contains(self.hash(&[file.key.as_bytes()])) {
                refused[i] = Some(
                    "the transform chain published this key from another file before this one was found; \
                     skipped (check overlapping rules)"
                        .into(),
                );
            }
        }
        for (i, file) in accepted.iter().enumerate().filter(|(i, _)| !found[*i]) {
            let on_disk = self.disk.as_mut().is_some_and(|d| d.has_file(&file.key));
            let winner = if on_disk {
                "the file found under this key"
            } else if !self.created.insert(self.hash(&[file.key.as_bytes()])) {
                "the entry made first"
            } else {
                continue;
            };
            refused[i] = Some(format!(
                "the transform chain publishes this key twice; the entry made from {} is skipped, as {winner} \
                 wins (check overlapping rules)",
                self.origin(file)
            ));
        }
        let mut losers = Vec::new();
        let mut kept = Vec::with_capacity(accepted.len());
        for (file, why) in std::mem::take(accepted).into_iter().zip(refused) {
            match why {
                Some(why) => losers.push((file, why)),
                None => kept.push(file),
            }
        }
        *accepted = kept;
        losers
    }
}

/// Looks for the file a key names in the source tree, the way the walk would have found it.
struct SourceFiles {
    root: PathBuf,
    names: NameDecoder,
    /// Folders (keys ending with `/`) known not to exist.
    absent: HashMap<String, ()>,
    /// Folders known to exist, with their path on disk.
    present: HashMap<String, PathBuf>,
}

/// How many folders each of [`SourceFiles`]' caches holds before it is emptied. Created keys come
/// in the walk's order, so the folders asked about move on with it: a full cache is forgotten
/// whole, which costs a `stat` again, never a wrong answer, and keeps memory flat in the tree's
/// size.
const FOLDERS_REMEMBERED: usize = 4096;

/// Remembers `value` under `key`, emptying `cache` first when it is full.
fn remember<V>(cache: &mut HashMap<String, V>, key: String, value: V) {
    if cache.len() >= FOLDERS_REMEMBERED {
        cache.clear();
    }
    cache.insert(key, value);
}

impl SourceFiles {
    fn has_file(&mut self, key: &str) -> bool {
        let (folders, name) = key.rsplit_once('/').map_or(("", key), |(d, n)| (d, n));
        let Some(dir) = self.folder(folders) else { return false };
        self.names.encodings_of(name).iter().any(|n| std::fs::metadata(dir.join(os(n))).is_ok_and(|m| m.is_file()))
    }

    /// The on-disk path of the folder `folders` (a key without its last `/`), if it exists.
    fn folder(&mut self, folders: &str) -> Option<PathBuf> {
        let mut path = self.root.clone();
        let mut key = String::new();
        if folders.is_empty() {
            return Some(path);
        }
        for component in folders.split('/') {
            key.push_str(component);
            key.push('/');
            if self.absent.contains_key(&key) {
                return None;
            }
            if let Some(known) = self.present.get(&key) {
                path = known.clone();
                continue;
            }
            let found = self.names.encodings_of(component).into_iter().map(|n| path.join(os(&n))).find(|p| p.is_dir());
            match found {
                Some(p) => {
                    remember(&mut self.present, key.clone(), p.clone());
                    path = p;
                }
                None => {
                    remember(&mut self.absent, key, ());
                    return None;
                }
            }
        }
        Some(path)
    }
}

fn os(bytes: &[u8]) -> &std::ffi::OsStr {
    std::os::unix::ffi::OsStrExt::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Time;

    fn source(keys: &[&str]) -> (tempfile::TempDir, Claims) {
        let root = tempfile::tempdir().unwrap();
        for key in keys {
            std::fs::create_dir_all(root.path().join(key).parent().unwrap()).unwrap();
            std::fs::write(root.path().join(key), key).unwrap();
        }
        let mut claims = Claims::default();
        claims.over_source(root.path().to_owned(), NameDecoder::new("utf-8", "none").unwrap());
        (root, claims)
    }

    /// The walk's entries for `keys`, and each one's duplicate under `to`.
    fn mirrored(root: &std::path::Path, keys: &[String], to: &str) -> (Vec<LocalFile>, Vec<LocalFile>) {
        let walked: Vec<LocalFile> = keys.iter().map(|k| LocalFile::new(k.clone(), root.join(k), 1, Time(0))).collect();
        let mut batch = walked.clone();
        for file in &walked {
            let mut copy = file.clone();
            copy.key = format!("{to}{}", file.key);
            copy.copy_of = Some(file.key.clone());
            batch.push(copy);
        }
        (walked, batch)
    }

    #[test]
    fn a_whole_tree_duplicate_remembers_only_the_keys_it_creates() {
        let keys: Vec<String> = (0..300).map(|i| format!("d{}/f{i}.html", i % 7)).collect();
        let (root, mut claims) = source(&keys.iter().map(String::as_str).collect::<Vec<_>>());
        for chunk in keys.chunks(64) {
            let (walked, mut batch) = mirrored(root.path(), chunk, "mirror/");
            let walked = claims.walked(&walked);
            assert!(claims.settle(&mut batch, &walked).is_empty());
            assert_eq!(batch.len(), 2 * chunk.len());
        }
        assert_eq!(claims.created.len(), keys.len(), "the walk's own keys are not kept");
    }

    #[test]
    fn a_created_key_behind_the_walk_loses_to_a_file_the_steps_dropped_as_one_ahead_does() {
        // The walk has passed `b/y` (a filter dropped it) when `c/y` is duplicated onto it, and has
        // not reached `x` when `a/x` is duplicated onto it: both are settled by the disk.
        let (root, mut claims) = source(&["a/x", "b/y", "c/y", "x"]);
        let walked: Vec<LocalFile> = ["a/x", "b/y", "c/y"]
            .iter()
            .map(|k| LocalFile::new(k.to_string(), root.path().join(k), 1, Time(0)))
            .collect();
        let record = claims.walked(&walked);
        let made = |key: &str, from: &str| {
            let mut copy = LocalFile::new(key.into(), root.path().join(from), 1, Time(0));
            copy.copy_of = Some(from.into());
            copy
        };
        let mut accepted = vec![walked[0].clone(), made("x", "a/x"), walked[2].clone(), made("b/y", "c/y")];
        let losers: Vec<String> = claims.settle(&mut accepted, &record).into_iter().map(|(f, _)| f.key).collect();
        assert_eq!(losers, ["x", "b/y"]);
        assert_eq!(accepted.iter().map(|f| f.key.as_str()).collect::<Vec<_>>(), ["a/x", "c/y"]);
    }

    #[test]
    fn two_created_entries_on_one_key_the_first_wins_and_a_walked_entry_after_it_loses() {
        let (root, mut claims) = source(&["a/x", "b/x"]);
        let record = claims.walked(&[]);
        let made = |key: &str, from: &str| {
            let mut copy = LocalFile::new(key.into(), root.path().join(from), 1, Time(0));
            copy.copy_of = Some(from.into());
            copy
        };
        let mut first = vec![made("m/x", "a/x"), made("m/x", "b/x")];
        let losers = claims.settle(&mut first, &record);
        assert_eq!((first.len(), losers.len()), (1, 1));
        assert_eq!(first[0].copy_of.as_deref(), Some("a/x"));
        assert!(losers[0].1.contains("made from b/x is skipped, as the entry made first wins"), "{}", losers[0].1);
        // `m/x` appears on disk after it was looked for: the walk's entry comes second and loses.
        std::fs::create_dir_all(root.path().join("m")).unwrap();
        std::fs::write(root.path().join("m/x"), "late").unwrap();
        let late = LocalFile::new("m/x".into(), root.path().join("m/x"), 4, Time(0));
        let record = claims.walked(std::slice::from_ref(&late));
        let mut batch = vec![late];
        let losers = claims.settle(&mut batch, &record);
        assert!(batch.is_empty() && losers[0].1.contains("before this one was found"), "{losers:?}");
    }

    #[test]
    fn the_folders_remembered_stay_bounded_and_right() {
        let (root, mut claims) = source(&["kept/x"]);
        let disk = claims.disk.as_mut().unwrap();
        for i in 0..3 * FOLDERS_REMEMBERED {
            assert!(!disk.has_file(&format!("missing{i}/x")));
            assert!(disk.absent.len() <= FOLDERS_REMEMBERED);
        }
        assert!(disk.has_file("kept/x") && !disk.has_file("kept/y"), "{}", root.path().display());
    }
}
