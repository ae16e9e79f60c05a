//! `_redirects`, read as Netlify reads it: one rule a line, `FROM [QUERY..] TO [STATUS[!]]
//! [CONDITIONS..]`, fields split by whitespace, `#` starting a comment (a whole line, or the rest
//! of one), blank lines skipped.
//!
//! `FROM` is a path (or an `http(s)://host/path` URL, a rule for one host); `QUERY` are
//! `key=value` pairs the request's query must hold (`value` may be a `:placeholder`); `TO` is the
//! first field starting with `/`, `http://` or `https://`; `STATUS` defaults to 301, and `!`
//! after it forces the rule; `CONDITIONS` are `Country=..`, `Language=..`, `Cookie=..` or
//! `Role=..`, each a comma-separated list. Whatever does not read as one of these is refused with
//! its line number: nothing is skipped silently. The same rules may be written in `sync.toml`
//! (`[redirects] rules`), read into the same [`Rule`].

use super::SiteError;

/// A condition of a rule besides its path and query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Country,
    Language,
    Cookie,
    Role,
}

impl Condition {
    fn named(name: &str) -> Option<Condition> {
        let all = [Condition::Country, Condition::Language, Condition::Cookie, Condition::Role];
        all.into_iter().find(|c| c.name().eq_ignore_ascii_case(name))
    }

    pub fn name(self) -> &'static str {
        match self {
            Condition::Country => "Country",
            Condition::Language => "Language",
            Condition::Cookie => "Cookie",
            Condition::Role => "Role",
        }
    }
}

/// One redirect rule, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Where it was written: `public/_redirects line 3`, or a key of `sync.toml`.
    pub at: String,
    pub from: String,
    pub query: Vec<(String, String)>,
    pub to: String,
    pub status: u16,
    /// `!`: applies even where a file exists (Netlify's "shadowing" turned off).
    pub force: bool,
    pub conditions: Vec<(Condition, Vec<String>)>,
}

impl Rule {
    /// `FROM -> TO (STATUS)`, for messages.
    pub fn shown(&self) -> String {
        format!("{} -> {} ({}{})", self.from, self.to, self.status, if self.force { "!" } else { "" })
    }
}

/// The rules of a `_redirects` file; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Vec<Rule>, SiteError> {
    let mut rules = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let at = format!("{file} line {}", index + 1);
        let mut fields: Vec<&str> = line.split_whitespace().collect();
        if let Some(comment) = fields.iter().position(|f| f.starts_with('#')) {
            fields.truncate(comment);
        }
        if fields.is_empty() {
            continue;
        }
        let rule = rule(&fields, &at).map_err(|why| SiteError::Rule { at: at.clone(), why })?;
        rules.push(rule);
    }
    Ok(rules)
}

fn rule(fields: &[&str], at: &str) -> Result<Rule, String> {
    let (from, rest) = fields.split_first().expect("a line with fields");
    if !(from.starts_with('/') || is_url(from)) {
        return Err(format!("{from:?} is not a path (starting with '/') or an http(s):// URL"));
    }
    if rest.first().is_some_and(|f| status(f).is_some()) || rest.is_empty() {
        return Err(format!(
            "{from:?} has no destination: expected FROM TO [STATUS], TO a path starting with '/' or an http(s):// URL"
        ));
    }
    let Some(to_at) = rest.iter().position(|f| f.starts_with('/') || is_url(f)) else {
        return Err(format!("no destination: {:?} is not a path starting with '/' or an http(s):// URL", rest[0]));
    };
    let query: Vec<(String, String)> = rest[..to_at]
        .iter()
        .map(|f| pair(f, "a query parameter KEY=VALUE, or the destination"))
        .collect::<Result<_, _>>()?;
    let mut after = &rest[to_at + 1..];
    let (status, force) = match after.first().and_then(|f| status(f)) {
        Some(found) => {
            after = &after[1..];
            found
        }
        None if after.first().is_some_and(|f| !f.contains('=')) => {
            return Err(format!("{:?} is not a status (three digits, `!` to force)", after[0]));
        }
        None => (301, false),
    };
    let mut conditions = Vec::new();
    for field in after {
        let (name, value) = pair(field, "a condition (Country=.., Language=.., Cookie=.., Role=..)")?;
        let condition = Condition::named(&name)
            .ok_or_else(|| format!("unknown condition {name:?} (expected Country, Language, Cookie or Role)"))?;
        conditions.push((condition, value.split(',').map(str::to_owned).collect()));
    }
    Ok(Rule { at: at.to_owned(), from: from.to_string(), query, to: rest[to_at].to_owned(), status, force, conditions })
}

