//! A key traced back to the file the chain's `prefix_duplicate` rules made it of, for `--shard`:
//! which rule sets allow that, and the tracing itself.
//!
//! A split run rests on one invariant: **the owner of a key is a function of the key alone, and a
//! file's key and every key the chain makes of it have the same owner.** The owner hashes the
//! folder of [`MapBack::source`], so it is enough that `source(d) == source(s)` for every key `d`
//! the chain makes of a file `s`. `source` undoes rules: while some rule's `to` starts the key, it
//! puts that rule's `from` in its place. The rules are accepted only when:
//!
//! 1. **No rule's `to` starts another's** (a rule given twice counts once). The `to`s starting a
//!    key are prefixes of it, so each pair is nested; without nesting at most one starts any key,
//!    and each step of `source` is a function of the key.
//! 2. **Undoing always ends.** After rule `i` has given `from_i + rest`, the next rule `j` has a
//!    `to_j` starting that, so `to_j` and `from_i` are nested: an edge `i → j` of a graph of the
//!    rules. A step changes a key's length by `len(from) - len(to)`. If every cycle of the graph
//!    shortens the key, an endless run of steps goes round cycles endlessly and makes the key
//!    shorter than empty; so rule sets with a cycle that does not shorten are refused. Every
//!    cycle is made of simple cycles, of at most n steps, which are the ones checked.
//!
//! Then the invariant holds. A duplicate makes `to + rest` of an entry `from + rest`; by (1) no
//! other rule's `to` starts `to + rest`, so `source` takes it to `from + rest` in one step and
//! then goes on as from there: `source(to + rest) == source(from + rest)`, and by induction over
//! the chain's steps every key made of a file traces back to where the file's key does. Two
//! entries claiming one key trace back alike, so one shard settles the claim. And the walk may
//! cut by folder: `to` and `from` are folders (or the root), so whether a `to` starts
//! `folder/name` does not depend on `name`, and a step keeps `name`: all files of a folder have
//! one owner, the one `Shard::owns_folder` computes.
//!
//! Refused, for example: `{ from = "a/", to = "" }` (every key lies in the root, so `x` comes from
//! `a/x`, which comes from `a/a/x`…), `{ from = "a/b/", to = "a/" }`, rules that undo each other,
//! and two rules whose `to`s nest, even where they would agree (`{ from = "", to = "m/" }` with
//! `{ from = "a/", to = "m/a/" }`), to keep the rule one a user can check by eye. A run without
//! `--shard` takes them all.

use std::borrow::Cow;

/// One `prefix_duplicate` rule, and where the config has it (`transform[1].rules[0]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyRule {
    pub at: String,
    pub from: String,
    pub to: String,
}

/// A rule set `--shard` cannot split: the rule, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {why}")]
pub struct Unmappable {
    /// The rule, as the config names it: `transform[1].rules[0]`.
    pub at: String,
    pub why: String,
}

/// Traces keys back through an accepted rule set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MapBack {
    /// (`to`, `from`): no `to` starts another.
    rules: Vec<(String, String)>,
}

impl MapBack {
    /// Accepts `rules` (in chain order) when every key traces back to one source (the module's
    /// doc says when); otherwise names the first rule that breaks it.
    pub fn new(rules: Vec<CopyRule>) -> Result<MapBack, Unmappable> {
        let mut distinct: Vec<CopyRule> = Vec::with_capacity(rules.len());
        for rule in rules {
            if !distinct.iter().any(|r| r.from == rule.from && r.to == rule.to) {
                distinct.push(rule);
            }
        }
        if let Some(refused) = nested(&distinct) {
            return Err(refused);
        }
        if let Some(cycle) = endless(&distinct) {
            return Err(refuse_endless(&distinct, &cycle));
        }
        Ok(MapBack { rules: distinct.into_iter().map(|r| (r.to, r.from)).collect() })
    }

    /// The key of the file `key` is made of, or `key` when no rule made it.
    pub fn source<'k>(&self, key: &'k str) -> Cow<'k, str> {
        let mut key = Cow::Borrowed(key);
        // Ends: `new` refused every rule set under which it might not.
        while let Some((to, from)) = self.rules.iter().find(|(to, _)| key.starts_with(to.as_str())) {
            key = Cow::Owned(format!("{from}{}", &key[to.len()..]));
        }
        key
    }
}

const WITHOUT_SHARDS: &str = "a run without --shard takes it";

/// The first rule whose `to` nests with an earlier rule's.
fn nested(rules: &[CopyRule]) -> Option<Unmappable> {
    for (j, later) in rules.iter().enumerate() {
        for earlier in &rules[..j] {
            let how = if later.to == earlier.to {
                "is also"
            } else if later.to.starts_with(&earlier.to) {
                "lies in"
            } else if earlier.to.starts_with(&later.to) {
                "holds"
            } else {
                continue;
            };
            let why = format!(
                "--shard cannot keep a file and its copies in one shard: its `to` {:?} {how} the `to` {:?} of {}, \
                 so a key under both may be a copy of two files, of two shards' folders; {WITHOUT_SHARDS}",
                later.to, earlier.to, earlier.at
            );
            return Some(Unmappable { at: later.at.clone(), why });
        }
    }
    None
}

