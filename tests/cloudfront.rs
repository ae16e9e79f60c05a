//! The CloudFront invalidation after a sync, against a real HTTP CloudFront API (moto's server)
//! and a real S3 server, driving the real binary: which paths are sent, when nothing is, and how
//! a failure of the invalidation fails the run.

mod support;

use serde_json::Value;
use support::moto::Moto;
use support::proxy::{Fault, Proxy, Rule};
use support::{DEST, Outcome, Test};

/// A bucket served by a distribution whose origin path is the bucket's `site/` folder, as a
/// site published to `s3://bkt/site` usually is.
struct Cdn {
    t: Test,
    moto: Moto,
    id: String,
}

impl Cdn {
    fn new() -> Cdn {
        Cdn::with_origin_path("/site")
    }

    fn with_origin_path(origin_path: &str) -> Cdn {
        let moto = Moto::start();
        let id = moto.distribution("bkt.s3.us-east-1.amazonaws.com", origin_path);
        Cdn { t: Test::new(), moto, id }
    }

    fn file(self, relative: &str, content: &str) -> Cdn {
        self.t.write(relative, content);
        self
    }

    /// An object already under the prefix, so the file of the same key is a change, not an add.
    fn remote(self, relative: &str, content: &str) -> Cdn {
        self.t.server.put(&format!("site/{relative}"), content.as_bytes());
        self
    }

    /// `sitesync sync SRC s3://bkt/site --json --cloudfront-distribution-id ID ARGS..`, with
    /// CloudFront at `cloudfront` (moto, or a proxy in front of it).
    fn sync_via(&self, s3: &str, cloudfront: &str, args: &[&str]) -> Outcome {
        self.t
            .tree
            .sync(s3, &["--json", "--cloudfront-distribution-id", &self.id])
            .env("AWS_ENDPOINT_URL_CLOUDFRONT", cloudfront)
            .args(args)
            .run()
    }

    fn sync(&self, args: &[&str]) -> Outcome {
        self.sync_via(&self.t.server.endpoint(), &self.moto.endpoint(), args)
    }

    /// A proxy without faults in front of moto, to count the CloudFront requests a run sends.
    fn counting(&self) -> Proxy {
        Proxy::start(&self.t.server.handle(), self.moto.addr, 1, Vec::new())
    }

    fn invalidations(&self) -> Vec<String> {
        self.moto.invalidation_ids(&self.id)
    }
}

/// The report's `invalidated_paths`, sorted.
#[track_caller]
fn reported_paths(run: &Outcome) -> Vec<String> {
    let json = run.json();
    let paths = json["invalidated_paths"].as_array().unwrap_or_else(|| panic!("no invalidated_paths\n{run}"));
    let mut paths: Vec<String> = paths.iter().map(|p| p.as_str().unwrap().to_owned()).collect();
    paths.sort();
    paths
}

#[test]
fn changed_and_deleted_keys_are_invalidated_as_url_paths() {
    let cdn = Cdn::new()
        .file("index.html", "home")
        .file("a.html", "a")
        .file("docs/index.html", "docs")
        .file("docs/b.html", "b")
        .file("old.html", "old")
        .file("keep.css", "keep");
    let first = cdn.sync(&[]).success();
    assert_eq!(first.report().uploaded, 6);
    assert!(cdn.invalidations().is_empty(), "a first sync only adds keys: nothing is cached yet");

    cdn.t.write("a.html", "a, longer");
    cdn.t.write("docs/index.html", "docs, longer");
    cdn.t.remove("old.html");
    cdn.t.write("new.html", "new");
    let run = cdn.sync(&[]).success();
    assert_eq!(run.report().counts(), (3, 1, 3, 0));

    let (id, paths) = cdn.moto.only_invalidation(&cdn.id);
    assert_eq!(paths, ["/a.html", "/docs/", "/docs/index.html", "/old.html"], "new.html was added, keep.css kept");
    assert_eq!(run.json()["invalidation_id"], Value::String(id));
    assert_eq!(reported_paths(&run), paths);
}

#[test]
fn added_keys_are_invalidated_only_with_invalidate_added() {
    let cdn = Cdn::new().file("index.html", "home").file("a b/é.html", "x").file("logo@2x.png", "png");
    cdn.sync(&["--invalidate-added"]).success();
    let (_, paths) = cdn.moto.only_invalidation(&cdn.id);
    assert_eq!(paths, ["/", "/a%20b/%C3%A9.html", "/index.html", "/logo@2x.png"]);
}

#[test]
fn a_folder_past_the_limit_is_invalidated_as_a_wildcard() {
    let mut cdn = Cdn::new();
    for name in ["docs/1.html", "docs/2.html", "docs/3.html", "docs/4.html", "docs/api/x.html", "blog/p.html"] {
        cdn = cdn.remote(name, "old").file(name, "new content");
    }
    let run = cdn.sync(&["--invalidate-max-paths", "4"]).success();
    let (_, paths) = cdn.moto.only_invalidation(&cdn.id);
    assert_eq!(paths, ["/blog/p.html", "/docs/*"], "docs/ has 5 paths, more than 4");
    assert_eq!(reported_paths(&run), paths);
}

