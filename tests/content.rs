//! Content-aware change detection against a real S3 server: a rebuilt site (same bytes, new
//! mtimes) uploads nothing, an edit the mtime rule cannot see is sent, ETags made by other tools
//! are recognised, and the local state that makes this cheap is never trusted when it should not
//! be. The server lists ETags (as AWS and Garage do) unless a test says it lists none (as some
//! S3-compatible servers), where only the local state can tell.

mod support;

use std::time::{Duration, SystemTime};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use support::proxy::{Fault, Rule};
use support::{BUCKET, Store, Tree, wait};

const MIB: usize = 1024 * 1024;

fn sync(tree: &Tree, store: &Store, args: &[&str]) -> serde_json::Value {
    tree.sync(&store.endpoint(), &["--json"]).args(args).run().code(0).json()
}

fn n(report: &serde_json::Value, field: &str) -> u64 {
    report[field].as_u64().unwrap_or_else(|| panic!("no {field} in {report}"))
}

/// Gives every file of the tree a new mtime, its bytes unchanged: what a site generator's
/// rebuild does.
fn rebuild(tree: &Tree) {
    let later = SystemTime::now() + Duration::from_secs(30);
    for (key, _) in tree.expected() {
        support::set_mtime(&tree.path(key.trim_start_matches("site/")), later);
    }
}

fn site(tree: &Tree) {
    for i in 0..20 {
        tree.file(&format!("p{i}/index.html"), format!("<p>page {i}</p>"));
    }
    tree.file("app.css", "body{}");
}

#[test]
fn a_rebuilt_site_uploads_nothing_and_the_next_run_reads_nothing() {
    for store in [Store::start(), Store::without_listed_etags()] {
        let tree = Tree::new();
        site(&tree);
        assert_eq!(n(&sync(&tree, &store, &[]), "uploaded"), 21);
        rebuild(&tree);
        let rebuilt = sync(&tree, &store, &[]);
        assert_eq!((n(&rebuilt, "uploaded"), n(&rebuilt, "unchanged")), (0, 21), "{rebuilt}");
        assert_eq!(n(&rebuilt, "hashed"), 21, "each file was read once");
        let again = sync(&tree, &store, &[]);
        assert_eq!((n(&again, "uploaded"), n(&again, "hashed")), (0, 0), "the state settles every file: {again}");
    }
}

#[test]
fn the_mtime_rule_alone_uploads_a_rebuilt_site_again() {
    let store = Store::start();
    let tree = Tree::new();
    site(&tree);
    sync(&tree, &store, &[]);
    rebuild(&tree);
    let report = sync(&tree, &store, &["--compare", "mtime"]);
    assert_eq!((n(&report, "uploaded"), n(&report, "hashed")), (21, 0));
}

/// Rewrites `key` with bytes of the same size and an mtime older than its object (`cp -p`).
fn edit_keeping_an_old_mtime(tree: &Tree, key: &str, content: &str) {
    let path = tree.file(key, content);
    support::set_mtime(&path, SystemTime::now() - Duration::from_secs(7200));
}

#[test]
fn a_same_size_edit_with_an_old_mtime_is_uploaded_with_the_state_or_a_checksum() {
    // The state knows the file's old mtime, so the new one (older still) makes it read.
    let store = Store::without_listed_etags();
    let tree = Tree::new();
    tree.file("a.txt", "one");
    tree.file("b.txt", "two");
    sync(&tree, &store, &[]);
    edit_keeping_an_old_mtime(&tree, "a.txt", "ONE");
    let report = sync(&tree, &store, &[]);
    assert_eq!(n(&report, "uploaded"), 1, "{report}");
    assert_eq!(store.objects()["site/a.txt"], b"ONE");

    // Without a state, a checksum of every file against the listed ETags finds it too; the
    // mtime rule alone cannot.
    let store = Store::start();
    let tree = Tree::new();
    tree.file("a.txt", "one");
    tree.file("b.txt", "two");
    sync(&tree, &store, &["--no-state"]);
    edit_keeping_an_old_mtime(&tree, "a.txt", "ONE");
    assert_eq!(n(&sync(&tree, &store, &["--no-state"]), "uploaded"), 0, "the blind spot of the mtime rule");
    let report = sync(&tree, &store, &["--no-state", "--compare", "checksum"]);
    assert_eq!((n(&report, "uploaded"), n(&report, "hashed")), (1, 2), "{report}");
    assert_eq!(store.objects()["site/a.txt"], b"ONE");
}

