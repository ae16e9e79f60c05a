//! `_redirects` and `_headers`: the files Netlify and Cloudflare Pages read at a site's root,
//! compiled to what S3 website hosting serves, as a built-in step of the chain.
//!
//! Sites leaving those hosts bring them, and generators emit redirect lists; today they would be
//! published as plain files and their rules lost. Both files (and `[redirects] rules` in
//! `sync.toml`) are read and checked when the configuration is built, before anything is sent:
//! a line that does not read, or a rule nothing sitesync can make would serve, stops the run with
//! the file and the line. Each rule is compiled ([`compile`]) to a redirect object, a routing rule
//! of the bucket's website configuration, or the CloudFront Function ([`cloudfront`]); `_headers`
//! values S3 stores are set on the keys they match ([`headers_file`]). The chain leaves the files
//! themselves out before any step (they are never published) and runs [`SiteStep`] last (after
//! the `headers` rules, so `_headers` wins where both set a field). The routing rules are set
//! after the sync, by `after::website`.

mod cloudfront;
mod compile;
mod headers_file;
mod page;
mod parse;
mod pattern;
mod shadow;
mod step;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use compile::{RedirectObject, Replace, RoutingRule};
pub use step::SiteStep;

use crate::keys::shard::Shard;
use compile::{Compiled, Served, Settings};
use headers_file::HeadersFile;

/// The site's redirects file, at the source root.
pub const REDIRECTS_FILE: &str = "_redirects";
/// The site's headers file, at the source root.
pub const HEADERS_FILE: &str = "_headers";
/// The keys of both: never published.
pub const SITE_FILES: [&str; 2] = [REDIRECTS_FILE, HEADERS_FILE];
/// The most routing rules S3 takes in a bucket's website configuration.
pub const MAX_ROUTING_RULES: usize = 50;

/// `[redirects]` of `sync.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedirectsConfig {
    /// Read `_redirects` and `_headers` at the source root (and never publish them). With
    /// `false`, they are published like any file.
    pub files: bool,
    /// More rules, after those of `_redirects`: `{ from, to, status }`.
    pub rules: Vec<RuleConfig>,
    /// Serve `/prefix/*` rules as routing rules of the bucket's website configuration: sitesync
    /// then owns the bucket's routing rules (its index and error documents are kept).
    pub routing_rules: bool,
    /// Write a CloudFront Function serving the rules S3 cannot to this file (relative to the
    /// config file), instead of refusing them.
    pub cloudfront_function: Option<PathBuf>,
    /// Refuse, instead of warning about, `_headers` values S3 cannot store (`--strict`).
    pub strict: bool,
}

impl Default for RedirectsConfig {
    fn default() -> Self {
        RedirectsConfig {
            files: true,
            rules: Vec::new(),
            routing_rules: false,
            cloudfront_function: None,
            strict: false,
        }
    }
}

/// A rule of `[redirects] rules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub from: String,
    pub to: String,
    #[serde(default = "default_status")]
    pub status: u16,
}

fn default_status() -> u16 {
    301
}

/// A redirects or headers file, or rule, that cannot be used; names the file and the line.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    /// `at` is `public/_redirects line 4`, or a key of `sync.toml`.
    #[error("{at}: {why}")]
    Rule { at: String, why: String },
    #[error("{}: {why}", path.display())]
    File { path: PathBuf, why: String },
    #[error("{}: cannot write the CloudFront Function: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

/// What building the rules needs to know of the rest of the configuration.
pub struct Context<'a> {
    pub source: &'a Path,
    /// The folder of the config file: where a relative `cloudfront_function` goes.
    pub base: &'a Path,
    /// Where `[redirects]` was written (the config file), for messages.
    pub origin: String,
    pub chain: &'a crate::transform::ChainSpec,
    pub shard: Option<Shard>,
}

/// The CloudFront Function to write.
#[derive(Debug, Clone)]
pub struct Function {
    pub path: PathBuf,
    pub source: String,
    /// How many rules it holds.
    pub rules: usize,
}

