//! The chain's last step for `_redirects` and `_headers`: the `_headers` values set and the
//! redirect objects made (the files themselves are left out before any step, by the chain).
//!
//! The redirect objects join the chain's output in key order when the chain keeps the walk's
//! order (the diff then still retires keys as both sides pass them): before each entry, the
//! objects whose keys come before it are yielded, and an entry under a redirect's own key is a
//! file of the site, which wins: the redirect becomes a problem naming the rule and the key (the
//! run fails, and sends no deletes). A chain that creates keys yields them in no order, so there
//! the step notes which redirect keys an entry took and yields the objects at the end. Only the
//! redirect keys of this shard's part are made; the other shards make theirs.

use std::sync::Arc;

use super::SiteRules;
use super::page::page;
use super::shadow::Seen;
use crate::model::fields::Field;
use crate::model::{Body, LocalFile, Problem, Time};
use crate::transform::{StepError, Transform};

/// Sets `_headers` on every entry and makes the redirect objects.
pub struct SiteStep {
    site: Arc<SiteRules>,
    /// The chain yields keys in the walk's order.
    ordered: bool,
    /// The next redirect object to yield (ordered chains).
    next: usize,
    /// The redirect objects an entry of the chain took (chains that create keys).
    taken: Vec<bool>,
    /// What the rules that apply where files exist matched.
    seen: Seen,
}

impl SiteStep {
    pub fn new(site: Arc<SiteRules>, ordered: bool) -> SiteStep {
        let taken = vec![false; site.objects.len()];
        SiteStep { site, ordered, next: 0, taken, seen: Seen::default() }
    }

    /// The object `index` as an entry (or nothing, when another shard makes it).
    fn made(&self, index: usize, out: &mut Vec<LocalFile>) {
        let object = &self.site.objects[index];
        if !self.site.owns(&object.key) {
            return;
        }
        let mut file = LocalFile::inline(object.key.clone(), Arc::from(page(&object.location)), Time(0));
        let meta = file.meta.get_or_insert_default();
        meta.set(Field::ContentType, "text/html; charset=utf-8");
        meta.set(Field::WebsiteRedirectLocation, object.location.clone());
        self.site.headers.apply(&mut file);
        out.push(file);
    }

    /// The redirect `index` refused because an entry of the chain publishes its key.
    fn refused(&self, index: usize, out: &mut Vec<LocalFile>) {
        let object = &self.site.objects[index];
        if !self.site.owns(&object.key) {
            return;
        }
        let message = format!(
            "{} redirects this key to {}, but the site publishes a file under it: the file wins and the redirect \
             is not published (remove the rule, or the file)",
            object.at, object.location
        );
        out.push(LocalFile {
            key: object.key.clone(),
            body: Body::Unreadable(Arc::new(Problem::new(object.key.clone(), message))),
            size: 0,
            mtime: Time(0),
            meta: None,
            copy_of: None,
            known: None,
        });
    }
}

impl Transform for SiteStep {
    fn apply(&mut self, batch: Vec<LocalFile>) -> Result<Vec<LocalFile>, StepError> {
        let mut out = Vec::with_capacity(batch.len());
        for mut file in batch {
            if matches!(file.body, Body::Unreadable(_)) {
                out.push(file);
                continue;
            }
            self.site.headers.apply(&mut file);
            self.seen.see(&self.site.shadowing, &file.key);
            let objects = &self.site.objects;
            if self.ordered {
                while self.next < objects.len() && objects[self.next].key < file.key {
                    self.made(self.next, &mut out);
                    self.next += 1;
                }
                if self.next < objects.len() && objects[self.next].key == file.key {
                    self.refused(self.next, &mut out);
                    self.next += 1;
                }
            } else if let Ok(index) = objects.binary_search_by(|o| o.key.as_str().cmp(&file.key)) {
                self.taken[index] = true;
            }
            out.push(file);
        }
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<LocalFile>, StepError> {
        let mut out = Vec::new();
        let start = if self.ordered { self.next } else { 0 };
        for index in start..self.site.objects.len() {
            match self.taken[index] {
                true => self.refused(index, &mut out),
                false => self.made(index, &mut out),
            }
        }
        self.next = self.site.objects.len();
        self.seen.warn(&self.site.shadowing);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::ChainSpec;
    use crate::transform::redirects::{Context, RedirectsConfig};

    fn site(redirects: &str) -> Arc<SiteRules> {
        let source = tempfile::tempdir().unwrap();
        std::fs::write(source.path().join("_redirects"), redirects).unwrap();
        let chain = ChainSpec::default();
        let cx = Context {
            source: source.path(),
            base: source.path(),
            origin: "sync.toml".into(),
            chain: &chain,
            shard: None,
        };
        Arc::new(RedirectsConfig::default().build(&cx).unwrap().unwrap())
    }

    fn files(keys: &[&str]) -> Vec<LocalFile> {
        keys.iter().map(|k| LocalFile::new(k.to_string(), format!("/src/{k}").into(), 1, Time(0))).collect()
    }

    fn shown(out: &[LocalFile]) -> Vec<String> {
        let kind = |f: &LocalFile| match &f.body {
            Body::Inline(_) => "redirect",
            Body::Unreadable(_) => "refused",
            _ => "file",
        };
        out.iter().map(|f| format!("{} {}", kind(f), f.key)).collect()
    }

    const RULES: &str = "/b /x\n/c /x\n/d /x\n/f /x\n/a0 /x\n";

    #[test]
    fn in_an_ordered_chain_redirects_join_the_batches_in_key_order() {
        let mut step = SiteStep::new(site(RULES), true);
        let mut out = shown(&step.apply(files(&["a", "c"])).unwrap());
        out.extend(shown(&step.apply(files(&["e"])).unwrap()));
        out.extend(shown(&step.finish().unwrap()));
        let expected =
            ["file a", "redirect a0", "redirect b", "refused c", "file c", "redirect d", "file e", "redirect f"];
        assert_eq!(out, expected);
    }

    #[test]
    fn in_a_chain_that_creates_keys_redirects_come_at_the_end_and_entries_still_win() {
        let mut step = SiteStep::new(site(RULES), false);
        let mut out = shown(&step.apply(files(&["e", "c"])).unwrap());
        out.extend(shown(&step.apply(files(&["a"])).unwrap()));
        out.extend(shown(&step.finish().unwrap()));
        let expected =
            ["file e", "file c", "file a", "redirect a0", "redirect b", "refused c", "redirect d", "redirect f"];
        assert_eq!(out, expected);
    }
}