/// Uploads `bytes` under `key` in parts of `part` bytes, as another tool would.
fn multipart_put(store: &Store, key: &str, bytes: &[u8], part: usize) {
    store.block_on(async {
        let c = &store.client;
        let created = c.create_multipart_upload().bucket(BUCKET).key(key).send().await.unwrap();
        let id = created.upload_id().unwrap();
        let mut parts = Vec::new();
        for (i, chunk) in bytes.chunks(part).enumerate() {
            let number = i as i32 + 1;
            let body = ByteStream::from(chunk.to_vec());
            let sent = c.upload_part().bucket(BUCKET).key(key).upload_id(id).part_number(number).body(body);
            let etag = sent.send().await.unwrap().e_tag().map(str::to_owned);
            parts.push(CompletedPart::builder().set_e_tag(etag).part_number(number).build());
        }
        let done = CompletedMultipartUpload::builder().set_parts(Some(parts)).build();
        c.complete_multipart_upload()
            .bucket(BUCKET)
            .key(key)
            .upload_id(id)
            .multipart_upload(done)
            .send()
            .await
            .unwrap();
    });
}

fn big(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i % 241) as u8).collect()
}

#[test]
fn an_object_uploaded_in_8_mib_parts_by_the_aws_cli_is_recognised() {
    let store = Store::start();
    let tree = Tree::new();
    let bytes = big(17 * MIB);
    tree.file("video.bin", &bytes);
    multipart_put(&store, "site/video.bin", &bytes, 8 * MIB);
    rebuild(&tree);
    // sitesync's own parts are 16 MiB here: only the aws cli's 8 MiB gives the three parts listed.
    tree.config("multipart_chunk_size = 16777216\n");
    let report = sync(&tree, &store, &["--no-state"]);
    assert_eq!((n(&report, "uploaded"), n(&report, "hashed")), (0, 1), "{report}");
}

#[test]
fn an_etag_of_an_unknown_part_size_falls_back_to_the_mtime_rule() {
    let store = Store::start();
    let tree = Tree::new();
    let bytes = big(30 * MIB);
    tree.file("video.bin", &bytes);
    // Five parts of 6 MiB: no part size sitesync knows gives five parts for 30 MiB.
    multipart_put(&store, "site/video.bin", &bytes, 6 * MIB);
    rebuild(&tree);
    let plan =
        tree.cmd().arg("plan").arg(tree.src()).arg(support::DEST).connect(&store.endpoint()).arg("--no-state").run();
    assert_eq!(plan.code(0).lines()[0], "upload site/video.bin (newer, 31457280 bytes)");
}

/// The state file of a tree's runs, in its `--state-dir`.
fn state_file(dir: &std::path::Path) -> std::path::PathBuf {
    let files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "one state file: {files:?}");
    files[0].clone()
}

#[test]
fn a_corrupt_truncated_or_foreign_state_is_ignored_with_a_warning() {
    let store = Store::without_listed_etags();
    let tree = Tree::new();
    site(&tree);
    let dir = tree.work().join("states");
    let state = ["--state-dir", dir.to_str().unwrap()];
    sync(&tree, &store, &state);
    let path = state_file(&dir);
    let good = std::fs::read(&path).unwrap();
    let mut flipped = good.clone();
    let at = flipped.len() / 2;
    flipped[at] ^= 1;
    // Another target's state under this file's name: the same tree synced to another prefix.
    let other_dir = tree.work().join("other");
    tree.cmd()
        .arg("sync")
        .arg(tree.src())
        .arg("s3://bkt/other")
        .connect(&store.endpoint())
        .args(["--state-dir", other_dir.to_str().unwrap()])
        .run()
        .code(0);
    let foreign = std::fs::read(state_file(&other_dir)).unwrap();

    rebuild(&tree);
    for (what, bytes, says) in [
        ("corrupt", flipped, "corrupt"),
        ("truncated", good[..good.len() - 7].to_vec(), "corrupt or truncated"),
        ("foreign", foreign, "another target"),
    ] {
        std::fs::write(&path, &bytes).unwrap();
        let run = tree.sync(&store.endpoint(), &["--json", "--dry-run"]).args(state).run().code(0);
        assert!(run.stderr.contains("ignoring the local state") && run.stderr.contains(says), "{what}: {run}");
        // Not trusted: with no ETag listed and no state, the rebuilt files look newer.
        assert_eq!(n(&run.json(), "uploaded"), 21, "{what}");
    }
    std::fs::write(&path, &good).unwrap();
    let trusted = sync(&tree, &store, &state);
    assert_eq!(n(&trusted, "uploaded"), 0, "the good state is used: {trusted}");
}

