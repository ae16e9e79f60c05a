//! One test per reported bug, named after the behaviour that was wrong (in the manner of
//! ripgrep's `tests/regression.rs`). Each drives the real binary against a real S3 server on
//! 127.0.0.1, through the fault-injecting proxy where the bug needs a fault to show.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, SystemTime};

use support::proxy::{Fault, Rule};
use support::{BUCKET, Store, Tree, wait};

fn report(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn counts(r: &serde_json::Value) -> (u64, u64, u64, u64) {
    let n = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("no {k} in {r}"));
    (n("uploaded"), n("copied"), n("deleted"), n("failed"))
}

fn mkfifo(path: &std::path::Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let status = Command::new("mkfifo").arg(path).status().expect("running mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

fn head(store: &Store, key: &str) -> aws_sdk_s3::operation::head_object::HeadObjectOutput {
    store
        .block_on(store.client.head_object().bucket(BUCKET).key(key).send())
        .unwrap_or_else(|e| panic!("head {key}: {e:?}"))
}

#[test]
fn a_folder_listing_that_keeps_failing_ends_the_run_naming_the_folder() {
    let store = Store::start();
    let tree = Tree::new();
    // More folders than the listing runs at once, so discovery waits on the emitter.
    for d in 0..10 {
        tree.file(&format!("d{d}/f.txt"), "x");
        store.put(&format!("site/d{d}/f.txt"), b"x");
        store.put(&format!("site/d{d}/old.txt"), b"old");
    }
    tree.config("list_parallel = 2\nmax_attempts = 2\nmax_delete_percent = 100\n");
    let failing = Rule::new(Fault::InternalError).when(|h| h.is_list() && h.target.contains("d3%2F"));
    let proxy = store.proxy(1, vec![failing]);
    let run = wait(tree.sync(&proxy.endpoint(), &["--json"]).spawn(), Duration::from_secs(60)).code(1);
    assert!(run.stderr.contains("site/d3/"), "the error names the folder\n{}", run.stderr);
    for d in 0..10 {
        assert!(store.keys().contains(&format!("site/d{d}/old.txt")), "nothing is deleted");
    }
}

const FILTER_THEN_DUPLICATE: &str = r#"
[[transform]]
type = "filter"
exclude = ["latest/**"]

[[transform]]
type = "prefix_duplicate"
rules = [{ from = "v2/", to = "latest/" }]
"#;

#[test]
fn a_filter_before_a_duplicate_converges_and_deletes_what_the_chain_no_longer_makes() {
    let store = Store::start();
    let tree = Tree::new();
    tree.file("v2/a.js", "a");
    tree.file("v2/b.js", "b");
    tree.config(FILTER_THEN_DUPLICATE);
    let first = report(&tree.sync(&store.endpoint(), &["--json"]).run().code(0).stdout);
    assert_eq!(counts(&first), (2, 2, 0, 0));
    let again = report(&tree.sync(&store.endpoint(), &["--json"]).run().code(0).stdout);
    assert_eq!(counts(&again), (0, 0, 0, 0), "nothing changed, so nothing is sent");

    std::fs::remove_file(tree.path("v2/a.js")).unwrap();
    let removed = report(&tree.sync(&store.endpoint(), &["--json"]).run().code(0).stdout);
    assert_eq!(counts(&removed), (0, 0, 2, 0));
    let keys = store.keys();
    assert!(!keys.contains(&"site/latest/a.js".to_owned()), "{keys:?}");
    assert!(keys.contains(&"site/latest/b.js".to_owned()), "{keys:?}");
}

#[test]
fn a_filter_before_a_plugin_is_refused_naming_both_tables() {
    let tree = Tree::new();
    tree.file("a.html", "a");
    tree.config(
        "[[transform]]\ntype = \"filter\"\nexclude = [\"drafts/**\"]\n\n[[transform]]\nplugin = \"sync.toml\"\n",
    );
    let run = tree.sync("http://127.0.0.1:9", &[]).run().code(2);
    assert!(run.stderr.contains("transform[0]") && run.stderr.contains("transform[1]"), "{}", run.stderr);
}

#[test]
fn a_problem_inside_an_excluded_folder_does_not_fail_the_run() {
    let store = Store::start();
    let tree = Tree::new();
    tree.file("index.html", "home");
    tree.file("drafts/ok.html", "draft");
    mkfifo(&tree.path("drafts/pipe"));
    mkfifo(&tree.path("notes.tmp"));
    store.put("site/old.html", b"old");
    store.put("site/new.html", b"new");
    tree.config("max_delete_percent = 100\n[[transform]]\ntype = \"filter\"\nexclude = [\"drafts/**\", \"*.tmp\"]\n");
    let run = tree.sync(&store.endpoint(), &["--json"]).run().code(0);
    let r = report(&run.stdout);
    assert_eq!(counts(&r), (1, 0, 2, 0), "{}", run.stderr);
    assert_eq!(store.keys(), ["site/index.html"]);
}

fn headers(max_age: u32) -> String {
    format!(
        "[[transform]]\ntype = \"headers\"\n[[transform.rules]]\nglob = \"**\"\ncache_control = \"max-age={max_age}\"\n"
    )
}

#[test]
fn a_chain_change_made_while_a_file_could_not_be_read_reaches_it_later() {
    let store = Store::start();
    let tree = Tree::new();
    tree.file("a.css", "a");
    tree.file("b.css", "b");
    tree.config(&headers(1));
    tree.sync(&store.endpoint(), &[]).run().code(0);

    tree.config(&headers(2));
    let b = tree.path("b.css");
    std::fs::remove_file(&b).unwrap();
    mkfifo(&b);
    tree.sync(&store.endpoint(), &[]).run().code(1);
    assert_eq!(head(&store, "site/a.css").cache_control(), Some("max-age=2"));

    std::fs::remove_file(&b).unwrap();
    tree.file("b.css", "b");
    tree.sync(&store.endpoint(), &[]).run().code(0);
    assert_eq!(head(&store, "site/b.css").cache_control(), Some("max-age=2"));
}

#[test]
fn a_failed_complete_multipart_upload_is_aborted() {
    let store = Store::start();
    let tree = Tree::new();
    tree.file("big.bin", vec![7u8; 6 * 1024 * 1024]);
    tree.config("multipart_threshold = 5242880\nmultipart_chunk_size = 5242880\n");
    let complete = Rule::new(Fault::BadRequest).when(|h| h.method == "POST" && h.target.contains("uploadId="));
    let proxy = store.proxy(2, vec![complete]);
    tree.sync(&proxy.endpoint(), &[]).run().code(1);
    assert_eq!(store.open_uploads(), 0, "the upload was left open: its parts would be billed");
}

#[test]
fn a_multipart_upload_stopped_by_a_signal_is_aborted() {
    let store = Store::start();
    let tree = Tree::new();
    tree.file("big.bin", vec![7u8; 20 * 1024 * 1024]);
    tree.config("multipart_threshold = 5242880\nmultipart_chunk_size = 5242880\n");
    let (tx, rx) = std::sync::mpsc::channel();
    let stall =
        Rule::new(Fault::Stall).when(|h| h.method == "PUT" && h.target.contains("partNumber=2")).limit(1).notify(tx);
    let proxy = store.proxy(3, vec![stall]);
    let child = tree.sync(&proxy.endpoint(), &[]).spawn();
    rx.recv_timeout(Duration::from_secs(60)).expect("part 2 never came");
    support::signal(&child, libc::SIGINT);
    proxy.release();
    wait(child, Duration::from_secs(60)).code(130);
    assert_eq!(store.open_uploads(), 0, "the interrupted upload was left open");
    assert!(store.keys().is_empty(), "no new upload starts after the signal: {:?}", store.keys());
}

#[test]
fn keys_that_xml_cannot_carry_are_deleted_too() {
    let store = Store::start();
    let tree = Tree::new();
    tree.file("bell\u{7}.txt", "ring");
    tree.file("ok.txt", "ok");
    tree.file("keep.txt", "keep");
    tree.config("max_delete_percent = 100\n");
    tree.sync(&store.endpoint(), &[]).run().code(0);
    std::fs::remove_file(tree.path("bell\u{7}.txt")).unwrap();
    std::fs::remove_file(tree.path("ok.txt")).unwrap();
    let run = tree.sync(&store.endpoint(), &["--json"]).run().code(0);
    assert_eq!(counts(&report(&run.stdout)), (0, 0, 2, 0));
    assert_eq!(store.keys(), ["site/keep.txt"]);
}

#[test]
fn without_a_date_header_the_clock_offset_is_unknown_and_a_safe_margin_is_used() {
    let store = Store::start();
    let tree = Tree::new();
    tree.file("a.txt", "one");
    tree.sync(&store.endpoint(), &[]).run().code(0);
    // The same size, new bytes, and an mtime a minute before the object was written: with the
    // server's clock unknown, that minute proves nothing.
    let written = head(&store, "site/a.txt").last_modified().unwrap().secs();
    let path = tree.file("a.txt", "two");
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs((written - 60) as u64);
    std::fs::File::options().write(true).open(&path).unwrap().set_modified(mtime).unwrap();

    let proxy = store.proxy(4, vec![]);
    proxy.strip_response_header("date");
    let run = tree.sync(&proxy.endpoint(), &["--json", "-v"]).run().code(0);
    assert_eq!(counts(&report(&run.stdout)).0, 1, "{}", run.stderr);
    assert!(run.stderr.contains("no response carried a Date header"), "{}", run.stderr);
    assert_eq!(store.objects()["site/a.txt"], b"two");
}

#[test]
fn the_chain_marker_holds_no_settings_of_the_chain() {
    let store = Store::start();
    let tree = Tree::new();
    tree.file("a.css", "a");
    tree.config(&format!("{}metadata = {{ owner = \"team-secret-name\" }}\n", headers(31)));
    tree.sync(&store.endpoint(), &[]).run().code(0);
    let marker = String::from_utf8(store.objects()["site/.sitesync/chain"].clone()).unwrap();
    for leak in ["max-age=31", "team-secret-name", "owner", "headers"] {
        assert!(!marker.contains(leak), "the public marker shows {leak:?}: {marker}");
    }
}

#[test]
fn a_source_folder_named_like_the_marker_is_refused_at_load() {
    let tree = Tree::new();
    tree.file("index.html", "home");
    tree.file(".sitesync/chain", "mine");
    let run = tree.sync("http://127.0.0.1:9", &[]).run().code(2);
    assert!(run.stderr.contains(".sitesync"), "{}", run.stderr);
}

#[test]
fn the_embedded_store_takes_a_file_replaced_by_a_folder_of_the_same_name() {
    let store = Store::start();
    let tree = Tree::new();
    tree.file("a", "file");
    tree.file("keep.txt", "keep");
    tree.config("max_delete_percent = 100\n");
    tree.sync(&store.endpoint(), &[]).run().code(0);
    std::fs::remove_file(tree.path("a")).unwrap();
    tree.file("a/b", "inside");
    wait(tree.sync(&store.endpoint(), &[]).spawn(), Duration::from_secs(60)).code(0);
    let expected: BTreeMap<String, Vec<u8>> =
        [("site/a/b", "inside"), ("site/keep.txt", "keep")].map(|(k, v)| (k.to_owned(), v.into())).into();
    assert_eq!(store.objects(), expected);
    // And back: the folder replaced by a file.
    std::fs::remove_dir_all(tree.path("a")).unwrap();
    tree.file("a", "file again");
    wait(tree.sync(&store.endpoint(), &[]).spawn(), Duration::from_secs(60)).code(0);
    assert_eq!(store.objects()["site/a"], b"file again");
}

#[test]
fn the_embedded_store_refuses_writes_into_a_bucket_that_does_not_exist() {
    // s3s-fs made the bucket's folder for the first object written into it, so a run whose first
    // request is a write (the bucket lock) synced into a bucket nobody created.
    use aws_sdk_s3::primitives::ByteStream;
    let store = Store::start();
    let missing = "no-such-bucket";
    let code = |e: &dyn aws_sdk_s3::error::ProvideErrorMetadata| e.code().map(str::to_owned);
    let put =
        store.block_on(store.client.put_object().bucket(missing).key("a").body(ByteStream::from_static(b"a")).send());
    assert_eq!(put.map_err(|e| code(&e.into_service_error())).err(), Some(Some("NoSuchBucket".into())));
    let copy = store.client.copy_object().bucket(missing).key("b").copy_source(format!("{BUCKET}/x"));
    store.put("x", b"x");
    let copy = store.block_on(copy.send());
    assert_eq!(copy.map_err(|e| code(&e.into_service_error())).err(), Some(Some("NoSuchBucket".into())));
    let upload = store.block_on(store.client.create_multipart_upload().bucket(missing).key("c").send());
    assert_eq!(upload.map_err(|e| code(&e.into_service_error())).err(), Some(Some("NoSuchBucket".into())));
    let buckets = store.block_on(store.client.list_buckets().send()).unwrap();
    let names: Vec<&str> = buckets.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, [BUCKET], "no bucket made by a write");
}
