//! A run split into N shards (`--shard K/N`) against a real S3 server: the shards' plans are
//! disjoint and add up to the whole run's, and N shards run one after another or all at once leave
//! the bucket exactly as one run does, each file uploaded once and each extra object deleted once.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use support::{Outcome, Store, Tree, wait};

const CHAIN: &str = r#"max_delete_percent = 100

[[transform]]
type = "prefix_duplicate"
rules = [{ from = "v2/", to = "latest/" }]
"#;

/// A tree with odd names (unicode, `+`, spaces, a file beside a folder of the same stem), enough
/// folders to spread over eight shards, and a folder the chain publishes twice.
fn tree() -> Tree {
    let tree = Tree::new();
    for d in 0..24 {
        for f in 0..3 {
            tree.file(&format!("d{d}/f{f}.html"), format!("page {d}/{f}"));
        }
    }
    for name in
        ["日本/語.html", "a b/c+d.txt", "a b/e f.txt", "a.b", "a/b", "a0", "+plus/x", "v2/app.js", "v2/sub/lib.js"]
    {
        tree.file(name, name);
    }
    tree.config(CHAIN);
    tree
}

/// The bucket the runs start from: some objects stale, some extra (one named like a folder).
fn bucket() -> Store {
    let store = Store::start();
    for (key, body) in [
        ("site/d3/f1.html", "an older page"),
        ("site/a b/c+d.txt", "old"),
        ("site/d7", "an object named like the folder d7/"),
        ("site/gone/x.html", "gone"),
        ("site/日本/old.html", "gone"),
        ("site/latest/old.js", "a duplicate whose file is gone"),
        ("site2/outside.txt", "not ours"),
    ] {
        store.put(key, body.as_bytes());
    }
    store
}

fn plan(tree: &Tree, store: &Store, shard: Option<&str>) -> Vec<String> {
    let mut cmd = tree.cmd().arg("plan").arg(tree.src()).arg(support::DEST).connect(&store.endpoint());
    if let Some(shard) = shard {
        cmd = cmd.args(["--shard", shard]);
    }
    let out = cmd.run().code(0);
    out.lines().into_iter().filter(|l| !l.starts_with("plan:")).map(str::to_owned).collect()
}

#[test]
fn the_shards_plans_are_disjoint_and_add_up_to_the_whole() {
    let (tree, store) = (tree(), bucket());
    let whole: BTreeSet<String> = plan(&tree, &store, None).into_iter().collect();
    assert!(whole.iter().any(|l| l.starts_with("copy site/latest/")), "the chain duplicates: {whole:?}");
    assert!(whole.contains("delete site/d7"), "{whole:?}");
    for n in 1..=8 {
        let mut union = BTreeSet::new();
        for k in 1..=n {
            for line in plan(&tree, &store, Some(&format!("{k}/{n}"))) {
                assert!(union.insert(line.clone()), "{line} is planned by two of {n} shards");
            }
        }
        assert_eq!(union, whole, "{n} shards");
    }
}

fn json(run: &Outcome) -> serde_json::Value {
    run.json()
}

fn objects_but_markers(store: &Store) -> BTreeMap<String, Vec<u8>> {
    store.objects().into_iter().filter(|(k, _)| !k.starts_with("site/.sitesync/")).collect()
}

/// What one whole run leaves, and how many uploads, copies and deletes it made.
fn whole_run() -> (BTreeMap<String, Vec<u8>>, [u64; 3]) {
    let (tree, store) = (tree(), bucket());
    let r = json(&tree.sync(&store.endpoint(), &["--json"]).run().code(0));
    let counts = ["uploaded", "copied", "deleted"].map(|k| r[k].as_u64().unwrap());
    (objects_but_markers(&store), counts)
}

fn summed(reports: &[serde_json::Value]) -> [u64; 3] {
    ["uploaded", "copied", "deleted"].map(|k| reports.iter().map(|r| r[k].as_u64().unwrap()).sum())
}