#[test]
fn a_folder_at_the_limit_is_invalidated_path_by_path() {
    let mut cdn = Cdn::new();
    for name in ["docs/1.html", "docs/2.html", "docs/3.html", "docs/api/x.html"] {
        cdn = cdn.remote(name, "old").file(name, "new content");
    }
    cdn.t.config("sync.toml", "invalidate_max_paths = 4\n");
    cdn.sync(&[]).success();
    let (_, paths) = cdn.moto.only_invalidation(&cdn.id);
    assert_eq!(paths, ["/docs/1.html", "/docs/2.html", "/docs/3.html", "/docs/api/x.html"]);
}

#[test]
fn nothing_to_invalidate_sends_no_request() {
    let cdn = Cdn::new().file("a.html", "a").file("b.html", "b");
    let proxy = cdn.counting();
    let run = cdn.sync_via(&cdn.t.server.endpoint(), &proxy.endpoint(), &[]).success();
    assert_eq!(run.report().uploaded, 2);
    let run = cdn.sync_via(&cdn.t.server.endpoint(), &proxy.endpoint(), &[]).success();
    assert_eq!(run.report().unchanged, 2);
    assert_eq!(proxy.requests(), 0, "only added keys, then no change: no CloudFront request at all");
    assert_eq!(run.json()["invalidation_id"], Value::Null);
    assert_eq!(reported_paths(&run), Vec::<String>::new());

    // The same proxy does see the requests of a run that has something to invalidate.
    cdn.t.write("a.html", "a, longer");
    cdn.sync_via(&cdn.t.server.endpoint(), &proxy.endpoint(), &[]).success();
    assert_eq!(proxy.requests(), 2, "GetDistributionConfig and CreateInvalidation");
    assert_eq!(cdn.invalidations().len(), 1);
}

#[test]
fn the_plan_shows_the_paths_and_sends_no_invalidation() {
    let cdn = Cdn::new().remote("a.html", "old").file("a.html", "new content").remote("gone.html", "x");
    let run = cdn
        .t
        .command()
        .arg("plan")
        .arg(cdn.t.src())
        .arg(DEST)
        .connect(&cdn.t.server.endpoint())
        .args(["--cloudfront-distribution-id", &cdn.id])
        .env("AWS_ENDPOINT_URL_CLOUDFRONT", cdn.moto.endpoint())
        .run()
        .success();
    let lines = run.lines();
    let at = |needle: &str| lines.iter().position(|l| *l == needle).unwrap_or_else(|| panic!("no {needle:?}\n{run}"));
    assert!(at("invalidate /a.html") < at("invalidate /gone.html"));
    assert!(lines.last().is_some_and(|l| l.starts_with("plan:")), "the paths come before the summary\n{run}");
    assert!(cdn.invalidations().is_empty(), "a plan sends no invalidation");
    assert_eq!(cdn.t.contents()["site/a.html"], "old", "and changes nothing");
}

#[test]
fn keys_outside_the_origin_path_are_not_invalidated() {
    let cdn = Cdn::with_origin_path("/site/en")
        .remote("en/a.html", "old")
        .file("en/a.html", "new content")
        .remote("fr/a.html", "old")
        .file("fr/a.html", "new content");
    cdn.sync(&[]).success();
    let (_, paths) = cdn.moto.only_invalidation(&cdn.id);
    assert_eq!(paths, ["/a.html"], "fr/ is not served by a distribution whose origin path is /site/en");
}

#[test]
fn a_wrong_distribution_fails_the_run_after_the_sync() {
    let cdn = Cdn::new().remote("a.html", "old").file("a.html", "new content");
    let run = cdn
        .t
        .tree
        .sync(&cdn.t.server.endpoint(), &["--json", "--cloudfront-distribution-id", "ENOSUCHDIST"])
        .env("AWS_ENDPOINT_URL_CLOUDFRONT", cdn.moto.endpoint())
        .run()
        .code(1);
    let report = run.report();
    assert_eq!(report.failed_keys(), [("(cloudfront)", "invalidate")]);
    let error = &report.failures[0].error;
    assert!(error.contains("ENOSUCHDIST") && error.contains("NoSuchDistribution"), "{error}");
    assert_eq!(cdn.t.contents()["site/a.html"], "new content", "the sync itself was done");
    assert!(run.errors().iter().any(|l| l.contains("invalidate (cloudfront)")), "{run}");
}

#[test]
fn a_failed_create_invalidation_fails_the_run() {
    let cdn = Cdn::new().remote("a.html", "old").file("a.html", "new content");
    let refuse = Rule::new(Fault::BadRequest).when(|h| h.method == "POST" && h.target.contains("/invalidation"));
    let proxy = Proxy::start(&cdn.t.server.handle(), cdn.moto.addr, 1, vec![refuse]);
    let run = cdn.sync_via(&cdn.t.server.endpoint(), &proxy.endpoint(), &[]).code(1);
    let report = run.report();
    assert_eq!(report.failed_keys(), [("(cloudfront)", "invalidate")]);
    assert!(report.failures[0].error.contains("CreateInvalidation"), "{:?}", report.failures);
    assert_eq!(proxy.injected(Fault::BadRequest), 1);
    assert!(cdn.invalidations().is_empty());
}

