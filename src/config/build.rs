//! Validating merged configuration into the runtime [`Config`].
//!
//! Every error names where the bad value came from (the file, the environment variable or the
//! flag, as figment recorded it) and the key, so a user can fix it without guessing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use figment::Figment;

use super::RawConfig;
use crate::clock::ChangeRule;
use crate::mime::Charset;
use crate::model::Time;
use crate::names::{NameDecoder, NameError};
use crate::s3client::RetryMode;
use crate::scan::{SkipFolders, SymlinkPolicy, WalkOptions};
use crate::shard::Shard;
use crate::target::{ObjectUrl, Target, TargetError};
use crate::transform::ChainSpec;
use crate::transform::redirects::{Context, RedirectsConfig, SiteError};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    Missing(PathBuf),
    #[error("{0}")]
    Invalid(String),
    #[error("{origin}: key `{key}`: {why}")]
    BadValue { origin: String, key: &'static str, why: String },
    #[error("no {0} given (pass it as an argument or set it in sync.toml)")]
    Required(&'static str),
    /// A `[[transform]]` table, or a plugin it names, is wrong: `key` is `transform[2].include`.
    #[error("{origin}: key `{key}`: {why}")]
    Transform { origin: String, key: String, why: String },
    /// `_redirects`, `_headers` or `[redirects]` cannot be served as written.
    #[error(transparent)]
    Site(#[from] SiteError),
}

/// Validated settings of one run.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: PathBuf,
    pub target: Target,
    pub endpoint_url: Option<String>,
    pub path_style: bool,
    pub region: Option<String>,
    pub profile: Option<String>,
    pub local_store: Option<PathBuf>,
    pub workers: usize,
    pub list_parallel: usize,
    /// The manifest of the S3 Inventory read instead of listing the prefix.
    pub remote_inventory: Option<ObjectUrl>,
    pub delete: bool,
    pub max_delete: u64,
    pub max_delete_percent: u8,
    pub rule: ChangeRule,
    pub names: NameDecoder,
    /// The charset of the text types' default Content-Type.
    pub charset: Charset,
    pub multipart_threshold: u64,
    pub multipart_chunk_size: u64,
    pub max_attempts: u32,
    pub retry_mode: RetryMode,
    pub timeout: Duration,
    /// `None`: the default lock, named after the target in the temp directory.
    pub lock_file: Option<PathBuf>,
    pub symlinks: SymlinkPolicy,
    /// The transform chain, validated, its plugin libraries loaded.
    pub chain: ChainSpec,
    pub compare: CompareMode,
    /// The local state's file; `None` with `state = false`.
    pub state: Option<PathBuf>,
    pub trust_state: bool,
    /// This run's part of a split run; `None`: the whole prefix.
    pub shard: Option<Shard>,
    /// The CloudFront distribution to invalidate after a run; `None`: no invalidation.
    pub cloudfront_distribution_id: Option<String>,
    pub invalidate_added: bool,
    pub invalidate_max_paths: usize,
}

/// How "changed" is decided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CompareMode {
    /// Size and mtime only; no file is read (bytes a transform made are still compared by
    /// content: they have no mtime to go by).
    Mtime,
    /// Metadata where it settles the question, the bytes where it cannot.
    #[default]
    Auto,
    /// The bytes of every file whose size matches, every run.
    Checksum,
}

/// Where the state of `identity` (target and source) lives under `dir`.
pub fn state_file_for(dir: &Path, identity: &str) -> PathBuf {
    dir.join(format!("state-{:016x}.bin", crate::target::fnv1a(identity.as_bytes())))
}

/// The default folder: `$XDG_CACHE_HOME/sitesync`, else `~/.cache/sitesync`.
pub fn default_state_dir() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()).map(PathBuf::from);
    let home = || std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".cache"));
    xdg.or_else(home).map(|d| d.join("sitesync"))
}