/// A rule of `[redirects] rules` in `sync.toml`, written at `at`.
pub fn configured(from: &str, to: &str, status: u16, at: &str) -> Result<Rule, String> {
    if !(from.starts_with('/') || is_url(from)) {
        return Err(format!("from = {from:?} is not a path (starting with '/') or an http(s):// URL"));
    }
    if !(to.starts_with('/') || is_url(to)) {
        return Err(format!("to = {to:?} is not a path (starting with '/') or an http(s):// URL"));
    }
    if !(100..=599).contains(&status) {
        return Err(format!("status = {status} is not an HTTP status"));
    }
    let (from, to) = (from.to_owned(), to.to_owned());
    Ok(Rule { at: at.to_owned(), from, query: Vec::new(), to, status, force: false, conditions: Vec::new() })
}

fn is_url(field: &str) -> bool {
    field.starts_with("http://") || field.starts_with("https://")
}

/// `301` or `301!`.
fn status(field: &str) -> Option<(u16, bool)> {
    let (digits, force) = match field.strip_suffix('!') {
        Some(digits) => (digits, true),
        None => (field, false),
    };
    let valid = digits.len() == 3 && digits.bytes().all(|b| b.is_ascii_digit());
    valid.then(|| (digits.parse().expect("three digits"), force))
}

fn pair(field: &str, expected: &str) -> Result<(String, String), String> {
    match field.split_once('=') {
        Some((key, value)) if !key.is_empty() && !value.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{field:?} is not {expected}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Result<Rule, String> {
        parse(line, "_redirects").map(|mut rules| rules.remove(0)).map_err(|e| e.to_string())
    }

    #[test]
    fn every_part_of_a_line_is_read() {
        let text = "# moved pages\n\n/old   /new/\n/store id=:id  /shop/:id  302!  Country=us,ca Language=en # why\n";
        let rules = parse(text, "_redirects").unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!((rules[0].at.as_str(), rules[0].status, rules[0].force), ("_redirects line 3", 301, false));
        let r = &rules[1];
        assert_eq!((r.from.as_str(), r.to.as_str(), r.status, r.force), ("/store", "/shop/:id", 302, true));
        assert_eq!(r.query, [("id".to_owned(), ":id".to_owned())]);
        assert_eq!(r.conditions[0], (Condition::Country, vec!["us".to_owned(), "ca".to_owned()]));
        assert_eq!(r.conditions[1], (Condition::Language, vec!["en".to_owned()]));
        let url = one("https://old.example.com/* https://example.com/:splat 301!").unwrap();
        assert_eq!((url.from.as_str(), url.to.as_str()), ("https://old.example.com/*", "https://example.com/:splat"));
    }

    #[test]
    fn what_cannot_be_read_is_refused_with_its_line() {
        let e = parse("/a /b\n\n/lonely\n", "site/_redirects").unwrap_err().to_string();
        assert!(e.starts_with("site/_redirects line 3: \"/lonely\" has no destination"), "{e}");
        assert!(one("/a 301").unwrap_err().contains("has no destination"));
        assert!(one("old /b").unwrap_err().contains("\"old\" is not a path"));
        assert!(one("/a b /c").unwrap_err().contains("\"b\" is not a query parameter"));
        assert!(one("/a b c").unwrap_err().contains("no destination: \"b\" is not a path"));
        assert!(one("/a /b 30x").unwrap_err().contains("\"30x\" is not a status"));
        assert!(one("/a /b 301 Planet=mars").unwrap_err().contains("unknown condition \"Planet\""));
        assert!(one("/a /b 301 Country").unwrap_err().contains("is not a condition"));
    }
}
