//! The lock in the bucket (`PREFIX/.sitesync/lock`): runs of separate machines kept apart, a
//! stale lock and a killed run's lock taken over, the lock released however a run ends, a run
//! whose lock is taken over stopped, and servers without conditional writes (a proxy that strips
//! `If-None-Match` and `If-Match`, and Garage) under `auto` and `required`.
//!
//! "Another machine" is a second [`Tree`]: its own working directory, HOME and TMPDIR, so its own
//! local lock and state; only the bucket is shared. Every point where a test acts is found
//! without sleeping: a proxy rule stalls one chosen request and reports it.

mod support;

use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use sitesync::clock::Clock;
use sitesync::history::lock::{BucketLock, BucketLockError, Mode, Request, Timing};
use sitesync::keys::target::Target;
use support::proxy::{Fault, Head, Rule};
use support::{DEST, Store, Tree, wait};

const WAIT: Duration = Duration::from_secs(60);

/// The lock's key for `s3://bkt/site`.
const LOCK: &str = "site/.sitesync/lock";

/// A lock another machine holds, as sitesync writes it.
const FOREIGN: &str = r#"{"v":1,"host":"ci-runner-7","pid":4242,"start":"2026-01-02T10:45:00.000Z","version":"0.1.0","expires":"2026-01-02T10:47:00.000Z","ttl":120,"token":"feedfacefeedface","machine":"another-boot pid:[4026531836]"}"#;

/// How the holder on that machine is named.
const FOREIGN_HOLDER: &str = "pid 4242 on host ci-runner-7, started 2026-01-02T10:45:00.000Z, sitesync 0.1.0";

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_owned()
}

/// A stall rule that fires once, on the `after`-th request (from 0) matching `when`, and tells
/// the test.
fn stall_once(when: fn(&Head) -> bool, after: u64) -> (Rule, mpsc::Receiver<String>) {
    let (tx, rx) = mpsc::channel();
    (Rule::new(Fault::Stall).when(when).after(after).limit(1).notify(tx), rx)
}

fn holds_lock(store: &Store) -> bool {
    store.keys().iter().any(|k| k == LOCK)
}

/// `sitesync plan` of `tree`'s source to `endpoint`.
fn plan(tree: &Tree, endpoint: &str) -> support::Outcome {
    tree.cmd().arg("plan").arg(tree.src()).arg(DEST).connect(endpoint).run()
}

#[test]
fn two_runs_with_separate_caches_at_once_one_holds_the_lock_and_the_other_exits_2_naming_it() {
    let store = Store::start();
    let (here, there) = (Tree::new(), Tree::new());
    here.many(20);
    there.many(20);
    let (rule, fired) = stall_once(Head::is_list, 0);
    let proxy = store.proxy(3, vec![rule]);
    let first = here.sync(&proxy.endpoint(), &[]).spawn();
    fired.recv_timeout(WAIT).expect("the first run never listed");
    assert!(holds_lock(&store), "the first run holds the bucket lock while it lists");

    let second = there.sync(&store.endpoint(), &[]).run().code(2);
    let holder = format!("error: another sitesync run (pid {} on host {}, started ", first.id(), hostname());
    second
        .stderr_contains(&holder)
        .stderr_contains("holds the bucket lock s3://bkt/site/.sitesync/lock; pass --wait-lock");
    plan(&there, &store.endpoint()).code(0);

    proxy.release();
    let first = wait(first, WAIT).code(0);
    assert!(!first.stderr.contains("conditional writes"), "the test server honours them\n{first}");
    assert!(!holds_lock(&store), "released at the end");
    assert_eq!(store.objects(), here.expected());
}

#[test]
fn wait_lock_waits_for_another_machines_run_then_runs() {
    let store = Store::start();
    let (here, there) = (Tree::new(), Tree::new());
    here.many(20);
    there.many(20);
    let (rule, fired) = stall_once(Head::is_list, 0);
    let proxy = store.proxy(3, vec![rule]);
    let first = here.sync(&proxy.endpoint(), &[]).spawn();
    fired.recv_timeout(WAIT).expect("the first run never listed");

    let mut second = there.sync(&store.endpoint(), &["--wait-lock"]).spawn();
    let mut lines = BufReader::new(second.stderr.take().unwrap()).lines();
    let waiting = lines.by_ref().map_while(Result::ok).find(|l| l.contains("waiting for the bucket lock"));
    let waiting = waiting.expect("the second run never said it was waiting");
    assert!(waiting.contains(&format!("(pid {} on host ", first.id())), "{waiting}");

    proxy.release();
    wait(first, WAIT).code(0);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert_eq!(second.wait().unwrap().code(), Some(0), "{rest:?}");
    assert!(!holds_lock(&store));
}