/// A cycle of rules, each of which may undo what the one before gave, that does not shorten the
/// key, starting at its first rule in chain order: undoing may go round it forever. `None` when
/// every cycle shortens the key.
fn endless(rules: &[CopyRule]) -> Option<Vec<usize>> {
    let n = rules.len();
    let follows =
        |i: usize, j: usize| rules[i].from.starts_with(&rules[j].to) || rules[j].to.starts_with(&rules[i].from);
    // Weighed so that a simple cycle (of at most n steps) weighs less than nothing exactly when it
    // does not shorten the key: Bellman-Ford then finds one, from a source next to every rule.
    let scale = n as i64 + 1;
    let cost = |j: usize| -scale * (rules[j].from.len() as i64 - rules[j].to.len() as i64) - 1;
    let mut weight = vec![0i64; n];
    let mut before: Vec<Option<usize>> = vec![None; n];
    let mut last = None;
    for _ in 0..=n {
        last = None;
        for i in 0..n {
            for j in (0..n).filter(|&j| follows(i, j)) {
                if weight[i] + cost(j) < weight[j] {
                    weight[j] = weight[i] + cost(j);
                    before[j] = Some(i);
                    last = Some(j);
                }
            }
        }
        last?;
    }
    // Still lowered after n + 1 rounds: n steps back from it is a rule on a cycle.
    let mut on = last?;
    for _ in 0..n {
        on = before[on]?;
    }
    let mut cycle = vec![on];
    let mut back = before[on]?;
    while back != on {
        cycle.push(back);
        back = before[back]?;
    }
    cycle.reverse();
    let first = cycle.iter().enumerate().min_by_key(|&(_, &rule)| rule).map_or(0, |(at, _)| at);
    cycle.rotate_left(first);
    Some(cycle)
}

fn refuse_endless(rules: &[CopyRule], cycle: &[usize]) -> Unmappable {
    let steps: Vec<String> = cycle
        .iter()
        .map(|&i| format!("{} takes a key under {:?} back under {:?}", rules[i].at, rules[i].to, rules[i].from))
        .collect();
    let why = format!(
        "--shard cannot keep a file and its copies in one shard: a copy is traced back to its file by undoing the \
         rules, and here that never ends ({}, where it may be undone again); {WITHOUT_SHARDS}",
        steps.join("; then ")
    );
    Unmappable { at: rules[cycle[0]].at.clone(), why }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_back(pairs: &[(&str, &str)]) -> Result<MapBack, Unmappable> {
        let rule = |(i, (from, to)): (usize, &(&str, &str))| CopyRule {
            at: format!("transform[0].rules[{i}]"),
            from: from.to_string(),
            to: to.to_string(),
        };
        MapBack::new(pairs.iter().enumerate().map(rule).collect())
    }

    #[test]
    fn keys_are_traced_back_until_no_rule_made_them() {
        let back = map_back(&[("", "mirror/"), ("v2/", "latest/"), ("", "m/"), ("mirror/docs/", "docs2/")]).unwrap();
        assert_eq!(back.source("mirror/mirror/x"), "x");
        assert_eq!(back.source("mirror/latest/a/x"), "v2/a/x");
        assert_eq!(back.source("docs2/a"), "docs/a");
        assert_eq!(back.source("mirror"), "mirror", "an object named like the folder");
        assert_eq!(back.source("v2/x"), "v2/x");
        assert!(map_back(&[("", "m/"), ("", "m/")]).is_ok(), "a rule given twice counts once");
        assert!(map_back(&[("latest/", "v2/"), ("d1/d2/", "d2/")]).is_ok(), "copies to a longer name");
    }

    #[test]
    fn rule_sets_that_cannot_be_traced_back_name_their_rule() {
        for (pairs, at, says) in [
            (&[("a/", "")][..], "rules[0]", r#"under "" back under "a/""#),
            (&[("a/b/", "a/")], "rules[0]", r#"under "a/" back under "a/b/""#),
            (&[("a/", "b/"), ("b/", "a/")], "rules[0]", "then transform[0].rules[1]"),
            (&[("", "m/"), ("x/", "m/a/")], "rules[1]", r#""m/a/" lies in the `to` "m/" of transform[0].rules[0]"#),
            (&[("", "m/a/"), ("x/", "m/")], "rules[1]", "holds"),
            (&[("a/", "c/"), ("b/", "c/")], "rules[1]", "is also"),
            (&[("x/", "y/"), ("a/", "b/"), ("b/", "a/")], "rules[1]", "rules[1] takes"),
        ] {
            let refused = map_back(pairs).unwrap_err();
            assert_eq!(refused.at, format!("transform[0].{at}"), "{pairs:?}");
            assert!(refused.why.contains(says) && refused.why.contains("without --shard"), "{pairs:?}: {refused}");
        }
    }
}
