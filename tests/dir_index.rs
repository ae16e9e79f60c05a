//! The dir-index plugin end to end: built from the workspace, dropped into `plugins/` beside
//! `sync.toml`, and run by the real binary against a real S3 server. Its pages are inline bodies
//! of plugin ABI 1.1, most of them made in `finish`, so these tests are also the host's: bodies
//! uploaded from memory, compared by content on the next run, deleted when no longer made.

mod plugin_build;
mod support;

use std::fs;

use support::Test;

const PAGE_TYPE: &str = "text/html; charset=utf-8";

/// Drops the dir-index library into `plugins/` and writes `sync.toml`: `top` (the run's
/// settings), then the plugin's table with `settings`.
fn with_dir_index(test: &Test, top: &str, settings: &str) {
    let library = plugin_build::library("dir-index");
    let name = library.file_name().unwrap().to_str().unwrap().to_owned();
    let work = test.config(".probe", "").parent().unwrap().to_owned();
    fs::create_dir_all(work.join("plugins")).unwrap();
    fs::copy(&library, work.join("plugins").join(&name)).unwrap();
    test.config("sync.toml", &format!("{top}\n[[transform]]\nplugin = \"plugins/{name}\"\n{settings}\n"));
}

fn site() -> Test {
    Test::new()
        .file("a&b <c>.txt", "x")
        .file("hello world.txt", "hi")
        .file("café.txt", "crème")
        .file(".secret", "hidden")
        .file("docs/index.html", "docs")
        .file("docs/guide.txt", "guide")
        .file("sub/page.html", "<p>page</p>")
        .file("sub/deeper/z.txt", "z")
}

/// The page of folder `title` (`/`, `/sub/`) with these table rows after the header row.
fn page(title: &str, rows: &[&str]) -> String {
    let mut html = format!(
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>Index of {title}</title>\n</head>\n<body>\n\
         <h1>Index of {title}</h1>\n<table>\n<tr><th>Name</th><th>Size</th></tr>\n"
    );
    for row in rows {
        html.push_str(row);
        html.push('\n');
    }
    html.push_str("</table>\n</body>\n</html>\n");
    html
}

const UP: &str = r#"<tr><td><a href="../">../</a></td><td></td></tr>"#;
const AMP: &str = r#"<tr><td><a href="a%26b%20%3Cc%3E.txt">a&amp;b &lt;c&gt;.txt</a></td><td>1</td></tr>"#;
const CAFE: &str = r#"<tr><td><a href="caf%C3%A9.txt">café.txt</a></td><td>6</td></tr>"#;
const DOCS: &str = r#"<tr><td><a href="docs/">docs/</a></td><td></td></tr>"#;
const HELLO: &str = r#"<tr><td><a href="hello%20world.txt">hello world.txt</a></td><td>2</td></tr>"#;
const SUB: &str = r#"<tr><td><a href="sub/">sub/</a></td><td></td></tr>"#;
const DEEPER: &str = r#"<tr><td><a href="deeper/">deeper/</a></td><td></td></tr>"#;
const PAGE: &str = r#"<tr><td><a href="page.html">page.html</a></td><td>11</td></tr>"#;
const Z: &str = r#"<tr><td><a href="z.txt">z.txt</a></td><td>1</td></tr>"#;

fn content_type(test: &Test, key: &str) -> Option<String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let head = runtime.block_on(test.server.client.head_object().bucket(support::BUCKET).key(key).send());
    head.unwrap_or_else(|e| panic!("head {key}: {e:?}")).content_type().map(str::to_owned)
}

#[test]
fn every_folder_without_an_index_gets_one_and_a_second_run_sends_nothing() {
    let test = site();
    with_dir_index(&test, "", "");
    let report = test.sync(&[]).success().report();
    // 8 files and 3 pages: the root, sub/ and sub/deeper/; docs/ has its own.
    assert_eq!((report.uploaded, report.copied, report.failed), (11, 0, 0), "{report:?}");
    let contents = test.contents();
    assert_eq!(contents["site/index.html"], page("/", &[AMP, CAFE, DOCS, HELLO, SUB]), "dot-files are not listed");
    assert_eq!(contents["site/sub/index.html"], page("/sub/", &[UP, DEEPER, PAGE]));
    assert_eq!(contents["site/sub/deeper/index.html"], page("/sub/deeper/", &[UP, Z]));
    assert_eq!(contents["site/docs/index.html"], "docs", "a folder's own index is left alone");
    assert_eq!(contents["site/.secret"], "hidden", "hidden from the listing, not from the site");
    for key in ["site/index.html", "site/sub/index.html", "site/sub/deeper/index.html"] {
        assert_eq!(content_type(&test, key).as_deref(), Some(PAGE_TYPE), "{key}");
    }

    // Nothing changed: the pages are the same bytes, found so by content. No file is read (the
    // local state vouches for them); the three pages are hashed, from memory.
    let pages: u64 = ["site/index.html", "site/sub/index.html", "site/sub/deeper/index.html"]
        .iter()
        .map(|k| contents[*k].len() as u64)
        .sum();
    let again = test.sync(&[]).success();
    let report = again.report();
    assert_eq!((report.uploaded, report.copied, report.deleted, report.unchanged), (0, 0, 0, 11), "{report:?}");
    let json = again.json();
    assert_eq!((json["hashed"].as_u64(), json["bytes_hashed"].as_u64()), (Some(3), Some(pages)), "{json}");
}