#[test]
fn another_machines_lock_refuses_the_run_until_it_expires_then_is_taken_over_naming_its_holder() {
    let store = Store::start();
    let tree = Tree::new();
    tree.many(5);
    store.put(LOCK, FOREIGN.as_bytes());

    let refused = tree.sync(&store.endpoint(), &[]).run().code(2);
    refused.stderr_contains(&format!("error: another sitesync run ({FOREIGN_HOLDER}) holds the bucket lock"));
    assert_eq!(store.objects().get(LOCK).map(Vec::as_slice), Some(FOREIGN.as_bytes()), "not touched");
    assert!(!store.keys().iter().any(|k| k.starts_with("site/d")), "nothing synced");

    // Not renewed for 10 minutes: the holder is gone, whatever its machine.
    store.set_last_modified(LOCK, SystemTime::now() - Duration::from_secs(600));
    let run = tree.sync(&store.endpoint(), &[]).run().code(0);
    run.stderr_contains(&format!(
        "the bucket lock s3://bkt/site/.sitesync/lock held by another sitesync run ({FOREIGN_HOLDER}) expired without being renewed: taking it over"
    ));
    assert!(!holds_lock(&store), "released at the end");
    assert_eq!(store.objects(), tree.expected());
}

#[test]
fn a_signal_while_waiting_for_the_bucket_lock_exits_130_having_changed_nothing() {
    let store = Store::start();
    let tree = Tree::new();
    tree.many(5);
    store.put(LOCK, FOREIGN.as_bytes());
    let mut child = tree.sync(&store.endpoint(), &["--wait-lock"]).spawn();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let waiting = lines.by_ref().map_while(Result::ok).find(|l| l.contains("waiting for the bucket lock"));
    assert!(waiting.expect("not waiting").contains(FOREIGN_HOLDER));
    support::signal(&child, libc::SIGTERM);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert_eq!(child.wait().unwrap().code(), Some(130), "{rest:?}");
    assert!(rest.iter().any(|l| l == "error: stopped by SIGTERM before anything was sent"), "{rest:?}");
    assert_eq!(store.keys(), [LOCK], "the other machine's lock is kept, nothing synced");
}

#[test]
fn a_lock_that_is_not_sitesyncs_is_held_by_someone_unknown_until_it_expires() {
    let store = Store::start();
    let tree = Tree::new();
    tree.many(3);
    store.put(LOCK, b"locked by hand");
    let refused = tree.sync(&store.endpoint(), &[]).run().code(2);
    refused.stderr_contains("(holder unknown: the lock's content is not sitesync's) holds the bucket lock");
    store.set_last_modified(LOCK, SystemTime::now() - Duration::from_secs(600));
    tree.sync(&store.endpoint(), &[]).run().code(0).stderr_contains("expired without being renewed");
    assert!(!holds_lock(&store));
}

#[test]
fn a_sigkilled_runs_lock_is_taken_over_at_once_by_the_next_run_of_this_machine() {
    let store = Store::start();
    let tree = Tree::new();
    tree.many(20);
    let (rule, fired) = stall_once(Head::is_list, 0);
    let proxy = store.proxy(3, vec![rule]);
    let mut child = tree.sync(&proxy.endpoint(), &[]).spawn();
    fired.recv_timeout(WAIT).expect("the run never listed");
    let pid = child.id();
    support::signal(&child, libc::SIGKILL);
    assert_eq!(child.wait().unwrap().code(), None);
    let left = String::from_utf8(store.objects()[LOCK].clone()).unwrap();
    assert!(left.contains(&format!("\"pid\":{pid},")), "the killed run's lock is left: {left}");

    // Not two minutes later: at once.
    let run = tree.sync(&store.endpoint(), &[]).run().code(0);
    run.stderr_contains(&format!(
        "taking over the bucket lock s3://bkt/site/.sitesync/lock from a sitesync run of this machine that no longer runs (pid {pid} on host {}",
        hostname()
    ));
    assert!(!holds_lock(&store));
    assert_eq!(store.objects(), tree.expected());
}

