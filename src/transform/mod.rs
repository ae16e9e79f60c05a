//! The transform chain: what the local scan found, turned into what should be published.
//!
//! The chain runs on the desired state, before the diff: local scan → chain → diff against the
//! listing → sink. So keys a transform creates are compared with the bucket like any other (a
//! missing duplicate is repaired, one whose file is gone is deleted), and a filter that drops a
//! local entry also drops the remote keys it excludes from the listing, leaving them alone.
//! `[[transform]]` tables of `sync.toml` are data ([`TransformConfig`]); [`ChainSpec`] is the
//! validated form held by the config (globs compiled, libraries loaded), and [`Chain`] the
//! runtime of one run (plugin instances created). Transforms are synchronous and batch in, batch
//! out; the chain runs on its own thread between the walk and the diff ([`spawn`]).

mod duplicate;
mod filter;
mod headers;
pub mod plugin;

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

pub use duplicate::{Duplicate, DuplicateConfig};
pub use filter::{Filter, FilterConfig};
pub use headers::{Headers, HeadersConfig};
pub use plugin::{LoadedPlugin, PluginConfig};

use crate::model::{LocalFile, LocalItem, Problem};

/// The key, relative to the prefix, of the object recording the chain configuration the objects
/// under the prefix were last published with. It is never listed to the diff, so never deleted.
pub const MARKER_KEY: &str = ".sitesync/chain";

/// A transform that failed while the run was going: the run stops and sends no deletes.
#[derive(Debug, thiserror::Error)]
#[error("transform[{index}] ({name}) failed: {message}")]
pub struct TransformError {
    pub index: usize,
    pub name: String,
    pub message: String,
}

/// Something wrong with a `[[transform]]` table, or a plugin that cannot be loaded or created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key `{key}`: {why}")]
pub struct BuildError {
    /// Where in the config: `transform[2].include[0]`.
    pub key: String,
    pub why: String,
}

impl BuildError {
    pub(crate) fn new(key: impl Into<String>, why: impl Into<String>) -> BuildError {
        BuildError { key: key.into(), why: why.into() }
    }
}

/// One step of the chain, as the runtime sees it.
pub trait Transform: Send {
    fn apply(&mut self, batch: Vec<LocalFile>) -> Result<Vec<LocalFile>, String>;
}

/// One `[[transform]]` table.
#[derive(Debug, Clone)]
pub enum TransformConfig {
    Filter(FilterConfig),
    PrefixDuplicate(DuplicateConfig),
    Headers(HeadersConfig),
    Plugin(PluginConfig),
}

impl TransformConfig {
    /// Reads table `index`. `base` is the directory relative plugin paths start from.
    pub fn parse(index: usize, table: &Value, base: &Path) -> Result<TransformConfig, BuildError> {
        let at = format!("transform[{index}]");
        let Value::Object(table) = table else {
            return Err(BuildError::new(at, "expected a table ([[transform]])"));
        };
        let mut rest = table.clone();
        match (rest.remove("type"), rest.remove("plugin")) {
            (Some(_), Some(_)) => {
                Err(BuildError::new(at, "give `type` (a built-in) or `plugin` (a library), not both"))
            }
            (None, None) => Err(BuildError::new(
                at,
                "missing `type` (\"filter\", \"prefix_duplicate\" or \"headers\") or `plugin` (a library path)",
            )),
            (None, Some(Value::String(path))) => {
                Ok(TransformConfig::Plugin(PluginConfig { path: resolve(base, &path), shown: path, settings: rest }))
            }
            (None, Some(_)) => Err(BuildError::new(format!("{at}.plugin"), "expected a path to a library")),
            (Some(Value::String(kind)), None) => match kind.as_str() {
                "filter" => Ok(TransformConfig::Filter(fields(&at, rest)?)),
                "prefix_duplicate" => Ok(TransformConfig::PrefixDuplicate(fields(&at, rest)?)),
                "headers" => Ok(TransformConfig::Headers(fields(&at, rest)?)),
                other => Err(BuildError::new(
                    format!("{at}.type"),
                    format!("unknown transform {other:?} (expected \"filter\", \"prefix_duplicate\" or \"headers\")"),
                )),
            },
            (Some(_), None) => Err(BuildError::new(format!("{at}.type"), "expected a string")),
        }
    }
}