#[test]
fn shards_run_one_after_another_leave_the_bucket_as_one_run_does() {
    let (expected, counts) = whole_run();
    for n in [2, 3, 8] {
        let (tree, store) = (tree(), bucket());
        let reports: Vec<serde_json::Value> = (1..=n)
            .map(|k| json(&tree.sync(&store.endpoint(), &["--json", "--shard", &format!("{k}/{n}")]).run().code(0)))
            .collect();
        assert_eq!(objects_but_markers(&store), expected, "{n} shards");
        assert_eq!(summed(&reports), counts, "{n} shards: each file once, each extra object once");
        let again: u64 = (1..=n)
            .map(|k| {
                let run = tree.sync(&store.endpoint(), &["--json", "--shard", &format!("{k}/{n}")]).run().code(0);
                let r = json(&run);
                r["uploaded"].as_u64().unwrap() + r["copied"].as_u64().unwrap() + r["deleted"].as_u64().unwrap()
            })
            .sum();
        assert_eq!(again, 0, "{n} shards converge");
    }
}

#[test]
fn shards_run_at_once_leave_the_bucket_as_one_run_does() {
    let (expected, counts) = whole_run();
    let n = 4;
    let (tree, store) = (tree(), bucket());
    // A configured lock file is for runs of one target; the shards at once must not exclude
    // one another through it.
    let lock = tree.work().join("publish.lock");
    tree.config(&format!("lock_file = {:?}\n{CHAIN}", lock.display().to_string()));
    let children: Vec<_> =
        (1..=n).map(|k| tree.sync(&store.endpoint(), &["--json", "--shard", &format!("{k}/{n}")]).spawn()).collect();
    let reports: Vec<serde_json::Value> =
        children.into_iter().map(|c| json(&wait(c, Duration::from_secs(120)).code(0))).collect();
    assert_eq!(objects_but_markers(&store), expected);
    assert_eq!(summed(&reports), counts);
}

#[test]
fn a_link_that_may_be_a_directory_stops_every_shards_deletes() {
    let (tree, store) = (tree(), bucket());
    // `d5` becomes a link that cannot be followed: it may stand for a folder whose keys are any
    // shard's, so every shard reports it and none deletes, as one whole run would not.
    let dir = tree.path("d5");
    std::fs::remove_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(tree.path("no-such-dir"), &dir).unwrap();
    let before = store.objects();
    for k in 1..=3 {
        let run = tree.sync(&store.endpoint(), &["--json", "--shard", &format!("{k}/3")]).run().code(1);
        let r = run.json();
        assert_eq!(r["deleted"].as_u64(), Some(0), "shard {k}: {run}");
        assert!(run.stdout.contains("d5"), "shard {k} names the link: {run}");
    }
    assert!(before.keys().all(|k| store.objects().contains_key(k)), "nothing was deleted");
}

#[test]
fn an_unreadable_file_fails_only_its_own_shard() {
    let (tree, store) = (tree(), bucket());
    let owner = (1..=3).find(|k| plan(&tree, &store, Some(&format!("{k}/3"))).iter().any(|l| l.contains("d5/")));
    let owner = owner.expect("one shard plans d5/");
    let fifo = tree.path("d5/pipe");
    let status = std::process::Command::new("mkfifo").arg(&fifo).status().expect("running mkfifo");
    assert!(status.success());
    let mut deleted = 0;
    for k in 1..=3 {
        let run = tree.sync(&store.endpoint(), &["--json", "--shard", &format!("{k}/3")]).run();
        let r = run.json();
        if k == owner {
            assert_eq!(run.code, Some(1), "the owner of d5/ fails: {run}");
            assert_eq!(r["deleted"].as_u64(), Some(0), "{run}");
        } else {
            assert_eq!(run.code, Some(0), "shard {k} does not own d5/: {run}");
            deleted += r["deleted"].as_u64().unwrap();
        }
    }
    assert!(deleted > 0, "the shards without a problem delete their extra objects");
}