#[test]
fn the_lock_is_released_after_a_failure_and_after_a_refusal() {
    let store = Store::start();
    let tree = Tree::new();
    tree.many(20);
    let refuse = Rule::new(Fault::BadRequest).when(|h: &Head| h.is_put() && h.target.contains("f00003"));
    let proxy = store.proxy(3, vec![refuse]);
    let failed = tree.sync(&proxy.endpoint(), &[]).run().code(1);
    assert!(failed.stderr.contains("InvalidArgument"), "{failed}");
    assert!(!holds_lock(&store), "released after a failed upload");

    for i in 0..30 {
        store.put(&format!("site/stale/{i}.txt"), b"stale");
    }
    let refused = tree.sync(&store.endpoint(), &["--max-delete", "10"]).run().code(2);
    assert!(refused.stderr.contains("refusing"), "{refused}");
    assert!(!holds_lock(&store), "released after a run refused by the delete limits");
}

#[test]
fn the_lock_is_released_after_sigint_and_after_a_run_cut_short() {
    for twice in [false, true] {
        let store = Store::start();
        let tree = Tree::new();
        tree.many(50);
        let (rule, fired) = stall_once(Head::is_put, 5);
        let proxy = store.proxy(3, vec![rule]);
        let child = tree.sync(&proxy.endpoint(), &[]).spawn();
        fired.recv_timeout(WAIT).expect("the chosen upload never came");
        assert!(holds_lock(&store));
        support::signal(&child, libc::SIGINT);
        if twice {
            support::signal(&child, libc::SIGINT);
        } else {
            proxy.release();
        }
        let run = wait(child, WAIT).code(130);
        assert!(!holds_lock(&store), "released after {} SIGINT\n{run}", if twice { "a second" } else { "one" });
    }
}

#[test]
fn a_run_whose_lock_is_taken_over_stops_before_changing_more() {
    // One worker, stalled on its 6th upload: the rest of the site waits behind it. Meanwhile
    // another machine takes the lock; the run's next renewal (30 s) finds it gone.
    let store = Store::start();
    let tree = Tree::new();
    tree.many(50);
    tree.config("workers = 1\n");
    store.put("site/stale.txt", b"stale");
    let (rule, fired) = stall_once(Head::is_put, 5);
    let proxy = store.proxy(3, vec![rule]);
    let mut child = tree.sync(&proxy.endpoint(), &[]).spawn();
    fired.recv_timeout(WAIT).expect("the chosen upload never came");
    store.put(LOCK, FOREIGN.as_bytes());

    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let taken = lines.by_ref().map_while(Result::ok).find(|l| l.contains("lost the bucket lock"));
    let taken = taken.expect("the run never noticed");
    assert!(taken.contains(FOREIGN_HOLDER), "{taken}");
    proxy.release();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert_eq!(child.wait().unwrap().code(), Some(1), "{rest:?}");
    let lost = format!(
        "error: lost the bucket lock s3://bkt/site/.sitesync/lock: another sitesync run holds it ({FOREIGN_HOLDER}); the run stopped before changing more"
    );
    assert!(rest.contains(&lost), "{rest:?}");

    let objects = store.objects();
    let uploaded = objects.keys().filter(|k| k.starts_with("site/d")).count();
    assert_eq!(uploaded, 6, "the upload in flight finished; nothing queued started");
    assert!(objects.contains_key("site/stale.txt"), "no deletes");
    assert_eq!(objects.get(LOCK).map(Vec::as_slice), Some(FOREIGN.as_bytes()), "the new holder's lock is kept");
}

