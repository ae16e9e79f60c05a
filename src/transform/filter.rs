//! `filter`: include and exclude glob lists, matched against the key relative to the prefix.
//!
//! An excluded local entry is neither uploaded nor deleted: the same filter also hides the
//! remote keys it excludes from the diff (see [`RemoteFilter`](super::RemoteFilter)), as
//! `aws s3 sync --exclude` leaves excluded objects alone. Globs follow `globset`: `*` and `?` also
//! match `/` (so `*.map` excludes maps at any depth), `**` spans folders, `{a,b}` alternates.

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Deserialize;

use super::{BuildError, StepError, Transform};
use crate::model::LocalFile;

/// `[[transform]] type = "filter"`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// When not empty, only keys matching one of these globs pass.
    #[serde(default)]
    pub include: Vec<String>,
    /// Keys matching one of these globs are dropped, even when included.
    #[serde(default)]
    pub exclude: Vec<String>,
}

impl FilterConfig {
    /// Compiles the globs; `at` names the table in errors (`transform[1]`).
    pub fn build(&self, at: &str) -> Result<Filter, BuildError> {
        if self.include.is_empty() && self.exclude.is_empty() {
            return Err(BuildError::new(at, "a filter needs `include` or `exclude` globs"));
        }
        let include =
            if self.include.is_empty() { None } else { Some(globs(&self.include, &format!("{at}.include"))?) };
        let exclude = globs(&self.exclude, &format!("{at}.exclude"))?;
        let folders = folder_globs(&self.exclude, &format!("{at}.exclude"))?;
        Ok(Filter { include, exclude, folders })
    }
}

/// The folders an exclude list names whole: `dir/**`, `**/dir/**` and `dir/*` (whose `*` also
/// matches `/`) exclude every key under any folder their part before `/**` or `/*` matches.
fn folder_globs(patterns: &[String], at: &str) -> Result<Option<GlobSet>, BuildError> {
    let mut set = GlobSetBuilder::new();
    let mut any = false;
    for (i, pattern) in patterns.iter().enumerate() {
        if let Some(base) = pattern.strip_suffix("/**").or_else(|| pattern.strip_suffix("/*")) {
            set.add(glob(base, &format!("{at}[{i}]"))?);
            any = true;
        }
    }
    if !any {
        return Ok(None);
    }
    set.build().map(Some).map_err(|e| BuildError::new(at, e.to_string()))
}

/// Compiles a list of globs, naming the one that is wrong (`transform[1].include[0]`).
pub(super) fn globs(patterns: &[String], at: &str) -> Result<GlobSet, BuildError> {
    let mut set = GlobSetBuilder::new();
    for (i, pattern) in patterns.iter().enumerate() {
        set.add(glob(pattern, &format!("{at}[{i}]"))?);
    }
    set.build().map_err(|e| BuildError::new(at, e.to_string()))
}

pub(super) fn glob(pattern: &str, at: &str) -> Result<Glob, BuildError> {
    Glob::new(pattern).map_err(|e| BuildError::new(at, format!("bad glob {pattern:?}: {}", e.kind())))
}

/// The runtime filter.
#[derive(Debug, Clone)]
pub struct Filter {
    include: Option<GlobSet>,
    exclude: GlobSet,
    /// Folders the exclude list names whole (without their trailing `/`).
    folders: Option<GlobSet>,
}

impl Filter {
    pub fn keeps(&self, key: &str) -> bool {
        self.include.as_ref().is_none_or(|set| set.is_match(key)) && !self.exclude.is_match(key)
    }
}

/// The folders that filters at the head of the chain exclude whole: the walk skips them, so
/// nothing inside is read, and nothing inside can fail the run.
#[derive(Debug, Clone)]
pub struct FolderExcludes {
    sets: Vec<GlobSet>,
}

impl FolderExcludes {
    /// `None` when no filter names a whole folder.
    pub fn of<'a>(filters: impl Iterator<Item = &'a Filter>) -> Option<FolderExcludes> {
        let sets: Vec<GlobSet> = filters.filter_map(|f| f.folders.clone()).collect();
        (!sets.is_empty()).then_some(FolderExcludes { sets })
    }

    /// Whether every key under `folder/` is excluded (`folder` relative to the prefix, no `/`).
    pub fn excludes(&self, folder: &str) -> bool {
        self.sets.iter().any(|set| set.is_match(folder))
    }
}

impl Transform for Filter {
    fn apply(&mut self, mut batch: Vec<LocalFile>) -> Result<Vec<LocalFile>, StepError> {
        batch.retain(|f| self.keeps(&f.key));
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(include: &[&str], exclude: &[&str]) -> Filter {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        FilterConfig { include: s(include), exclude: s(exclude) }.build("transform[0]").unwrap()
    }

    #[test]
    fn exclude_wins_over_include() {
        let f = filter(&["blog/**", "*.css"], &["**/*.draft.*"]);
        assert!(f.keeps("blog/2024/post.html"));
        assert!(f.keeps("css/site.css"), "`*` matches across `/`");
        assert!(!f.keeps("blog/x.draft.html"));
        assert!(!f.keeps("about.html"), "not included");
    }

    #[test]
    fn exclude_only_keeps_the_rest() {
        let f = filter(&[], &["*.map", ".git/**"]);
        assert!(f.keeps("app.js"));
        assert!(!f.keeps("js/app.js.map"));
        assert!(!f.keeps(".git/config"));
    }

    #[test]
    fn folders_excluded_whole_are_recognised() {
        let f = filter(&[], &["drafts/**", "**/node_modules/**", "tmp/*", "*.map", "a/**/b"]);
        let folders = FolderExcludes::of([&f].into_iter()).unwrap();
        for folder in ["drafts", "x/node_modules", "node_modules", "tmp"] {
            assert!(folders.excludes(folder), "{folder}");
            assert!(!f.keeps(&format!("{folder}/any/key")), "{folder}: every key under it is excluded");
        }
        for folder in ["draft", "drafts2", "x.map", "a/x"] {
            assert!(!folders.excludes(folder), "{folder}");
        }
        assert!(FolderExcludes::of([&filter(&[], &["*.map"])].into_iter()).is_none());
    }

    #[test]
    fn a_bad_glob_is_named() {
        let e = FilterConfig { include: vec![], exclude: vec!["ok".into(), "a[".into()] }
            .build("transform[3]")
            .unwrap_err();
        assert_eq!(e.key, "transform[3].exclude[1]");
        assert!(e.why.contains("bad glob \"a[\""), "{e}");
    }
}
