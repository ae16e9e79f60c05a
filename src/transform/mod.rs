//! The transform chain: what the local scan found, turned into what should be published.
//!
//! The chain runs on the desired state, before the diff: local scan → chain → diff against the
//! listing → sink. So keys a transform creates are compared with the bucket like any other (a
//! missing duplicate is repaired, one whose file is gone is deleted), and a filter that drops a
//! local entry also hides the remote keys it excludes from the listing, leaving them alone.
//! `[[transform]]` tables of `sync.toml` are data ([`TransformConfig`]); [`ChainSpec`] is the
//! validated form held by the config (globs compiled, libraries loaded), and [`Chain`] the
//! runtime of one run (plugin instances created). Transforms are synchronous and batch in, batch
//! out; the chain runs on its own thread between the walk and the diff ([`spawn`]). After the
//! walk's last batch, every step may yield what it held back ([`Chain::finish`]).

pub mod cache_policy;
mod chain;
mod claims;
mod compress;
mod duplicate;
mod filter;
mod fingerprint;
mod headers;
mod key_hashes;
pub mod plugin;
pub mod redirects;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

pub use cache_policy::{CachePolicy, is_fingerprinted, is_immutable};
pub use chain::{Chain, link_copies};
pub use compress::{Compress, CompressConfig, EncodedKeys};
pub use duplicate::{Duplicate, DuplicateConfig};
pub use filter::{Filter, FilterConfig, FolderExcludes};
pub use headers::{Headers, HeadersConfig};
pub use plugin::{LoadedPlugin, PluginConfig, PluginError};

use crate::keys::shard::CopyRule;
use crate::model::LocalFile;

/// The folder, relative to the prefix, where sitesync keeps its own objects. No entry of the
/// source may be published there.
pub use crate::history::FOLDER as RESERVED_FOLDER;

/// The key, relative to the prefix, of the object recording the chain configuration the objects
/// under the prefix were last published with. It is never listed to the diff, so never deleted.
pub use crate::history::MARKER as MARKER_KEY;

/// A transform that failed while the run was going: the run stops and sends no deletes.
#[derive(Debug, thiserror::Error)]
#[error("transform[{index}] ({name}) failed: {error}")]
pub struct TransformError {
    pub index: usize,
    pub name: String,
    #[source]
    pub error: StepError,
}

/// Why a step failed on a batch.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The step refused the batch; the message is its own.
    #[error("{0}")]
    Failed(String),
    /// The step panicked (a plugin catches its panic and reports it).
    #[error("it panicked: {0}")]
    Panicked(String),
    /// What the step gave back breaks the rules of the plugin ABI.
    #[error("{0}")]
    Output(String),
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
    fn apply(&mut self, batch: Vec<LocalFile>) -> Result<Vec<LocalFile>, StepError>;

    /// Called once after the last batch, for the entries a step could only make once it had
    /// seen everything (a folder's index). The built-in steps have none.
    fn finish(&mut self) -> Result<Vec<LocalFile>, StepError> {
        Ok(Vec::new())
    }
}