/// `path` made absolute with its symlinks resolved, whether it exists yet or not: the deepest
/// folder of it that exists is canonicalized and the rest appended as written, so a folder a run
/// is about to make (the embedded store's) is named as it will be once it exists.
pub fn resolved(path: &Path) -> PathBuf {
    use std::path::Component;
    let Ok(absolute) = std::path::absolute(path) else { return path.to_owned() };
    let parts: Vec<Component> = absolute.components().collect();
    for existing in (1..=parts.len()).rev() {
        let Ok(mut real) = std::fs::canonicalize(parts[..existing].iter().collect::<PathBuf>()) else { continue };
        for part in &parts[existing..] {
            match part {
                Component::ParentDir => {
                    real.pop();
                }
                Component::Normal(name) => real.push(name),
                _ => {}
            }
        }
        return real;
    }
    absolute
}

/// Makes the error for `key`, naming where its value came from.
type Bad<'a> = dyn Fn(&'static str, String) -> ConfigError + 'a;

impl Config {
    pub fn build(figment: &Figment) -> Result<Config, ConfigError> {
        let raw: RawConfig = figment.extract().map_err(|e| ConfigError::Invalid(describe(e)))?;
        let bad = |key: &'static str, why: String| ConfigError::BadValue { origin: origin(figment, key), key, why };
        let source = raw.source.clone().ok_or(ConfigError::Required("source directory"))?;
        let destination = raw.destination.as_deref().ok_or(ConfigError::Required("destination"))?;
        let target = Target::parse(destination)
            .map_err(|TargetError { url, why }| bad("destination", format!("{url:?}: {why}")))?;
        check_numbers(&raw, &bad)?;
        let remote_inventory = raw.remote_inventory.as_deref().map(|url| manifest_url(url, &bad)).transpose()?;
        let names = NameDecoder::new(&raw.encoding, &raw.normalize).map_err(|e| match e {
            NameError::UnknownEncoding(_) => bad("encoding", e.to_string()),
            NameError::UnknownNormalization(_) => bad("normalize", e.to_string()),
        })?;
        let charset = Charset::parse(&raw.default_charset).map_err(|why| bad("default_charset", why))?;
        let retry_mode = choice(
            &bad,
            "retry_mode",
            &raw.retry_mode,
            &[("standard", RetryMode::Standard), ("adaptive", RetryMode::Adaptive)],
        )?;
        let symlinks = choice(
            &bad,
            "symlinks",
            &raw.symlinks,
            &[("follow", SymlinkPolicy::Follow), ("skip", SymlinkPolicy::Skip)],
        )?;
        if raw.lock_file.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            return Err(bad("lock_file", "the path is empty".into()));
        }
        if let Some(url) = &raw.endpoint_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(bad("endpoint_url", format!("{url:?} is not an http:// or https:// URL")));
        }
        check_cloudfront(&raw, &bad)?;
        let chain = build_chain(figment, &raw.transform)?;
        let (compare, state) = comparing(&raw, &bad)?;
        let shard = raw.shard.as_deref().map(|text| sharding(text, &chain, &bad)).transpose()?;
        let chain = with_site(figment, &raw.redirects, chain, &source, shard.clone())?;
        Ok(Config::with_state_file(Config {
            source,
            target,
            endpoint_url: raw.endpoint_url,
            path_style: raw.path_style,
            region: raw.region,
            profile: raw.profile,
            local_store: raw.local_store,
            workers: raw.workers,
            list_parallel: raw.list_parallel,
            remote_inventory,
            delete: raw.delete,
            max_delete: raw.max_delete,
            max_delete_percent: raw.max_delete_percent,
            rule: ChangeRule { fudge: Time::from_secs_f64(raw.clock_fudge).0 },
            names,
            charset,
            multipart_threshold: raw.multipart_threshold,
            multipart_chunk_size: raw.multipart_chunk_size,
            max_attempts: raw.max_attempts,
            retry_mode,
            timeout: Duration::from_secs_f64(raw.timeout),
            lock_file: raw.lock_file,
            symlinks,
            chain,
            compare,
            state,
            trust_state: raw.trust_state,
            shard,
            cloudfront_distribution_id: raw.cloudfront_distribution_id,
            invalidate_added: raw.invalidate_added,
            invalidate_max_paths: raw.invalidate_max_paths,
        }))
    }

    /// The store, bucket and prefix a run writes to, as one text: the endpoint (or the embedded
    /// store's folder, or `aws`), the bucket and the prefix, one a line. Runs with the same
    /// identity share a lock and a state.
    pub fn target_identity(&self) -> String {
        let endpoint = match (&self.local_store, &self.endpoint_url) {
            (Some(dir), _) => format!("local-store:{}", resolved(dir).display()),
            (None, Some(url)) => url.trim_end_matches('/').to_owned(),
            (None, None) => "aws".to_owned(),
        };
        let shard = self.shard.as_ref().map(|s| format!("\nshard {s}")).unwrap_or_default();
        format!("{endpoint}\n{}\n{}{shard}", self.target.bucket, self.target.prefix)
    }

    /// The state's folder made into the state's file, named after the target and the source.
    fn with_state_file(mut self) -> Config {
        let identity = self.state_identity();
        self.state = self.state.take().map(|dir| state_file_for(&dir, &identity));
        self
    }

    /// What a local state is for: the target, and the source it is published from.
    pub fn state_identity(&self) -> String {
        let source = std::fs::canonicalize(&self.source).unwrap_or_else(|_| self.source.clone());
        format!("{}\n{}", self.target_identity(), source.display())
    }

    /// How the local walk of this run turns entries into keys; the pipeline and the plan
    /// snapshot tests walk with the same options.
    pub fn walk_options(&self) -> WalkOptions {
        let skip = self.chain.folder_excludes().map(|excludes| SkipFolders(Arc::new(move |f| excludes.excludes(f))));
        // The walk can leave other shards' folders out only when the chain keeps every key in its
        // file's folder, or a duplicate of it, which the shard maps back.
        let shard = self.shard.clone().filter(|_| self.chain.keeps_folders()).map(Arc::new);
        WalkOptions {
            names: self.names,
            symlinks: self.symlinks,
            prefix_len: self.target.prefix.len(),
            skip,
            shard,
            elsewhere: Default::default(),
        }
    }
}

