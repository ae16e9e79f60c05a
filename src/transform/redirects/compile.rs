//! Each redirect rule compiled to the cheapest thing that serves it.
//!
//! - An exact path redirected with 301 (the default) becomes an **object** at that key (a path
//!   ending in `/` is the folder's `index.html`) carrying `x-amz-website-redirect-location`: the
//!   website endpoint answers it with a 301, and it costs nothing but a key.
//! - `/prefix/*` → `/other/:splat` (or to one path) becomes a **routing rule** of the bucket's
//!   website configuration, when the site lets sitesync own them (`routing_rules = true`).
//! - Anything else S3 cannot serve (a 200 rewrite, a `:placeholder`, a query, host or country
//!   condition, a 302 on one path) goes to the **CloudFront Function**, when one is asked for.
//!
//! A rule nothing can serve (a Netlify Identity role, a 404 page, a proxy to another host), or one
//! only a function or a routing rule could serve when neither is enabled, is refused with its line
//! and what would serve it. `to` is written into `Location` as given: it is the public URL the
//! visitor sees, so only bytes HTTP cannot carry (non-ASCII) are percent-encoded.

use super::parse::{Condition, Rule};
use super::pattern::Pattern;
use crate::transform::RESERVED_FOLDER;

/// What the site allows besides redirect objects.
#[derive(Debug, Clone, Copy, Default)]
pub struct Settings {
    /// `[redirects] routing_rules = true`: sitesync owns the bucket's routing rules.
    pub routing_rules: bool,
    /// `[redirects] cloudfront_function` is set.
    pub function: bool,
}

/// An object whose only job is to redirect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectObject {
    /// The key, relative to the prefix.
    pub key: String,
    /// Its `x-amz-website-redirect-location`.
    pub location: String,
    /// Where the rule was written.
    pub at: String,
}

/// How a routing rule rewrites the key it matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replace {
    /// `ReplaceKeyPrefixWith`: the matched prefix replaced, the rest kept.
    Prefix(String),
    /// `ReplaceKeyWith`: every key under the prefix to one.
    Key(String),
}

/// A routing rule of the bucket's website configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingRule {
    /// `KeyPrefixEquals`, relative to the target prefix.
    pub prefix: String,
    pub protocol: Option<String>,
    pub host: Option<String>,
    pub replace: Replace,
    pub code: u16,
    pub at: String,
}

/// What serves one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    Object(RedirectObject),
    Routing(RoutingRule),
    Function,
}

/// A rule with what serves it, and what the CloudFront Function needs to serve it too.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub rule: Rule,
    pub pattern: Pattern,
    /// The host of a `from` written as a URL.
    pub host: Option<String>,
    pub served: Served,
}

/// The statuses a redirect or a rewrite may have.
const REDIRECTS: [u16; 5] = [301, 302, 303, 307, 308];

pub fn compile(rule: Rule, settings: Settings) -> Result<Compiled, String> {
    let (host, path) = split_url(&rule.from);
    let host = host.map(str::to_owned);
    let pattern = Pattern::parse(path, false)?;
    check_target(&rule, &pattern)?;
    let simple = host.is_none() && rule.query.is_empty() && rule.conditions.is_empty();
    let served = match (pattern.exact(), pattern.prefix()) {
        (Some(path), _) if simple && rule.status == 301 => Served::Object(object(path, &rule)?),
        (_, Some(prefix)) if simple && REDIRECTS.contains(&rule.status) && routable(&rule.to) => {
            match (settings.routing_rules, settings.function) {
                (true, _) => Served::Routing(routing(prefix, &rule)),
                (false, true) => Served::Function,
                (false, false) => {
                    return Err(format!(
                        "{} is a prefix redirect, which S3 serves as a routing rule of the bucket's website \
                         configuration: set `routing_rules = true` in [redirects] of sync.toml (sitesync then owns \
                         the bucket's routing rules), or `cloudfront_function = \"FILE\"` to serve it from a \
                         CloudFront Function",
                        rule.shown()
                    ));
                }
            }
        }
        _ if settings.function => Served::Function,
        _ => {
            return Err(format!(
                "{} is {}, which S3 cannot serve; a CloudFront Function can: set `cloudfront_function = \"FILE\"` \
                 in [redirects] of sync.toml, and sitesync writes one",
                rule.shown(),
                needs_function(&rule, &pattern, host.is_some())
            ));
        }
    };
    Ok(Compiled { rule, pattern, host, served })
}

