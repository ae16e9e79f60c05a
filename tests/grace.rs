//! Grace-period deletes (`delete_grace`, docs/deploys.md "Deploys and open pages"), end to end
//! against the in-process server: an object whose file is gone is retired (kept, and recorded in
//! the ledger under `.sitesync/`), kept through its grace, and deleted by the first run after it;
//! a key that comes back is never deleted for that retirement; a machine with no local state, a
//! run killed while it writes the ledger, and shards (and a change of their number) all keep to
//! the ledger.
//!
//! The graces are a few seconds, and the only waits are for them to pass: a run after the grace
//! waits until the time the ledger recorded plus the grace (plus a second, for the clock offset
//! the run measures from the server's 1-second `Date` headers). A run that must find keys within
//! their grace, however slow the machine, is given a grace of an hour: the grace is each run's
//! setting, and the ledger records only when each key left.

mod support;

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::proxy::{Fault, Head, Rule};
use support::{Outcome, Store, Test, Tree};

/// The grace of these tests: runs within it follow each other at once.
const GRACE: &str = "4s";
const GRACE_MS: i64 = 4000;

/// A grace no test waits out, for runs that must find keys within their grace however slow the
/// machine: the grace is each run's setting, and the ledger only records when keys left.
const LONG: &str = "1h";

/// What the ledger files under `site/.sitesync/` list: file name → key → retired-at (Unix ms).
fn ledger(store: &Store) -> BTreeMap<String, BTreeMap<String, i64>> {
    let mut files = BTreeMap::new();
    for (key, body) in store.objects() {
        let Some(name) = key.strip_prefix("site/.sitesync/").filter(|n| n.starts_with("retired")) else { continue };
        let text = String::from_utf8(body).unwrap();
        let mut lines = text.lines();
        let header: serde_json::Value = serde_json::from_str(lines.next().expect("a header")).unwrap();
        assert_eq!(header["v"], 1, "{name}: {text}");
        let entries = lines.map(|line| {
            let (ms, key) = line.split_once(' ').unwrap_or_else(|| panic!("{name}: {line:?}"));
            let key = percent_encoding::percent_decode_str(key).decode_utf8().unwrap().into_owned();
            (key, ms.parse::<i64>().unwrap())
        });
        files.insert(name.to_owned(), entries.collect());
    }
    files
}

/// The one ledger of a whole run.
fn whole(store: &Store) -> BTreeMap<String, i64> {
    let mut files = ledger(store);
    assert!(files.len() <= 1, "{files:?}");
    files.remove("retired").unwrap_or_default()
}

