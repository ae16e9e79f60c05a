//! The `compress` transform against a real S3 server: what is stored (compressed bytes, their
//! Content-Encoding, the original's Content-Type), what is not compressed (below `min_size`, or
//! not smaller once compressed), and that compressed keys are as cheap to keep in sync as plain
//! ones: a second run reads nothing, a rebuild uploads nothing, large files are streamed through a
//! temporary file and uploaded in parts, and changing the chain re-publishes the right bytes.

mod support;

use std::io::Read;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use support::{BUCKET, Store, Test, Tree};

const MIB: usize = 1024 * 1024;

const GZIP_CSS_JS: &str = r#"
[[transform]]
type = "compress"
glob = ["**/*.css", "**/*.js"]
encoding = "gzip"
"#;

/// A stylesheet of `n` bytes: it compresses well.
fn css(n: usize) -> Vec<u8> {
    let rule = b".nav a { color: #2a5d8f; margin: 0 auto; font-family: system-ui, sans-serif; }\n";
    rule.iter().cycle().take(n).copied().collect()
}

/// `n` bytes that do not compress.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `n` hex digits: they compress to about half.
fn hex(n: usize, seed: u64) -> Vec<u8> {
    noise(n, seed).iter().map(|b| b"0123456789abcdef"[(b & 15) as usize]).collect()
}

fn head(server: &Store, key: &str) -> HeadObjectOutput {
    server
        .block_on(server.client.head_object().bucket(BUCKET).key(key).send())
        .unwrap_or_else(|e| panic!("head {key}: {e:?}"))
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).expect("a gzip stream");
    out
}

fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(bytes, 4096).read_to_end(&mut out).expect("a brotli stream");
    out
}

fn n(report: &serde_json::Value, field: &str) -> u64 {
    report[field].as_u64().unwrap_or_else(|| panic!("no {field} in {report}"))
}

fn sync(tree: &Tree, store: &Store) -> serde_json::Value {
    tree.sync(&store.endpoint(), &["--json"]).run().code(0).json()
}

/// Gives every file of the tree a new mtime, its bytes unchanged: a site generator's rebuild.
fn rebuild(tree: &Tree) {
    let later = SystemTime::now() + Duration::from_secs(30);
    for (key, _) in tree.expected() {
        support::set_mtime(&tree.path(key.trim_start_matches("site/")), later);
    }
}

#[test]
fn a_compressed_key_is_stored_compressed_with_its_own_type() {
    let test = Test::new()
        .file("css/site.css", css(20_000))
        .file("js/app.js", css(3000))
        .file("css/tiny.css", css(1000))
        .file("css/noise.css", noise(5000, 7))
        .file("index.html", css(5000));
    test.config("sync.toml", GZIP_CSS_JS);
    let report = test.sync(&[]).success().json();
    let objects = test.objects();

    let (size, stored) = &objects["site/css/site.css"];
    assert!(*size < 2000, "stored compressed: {size} bytes");
    assert_eq!(gunzip(stored), css(20_000), "the stored bytes gunzip to the file");
    let site = head(&test.server, "site/css/site.css");
    assert_eq!(site.content_encoding(), Some("gzip"));
    assert_eq!(site.content_type(), Some("text/css; charset=utf-8"), "the file's type, not application/gzip");
    let app = head(&test.server, "site/js/app.js");
    assert_eq!((app.content_encoding(), app.content_type()), (Some("gzip"), Some("text/javascript; charset=utf-8")));
    assert_eq!(gunzip(&objects["site/js/app.js"].1), css(3000));

    // Below min_size (1024), not smaller once compressed, or not matched: stored as they are.
    for (key, content) in [("css/tiny.css", css(1000)), ("css/noise.css", noise(5000, 7)), ("index.html", css(5000))] {
        let key = format!("site/{key}");
        assert_eq!(objects[&key].1, content, "{key}");
        assert_eq!(head(&test.server, &key).content_encoding(), None, "{key}");
    }
    let published = objects.iter().filter(|(key, _)| !key.starts_with("site/.sitesync/"));
    let sent: u64 = published.map(|(_, (size, _))| size).sum();
    assert_eq!(n(&report, "bytes_uploaded"), sent, "the report counts the bytes sent, not the files'");
}