#[test]
fn a_run_killed_midway_leaves_the_state_of_the_run_before() {
    let store = Store::without_listed_etags();
    let tree = Tree::new();
    site(&tree);
    let dir = tree.work().join("states");
    let state = ["--state-dir", dir.to_str().unwrap()];
    sync(&tree, &store, &state);
    let before = std::fs::read(state_file(&dir)).unwrap();

    for i in 0..20 {
        tree.file(&format!("p{i}/index.html"), format!("<p>page {i}, edited</p>"));
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let proxy = store.proxy(7, vec![Rule::new(Fault::Stall).when(|h| h.is_put()).after(5).limit(1).notify(tx)]);
    let child = tree.sync(&proxy.endpoint(), &["--workers", "1"]).args(state).spawn();
    rx.recv_timeout(Duration::from_secs(60)).expect("the sixth upload never came");
    support::signal(&child, libc::SIGKILL);
    let killed = wait(child, Duration::from_secs(60));
    assert_eq!(killed.code, None, "killed");
    assert_eq!(std::fs::read(state_file(&dir)).unwrap(), before, "the state is the last complete run's");
    let next = tree.sync(&store.endpoint(), &["--json"]).args(state).run().code(0);
    assert!(!next.stderr.contains("ignoring the local state"), "{next}");
    assert_eq!(n(&next.json(), "uploaded"), 20);
}

#[test]
fn trust_state_takes_the_bucket_from_the_state_without_listing() {
    let store = Store::start();
    let tree = Tree::new();
    site(&tree);
    // The state is per endpoint: every run goes through the proxy, which refuses listings of the
    // site once the first run is done (the deploy history under `.sitesync/`, a few records, is
    // still listed).
    let refuse = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let refusing = refuse.clone();
    let rule = Rule::new(Fault::BadRequest)
        .when(move |h| h.lists_the_site() && refusing.load(std::sync::atomic::Ordering::SeqCst));
    let proxy = store.proxy(9, vec![rule]);
    tree.sync(&proxy.endpoint(), &[]).run().code(0);
    refuse.store(true, std::sync::atomic::Ordering::SeqCst);
    let quiet = tree.sync(&proxy.endpoint(), &["--json", "--trust-state"]).run().code(0).json();
    assert_eq!((n(&quiet, "uploaded"), n(&quiet, "unchanged")), (0, 21), "{quiet}");
    tree.file("p3/index.html", "<p>page 3, edited at last</p>");
    let changed = tree.sync(&proxy.endpoint(), &["--json", "--trust-state"]).run().code(0).json();
    assert_eq!(n(&changed, "uploaded"), 1);
    assert_eq!(proxy.injected(Fault::BadRequest), 0, "no listing was asked for");
    assert_eq!(store.objects()["site/p3/index.html"], b"<p>page 3, edited at last</p>");
}

/// Another writer's object, dated well after anything the runs so far saw.
fn overwrite(store: &Store, key: &str, bytes: &[u8]) {
    store.put(key, bytes);
    store.set_last_modified(key, SystemTime::now() + Duration::from_secs(60));
}

#[test]
fn a_state_record_never_vouches_for_bytes_it_did_not_see() {
    for store in [Store::start(), Store::without_listed_etags()] {
        let one = Tree::new();
        one.file("page.txt", "hello version A");
        sync(&one, &store, &[]);
        // Another source (its own state), newer, same size: it publishes B over A.
        let two = Tree::new();
        support::set_mtime(&two.file("page.txt", "HELLO version B"), SystemTime::now() + Duration::from_secs(30));
        assert_eq!(n(&sync(&two, &store, &[]), "uploaded"), 1);
        store.set_last_modified("site/page.txt", SystemTime::now() + Duration::from_secs(30));
        let back = sync(&one, &store, &[]);
        assert_eq!(n(&back, "uploaded"), 1, "the object changed since the state saw it: {back}");
        assert_eq!(store.objects()["site/page.txt"], b"hello version A");
        assert_eq!(n(&sync(&one, &store, &[]), "uploaded"), 0, "and then it is settled");

        // Another tool overwrites the object: auto and checksum both put the file back.
        for compare in ["auto", "checksum"] {
            overwrite(&store, "site/page.txt", b"HELLO version B");
            let repaired = sync(&one, &store, &["--compare", compare]);
            assert_eq!(n(&repaired, "uploaded"), 1, "{compare}: {repaired}");
            assert_eq!(store.objects()["site/page.txt"], b"hello version A", "{compare}");
        }
        // A run with the mtime rule learns nothing it did not see, so auto still repairs after it.
        overwrite(&store, "site/page.txt", b"HELLO version B");
        assert_eq!(n(&sync(&one, &store, &["--compare", "mtime"]), "uploaded"), 0, "the mtime rule's blind spot");
        assert_eq!(n(&sync(&one, &store, &[]), "uploaded"), 1);
        assert_eq!(store.objects()["site/page.txt"], b"hello version A");
    }
}

#[test]
fn keys_a_whole_tree_duplicate_makes_are_settled_by_the_state() {
    let store = Store::start();
    let tree = Tree::new();
    site(&tree);
    tree.config("[[transform]]\ntype = \"prefix_duplicate\"\nrules = [{ from = \"\", to = \"mirror/\" }]\n");
    let first = sync(&tree, &store, &[]);
    assert_eq!((n(&first, "uploaded"), n(&first, "copied")), (21, 21), "{first}");
    rebuild(&tree);
    let rebuilt = sync(&tree, &store, &[]);
    assert_eq!((n(&rebuilt, "uploaded"), n(&rebuilt, "copied"), n(&rebuilt, "hashed")), (0, 0, 42), "{rebuilt}");
    let again = sync(&tree, &store, &[]);
    assert_eq!((n(&again, "uploaded"), n(&again, "hashed")), (0, 0), "the state settles the mirror too: {again}");
}

#[test]
fn an_unwritable_state_directory_is_a_warning_not_a_failure() {
    let store = Store::start();
    let tree = Tree::new();
    site(&tree);
    // A directory under a regular file can never be created, even by root.
    let blocked = tree.work_file("blocked", "a file");
    let dir = blocked.join("states");
    let run = tree.sync(&store.endpoint(), &["--json", "--state-dir", dir.to_str().unwrap()]).run().code(0);
    assert_eq!(n(&run.json(), "failed"), 0, "{run}");
    assert!(run.stderr.contains("WARN") && run.stderr.contains("cannot save the local state"), "{run}");
}

#[test]
fn a_state_dir_naming_a_file_is_refused_naming_the_key() {
    let store = Store::start();
    let tree = Tree::new();
    site(&tree);
    let file = tree.work_file("states", "a file");
    let run = tree.sync(&store.endpoint(), &["--state-dir", file.to_str().unwrap()]).run().code(2);
    assert!(run.stderr.contains("state_dir") && run.stderr.contains("not a directory"), "{run}");
    assert!(store.keys().is_empty(), "nothing was sent");
}

#[test]
fn a_state_warning_is_printed_once() {
    let store = Store::start();
    let tree = Tree::new();
    site(&tree);
    let dir = tree.work().join("states");
    let state = ["--state-dir", dir.to_str().unwrap()];
    sync(&tree, &store, &state);
    std::fs::write(state_file(&dir), b"sitesync-state 1\ngarbage").unwrap();
    tree.file("p1/index.html", "<p>page 1, edited</p>");
    let run = tree.sync(&store.endpoint(), &[]).args(state).run().code(0);
    assert_eq!(run.stderr.matches("ignoring the local state").count(), 1, "{run}");
}

/// A small deterministic generator (xorshift), so a failing sequence is replayed by its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    /// `len` bytes of text, compressible when long.
    fn text(&mut self, len: usize) -> Vec<u8> {
        let words = [&b"alpha "[..], b"beta ", b"gamma ", b"delta ", b"{x:1} ", b"<p>"];
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(words[self.below(words.len() as u64) as usize]);
        }
        out.truncate(len);
        out
    }
}

