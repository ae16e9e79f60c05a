//! The CloudFront Function for the rules S3 cannot serve: JavaScript for the `cloudfront-js-2.0`
//! runtime, attached to a distribution's viewer-request event.
//!
//! It holds every rule up to the last one only a function can serve, in the order they were
//! written: a function runs before the request reaches S3, so a rule it holds must not overtake an
//! earlier rule S3 serves (the first rule that matches wins, as on Netlify). The rules after the
//! last one stay with S3. A path the rules leave alone that ends in `/` gets `index.html`
//! appended, which an S3 REST origin needs and the website endpoint does not mind (a distribution
//! takes one viewer-request function, so this one does both). The text depends on the rules
//! only: the same rules always give the same bytes, and CloudFront's 10 KB limit is checked here.

use std::fmt::Write;

use super::compile::{Compiled, Served};
use super::parse::Condition;

/// CloudFront's limit on a function's code.
pub const MAX_BYTES: usize = 10 * 1024;

/// The rules the function holds: every rule up to the last one only it serves.
pub fn rules_for(compiled: &[Compiled]) -> &[Compiled] {
    let last = compiled.iter().rposition(|c| c.served == Served::Function);
    &compiled[..last.map_or(0, |at| at + 1)]
}

/// The function's source; `folder` (the source folder) is left out of where each rule was
/// written, so the text does not depend on where the site is built.
pub fn source(rules: &[Compiled], folder: &str) -> String {
    let mut out = String::new();
    out.push_str(concat!(
        "// A CloudFront Function (runtime cloudfront-js-2.0) for the viewer-request event, made by\n",
        "// sitesync from the redirect rules S3 cannot serve, with every rule written before them (the\n",
        "// first rule that matches wins); a path no rule takes that ends in \"/\" gets index.html.\n",
        "// Edit _redirects (or [redirects] of sync.toml), not this file: sitesync writes it again.\n",
    ));
    out.push_str("var RULES = [\n");
    for compiled in rules {
        let at = compiled.rule.at.strip_prefix(folder).unwrap_or(&compiled.rule.at).trim_start_matches('/');
        let _ = writeln!(out, "  // {}: {}", at.replace(['\r', '\n'], " "), compiled.rule.shown());
        let _ = writeln!(out, "  {},", literal(compiled));
    }
    out.push_str("];\n");
    out.push_str(RUNTIME);
    out
}

/// One rule as a JavaScript object literal.
fn literal(compiled: &Compiled) -> String {
    let rule = &compiled.rule;
    let text = |s: &str| serde_json::Value::from(s).to_string();
    let list = |condition: Condition, case: fn(&str) -> String| -> String {
        let values = rule.conditions.iter().filter(|(c, _)| *c == condition).flat_map(|(_, v)| v.iter());
        let values: Vec<String> = values.map(|v| text(&case(v))).collect();
        if values.is_empty() { "null".into() } else { format!("[{}]", values.join(", ")) }
    };
    let names: Vec<String> = compiled.pattern.group_names().iter().map(|n| text(n)).collect();
    let query: Vec<String> = rule.query.iter().map(|(k, v)| format!("[{}, {}]", text(k), text(v))).collect();
    let host = compiled.host.as_deref().map_or("null".to_owned(), |h| text(&h.to_ascii_lowercase()));
    format!(
        "{{re: {}, names: [{}], host: {host}, query: [{}], country: {}, language: {}, cookie: {}, status: {}, to: {}}}",
        compiled.pattern.regex(true),
        names.join(", "),
        query.join(", "),
        list(Condition::Country, |v| v.to_ascii_uppercase()),
        list(Condition::Language, |v| v.to_ascii_lowercase()),
        list(Condition::Cookie, str::to_owned),
        rule.status,
        text(&super::compile::location(&rule.to)),
    )
}

/// What every function runs: matching, conditions, filling in the destination.
const RUNTIME: &str = r#"var REASONS = {301: "Moved Permanently", 302: "Found", 303: "See Other", 307: "Temporary Redirect", 308: "Permanent Redirect"};

