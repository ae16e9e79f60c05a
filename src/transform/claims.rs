//! Which entry publishes a key that several entries claim.
//!
//! Only a chain that creates keys can make two entries claim one key: a duplicate or a plugin's
//! output landing on the key of a file the walk found, or two rules landing on one key. The rule
//! is that **the file found under the key wins** and the created entry is reported, whatever the
//! order in which they reach the chain and however the batches fall. The walk yields its keys in
//! order, so a created key the walk has already passed is settled by what was seen; one still
//! ahead of the walk is settled by looking for its file on disk (one `stat` of its folder, cached
//! while the folder is missing, which is the common case: `mirror/` does not exist in the source).
//! Between two created entries, the first to come wins, which the walk's order fixes too.
//!
//! The keys seen are kept as 128-bit hashes: a set of the keys themselves cost more than the rest
//! of the chain (an allocation and a long hash per key, and 100 MB for a million keys). With two
//! independently seeded SipHash values, two keys of one run collide with probability about
//! n²/2¹²⁹ (10⁻²⁶ for a million keys).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::path::PathBuf;

use crate::keys::names::{NameDecoder, escape};
use crate::model::LocalFile;

#[derive(Default)]
pub(super) struct Claims {
    seeds: (RandomState, RandomState),
    seen: HashSet<u128, BuildHasherDefault<Spread>>,
    /// The greatest key the walk has yielded.
    walked_to: Option<String>,
    disk: Option<SourceFiles>,
}

/// What one batch looked like before the steps: the entries the walk made, by file and key.
pub(super) struct Walked {
    found: HashSet<u128, BuildHasherDefault<Spread>>,
}

impl Claims {
    pub fn over_source(&mut self, root: PathBuf, names: NameDecoder) {
        self.disk = Some(SourceFiles { root, names, absent: HashSet::new(), present: HashMap::new() });
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

    /// Records a scan batch before the steps change it: which entries the walk made, and how far
    /// the walk has got.
    pub fn walked(&mut self, batch: &[LocalFile]) -> Walked {
        let found = batch.iter().filter_map(|f| self.found_hash(f)).collect();
        if let Some(last) = batch.last() {
            self.walked_to = Some(last.key.clone());
        }
        Walked { found }
    }

    /// Gives every key of `accepted` to one entry; the others are removed and returned, with why.
    pub fn settle(&mut self, accepted: &mut Vec<LocalFile>, walked: &Walked) -> Vec<(LocalFile, String)> {
        let found: Vec<bool> =
            accepted.iter().map(|f| self.found_hash(f).is_some_and(|h| walked.found.contains(&h))).collect();
        let mut refused: Vec<Option<String>> = vec![None; accepted.len()];
        // The entries the walk found claim their keys first, then the ones the steps created.
        for (i, file) in accepted.iter().enumerate().filter(|(i, _)| found[*i]) {
            if !self.seen.insert(self.hash(&[file.key.as_bytes()])) {
                refused[i] = Some(
                    "the transform chain published this key from another file before this one was found; \
                     skipped (check overlapping rules)"
                        .into(),
                );
            }
        }
        for (i, file) in accepted.iter().enumerate().filter(|(i, _)| !found[*i]) {
            let ahead = self.walked_to.as_deref().is_none_or(|at| file.key.as_str() > at);
            let found_later = ahead && self.disk.as_mut().is_some_and(|d| d.has_file(&file.key));
            if found_later || !self.seen.insert(self.hash(&[file.key.as_bytes()])) {
                refused[i] = Some(format!(
                    "the transform chain publishes this key twice; the entry made from {} is skipped, as the \
                     file found under this key wins (check overlapping rules)",
                    self.origin(file)
                ));
            }
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
    absent: HashSet<String>,
    /// Folders known to exist, with their path on disk.
    present: HashMap<String, PathBuf>,
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
            if self.absent.contains(&key) {
                return None;
            }
            if let Some(known) = self.present.get(&key) {
                path = known.clone();
                continue;
            }
            let found = self.names.encodings_of(component).into_iter().map(|n| path.join(os(&n))).find(|p| p.is_dir());
            match found {
                Some(p) => {
                    self.present.insert(key.clone(), p.clone());
                    path = p;
                }
                None => {
                    self.absent.insert(key);
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

/// The hasher of a set whose keys are already uniform hashes: it keeps their low bits.
#[derive(Default)]
struct Spread(u64);

impl Hasher for Spread {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(word);
        }
    }

    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}