fn fields<T: DeserializeOwned>(at: &str, table: Map<String, Value>) -> Result<T, BuildError> {
    serde_json::from_value(Value::Object(table)).map_err(|e| BuildError::new(at, e.to_string()))
}

fn resolve(base: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() { path.to_owned() } else { base.join(path) }
}

/// A validated step: built-ins compiled, plugin libraries loaded and version-checked.
#[derive(Debug, Clone)]
enum StepSpec {
    Filter(Filter),
    Duplicate(Duplicate),
    Headers(Headers),
    Plugin { plugin: &'static LoadedPlugin, settings: String },
}

/// The validated chain a [`Config`](crate::config::Config) holds.
#[derive(Debug, Clone, Default)]
pub struct ChainSpec {
    steps: Vec<StepSpec>,
    fingerprint: String,
    /// Where the tables came from (the config file), for messages about creating plugins.
    pub origin: String,
}

impl ChainSpec {
    /// Validates the tables in order, loading each plugin library as it is reached.
    pub fn build(tables: &[Value], base: &Path) -> Result<ChainSpec, BuildError> {
        let mut steps = Vec::with_capacity(tables.len());
        let mut described = Vec::with_capacity(tables.len());
        for (index, table) in tables.iter().enumerate() {
            let at = format!("transform[{index}]");
            let mut description = table.clone();
            let step = match TransformConfig::parse(index, table, base)? {
                TransformConfig::Filter(c) => StepSpec::Filter(c.build(&at)?),
                TransformConfig::PrefixDuplicate(c) => StepSpec::Duplicate(c.build(&at)?),
                TransformConfig::Headers(c) => StepSpec::Headers(c.build(&at)?),
                TransformConfig::Plugin(c) => {
                    let plugin =
                        plugin::load(&c.path, &c.shown).map_err(|why| BuildError::new(format!("{at}.plugin"), why))?;
                    // A new plugin version may publish other headers for the same input.
                    if let Value::Object(d) = &mut description {
                        d.insert("plugin_version".into(), Value::String(format!("{} {}", plugin.name, plugin.version)));
                    }
                    StepSpec::Plugin { plugin, settings: Value::Object(c.settings).to_string() }
                }
            };
            // A filter never changes what a key it keeps is published with, and the diff handles
            // the keys it adds or drops: editing one must not re-publish the whole site.
            if !matches!(step, StepSpec::Filter(_)) {
                described.push(description);
            }
            steps.push(step);
        }
        let fingerprint = if described.is_empty() {
            String::new()
        } else {
            let v = serde_json::json!({ "sitesync_chain": 1, "transforms": described });
            format!("{v}\n")
        };
        Ok(ChainSpec { steps, fingerprint, origin: String::new() })
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The chain configuration as the marker object records it: every table but the filters,
    /// in order, and each plugin's name and version. Empty when that leaves nothing.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Whether the chain yields keys in the order it receives them: filters and header rules do;
    /// steps that create keys (duplicates, plugins) may yield them anywhere.
    pub fn keeps_order(&self) -> bool {
        self.steps.iter().all(|s| matches!(s, StepSpec::Filter(_) | StepSpec::Headers(_)))
    }

    /// What the listing must not show the diff: the marker, and every key some filter excludes.
    pub fn remote_filter(&self) -> RemoteFilter {
        let filters = self
            .steps
            .iter()
            .filter_map(|s| match s {
                StepSpec::Filter(f) => Some(f.clone()),
                _ => None,
            })
            .collect();
        RemoteFilter { filters }
    }

    /// Makes the runtime of one run; plugin instances are created here, in chain order.
    pub fn start(&self) -> Result<Chain, BuildError> {
        let mut steps: Vec<(String, Box<dyn Transform>)> = Vec::with_capacity(self.steps.len());
        let mut creates_keys = false;
        for (index, step) in self.steps.iter().enumerate() {
            let named = match step {
                StepSpec::Filter(f) => ("filter".to_owned(), Box::new(f.clone()) as Box<dyn Transform>),
                StepSpec::Duplicate(d) => {
                    creates_keys = true;
                    ("prefix_duplicate".to_owned(), Box::new(d.clone()) as Box<dyn Transform>)
                }
                StepSpec::Headers(h) => ("headers".to_owned(), Box::new(h.clone()) as Box<dyn Transform>),
                StepSpec::Plugin { plugin, settings } => {
                    creates_keys = true;
                    let instance = plugin::Instance::create(plugin, settings)
                        .map_err(|why| BuildError::new(format!("transform[{index}]"), why))?;
                    (plugin.shown.clone(), Box::new(instance) as Box<dyn Transform>)
                }
            };
            steps.push(named);
        }
        Ok(Chain { steps, seen: creates_keys.then(Seen::default), max_key: MAX_KEY_BYTES })
    }
}

/// Drops from the listing the keys the diff must not see.
#[derive(Debug, Clone, Default)]
pub struct RemoteFilter {
    filters: Vec<Filter>,
}

impl RemoteFilter {
    pub fn keeps(&self, key: &str) -> bool {
        key != MARKER_KEY && self.filters.iter().all(|f| f.keeps(key))
    }
}

/// The chain of one run.
pub struct Chain {
    steps: Vec<(String, Box<dyn Transform>)>,
    /// Every key emitted so far, when a step can create keys: two files must not claim one key.
    seen: Option<Seen>,
    /// The longest key, relative to the prefix, S3 accepts under the target prefix.
    max_key: usize,
}

/// S3's limit on a whole key.
const MAX_KEY_BYTES: usize = 1024;

impl Chain {
    /// Counts the target prefix's bytes toward S3's key limit.
    pub fn under_prefix(mut self, prefix_len: usize) -> Chain {
        self.max_key = MAX_KEY_BYTES.saturating_sub(prefix_len);
        self
    }