/// The keys of the property test's sites and their sizes: `b.css` is over `compress`'s min_size.
const SITE: [(&str, usize); 4] = [("a.html", 12), ("b.css", 1500), ("c/d.js", 16), ("c/e.txt", 8)];

/// One step of a sequence.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// A file rewritten now, with other bytes (of the same size, every other time).
    Edit(usize),
    /// Other bytes of the same size, with an mtime older than its object (`cp -p`, `tar x`).
    EditKeepingAnOldMtime(usize),
    /// Every file rewritten now with the same bytes.
    Rebuild,
    /// Another writer overwrites an object with other bytes of the same size.
    AnotherWriter(usize),
    /// The other source is deployed (built now when it was never built), with a state.
    Switch(&'static str),
    Sync {
        compare: &'static str,
        state: bool,
    },
}

fn step(rng: &mut Rng) -> Step {
    let key = rng.below(SITE.len() as u64) as usize;
    let compare = ["auto", "checksum", "mtime"][rng.below(3) as usize];
    match rng.below(9) {
        0 => Step::Edit(key),
        1 => Step::EditKeepingAnOldMtime(key),
        2 => Step::Rebuild,
        3 => Step::AnotherWriter(key),
        4 => Step::Switch(["auto", "checksum"][rng.below(2) as usize]),
        _ => Step::Sync { compare, state: rng.below(3) > 0 },
    }
}

