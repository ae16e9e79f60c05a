//! Deploys that never break an open page (docs/deploys.md), end to end against the in-process
//! server: the cache policy for fingerprinted names, and the immutable guard.

mod support;

use support::proxy::{Fault, Rule};
use support::{BUCKET, Store, Test, Tree};

const YEAR: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "public, max-age=0, must-revalidate";

fn head(test: &Test, key: &str) -> aws_sdk_s3::operation::head_object::HeadObjectOutput {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime
        .block_on(test.server.client.head_object().bucket(BUCKET).key(format!("site/{key}")).send())
        .unwrap_or_else(|e| panic!("head {key}: {e:?}"))
}

fn cache_control(test: &Test, key: &str) -> Option<String> {
    head(test, key).cache_control().map(str::to_owned)
}

/// The names of the issue: fingerprinted first, then not.
const FINGERPRINTED: [&str; 3] = ["app.3f2a91c7.js", "index-BxK9a2Lm.js", "static/js/main.8e3f1c2a.chunk.js"];
const PLAIN: [&str; 4] = ["jquery-3.7.1.min.js", "bootstrap.bundle.min.js", "2024/index.html", "logo.svg"];

fn site() -> Test {
    let mut test = Test::new();
    for key in FINGERPRINTED.iter().chain(&PLAIN) {
        test = test.file(key, format!("bytes of {key}"));
    }
    test
}

#[test]
fn the_cache_policy_gives_fingerprinted_names_a_year_and_every_other_key_revalidation() {
    let test = site();
    test.config("sync.toml", "cache_policy = \"auto\"\n");
    let report = test.sync(&[]).success().report();
    assert_eq!(report.uploaded, 7, "{report:?}");
    for key in FINGERPRINTED {
        assert_eq!(cache_control(&test, key).as_deref(), Some(YEAR), "{key}");
    }
    for key in PLAIN {
        assert_eq!(cache_control(&test, key).as_deref(), Some(REVALIDATE), "{key}");
    }
    // Off (the default, here from the flag over the file) sets no Cache-Control.
    let off = Test::new().file("app.3f2a91c7.js", "x");
    off.config("sync.toml", "cache_policy = \"auto\"\n");
    off.sync(&["--cache-policy", "off"]).success();
    assert_eq!(cache_control(&off, "app.3f2a91c7.js"), None);
}

#[test]
fn a_headers_rule_overrides_the_policy_field_by_field() {
    let test = site();
    test.config(
        "sync.toml",
        r#"cache_policy = "auto"

[[transform]]
type = "headers"

[[transform.rules]]
glob = "**/*.svg"
content_language = "en"

[[transform.rules]]
glob = "2024/**"
cache_control = "public, max-age=60"

[[transform.rules]]
glob = "static/**"
cache_control = "no-cache"
content_language = "fr"
"#,
    );
    test.sync(&[]).success();
    // A rule that sets another field keeps the policy's Cache-Control.
    let logo = head(&test, "logo.svg");
    assert_eq!((logo.cache_control(), logo.content_language()), (Some(REVALIDATE), Some("en")));
    // A rule's cache_control wins, on a plain name and on a fingerprinted one.
    assert_eq!(cache_control(&test, "2024/index.html").as_deref(), Some("public, max-age=60"));
    let chunk = head(&test, "static/js/main.8e3f1c2a.chunk.js");
    assert_eq!((chunk.cache_control(), chunk.content_language()), (Some("no-cache"), Some("fr")));
    // Keys no rule matches keep the policy's.
    assert_eq!(cache_control(&test, "app.3f2a91c7.js").as_deref(), Some(YEAR));
    assert_eq!(cache_control(&test, "jquery-3.7.1.min.js").as_deref(), Some(REVALIDATE));
}

#[test]
fn turning_the_policy_on_republishes_the_headers_by_copy_once() {
    let test = site();
    test.sync(&[]).success();
    assert_eq!(cache_control(&test, "app.3f2a91c7.js"), None);
    let on = test.sync(&["--cache-policy", "auto"]).success().report();
    assert_eq!((on.uploaded, on.copied, on.bytes_uploaded), (0, 7, 0), "{on:?}");
    assert_eq!(cache_control(&test, "app.3f2a91c7.js").as_deref(), Some(YEAR));
    assert_eq!(cache_control(&test, "logo.svg").as_deref(), Some(REVALIDATE));
    let again = test.sync(&["--cache-policy", "auto"]).success().report();
    assert_eq!((again.uploaded, again.copied, again.unchanged), (0, 0, 7), "{again:?}");
    // And off again re-publishes them without it.
    let off = test.sync(&[]).success().report();
    assert_eq!(off.copied, 7, "{off:?}");
    assert_eq!(cache_control(&test, "app.3f2a91c7.js"), None);
}