/// The objects of the site, sitesync's own under `.sitesync/` left out.
fn site(store: &Store) -> BTreeMap<String, Vec<u8>> {
    store.objects().into_iter().filter(|(k, _)| !k.starts_with("site/.sitesync/")).collect()
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Waits until the grace of a key retired at `retired` (Unix ms, the server's clock, which is
/// this machine's here) is over for a run that starts now.
fn wait_out(retired: i64) {
    let until = retired + GRACE_MS + 1000;
    while now_ms() < until {
        std::thread::sleep(Duration::from_millis((until - now_ms()).clamp(1, 500) as u64));
    }
}

fn n(run: &Outcome, field: &str) -> u64 {
    run.json()[field].as_u64().unwrap_or_else(|| panic!("no {field}\n{run}"))
}

/// (uploaded, retired, deleted) of a run's report.
fn counts(run: &Outcome) -> (u64, u64, u64) {
    (n(run, "uploaded"), n(run, "retired"), n(run, "deleted"))
}

fn sync(test: &Test, args: &[&str]) -> Outcome {
    test.sync(&[&["--delete-grace", GRACE], args].concat())
}

/// A sync with a grace of an hour.
fn sync_long(test: &Test, args: &[&str]) -> Outcome {
    test.sync(&[&["--delete-grace", LONG], args].concat())
}

fn plan_lines(test: &Test) -> Vec<String> {
    let plan = test.plan(&["--delete-grace", GRACE]).success();
    plan.stdout.lines().map(str::to_owned).collect()
}

#[test]
fn a_retired_key_is_kept_through_its_grace_and_deleted_after_it() {
    let test = Test::new()
        .file("index.html", "<script src=\"app.1111aaaa.js\"></script>")
        .file("app.1111aaaa.js", "version 1")
        .file("logo.svg", "<svg/>");
    assert_eq!(counts(&sync(&test, &[]).success()), (3, 0, 0));
    assert!(ledger(&test.server).is_empty(), "nothing retired, no ledger");

    test.remove("app.1111aaaa.js");
    test.write("app.2222bbbb.js", "version 2");
    test.write("index.html", "<script src=\"app.2222bbbb.js\"></script> v2");
    assert_eq!(plan_lines(&test)[2], "retire site/app.1111aaaa.js", "{:?}", plan_lines(&test));
    let before = now_ms();
    let retiring = sync(&test, &[]).success();
    assert_eq!(counts(&retiring), (2, 1, 0), "the ledger is not counted as uploaded\n{retiring}");
    assert!(retiring.stderr.contains("0 deleted, 1 retired,"), "{}", retiring.stderr);
    assert_eq!(test.server.objects()["site/app.1111aaaa.js"], b"version 1", "kept through its grace");
    let retired = whole(&test.server)["app.1111aaaa.js"];
    assert!((before - 1000..=now_ms() + 1000).contains(&retired), "retired at the run's time: {retired}");

    // Within the grace: kept as it is, counted nowhere, the ledger not written again.
    let written = test.server.objects()["site/.sitesync/retired"].clone();
    let kept = sync_long(&test, &[]).success();
    assert_eq!(counts(&kept), (0, 0, 0), "{kept}");
    assert_eq!(n(&kept, "deletes_withheld"), 0);
    assert!(test.server.objects().contains_key("site/app.1111aaaa.js"));
    assert_eq!(test.server.objects()["site/.sitesync/retired"], written);
    // --no-delete retires nothing and leaves the ledger as it is.
    test.remove("logo.svg");
    assert_eq!(counts(&sync(&test, &["--no-delete"]).success()), (0, 0, 0));
    assert_eq!(test.server.objects()["site/.sitesync/retired"], written);
    test.write("logo.svg", "<svg/>");

    wait_out(retired);
    let plan = plan_lines(&test);
    assert!(plan[0].starts_with("delete site/app.1111aaaa.js (retired ") && plan[0].ends_with("s ago)"), "{plan:?}");
    let deleting = sync(&test, &[]).success();
    assert_eq!(counts(&deleting), (0, 0, 1), "{deleting}");
    assert!(!test.server.objects().contains_key("site/app.1111aaaa.js"));
    assert_eq!(whole(&test.server), BTreeMap::new(), "deleted, so no longer retired");
    assert_eq!(site(&test.server), test.tree.expected());
}

#[test]
fn a_key_that_comes_back_is_never_deleted_for_that_retirement() {
    let test = Test::new().file("index.html", "home").file("a.js", "a").file("b.js", "b").file("c.js", "c");
    test.config("sync.toml", "max_delete_percent = 100\n");
    sync(&test, &[]).success();
    for key in ["a.js", "b.js", "c.js"] {
        test.remove(key);
    }
    assert_eq!(counts(&sync(&test, &[]).success()), (0, 3, 0));
    let first = whole(&test.server);
    assert_eq!(first.keys().collect::<Vec<_>>(), ["a.js", "b.js", "c.js"]);

    // Back: `a.js` with the same bytes (its object is left as it is), `b.js` with new ones.
    test.write("a.js", "a");
    test.write("b.js", "b, rebuilt");
    let back = sync_long(&test, &[]).success();
    assert_eq!(counts(&back), (1, 0, 0), "{back}");
    assert_eq!(whole(&test.server).keys().collect::<Vec<_>>(), ["c.js"], "un-retired");

    // Their grace is over, and they leave again: retired anew, from now, not deleted.
    wait_out(first["a.js"]);
    test.remove("a.js");
    test.remove("b.js");
    let again = sync(&test, &[]).success();
    assert_eq!(counts(&again), (0, 2, 1), "c.js is deleted, a.js and b.js retired again\n{again}");
    let second = whole(&test.server);
    assert_eq!(second.keys().collect::<Vec<_>>(), ["a.js", "b.js"]);
    assert!(second["a.js"] > first["a.js"] + GRACE_MS, "{second:?} {first:?}");
    assert_eq!(test.server.objects()["site/a.js"], b"a");
    assert_eq!(test.server.objects()["site/b.js"], b"b, rebuilt");
}

#[test]
fn an_object_published_again_behind_the_ledgers_back_is_retired_anew() {
    // The grace was off for a while (or another writer published it): the ledger's time is older
    // than the object.
    let test = Test::new().file("index.html", "home").file("a.js", "a");
    sync(&test, &[]).success();
    test.remove("a.js");
    sync(&test, &[]).success();
    let first = whole(&test.server)["a.js"];
    wait_out(first);
    test.server.put("site/a.js", b"a, published again by hand");
    // Dated well past the clocks' uncertainty, however fast the test ran.
    test.server.set_last_modified("site/a.js", SystemTime::now() + Duration::from_secs(60));
    let run = sync(&test, &[]).success();
    assert_eq!(counts(&run), (0, 1, 0), "{run}");
    assert!(whole(&test.server)["a.js"] > first);
    assert!(test.server.objects().contains_key("site/a.js"));
}

#[test]
fn a_second_machine_with_no_local_state_honours_the_ledger() {
    let store = Store::start();
    let (a, b) = (Tree::new(), Tree::new());
    for tree in [&a, &b] {
        tree.file("index.html", "home v2");
        tree.file("app.2222bbbb.js", "v2");
    }
    a.file("app.1111aaaa.js", "v1");
    let run = |tree: &Tree| tree.sync(&store.endpoint(), &["--json", "--delete-grace", GRACE]).run().success();
    run(&a);
    std::fs::remove_file(a.path("app.1111aaaa.js")).unwrap();
    assert_eq!(run(&a).json()["retired"], 1);
    let retired = whole(&store)["app.1111aaaa.js"];

    // Another machine, another HOME and cache, the same site: it keeps the key, at A's time.
    let kept = b.sync(&store.endpoint(), &["--json", "--delete-grace", LONG]).run().success();
    assert_eq!(counts(&kept), (0, 0, 0), "{kept}");
    assert!(store.objects().contains_key("site/app.1111aaaa.js"));
    assert_eq!(whole(&store)["app.1111aaaa.js"], retired, "the retirement is A's, not restarted by B");

    wait_out(retired);
    let deleted = run(&b);
    assert_eq!(counts(&deleted), (0, 0, 1), "{deleted}");
    assert_eq!(site(&store), b.expected());
}

#[test]
fn the_delete_limits_count_retirements_but_not_keys_kept_through_their_grace() {
    let test = Test::new().file("index.html", "home").file("a.js", "a").file("b.js", "b").file("c.js", "c");
    sync(&test, &[]).success();
    test.remove("a.js");
    test.remove("b.js");
    let refused = sync_long(&test, &["--max-delete", "1"]).code(2);
    assert!(refused.json()["refused"].as_str().unwrap().contains("max_delete = 1"), "{refused}");
    assert_eq!(n(&refused, "retired"), 0);
    assert!(ledger(&test.server).is_empty(), "a refused run writes no ledger");

    assert_eq!(counts(&sync_long(&test, &["--max-delete", "2"]).success()), (0, 2, 0));
    test.remove("c.js");
    let run = sync_long(&test, &["--max-delete", "1"]).success();
    assert_eq!(counts(&run), (0, 1, 0), "the two kept through their grace do not count\n{run}");
}

#[test]
fn a_run_that_fails_retires_nothing_and_keeps_the_ledger() {
    let test = Test::new().file("index.html", "home").file("a.js", "a").file("b.js", "b");
    sync_long(&test, &[]).success();
    test.remove("a.js");
    sync_long(&test, &[]).success();
    let written = test.server.objects()["site/.sitesync/retired"].clone();
    test.remove("b.js");
    // A file that cannot be read fails the run.
    std::os::unix::fs::symlink("nowhere", test.path("broken.js")).unwrap();
    let failed = sync_long(&test, &[]).code(1);
    assert_eq!((n(&failed, "retired"), n(&failed, "deletes_withheld")), (0, 1), "{failed}");
    assert_eq!(test.server.objects()["site/.sitesync/retired"], written);
    std::fs::remove_file(test.path("broken.js")).unwrap();
    assert_eq!(counts(&sync_long(&test, &[]).success()), (0, 1, 0), "the next clean run retires it");
}

#[test]
fn a_run_killed_while_writing_the_ledger_converges() {
    let test = Test::new().file("index.html", "home").file("a.js", "a").file("b.js", "b").file("c.js", "c");
    test.config("sync.toml", "max_delete_percent = 100\n");
    sync(&test, &[]).success();
    test.remove("c.js");
    sync(&test, &[]).success();
    let old = test.server.objects()["site/.sitesync/retired"].clone();
    let retired = whole(&test.server)["c.js"];
    wait_out(retired);

    // This run deletes c.js (its grace is over), retires a.js and b.js, and is killed while its
    // new ledger is on its way.
    test.remove("a.js");
    test.remove("b.js");
    let (tx, rx) = mpsc::channel();
    let ledger_put = |h: &Head| h.is_put() && h.target.contains("/.sitesync/retired");
    let proxy = test.server.proxy(5, vec![Rule::new(Fault::Stall).when(ledger_put).limit(1).notify(tx)]);
    let mut child = test.tree.sync(&proxy.endpoint(), &["--json", "--delete-grace", GRACE]).spawn();
    let request = rx.recv_timeout(Duration::from_secs(60)).expect("the ledger was never written");
    support::signal(&child, libc::SIGKILL);
    assert_eq!(child.wait().unwrap().code(), None, "killed while {request} hung");
    let objects = test.server.objects();
    assert!(!objects.contains_key("site/c.js"), "its delete came before the ledger");
    assert!(objects.contains_key("site/a.js") && objects.contains_key("site/b.js"), "retired, not deleted");
    assert_eq!(objects["site/.sitesync/retired"], old, "the old ledger, whole");

    // The old ledger lists c.js, which is gone, and not a.js and b.js: one run sets both right.
    let rerun = sync(&test, &[]).success();
    assert_eq!(counts(&rerun), (0, 2, 0), "{rerun}");
    let now = whole(&test.server);
    assert_eq!(now.keys().collect::<Vec<_>>(), ["a.js", "b.js"]);
    wait_out(now["a.js"].max(now["b.js"]));
    assert_eq!(counts(&sync(&test, &[]).success()), (0, 0, 2));
    assert_eq!(site(&test.server), test.tree.expected());
    assert_eq!(whole(&test.server), BTreeMap::new());
}

/// Keys in the ten folders `d0`..`d9`, which two and three shards split differently.
fn sharded_site() -> Test {
    let mut test = Test::new();
    for d in 0..10 {
        test = test.file(&format!("d{d}/index.html"), format!("page {d}")).file(&format!("d{d}/old.js"), "old");
    }
    test
}

#[test]
fn shards_each_keep_their_part_and_a_change_of_n_loses_nothing() {
    let test = sharded_site();
    sync(&test, &[]).success();
    for d in 0..10 {
        test.remove(&format!("d{d}/old.js"));
    }
    let shards = |n: u32, grace: &str| -> Vec<Outcome> {
        let run = |k| test.sync(&["--delete-grace", grace, "--shard", &format!("{k}/{n}")]).success();
        (1..=n).map(run).collect()
    };
    let two = shards(2, GRACE);
    let files = ledger(&test.server);
    assert_eq!(files.keys().collect::<Vec<_>>(), ["retired.1-of-2", "retired.2-of-2"]);
    for (k, run) in two.iter().enumerate() {
        let own = &files[&format!("retired.{}-of-2", k + 1)];
        assert_eq!(counts(run), (0, own.len() as u64, 0), "shard {}/2 retired its own keys: {own:?}\n{run}", k + 1);
        assert!(!own.is_empty(), "ten folders give each shard some");
    }
    let times: BTreeMap<String, i64> = files.values().flatten().map(|(k, t)| (k.clone(), *t)).collect();
    assert_eq!(times.len(), 10, "{times:?}");

    // One comes back; then three shards run, within the grace.
    test.write("d3/old.js", "old");
    for run in shards(3, LONG) {
        assert_eq!(counts(&run), (0, 0, 0), "nothing retired again, nothing deleted\n{run}");
    }
    let files = ledger(&test.server);
    let three: BTreeMap<String, i64> =
        files.iter().filter(|(name, _)| name.ends_with("-of-3")).flat_map(|(_, e)| e.clone()).collect();
    let mut expected = times.clone();
    expected.remove("d3/old.js");
    assert_eq!(three, expected, "every retirement carried over at its time, the comeback dropped");

    // After the grace, a whole run deletes them all, and keeps the one that came back.
    wait_out(*times.values().max().unwrap());
    let run = sync(&test, &[]).success();
    assert_eq!(counts(&run), (0, 0, 9), "{run}");
    assert_eq!(site(&test.server), test.tree.expected());
}

#[test]
fn unretire_drops_the_keys_a_rollback_brings_back() {
    let test = Test::new().file("index.html", "home").file("a.js", "a").file("b.js", "b").file("c.js", "c");
    test.config("sync.toml", "max_delete_percent = 100\n");
    sync_long(&test, &[]).success();
    for key in ["a.js", "b.js"] {
        test.remove(key);
    }
    sync_long(&test, &[]).success();
    let before = whole(&test.server);

    let target = sitesync::keys::target::Target::parse(support::DEST).unwrap();
    let keys = ["a.js".to_owned(), "gone.js".to_owned()].into();
    let unretire = sitesync::history::ledger::unretire(&test.server.client, &target, None, &keys);
    let dropped = test.server.block_on(unretire).unwrap();
    assert_eq!(dropped, 1, "a.js; gone.js was never retired");
    assert_eq!(whole(&test.server), BTreeMap::from([("b.js".to_owned(), before["b.js"])]), "b.js kept at its time");

    // Nothing retired is left alone by a second call: no key to drop, the file as it was.
    let written = test.server.objects()["site/.sitesync/retired"].clone();
    let again = sitesync::history::ledger::unretire(&test.server.client, &target, None, &keys);
    assert_eq!(test.server.block_on(again).unwrap(), 0);
    assert_eq!(test.server.objects()["site/.sitesync/retired"], written);
}

#[test]
fn a_ledger_this_version_cannot_read_withholds_the_deletes_and_is_left_as_it_is() {
    let test = Test::new().file("index.html", "home").file("a.js", "a");
    sync_long(&test, &[]).success();
    let newer = b"{\"v\":2,\"shard\":null,\"written\":1}\nwhatever comes next\n";
    test.server.put("site/.sitesync/retired", newer);
    test.remove("a.js");
    test.write("b.js", "b");
    let run = sync_long(&test, &[]).code(1);
    assert_eq!(counts(&run), (1, 0, 0), "the rest is published\n{run}");
    assert_eq!(run.report().failed_keys(), [(".sitesync/retired", "delete")]);
    assert!(run.stderr.contains("format 2, which this version of sitesync cannot read"), "{run}");
    assert!(test.server.objects().contains_key("site/a.js"));
    assert_eq!(test.server.objects()["site/.sitesync/retired"], newer);
}