#[test]
fn without_conditional_writes_auto_warns_once_and_runs_and_required_exits_2() {
    let store = Store::start();
    let tree = Tree::new();
    tree.many(10);
    let proxy = store.proxy(3, vec![]);
    proxy.strip_request_headers(&["If-None-Match", "If-Match"]);

    let refused = tree.sync(&proxy.endpoint(), &["--remote-lock", "required"]).run().code(2);
    refused.stderr_contains(
        "error: remote_lock = \"required\", but the server does not honour conditional writes (a second PUT of the lock with If-None-Match: * was not refused), so the lock s3://bkt/site/.sitesync/lock cannot keep two runs apart",
    );
    assert!(store.keys().is_empty(), "nothing synced, and the lock written to find out is gone");

    let run = tree.sync(&proxy.endpoint(), &[]).run().code(0);
    let warnings: Vec<&str> = run.stderr.lines().filter(|l| l.contains("does not honour conditional writes")).collect();
    assert_eq!(warnings.len(), 1, "{run}");
    assert!(warnings[0].contains("running with this machine's lock only"), "{run}");
    assert!(!holds_lock(&store));
    assert_eq!(store.objects(), tree.expected());
}

#[test]
fn a_server_that_ignores_only_if_match_is_found_out_too() {
    let store = Store::start();
    let tree = Tree::new();
    tree.many(3);
    let proxy = store.proxy(3, vec![]);
    proxy.strip_request_headers(&["If-Match"]);
    let refused = tree.sync(&proxy.endpoint(), &["--remote-lock", "required"]).run().code(2);
    refused.stderr_contains("(a PUT of the lock with If-Match on an ETag it does not have was not refused)");
    assert!(store.keys().is_empty());
}

#[test]
fn remote_lock_off_sends_no_request_about_the_lock() {
    let store = Store::start();
    let tree = Tree::new();
    tree.many(3);
    let seen = Arc::new(AtomicU64::new(0));
    let count = seen.clone();
    let counter = Rule::new(Fault::SlowDown).when(move |h: &Head| {
        if h.is_lock() {
            count.fetch_add(1, Ordering::Relaxed);
        }
        false
    });
    let proxy = store.proxy(3, vec![counter]);
    tree.sync(&proxy.endpoint(), &["--remote-lock", "off"]).run().code(0);
    assert_eq!(seen.load(Ordering::Relaxed), 0);
    tree.sync(&proxy.endpoint(), &[]).run().code(0);
    assert!(seen.load(Ordering::Relaxed) >= 4, "create, two probes, read and delete by default");
}

#[test]
fn each_shard_holds_its_own_lock() {
    let store = Store::start();
    let tree = Tree::new();
    tree.many(20);
    let (rule, fired) = stall_once(Head::is_list, 0);
    let proxy = store.proxy(3, vec![rule]);
    let first = tree.sync(&proxy.endpoint(), &["--shard", "1/2"]).spawn();
    fired.recv_timeout(WAIT).expect("shard 1 never listed");
    assert!(store.keys().iter().any(|k| k == "site/.sitesync/lock.1-of-2"), "{:?}", store.keys());
    let other = Tree::new();
    other.many(20);
    other.sync(&store.endpoint(), &["--shard", "2/2"]).run().code(0);
    other
        .sync(&store.endpoint(), &["--shard", "1/2"])
        .run()
        .code(2)
        .stderr_contains("lock s3://bkt/site/.sitesync/lock.1-of-2");
    proxy.release();
    wait(first, WAIT).code(0);
    assert!(!store.keys().iter().any(|k| k.contains(".sitesync/lock")));
}

// --- The API a rollback takes the lock with --------------------------------------------------------

/// A client of the test server whose responses feed `clock`, as a run's do.
fn client(store: &Store, clock: &Arc<Clock>) -> aws_sdk_s3::Client {
    let conn = sitesync::s3client::Connection {
        endpoint_url: Some(store.endpoint()),
        path_style: true,
        static_credentials: Some((sitesync::local_store::ACCESS_KEY.into(), sitesync::local_store::SECRET_KEY.into())),
        region: Some(sitesync::local_store::REGION.into()),
        ..Default::default()
    };
    store.block_on(sitesync::s3client::client(&conn, clock.clone()))
}

fn request<'a>(client: &'a aws_sdk_s3::Client, clock: &Arc<Clock>, target: &'a Target, timing: Timing) -> Request<'a> {
    Request { client, clock: clock.clone(), target, shard: None, mode: Mode::Required, wait: false, timing }
}