/// The shard `text` names (`K/N`, or `auto/N` with K from `JOB_COMPLETION_INDEX`), tracing the
/// chain's copies back to their files; a rule set under which it cannot is refused, named.
fn sharding(text: &str, chain: &ChainSpec, bad: &Bad<'_>) -> Result<Shard, ConfigError> {
    let job_index = std::env::var("JOB_COMPLETION_INDEX").ok();
    let shard = crate::shard::parse(text, job_index.as_deref()).map_err(|why| bad("shard", why))?;
    shard.mapping_back(chain.duplicate_rules()).map_err(|refused| ConfigError::Transform {
        origin: chain.origin.clone(),
        key: refused.at,
        why: refused.why,
    })
}

/// How changes are decided, and where the local state lives (its folder, for now).
fn comparing(raw: &RawConfig, bad: &Bad<'_>) -> Result<(CompareMode, Option<PathBuf>), ConfigError> {
    let modes = [("auto", CompareMode::Auto), ("mtime", CompareMode::Mtime), ("checksum", CompareMode::Checksum)];
    let compare = choice(bad, "compare", &raw.compare, &modes)?;
    let state = match (raw.state, &raw.state_dir) {
        (false, _) => None,
        (true, Some(dir)) if dir.as_os_str().is_empty() => return Err(bad("state_dir", "the path is empty".into())),
        (true, Some(dir)) if dir.exists() && !dir.is_dir() => {
            return Err(bad("state_dir", format!("{} is not a directory", dir.display())));
        }
        (true, Some(dir)) => Some(dir.clone()),
        (true, None) => default_state_dir(),
    };
    if raw.trust_state && state.is_none() {
        let why = "needs the local state, which is off (state = false, or no home directory)";
        return Err(bad("trust_state", why.into()));
    }
    Ok((compare, state))
}

