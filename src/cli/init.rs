//! `sitesync init`: a first `sync.toml` for the site in front of it.
//!
//! A new user's first question is which folder to publish; the generator they use has already
//! answered it, so the built folder is looked for among the usual ones ([`SITE_FOLDERS`], the one
//! table of which generator writes where) and written as `source`. The destination cannot be
//! guessed and stays a commented placeholder. The rest of the file is the handful of keys most
//! sites end up setting, commented out: `##` lines explain, `#` lines are settings to uncomment,
//! so a test can uncomment them all and check that every example loads. An existing `sync.toml`
//! is never overwritten unless asked: it may hold the only copy of someone's settings.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::DEFAULT_FILE;
use crate::error::{EXIT_FAILED, EXIT_USAGE};

/// A folder a static site generator builds into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiteFolder {
    /// The folder's name, relative to the site's directory.
    pub name: &'static str,
    /// The generators that usually build there.
    pub generators: &'static str,
}

/// Where built sites usually are, in the order they are looked for.
pub const SITE_FOLDERS: [SiteFolder; 6] = [
    SiteFolder { name: "public", generators: "Hugo, Zola, Hexo, Gatsby" },
    SiteFolder { name: "_site", generators: "Jekyll, Eleventy" },
    SiteFolder { name: "dist", generators: "Astro, Vite, Parcel" },
    SiteFolder { name: "build", generators: "Docusaurus, Create React App" },
    SiteFolder { name: "out", generators: "Next.js static export" },
    SiteFolder { name: "site", generators: "MkDocs" },
];

/// Why no `sync.toml` was written.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{}: {source}", path.display())]
    Dir { path: PathBuf, source: std::io::Error },
    #[error("{} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("{} already exists; pass --force to overwrite it", .0.display())]
    Exists(PathBuf),
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

impl InitError {
    /// A file that cannot be written is a failure (1); the rest is usage (2).
    pub fn exit_code(&self) -> u8 {
        match self {
            InitError::Write { .. } => EXIT_FAILED,
            _ => EXIT_USAGE,
        }
    }
}

/// What `init` wrote.
#[derive(Debug)]
pub struct Written {
    pub path: PathBuf,
    /// The built folder found, or `None` when the file names a guess.
    pub found: Option<SiteFolder>,
}

/// The first of [`SITE_FOLDERS`] that exists in `dir` with a file somewhere under it: a folder of
/// empty folders (left by a clean, or a generator's skeleton) is not a built site.
pub fn detect(dir: &Path) -> Option<SiteFolder> {
    SITE_FOLDERS.into_iter().find(|folder| holds_files(&dir.join(folder.name)))
}

/// Whether a regular file is somewhere under `dir`, as a sync would publish it: a link counts as
/// what it points to, but one to a directory is not followed (it may loop). What cannot be read
/// holds nothing. Stops at the first file.
fn holds_files(dir: &Path) -> bool {
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() || kind.is_symlink() && std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file())
            {
                return true;
            }
        }
    }
    false
}

/// Writes `dir/sync.toml`; an existing one only when `force`.
pub fn write(dir: &Path, force: bool) -> Result<Written, InitError> {
    let meta = std::fs::metadata(dir).map_err(|source| InitError::Dir { path: dir.to_owned(), source })?;
    if !meta.is_dir() {
        return Err(InitError::NotADirectory(dir.to_owned()));
    }
    let path = dir.join(DEFAULT_FILE);
    let found = detect(dir);
    let mut options = std::fs::File::options();
    options.write(true);
    // Without --force, the file must be new: checked by the open itself, not before it.
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(&path).map_err(|source| match source.kind() {
        std::io::ErrorKind::AlreadyExists => InitError::Exists(path.clone()),
        _ => InitError::Write { path: path.clone(), source },
    })?;
    file.write_all(render(found).as_bytes()).map_err(|source| InitError::Write { path: path.clone(), source })?;
    Ok(Written { path, found })
}

/// The text of `sync.toml` for a site whose built folder is `found`.
pub fn render(found: Option<SiteFolder>) -> String {
    let source = match found {
        Some(folder) => format!(
            "## The built site to publish: {}/ was found here (usually {}).\nsource = \"{}\"\n",
            folder.name, folder.generators, folder.name
        ),
        None => format!(
            "## No built site was found here (none of the folders below exists with files in it):\n\
             ## {}/ is a guess. Build the site first, or name the folder your generator writes.\n\
             source = \"{}\"\n",
            SITE_FOLDERS[0].name, SITE_FOLDERS[0].name
        ),
    };
    let folders: String =
        SITE_FOLDERS.iter().map(|f| format!("##   {:<8} {}\n", format!("{}/", f.name), f.generators)).collect();
    format!(
        "{HEADER}\n{source}\n{DESTINATION}\n## Built folders `sitesync init` looks for, in this order:\n{folders}\n{REST}"
    )
}

const HEADER: &str = "\
## sitesync configuration, written by `sitesync init`. Every key and its default is documented in
## sync.toml.example, in sitesync's source. Lines starting with `##` explain; lines starting with
## `#` are settings: remove the `# ` to use one.
##
## sitesync reads ./sync.toml, so run it from this directory; relative paths start from there too.
## Precedence, lowest first: defaults < this file < SITESYNC_* environment variables < flags.
";

