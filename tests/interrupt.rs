//! Runs that stop early: SIGINT/SIGTERM (graceful: exit 130 after the requests in flight), SIGKILL
//! at chosen points of a sync (a re-run converges to the exact expected bucket, and no object whose
//! file exists is ever deleted), and overlapping runs kept apart by the lock.
//!
//! Every kill point is found without sleeping: a proxy rule stalls one chosen request and reports
//! it, and the test acts while that request hangs.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::Duration;

use support::proxy::{Fault, Head, Proxy, Rule};
use support::{Store, Tree, wait};

const WAIT: Duration = Duration::from_secs(60);

/// A stall rule that fires once, on the `after`-th request (from 0) matching `when`, and tells
/// the test.
fn stall_once(when: fn(&Head) -> bool, after: u64) -> (Rule, mpsc::Receiver<String>) {
    let (tx, rx) = mpsc::channel();
    (Rule::new(Fault::Stall).when(when).after(after).limit(1).notify(tx), rx)
}

/// A tree of `files` files, a bucket holding an older state of it (some objects stale, `gone`
/// objects whose files are gone) and objects outside the prefix.
fn scenario(store: &Store, files: usize, gone: usize) -> Tree {
    let tree = Tree::new();
    let local = tree.many(files);
    for key in local.keys().step_by(3) {
        store.put(&format!("site/{key}"), b"older content");
    }
    for i in 0..gone {
        store.put(&format!("site/gone/{i:05}.txt"), b"gone");
    }
    store.put("site2/keep.txt", b"keep");
    store.put("outside.txt", b"keep");
    tree.config("max_delete = 100000\nmax_delete_percent = 100\nworkers = 8\n");
    tree
}

fn expected(tree: &Tree) -> BTreeMap<String, Vec<u8>> {
    let mut expected = tree.expected();
    expected.insert("site2/keep.txt".into(), b"keep".to_vec());
    expected.insert("outside.txt".into(), b"keep".to_vec());
    expected
}

/// Kills a sync with SIGKILL when `rule` fires, then checks what must hold after any kill, and
/// that one clean run converges.
fn kill_when(store: &Store, tree: &Tree, rule: Rule, fired: mpsc::Receiver<String>) {
    let before = store.objects();
    let proxy = store.proxy(3, vec![rule]);
    let mut child = tree.sync(&proxy.endpoint(), &[]).spawn();
    let request = fired.recv_timeout(WAIT).expect("the chosen request never came");
    support::signal(&child, libc::SIGKILL);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), None, "killed while {request} hung");

    // No object whose file exists was deleted, and nothing outside the prefix changed.
    let now = store.objects();
    let expected = expected(tree);
    for key in before.keys().filter(|k| expected.contains_key(*k)) {
        assert!(now.contains_key(key), "{key} was deleted although its file exists (killed at {request})");
    }
    assert_eq!(now.get("outside.txt"), Some(&b"keep".to_vec()));
    assert_eq!(now.get("site2/keep.txt"), Some(&b"keep".to_vec()));

    tree.sync(&store.endpoint(), &[]).run().code(0);
    assert_eq!(store.objects(), expected, "after a kill at {request} and one clean run");
    let run = tree.sync(&store.endpoint(), &[]).run().code(0);
    assert!(run.stderr.contains("0 uploaded, 0 copied, 0 deleted"), "{}", run.stderr);
}

#[test]
fn sigkill_during_the_scan_then_a_rerun_converges() {
    let store = Store::start();
    let tree = scenario(&store, 300, 20);
    let (rule, fired) = stall_once(Head::is_list, 0);
    kill_when(&store, &tree, rule, fired);
}

#[test]
fn sigkill_mid_uploads_then_a_rerun_converges() {
    let store = Store::start();
    let tree = scenario(&store, 300, 20);
    let (rule, fired) = stall_once(Head::is_put, 100);
    kill_when(&store, &tree, rule, fired);
}

#[test]
fn sigkill_mid_deletes_then_a_rerun_converges() {
    // 1,500 deletes are two DeleteObjects requests: the second one hangs while the first may
    // have gone through.
    let store = Store::start();
    let tree = scenario(&store, 60, 1500);
    let (rule, fired) = stall_once(Head::is_delete_objects, 1);
    kill_when(&store, &tree, rule, fired);
}