/// Everything the site's rules make: redirect objects, routing rules, the function, headers.
#[derive(Debug)]
pub struct SiteRules {
    /// Sorted by key, one per key.
    objects: Vec<RedirectObject>,
    /// `Some` when sitesync owns the bucket's routing rules (an empty list clears them).
    routing: Option<Vec<RoutingRule>>,
    function: Option<Function>,
    headers: HeadersFile,
    /// The rules that apply where files of the site exist.
    shadowing: Vec<shadow::Shadowing>,
    /// The files are read, so they are left out of what is published.
    files: bool,
    shard: Option<Shard>,
}

impl RedirectsConfig {
    /// Reads the files and compiles every rule; `None` when there is nothing to do.
    pub fn build(&self, cx: &Context<'_>) -> Result<Option<SiteRules>, SiteError> {
        let redirects_file = cx.source.join(REDIRECTS_FILE);
        let headers_file = cx.source.join(HEADERS_FILE);
        let mut rules = Vec::new();
        let mut headers = HeadersFile::default();
        if self.files {
            if let Some(text) = read(&redirects_file)? {
                rules = parse::parse(&text, &redirects_file.display().to_string())?;
            }
            if let Some(text) = read(&headers_file)? {
                let (parsed, warnings) = HeadersFile::parse(&text, &headers_file.display().to_string(), self.strict)?;
                warnings.iter().for_each(|w| tracing::warn!("{w}"));
                headers = parsed;
            }
        }
        for (i, rule) in self.rules.iter().enumerate() {
            let at = format!("{}: key `redirects.rules[{i}]`", cx.origin);
            let parsed = parse::configured(&rule.from, &rule.to, rule.status, &at);
            rules.push(parsed.map_err(|why| SiteError::Rule { at, why })?);
        }
        let nothing = rules.is_empty() && headers.is_empty() && !self.routing_rules;
        if nothing && self.cloudfront_function.is_none() && !(self.files && exists_any(cx.source)) {
            return Ok(None);
        }
        let settings = Settings { routing_rules: self.routing_rules, function: self.cloudfront_function.is_some() };
        let compiled = rules
            .into_iter()
            .map(|rule| {
                let at = rule.at.clone();
                compile::compile(rule, settings).map_err(|why| SiteError::Rule { at, why })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let objects = objects(&compiled, cx)?;
        let routing = self.routing_rules.then(|| routing(&compiled)).transpose()?;
        let function = match &self.cloudfront_function {
            Some(path) => Some(function(&compiled, cx.base.join(path), cx.source)?),
            None => None,
        };
        let shadowing = shadow::of(&compiled);
        let (files, shard) = (self.files, cx.shard.clone());
        Ok(Some(SiteRules { objects, routing, function, headers, shadowing, files, shard }))
    }
}

/// The text of a site file, `None` when there is none.
fn read(path: &Path) -> Result<Option<String>, SiteError> {
    let bad = |why: String| SiteError::File { path: path.to_owned(), why };
    // Nothing there, or a source that is not a readable folder: the run refuses the source itself
    // when it starts, with the error that belongs to it.
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(None);
    }
    let meta = std::fs::metadata(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    if !meta.is_file() {
        return Err(bad("not a regular file".into()));
    }
    let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    String::from_utf8(bytes).map(Some).map_err(|e| bad(format!("not UTF-8 (at byte {})", e.utf8_error().valid_up_to())))
}

fn exists_any(source: &Path) -> bool {
    SITE_FILES.iter().any(|name| std::fs::symlink_metadata(source.join(name)).is_ok())
}

/// The redirect objects, sorted, one per key. A key named twice keeps its first rule (the first
/// that matches wins, on Netlify too), with a warning; one under a routing rule's prefix would
/// never be served, which is a warning too. A key a filter of the chain hides, or that a
/// `headers` rule also redirects, is refused.
fn objects(compiled: &[Compiled], cx: &Context<'_>) -> Result<Vec<RedirectObject>, SiteError> {
    let hidden = cx.chain.remote_filter();
    let mut objects: Vec<RedirectObject> = Vec::new();
    for c in compiled {
        let Served::Object(object) = &c.served else { continue };
        let refuse = |why: String| SiteError::Rule { at: object.at.clone(), why };
        if !hidden.keeps(&object.key) {
            return Err(refuse(format!(
                "{}: a filter of the chain hides the key {:?} in the bucket, so its object could never be deleted \
                 again; remove the rule or the exclude",
                c.rule.shown(),
                object.key
            )));
        }
        if let Some(rule) = cx.chain.redirecting_rule(&object.key) {
            return Err(refuse(format!(
                "{}: {rule} of the chain also redirects {:?} (website_redirect_location); keep one of the two",
                c.rule.shown(),
                object.key
            )));
        }
        if let Some(first) = objects.iter().find(|o| o.key == object.key) {
            tracing::warn!(
                "{}: {:?} is redirected by {} already, which wins; ignored",
                object.at,
                object.key,
                first.at
            );
            continue;
        }
        let under = compiled.iter().find_map(|other| match &other.served {
            Served::Routing(r) if object.key.starts_with(&r.prefix) => Some(r.at.as_str()),
            _ => None,
        });
        if let Some(routing) = under {
            tracing::warn!(
                "{}: {:?} is under the prefix of the routing rule from {routing}, which the bucket applies first: \
                 this redirect object is never served",
                object.at,
                object.key
            );
        }
        objects.push(object.clone());
    }
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(objects)
}

fn routing(compiled: &[Compiled]) -> Result<Vec<RoutingRule>, SiteError> {
    let rules: Vec<RoutingRule> = compiled
        .iter()
        .filter_map(|c| match &c.served {
            Served::Routing(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    if rules.len() > MAX_ROUTING_RULES {
        return Err(SiteError::Rule {
            at: rules[MAX_ROUTING_RULES].at.clone(),
            why: format!(
                "{} prefix rules make {} routing rules, but S3 takes at most {MAX_ROUTING_RULES} in a bucket's \
                 website configuration; serve the rest from a CloudFront Function (routing_rules = false, \
                 cloudfront_function = \"FILE\")",
                rules.len(),
                rules.len()
            ),
        });
    }
    Ok(rules)
}

fn function(compiled: &[Compiled], path: PathBuf, source: &Path) -> Result<Function, SiteError> {
    let held = cloudfront::rules_for(compiled);
    let source = cloudfront::source(held, &source.display().to_string());
    if source.len() > cloudfront::MAX_BYTES {
        return Err(SiteError::File {
            path,
            why: format!(
                "the CloudFront Function for {} rules is {} bytes, over CloudFront's limit of {} bytes; move \
                 rules S3 serves (exact 301s, prefixes) after the last rule only a function can serve",
                held.len(),
                source.len(),
                cloudfront::MAX_BYTES
            ),
        });
    }
    Ok(Function { path, source, rules: held.len() })
}

impl SiteRules {
    /// The redirect objects of every shard, sorted by key.
    pub fn objects(&self) -> &[RedirectObject] {
        &self.objects
    }

    /// Whether this run makes `key` (its shard owns it).
    pub fn owns(&self, key: &str) -> bool {
        self.shard.as_ref().is_none_or(|s| s.owns(key))
    }

    /// The routing rules to set, when sitesync owns them and this run sets them (with `--shard`,
    /// only shard 1 does).
    pub fn routing_rules(&self) -> Option<&[RoutingRule]> {
        let setter = self.shard.as_ref().is_none_or(|s| s.index == 1);
        self.routing.as_deref().filter(|_| setter)
    }

    pub fn function(&self) -> Option<&Function> {
        self.function.as_ref()
    }

    /// Whether the files are left out of what is published.
    pub fn hides_files(&self) -> bool {
        self.files
    }

    /// What the chain marker records: the headers `_headers` sets, by pattern.
    pub fn recorded(&self) -> Option<serde_json::Value> {
        (!self.headers.is_empty()).then(|| serde_json::json!({ "_headers": self.headers.recorded() }))
    }

    /// Writes the CloudFront Function, when one is configured and its file does not hold it yet.
    pub fn write_function(&self) -> Result<(), SiteError> {
        let Some(f) = &self.function else { return Ok(()) };
        if std::fs::read(&f.path).is_ok_and(|held| held == f.source.as_bytes()) {
            return Ok(());
        }
        std::fs::write(&f.path, &f.source).map_err(|source| SiteError::Write { path: f.path.clone(), source })?;
        tracing::info!(
            "wrote {}: a CloudFront Function for {} redirect rules; publish it and associate it with the \
             distribution's viewer-request event",
            f.path.display(),
            f.rules
        );
        Ok(())
    }
}