/// Every number against its range.
fn check_numbers(raw: &RawConfig, bad: &Bad<'_>) -> Result<(), ConfigError> {
    const MIN_PART: u64 = 5 * 1024 * 1024;
    const MAX_PART: u64 = 5 * 1024 * 1024 * 1024;
    in_range(bad, "workers", raw.workers, 1..=4096, "")?;
    in_range(bad, "list_parallel", raw.list_parallel, 1..=256, "")?;
    if raw.max_delete_percent > 100 {
        return Err(bad("max_delete_percent", format!("{} is not a percentage (0 to 100)", raw.max_delete_percent)));
    }
    in_range(bad, "clock_fudge", raw.clock_fudge, 0.0..=86_400.0, " seconds")?;
    if !(MIN_PART..=MAX_PART).contains(&raw.multipart_chunk_size) {
        let why = format!("{} is out of range (5 MiB to 5 GiB)", raw.multipart_chunk_size);
        return Err(bad("multipart_chunk_size", why));
    }
    if raw.multipart_threshold < MIN_PART {
        let why = format!("{} is below S3's 5 MiB minimum part size", raw.multipart_threshold);
        return Err(bad("multipart_threshold", why));
    }
    in_range(bad, "max_attempts", raw.max_attempts, 1..=20, "")?;
    in_range(bad, "timeout", raw.timeout, 0.1..=3600.0, " seconds")
}

/// An inventory's `manifest.json`, as an `s3://BUCKET/KEY` URL.
fn manifest_url(url: &str, bad: &Bad<'_>) -> Result<ObjectUrl, ConfigError> {
    const KEY: &str = "remote_inventory";
    let manifest = ObjectUrl::parse(url).map_err(|TargetError { url, why }| bad(KEY, format!("{url:?}: {why}")))?;
    if manifest.key != "manifest.json" && !manifest.key.ends_with("/manifest.json") {
        return Err(bad(KEY, format!("{url:?} is not an S3 Inventory's manifest.json")));
    }
    Ok(manifest)
}

/// The distribution id is sent in a URL path, so anything but letters and digits (a pasted ARN,
/// a domain name) is refused before the run instead of failing after it.
fn check_cloudfront(raw: &RawConfig, bad: &Bad<'_>) -> Result<(), ConfigError> {
    if let Some(id) = &raw.cloudfront_distribution_id
        && (id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        let why = format!("{id:?} is not a distribution id (letters and digits, like \"E2QWRUHAPOMQZL\")");
        return Err(bad("cloudfront_distribution_id", why));
    }
    // More than CloudFront takes in one invalidation would never fold a folder.
    in_range(bad, "invalidate_max_paths", raw.invalidate_max_paths, 1..=3000, "")
}

/// `value` within `range` (a float must be finite too), or the error for `key`.
fn in_range<T: PartialOrd + std::fmt::Display>(
    bad: &Bad<'_>,
    key: &'static str,
    value: T,
    range: std::ops::RangeInclusive<T>,
    unit: &str,
) -> Result<(), ConfigError> {
    // A NaN is in no range.
    if range.contains(&value) {
        return Ok(());
    }
    Err(bad(key, format!("{value} is out of range ({} to {}{unit})", range.start(), range.end())))
}

/// The value one of `choices` names, or the error for `key` listing them.
fn choice<T: Copy>(bad: &Bad<'_>, key: &'static str, value: &str, choices: &[(&str, T)]) -> Result<T, ConfigError> {
    if let Some((_, chosen)) = choices.iter().find(|(name, _)| *name == value) {
        return Ok(*chosen);
    }
    let names: Vec<String> = choices.iter().map(|(name, _)| format!("{name:?}")).collect();
    Err(bad(key, format!("{value:?} is not {}", names.join(" or "))))
}