#[test]
fn sigint_lets_requests_in_flight_finish_and_exits_130() {
    for (signal, name) in [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM")] {
        let store = Store::start();
        let tree = scenario(&store, 200, 5);
        let (rule, fired) = stall_once(Head::is_put, 20);
        let proxy = store.proxy(3, vec![rule]);
        let child = tree.sync(&proxy.endpoint(), &["--json"]).spawn();
        let request = fired.recv_timeout(WAIT).expect("the chosen upload never came");
        support::signal(&child, signal);
        // The hung upload is in flight: once let through it must finish, not be dropped.
        proxy.release();
        let run = wait(child, WAIT).code(130);
        assert!(run.stderr.contains(&format!("stopped by {name}, run again to finish")), "{}", run.stderr);
        let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(report["interrupted"], name);
        let uploaded = report["uploaded"].as_u64().unwrap();
        assert!(uploaded < 200, "work queued after the signal must not start ({uploaded} uploaded)");

        let key = request.split_whitespace().nth(1).unwrap().trim_start_matches("/bkt/").split('?').next().unwrap();
        let key = percent_encoding::percent_decode_str(key).decode_utf8().unwrap().into_owned();
        let objects = store.objects();
        assert_eq!(objects.get(&key), expected(&tree).get(&key), "the upload in flight at the signal finished");
        assert!(objects.contains_key("site/gone/00000.txt"), "no deletes after a signal");

        tree.sync(&store.endpoint(), &[]).run().code(0);
        assert_eq!(store.objects(), expected(&tree));
    }
}

/// Starts a sync that holds the target's lock, stalled on its listing until `proxy` is released.
fn holder(tree: &Tree, proxy: &Proxy, fired: &mpsc::Receiver<String>) -> std::process::Child {
    let child = tree.sync(&proxy.endpoint(), &[]).spawn();
    fired.recv_timeout(WAIT).expect("the first run never listed");
    child
}

#[test]
fn a_second_run_for_the_same_target_fails_fast_naming_the_holder() {
    let store = Store::start();
    let tree = scenario(&store, 20, 2);
    let (rule, fired) = stall_once(Head::is_list, 0);
    let proxy = store.proxy(3, vec![rule]);
    let first = holder(&tree, &proxy, &fired);

    let second = tree.sync(&proxy.endpoint(), &[]).run().code(2);
    let line = format!("another sitesync run (pid {}) holds the lock", first.id());
    assert!(second.stderr.contains(&line), "{}", second.stderr);
    assert!(second.stderr.contains("--wait-lock"), "{}", second.stderr);
    // A plan changes nothing and does not need the lock.
    let mut plan = tree.cmd();
    plan.command.arg("plan").arg(tree.src()).arg(support::DEST);
    plan.command.args(["--endpoint-url", &proxy.endpoint(), "--path-style"]);
    plan.run().code(0);

    proxy.release();
    wait(first, WAIT).code(0);
    assert_eq!(store.objects(), expected(&tree));
}

#[test]
fn wait_lock_waits_for_the_holder_then_runs() {
    let store = Store::start();
    let tree = scenario(&store, 20, 2);
    let (rule, fired) = stall_once(Head::is_list, 0);
    let proxy = store.proxy(3, vec![rule]);
    let first = holder(&tree, &proxy, &fired);

    let mut second = tree.sync(&proxy.endpoint(), &["--wait-lock"]).spawn();
    let stderr = second.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let waiting = lines.by_ref().map_while(Result::ok).find(|l| l.contains("waiting for the lock"));
    let waiting = waiting.expect("the second run never said it was waiting");
    assert!(waiting.contains(&format!("pid {}", first.id())), "{waiting}");

    proxy.release();
    wait(first, WAIT).code(0);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = second.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("0 uploaded, 0 copied, 0 deleted")), "{rest:?}");
}

#[test]
fn a_signal_while_waiting_for_the_lock_exits_130_having_sent_nothing() {
    let store = Store::start();
    let tree = scenario(&store, 20, 2);
    let (rule, fired) = stall_once(Head::is_list, 0);
    let proxy = store.proxy(3, vec![rule]);
    let first = holder(&tree, &proxy, &fired);
    let requests = proxy.requests();

    let mut second = tree.sync(&proxy.endpoint(), &["--wait-lock"]).spawn();
    let mut lines = BufReader::new(second.stderr.take().unwrap()).lines();
    lines.by_ref().map_while(Result::ok).find(|l| l.contains("waiting for the lock")).expect("not waiting");
    support::signal(&second, libc::SIGTERM);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert_eq!(second.wait().unwrap().code(), Some(130), "{rest:?}");
    assert!(rest.iter().any(|l| l == "error: stopped by SIGTERM before anything was sent"), "{rest:?}");
    assert_eq!(proxy.requests(), requests, "the waiting run sent no request");

    proxy.release();
    wait(first, WAIT).code(0);
}
