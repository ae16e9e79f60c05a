//! What the website endpoint serves of a site's `_redirects`, against Garage 2.5: redirect
//! objects answered with a 301, and the routing rules sitesync sets on the bucket. The embedded
//! store has neither a website endpoint nor a website configuration; everything else about the
//! redirects is tested against it, in `tests/redirects.rs`. Garage must be installed (see
//! `support::garage`); these tests fail, saying how, when it is not.

mod support;

use support::Tree;
use support::garage::{ACCESS_KEY, Garage, SECRET_KEY};

/// `sitesync sync SRC s3://BUCKET/site --json ARGS` against Garage.
fn sync(garage: &Garage, tree: &Tree, bucket: &str, args: &[&str]) -> support::Outcome {
    let cmd = tree.cmd().arg("sync").arg(tree.src()).arg(format!("s3://{bucket}/site")).connect(&garage.endpoint());
    let cmd = cmd.env("AWS_ACCESS_KEY_ID", ACCESS_KEY).env("AWS_SECRET_ACCESS_KEY", SECRET_KEY);
    cmd.args(["--json", "--no-state"]).args(args).run()
}

fn location(headers: &[(String, String)]) -> Option<&str> {
    headers.iter().find(|(name, _)| name == "location").map(|(_, value)| value.as_str())
}

/// The routing rules of `bucket` as (KeyPrefixEquals, where to, status); none without a website
/// configuration (Garage answers GetBucketWebsite with an empty 204 then).
fn routing_rules(garage: &Garage, bucket: &str) -> Vec<(String, String, String)> {
    let website = match garage.block_on(garage.client.get_bucket_website().bucket(bucket).send()) {
        Ok(website) => website,
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 204) => return Vec::new(),
        Err(e) => panic!("GetBucketWebsite {bucket}: {e:?}"),
    };
    let rules = website.routing_rules().iter().map(|r| {
        let redirect = r.redirect().unwrap();
        let to = redirect.replace_key_prefix_with().or(redirect.replace_key_with()).unwrap_or_default();
        let code = redirect.http_redirect_code().unwrap_or_default();
        (r.condition().unwrap().key_prefix_equals().unwrap().to_owned(), to.to_owned(), code.to_owned())
    });
    rules.collect()
}

#[test]
fn the_website_endpoint_serves_redirect_objects_and_the_routing_rules_sitesync_sets() {
    let garage = Garage::start();
    garage.bucket("web1", Some(("index.html", "404.html")));
    let tree = Tree::new();
    tree.file("index.html", "<h1>home</h1>");
    tree.file("new/index.html", "<h1>new</h1>");
    tree.file("posts/a.html", "<h1>a</h1>");
    tree.file("_redirects", "/old /new/\n/blog/* /posts/:splat\n/x/* https://example.com/y 302\n");
    tree.config("[redirects]\nrouting_rules = true\n");

    // With --shard, only shard 1 sets the routing rules.
    let second = sync(&garage, &tree, "web1", &["--shard", "2/2"]).success();
    assert!(second.json().get("routing_rules_set").is_none(), "{second}");
    assert!(routing_rules(&garage, "web1").is_empty());
    let first = sync(&garage, &tree, "web1", &["--shard", "1/2"]).success();
    assert_eq!(first.json()["routing_rules_set"], 2, "{first}");
    let expected = [
        ("site/blog/".to_owned(), "posts/".to_owned(), "301".to_owned()),
        ("site/x/".to_owned(), "y".to_owned(), "302".to_owned()),
    ];
    assert_eq!(routing_rules(&garage, "web1"), expected);
    let website = garage.block_on(garage.client.get_bucket_website().bucket("web1").send()).unwrap();
    assert_eq!(website.index_document().map(|d| d.suffix()), Some("index.html"), "kept");
    assert_eq!(website.error_document().map(|d| d.key()), Some("404.html"), "kept");

    let (status, headers, _) = garage.web("web1", "/site/old");
    assert!(status.contains("301"), "{status}");
    assert_eq!(location(&headers), Some("/new/"));
    let (status, headers, _) = garage.web("web1", "/site/blog/a.html");
    assert!(status.contains("301"), "{status}");
    assert_eq!(location(&headers), Some("/posts/a.html"));
    let (status, headers, _) = garage.web("web1", "/site/x/anything");
    assert!(status.contains("302"), "{status}");
    assert_eq!(location(&headers), Some("https://example.com/y"));
    let (status, _, body) = garage.web("web1", "/site/new/");
    assert!(status.contains("200") && body.contains("<h1>new</h1>"), "{status}");

    // The whole site again: nothing to upload, and the rules are current.
    let again = sync(&garage, &tree, "web1", &[]).success();
    assert_eq!(again.report().counts(), (0, 0, 4, 0), "{again}");
    assert_eq!(
        (again.json()["routing_rules_set"].clone(), again.json()["redirect_objects"].clone()),
        (0.into(), 0.into())
    );

    // Rules removed: the object is deleted, the routing rule gone.
    tree.file("_redirects", "/x/* https://example.com/y 302\n");
    let removed = sync(&garage, &tree, "web1", &[]).success();
    assert_eq!((removed.report().deleted, removed.json()["routing_rules_set"].clone()), (1, 1.into()), "{removed}");
    assert_eq!(routing_rules(&garage, "web1"), expected[1..]);
    assert!(garage.web("web1", "/site/old").0.contains("404"));
    assert!(garage.web("web1", "/site/blog/a.html").0.contains("404"));
}

#[test]
fn a_bucket_without_website_hosting_is_left_alone_and_the_run_fails_saying_so() {
    let garage = Garage::start();
    garage.bucket("plain", None);
    let tree = Tree::new();
    tree.file("index.html", "<h1>home</h1>");
    tree.file("_redirects", "/blog/* /posts/:splat\n");
    tree.config("[redirects]\nrouting_rules = true\n");
    let run = sync(&garage, &tree, "plain", &[]).code(1);
    let report = run.report();
    assert_eq!(report.failed_keys(), [("(website)", "website")], "{run}");
    assert!(report.failures[0].error.contains("bucket plain has no website configuration"), "{run}");
    assert_eq!(report.uploaded, 1, "the sync itself is done");
    assert!(routing_rules(&garage, "plain").is_empty());
}