function handler(event) {
  var request = event.request;
  var path = request.uri;
  try { path = decodeURIComponent(path); } catch (e) {}
  for (var i = 0; i < RULES.length; i++) {
    var params = match(RULES[i], request, path);
    if (params !== null) return apply(RULES[i], request, params);
  }
  return index(request);
}

function match(rule, request, path) {
  var found = rule.re.exec(path);
  if (found === null) return null;
  var params = {};
  for (var i = 0; i < rule.names.length; i++) params[rule.names[i]] = found[i + 1] || "";
  var headers = request.headers || {};
  if (rule.host !== null && (!headers.host || headers.host.value.toLowerCase() !== rule.host)) return null;
  var qs = request.querystring || {};
  for (var q = 0; q < rule.query.length; q++) {
    var got = qs[rule.query[q][0]], want = rule.query[q][1];
    if (!got) return null;
    if (want.charAt(0) === ":") params[want.slice(1)] = got.value;
    else if (got.value !== want) return null;
  }
  if (rule.country !== null) {
    var country = headers["cloudfront-viewer-country"];
    if (!country || rule.country.indexOf(country.value.toUpperCase()) < 0) return null;
  }
  if (rule.language !== null && !speaks(headers["accept-language"], rule.language)) return null;
  if (rule.cookie !== null && !hasCookie(request.cookies || {}, rule.cookie)) return null;
  return params;
}

function speaks(header, languages) {
  if (!header) return false;
  var tags = header.value.toLowerCase().split(",");
  for (var i = 0; i < tags.length; i++) {
    var tag = tags[i].split(";")[0].trim();
    for (var j = 0; j < languages.length; j++) {
      if (tag === languages[j] || tag.indexOf(languages[j] + "-") === 0) return true;
    }
  }
  return false;
}

function hasCookie(cookies, names) {
  for (var i = 0; i < names.length; i++) if (cookies[names[i]]) return true;
  return false;
}

function fill(to, params) {
  return to.replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, function (whole, name) {
    return Object.prototype.hasOwnProperty.call(params, name) ? encodeURI(params[name]) : whole;
  });
}

function apply(rule, request, params) {
  var to = fill(rule.to, params);
  if (rule.status === 200) {
    request.uri = to;
    return index(request);
  }
  if (rule.query.length === 0 && to.indexOf("?") < 0) to += query(request.querystring || {});
  return {statusCode: rule.status, statusDescription: REASONS[rule.status], headers: {location: {value: to}}};
}

function query(qs) {
  var parts = [];
  for (var name in qs) {
    var values = qs[name].multiValue || [qs[name]];
    for (var i = 0; i < values.length; i++) {
      parts.push(values[i].value === "" ? name : name + "=" + values[i].value);
    }
  }
  return parts.length > 0 ? "?" + parts.join("&") : "";
}

function index(request) {
  if (request.uri.charAt(request.uri.length - 1) === "/") request.uri += "index.html";
  return request;
}
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::redirects::compile::{Settings, compile};
    use crate::transform::redirects::parse::parse;

    fn compiled(text: &str) -> Vec<Compiled> {
        let settings = Settings { routing_rules: true, function: true };
        parse(text, "_redirects").unwrap().into_iter().map(|r| compile(r, settings).unwrap()).collect()
    }

    #[test]
    fn the_function_holds_the_rules_up_to_the_last_one_only_it_serves() {
        let rules = compiled("/a /b\n/app/* /index.html 200\n/c /d\n/blog/* /posts/:splat\n");
        let held = rules_for(&rules);
        assert_eq!(held.len(), 2, "{held:?}");
        assert!(rules_for(&compiled("/a /b\n")).is_empty());
    }

    #[test]
    fn the_same_rules_give_the_same_bytes() {
        let text = "/store id=:id /shop/:id 302 Country=us,CA Language=EN\nhttps://old.example.com/* https://example.com/:splat 301!\n";
        let js = source(&compiled(text), "_redirects");
        assert_eq!(js, source(&compiled(text), "_redirects"));
        assert!(js.contains(r#"query: [["id", ":id"]], country: ["US", "CA"], language: ["en"]"#), "{js}");
        assert!(js.contains(r#"host: "old.example.com""#), "{js}");
        assert!(js.len() < MAX_BYTES);
    }
}
