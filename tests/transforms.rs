//! The built-in transforms, end to end: the real binary with a `[[transform]]` chain in its
//! `sync.toml`, against a real S3 server, asserted on the bucket (listed, read back, HeadObject)
//! and on the `--json` report.

mod support;

use std::collections::BTreeMap;

use support::{BUCKET, Test};

/// The chain marker sitesync keeps under the prefix once a chain was applied.
const MARKER: &str = "site/.sitesync/chain";

fn chain(test: &Test, toml: &str) {
    test.config("sync.toml", toml);
}

fn bucket(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
    entries.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn head(test: &Test, key: &str) -> aws_sdk_s3::operation::head_object::HeadObjectOutput {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime
        .block_on(test.server.client.head_object().bucket(BUCKET).key(key).send())
        .unwrap_or_else(|e| panic!("head {key}: {e:?}"))
}

fn delete(test: &Test, key: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(test.server.client.delete_object().bucket(BUCKET).key(key).send()).unwrap();
}

const MIRRORS: &str = r#"
[[transform]]
type = "prefix_duplicate"
rules = [
    { from = "", to = "m1/" },
    { from = "", to = "m2/" },
    { from = "", to = "m3/" },
]
"#;

#[test]
fn one_file_under_four_keys_is_one_put_and_three_copies() {
    let test = Test::new().file("app.js", "js");
    chain(&test, MIRRORS);
    let report = test.sync(&[]).success().report();
    assert_eq!((report.uploaded, report.copied, report.bytes_uploaded), (1, 3, 2), "{report:?}");
    let mut expected =
        bucket(&[("site/app.js", "js"), ("site/m1/app.js", "js"), ("site/m2/app.js", "js"), ("site/m3/app.js", "js")]);
    let mut got = test.contents();
    assert!(got.remove(MARKER).is_some_and(|m| m.contains("\"digest\"")), "the marker records the chain");
    assert_eq!(got, std::mem::take(&mut expected));

    let again = test.sync(&[]).success().report();
    assert_eq!((again.uploaded, again.copied, again.deleted, again.unchanged), (0, 0, 0, 4));
}

#[test]
fn a_folder_is_duplicated_and_a_missing_or_stale_duplicate_is_repaired() {
    let test = Test::new().file("d1/d2/a.txt", "a").file("d1/d2/b.txt", "b").file("d1/other.txt", "o");
    chain(&test, "[[transform]]\ntype = \"prefix_duplicate\"\nrules = [{ from = \"d1/d2/\", to = \"d2/\" }]\n");
    let report = test.sync(&[]).success().report();
    assert_eq!((report.uploaded, report.copied), (3, 2));
    assert_eq!(test.contents()["site/d2/a.txt"], "a");
    assert!(!test.keys().contains(&"site/d2/other.txt".to_owned()));

    delete(&test, "site/d2/a.txt");
    test.server.put("site/d2/b.txt", b"stale, and of another size");
    let repaired = test.sync(&[]).success().report();
    assert_eq!((repaired.uploaded, repaired.copied, repaired.unchanged), (0, 2, 3), "{repaired:?}");
    assert_eq!(test.contents()["site/d2/a.txt"], "a");
    assert_eq!(test.contents()["site/d2/b.txt"], "b");
}

#[test]
fn a_duplicate_goes_when_its_file_goes() {
    let test = Test::new().file("keep.txt", "k").file("gone.txt", "g");
    chain(&test, MIRRORS);
    test.sync(&[]).success();
    test.remove("gone.txt");
    let report = test.sync(&[]).success().report();
    assert_eq!((report.uploaded, report.copied, report.deleted), (0, 0, 4));
    assert!(!test.keys().iter().any(|k| k.contains("gone")), "{:?}", test.keys());
    assert_eq!(test.keys().len(), 5, "keep.txt under four keys, and the marker");
}

#[test]
fn excluded_remote_keys_are_left_alone() {
    let test = Test::new()
        .file("a.txt", "a")
        .file("debug.log", "local log")
        .file("drafts/post.html", "draft")
        .remote("site/server.log", "remote log")
        .remote("site/drafts/old.html", "old draft")
        .remote("site/stale.txt", "stale");
    chain(&test, "[[transform]]\ntype = \"filter\"\nexclude = [\"*.log\", \"drafts/**\"]\n");
    let report = test.sync(&[]).success().report();
    assert_eq!((report.uploaded, report.deleted), (1, 1), "{report:?}");
    let mut got = test.contents();
    got.remove(MARKER);
    assert_eq!(
        got,
        bucket(&[("site/a.txt", "a"), ("site/drafts/old.html", "old draft"), ("site/server.log", "remote log")])
    );
}

#[test]
fn an_include_list_limits_what_is_published_and_deleted() {
    let test = Test::new()
        .file("docs/a.html", "a")
        .file("src/main.rs", "fn main")
        .remote("site/docs/old.html", "old")
        .remote("site/other/x", "x");
    chain(&test, "[[transform]]\ntype = \"filter\"\ninclude = [\"docs/**\"]\n");
    let report = test.sync(&["--force-delete"]).success().report();
    assert_eq!((report.uploaded, report.deleted), (1, 1));
    let keys = test.keys();
    assert_eq!(keys, ["site/docs/a.html", "site/other/x"], "a chain of filters leaves no marker");
}

const HEADERS: &str = r#"
[[transform]]
type = "headers"

[[transform.rules]]
glob = "**"
cache_control = "max-age=60"
metadata = { team = "web" }

[[transform.rules]]
glob = "assets/**"
cache_control = "public, max-age=31536000, immutable"
metadata = { tier = "static" }

[[transform.rules]]
glob = "*.js.gz"
content_type = "application/javascript"
content_encoding = "gzip"

[[transform.rules]]
glob = "report.pdf"
content_disposition = "attachment; filename=\"report.pdf\""
content_language = "en"

[[transform.rules]]
glob = "old.html"
website_redirect_location = "/new.html"
"#;

#[test]
fn headers_reach_the_objects() {
    let test = Test::new()
        .file("index.html", "home")
        .file("assets/app.js.gz", "gz")
        .file("report.pdf", "pdf")
        .file("old.html", "old");
    chain(&test, HEADERS);
    test.sync(&[]).success();

    let page = head(&test, "site/index.html");
    assert_eq!(page.cache_control(), Some("max-age=60"));
    assert_eq!(page.content_type(), Some("text/html; charset=utf-8"), "from the extension");
    assert_eq!(page.metadata().unwrap()["team"], "web");

    let asset = head(&test, "site/assets/app.js.gz");
    assert_eq!(asset.cache_control(), Some("public, max-age=31536000, immutable"), "the later rule wins");
    assert_eq!(asset.content_type(), Some("application/javascript"));
    assert_eq!(asset.content_encoding(), Some("gzip"));
    let metadata = asset.metadata().unwrap();
    assert_eq!((metadata["team"].as_str(), metadata["tier"].as_str()), ("web", "static"), "metadata merges");

    let pdf = head(&test, "site/report.pdf");
    assert_eq!(pdf.content_disposition(), Some("attachment; filename=\"report.pdf\""));
    assert_eq!(pdf.content_language(), Some("en"));
    assert_eq!(head(&test, "site/old.html").website_redirect_location(), Some("/new.html"));
}

#[test]
fn copies_carry_their_own_headers() {
    let test = Test::new().file("a/page.html", "p");
    chain(
        &test,
        r#"
[[transform]]
type = "prefix_duplicate"
rules = [{ from = "a/", to = "b/" }]

[[transform]]
type = "headers"
[[transform.rules]]
glob = "b/**"
cache_control = "no-store"
"#,
    );
    let report = test.sync(&[]).success().report();
    assert_eq!((report.uploaded, report.copied), (1, 1));
    assert_eq!(head(&test, "site/a/page.html").cache_control(), None);
    let copy = head(&test, "site/b/page.html");
    assert_eq!(copy.cache_control(), Some("no-store"));
    assert_eq!(copy.content_type(), Some("text/html; charset=utf-8"), "REPLACE gives the Content-Type again");
}

#[test]
fn a_changed_chain_republishes_every_key_once() {
    let test = Test::new().file("a.css", "a").file("b/c.css", "c").remote("site/.sitesync/other", "not the marker");
    let rules = |age: u32| {
        format!(
            "[[transform]]\ntype = \"headers\"\n[[transform.rules]]\nglob = \"*.css\"\ncache_control = \"max-age={age}\"\n"
        )
    };
    chain(&test, &rules(60));
    let first = test.sync(&[]).success().report();
    assert_eq!(first.deleted, 0, "the reserved folder is sitesync's: nothing there is deleted");
    assert!(test.keys().contains(&"site/.sitesync/other".to_owned()));
    assert!(test.keys().contains(&MARKER.to_owned()));
    assert_eq!(head(&test, "site/b/c.css").cache_control(), Some("max-age=60"));

    chain(&test, &rules(3600));
    let plan = test.plan(&[]).success();
    assert!(
        plan.lines().contains(&"copy site/a.css (in place, chain changed) [Cache-Control: max-age=3600]"),
        "{plan}"
    );
    let report = test.sync(&[]).success().report();
    assert_eq!((report.uploaded, report.copied, report.unchanged, report.bytes_uploaded), (0, 2, 0, 0), "{report:?}");
    assert_eq!(head(&test, "site/a.css").cache_control(), Some("max-age=3600"));
    assert_eq!(head(&test, "site/b/c.css").cache_control(), Some("max-age=3600"));
    assert_eq!(test.contents()["site/b/c.css"], "c");

    let again = test.sync(&[]).success().report();
    assert_eq!((again.copied, again.unchanged), (0, 2), "the new chain is recorded");

    // Back to no chain: the objects lose their headers once more.
    chain(&test, "");
    let cleared = test.sync(&[]).success().report();
    assert_eq!(cleared.copied, 2);
    assert_eq!(head(&test, "site/a.css").cache_control(), None);
    assert_eq!(test.sync(&[]).success().report().copied, 0);
}

#[test]
fn a_bad_table_names_the_file_and_the_key() {
    let test = Test::new().file("a.txt", "a");
    chain(
        &test,
        "[[transform]]\ntype = \"filter\"\nexclude = [\"*.log\"]\n\n[[transform]]\ntype = \"filter\"\ninclude = [\"ok\", \"[\"]\n",
    );
    test.sync(&[]).code(2).stderr_contains("sync.toml: key `transform[1].include[1]`: bad glob \"[\"");
    chain(&test, "[[transform]]\ntype = \"headers\"\nrules = [{ glob = \"*\", storage_class = \"COLD\" }]\n");
    test.sync(&[]).code(2).stderr_contains("key `transform[0].rules[0].storage_class`: unknown storage class \"COLD\"");
    assert!(test.keys().is_empty());
}

#[test]
fn multipart_uploads_and_their_copies_get_headers_too() {
    let big = vec![b'x'; 6 * 1024 * 1024];
    let test = Test::new().file("video/big.bin", &big);
    chain(
        &test,
        r#"
multipart_threshold = 5242880
multipart_chunk_size = 5242880

[[transform]]
type = "prefix_duplicate"
rules = [{ from = "video/", to = "v/" }]

[[transform]]
type = "headers"
rules = [{ glob = "**/*.bin", content_type = "video/mp4", cache_control = "max-age=5" }]
"#,
    );
    let report = test.sync(&[]).success().report();
    assert_eq!((report.uploaded, report.copied), (1, 1));
    for key in ["site/video/big.bin", "site/v/big.bin"] {
        let h = head(&test, key);
        assert_eq!((h.content_type(), h.cache_control()), (Some("video/mp4"), Some("max-age=5")), "{key}");
        assert_eq!(h.content_length(), Some(big.len() as i64));
    }
}

#[test]
fn editing_a_filter_republishes_nothing() {
    let test = Test::new().file("a.css", "a").file("b.log", "b");
    let with = |exclude: &str| {
        format!(
            "[[transform]]\ntype = \"filter\"\nexclude = [{exclude:?}]\n\n[[transform]]\ntype = \"headers\"\nrules = [{{ glob = \"*\", cache_control = \"max-age=1\" }}]\n"
        )
    };
    chain(&test, &with("*.tmp"));
    assert_eq!(test.sync(&[]).success().report().uploaded, 2);
    chain(&test, &with("*.log"));
    let report = test.sync(&[]).success().report();
    assert_eq!((report.uploaded, report.copied, report.unchanged, report.deleted), (0, 0, 1, 0), "{report:?}");
}