#[test]
fn a_vite_manifest_names_hashes_the_name_rule_misses() {
    let manifest = r#"{
      "index.html": { "file": "assets/index-C-fTYq3D.js", "src": "index.html", "isEntry": true,
                      "css": ["assets/index-BxKqaLmz.css"] }
    }"#;
    let test = Test::new()
        .file(".vite/manifest.json", manifest)
        .file("assets/index-C-fTYq3D.js", "js")
        .file("assets/index-BxKqaLmz.css", "css")
        .file("assets/other-C-fTYq3D.js", "not listed")
        .file("index.html", "<script src=/assets/index-C-fTYq3D.js></script>");
    test.sync(&["--cache-policy", "auto"]).success();
    assert_eq!(cache_control(&test, "assets/index-C-fTYq3D.js").as_deref(), Some(YEAR));
    assert_eq!(cache_control(&test, "assets/index-BxKqaLmz.css").as_deref(), Some(YEAR));
    // The same name unlisted: the name rule splits its hash at `-` and finds none.
    assert_eq!(cache_control(&test, "assets/other-C-fTYq3D.js").as_deref(), Some(REVALIDATE));
    assert_eq!(cache_control(&test, "index.html").as_deref(), Some(REVALIDATE));
}

/// A published site: a fingerprinted asset, a page and an old asset the next build drops.
fn published() -> Test {
    let test = Test::new()
        .file("app.3f2a91c7.js", "console.log(1)")
        .file("index.html", "<script src=app.3f2a91c7.js></script>")
        .file("old.1a2b3c4d.js", "old");
    test.config("sync.toml", "cache_policy = \"auto\"\n");
    test.sync(&[]).success();
    test
}

#[test]
fn the_guard_refuses_new_bytes_under_an_immutable_name_names_the_key_and_keeps_its_object() {
    let test = published();
    // A build whose hash is not deterministic: new bytes (same size, then another size) under
    // the same name, a new page, and the old asset gone.
    for content in ["console.log(2)", "console.log(2);"] {
        test.write("app.3f2a91c7.js", content);
        test.touch("app.3f2a91c7.js");
        test.write("index.html", format!("<p>{content}</p>"));
        test.touch("index.html");
        if test.path("old.1a2b3c4d.js").exists() {
            test.remove("old.1a2b3c4d.js");
        }
        let run = test.sync(&[]).code(1);
        let report = run.report();
        assert_eq!(report.failed_keys(), [("app.3f2a91c7.js", "upload")], "{run}");
        assert!(report.failures[0].error.contains("immutable"), "{}", report.failures[0].error);
        assert!(report.failures[0].error.contains("--allow-immutable-change"), "{}", report.failures[0].error);
        assert!(run.stderr.contains("app.3f2a91c7.js"), "the key is named on stderr\n{run}");
        assert_eq!((report.uploaded, report.deleted, report.deletes_withheld), (1, 0, 1), "{report:?}");
        let objects = test.contents();
        assert_eq!(objects["site/app.3f2a91c7.js"], "console.log(1)", "its object is kept");
        assert!(objects.contains_key("site/old.1a2b3c4d.js"), "deletes are withheld");
        assert_eq!(objects["site/index.html"], format!("<p>{content}</p>"), "the rest is published");
    }
    // The plan says the same.
    let plan = test.plan(&[]);
    assert!(plan.lines().iter().any(|l| l.starts_with("fail site/app.3f2a91c7.js refused:")), "{plan}");
    assert!(plan.lines().contains(&"delete site/old.1a2b3c4d.js (withheld: a failure below)"), "{plan}");

    let allowed = test.sync(&["--allow-immutable-change"]).success().report();
    assert_eq!((allowed.uploaded, allowed.deleted, allowed.failed), (1, 1, 0), "{allowed:?}");
    assert_eq!(test.contents()["site/app.3f2a91c7.js"], "console.log(2);");
}