/// One `[[transform]]` table.
#[derive(Debug, Clone)]
pub enum TransformConfig {
    Filter(FilterConfig),
    PrefixDuplicate(DuplicateConfig),
    Headers(HeadersConfig),
    Compress(CompressConfig),
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
                "missing `type` (\"filter\", \"prefix_duplicate\", \"headers\" or \"compress\") or `plugin` (a library \
                 path)",
            )),
            (None, Some(Value::String(path))) => {
                Ok(TransformConfig::Plugin(PluginConfig { path: resolve(base, &path), shown: path, settings: rest }))
            }
            (None, Some(_)) => Err(BuildError::new(format!("{at}.plugin"), "expected a path to a library")),
            (Some(Value::String(kind)), None) => match kind.as_str() {
                "filter" => Ok(TransformConfig::Filter(fields(&at, rest)?)),
                "prefix_duplicate" => Ok(TransformConfig::PrefixDuplicate(fields(&at, rest)?)),
                "headers" => Ok(TransformConfig::Headers(fields(&at, rest)?)),
                "compress" => Ok(TransformConfig::Compress(fields(&at, rest)?)),
                other => Err(BuildError::new(
                    format!("{at}.type"),
                    format!(
                        "unknown transform {other:?} (expected \"filter\", \"prefix_duplicate\", \"headers\" or \
                         \"compress\")"
                    ),
                )),
            },
            (Some(_), None) => Err(BuildError::new(format!("{at}.type"), "expected a string")),
        }
    }

    /// How the config names this step in messages.
    fn describe(&self) -> String {
        match self {
            TransformConfig::Filter(_) => "filter".into(),
            TransformConfig::PrefixDuplicate(_) => "prefix_duplicate".into(),
            TransformConfig::Headers(_) => "headers".into(),
            TransformConfig::Compress(_) => "compress".into(),
            TransformConfig::Plugin(c) => format!("plugin {}", c.shown),
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
    Compress(Compress),
    Plugin { plugin: &'static LoadedPlugin, settings: String },
}

impl StepSpec {
    /// Whether the step may yield keys it was not given.
    fn creates_keys(&self) -> bool {
        matches!(self, StepSpec::Duplicate(_) | StepSpec::Plugin { .. })
    }
}

/// The validated chain the configuration holds.
#[derive(Debug, Clone, Default)]
pub struct ChainSpec {
    steps: Vec<StepSpec>,
    /// What the marker records of the steps, and the string it makes with the cache policy.
    recorded: fingerprint::Fingerprint,
    fingerprint: String,
    cache_policy: CachePolicy,
    /// The site's `_redirects` and `_headers` (and `[redirects]`): the steps that open and end
    /// the chain.
    site: Option<Arc<redirects::SiteRules>>,
    /// Where the tables came from (the config file), for messages about creating plugins.
    pub origin: String,
}

impl ChainSpec {
    /// Validates the tables in order, loading each plugin library as it is reached.
    pub fn build(tables: &[Value], base: &Path) -> Result<ChainSpec, BuildError> {
        let configs = tables
            .iter()
            .enumerate()
            .map(|(i, t)| TransformConfig::parse(i, t, base))
            .collect::<Result<Vec<_>, _>>()?;
        refuse_filters_before_plugins(&configs)?;
        let mut steps = Vec::with_capacity(tables.len());
        let mut recorded = fingerprint::Fingerprint::default();
        for (index, (config, table)) in configs.into_iter().zip(tables).enumerate() {
            let at = format!("transform[{index}]");
            let step = match config {
                TransformConfig::Filter(c) => StepSpec::Filter(c.build(&at)?),
                TransformConfig::PrefixDuplicate(c) => StepSpec::Duplicate(c.build(&at)?),
                TransformConfig::Headers(c) => StepSpec::Headers(c.build(&at)?),
                TransformConfig::Compress(c) => StepSpec::Compress(c.build(&at)?),
                TransformConfig::Plugin(c) => {
                    let plugin = plugin::load(&c.path, &c.shown)
                        .map_err(|e| BuildError::new(format!("{at}.plugin"), e.to_string()))?;
                    StepSpec::Plugin { plugin, settings: Value::Object(c.settings).to_string() }
                }
            };
            // A filter never changes what a key it keeps is published with, and the diff handles
            // the keys it adds or drops: editing one must not re-publish the whole site.
            match &step {
                StepSpec::Filter(_) => {}
                StepSpec::Plugin { plugin, .. } => recorded.add_plugin(table, plugin),
                _ => recorded.add(table),
            }
            steps.push(step);
        }
        let fingerprint = recorded.finish(CachePolicy::Off);
        let cache_policy = CachePolicy::Off;
        Ok(ChainSpec { steps, recorded, fingerprint, cache_policy, site: None, origin: String::new() })
    }

    /// Adds the steps of the site's `_redirects` and `_headers`; the headers `_headers` sets are
    /// recorded by the marker like a `headers` table's.
    pub fn with_site(mut self, site: redirects::SiteRules) -> ChainSpec {
        if let Some(recorded) = site.recorded() {
            self.recorded.add(&recorded);
            self.fingerprint = self.recorded.finish(self.cache_policy);
        }
        self.site = Some(Arc::new(site));
        self
    }

    pub fn site(&self) -> Option<&Arc<redirects::SiteRules>> {
        self.site.as_ref()
    }

    /// The `headers` rule that sets a `website_redirect_location` on `key`, named as the config
    /// has it (`transform[1].rules[0]`).
    pub fn redirecting_rule(&self, key: &str) -> Option<String> {
        self.steps.iter().enumerate().find_map(|(index, step)| match step {
            StepSpec::Headers(h) => h.redirect_rule(key).map(|rule| format!("transform[{index}].rules[{rule}]")),
            _ => None,
        })
    }

    /// The chain with `policy` applied before its steps (see [`cache_policy`]); it changes the
    /// fingerprint, so turning it on or off re-publishes every key's headers once.
    pub fn with_cache_policy(mut self, policy: CachePolicy) -> ChainSpec {
        self.cache_policy = policy;
        self.fingerprint = self.recorded.finish(policy);
        self
    }

    pub fn cache_policy(&self) -> CachePolicy {
        self.cache_policy
    }

    /// Whether the chain leaves every entry as the walk found it: no step, no cache policy.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty() && self.cache_policy == CachePolicy::Off
    }

    /// What the marker object records of the chain: a digest of every table but the filters, in
    /// order, after the cache policy when it is on, and the name and version of each plugin.
    /// Empty when that leaves nothing.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The `prefix_duplicate` rules of the chain, in order, each named as the config has it.
    pub fn duplicate_rules(&self) -> Vec<CopyRule> {
        let rules = self.steps.iter().enumerate().filter_map(|(index, s)| match s {
            StepSpec::Duplicate(d) => Some(d.rules(&format!("transform[{index}]"))),
            _ => None,
        });
        rules.flatten().collect()
    }

    /// Whether every key the chain yields is in its file's folder, or made by a `prefix_duplicate`
    /// rule from a key that is: the built-in steps. A plugin may make keys anywhere, and pages from
    /// what it saw of the whole tree (a folder's index), so a split run must show it the whole tree.
    pub fn keeps_folders(&self) -> bool {
        !self.steps.iter().any(|step| matches!(step, StepSpec::Plugin { .. }))
    }

    /// Whether the chain yields keys in the order it receives them: filters and header rules do;
    /// steps that create keys (duplicates, plugins) may yield them anywhere.
    pub fn keeps_order(&self) -> bool {
        !self.steps.iter().any(StepSpec::creates_keys)
    }

    /// What the listing must not show the diff: the reserved folder, and the keys a filter
    /// excludes that no step after it can create. A key a later step can create belongs to the
    /// chain: it is published while the chain makes it and deleted once it no longer does.
    pub fn remote_filter(&self) -> RemoteFilter {
        let mut hiding = Vec::new();
        for (i, step) in self.steps.iter().enumerate() {
            let StepSpec::Filter(filter) = step else { continue };
            let mut created = Vec::new();
            for later in &self.steps[i + 1..] {
                match later {
                    StepSpec::Duplicate(d) => created.extend(d.destinations().map(str::to_owned)),
                    // Refused at build: a plugin may create any key.
                    StepSpec::Plugin { .. } => created.push(String::new()),
                    _ => {}
                }
            }
            hiding.push((filter.clone(), created));
        }
        RemoteFilter { hiding }
    }

    /// The folders the walk may skip whole: those an exclude of a filter names entirely, when
    /// no step before that filter can create keys (so nothing under them can be published).
    pub fn folder_excludes(&self) -> Option<Arc<FolderExcludes>> {
        let leading = self.steps.iter().take_while(|s| !s.creates_keys()).filter_map(|s| match s {
            StepSpec::Filter(f) => Some(f),
            _ => None,
        });
        FolderExcludes::of(leading).map(Arc::new)
    }

    /// Makes the runtime of one run; plugin instances are created here, in chain order.
    pub fn start(&self) -> Result<Chain, BuildError> {
        let mut steps: Vec<(String, Box<dyn Transform>)> = Vec::with_capacity(self.steps.len());
        for (index, step) in self.steps.iter().enumerate() {
            let named = match step {
                StepSpec::Filter(f) => ("filter".to_owned(), Box::new(f.clone()) as Box<dyn Transform>),
                StepSpec::Duplicate(d) => ("prefix_duplicate".to_owned(), Box::new(d.clone()) as Box<dyn Transform>),
                StepSpec::Headers(h) => ("headers".to_owned(), Box::new(h.clone()) as Box<dyn Transform>),
                StepSpec::Compress(c) => ("compress".to_owned(), Box::new(c.clone()) as Box<dyn Transform>),
                StepSpec::Plugin { plugin, settings } => {
                    let instance = plugin::Instance::create(plugin, settings)
                        .map_err(|e| BuildError::new(format!("transform[{index}]"), e.to_string()))?;
                    (plugin.shown.clone(), Box::new(instance) as Box<dyn Transform>)
                }
            };
            steps.push(named);
        }
        let mut left_out: &[&str] = &[];
        if let Some(site) = &self.site {
            let step = redirects::SiteStep::new(site.clone(), self.keeps_order());
            steps.push(("_redirects and _headers".to_owned(), Box::new(step)));
            if site.hides_files() {
                left_out = &redirects::SITE_FILES;
            }
        }
        let compress = self.steps.iter().filter_map(|step| match step {
            StepSpec::Compress(c) => Some(c.clone()),
            _ => None,
        });
        let chain = Chain::of(steps, !self.keeps_order()).encoded(EncodedKeys::of(compress.collect()));
        Ok(chain.cache_policy(self.cache_policy).leaving_out(left_out))
    }
}

/// A filter hides keys of the bucket from the diff, so it must come after every step that could
/// create keys it excludes; a plugin may create any key, so a filter may not come before one.
fn refuse_filters_before_plugins(configs: &[TransformConfig]) -> Result<(), BuildError> {
    let Some(filter) = configs.iter().position(|c| matches!(c, TransformConfig::Filter(_))) else { return Ok(()) };
    let plugin = configs[filter..].iter().position(|c| matches!(c, TransformConfig::Plugin(_)));
    let Some(plugin) = plugin.map(|p| p + filter) else { return Ok(()) };
    Err(BuildError::new(
        format!("transform[{filter}]"),
        format!(
            "this filter comes before transform[{plugin}] ({}), which may create keys the filter hides in the \
             bucket, so the bucket could never match the source; move the filter after it",
            configs[plugin].describe()
        ),
    ))
}

/// Drops from the listing the keys the diff must not see.
#[derive(Debug, Clone, Default)]
pub struct RemoteFilter {
    /// Each filter, with the folders steps after it create keys in (`""`: anywhere).
    hiding: Vec<(Filter, Vec<String>)>,
}

impl RemoteFilter {
    pub fn keeps(&self, key: &str) -> bool {
        if key.starts_with(RESERVED_FOLDER) {
            return false;
        }
        self.hiding.iter().all(|(filter, created)| filter.keeps(key) || created.iter().any(|to| key.starts_with(to)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let e = ChainSpec::build(&[serde_json::json!({"plugin": "plugins/nothing-here.so"})], base).unwrap_err();
        assert_eq!(e.key, "transform[0].plugin");
        assert!(e.why.contains("plugins/nothing-here.so"), "{e}");
    }

    #[test]
    fn a_filter_before_a_plugin_is_refused_before_the_plugin_is_loaded() {
        let tables = [
            serde_json::json!({"type": "headers", "rules": [{"glob": "**", "cache_control": "x"}]}),
            serde_json::json!({"type": "filter", "exclude": ["drafts/**"]}),
            serde_json::json!({"plugin": "plugins/nothing-here.so"}),
        ];
        let e = ChainSpec::build(&tables, Path::new("/")).unwrap_err();
        assert_eq!(e.key, "transform[1]");
        assert!(e.why.contains("transform[2] (plugin plugins/nothing-here.so)"), "{e}");
    }

    #[test]
    fn remote_keys_a_filter_excludes_are_hidden_unless_a_later_step_creates_them() {
        let tables = [
            serde_json::json!({"type": "filter", "exclude": ["*.map", "latest/**"]}),
            serde_json::json!({"type": "prefix_duplicate", "rules": [{"from": "v2/", "to": "latest/"}]}),
            serde_json::json!({"type": "filter", "include": ["public/**", "latest/**", "v2/**"]}),
        ];
        let remote = ChainSpec::build(&tables, Path::new("/")).unwrap().remote_filter();
        assert!(remote.keeps("public/a.js"));
        assert!(!remote.keeps("public/a.js.map"), "excluded, and no later step creates it");
        assert!(remote.keeps("latest/a.js"), "excluded first, but the duplicate creates keys there");
        assert!(remote.keeps("latest/a.js.map"), "the same: the chain owns `latest/`");
        assert!(!remote.keeps("private/a.js"), "the last filter does not include it");
        assert!(!RemoteFilter::default().keeps(MARKER_KEY));
        assert!(!RemoteFilter::default().keeps(".sitesync/anything"));
    }

    #[test]
    fn the_fingerprint_is_a_digest_and_ignores_filters() {
        let headers = serde_json::json!({"type": "headers", "rules": [{"glob": "**", "cache_control": "max-age=9"}]});
        let filter = serde_json::json!({"type": "filter", "exclude": ["x"]});
        let a = ChainSpec::build(std::slice::from_ref(&headers), Path::new("/")).unwrap();
        let b = ChainSpec::build(&[filter.clone(), headers.clone()], Path::new("/")).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert!(!a.fingerprint().contains("max-age"), "{}", a.fingerprint());
        assert!(ChainSpec::build(&[filter], Path::new("/")).unwrap().fingerprint().is_empty());
    }

    #[test]
    fn the_cache_policy_is_part_of_the_fingerprint_and_off_leaves_it_as_it_was() {
        let headers = serde_json::json!({"type": "headers", "rules": [{"glob": "**", "cache_control": "max-age=9"}]});
        let built = |tables: &[Value]| ChainSpec::build(tables, Path::new("/")).unwrap();
        let plain = built(std::slice::from_ref(&headers));
        let off = built(std::slice::from_ref(&headers)).with_cache_policy(CachePolicy::Off);
        let auto = built(std::slice::from_ref(&headers)).with_cache_policy(CachePolicy::Auto);
        assert_eq!(off.fingerprint(), plain.fingerprint());
        assert_ne!(auto.fingerprint(), plain.fingerprint());
        let alone = built(&[]).with_cache_policy(CachePolicy::Auto);
        assert!(!alone.is_empty() && !alone.fingerprint().is_empty(), "the policy alone is a chain");
        assert_ne!(alone.fingerprint(), auto.fingerprint());
        assert!(built(&[]).with_cache_policy(CachePolicy::Off).fingerprint().is_empty());
    }
}
