//! Deploy history and rollback against a real S3 server, through the real binary.
//!
//! One site published three times: v2 changes pages, deletes a file, adds one, changes the headers
//! of a key through the chain (a `headers` rule), keeps a compressed stylesheet and changes a
//! redirect of `_redirects`; v3 changes a page and the compressed stylesheet, deletes a page and
//! adds a file. What the bucket holds after each deploy is snapshotted key by key (bytes, ETag,
//! Content-Type, Cache-Control, Content-Encoding, the website redirect location, the metadata),
//! chain marker included, and a rollback must give back exactly a snapshot.

mod support;

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::Duration;

use support::proxy::{Fault, Head, Rule};
use support::{BUCKET, DEST, Outcome, Store, Tree, future};

/// The chain of v1: the stylesheets compressed.
const V1_CHAIN: &str = r#"max_delete_percent = 100

[[transform]]
type = "compress"
glob = ["**/*.css"]
encoding = "gzip"
"#;

/// v2 and v3: the scripts get their own Cache-Control too.
const V2_CHAIN: &str = r#"
[[transform]]
type = "headers"
[[transform.rules]]
glob = "**/*.js"
cache_control = "max-age=60"
"#;

/// A stylesheet large enough to be compressed (1 KiB and more).
fn stylesheet(color: &str) -> String {
    format!("h1 {{ color: {color}; }}\n/* {} */\n", "padding ".repeat(200))
}

/// What a key of the bucket is, as a reader of the site gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Object {
    body: Vec<u8>,
    etag: Option<String>,
    content_type: Option<String>,
    cache_control: Option<String>,
    content_encoding: Option<String>,
    redirect: Option<String>,
    metadata: BTreeMap<String, String>,
}

/// Every key of the bucket but the history's, with what a GET returns of it.
fn snapshot(store: &Store) -> BTreeMap<String, Object> {
    let keys = store.keys();
    store.block_on(async {
        let mut objects = BTreeMap::new();
        for key in keys {
            let got = store.client.get_object().bucket(BUCKET).key(&key).send().await.unwrap();
            let object = Object {
                etag: got.e_tag().map(str::to_owned),
                content_type: got.content_type().map(str::to_owned),
                cache_control: got.cache_control().map(str::to_owned),
                content_encoding: got.content_encoding().map(str::to_owned),
                redirect: got.website_redirect_location().map(str::to_owned),
                metadata: got.metadata().cloned().unwrap_or_default().into_iter().collect(),
                body: got.body.collect().await.unwrap().to_vec(),
            };
            objects.insert(key, object);
        }
        objects
    })
}

/// A site and its bucket.
struct Site {
    store: Store,
    tree: Tree,
    /// Extra arguments of every sync (a shard, say).
    args: Vec<String>,
}

impl Site {
    fn new() -> Site {
        Site { store: Store::start(), tree: Tree::new(), args: Vec::new() }
    }

    /// Rewrites a file of the tree as a build would: new bytes, a new mtime.
    fn build(&self, key: &str, content: impl AsRef<[u8]>) {
        self.tree.file(key, content);
        support::set_mtime(&self.tree.path(key), future());
    }

    fn remove(&self, key: &str) {
        std::fs::remove_file(self.tree.path(key)).unwrap();
    }

    /// Makes the tree and the config of version `v` (1 to 3), from the one before.
    fn version(&self, v: u32) {
        match v {
            1 => {
                self.tree.file("index.html", "<h1>v1 home</h1>");
                self.tree.file("about.html", "<h1>about</h1>");
                self.tree.file("css/site.css", stylesheet("red"));
                self.tree.file("css/print.css", stylesheet("black"));
                self.tree.file("js/app.js", "console.log('app');");
                self.tree.file("gone.txt", "deleted by v2");
                self.tree.file("_redirects", "/old.html /about.html 301\n");
                self.tree.config(V1_CHAIN);
            }
            2 => {
                self.build("index.html", "<h1>v2 home, longer</h1>");
                self.remove("gone.txt");
                self.build("added.txt", "added by v2");
                self.build("_redirects", "/old.html /index.html 301\n");
                self.tree.config(&format!("{V1_CHAIN}{V2_CHAIN}"));
            }
            _ => {
                self.build("index.html", "<h1>v3 home, the longest yet</h1>");
                self.build("css/site.css", stylesheet("blue"));
                // As long as v2's: only its bytes tell.
                self.build("js/app.js", "console.log('v3!');");
                self.remove("about.html");
                self.build("new3.txt", "added by v3");
            }
        }
    }