#[test]
fn the_guard_follows_the_final_cache_control_not_the_policy() {
    // No policy: a rule makes a plain name immutable, and the guard holds it.
    let test = Test::new().file("fonts/inter.woff2", "v1").file("app.3f2a91c7.js", "v1");
    let rules = |fonts: &str| {
        format!(
            "[[transform]]\ntype = \"headers\"\n\n[[transform.rules]]\nglob = \"fonts/**\"\ncache_control = \
             \"{fonts}\"\n"
        )
    };
    test.config("sync.toml", &rules("public, max-age=31536000, immutable"));
    test.sync(&[]).success();
    test.write("fonts/inter.woff2", "v2");
    test.touch("fonts/inter.woff2");
    test.write("app.3f2a91c7.js", "v2");
    test.touch("app.3f2a91c7.js");
    let report = test.sync(&[]).code(1).report();
    assert_eq!(report.failed_keys(), [("fonts/inter.woff2", "upload")], "the fingerprinted name has no immutable");
    // A rule that drops `immutable` lets the change through (re-publishing the headers with it).
    test.config("sync.toml", &rules("public, max-age=3600"));
    let report = test.sync(&[]).success().report();
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(test.contents()["site/fonts/inter.woff2"], "v2");
}

#[test]
fn a_rebuild_with_the_same_bytes_passes_the_guard_without_a_request_of_its_own() {
    let test = published();
    // The whole site rebuilt: new mtimes, the same bytes. `mtime` would upload every file; the
    // guard has the immutable one read and compared with its ETag instead.
    for key in ["app.3f2a91c7.js", "index.html", "old.1a2b3c4d.js"] {
        test.touch(key);
    }
    // Any HEAD or GET of an object under the prefix (the chain marker aside) fails the run.
    let object_read = |h: &support::proxy::Head| {
        let object = h.target.starts_with("/bkt/site/") && !h.target.starts_with("/bkt/site/.sitesync/");
        object && (h.method == "HEAD" || h.method == "GET")
    };
    let proxy = test.server.proxy(1, vec![Rule::new(Fault::BadRequest).when(object_read)]);
    // The history off: keeping the page before it is overwritten would HEAD it.
    let args = ["--json", "--compare", "mtime", "--no-state", "--keep-deploys", "0"];
    let run = test.tree.sync(&proxy.endpoint(), &args).run();
    let report = run.success().report();
    assert_eq!(report.failed, 0);
    assert_eq!(proxy.injected(Fault::BadRequest), 0, "no object was read");
    // The page went by the mtime rule; both fingerprinted assets were read and found the same.
    assert_eq!((report.uploaded, report.unchanged), (1, 2), "{report:?}");
}

#[test]
fn an_immutable_key_nothing_can_compare_is_refused_until_the_state_can() {
    // Listings without ETags and no local state: a rebuilt immutable file cannot be compared.
    let test = Test { server: Store::without_listed_etags(), tree: Tree::new() }.file("app.3f2a91c7.js", "v1");
    test.config("sync.toml", "cache_policy = \"auto\"\n");
    test.sync(&["--no-state"]).success();
    test.touch("app.3f2a91c7.js");
    let report = test.sync(&["--no-state"]).code(1).report();
    assert_eq!(report.failed_keys(), [("app.3f2a91c7.js", "upload")]);
    assert!(report.failures[0].error.contains("nothing can tell"), "{}", report.failures[0].error);
    // Published once on purpose, with the state on: the state records the bytes it sent ...
    test.sync(&["--allow-immutable-change"]).success();
    // ... so the next rebuild with the same bytes is compared with it and passes, and new bytes
    // are refused as different.
    test.touch("app.3f2a91c7.js");
    let same = test.sync(&[]).success().report();
    assert_eq!((same.uploaded, same.failed), (0, 0), "{same:?}");
    test.write("app.3f2a91c7.js", "v2");
    test.touch("app.3f2a91c7.js");
    let changed = test.sync(&[]).code(1).report();
    assert!(changed.failures[0].error.contains("holds other bytes"), "{}", changed.failures[0].error);
    assert_eq!(test.contents()["site/app.3f2a91c7.js"], "v1");
}

#[test]
fn a_new_copy_of_a_refused_upload_is_not_made_from_its_old_object() {
    let test = Test::new().file("app.3f2a91c7.js", "v1");
    test.config(
        "sync.toml",
        "cache_policy = \"auto\"\n\n[[transform]]\ntype = \"prefix_duplicate\"\nrules = [{ from = \"\", to = \"v/\" }]\n",
    );
    test.sync(&[]).success();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(test.server.client.delete_object().bucket(BUCKET).key("site/v/app.3f2a91c7.js").send()).unwrap();
    test.write("app.3f2a91c7.js", "v2");
    test.touch("app.3f2a91c7.js");
    let report = test.sync(&[]).code(1).report();
    assert_eq!(report.failed_keys(), [("app.3f2a91c7.js", "upload"), ("v/app.3f2a91c7.js", "copy")]);
    let objects = test.contents();
    assert_eq!(objects["site/app.3f2a91c7.js"], "v1");
    assert!(!objects.contains_key("site/v/app.3f2a91c7.js"), "the old bytes are not spread to a new key");
}