/// `https://host/path` as (`host`, `/path`); a path as it is.
fn split_url(text: &str) -> (Option<&str>, &str) {
    let Some(rest) = text.strip_prefix("https://").or_else(|| text.strip_prefix("http://")) else {
        return (None, text);
    };
    match rest.find('/') {
        Some(at) => (Some(&rest[..at]), &rest[at..]),
        None => (Some(rest), "/"),
    }
}

/// Refuses what nothing can serve, and a target naming a placeholder the source does not capture.
fn check_target(rule: &Rule, pattern: &Pattern) -> Result<(), String> {
    if rule.conditions.iter().any(|(c, _)| *c == Condition::Role) {
        return Err(format!(
            "{}: a Role condition asks for a Netlify Identity login, which no S3 bucket or CDN function can check",
            rule.shown()
        ));
    }
    if rule.status != 200 && !REDIRECTS.contains(&rule.status) {
        return Err(format!(
            "{}: status {} serves another path's page under this one, which neither S3 nor a CloudFront Function \
             can do (a function cannot send an object's body): use the bucket's error document, or a CloudFront \
             custom error response",
            rule.shown(),
            rule.status
        ));
    }
    if rule.status == 200 && split_url(&rule.to).0.is_some() {
        return Err(format!(
            "{}: a 200 to another host is a proxy, which needs a CloudFront origin and behavior for that host",
            rule.shown()
        ));
    }
    let mut captured = pattern.group_names();
    captured.extend(rule.query.iter().filter_map(|(_, v)| v.strip_prefix(':').map(str::to_owned)));
    for name in placeholders(&rule.to) {
        if !captured.contains(&name) {
            return Err(format!("{}: the destination's :{name} is not captured by the source", rule.shown()));
        }
    }
    Ok(())
}

/// The `:name`s a destination holds.
pub fn placeholders(to: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (at, _) in to.match_indices(':') {
        let name: String = to[at + 1..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            names.push(name);
        }
    }
    names
}

/// Why a rule needs a CloudFront Function, in words.
fn needs_function(rule: &Rule, pattern: &Pattern, host: bool) -> String {
    if rule.status == 200 {
        return "a 200 rewrite (another key's content served under this path)".into();
    }
    if host {
        return "a rule for one host".into();
    }
    if !rule.query.is_empty() {
        return "a rule on the query string".into();
    }
    if let Some((condition, _)) = rule.conditions.first() {
        return format!("a rule with a {} condition", condition.name());
    }
    if pattern.has_params() {
        return "a rule with :placeholders".into();
    }
    if pattern.exact().is_some() {
        return format!("a {} redirect of one path (the redirect an object carries is always a 301)", rule.status);
    }
    "a prefix redirect whose destination is not the prefix's rest (`:splat` ending it) or one path".into()
}

/// Whether a prefix rule's destination is one a routing rule can write: no placeholder but a
/// `:splat` ending it, and no query string.
fn routable(to: &str) -> bool {
    let path = split_url(to).1;
    let rest = path.strip_suffix(":splat").unwrap_or(path);
    placeholders(rest).is_empty() && !to.contains('?')
}

fn object(path: &str, rule: &Rule) -> Result<RedirectObject, String> {
    let mut key = path[1..].to_owned();
    if key.is_empty() || key.ends_with('/') {
        key.push_str("index.html");
    }
    if key.split('/').any(|s| s == "." || s == "..") {
        return Err(format!("{path:?}: a browser resolves `.` and `..` before asking, so it never asks for this key"));
    }
    if key.starts_with(RESERVED_FOLDER) {
        return Err(format!("{path:?}: {RESERVED_FOLDER} is reserved for sitesync's own objects"));
    }
    let location = location(&rule.to);
    (crate::model::fields::Field::WebsiteRedirectLocation.spec().check)(&location)?;
    Ok(RedirectObject { key, location, at: rule.at.clone() })
}

fn routing(prefix: &str, rule: &Rule) -> RoutingRule {
    let (host, path) = split_url(&rule.to);
    let protocol = host.map(|_| rule.to.split(':').next().unwrap_or("https").to_owned());
    let path = location(path);
    let path = path.strip_prefix('/').unwrap_or(&path);
    let replace = match path.strip_suffix(":splat") {
        Some(prefix) => Replace::Prefix(prefix.to_owned()),
        None => Replace::Key(path.to_owned()),
    };
    RoutingRule {
        prefix: prefix[1..].to_owned(),
        protocol,
        host: host.map(str::to_owned),
        replace,
        code: rule.status,
        at: rule.at.clone(),
    }
}

