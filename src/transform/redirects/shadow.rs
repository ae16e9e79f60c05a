//! Rules that would take paths where the site has files.
//!
//! On Netlify a rule applies only where no file exists, unless its status ends with `!`. S3's
//! routing rules and a CloudFront Function apply whatever the bucket holds, so a rule written for
//! Netlify can hide files there: a `/* /index.html 200` fallback would serve the page for every
//! script and stylesheet. The step counts, for each such rule without `!`, the files of the site it
//! matches, and warns once the walk is over, naming the rule, how many files and the first.

use super::compile::{Compiled, Served};
use super::pattern::Pattern;

/// A rule without `!` that applies even where a file exists.
#[derive(Debug, Clone)]
pub struct Shadowing {
    /// Where the rule was written, and the rule.
    rule: String,
    /// What applies it: the routing rule or the function.
    by: &'static str,
    pattern: Pattern,
    rewrite: bool,
}

/// The rules of `compiled` that apply where files exist.
pub fn of(compiled: &[Compiled]) -> Vec<Shadowing> {
    let shadowing = compiled.iter().filter(|c| !c.rule.force).filter_map(|c| {
        let by = match c.served {
            Served::Routing(_) => "the bucket's routing rule",
            Served::Function => "the CloudFront Function",
            Served::Object(_) => return None,
        };
        let rule = format!("{}: {}", c.rule.at, c.rule.shown());
        Some(Shadowing { rule, by, pattern: c.pattern.clone(), rewrite: c.rule.status == 200 })
    });
    shadowing.collect()
}

/// What a run found under each rule.
#[derive(Debug, Default)]
pub struct Seen {
    /// Per rule: how many files, and the first.
    found: Vec<(u64, Option<String>)>,
}

impl Seen {
    /// Notes which rules match the paths of the published `key`.
    pub fn see(&mut self, rules: &[Shadowing], key: &str) {
        if rules.is_empty() {
            return;
        }
        self.found.resize(rules.len(), (0, None));
        let path = format!("/{key}");
        let folder =
            key.strip_suffix("index.html").filter(|f| f.is_empty() || f.ends_with('/')).map(|f| format!("/{f}"));
        for (rule, (count, first)) in rules.iter().zip(&mut self.found) {
            let hit = rule.pattern.matches(&path).is_some()
                || folder.as_deref().is_some_and(|f| rule.pattern.matches(f).is_some());
            if hit {
                *count += 1;
                first.get_or_insert_with(|| key.to_owned());
            }
        }
    }

    /// Warns about every rule that matched files.
    pub fn warn(&self, rules: &[Shadowing]) {
        for (rule, (count, first)) in rules.iter().zip(&self.found).filter(|(_, (n, _))| *n > 0) {
            let files = if *count == 1 { "file" } else { "files" };
            let first = crate::keys::names::printable(first.as_deref().unwrap_or_default()).into_owned();
            let spa = match rule.rewrite {
                true => {
                    "; for a single-page app's fallback, a CloudFront custom error response (403 and 404 to \
                     /index.html, 200) serves only what is missing"
                }
                false => "",
            };
            tracing::warn!(
                "{}: it also matches {count} {files} of the site ({first} first), which {} takes too, where \
                 Netlify serves the files (a rule without `!` applies only where no file exists); add `!` to its \
                 status if that is meant{spa}",
                rule.rule,
                rule.by
            );
        }
    }
}