#[test]
fn a_bad_shard_is_a_usage_error_naming_the_key() {
    let tree = tree();
    for bad in ["0/3", "4/3", "x/3", "auto/3"] {
        let run = tree.sync("http://127.0.0.1:9", &["--shard", bad]).run().code(2);
        assert!(run.stderr.contains("shard"), "{bad}: {run}");
    }
    let run = tree.sync("http://127.0.0.1:9", &["--shard", "auto/3"]).env("JOB_COMPLETION_INDEX", "3").run().code(2);
    assert!(run.stderr.contains("JOB_COMPLETION_INDEX is 3"), "{run}");
}

#[test]
fn a_source_without_files_is_refused_in_every_shard_but_a_shard_without_files_is_not() {
    // Only empty folders: no shard may empty its part of the prefix.
    let (tree, store) = (Tree::new(), bucket());
    std::fs::create_dir_all(tree.path("empty/inside")).unwrap();
    for k in 1..=3 {
        let run = tree.sync(&store.endpoint(), &["--json", "--shard", &format!("{k}/3")]).run().code(2);
        assert!(run.stderr.contains("the source holds no files"), "shard {k}: {run}");
    }
    // One file, in one folder: the two shards that own none of it still delete their part.
    let (tree, store) = (Tree::new(), bucket());
    tree.file("only/one.html", "one");
    tree.config("max_delete_percent = 100");
    let deleted: u64 = (1..=3)
        .map(|k| {
            tree.sync(&store.endpoint(), &["--json", "--shard", &format!("{k}/3")]).run().code(0).json()["deleted"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert_eq!(deleted, 6, "every object under the prefix but the file's");
    let keys: Vec<String> = objects_but_markers(&store).into_keys().filter(|k| k.starts_with("site/")).collect();
    assert_eq!(keys, ["site/only/one.html"]);
}

/// A chain of `prefix_duplicate` rules in `sync.toml`.
fn duplicating(rules: &str) -> String {
    format!("max_delete_percent = 100\n\n[[transform]]\ntype = \"prefix_duplicate\"\nrules = [{rules}]\n")
}

#[test]
fn shards_never_delete_what_one_run_publishes_from_a_folder_into_the_root() {
    let (tree, store) = (Tree::new(), Store::start());
    tree.file("a/x.html", "x");
    tree.file("b/y.html", "y");
    tree.config(&duplicating(r#"{ from = "a/", to = "" }"#));
    tree.sync(&store.endpoint(), &[]).run().code(0);
    let published = objects_but_markers(&store);
    assert!(published.contains_key("site/x.html"), "{published:?}");
    let runs: Vec<_> = (1..=3).map(|k| tree.sync(&store.endpoint(), &["--shard", &format!("{k}/3")]).run()).collect();
    assert_eq!(objects_but_markers(&store), published, "the shards changed the bucket");
    for run in runs {
        let run = run.code(2);
        assert!(run.stderr.contains("transform[0].rules[0]"), "{run}");
    }
    // Without shards the rule keeps working.
    tree.sync(&store.endpoint(), &[]).run().code(0);
    assert_eq!(objects_but_markers(&store), published);
}

#[test]
fn rules_whose_copies_cannot_be_traced_back_to_one_folder_are_refused_with_shards() {
    let tree = Tree::new();
    tree.file("a/b/x.html", "x");
    for (rules, refused) in [
        // `a/b/x` is itself under `a/`: mapping back never ends.
        (r#"{ from = "a/b/", to = "a/" }"#, "transform[0].rules[0]"),
        // Two sources for `m/a/x`: `a/x` and `x/x`.
        (r#"{ from = "", to = "m/" }, { from = "x/", to = "m/a/" }"#, "transform[0].rules[1]"),
        // A loop: a key under `b/` maps back under `a/`, and back under `b/`.
        (r#"{ from = "a/", to = "b/" }, { from = "b/", to = "a/" }"#, "transform[0].rules[0]"),
    ] {
        tree.config(&duplicating(rules));
        let run = tree.sync("http://127.0.0.1:9", &["--shard", "1/2"]).run().code(2);
        assert!(run.stderr.contains(refused) && run.stderr.contains("--shard"), "{rules}: {run}");
    }
}

#[test]
fn a_mirror_of_the_root_beside_a_real_mirror_folder_splits_into_shards() {
    let tree = Tree::new();
    for name in ["index.html", "mirror/x.html", "mirror/mirror/y.html", "docs/a.html", "v2/app.js"] {
        tree.file(name, name);
    }
    tree.config(&duplicating(r#"{ from = "", to = "mirror/" }, { from = "v2/", to = "latest/" }"#));
    let store = Store::start();
    tree.sync(&store.endpoint(), &[]).run().code(0);
    let expected = objects_but_markers(&store);
    assert!(expected.contains_key("site/mirror/mirror/mirror/y.html"), "{expected:?}");
    for n in [2, 3, 5] {
        let store = Store::start();
        store.put("site/mirror/stale.html", b"stale");
        for k in 1..=n {
            tree.sync(&store.endpoint(), &["--shard", &format!("{k}/{n}")]).run().code(0);
        }
        assert_eq!(objects_but_markers(&store), expected, "{n} shards");
    }
}

#[test]
fn report_merge_refuses_a_missing_or_repeated_shard() {
    let (tree, store) = (tree(), bucket());
    let mut files = Vec::new();
    for k in 1..=3 {
        let run = tree.sync(&store.endpoint(), &["--json", "--shard", &format!("{k}/3")]).run().code(0);
        assert_eq!(run.json()["shard"], format!("{k}/3"), "{run}");
        files.push(tree.work_file(&format!("shard-{k}.json"), &run.stdout));
    }
    let whole = tree.sync(&store.endpoint(), &["--json"]).run().code(0);
    assert!(whole.json().get("shard").is_none(), "{whole}");
    let whole = tree.work_file("whole.json", &whole.stdout);
    let four = tree.sync(&store.endpoint(), &["--json", "--shard", "1/4"]).run().code(0);
    let four = tree.work_file("four.json", &four.stdout);
    let merge = |paths: &[&std::path::PathBuf]| tree.cmd().args(["report", "merge"]).args(paths).run();
    let [one, two, three] = [&files[0], &files[1], &files[2]];

    let all = merge(&[three, one, two]).code(0);
    assert!(all.json().get("shard").is_none(), "the merged report is the whole run's\n{all}");
    for (paths, says) in [
        (vec![one, three], "no report of shard 2/3".to_owned()),
        (vec![one, one, one], format!("{}: shard 1/3 again", one.display())),
        (vec![one, two, three, two], format!("{}: shard 2/3 again", two.display())),
        (vec![one, two, &four], format!("{}: the report of shard 1/4, but", four.display())),
        (vec![one, two, three, &whole], format!("{}: not the report of a shard", whole.display())),
    ] {
        let run = merge(&paths).code(2);
        assert!(run.stderr.contains(&says) && run.stdout.is_empty(), "{paths:?}: {run}");
    }
}

#[test]
fn a_shard_number_too_large_says_so_and_names_the_bound() {
    let tree = tree();
    for (shard, says) in [
        ("1/99999999999", "N is too large: at most 4294967295"),
        ("99999999999/3", "K must be between 1 and 3"),
        ("1/4294967296", "N is too large: at most 4294967295"),
    ] {
        let run = tree.sync("http://127.0.0.1:9", &["--shard", shard]).run().code(2);
        assert!(run.stderr.contains(says), "{shard}: {run}");
    }
    let store = Store::start();
    tree.sync(&store.endpoint(), &["--shard", "1/4294967295"]).run().code(0);
    let run = tree.sync("http://127.0.0.1:9", &["--shard", "auto/3"]).env("JOB_COMPLETION_INDEX", "99999999999");
    let run = run.run().code(2);
    assert!(run.stderr.contains("JOB_COMPLETION_INDEX is 99999999999, but counts from 0 to 2"), "{run}");
}