/// Validates the `[[transform]]` tables and loads the plugins they list, in order. Relative plugin
/// paths start from the directory of the config file that names them.
fn build_chain(figment: &Figment, tables: &[serde_json::Value]) -> Result<ChainSpec, ConfigError> {
    let base = config_folder(figment, "transform");
    let mut chain = ChainSpec::build(tables, &base).map_err(|e| ConfigError::Transform {
        origin: origin(figment, "transform"),
        key: e.key,
        why: e.why,
    })?;
    chain.origin = origin(figment, "transform");
    Ok(chain)
}

/// The chain with the steps of the site's `_redirects` and `_headers`, when it has any.
fn with_site(
    figment: &Figment,
    redirects: &RedirectsConfig,
    chain: ChainSpec,
    source: &Path,
    shard: Option<Shard>,
) -> Result<ChainSpec, ConfigError> {
    let base = config_folder(figment, "redirects");
    let cx = Context { source, base: &base, origin: origin(figment, "redirects"), chain: &chain, shard };
    match redirects.build(&cx)? {
        Some(site) => Ok(chain.with_site(site)),
        None => Ok(chain),
    }
}

/// The folder of the config file that set `key`, where its relative paths start; empty (the
/// working directory) when no file set it.
fn config_folder(figment: &Figment, key: &str) -> PathBuf {
    let file = figment.find_metadata(key).and_then(|md| match &md.source {
        Some(figment::Source::File(path)) => Some(path.clone()),
        _ => None,
    });
    file.as_deref().and_then(Path::parent).map(Path::to_owned).unwrap_or_default()
}

/// Where figment found a key: a file path, an environment variable, or the command line.
fn origin(figment: &Figment, key: &str) -> String {
    match figment.find_metadata(key) {
        Some(md) => match &md.source {
            Some(figment::Source::File(path)) => path.display().to_string(),
            _ if md.name.contains("environment") => {
                format!("environment variable SITESYNC_{}", key.to_ascii_uppercase())
            }
            _ if md.name.contains("Overrides") => "command line".into(),
            _ if md.name.contains("RawConfig") => "built-in default".into(),
            _ => md.name.to_string(),
        },
        None => "configuration".into(),
    }
}

/// One line for a figment error: the source, the key and what is wrong with it.
fn describe(error: figment::Error) -> String {
    use figment::error::Kind;
    let mut lines = Vec::new();
    for e in error {
        let mut key = e.path.clone();
        if let Kind::UnknownField(field, _) = &e.kind
            && key.last() != Some(field)
        {
            key.push(field.clone());
        }
        let origin = match e.metadata.as_ref() {
            Some(md) => match &md.source {
                Some(figment::Source::File(path)) => path.display().to_string(),
                _ if md.name.contains("environment") && !key.is_empty() => {
                    format!("environment variable SITESYNC_{}", key.join("_").to_ascii_uppercase())
                }
                _ if md.name.contains("Overrides") => "command line".into(),
                _ if md.name.contains("RawConfig") => "built-in default".into(),
                _ => md.name.to_string(),
            },
            None => "configuration".into(),
        };
        let line = match &e.kind {
            Kind::UnknownField(..) => format!("{origin}: unknown key `{}`", key.join(".")),
            kind if !key.is_empty() => format!("{origin}: key `{}`: {kind}", key.join(".")),
            kind => format!("{origin}: {}", one_line(&kind.to_string())),
        };
        lines.push(line);
    }
    lines.join("\n")
}

/// A TOML parse error in one line: its position, then what is wrong, without the code frame
/// ("TOML parse error at line 1, column 13: invalid array, expected `]`").
fn one_line(message: &str) -> String {
    let mut lines = message.lines().map(str::trim_end).filter(|l| {
        let frame =
            l.trim_start().starts_with('|') || l.split('|').next().is_some_and(|n| n.trim().parse::<u32>().is_ok());
        !l.trim().is_empty() && !frame
    });
    let first = lines.next().unwrap_or_default().to_owned();
    let rest: Vec<&str> = lines.map(str::trim).collect();
    if rest.is_empty() { first } else { format!("{first}: {}", rest.join(", ")) }
}