    fn sync(&self, args: &[&str]) -> Outcome {
        let run = self.tree.sync(&self.store.endpoint(), &["--json"]).args(&self.args).args(args).run();
        run.code(0)
    }

    /// Publishes version `v`: returns its deploy id and the snapshot after it.
    fn deploy(&self, v: u32) -> (String, BTreeMap<String, Object>) {
        self.version(v);
        let run = self.sync(&[]);
        let id = run.json()["deploy"].as_str().unwrap_or_else(|| panic!("v{v} recorded no deploy\n{run}")).to_owned();
        (id, snapshot(&self.store))
    }

    fn rollback(&self, args: &[&str]) -> Outcome {
        self.rollback_at(&self.store.endpoint(), args)
    }

    fn rollback_at(&self, endpoint: &str, args: &[&str]) -> Outcome {
        self.tree.cmd().arg("rollback").arg(DEST).connect(endpoint).args(args).run()
    }

    fn deploys(&self) -> serde_json::Value {
        let run = self.tree.cmd().args(["deploys", DEST, "--json"]).connect(&self.store.endpoint()).run().code(0);
        run.json()
    }

    /// The keys of the history under the prefix.
    fn history(&self, folder: &str) -> Vec<String> {
        let under = format!("site/.sitesync/{folder}/");
        self.store.list_all().into_keys().filter(|k| k.starts_with(&under)).collect()
    }
}

/// `site/KEY`s where two snapshots differ.
fn differing(a: &BTreeMap<String, Object>, b: &BTreeMap<String, Object>) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter().filter(|k| a.get(*k) != b.get(*k)).cloned().collect()
}