#[test]
fn a_second_run_reads_nothing_and_a_rebuild_uploads_nothing() {
    for store in [Store::start(), Store::without_listed_etags()] {
        let tree = Tree::new();
        tree.file("css/site.css", css(20_000));
        tree.file("css/noise.css", noise(5000, 3));
        tree.file("js/app.js", css(4000));
        tree.config(GZIP_CSS_JS);
        assert_eq!(n(&sync(&tree, &store), "uploaded"), 3);

        let again = sync(&tree, &store);
        assert_eq!((n(&again, "uploaded"), n(&again, "unchanged"), n(&again, "hashed")), (0, 3, 0), "{again}");

        rebuild(&tree);
        let rebuilt = sync(&tree, &store);
        assert_eq!((n(&rebuilt, "uploaded"), n(&rebuilt, "unchanged")), (0, 3), "same bytes, new mtimes: {rebuilt}");
        assert_eq!(n(&rebuilt, "hashed"), 3, "each file read (and compressed) once to compare");
        assert_eq!(n(&rebuilt, "bytes_hashed"), 29_000, "the bytes read, not the compressed ones");
        let settled = sync(&tree, &store);
        assert_eq!((n(&settled, "uploaded"), n(&settled, "hashed")), (0, 0), "the state learned it: {settled}");

        // An edit of the same size is seen through the compressed bytes.
        let mut edited = css(20_000);
        edited[100] = b'X';
        tree.file("css/site.css", &edited);
        support::set_mtime(&tree.path("css/site.css"), SystemTime::now() + Duration::from_secs(60));
        let report = sync(&tree, &store);
        assert_eq!(n(&report, "uploaded"), 1, "{report}");
        assert_eq!(gunzip(&store.objects()["site/css/site.css"]), edited);
    }
}

#[test]
fn brotli_works_too() {
    let test = Test::new().file("css/site.css", css(30_000)).file("app.wasm", noise(3000, 5));
    test.config(
        "sync.toml",
        "[[transform]]\ntype = \"compress\"\nglob = [\"**/*.css\", \"*.wasm\"]\nencoding = \"br\"\nmin_size = 100\n",
    );
    test.sync(&[]).success();
    let objects = test.objects();
    assert_eq!(unbrotli(&objects["site/css/site.css"].1), css(30_000));
    let site = head(&test.server, "site/css/site.css");
    assert_eq!((site.content_encoding(), site.content_type()), (Some("br"), Some("text/css; charset=utf-8")));
    let wasm = head(&test.server, "site/app.wasm");
    assert_eq!((wasm.content_encoding(), wasm.content_type()), (None, Some("application/wasm")), "did not shrink");
    let again = test.sync(&[]).success().report();
    assert_eq!((again.uploaded, again.unchanged), (0, 2));
}

#[test]
fn large_files_are_streamed_and_uploaded_in_parts() {
    let store = Store::start();
    let tree = Tree::new();
    // 3 MiB of stylesheet: compressed through a temporary file, one PutObject.
    tree.file("big.css", css(3 * MIB));
    // 12 MiB of hex digits: about 6 MiB compressed, above a 5 MiB threshold: two parts.
    tree.file("huge.js", hex(12 * MIB, 11));
    tree.config(&format!("multipart_threshold = {}\nmultipart_chunk_size = {}\n{GZIP_CSS_JS}", 5 * MIB, 5 * MIB));
    let report = sync(&tree, &store);
    assert_eq!(n(&report, "uploaded"), 2);
    let objects = store.objects();
    assert_eq!(gunzip(&objects["site/big.css"]), css(3 * MIB));
    assert_eq!(gunzip(&objects["site/huge.js"]), hex(12 * MIB, 11));
    let huge = head(&store, "site/huge.js");
    assert_eq!(huge.content_encoding(), Some("gzip"), "CreateMultipartUpload carries the encoding");
    let recorded = huge.metadata().and_then(|m| m.get("sitesync-source-size")).map(String::as_str);
    assert_eq!(recorded, Some("12582912"), "the object records its source's size");
    let etag = huge.e_tag().unwrap().trim_matches('"').to_owned();
    assert!(etag.ends_with("-2"), "a multipart ETag of the compressed bytes, in 5 MiB parts: {etag}");
    assert!((huge.content_length().unwrap() as usize) < 7 * MIB, "Content-Length is the compressed length");

    // A rebuild: the multipart ETag is recomputed over the compressed bytes and matches.
    rebuild(&tree);
    let rebuilt = sync(&tree, &store);
    assert_eq!((n(&rebuilt, "uploaded"), n(&rebuilt, "unchanged")), (0, 2), "{rebuilt}");
}

