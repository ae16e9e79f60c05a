//! `_redirects` and `_headers` at the source root, published by the real binary to the test
//! server: each rule kind compiled to what serves it, what is refused before anything is sent
//! (exit 2, naming the file and the line), and redirect objects synced like any key. The website
//! endpoint's side (the 301s, the routing rules) is tested against Garage in `tests/website.rs`,
//! and in a browser in `tests/browser.rs`.

mod support;

use std::path::Path;
use std::process::Command;

use support::{BUCKET, Test};

fn head(test: &Test, key: &str) -> aws_sdk_s3::operation::head_object::HeadObjectOutput {
    let server = &test.server;
    server
        .block_on(server.client.head_object().bucket(BUCKET).key(key).send())
        .unwrap_or_else(|e| panic!("{key}: {e:?}"))
}

/// A site with pages and the rules of `redirects`.
fn site(redirects: &str) -> Test {
    Test::new()
        .file("index.html", "<h1>home</h1>")
        .file("new/index.html", "<h1>new</h1>")
        .file("docs/guide.html", "<h1>guide</h1>")
        .file("_redirects", redirects)
}

#[test]
fn an_exact_rule_becomes_an_object_carrying_the_redirect_and_a_page_that_redirects_too() {
    let test = site("# moved\n/old /new/\n/docs/ https://docs.example.com/  301\n/caf%C3%A9.html /new/\n");
    let plan = test.plan(&[]).success();
    assert!(plan.lines().contains(&"redirect site/old -> /new/ (new)"), "{plan}");
    assert!(plan.lines().contains(&"redirect site/docs/index.html -> https://docs.example.com/ (new)"), "{plan}");
    let run = test.sync(&[]).success();
    assert_eq!(run.json()["redirect_objects"], 3, "{run}");
    let old = head(&test, "site/old");
    assert_eq!(old.website_redirect_location(), Some("/new/"));
    assert_eq!(old.content_type(), Some("text/html; charset=utf-8"));
    assert_eq!(head(&test, "site/café.html").website_redirect_location(), Some("/new/"));
    let page = &test.contents()["site/old"];
    assert!(page.contains(r#"<meta http-equiv="refresh" content="0; url=/new/">"#), "{page}");
    assert!(page.contains(r#"<a href="/new/">"#), "{page}");
    let keys = test.keys();
    assert!(!keys.contains(&"site/_redirects".to_owned()), "the file itself is never published: {keys:?}");
    assert!(keys.contains(&"site/docs/index.html".to_owned()) && keys.contains(&"site/docs/guide.html".to_owned()));
}

#[test]
fn a_second_run_uploads_nothing_and_a_removed_rule_deletes_its_object() {
    let test = site("/old /new/\n/gone /new/\n");
    test.sync(&[]).success();
    let again = test.sync(&[]).success();
    assert_eq!(again.report().counts(), (0, 0, 5, 0), "{again}");
    assert_eq!(again.json()["redirect_objects"], 0);

    test.write("_redirects", "/old /elsewhere/\n");
    let changed = test.sync(&[]).success();
    assert_eq!(changed.report().counts(), (1, 1, 3, 0), "{changed}");
    assert_eq!(changed.json()["redirect_objects"], 1, "the changed target is published again");
    assert_eq!(head(&test, "site/old").website_redirect_location(), Some("/elsewhere/"));
    assert!(!test.keys().contains(&"site/gone".to_owned()), "the removed rule's object is deleted");
}

#[test]
fn a_malformed_line_exits_2_naming_the_file_and_its_line_before_anything_is_sent() {
    let test = site("/old /new/\n\n/lonely\n");
    let run = test.sync(&[]).code(2);
    let file = test.path("_redirects");
    let expected = format!("error: {} line 3: \"/lonely\" has no destination", file.display());
    assert!(run.stderr.lines().any(|l| l.starts_with(&expected)), "{run}");
    assert!(test.keys().is_empty(), "nothing sent");

    test.write("_redirects", "/old /new/ 30x\n");
    test.sync(&[]).code(2).stderr_contains("_redirects line 1: \"30x\" is not a status");
    test.write("_redirects", "/old /new/\n");
    test.write("_headers", "/*\n  Cache-Control max-age=60\n");
    test.sync(&[]).code(2).stderr_contains("_headers line 2: \"Cache-Control max-age=60\" is neither a path");
}

#[test]
fn a_rewrite_is_refused_by_default_and_compiled_with_cloudfront_function() {
    let test = site("/old /new/\n/app/* /index.html 200\n/blog/:year/:slug /posts/:year/:slug 302\n");
    let run = test.sync(&[]).code(2);
    let line = run.errors().join("\n");
    assert!(line.contains("_redirects line 2: /app/* -> /index.html (200) is a 200 rewrite"), "{run}");
    assert!(line.contains("a CloudFront Function can: set `cloudfront_function = \"FILE\"`"), "{run}");
    assert!(test.keys().is_empty());

    test.config("sync.toml", "[redirects]\ncloudfront_function = \"redirects.js\"\n");
    let plan = test.plan(&[]).success();
    assert!(plan.lines().contains(&"cloudfront function redirects.js (would hold 3 rules)"), "{plan}");
    let js_path = test.tree.work().join("redirects.js");
    assert!(!js_path.exists(), "a plan writes nothing");
    let run = test.sync(&[]).success();
    assert_eq!(run.json()["redirect_objects"], 1, "the exact 301 is an object still");
    let js = std::fs::read_to_string(&js_path).unwrap();
    insta::assert_snapshot!("cloudfront_function", js);
    match node() {
        Some(node) => the_function_serves_the_rules(&node, &js_path),
        None => eprintln!("node is not installed: the function is checked by its snapshot only"),
    }
}

/// `node`, when installed.
fn node() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|dir| dir.join("node")).find(|p| p.is_file())
}

/// Runs the function's `handler` on requests, as CloudFront calls it, and checks what it returns.
fn the_function_serves_the_rules(node: &Path, js: &Path) {
    let script = r#"
const code = require("fs").readFileSync(process.argv[1], "utf8");
const handler = new Function(code + "; return handler;")();
const ask = (uri, querystring = {}) => {
  const out = handler({request: {uri, querystring, headers: {host: {value: "example.com"}}, cookies: {}}});
  return out.statusCode ? `${out.statusCode} ${out.headers.location.value}` : `rewrite ${out.uri}`;
};
console.log([
  ask("/old"), ask("/old/", {a: {value: "1"}}), ask("/app/deep/page"), ask("/blog/2024/hello"),
  ask("/blog/2024"), ask("/docs/"), ask("/new/x.html"),
].join("\n"));
"#;
    let out = Command::new(node).arg("-e").arg(script).arg(js).output().expect("running node");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        lines.lines().collect::<Vec<_>>(),
        [
            "301 /new/",
            "301 /new/?a=1",
            "rewrite /index.html",
            "302 /posts/2024/hello",
            "rewrite /blog/2024",
            "rewrite /docs/index.html",
            "rewrite /new/x.html",
        ]
    );
}

#[test]
fn headers_values_land_on_the_objects_after_the_chains_rules() {
    let test = site("/old /new/\n")
        .file("assets/app.css", "body{}".repeat(400))
        .file("_headers", "/*\n  Cache-Control: max-age=60\n  X-Amz-Meta-Team: web\n/assets/*\n  Cache-Control: immutable\n  Content-Encoding: gzip\n/new/\n  Content-Language: en\n");
    let config = r#"
[[transform]]
type = "headers"
[[transform.rules]]
glob = "**"
cache_control = "no-store"
content_disposition = "inline"

[[transform]]
type = "compress"
glob = ["assets/*.css"]
encoding = "gzip"
"#;
    test.config("sync.toml", config);
    let run = test.sync(&[]).success();
    assert_eq!(run.report().failed, 0, "{run}");
    let page = head(&test, "site/index.html");
    assert_eq!(page.cache_control(), Some("max-age=60"), "_headers wins over a headers rule");
    assert_eq!(page.content_disposition(), Some("inline"), "a field _headers does not set is the rule's");
    assert_eq!(page.metadata().and_then(|m| m.get("team")).map(String::as_str), Some("web"));
    assert_eq!(head(&test, "site/new/index.html").content_language(), Some("en"), "/new/ is its index.html");
    let css = head(&test, "site/assets/app.css");
    assert_eq!((css.cache_control(), css.content_encoding()), (Some("immutable"), Some("gzip")));
    assert_eq!(head(&test, "site/old").cache_control(), Some("max-age=60"), "on redirect objects too");
    assert!(!test.keys().contains(&"site/_headers".to_owned()));

    // An edit of _headers re-publishes the headers, by copy.
    test.write("_headers", "/*\n  Cache-Control: max-age=120\n");
    let edited = test.sync(&[]).success();
    let report = edited.report();
    // The compressed stylesheet is uploaded again (a compressed key is never copied in place).
    assert_eq!((report.uploaded, report.copied, report.failed), (1, 4, 0), "{edited}");
    assert_eq!(head(&test, "site/index.html").cache_control(), Some("max-age=120"));
    assert_eq!(test.sync(&[]).success().report().counts(), (0, 0, 5, 0), "and then nothing");
}

#[test]
fn a_header_s3_cannot_store_warns_naming_it_and_its_line_and_strict_refuses_it() {
    let test =
        site("").file("_headers", "/*\n  Content-Security-Policy: default-src 'self'\n  Cache-Control: no-cache\n");
    let run = test.sync(&[]).success();
    let warning = run.stderr.lines().find(|l| l.contains("WARN")).unwrap_or_else(|| panic!("no warning\n{run}"));
    assert!(warning.contains("_headers line 2: Content-Security-Policy is not a header S3 stores"), "{warning}");
    assert!(warning.contains("response headers policy"), "{warning}");
    assert_eq!(head(&test, "site/index.html").cache_control(), Some("no-cache"), "the rest applies");

    test.sync(&["--strict"]).code(2).stderr_contains("_headers line 2: Content-Security-Policy");
    test.config("sync.toml", "[redirects]\nstrict = true\n");
    test.sync(&[]).code(2).stderr_contains("refused under --strict");
}

#[test]
fn a_redirect_colliding_with_a_file_is_refused_naming_both_and_the_file_wins() {
    let test = site("/docs/guide.html /new/\n/old /new/\n");
    let run = test.sync(&[]).code(1);
    let report = run.report();
    assert_eq!(report.failed_keys(), [("docs/guide.html", "scan")], "{run}");
    let error = &report.failures[0].error;
    assert!(error.contains("_redirects line 1 redirects this key to /new/, but the site publishes a file"), "{error}");
    assert_eq!(test.contents()["site/docs/guide.html"], "<h1>guide</h1>", "the file wins");
    assert!(head(&test, "site/docs/guide.html").website_redirect_location().is_none());
    assert_eq!(head(&test, "site/old").website_redirect_location(), Some("/new/"), "the other rules are made");
}

#[test]
fn what_only_a_routing_rule_or_a_function_serves_is_refused_saying_so() {
    let test = site("/blog/* /posts/:splat\n");
    let run = test.sync(&[]).code(2);
    assert!(run.stderr.contains("_redirects line 1: /blog/* -> /posts/:splat (301) is a prefix redirect"), "{run}");
    assert!(run.stderr.contains("routing_rules = true"), "{run}");

    let many: String = (0..51).map(|i| format!("/p{i}/* /q{i}/:splat\n")).collect();
    test.write("_redirects", &many);
    test.config("sync.toml", "[redirects]\nrouting_rules = true\n");
    let run = test.sync(&[]).code(2);
    assert!(run.stderr.contains("_redirects line 51: 51 prefix rules make 51 routing rules"), "{run}");
    assert!(run.stderr.contains("at most 50"), "{run}");

    test.write("_redirects", "/shop /closed.html 404\n");
    test.sync(&[]).code(2).stderr_contains("_redirects line 1: /shop -> /closed.html (404): status 404");
}

#[test]
fn a_key_redirected_by_both_redirects_and_a_headers_rule_is_refused_at_load() {
    let test = site("/old.html /new/\n");
    let config = "[[transform]]\ntype = \"headers\"\n[[transform.rules]]\nglob = \"*.html\"\nwebsite_redirect_location = \"/x\"\n";
    test.config("sync.toml", config);
    let run = test.sync(&[]).code(2);
    assert!(run.stderr.contains("_redirects line 1: /old.html -> /new/ (301): transform[0].rules[0]"), "{run}");
    assert!(test.keys().is_empty());
}

#[test]
fn rules_may_be_written_in_sync_toml_after_those_of_the_file() {
    let test = site("/old /new/\n");
    test.config(
        "sync.toml",
        "[redirects]\nrules = [{ from = \"/older\", to = \"/new/\" }, { from = \"/x\", to = \"y\" }]\n",
    );
    test.sync(&[]).code(2).stderr_contains("sync.toml: key `redirects.rules[1]`: to = \"y\" is not a path");
    test.config("sync.toml", "[redirects]\nrules = [{ from = \"/older\", to = \"/new/\", status = 301 }]\n");
    let run = test.sync(&[]).success();
    assert_eq!(run.json()["redirect_objects"], 2, "{run}");
    assert_eq!(head(&test, "site/older").website_redirect_location(), Some("/new/"));
}

#[test]
fn each_shard_publishes_the_redirect_keys_of_its_own_part() {
    let test = site("/a/old /new/\n/b/old /new/\n/c/old /new/\n/d/old /new/\n/old /new/\n")
        .file("a/x.html", "a")
        .file("b/x.html", "b");
    let mut made = 0;
    for shard in ["1/2", "2/2"] {
        let run = test.sync(&["--shard", shard]).success();
        made += run.json()["redirect_objects"].as_u64().unwrap();
    }
    assert_eq!(made, 5, "each redirect made once, by the shard owning its key");
    for key in ["site/a/old", "site/b/old", "site/c/old", "site/d/old", "site/old"] {
        assert_eq!(head(&test, key).website_redirect_location(), Some("/new/"), "{key}");
    }
    for shard in ["1/2", "2/2"] {
        let run = test.sync(&["--shard", shard]).success();
        assert_eq!(run.report().uploaded, 0, "{run}");
    }
}

#[test]
fn a_rule_without_bang_that_would_hide_files_of_the_site_warns_naming_the_first() {
    let test = site("/* /index.html 200\n");
    test.config("sync.toml", "[redirects]\ncloudfront_function = \"redirects.js\"\n");
    let run = test.sync(&[]).success();
    let warning = run.stderr.lines().find(|l| l.contains("WARN")).unwrap_or_else(|| panic!("no warning\n{run}"));
    assert!(warning.contains("_redirects line 1: /* -> /index.html (200): it also matches 3 files"), "{warning}");
    assert!(warning.contains("(docs/guide.html first), which the CloudFront Function takes too"), "{warning}");
    assert!(warning.contains("custom error response"), "{warning}");

    test.write("_redirects", "/* /index.html 200!\n");
    let forced = test.sync(&[]).success();
    assert!(!forced.stderr.contains("WARN"), "`!` says it is meant\n{forced}");
}

#[test]
fn with_a_chain_that_creates_keys_redirects_are_made_after_the_walk_and_a_created_key_still_wins() {
    let test = site("/old /new/\n/manual/guide.html /new/\n");
    test.config(
        "sync.toml",
        "[[transform]]\ntype = \"prefix_duplicate\"\nrules = [{ from = \"docs/\", to = \"manual/\" }]\n",
    );
    let run = test.sync(&[]).code(1);
    assert_eq!(run.report().failed_keys(), [("manual/guide.html", "scan")], "{run}");
    assert_eq!(test.contents()["site/manual/guide.html"], "<h1>guide</h1>", "the duplicate wins");
    assert_eq!(head(&test, "site/old").website_redirect_location(), Some("/new/"));

    test.write("_redirects", "/old /new/\n");
    // The chain's marker was not written after the failure: the keys are copied in place once.
    let fixed = test.sync(&[]).success();
    assert_eq!((fixed.report().uploaded, fixed.report().failed), (0, 0), "{fixed}");
    assert_eq!(test.sync(&[]).success().report().counts(), (0, 0, 5, 0));
}