#[test]
fn a_folder_index_follows_its_files_and_goes_with_its_folder() {
    let test = site();
    with_dir_index(&test, "", "");
    test.sync(&[]).success();

    // A file removed: its folder's page is made again without it.
    test.remove("hello world.txt");
    let report = test.sync(&[]).success().report();
    assert_eq!((report.uploaded, report.deleted), (1, 1), "{report:?}");
    assert_eq!(test.contents()["site/index.html"], page("/", &[AMP, CAFE, DOCS, SUB]));

    // A folder removed: its page is deleted with its files, and its parent's page is rewritten.
    fs::remove_dir_all(test.path("sub/deeper")).unwrap();
    let report = test.sync(&[]).success().report();
    assert_eq!((report.uploaded, report.deleted), (1, 2), "{report:?}");
    let keys = test.keys();
    assert!(!keys.iter().any(|k| k.starts_with("site/sub/deeper/")), "{keys:?}");
    assert_eq!(test.contents()["site/sub/index.html"], page("/sub/", &[UP, PAGE]));

    // A folder that gets its own index.html: the file replaces the generated page. The root's
    // page lists `sub/`, not its files, so it stays as it is.
    test.write("sub/index.html", "mine");
    let report = test.sync(&[]).success().report();
    assert_eq!((report.uploaded, report.deleted, report.unchanged), (1, 0, 7), "{report:?}");
    assert_eq!(test.contents()["site/sub/index.html"], "mine");
}

#[test]
fn with_compare_mtime_a_page_that_changed_is_still_sent() {
    // A page whose bytes change but not its size, whose mtime is 0: only its content can tell.
    let test = Test::new().file("d/ab.txt", "1").file("index.html", "home");
    with_dir_index(&test, "compare = \"mtime\"", "");
    let report = test.sync(&[]).success().report();
    assert_eq!(report.uploaded, 3, "{report:?}");

    fs::rename(test.path("d/ab.txt"), test.path("d/cd.txt")).unwrap();
    let plan = test.plan(&[]).success();
    let size = page("/d/", &[UP, r#"<tr><td><a href="cd.txt">cd.txt</a></td><td>1</td></tr>"#]).len();
    let line = format!("upload site/d/index.html (content differs, {size} bytes) [Content-Type: {PAGE_TYPE}]");
    assert!(plan.lines().contains(&line.as_str()), "{plan}");
    let report = test.sync(&[]).success().report();
    assert_eq!((report.uploaded, report.deleted), (2, 1), "cd.txt and the page; ab.txt deleted: {report:?}");
    assert!(test.contents()["site/d/index.html"].contains(r#"href="cd.txt""#));

    let report = test.sync(&[]).success().report();
    assert_eq!((report.uploaded, report.unchanged), (0, 3), "{report:?}");
}

#[test]
fn the_root_gets_no_index_when_told_so() {
    let test = Test::new().file("a.txt", "a").file("b/c.txt", "c");
    with_dir_index(&test, "", "root = false");
    let report = test.sync(&[]).success().report();
    assert_eq!(report.uploaded, 3, "{report:?}");
    let keys = test.keys();
    assert!(
        keys.contains(&"site/b/index.html".to_owned()) && !keys.contains(&"site/index.html".to_owned()),
        "{keys:?}"
    );
}

#[test]
fn shards_see_the_whole_tree_and_publish_the_pages_one_run_does() {
    // A plugin may make a page from several folders (a folder's index lists its subfolders,
    // whichever shard owns them), so with one in the chain every shard walks the whole tree and
    // keeps its own keys of what the chain makes.
    let whole = site().file("sub/deeper/more/y.txt", "y").file("b/c/d.txt", "d");
    with_dir_index(&whole, "", "");
    let expected = whole.sync(&[]).success().report();
    for n in [2, 3, 5] {
        let split = site().file("sub/deeper/more/y.txt", "y").file("b/c/d.txt", "d");
        with_dir_index(&split, "", "");
        let mut uploaded = 0;
        for k in 1..=n {
            let report = split.sync(&["--shard", &format!("{k}/{n}")]).success().report();
            assert_eq!(report.failed, 0, "{n} shards, shard {k}: {report:?}");
            uploaded += report.uploaded;
        }
        assert_eq!(uploaded, expected.uploaded, "{n} shards: each key once");
        let published = |test: &Test| -> Vec<(String, String)> {
            test.contents().into_iter().filter(|(k, _)| !k.contains("/.sitesync/")).collect()
        };
        assert_eq!(published(&split), published(&whole), "{n} shards");
    }
}