#[test]
fn adding_or_removing_the_step_republishes_the_right_bytes() {
    let test = Test::new().file("css/site.css", css(20_000)).file("index.html", css(3000));
    let first = test.sync(&[]).success().report();
    assert_eq!(first.uploaded, 2);

    // Added: the compressed key is uploaded again (its bytes change), the page copied in place.
    test.config("sync.toml", GZIP_CSS_JS);
    let added = test.sync(&[]).success().report();
    assert_eq!((added.uploaded, added.copied), (1, 1), "{added:?}");
    assert_eq!(head(&test.server, "site/css/site.css").content_encoding(), Some("gzip"));
    assert_eq!(gunzip(&test.objects()["site/css/site.css"].1), css(20_000));

    // Removed: the object is smaller than the file, so it is uploaded plain, without the header.
    test.config("sync.toml", "");
    let removed = test.sync(&[]).success().report();
    assert_eq!(removed.uploaded, 1, "{removed:?}");
    assert_eq!(test.objects()["site/css/site.css"].1, css(20_000));
    assert_eq!(head(&test.server, "site/css/site.css").content_encoding(), None);
}

#[test]
fn a_wrong_table_names_its_key() {
    let test = Test::new().file("a.css", "x");
    test.config("sync.toml", "[[transform]]\ntype = \"compress\"\nglob = [\"*.css\"]\nencoding = \"zstd\"\n");
    let outcome = test.sync(&[]).code(2);
    assert!(outcome.stderr.contains("key `transform[0].encoding`: \"zstd\" is not \"gzip\" or \"br\""), "{outcome}");
    assert!(test.keys().is_empty());
}

/// Rewrites a source file as `cp -p` or a `SOURCE_DATE_EPOCH` build would: new bytes, an mtime
/// two hours ago, older than its object.
fn edit_keeping_an_old_mtime(tree: &Tree, key: &str, content: &[u8]) {
    let path = tree.file(key, content);
    support::set_mtime(&path, SystemTime::now() - Duration::from_secs(7200));
}

#[test]
fn an_old_mtime_edit_of_a_compressed_file_is_published_without_a_state() {
    let store = Store::start();
    let tree = Tree::new();
    tree.file("css/site.css", css(20_000));
    tree.file("css/other.css", css(8000));
    tree.config(GZIP_CSS_JS);
    let stateless = |args: &[&str]| {
        let mut all = vec!["--json", "--no-state"];
        all.extend_from_slice(args);
        tree.sync(&store.endpoint(), &all).run().code(0).json()
    };
    assert_eq!(n(&stateless(&[]), "uploaded"), 2);

    // An edit that changes the file's size, with an mtime older than its object.
    edit_keeping_an_old_mtime(&tree, "css/site.css", &css(25_000));
    // `compare = "mtime"` reads nothing: an old mtime hides any edit of a compressed file from it.
    let by_mtime = stateless(&["--compare", "mtime"]);
    assert_eq!(n(&by_mtime, "uploaded"), 0, "the documented blind spot of the mtime rule: {by_mtime}");
    let report = stateless(&[]);
    assert_eq!(n(&report, "uploaded"), 1, "the source's size differs from the one its object records: {report}");
    assert_eq!(gunzip(&store.objects()["site/css/site.css"]), css(25_000));
    let again = stateless(&[]);
    assert_eq!((n(&again, "uploaded"), n(&again, "unchanged")), (0, 2), "{again}");

    // As for a plain file, an edit of the same size with an old mtime is the blind spot of a run
    // without a state: the state, or `--compare checksum`, sees it.
    let mut same_size = css(25_000);
    same_size[10] = b'X';
    edit_keeping_an_old_mtime(&tree, "css/site.css", &same_size);
    assert_eq!(n(&stateless(&[]), "uploaded"), 0);
    assert_eq!(n(&stateless(&["--compare", "checksum"]), "uploaded"), 1);
    assert_eq!(gunzip(&store.objects()["site/css/site.css"]), same_size);
}

