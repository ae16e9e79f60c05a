//! Paths as the bench shows them: relative to the project, so that output pasted into
//! `docs/benchmark.md` names no folder of the machine it ran on.
//!
//! The project is the workspace this bench was built in. A path inside it is shown relative to
//! it (`target/bench-trees/10000/site`), one in the home folder as `~/...`, any other as it is.
//! Only what is shown changes: the bench itself keeps using the full paths. The Markdown, the
//! JSON results and the progress lines on stderr all show paths through [`shown`].

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Serializer;

/// `path` as the bench prints it.
pub fn shown(path: &Path) -> String {
    static PLACES: OnceLock<(PathBuf, Option<PathBuf>)> = OnceLock::new();
    let (project, home) = PLACES.get_or_init(|| {
        let built_in = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let project = std::fs::canonicalize(&built_in).unwrap_or(built_in);
        let home = std::env::var_os("HOME").map(PathBuf::from).filter(|h| h.is_absolute() && h.parent().is_some());
        (project, home)
    });
    shown_from(path, project, home.as_deref())
}

/// `path` relative to `project`, else to `home` as `~/...`, else as it is.
fn shown_from(path: &Path, project: &Path, home: Option<&Path>) -> String {
    if let Ok(inside) = path.strip_prefix(project) {
        return if inside.as_os_str().is_empty() { ".".to_owned() } else { inside.display().to_string() };
    }
    match home.and_then(|home| path.strip_prefix(home).ok()) {
        Some(inside) => Path::new("~").join(inside).display().to_string(),
        None => path.display().to_string(),
    }
}

/// A command line with its paths shown: every argument that is an absolute path, or ends in one
/// after `=` (`--site=/x`, `KEY=/x`).
pub fn command_line(args: impl IntoIterator<Item = String>) -> String {
    args.into_iter().map(|arg| shown_arg(&arg, shown)).collect::<Vec<_>>().join(" ")
}

fn shown_arg(arg: &str, shown: impl Fn(&Path) -> String) -> String {
    if arg.starts_with('/') {
        return shown(Path::new(arg));
    }
    match arg.split_once('=') {
        Some((key, value)) if value.starts_with('/') => format!("{key}={}", shown(Path::new(value))),
        _ => arg.to_owned(),
    }
}

/// For `#[serde(serialize_with)]`: a path field saved as it is shown.
pub fn serialize<S: Serializer>(path: &Path, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&shown(path))
}

/// For `#[serde(serialize_with)]`: an optional path field saved as it is shown.
pub fn serialize_option<S: Serializer>(path: &Option<PathBuf>, serializer: S) -> Result<S::Ok, S::Error> {
    match path {
        Some(path) => serialize(path, serializer),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROJECT: &str = "/srv/me/sitesync";
    const HOME: &str = "/srv/me";

    fn show(path: &str) -> String {
        shown_from(Path::new(path), Path::new(PROJECT), Some(Path::new(HOME)))
    }

    #[test]
    fn a_path_in_the_project_is_shown_relative_to_it() {
        assert_eq!(show("/srv/me/sitesync/target/bench-trees/10000/site"), "target/bench-trees/10000/site");
        assert_eq!(show("/srv/me/sitesync"), ".");
    }

    #[test]
    fn a_path_in_the_home_folder_is_shown_from_the_tilde() {
        assert_eq!(show("/srv/me/.local/bin/garage"), "~/.local/bin/garage");
        // A sibling whose name only starts like the project's is not in it.
        assert_eq!(show("/srv/me/sitesync-old/target"), "~/sitesync-old/target");
    }

    #[test]
    fn other_paths_are_shown_as_they_are() {
        assert_eq!(show("/opt/garage/bin/garage"), "/opt/garage/bin/garage");
        assert_eq!(show("target/release/sitesync"), "target/release/sitesync");
        assert_eq!(shown_from(Path::new("/srv/me/x"), Path::new(PROJECT), None), "/srv/me/x");
    }

    #[test]
    fn a_command_line_shows_its_absolute_paths_and_leaves_the_rest() {
        let show = |p: &Path| show(p.to_str().unwrap());
        let args = [
            "/srv/me/sitesync/target/release/sitesync-bench",
            "--files",
            "10k",
            "--garage-bin",
            "/srv/me/.local/bin/garage",
            "--site=/srv/me/sitesync/public",
            "--sitesync-env",
            "SITESYNC_LIST_PARALLEL=1",
        ];
        let shown: Vec<String> = args.iter().map(|a| shown_arg(a, show)).collect();
        assert_eq!(
            shown.join(" "),
            "target/release/sitesync-bench --files 10k --garage-bin ~/.local/bin/garage --site=public \
             --sitesync-env SITESYNC_LIST_PARALLEL=1"
        );
    }
}