#[test]
fn rollbacks_walk_back_through_history_and_forward_again_exactly() {
    let site = Site::new();
    let (v1, at_v1) = site.deploy(1);
    let (v2, at_v2) = site.deploy(2);
    let (_, at_v3) = site.deploy(3);
    // What the three deploys are made of, so the equalities below say something.
    assert_eq!(at_v1["site/css/site.css"].content_encoding.as_deref(), Some("gzip"));
    assert_eq!(at_v1["site/old.html"].redirect.as_deref(), Some("/about.html"));
    assert_eq!(at_v2["site/old.html"].redirect.as_deref(), Some("/index.html"));
    assert_ne!(at_v1["site/js/app.js"].cache_control, at_v2["site/js/app.js"].cache_control, "the chain changed");
    assert!(!at_v2.contains_key("site/gone.txt") && at_v2.contains_key("site/added.txt"));
    assert!(!at_v3.contains_key("site/about.html") && at_v3.contains_key("site/new3.txt"));

    let everything = site.store.list_all();
    let plan = site.rollback(&["--dry-run"]).code(0);
    assert!(plan.stdout.contains("copy site/index.html (restore as deploy"), "{plan}");
    assert!(plan.stdout.contains("delete site/new3.txt"), "{plan}");
    assert_eq!(site.store.list_all(), everything, "--dry-run changes nothing, the history included");

    // Undoing v3 deletes new3.txt: past the delete limit the rollback is refused, doing nothing.
    let refused = site.rollback(&["--json", "--max-delete", "0"]).code(2);
    assert!(refused.report().refused.is_some_and(|why| why.contains("max_delete")), "{refused}");
    assert_eq!(site.store.list_all(), everything);

    let back = site.rollback(&["--json"]).code(0);
    let report = back.report();
    assert_eq!((report.uploaded, report.failed), (0, 0), "{back}");
    assert_eq!(back.json()["to"], v2.as_str());
    assert_eq!(differing(&snapshot(&site.store), &at_v2), Vec::<String>::new(), "rolled back to v2");

    site.rollback(&[]).code(0);
    assert_eq!(differing(&snapshot(&site.store), &at_v1), Vec::<String>::new(), "again: v1");
    let listed = site.deploys();
    let live: Vec<&str> = listed["deploys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["live"] == true)
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(live, [v1.as_str()], "v1's state is live");

    let v3 = site.deploys()["deploys"][2]["id"].as_str().unwrap().to_owned();
    site.rollback(&["--to", &v3]).code(0);
    assert_eq!(differing(&snapshot(&site.store), &at_v3), Vec::<String>::new(), "--to v3 redoes it");

    // Every restored key is compared by content: the v3 tree matches them all.
    let again = site.sync(&[]).report();
    assert_eq!((again.uploaded, again.copied, again.deleted, again.failed), (0, 0, 0, 0));
    assert_eq!(again.hashed, 7, "the restored keys were read");
    // That sync settled them, though it changed nothing: the next one reads none of them, only
    // the redirect object (bytes of the chain's own, compared by content on every run).
    assert_eq!(site.sync(&[]).report().hashed, 1);
}

#[test]
fn the_next_sync_after_a_rollback_uploads_only_what_differs_with_a_state_without_one_and_trusting_it() {
    for mode in [&[][..], &["--no-state"][..], &["--trust-state"][..]] {
        let site = Site::new();
        site.deploy(1);
        let (_, at_v2) = site.deploy(2);
        let (_, at_v3) = site.deploy(3);
        site.rollback(&[]).code(0);
        // The v3 tree as CI kept it, built long before the rollback: the objects it restored are
        // newer than every file, whatever bytes they hold.
        for key in site.tree.expected().keys() {
            support::set_mtime(&site.tree.path(key.trim_start_matches("site/")), support::past());
        }
        let run = site.sync(mode).report();
        let differ: Vec<String> = differing(&at_v2, &at_v3);
        let deleted = differ.iter().filter(|k| !at_v3.contains_key(*k)).count() as u64;
        assert_eq!(
            (run.uploaded, run.deleted, run.failed),
            (differ.len() as u64 - deleted, deleted, 0),
            "{mode:?}: {differ:?}"
        );
        assert_eq!(differing(&snapshot(&site.store), &at_v3), Vec::<String>::new(), "{mode:?}");
        let idle = site.sync(mode).report();
        assert_eq!((idle.uploaded, idle.deleted), (0, 0), "{mode:?}: the suspects were settled");
    }
}

#[test]
fn keep_deploys_prunes_what_only_old_deploys_kept_and_refuses_a_pruned_id() {
    let site = Site::new();
    let extra = "keep_deploys = 2\n";
    let (v1, _) = {
        site.version(1);
        site.tree.config(&format!("{extra}{V1_CHAIN}"));
        let run = site.sync(&[]);
        (run.json()["deploy"].as_str().unwrap().to_owned(), ())
    };
    site.version(2);
    site.tree.config(&format!("{extra}{V1_CHAIN}{V2_CHAIN}"));
    let v2 = site.sync(&[]).json()["deploy"].as_str().unwrap().to_owned();
    assert_eq!(site.history("deploys").len(), 2);
    assert!(site.history("kept").iter().all(|k| k.contains(&v2)), "v1 kept nothing: it was first");
    site.version(3);
    let v3 = site.sync(&[]).json()["deploy"].as_str().unwrap().to_owned();
    let records = site.history("deploys");
    assert_eq!(records, [format!("site/.sitesync/deploys/{v2}"), format!("site/.sitesync/deploys/{v3}")]);
    assert!(
        !site.history("kept").is_empty() && site.history("kept").iter().all(|k| k.contains(&v3)),
        "v2's befores are gone"
    );

    let refused = site.rollback(&["--to", &v1]).code(2);
    assert!(refused.stderr.contains(&format!("no deploy {v1} under s3://bkt/site/: it was pruned")), "{refused}");
    let unknown = site.rollback(&["--to", "20200101T000000.000Z-000000"]).code(2);
    assert!(unknown.stderr.contains("no deploy 20200101T000000.000Z-000000"), "{unknown}");
    let typo = site.rollback(&["--to", "latest"]).code(2);
    assert!(typo.stderr.contains("no deploy latest") && typo.stderr.contains("not a deploy id"), "{typo}");
    site.rollback(&[]).code(0);
}

#[test]
fn a_rollback_stopped_midway_converges_when_run_again() {
    let site = Site::new();
    site.deploy(1);
    site.version(2);
    for i in 0..30 {
        site.tree.file(&format!("pages/p{i:02}.html"), format!("<p>page {i} of v2</p>"));
    }
    site.sync(&[]);
    let at_v2 = snapshot(&site.store);
    site.version(3);
    for i in 0..30 {
        site.build(&format!("pages/p{i:02}.html"), format!("<p>page {i} of v3, rebuilt</p>"));
    }
    site.sync(&[]);

    // Stall the tenth restore of a page, and kill the rollback while it hangs.
    let (tx, fired) = mpsc::channel();
    let restore = |h: &Head| h.method == "PUT" && h.target.starts_with("/bkt/site/pages/");
    let rule = Rule::new(Fault::Stall).when(restore).after(10).limit(1).notify(tx);
    let proxy = site.store.proxy(7, vec![rule]);
    let child = site.tree.cmd().arg("rollback").arg(DEST).connect(&proxy.endpoint()).spawn();
    let request = fired.recv_timeout(Duration::from_secs(60)).expect("the restore never came");
    support::signal(&child, libc::SIGKILL);
    let killed = support::wait(child, Duration::from_secs(60));
    assert_eq!(killed.code, None, "killed while {request} hung");
    assert!(differing(&snapshot(&site.store), &at_v2).len() > 1, "stopped midway");
    assert!(!site.history("kept").is_empty());

    let again = site.rollback(&["--json"]).code(0);
    assert_eq!(again.report().failed, 0, "{again}");
    assert_eq!(differing(&snapshot(&site.store), &at_v2), Vec::<String>::new(), "converged to v2");
    let kinds: Vec<String> =
        site.deploys()["deploys"].as_array().unwrap().iter().map(|d| d["kind"].as_str().unwrap().to_owned()).collect();
    assert_eq!(kinds, ["rollback", "sync", "sync", "sync"], "the stopped rollback wrote no record");
}

#[test]
fn a_site_published_in_shards_is_rolled_back_whole() {
    let mut site = Site::new();
    let mut snapshots = Vec::new();
    for v in 1..=3 {
        site.version(v);
        for k in 1..=2 {
            site.args = vec!["--shard".into(), format!("{k}/2")];
            site.sync(&[]);
        }
        snapshots.push(snapshot(&site.store));
    }
    site.args.clear();
    assert!(snapshots[1].contains_key("site/.sitesync/chain.1-of-2"), "each shard keeps its marker");
    let listed = site.deploys();
    assert_eq!(listed["deploys"].as_array().unwrap().len(), 6);
    assert_eq!(listed["deploys"][0]["shard"], "2/2");

    site.rollback(&[]).code(0);
    assert_eq!(differing(&snapshot(&site.store), &snapshots[1]), Vec::<String>::new(), "the whole site is v2");
    site.rollback(&[]).code(0);
    assert_eq!(differing(&snapshot(&site.store), &snapshots[0]), Vec::<String>::new(), "then v1");
    // A rollback is of the whole site: a shard refuses one.
    let refused =
        site.tree.cmd().arg("rollback").arg(DEST).connect(&site.store.endpoint()).env("SITESYNC_SHARD", "1/2").run();
    refused.code(2).stderr_contains("a rollback restores the whole site");
}

#[test]
fn a_purged_key_is_gone_from_every_deploy_and_a_rollback_says_it_cannot_restore_it() {
    let site = Site::new();
    site.deploy(1);
    site.deploy(2);
    site.deploy(3);
    let kept_index = site.history("kept").into_iter().filter(|k| k.ends_with("/index.html")).count();
    assert_eq!(kept_index, 2, "v2 and v3 kept index.html");

    let purge = site.tree.cmd().args(["deploys", "purge", DEST, "index.html"]).connect(&site.store.endpoint()).run();
    purge.code(0).stderr_contains("purged: 2 kept objects deleted, 2 records rewritten");
    assert!(site.history("kept").iter().all(|k| !k.ends_with("/index.html")));

    let back = site.rollback(&["--json"]).code(1);
    let failures = back.report().failed_keys().into_iter().map(|(k, op)| format!("{k} {op}")).collect::<Vec<_>>();
    assert_eq!(failures, ["index.html copy"], "{back}");
    assert!(back.stderr.contains("purged from deploy"), "{back}");
}

#[test]
fn a_key_too_long_to_nest_is_kept_under_its_hash_and_restored() {
    let site = Site::new();
    // About 990 bytes under `site/`: as a kept object's key it would be longer than S3 allows.
    let long = format!("{}page.html", format!("{}/", "l".repeat(120)).repeat(8));
    site.tree.file(&long, "first");
    site.tree.file("index.html", "home");
    site.sync(&[]);
    site.build(&long, "second, longer");
    site.sync(&[]);
    let before = snapshot(&site.store);
    site.build(&long, "third, the longest of all");
    site.sync(&[]);
    assert!(site.history("kept").iter().any(|k| k.contains("/#")), "{:?}", site.history("kept"));
    site.rollback(&[]).code(0);
    assert_eq!(differing(&snapshot(&site.store), &before), Vec::<String>::new());
}

#[test]
fn keeping_costs_a_copy_per_key_changed_or_deleted_and_none_for_the_first_deploy_or_an_added_key() {
    let site = Site::new();
    site.version(1);
    let first = site.sync(&[]).json();
    assert_eq!(first["kept"], 0, "nothing to roll back to yet");
    site.build("more.txt", "added");
    let added = site.sync(&[]).json();
    assert_eq!((added["uploaded"].as_u64(), added["kept"].as_u64()), (Some(1), Some(0)), "{added}");
    site.build("index.html", "<h1>changed</h1>");
    site.remove("more.txt");
    let changed = site.sync(&[]).json();
    assert_eq!(
        (changed["uploaded"].as_u64(), changed["deleted"].as_u64(), changed["kept"].as_u64()),
        (Some(1), Some(1), Some(2))
    );
    let idle = site.sync(&[]).json();
    assert!(idle.get("deploy").is_none(), "a sync that changes nothing records nothing: {idle}");
    let off = site.sync(&["--keep-deploys", "0"]).json();
    assert_eq!(off["kept"], 0);
    assert!(site.history("deploys").is_empty() && site.history("kept").is_empty(), "0 keeps no history");
}

#[test]
fn a_record_carries_the_message_or_the_commit_of_the_ci() {
    let site = Site::new();
    site.version(1);
    site.tree.sync(&site.store.endpoint(), &["--json"]).env("GITHUB_SHA", "0123abc").run().code(0);
    site.build("index.html", "<h1>two</h1>");
    site.tree
        .sync(&site.store.endpoint(), &["--json", "--message", "fix the title"])
        .env("GITHUB_SHA", "4567def")
        .run()
        .code(0);
    let listed = site.deploys();
    let messages: Vec<&str> =
        listed["deploys"].as_array().unwrap().iter().map(|d| d["message"].as_str().unwrap()).collect();
    assert_eq!(messages, ["fix the title", "0123abc"]);
    assert_eq!(listed["deploys"][0]["live"], true);
    assert_eq!(listed["deploys"][1]["live"], false);
}

/// A site published to moto's S3, whose bucket keeps versions: v1, then v2 (a page changed with
/// its redirect and headers, a file deleted, one added). Keeping records the versions, copies
/// nothing, and the rollback restores v1 from them.
#[test]
fn a_bucket_that_keeps_versions_is_rolled_back_from_them_without_copies() {
    use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
    let moto = support::moto::Moto::start();
    let s3 = moto.s3();
    moto.block_on(s3.create_bucket().bucket(BUCKET).send()).unwrap();
    let enabled = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
    moto.block_on(s3.put_bucket_versioning().bucket(BUCKET).versioning_configuration(enabled).send()).unwrap();
    let state = |s3: &aws_sdk_s3::Client| {
        moto.block_on(async {
            let listed = s3.list_objects_v2().bucket(BUCKET).prefix("site/").send().await.unwrap();
            let mut state = BTreeMap::new();
            for key in listed.contents().iter().filter_map(|o| o.key()) {
                let got = s3.get_object().bucket(BUCKET).key(key).send().await.unwrap();
                let headers = (got.content_type().map(str::to_owned), got.cache_control().map(str::to_owned));
                let redirect = got.website_redirect_location().map(str::to_owned);
                state.insert(key.to_owned(), (got.body.collect().await.unwrap().to_vec(), headers, redirect));
            }
            state
        })
    };
    let tree = Tree::new();
    let sync = || {
        let cmd = tree.cmd().arg("sync").arg(tree.src()).arg(DEST).connect(&moto.endpoint());
        cmd.env("AWS_ACCESS_KEY_ID", "testing").env("AWS_SECRET_ACCESS_KEY", "testing").arg("--json").run().code(0)
    };
    tree.file("index.html", "<h1>v1</h1>");
    tree.file("gone.txt", "v1 only");
    tree.file("_redirects", "/old.html /index.html 301\n");
    sync();
    let v1 = state(&s3);
    tree.file("index.html", "<h1>v2, longer</h1>");
    tree.file("_redirects", "/old.html /elsewhere.html 301\n");
    tree.config(
        "[[transform]]\ntype = \"headers\"\n[[transform.rules]]\nglob = \"*.html\"\ncache_control = \"max-age=5\"\n",
    );
    std::fs::remove_file(tree.path("gone.txt")).unwrap();
    tree.file("added.txt", "v2 only");
    let v2 = sync().json();
    assert_eq!(v2["kept"], 3, "index.html, old.html, gone.txt: {v2}");
    let listed = moto.block_on(s3.list_objects_v2().bucket(BUCKET).prefix("site/.sitesync/kept/").send()).unwrap();
    assert_eq!(listed.key_count(), Some(0), "versions are recorded, nothing is copied");

    let cmd = tree.cmd().arg("rollback").arg(DEST).connect(&moto.endpoint());
    let back = cmd.env("AWS_ACCESS_KEY_ID", "testing").env("AWS_SECRET_ACCESS_KEY", "testing").arg("--json").run();
    assert_eq!(back.code(0).report().failed, 0);
    let now = state(&s3);
    let site = |state: &BTreeMap<String, _>| {
        state.keys().filter(|k: &&String| !k.contains(".sitesync/")).cloned().collect::<Vec<_>>()
    };
    assert_eq!(site(&now), site(&v1));
    for key in site(&v1) {
        assert_eq!(now[&key], v1[&key], "{key}");
    }
}

/// The keys the ledger of retired keys lists (`.sitesync/retired`: a header, then a line each).
fn retired_keys(store: &Store) -> Vec<String> {
    let key = "site/.sitesync/retired";
    let got = store.block_on(store.client.get_object().bucket(BUCKET).key(key).send());
    let Ok(got) = got else { return Vec::new() };
    let text = String::from_utf8(store.block_on(got.body.collect()).unwrap().to_vec()).unwrap();
    text.lines().skip(1).filter_map(|l| l.split_once(' ').map(|(_, key)| key.to_owned())).collect()
}

#[test]
fn a_rollback_brings_back_the_keys_a_later_deploy_retired_and_takes_the_bucket_lock() {
    let site = Site::new();
    site.version(1);
    site.sync(&["--delete-grace", "1h"]);
    let v1 = snapshot(&site.store);
    // v2 leaves gone.txt: it is retired, not deleted, and the deploy records the retirement.
    site.version(2);
    let v2 = site.sync(&["--delete-grace", "1h"]);
    assert_eq!(v2.json()["retired"], 1, "{v2}");
    assert_eq!(retired_keys(&site.store), ["gone.txt"]);

    // Another machine's run holds the lock in the bucket: the rollback is refused, naming it.
    let lock = "site/.sitesync/lock";
    let foreign = r#"{"v":1,"host":"ci-runner-7","pid":4242,"start":"2026-01-02T10:45:00.000Z","version":"0.1.0","expires":"2026-01-02T10:47:00.000Z","ttl":120,"token":"feedfacefeedface","machine":"another-boot pid:[4026531836]"}"#;
    site.store.put(lock, foreign.as_bytes());
    let refused = site.rollback(&[]).code(2);
    assert!(
        refused.stderr.contains("pid 4242 on host ci-runner-7") && refused.stderr.contains("holds the bucket lock"),
        "{refused}"
    );
    assert!(differing(&snapshot(&site.store), &v1).contains(&"site/index.html".to_owned()), "nothing restored yet");
    site.store.block_on(site.store.client.delete_object().bucket(BUCKET).key(lock).send()).unwrap();

    site.rollback(&[]).code(0);
    let after = differing(&snapshot(&site.store), &v1);
    assert_eq!(after, ["site/.sitesync/retired"], "v1 again, but for the ledger, which lists nothing now");
    assert!(retired_keys(&site.store).is_empty(), "gone.txt is part of v1: no grace runs out on it");
    assert!(!site.store.list_all().contains_key("site/.sitesync/lock"), "the rollback released its lock");
}