const DESTINATION: &str = "\
## Where to publish: s3://BUCKET for the whole bucket, s3://BUCKET/PREFIX for a folder of it. Set
## it here, or give it on the command line: sitesync sync SOURCE s3://BUCKET/PREFIX
# destination = \"s3://my-bucket/site\"
";

const REST: &str = "\
## --- Where S3 is ---------------------------------------------------------------------------------
## Credentials come from the standard AWS chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
## AWS_PROFILE, SSO, web identity (CI), container and instance roles.
# region = \"eu-west-1\"                    # default: from the AWS chain, else us-east-1
# endpoint_url = \"https://s3.example.com\" # an S3-compatible server (MinIO, Garage, R2, ...)
# path_style = true                       # http://host/bucket/key addressing, which most of them need

## --- How hard to work -----------------------------------------------------------------------------
# workers = 64                            # concurrent S3 operations (1 to 4096)

## --- Deletes --------------------------------------------------------------------------------------
## Objects whose file is gone are deleted, unless the run would delete more than max_delete objects
## or more than max_delete_percent of those under the prefix: then it is refused (exit 2) and
## nothing is deleted. --force-delete overrides both for one run.
# delete = true                           # false: never delete (--no-delete for one run)
# max_delete = 1000
# max_delete_percent = 50
##
## An object whose file is gone is kept this long first (retired, and recorded in the bucket under
## .sitesync/), so a page still open, or kept by a CDN, can load the old assets it names; the first
## run after that deletes it. Units s, m, h, d; 0 deletes at once. See docs/deploys.md.
delete_grace = \"48h\"

## --- Caching -------------------------------------------------------------------------------------
## Cache-Control by file name: a year and `immutable` for fingerprinted names (app.3f2a91c7.js,
## index-BxK9a2Lm.js), `must-revalidate` for every other key, so an open page never mixes versions
## and a deploy is seen at once. A key published immutable whose bytes change is refused (exit 1).
## \"off\": no Cache-Control but what [[transform]] headers rules set. See docs/deploys.md.
cache_policy = \"auto\"

## --- Transforms -----------------------------------------------------------------------------------
## Keep them last: a [[transform]] table takes every key below it. They apply in order.
##
## Leave source maps and drafts out (their objects in the bucket are left alone too):
# [[transform]]
# type = \"filter\"
# exclude = [\"*.map\", \"drafts/**\"]
#
## Cache headers: a rule overrides the cache policy's Cache-Control on the keys its glob matches,
## field by field, and later rules win. Here images are reused for a day without asking again.
# [[transform]]
# type = \"headers\"
#
# [[transform.rules]]
# glob = \"images/**\"
# cache_control = \"public, max-age=86400\"
";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, figment};
    use crate::transform::{CachePolicy, ChainSpec};

    /// The fingerprint of a chain that is the cache policy alone.
    fn policy_alone() -> String {
        ChainSpec::default().with_cache_policy(CachePolicy::Auto).fingerprint().to_owned()
    }

    /// The file with every `#` setting uncommented and the `##` lines dropped.
    fn uncommented(text: &str) -> String {
        let lines = text.lines().filter(|l| !l.starts_with("##"));
        lines.map(|l| l.strip_prefix("# ").or_else(|| l.strip_prefix('#')).unwrap_or(l)).collect::<Vec<_>>().join("\n")
    }

    fn load(text: &str, destination: Option<&str>) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sync.toml");
        std::fs::write(&path, text).unwrap();
        let flags = destination.map_or(serde_json::json!({}), |url| serde_json::json!({ "destination": url }));
        Config::build(&figment(Some(&path), &flags)).unwrap_or_else(|e| panic!("{e}\n---\n{text}"))
    }

    #[test]
    fn the_file_as_written_loads_once_a_destination_is_given() {
        for found in SITE_FOLDERS.into_iter().map(Some).chain([None]) {
            let config = load(&render(found), Some("s3://bkt/site"));
            assert_eq!(config.source, Path::new(found.map_or("public", |f| f.name)));
            assert_eq!(config.chain.cache_policy(), CachePolicy::Auto, "the cache policy is a live setting");
            let grace = config.delete.grace.map(|g| g.as_secs());
            assert_eq!(grace, Some(48 * 3600), "the grace of deletes is a live setting");
            assert_eq!(config.chain.fingerprint(), policy_alone(), "the written file sets no transform");
        }
    }

    #[test]
    fn every_commented_example_loads_when_uncommented() {
        let text = uncommented(&render(Some(SITE_FOLDERS[2])));
        assert!(text.contains("destination = \"s3://my-bucket/site\""), "{text}");
        let config = load(&text, None);
        assert_eq!(config.target.bucket, "my-bucket");
        assert_eq!((config.sink.workers, config.delete.max, config.delete.max_percent), (64, 1000, 50));
        assert_eq!(config.store.connection.endpoint_url.as_deref(), Some("https://s3.example.com"));
        assert!(config.chain.folder_excludes().is_some(), "the filter's drafts/** is a folder the walk skips");
        assert_ne!(config.chain.fingerprint(), policy_alone(), "the header rules are in the chain");
    }
}