/// A destination as `Location` carries it: as given, with the bytes HTTP cannot carry (non-ASCII,
/// controls, spaces) percent-encoded.
pub fn location(to: &str) -> String {
    const UNSAFE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b' ').add(b'"').add(b'<').add(b'>');
    percent_encoding::utf8_percent_encode(to, UNSAFE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(from: &str, to: &str, status: u16) -> Rule {
        Rule {
            at: "_redirects line 1".into(),
            from: from.into(),
            query: Vec::new(),
            to: to.into(),
            status,
            force: false,
            conditions: Vec::new(),
        }
    }

    fn served(rule: Rule, settings: Settings) -> Result<Served, String> {
        compile(rule, settings).map(|c| c.served)
    }

    const ALL: Settings = Settings { routing_rules: true, function: true };

    #[test]
    fn exact_301s_are_objects() {
        let got = served(rule("/old", "/new/", 301), Settings::default()).unwrap();
        let object = RedirectObject { key: "old".into(), location: "/new/".into(), at: "_redirects line 1".into() };
        assert_eq!(got, Served::Object(object));
        let Served::Object(o) = served(rule("/docs/", "https://docs.example.com/", 301), ALL).unwrap() else {
            panic!()
        };
        assert_eq!((o.key.as_str(), o.location.as_str()), ("docs/index.html", "https://docs.example.com/"));
        let Served::Object(o) = served(rule("/caf%C3%A9", "/caf\u{e9}/", 301), ALL).unwrap() else { panic!() };
        assert_eq!((o.key.as_str(), o.location.as_str()), ("caf\u{e9}", "/caf%C3%A9/"));
        assert_eq!(
            served(rule("/", "/home/", 301), ALL).unwrap(),
            served(rule("/index.html", "/home/", 301), ALL).unwrap()
        );
    }

    #[test]
    fn prefix_rules_are_routing_rules_only_when_the_site_owns_them() {
        let got = served(rule("/blog/*", "/posts/:splat", 301), ALL).unwrap();
        let Served::Routing(r) = got else { panic!("{got:?}") };
        assert_eq!((r.prefix.as_str(), &r.replace, r.code), ("blog/", &Replace::Prefix("posts/".into()), 301));
        let Served::Routing(r) = served(rule("/x/*", "https://example.com/y", 302), ALL).unwrap() else { panic!() };
        assert_eq!((r.protocol.as_deref(), r.host.as_deref()), (Some("https"), Some("example.com")));
        assert_eq!(r.replace, Replace::Key("y".into()));
        let only_function = Settings { routing_rules: false, function: true };
        assert_eq!(served(rule("/blog/*", "/posts/:splat", 301), only_function).unwrap(), Served::Function);
        let e = served(rule("/blog/*", "/posts/:splat", 301), Settings::default()).unwrap_err();
        assert!(e.contains("routing_rules = true") && e.contains("cloudfront_function"), "{e}");
    }

    #[test]
    fn what_s3_cannot_serve_needs_the_function() {
        let none = Settings::default();
        for (r, why) in [
            (rule("/app/*", "/index.html", 200), "a 200 rewrite"),
            (rule("/old", "/new", 302), "a 302 redirect of one path"),
            (rule("/blog/:year/:slug", "/posts/:year/:slug", 301), ":placeholders"),
            (rule("/docs/*", "/new/:splat.html", 301), "not the prefix's rest"),
        ] {
            let e = served(r.clone(), none).unwrap_err();
            assert!(e.contains(why) && e.contains("cloudfront_function = \"FILE\""), "{e}");
            assert_eq!(served(r, ALL).unwrap(), Served::Function);
        }
        let mut country = rule("/", "/fr/", 302);
        country.conditions.push((Condition::Country, vec!["fr".into()]));
        assert!(served(country, none).unwrap_err().contains("a Country condition"));
    }

    #[test]
    fn what_nothing_can_serve_is_refused_whatever_is_enabled() {
        let e = served(rule("/shop", "/closed.html", 404), ALL).unwrap_err();
        assert!(e.contains("status 404") && e.contains("error document"), "{e}");
        let e = served(rule("/api/*", "https://api.example.com/:splat", 200), ALL).unwrap_err();
        assert!(e.contains("proxy"), "{e}");
        let mut role = rule("/admin/*", "/login", 302);
        role.conditions.push((Condition::Role, vec!["admin".into()]));
        assert!(served(role, ALL).unwrap_err().contains("Netlify Identity"));
        assert!(served(rule("/a", "/b/:id", 301), ALL).unwrap_err().contains(":id is not captured"));
        assert!(served(rule("/.sitesync/x", "/b", 301), ALL).unwrap_err().contains("reserved"));
        assert!(served(rule("/a/../b", "/b", 301), ALL).unwrap_err().contains("never asks"));
    }
}