#[test]
fn a_partial_failure_invalidates_what_was_done() {
    let cdn =
        Cdn::new().remote("a.html", "old").file("a.html", "new a").remote("b.html", "old").file("b.html", "new b");
    let refuse_b = Rule::new(Fault::BadRequest).when(|h| h.is_put() && h.target.contains("b.html"));
    let s3 = cdn.t.server.proxy(1, vec![refuse_b]);
    let run = cdn.sync_via(&s3.endpoint(), &cdn.moto.endpoint(), &[]).code(1);
    assert_eq!(run.report().failed_keys(), [("b.html", "upload")]);
    let (_, paths) = cdn.moto.only_invalidation(&cdn.id);
    assert_eq!(paths, ["/a.html"], "b.html was not uploaded: its cached copy is still current");
}

#[test]
fn wait_polls_until_the_invalidation_completes() {
    let cdn = Cdn::new().remote("a.html", "old").file("a.html", "new content");
    let run = cdn.sync(&["--wait"]).success();
    let id = run.json()["invalidation_id"].as_str().unwrap().to_owned();
    run.stderr_contains(&format!("CloudFront invalidation {id} completed"));
}

#[test]
fn wait_without_a_distribution_is_a_usage_error() {
    let t = Test::new().file("a.html", "a");
    t.sync(&["--wait"]).code(2).stderr_contains("--wait waits for a CloudFront invalidation");
    assert!(t.keys().is_empty(), "nothing was sent");
}

#[test]
fn unusual_names_are_sent_percent_encoded() {
    let mut cdn = Cdn::new();
    let names =
        ["a b.html", "q?x#y.html", "100%.html", "css/star*.css", "css/x.css", "dir/é/index.html", "c{1}|[2].txt"];
    for name in names {
        cdn = cdn.remote(name, "old").file(name, "new content");
    }
    cdn.sync(&[]).success();
    // Each path was checked against CloudFront's rules when read back; the `*` of star*.css
    // cannot be sent as part of a path, so its folder is sent whole.
    let (_, paths) = cdn.moto.only_invalidation(&cdn.id);
    let expected = [
        "/100%25.html",
        "/a%20b.html",
        "/c%7B1%7D%7C%5B2%5D.txt",
        "/css/*",
        "/dir/%C3%A9/",
        "/dir/%C3%A9/index.html",
        "/q%3Fx%23y.html",
    ];
    assert_eq!(paths, expected);
}

#[test]
fn a_retired_key_is_invalidated_when_it_is_deleted_not_when_it_is_retired() {
    let cdn = Cdn::new().file("index.html", "home").file("app.1111aaaa.js", "v1").file("keep.css", "keep");
    cdn.sync(&[]).success();
    cdn.t.remove("app.1111aaaa.js");
    cdn.t.write("index.html", "home, version 2");
    let retiring = cdn.sync(&["--delete-grace", "2s"]).success();
    assert_eq!(retiring.json()["retired"], 1, "{retiring}");
    let (_, paths) = cdn.moto.only_invalidation(&cdn.id);
    assert_eq!(paths, ["/", "/index.html"], "the retired asset is still served as it was: nothing to invalidate");

    // Once its grace is over (the ledger's time plus 2 s, and a second for the clock), the run
    // that deletes it invalidates it.
    let ledger = cdn.t.contents()["site/.sitesync/retired"].clone();
    let retired: u64 = ledger.lines().nth(1).and_then(|l| l.split(' ').next()).unwrap().parse().unwrap();
    let until = std::time::UNIX_EPOCH + std::time::Duration::from_millis(retired + 3000);
    while std::time::SystemTime::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let deleting = cdn.sync(&["--delete-grace", "2s"]).success();
    assert_eq!(deleting.report().deleted, 1, "{deleting}");
    assert_eq!(reported_paths(&deleting), ["/app.1111aaaa.js"]);
    assert_eq!(cdn.invalidations().len(), 2);
}

#[test]
fn a_rollback_invalidates_the_paths_it_restored() {
    let cdn = Cdn::new().file("index.html", "v1").file("about.html", "about");
    cdn.sync(&[]).code(0);
    cdn.t.write("index.html", "v2, longer");
    cdn.t.write("new.html", "new in v2");
    cdn.sync(&[]).code(0);
    let before = cdn.invalidations().len();

    let cmd = cdn.t.tree.cmd().arg("rollback").arg(DEST).connect(&cdn.t.server.endpoint());
    let run = cmd
        .args(["--json", "--cloudfront-distribution-id", &cdn.id])
        .env("AWS_ENDPOINT_URL_CLOUDFRONT", cdn.moto.endpoint())
        .run()
        .code(0);
    assert_eq!(run.report().copied, 1, "{run}");
    assert_eq!(reported_paths(&run), ["/", "/index.html", "/new.html"], "restored and deleted: {run}");
    assert_eq!(cdn.invalidations().len(), before + 1);
}
