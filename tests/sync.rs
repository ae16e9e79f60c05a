//! The core sync, end to end: the real binary against a real S3 server on 127.0.0.1.
//!
//! Each test is one behaviour a user relies on, asserted on the bucket's state (listed and read
//! back with an independent client) and on the `--json` report and exit status.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;

use support::proxy::{Fault, Head, Rule};
use support::{Test, future};

/// A bucket state written as literals: key → content.
fn bucket(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
    entries.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// A small site whose names include S3's ordering traps: `a.b` < `a/b` < `a0` as UTF-8 bytes,
/// while a naive directory walk visits `a/` last or first.
fn site() -> Test {
    Test::new()
        .file("index.html", "<h1>home</h1>")
        .file("css/site.css", "body{}")
        .file("a.b", "dot")
        .file("a/b", "slash")
        .file("a/c/d.txt", "deep")
        .file("a0", "zero")
}

const SITE: &[(&str, &str)] = &[
    ("site/a.b", "dot"),
    ("site/a/b", "slash"),
    ("site/a/c/d.txt", "deep"),
    ("site/a0", "zero"),
    ("site/css/site.css", "body{}"),
    ("site/index.html", "<h1>home</h1>"),
];

#[test]
fn first_sync_uploads_everything() {
    let test = site();
    let report = test.sync(&[]).success().report();
    assert_eq!(report.counts(), (6, 0, 0, 0));
    assert!(!report.dry_run);
    assert_eq!(report.bytes_uploaded, SITE.iter().map(|(_, c)| c.len() as u64).sum::<u64>());
    assert_eq!(test.contents(), bucket(SITE));
    for (key, (size, body)) in test.objects() {
        assert_eq!(size, body.len() as u64, "listed size of {key}");
    }
}

#[test]
fn second_run_uploads_nothing() {
    let test = site();
    test.sync(&[]).success();
    let before = test.objects();
    let report = test.sync(&[]).success().report();
    assert_eq!(report.counts(), (0, 0, 6, 0));
    assert_eq!(report.bytes_uploaded, 0);
    assert_eq!(test.objects(), before);
}

#[test]
fn touched_file_is_uploaded_again_and_only_it() {
    let test = site();
    test.sync(&[]).success();
    // Same size, new content: only the mtime tells.
    test.write("css/site.css", "BODY{}");
    test.touch("css/site.css");
    let report = test.sync(&[]).success().report();
    assert_eq!(report.counts(), (1, 0, 5, 0));
    assert_eq!(report.bytes_uploaded, 6);
    let mut expected = bucket(SITE);
    expected.insert("site/css/site.css".into(), "BODY{}".into());
    assert_eq!(test.contents(), expected);
}

#[test]
fn same_mtime_different_size_is_uploaded() {
    let test = site();
    test.sync(&[]).success();
    let old = support::mtime(&test.path("a0"));
    fs::write(test.path("a0"), "zero plus").unwrap();
    support::set_mtime(&test.path("a0"), old);
    let report = test.sync(&[]).success().report();
    assert_eq!(report.counts(), (1, 0, 5, 0));
    assert_eq!(test.contents()["site/a0"], "zero plus");
}

#[test]
fn removed_file_is_deleted_remotely() {
    let test = site();
    test.sync(&[]).success();
    test.remove("a/b");
    let report = test.sync(&[]).success().report();
    assert_eq!(report.counts(), (0, 1, 5, 0));
    let mut expected = bucket(SITE);
    expected.remove("site/a/b");
    assert_eq!(test.contents(), expected);
}

#[test]
fn keys_outside_the_prefix_are_never_touched() {
    let test = site()
        .remote("other/x", "other")
        .remote("site2/x", "sibling folder")
        .remote("sitea.txt", "sibling file")
        .remote("site/stale.txt", "stale");
    let report = test.sync(&[]).success().report();
    assert_eq!(report.counts(), (6, 1, 0, 0));
    let mut expected = bucket(SITE);
    expected.extend(bucket(&[("other/x", "other"), ("site2/x", "sibling folder"), ("sitea.txt", "sibling file")]));
    assert_eq!(test.contents(), expected);

    // With deletes under the prefix, still nothing outside it.
    test.remove("a0");
    test.remove("index.html");
    let report = test.sync(&[]).success().report();
    assert_eq!(report.counts(), (0, 2, 4, 0));
    expected.remove("site/a0");
    expected.remove("site/index.html");
    assert_eq!(test.contents(), expected);

    // A trailing slash means the same folder.
    let report = test
        .command()
        .arg("sync")
        .arg(test.src())
        .args(["s3://bkt/site/", "--json"])
        .connect(&test.server.endpoint())
        .run();
    assert_eq!(report.success().report().counts(), (0, 0, 4, 0));
    assert_eq!(test.contents(), expected);
}

#[test]
fn unusual_utf8_names_round_trip() {
    let names = [
        "a b.txt",
        "a+b.txt",
        "a%20b.txt",
        "100%.txt",
        "what?.txt",
        "#hash.txt",
        "café.html",
        "日本/語 テキスト.txt",
        "sp ace/x+y%z.css",
    ];
    let mut test = Test::new();
    for (i, name) in names.iter().enumerate() {
        test = test.file(name, format!("{i}"));
    }
    let report = test.sync(&[]).success().report();
    assert_eq!(report.counts(), (names.len() as u64, 0, 0, 0));
    let expected: BTreeMap<String, String> =
        names.iter().enumerate().map(|(i, name)| (format!("site/{name}"), i.to_string())).collect();
    assert_eq!(test.contents(), expected);

    // The listing comes back url-encoded: decoded wrongly, a key would look new and its object
    // stale, and this run would upload and delete.
    let report = test.sync(&[]).success().report();
    assert_eq!(report.counts(), (0, 0, names.len() as u64, 0));
    assert_eq!(test.contents(), expected);
}

#[test]
fn latin1_names_become_utf8_keys() {
    let test = Test::new().file_bytes(b"caf\xe9.html", "latin").file("plain.txt", "plain");
    let report = test.sync(&["--encoding", "latin-1"]).success().report();
    assert_eq!(report.counts(), (2, 0, 0, 0));
    assert_eq!(test.contents(), bucket(&[("site/café.html", "latin"), ("site/plain.txt", "plain")]));

    // The same setting from a config file; the second run finds everything in place.
    let config = test.config("latin.toml", "encoding = \"latin-1\"\n");
    let report = test.sync(&["--config", config.to_str().unwrap()]).success().report();
    assert_eq!(report.counts(), (0, 0, 2, 0));
}

#[test]
fn invalid_utf8_name_is_skipped_and_reported() {
    // `site/café.html` was published by an earlier latin-1 run; under UTF-8 its file cannot be
    // named, which must not read as "the file is gone".
    let test = site();
    test.sync(&[]).success();
    let test = test
        .file_bytes(b"caf\xe9.html", "latin")
        .file("ok.txt", "ok")
        .remote("site/caf\u{e9}.html", "latin")
        .remote("site/stale.txt", "stale");
    let outcome = test.sync(&[]).code(1);
    let report = outcome.report();
    assert_eq!(report.counts(), (1, 0, 6, 1));
    assert_eq!(report.failed_keys(), [(r"caf\xe9.html", "scan")]);
    assert!(report.failures[0].error.contains("not valid UTF-8"), "{:?}", report.failures);
    assert_eq!(report.deletes_withheld, 2);
    let mut expected = bucket(SITE);
    expected.extend(bucket(&[("site/caf\u{e9}.html", "latin"), ("site/ok.txt", "ok"), ("site/stale.txt", "stale")]));
    assert_eq!(test.contents(), expected);
    assert!(outcome.stderr.contains(r"caf\xe9.html"), "{outcome}");
    assert!(!outcome.stderr.contains(r"caf\\xe9"), "escaped twice\n{outcome}");

    // The plan names it the same way, escaped once.
    let plan = test.plan(&[]).code(1);
    let line = r#"fail site/caf\xe9.html skipped: name "caf\xe9.html" is not valid UTF-8"#;
    assert!(plan.lines().contains(&line), "{plan}");
}

#[test]
fn empty_source_is_refused() {
    let test = Test::new().remote("site/index.html", "live").remote("site/a.css", "live");
    let outcome = test.sync(&[]).code(2).stderr_contains("empty");
    assert!(outcome.stdout.is_empty(), "{outcome}");
    assert_eq!(test.contents(), bucket(&[("site/a.css", "live"), ("site/index.html", "live")]));

    // The same with deletes that would pass every other limit.
    test.plan(&[]).code(2).stderr_contains("empty");
    test.sync(&["--max-delete", "10"]).code(2);
    assert_eq!(test.keys(), ["site/a.css", "site/index.html"]);
}

#[test]
fn plan_and_dry_run_change_nothing() {
    let test = site().remote("site/old.txt", "old").remote("site/older.txt", "older");
    test.sync(&["--no-delete"]).success();
    test.write("new.css", "new");
    test.write("a0", "zero but longer");
    test.remove("a.b");
    let before = test.objects();

    let plan = test.plan(&[]).success();
    assert_eq!(
        plan.lines(),
        [
            "upload site/a0 (size, 15 bytes)",
            "upload site/new.css (new, 3 bytes)",
            "delete site/a.b",
            "delete site/old.txt",
            "delete site/older.txt",
            "plan: 2 to upload (18 bytes), 3 to delete, 4 unchanged, 0 failed",
        ],
        "{plan}"
    );
    assert_eq!(test.objects(), before);

    let dry = test
        .command()
        .arg("sync")
        .arg(test.src())
        .args([support::DEST, "--dry-run"])
        .connect(&test.server.endpoint())
        .run();
    assert_eq!(dry.success().stdout, plan.stdout);
    assert_eq!(test.objects(), before);

    let report = test.sync(&["--dry-run"]).success().report();
    assert!(report.dry_run);
    assert_eq!(report.counts(), (2, 3, 4, 0));
    assert_eq!(report.bytes_uploaded, 18);
    assert_eq!(test.objects(), before);

    // A plan past the delete limit is still shown, exits as the sync would, and changes nothing.
    let refused = test.plan(&["--max-delete", "1"]).code(2).stderr_contains("max_delete = 1");
    assert_eq!(refused.stdout, plan.stdout);
    assert_eq!(test.objects(), before);
}

#[test]
fn scan_failures_withhold_deletes() {
    let test = site();
    test.sync(&[]).success();
    test.remove("a0");
    symlink(test.path("nowhere"), test.path("dangling")).unwrap();
    let fifo = std::process::Command::new("mkfifo").arg(test.path("css/pipe")).status().unwrap();
    assert!(fifo.success());
    test.write("new.txt", "new");

    let outcome = test.sync_command(&[]).env("SITESYNC_MAX_ATTEMPTS", "1").run().code(1);
    let report = outcome.report();
    assert_eq!(report.failed_keys(), [("css/pipe", "scan"), ("dangling", "scan")], "{outcome}");
    assert_eq!(report.counts(), (1, 0, 5, 2));
    assert_eq!(report.deletes_withheld, 1);
    let mut expected = bucket(SITE);
    expected.insert("site/new.txt".into(), "new".into());
    assert_eq!(test.contents(), expected, "site/a0 must survive a run that failed");

    // Once the tree is clean again, the delete goes through.
    fs::remove_file(test.path("dangling")).unwrap();
    fs::remove_file(test.path("css/pipe")).unwrap();
    let report = test.sync(&[]).success().report();
    assert_eq!(report.counts(), (0, 1, 6, 0));
    expected.remove("site/a0");
    assert_eq!(test.contents(), expected);
}

#[test]
fn upload_failure_withholds_deletes() {
    // The server refuses one upload (400, which is not retried): the run fails, and the delete of
    // an object without a file waits for a clean run.
    let test = Test::new().file("a.txt", "a").file("refused.txt", "r").remote("site/stale.txt", "stale");
    let rule = Rule::new(Fault::BadRequest).when(|h: &Head| h.is_put() && h.target.contains("refused.txt"));
    let proxy = test.server.proxy(3, vec![rule]);
    let outcome = test.tree.sync(&proxy.endpoint(), &["--json"]).run().code(1);
    let report = outcome.report();
    assert_eq!(report.failed_keys(), [("refused.txt", "upload")], "{outcome}");
    assert_eq!(report.counts(), (1, 0, 0, 1));
    assert_eq!(report.deletes_withheld, 1);
    assert_eq!(test.contents()["site/stale.txt"], "stale");
    assert_eq!(test.contents()["site/a.txt"], "a");
}

#[test]
fn delete_limits() {
    let test = Test::new();
    for name in ["1", "2", "3", "4", "5", "6"] {
        test.write(name, name);
    }
    test.sync(&[]).success();
    for name in ["1", "2", "3"] {
        test.remove(name);
    }
    let all = test.objects();

    let report = test.sync(&["--no-delete"]).success().report();
    assert_eq!(report.counts(), (0, 0, 3, 0));
    assert_eq!(test.objects(), all);

    let outcome = test.sync(&["--max-delete", "2"]).code(2).stderr_contains("max_delete = 2");
    let report = outcome.report();
    assert!(report.refused.as_deref().is_some_and(|r| r.contains("--force-delete")), "{outcome}");
    assert_eq!(report.deleted, 0);
    assert_eq!(test.objects(), all);

    // Exactly at the limit is allowed.
    test.write("7", "7");
    let report = test.sync(&["--max-delete", "3"]).success().report();
    assert_eq!(report.counts(), (1, 3, 3, 0));
    assert_eq!(test.keys(), ["site/4", "site/5", "site/6", "site/7"]);
}

#[test]
fn force_delete_passes_the_limits() {
    let test = Test::new().file("keep", "k");
    test.sync(&[]).success();
    for name in ["1", "2", "3"] {
        test.server.put(&format!("site/{name}"), b"x");
    }
    test.write("index.html", "page");
    let stale_survive = |test: &Test| {
        let keys = test.keys();
        assert!(["site/1", "site/2", "site/3"].iter().all(|k| keys.iter().any(|key| key == k)), "{keys:?}");
        assert!(!keys.iter().any(|k| k == "site/index.html"), "a refused run published a page: {keys:?}");
    };
    // Three of four objects is past both max_delete = 2 and max_delete_percent = 50.
    test.sync(&["--max-delete", "2"]).code(2).stderr_contains("max_delete = 2");
    stale_survive(&test);
    let outcome = test.sync(&[]).code(2).stderr_contains("max_delete_percent");
    let report = outcome.report();
    assert_eq!(report.deleted, 0);
    assert!(report.refused.is_some(), "{outcome}");
    stale_survive(&test);

    let report = test.sync(&["--max-delete", "2", "--force-delete"]).success().report();
    assert_eq!(report.counts(), (1, 3, 1, 0));
    assert_eq!(test.contents(), bucket(&[("site/index.html", "page"), ("site/keep", "k")]));
}

#[test]
fn multipart_upload_round_trips() {
    // Not a multiple of the part size, and no two parts alike, so a lost or reordered part shows.
    let size = 6 * 1024 * 1024 + 12_345;
    let mut state = 0x2545_f491_u32;
    let content: Vec<u8> = (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect();
    let test = Test::new().file("big.bin", &content).file("small.txt", "s");
    let outcome = test
        .sync_command(&[])
        .env("SITESYNC_MULTIPART_THRESHOLD", "5242880")
        .env("SITESYNC_MULTIPART_CHUNK_SIZE", "5242880")
        .run()
        .success();
    let report = outcome.report();
    assert_eq!(report.counts(), (2, 0, 0, 0));
    assert_eq!(report.bytes_uploaded, size as u64 + 1);
    let objects = test.objects();
    let (listed, body) = &objects["site/big.bin"];
    assert_eq!(*listed, size as u64);
    assert!(*body == content, "the object's content differs from the file");

    let report = test.sync_command(&[]).env("SITESYNC_MULTIPART_THRESHOLD", "5242880").run().success().report();
    assert_eq!(report.counts(), (0, 0, 2, 0));
}

#[test]
fn config_errors_name_the_file_and_key() {
    let test = site();
    let unknown = test.config("unknown.toml", "workers = 4\nwrokers = 8\n");
    let outcome = test.sync(&["--config", unknown.to_str().unwrap()]).code(2);
    assert!(outcome.stderr.contains(unknown.to_str().unwrap()), "{outcome}");
    assert!(outcome.stderr.contains("`wrokers`"), "{outcome}");

    let wrong_type = test.config("type.toml", "workers = \"x\"\n");
    let outcome = test.sync(&["--config", wrong_type.to_str().unwrap()]).code(2);
    assert!(outcome.stderr.contains(wrong_type.to_str().unwrap()), "{outcome}");
    assert!(outcome.stderr.contains("`workers`"), "{outcome}");

    let out_of_range = test.config("range.toml", "workers = 0\n");
    let outcome = test.sync(&["--config", out_of_range.to_str().unwrap()]).code(2);
    assert!(outcome.stderr.contains(out_of_range.to_str().unwrap()), "{outcome}");
    assert!(outcome.stderr.contains("`workers`"), "{outcome}");

    // ./sync.toml is read when no --config is given.
    test.config("sync.toml", "encoding = \"klingon\"\n");
    let outcome = test.sync(&[]).code(2);
    assert!(outcome.stderr.contains("sync.toml") && outcome.stderr.contains("`encoding`"), "{outcome}");

    test.sync(&["--config", "missing.toml"]).code(2).stderr_contains("missing.toml");
    assert!(test.keys().is_empty(), "no run with a bad config may touch the bucket");
}

#[test]
fn touched_file_after_upload_is_newer() {
    // A file rewritten after the first run, with an mtime later than its object's LastModified.
    let test = Test::new().file("a.txt", "one").file("b.txt", "two");
    test.sync(&[]).success();
    fs::write(test.path("a.txt"), "ONE").unwrap();
    support::set_mtime(&test.path("a.txt"), future());
    // The mtime rule alone says newer; the content check (with the state of the first run)
    // reads the file and knows more.
    let plan = test.plan(&["--compare", "mtime"]).success();
    assert_eq!(plan.lines()[0], "upload site/a.txt (newer, 3 bytes)", "{plan}");
    let plan = test.plan(&[]).success();
    assert_eq!(plan.lines()[0], "upload site/a.txt (content differs, 3 bytes)", "{plan}");
    let report = test.sync(&[]).success().report();
    assert_eq!(report.counts(), (1, 0, 1, 0));
    assert_eq!(test.contents(), bucket(&[("site/a.txt", "ONE"), ("site/b.txt", "two")]));
}

#[test]
fn control_characters_in_names_round_trip() {
    // XML 1.0 cannot carry these: only a url-encoded listing brings the keys back intact.
    let names = ["tab\there.txt", "bell\u{7}.txt", "dir\u{1b}/esc.txt"];
    let mut test = Test::new();
    for name in names {
        test = test.file(name, name);
    }
    test.sync(&[]).success();
    let expected: BTreeMap<String, String> = names.iter().map(|n| (format!("site/{n}"), (*n).to_owned())).collect();
    assert_eq!(test.contents(), expected);
    assert_eq!(test.sync(&[]).success().report().counts(), (0, 0, 3, 0));
    let plan = test.plan(&[]).success();
    assert_eq!(plan.lines(), ["plan: 0 to upload (0 bytes), 0 to delete, 3 unchanged, 0 failed"]);
}

#[test]
fn listing_across_pages() {
    // ListObjectsV2 returns at most 1,000 keys a page: the diff must carry its matching across
    // page boundaries, where a mistake reads as a delete and an upload of the same key.
    let test = Test::new();
    let count = 1_010;
    for i in 0..count {
        test.write(&format!("p/{i:04}"), "x");
    }
    test.write("p.txt", "dot sorts before slash");
    test.sync(&[]).success();
    assert_eq!(test.keys().len(), count + 1);
    let report = test.sync(&[]).success().report();
    assert_eq!(report.counts(), (0, 0, count as u64 + 1, 0));

    test.remove("p/0999");
    test.remove("p/1000");
    test.write("p/1000a", "new");
    let report = test.sync(&[]).success().report();
    assert_eq!(report.counts(), (1, 2, count as u64 - 1, 0));
    let keys = test.keys();
    assert_eq!(keys.len(), count);
    assert!(keys.contains(&"site/p/1000a".to_owned()) && !keys.contains(&"site/p/0999".to_owned()));
}

#[test]
fn files_read_with_a_hanging_upload_and_changed_meanwhile_are_sent_with_their_new_bytes() {
    // One worker reads the small files queued together on one trip, and checks each after its
    // upload on a later trip. While the first upload hangs, every file is rewritten with as many
    // bytes and an older mtime, which neither the size nor the mtime rule of a later run would
    // see: the hanging file and those read with it must be found changed and sent again, the
    // others read as they are now.
    let mut test = Test::new();
    let names = ["a.css", "b.css", "c.css", "d.css", "e.css", "f.css", "g.css", "h.css"];
    for name in names {
        test = test.file(name, format!("old {name}"));
    }
    let (tx, fired) = std::sync::mpsc::channel();
    let proxy = test.server.proxy(1, vec![Rule::new(Fault::Stall).when(Head::is_put).limit(1).notify(tx)]);
    let child = test.tree.sync(&proxy.endpoint(), &["--workers", "1"]).spawn();
    fired.recv_timeout(std::time::Duration::from_secs(60)).unwrap();
    for name in names {
        test.write(name, format!("new {name}"));
    }
    proxy.release();
    let outcome = support::wait(child, std::time::Duration::from_secs(60)).success();
    assert!(outcome.stderr.contains("changed during upload (attempt 1 of 3)"), "{outcome}");
    let files: BTreeMap<String, String> = names.iter().map(|n| (format!("site/{n}"), format!("new {n}"))).collect();
    assert_eq!(test.contents(), files, "{outcome}");
}