#[test]
fn a_compressed_object_without_its_source_size_is_uploaded_once_more() {
    // As an older version (or another tool) left it: the gzip bytes, no record of the source.
    let store = Store::start();
    let gz = {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut gz, &css(20_000)).unwrap();
        gz.finish().unwrap()
    };
    let put = store.client.put_object().bucket(BUCKET).key("site/css/site.css").content_encoding("gzip");
    store.block_on(put.body(gz.into()).send()).unwrap();
    let tree = Tree::new();
    tree.file("css/site.css", css(20_000));
    tree.config(GZIP_CSS_JS);
    let run = |args: &[&str]| {
        let mut all = vec!["--json", "-v"];
        all.extend_from_slice(args);
        tree.sync(&store.endpoint(), &all).run().code(0)
    };
    let first = run(&["--no-state"]);
    assert_eq!(n(&first.json(), "uploaded"), 1, "{first}");
    let recorded = head(&store, "site/css/site.css").metadata().and_then(|m| m.get("sitesync-source-size")).cloned();
    assert_eq!(recorded.as_deref(), Some("20000"));
    let again = run(&["--no-state"]);
    assert_eq!(n(&again.json(), "uploaded"), 0, "{again}");
    assert!(again.stderr.contains("asked 1 compressed objects"), "{again}");
    // With a state, the first run asks and records the answer; the next asks nothing.
    assert_eq!(n(&run(&[]).json(), "uploaded"), 0);
    let settled = run(&[]);
    assert_eq!(n(&settled.json(), "uploaded"), 0);
    assert!(!settled.stderr.contains("compressed objects the size"), "{settled}");
}

#[test]
fn trust_state_refuses_a_changed_chain_and_says_which_run_repairs_it() {
    let test = Test::new().file("css/site.css", css(20_000)).file("index.html", css(3000));
    test.config("sync.toml", GZIP_CSS_JS);
    assert_eq!(test.sync(&[]).success().report().uploaded, 2);

    // The step removed: the state holds the compressed key's source size, which is the file's, so
    // a copy in place would serve the gzip bytes as plain CSS.
    test.config("sync.toml", "");
    for args in [&["--trust-state"][..], &["--trust-state", "--dry-run"]] {
        let refused = test.sync(args).code(2);
        assert!(refused.stderr.contains("run once without --trust-state"), "{refused}");
    }
    let site = head(&test.server, "site/css/site.css");
    assert_eq!(site.content_encoding(), Some("gzip"), "nothing was sent");
    assert_eq!(gunzip(&test.objects()["site/css/site.css"].1), css(20_000));

    let repaired = test.sync(&[]).success().report();
    assert_eq!((repaired.uploaded, repaired.copied), (1, 1), "{repaired:?}");
    assert_eq!(test.objects()["site/css/site.css"].1, css(20_000));
    assert_eq!(head(&test.server, "site/css/site.css").content_encoding(), None);
    let trusted = test.sync(&["--trust-state"]).success().report();
    assert_eq!((trusted.uploaded, trusted.copied, trusted.unchanged), (0, 0, 2), "{trusted:?}");
}

/// A rule that says the stylesheets are gzip (wrong wherever they are not), and one for a file
/// compressed before the run.
const ENCODING_RULES: &str = r#"
[[transform]]
type = "headers"

[[transform.rules]]
glob = "**/*.css"
content_encoding = "gzip"

[[transform.rules]]
glob = "**/*.js.gz"
content_type = "text/javascript"
content_encoding = "gzip"
"#;

const COMPRESS_CSS: &str = r#"
[[transform]]
type = "compress"
glob = ["**/*.css"]
encoding = "br"
"#;

#[test]
fn content_encoding_follows_the_bytes_where_a_compress_step_matched() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &css(5000)).unwrap();
    let pre_compressed = gz.finish().unwrap();
    // The headers step before the compress step, and after it.
    for chain in [format!("{ENCODING_RULES}{COMPRESS_CSS}"), format!("{COMPRESS_CSS}{ENCODING_RULES}")] {
        let test = Test::new()
            .file("css/site.css", css(20_000))
            .file("css/noise.css", noise(5000, 9))
            .file("css/tiny.css", css(500))
            .file("js/app.js.gz", &pre_compressed);
        test.config("sync.toml", &chain);
        let run = test.sync(&[]).success();
        let encoding = |key: &str| head(&test.server, key).content_encoding().map(str::to_owned);
        assert_eq!(encoding("site/css/noise.css"), None, "did not shrink: sent as it is\n{chain}");
        assert_eq!(encoding("site/css/tiny.css"), None, "below min_size: sent as it is\n{chain}");
        assert_eq!(encoding("site/css/site.css").as_deref(), Some("br"), "the bytes' encoding, not the rule's");
        assert_eq!(encoding("site/js/app.js.gz").as_deref(), Some("gzip"), "no compress step matched: the rule's");
        assert_eq!(unbrotli(&test.objects()["site/css/site.css"].1), css(20_000));
        assert!(run.stderr.contains("Content-Encoding"), "the dropped value is named in a warning\n{run}");
    }
}