#[test]
fn a_held_lock_keeps_others_out_is_renewed_and_lost_when_taken_over() {
    let store = Store::start();
    let clock = Arc::new(Clock::default());
    let client = client(&store, &clock);
    let target = Target::parse(DEST).unwrap();
    let quick = Timing {
        ttl: Duration::from_secs(60),
        renew_every: Duration::from_millis(50),
        poll: Duration::from_millis(50),
    };
    let never = std::future::pending::<()>;

    let lock = store.block_on(BucketLock::acquire(request(&client, &clock, &target, quick), never())).unwrap();
    let lock = lock.expect("the test server honours conditional writes");
    let second = store.block_on(BucketLock::acquire(request(&client, &clock, &target, quick), never()));
    let Err(BucketLockError::Busy { holder, .. }) = second else {
        panic!("a second lock: {:?}", second.map(|l| l.is_some()))
    };
    assert!(holder.starts_with(&format!("pid {} on host ", std::process::id())), "{holder}");

    // Renewed: the object changes under the same holder.
    let first = store.objects()[LOCK].clone();
    let renewed = (0..1000).map(|_| store.objects()[LOCK].clone()).find(|now| *now != first);
    let renewed = String::from_utf8(renewed.expect("never renewed")).unwrap();
    assert!(renewed.contains(&format!("\"pid\":{},", std::process::id())), "{renewed}");

    store.put(LOCK, FOREIGN.as_bytes());
    assert!(store.block_on(lock.when_lost()), "the next renewal finds the lock taken over");
    let lost = lock.lost().expect("lost").to_string();
    assert!(lost.contains(&format!("another sitesync run holds it ({FOREIGN_HOLDER})")), "{lost}");
    let released = store.block_on(lock.release());
    assert!(matches!(released, Err(BucketLockError::Lost { .. })), "the release says it was lost");
    assert_eq!(store.objects()[LOCK], FOREIGN.as_bytes(), "a lost lock is not this run's to delete");
}

#[test]
fn a_released_lock_is_gone_and_free_for_the_next_run() {
    let store = Store::start();
    let clock = Arc::new(Clock::default());
    let client = client(&store, &clock);
    let target = Target::parse(DEST).unwrap();
    let take = || {
        store
            .block_on(BucketLock::acquire(request(&client, &clock, &target, Timing::default()), std::future::pending()))
    };
    let lock = take().unwrap().unwrap();
    assert!(holds_lock(&store));
    let lost = lock.when_lost();
    store.block_on(lock.release()).unwrap();
    assert!(!store.block_on(lost), "released, not lost");
    assert!(!holds_lock(&store));
    store.block_on(take().unwrap().unwrap().release()).unwrap();
}

// --- Garage -------------------------------------------------------------------------------------

#[test]
fn garage_ignores_conditional_writes_auto_warns_and_required_exits_2() {
    use support::garage::{ACCESS_KEY, Garage, SECRET_KEY};
    let garage = Garage::start();
    garage.bucket("locks", None);
    let tree = Tree::new();
    tree.many(5);
    let sync = |args: &[&str]| {
        let cmd = tree.cmd().arg("sync").arg(tree.src()).arg("s3://locks/site").connect(&garage.endpoint());
        cmd.env("AWS_ACCESS_KEY_ID", ACCESS_KEY).env("AWS_SECRET_ACCESS_KEY", SECRET_KEY).args(args).run()
    };
    let keys = || {
        let listed = garage.block_on(garage.client.list_objects_v2().bucket("locks").send()).unwrap();
        listed.contents().iter().map(|o| o.key().unwrap().to_owned()).collect::<Vec<_>>()
    };

    sync(&["--remote-lock", "required"]).code(2).stderr_contains(
        "but the server does not honour conditional writes (a second PUT of the lock with If-None-Match: * was not refused)",
    );
    assert!(keys().is_empty(), "{:?}", keys());
    let run = sync(&[]).code(0);
    assert_eq!(run.stderr.matches("does not honour conditional writes").count(), 1, "{run}");
    let site = keys().into_iter().filter(|k| !k.starts_with("site/.sitesync/")).count();
    assert_eq!(site, 5, "synced: {:?}", keys());
    assert!(!keys().iter().any(|k| k.starts_with(LOCK)), "no lock left: {:?}", keys());
    assert!(keys().iter().any(|k| k.starts_with("site/.sitesync/deploys/")), "the deploy is recorded: {:?}", keys());
}
