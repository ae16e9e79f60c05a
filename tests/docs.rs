//! The documentation's links: every relative link in README.md, docs/*.md and plugins/README.md
//! must lead somewhere.
//!
//! The guide is split over several pages that link to each other by file and heading, so a page
//! renamed or a heading reworded would silently leave a link to nothing. For every `[text](target)`
//! outside code whose target is relative (not `http(s)://`, not `mailto:`), the file must exist, and
//! a `#anchor` must be the GitHub slug of a heading of the page it points to. Also: every guide page
//! is linked from the README, and the README stays short enough to read in one sitting.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

/// The longest the README may be: what it is, install, quick start, usage, the guide's pages.
const README_MAX_LINES: usize = 350;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Markdown files whose links are checked: README.md, docs/*.md and plugins/README.md.
fn documents(root: &Path) -> Vec<PathBuf> {
    let mut docs: Vec<PathBuf> = fs::read_dir(root.join("docs"))
        .expect("a docs/ folder")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    docs.sort();
    [root.join("README.md"), root.join("plugins/README.md")].into_iter().chain(docs).collect()
}

/// The paragraphs of `text` outside fenced code blocks, with their inline code spans blanked out
/// (a code span may wrap onto the next line, but never past the end of its paragraph).
fn prose(text: &str) -> Vec<String> {
    let mut paragraphs = vec![String::new()];
    let mut in_fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            paragraphs.push(String::new());
        } else if line.trim().is_empty() {
            paragraphs.push(String::new());
        } else if !in_fence {
            let paragraph = paragraphs.last_mut().unwrap();
            paragraph.push_str(line);
            paragraph.push('\n');
        }
    }
    paragraphs.iter().filter(|p| !p.is_empty()).map(|p| without_code_spans(p)).collect()
}

/// `paragraph` with what is between backticks removed; an unclosed backtick is kept as text.
fn without_code_spans(paragraph: &str) -> String {
    let pieces: Vec<&str> = paragraph.split('`').collect();
    let last = pieces.len() - 1;
    pieces.iter().enumerate().map(|(i, piece)| if i % 2 == 1 && i < last { "" } else { piece }).collect()
}

/// The targets of the inline links `[text](target)` in `text`, outside code.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    for paragraph in prose(text) {
        let mut rest = paragraph.as_str();
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let end = rest.find(')').unwrap_or(rest.len());
            // A title (`[a](b "title")`) is not part of the target.
            targets.push(rest[..end].split_whitespace().next().unwrap_or("").to_owned());
            rest = &rest[end..];
        }
    }
    targets
}

/// GitHub's anchor for a heading: lowercase, spaces to `-`, punctuation other than `-` and `_`
/// removed (backticks included, so `` `--shard K/N` `` gives `--shard-kn`).
fn slug(heading: &str) -> String {
    let lower = heading.trim().to_lowercase();
    let kept = lower.chars().filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'));
    kept.map(|c| if c == ' ' { '-' } else { c }).collect()
}

/// The anchors of a page's headings; a repeated heading gets `-1`, `-2`, ... as on GitHub.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut anchors = BTreeSet::new();
    let mut in_fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        let Some(heading) = line.strip_prefix('#').map(|h| h.trim_start_matches('#')) else { continue };
        if in_fence || !heading.starts_with(' ') {
            continue;
        }
        let base = slug(heading);
        let count = seen.entry(base.clone()).or_insert(0);
        anchors.insert(if *count == 0 { base.clone() } else { format!("{base}-{count}") });
        *count += 1;
    }
    anchors
}

fn is_relative(target: &str) -> bool {
    let external = ["http://", "https://", "mailto:"];
    !external.iter().any(|scheme| target.to_ascii_lowercase().starts_with(scheme))
}

/// What is wrong with each relative link of `doc`: `doc: (target): reason`, one line each.
fn broken_links(doc: &Path) -> Vec<String> {
    let text = fs::read_to_string(doc).unwrap_or_else(|e| panic!("{}: {e}", doc.display()));
    let name = doc.strip_prefix(root()).unwrap_or(doc).display();
    let mut broken = Vec::new();
    for target in link_targets(&text).into_iter().filter(|t| is_relative(t)) {
        let (path, anchor) = target.split_once('#').map_or((target.as_str(), None), |(p, a)| (p, Some(a)));
        let file = if path.is_empty() { doc.to_path_buf() } else { doc.parent().unwrap().join(path) };
        let problem = if target.is_empty() {
            Some("an empty target".to_owned())
        } else if !file.exists() {
            Some(format!("no file {path}"))
        } else if let Some(anchor) = anchor {
            let page = fs::read_to_string(&file).unwrap_or_default();
            (!anchors(&page).contains(anchor)).then(|| format!("no heading #{anchor} in {}", file.display()))
        } else {
            None
        };
        broken.extend(problem.map(|p| format!("{name}: ({target}): {p}")));
    }
    broken
}

#[test]
fn every_relative_link_resolves() {
    let broken: Vec<String> = documents(root()).iter().flat_map(|doc| broken_links(doc)).collect();
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn every_guide_page_is_linked_from_the_readme() {
    let readme = fs::read_to_string(root().join("README.md")).unwrap();
    let linked: BTreeSet<String> = link_targets(&readme)
        .iter()
        .filter_map(|t| t.split('#').next().and_then(|p| p.strip_prefix("docs/")).map(str::to_owned))
        .collect();
    let pages: Vec<String> = documents(root())
        .iter()
        .filter(|p| p.parent().unwrap().ends_with("docs"))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let missing: Vec<&String> = pages.iter().filter(|page| !linked.contains(*page)).collect();
    assert!(missing.is_empty(), "docs/ pages the README does not link: {missing:?}");
}

#[test]
fn the_readme_reads_in_one_sitting() {
    let lines = fs::read_to_string(root().join("README.md")).unwrap().lines().count();
    assert!(lines <= README_MAX_LINES, "README.md has {lines} lines, more than {README_MAX_LINES}: move some to docs/");
}

#[test]
fn anchors_are_github_slugs() {
    let page = "# Guide\n## What \"changed\" means\n## Beyond one machine: `--shard K/N`\n\
                ## Order of work, and delete safety\n```sh\n# not a heading\n```\n## Notes\n## Notes\n#nope\n";
    let expected = [
        "guide",
        "what-changed-means",
        "beyond-one-machine---shard-kn",
        "order-of-work-and-delete-safety",
        "notes",
        "notes-1",
    ];
    assert_eq!(anchors(page), expected.into_iter().map(str::to_owned).collect());
}

#[test]
fn a_missing_file_or_heading_is_reported_and_code_is_not_read_as_links() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("other.md"), "# Other\n## A section\n").unwrap();
    let page = dir.path().join("page.md");
    let text = "# Page\n[ok](other.md#a-section) [self](#page) [web](https://example.com/x#y)\n\
                [gone](missing.md) [no heading](other.md#nope) [no heading here](#nope)\n\
                `[code](not-checked.md)` and `a span\nthat wraps [code](not-checked.md)`\n```md\n[fenced](not-checked.md)\n```\n";
    fs::write(&page, text).unwrap();
    let broken = broken_links(&page);
    let targets: Vec<&str> = broken.iter().map(|line| line.split(['(', ')']).nth(1).unwrap()).collect();
    assert_eq!(targets, ["missing.md", "other.md#nope", "#nope"], "{broken:#?}");
}