/// Whether the bucket holds `tree`'s files, each as it is or gzip-compressed.
fn holds(store: &Store, tree: &Tree) -> Result<(), String> {
    let mut objects = store.objects();
    objects.retain(|key, _| !key.starts_with("site/.sitesync/"));
    let expected = tree.expected();
    if objects.keys().ne(expected.keys()) {
        return Err(format!("keys {:?}, expected {:?}", objects.keys(), expected.keys()));
    }
    for (key, file) in &expected {
        let object = &objects[key];
        let mut unpacked = Vec::new();
        let gzip = std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&object[..]), &mut unpacked);
        if object != file && (gzip.is_err() || &unpacked != file) {
            return Err(format!("{key} holds {:?}, the file {:?}", String::from_utf8_lossy(object), file.len()));
        }
    }
    Ok(())
}

#[test]
fn after_every_sync_with_a_state_or_a_checksum_every_object_holds_its_files_bytes() {
    // Random sequences of edits, rebuilds, other writers, source switches and syncs in every mode,
    // with and without the state, on a server that lists ETags and on one that lists none, with
    // and without compression. Asserted after each sync that promises it: `checksum` always, and
    // `auto` with the state. (A source is first deployed built after the bucket's objects, so its
    // first sync is not the mtime rule's documented blind spot: an older file of the same size.)
    for seed in 1..=16_u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let lists_etags = seed % 2 == 0;
        let store = if lists_etags { Store::start() } else { Store::without_listed_etags() };
        let mut aged = 60;
        let trees = [Tree::new(), Tree::new()];
        for tree in &trees {
            if seed % 4 < 2 {
                tree.config("[[transform]]\ntype = \"compress\"\nglob = [\"**/*.css\"]\nencoding = \"gzip\"\n");
            }
        }
        let build = |tree: &Tree, rng: &mut Rng| {
            for (key, size) in SITE {
                support::set_mtime(&tree.file(key, rng.text(size)), SystemTime::now());
            }
        };
        build(&trees[0], &mut rng);
        let (mut current, mut built) = (0, [true, false]);
        let mut history = Vec::new();
        let mut steps = vec![Step::Sync { compare: "auto", state: true }];
        steps.extend((0..10).map(|_| step(&mut rng)));
        for step in steps {
            history.push(step);
            let tree = &trees[current];
            let (compare, state) = match step {
                Step::Edit(k) => {
                    let (key, size) = SITE[k];
                    let len = if rng.below(2) == 0 { size } else { size + 3 };
                    support::set_mtime(&tree.file(key, rng.text(len)), SystemTime::now());
                    continue;
                }
                Step::EditKeepingAnOldMtime(k) => {
                    let key = SITE[k].0;
                    let len = std::fs::metadata(tree.path(key)).unwrap().len() as usize;
                    edit_keeping_an_old_mtime(tree, key, &String::from_utf8(rng.text(len)).unwrap());
                    continue;
                }
                Step::Rebuild => {
                    for (key, _) in SITE {
                        support::set_mtime(&tree.path(key), SystemTime::now());
                    }
                    continue;
                }
                Step::AnotherWriter(k) => {
                    let key = format!("site/{}", SITE[k].0);
                    let len = store.objects()[&key].len();
                    overwrite(&store, &key, &rng.text(len));
                    continue;
                }
                Step::Switch(compare) => {
                    current = 1 - current;
                    if !built[current] {
                        build(&trees[current], &mut rng);
                        built[current] = true;
                    }
                    (compare, true)
                }
                Step::Sync { compare, state } => (compare, state),
            };
            let tree = &trees[current];
            let mut args = vec!["--compare", compare];
            if !state {
                args.push("--no-state");
            }
            tree.sync(&store.endpoint(), &args).run().code(0);
            if matches!(step, Step::Switch(_)) && !lists_etags {
                // Without ETags the state tells objects apart by LastModified, which cannot tell
                // this deploy's uploads from the last deploy's within a second or two: the next
                // deploy of the other source comes a minute later, as deploys do.
                aged += 60;
                for key in store.keys() {
                    store.set_last_modified(&key, SystemTime::now() + Duration::from_secs(aged));
                }
            }
            if (compare == "checksum" || (compare == "auto" && state))
                && let Err(wrong) = holds(&store, tree)
            {
                panic!("seed {seed}: {wrong}\nafter {history:?}");
            }
        }
    }
}