    /// Passes a scan batch through every step; problems go straight through.
    pub fn apply(&mut self, items: Vec<LocalItem>) -> Result<Vec<LocalItem>, TransformError> {
        let mut out = Vec::with_capacity(items.len());
        let mut files = Vec::with_capacity(items.len());
        for item in items {
            match item {
                LocalItem::File(f) => files.push(f),
                problem => out.push(problem),
            }
        }
        for (index, (name, step)) in self.steps.iter_mut().enumerate() {
            if files.is_empty() {
                break;
            }
            files = step.apply(files).map_err(|message| TransformError { index, name: name.clone(), message })?;
        }
        let mut accepted = Vec::with_capacity(files.len());
        for file in files {
            match self.refuse(&file) {
                Some(why) => out.push(LocalItem::Problem(Problem { place: file.key, message: why })),
                None => accepted.push(file),
            }
        }
        // Only among the accepted: a copy must never name a refused key, which may be another
        // file's.
        link_copies(&mut accepted);
        out.extend(accepted.into_iter().map(LocalItem::File));
        Ok(out)
    }

    fn refuse(&mut self, file: &LocalFile) -> Option<String> {
        if file.key.is_empty() || file.key.starts_with('/') {
            return Some("the transform chain made an empty key or one starting with '/'".into());
        }
        if file.key.len() > self.max_key {
            return Some(format!(
                "the transform chain made a key of {} bytes; with the prefix it exceeds S3's {MAX_KEY_BYTES}",
                file.key.len()
            ));
        }
        if file.key == MARKER_KEY {
            return Some(format!("{MARKER_KEY} is reserved for sitesync's chain marker"));
        }
        let seen = self.seen.as_mut()?;
        if seen.insert(&file.key) {
            return None;
        }
        Some(format!(
            "the transform chain publishes this key twice; skipped for {} (check overlapping rules)",
            crate::names::escape(file.path.as_os_str().as_encoded_bytes())
        ))
    }
}

/// The keys a run has emitted, as 128-bit hashes: a set of the keys themselves cost more than the
/// rest of the chain (an allocation and a long hash per key, and 100 MB for a million keys).
/// With two independently seeded SipHash values, two keys of one run collide with probability
/// about n²/2¹²⁹ (10⁻²⁶ for a million keys).
#[derive(Default)]
struct Seen {
    seeds: (RandomState, RandomState),
    hashes: HashSet<u128, BuildHasherDefault<Spread>>,
}

impl Seen {
    /// False when the key was seen before.
    fn insert(&mut self, key: &str) -> bool {
        let hash = (u128::from(self.seeds.0.hash_one(key)) << 64) | u128::from(self.seeds.1.hash_one(key));
        self.hashes.insert(hash)
    }
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

/// Points every entry that publishes the same file as an earlier one of the batch at that
/// primary (`copy_of`), and clears `copy_of` where the primary is not published: the sink then
/// uploads the file once and copies it server-side for the others.
pub fn link_copies(files: &mut [LocalFile]) {
    // Keyed by the path's bytes: hashing a `Path` walks its components, which costs more.
    let mut primary: HashMap<&[u8], usize> = HashMap::with_capacity(files.len());
    let mut links = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let path = f.path.as_os_str().as_encoded_bytes();
        match primary.get(path) {
            Some(&p) => links.push((i, p)),
            None => {
                primary.insert(path, i);
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

/// Runs the chain on its own thread between the walk (`rx`) and the diff (`tx`). A failing
/// transform sends its error and stops, which stops the walk.
pub fn spawn(
    mut chain: Chain,
    mut rx: mpsc::Receiver<Vec<LocalItem>>,
    tx: mpsc::Sender<Result<Vec<LocalItem>, TransformError>>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("sitesync-chain".into())
        .spawn(move || {
            while let Some(batch) = rx.blocking_recv() {
                let result = if chain.steps.is_empty() { Ok(batch) } else { chain.apply(batch) };
                let failed = result.is_err();
                if tx.blocking_send(result).is_err() || failed {
                    break;
                }
            }
        })
        .expect("spawning the chain thread")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Time;

    fn file(key: &str) -> LocalFile {
        LocalFile::new(key.into(), format!("/src/{key}").into(), 1, Time(0))
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
    fn tables_name_the_key_that_is_wrong() {
        let base = Path::new("/cfg");
        let first = serde_json::json!({"type": "filter", "exclude": ["*.tmp"]});
        let parse = |v: Value| ChainSpec::build(&[first.clone(), v], base).err().unwrap();
        let e = parse(serde_json::json!({"type": "filter", "include": ["["]}));
        assert_eq!(e.key, "transform[1].include[0]");
        let e = parse(serde_json::json!({"type": "filtre"}));
        assert_eq!(e.key, "transform[1].type");
        let e = parse(serde_json::json!({"type": "filter", "includes": []}));
        assert!(e.to_string().contains("unknown field `includes`"), "{e}");
        let e = parse(serde_json::json!({"include": []}));
        assert!(e.why.contains("missing `type`"), "{e}");
        let e = parse(serde_json::json!({"plugin": "plugins/nothing-here.so"}));
        assert_eq!(e.key, "transform[1].plugin");
        assert!(e.why.contains("plugins/nothing-here.so"), "{e}");
    }

    #[test]
    fn a_chain_that_publishes_a_key_twice_reports_it() {
        let tables = [serde_json::json!({"type": "prefix_duplicate", "rules": [{"from": "a/", "to": ""}]})];
        let mut chain = ChainSpec::build(&tables, Path::new("/")).unwrap().start().unwrap();
        let items = vec![LocalItem::File(file("a/x")), LocalItem::File(file("x"))];
        let out = chain.apply(items).unwrap();
        let shown: Vec<String> = out
            .iter()
            .map(|i| match i {
                LocalItem::File(f) => format!("{} {:?}", f.key, f.copy_of),
                LocalItem::Problem(p) => format!("problem {}", p.place),
            })
            .collect();
        assert_eq!(shown, ["problem x", "a/x None", "x Some(\"a/x\")"]);
    }

    #[test]
    fn remote_keys_any_filter_excludes_are_hidden() {
        let tables = [
            serde_json::json!({"type": "filter", "exclude": ["*.map"]}),
            serde_json::json!({"type": "filter", "include": ["public/**"]}),
        ];
        let remote = ChainSpec::build(&tables, Path::new("/")).unwrap().remote_filter();
        assert!(remote.keeps("public/a.js"));
        assert!(!remote.keeps("public/a.js.map"));
        assert!(!remote.keeps("private/a.js"));
        assert!(!RemoteFilter::default().keeps(MARKER_KEY));
    }
}
