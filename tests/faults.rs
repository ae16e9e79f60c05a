//! Faults between sitesync and S3: throttling, 500s, resets and stalls injected by a proxy, and a
//! DeleteObjects that always fails. A run either ends complete or says what it could not do and
//! leaves the rest for the next run; it never loses what it should keep.

mod support;

use std::collections::BTreeMap;
use std::time::Instant;

use support::proxy::{Fault, Head, Rule};
use support::{Store, Tree};

/// Settings that keep fault tests quick: a stall is given up after 1 s, and enough attempts that
/// 15% faults on every request cannot exhaust them (0.15^10 per request).
const QUICK: &str = "max_attempts = 10\ntimeout = 1.0\nmax_delete_percent = 100\n";

fn report(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn five_percent_of_each_fault_still_ends_complete_and_the_next_run_is_a_no_op() {
    const FILES: usize = 2000;
    let store = Store::start();
    let tree = Tree::new();
    tree.many(FILES);
    // Stale objects to delete, and objects outside the prefix that must not be touched.
    for i in 0..40 {
        store.put(&format!("site/old/{i}.txt"), b"old");
    }
    store.put("site2/keep.txt", b"keep");
    store.put("outside.txt", b"keep");
    tree.config(QUICK);
    let rules = [Fault::SlowDown, Fault::InternalError, Fault::Reset, Fault::Stall]
        .into_iter()
        .map(|fault| Rule::new(fault).rate(0.05))
        .collect();
    let proxy = store.proxy(0x5eed, rules);

    let started = Instant::now();
    let run = tree.sync(&proxy.endpoint(), &["--json"]).run().code(0);
    let first = started.elapsed();
    let r = report(&run.stdout);
    assert_eq!((r["uploaded"].as_u64(), r["deleted"].as_u64(), r["failed"].as_u64()), (Some(2000), Some(40), Some(0)));
    for fault in [Fault::SlowDown, Fault::InternalError, Fault::Reset, Fault::Stall] {
        assert!(proxy.injected(fault) >= 20, "{fault:?} injected only {} times", proxy.injected(fault));
    }
    let mut expected = tree.expected();
    expected.insert("site2/keep.txt".into(), b"keep".to_vec());
    expected.insert("outside.txt".into(), b"keep".to_vec());
    assert_eq!(store.objects(), expected);

    let started = Instant::now();
    let run = tree.sync(&proxy.endpoint(), &["--json"]).run().code(0);
    let r = report(&run.stdout);
    assert_eq!(
        (r["uploaded"].as_u64(), r["deleted"].as_u64(), r["unchanged"].as_u64()),
        (Some(0), Some(0), Some(2000))
    );
    eprintln!(
        "{FILES} files: first run {first:?}, no-op run {:?}; {} requests; injected {} SlowDown, {} InternalError, {} Reset, {} Stall",
        started.elapsed(),
        proxy.requests(),
        proxy.injected(Fault::SlowDown),
        proxy.injected(Fault::InternalError),
        proxy.injected(Fault::Reset),
        proxy.injected(Fault::Stall),
    );
}

#[test]
fn adaptive_mode_rides_out_throttling() {
    // Adaptive mode cuts the client's send rate to 70% of what it measured at each SlowDown, and
    // to 0.5 requests a second when it has measured nothing yet, so this test throttles a run
    // already under way, once.
    let store = Store::start();
    let tree = Tree::new();
    tree.many(300);
    tree.config(&format!("{QUICK}retry_mode = \"adaptive\"\n"));
    let proxy = store.proxy(7, vec![Rule::new(Fault::SlowDown).after(250).limit(1)]);
    tree.sync(&proxy.endpoint(), &[]).run().code(0);
    assert_eq!(proxy.injected(Fault::SlowDown), 1);
    assert_eq!(store.objects(), tree.expected());
}

#[test]
fn failing_deletes_exit_1_lose_nothing_and_a_clean_run_finishes_them() {
    let store = Store::start();
    let tree = Tree::new();
    let files = tree.many(30);
    for key in files.keys().take(10) {
        store.put(&format!("site/{key}"), b"stale content");
    }
    for i in 0..5 {
        store.put(&format!("site/gone/{i}.txt"), b"old");
    }
    store.put("outside.txt", b"keep");
    tree.config("max_attempts = 3\n");
    let proxy = store.proxy(1, vec![Rule::new(Fault::InternalError).when(Head::is_delete_objects)]);

    let run = tree.sync(&proxy.endpoint(), &[]).run().code(1);
    assert!(run.stderr.contains("delete gone/0.txt: InternalError"), "{}", run.stderr);
    assert_eq!(proxy.injected(Fault::InternalError), 3, "one DeleteObjects, retried up to max_attempts");
    // Every upload went through; nothing was deleted.
    let mut expected = tree.expected();
    for i in 0..5 {
        expected.insert(format!("site/gone/{i}.txt"), b"old".to_vec());
    }
    expected.insert("outside.txt".into(), b"keep".to_vec());
    assert_eq!(store.objects(), expected);

    let run = tree.sync(&store.endpoint(), &[]).run().code(0);
    assert!(run.stderr.contains("0 uploaded, 0 copied, 5 deleted"), "{}", run.stderr);
    let mut expected = tree.expected();
    expected.insert("outside.txt".into(), b"keep".to_vec());
    assert_eq!(store.objects(), expected);
}

#[test]
fn non_retryable_errors_fail_fast_with_their_code() {
    let store = Store::start();
    let tree = Tree::new();
    tree.many(3);
    let proxy = store.proxy(1, vec![]);

    let run = tree.sync(&proxy.endpoint(), &[]).env("AWS_SECRET_ACCESS_KEY", "wrong-secret").run().code(1);
    assert!(run.stderr.contains("SignatureDoesNotMatch"), "{}", run.stderr);
    let after_credentials = proxy.requests();
    assert!(after_credentials <= 2, "a 403 must not be retried ({after_credentials} requests)");

    let run = tree.cmd().arg("sync").arg(tree.src()).arg("s3://no-such-bucket/site");
    let run = run.arg("--endpoint-url").arg(proxy.endpoint()).arg("--path-style").run().code(1);
    assert!(run.stderr.contains("NoSuchBucket"), "{}", run.stderr);
    assert!(proxy.requests() - after_credentials <= 2, "a 404 must not be retried");

    let bad = store.proxy(1, vec![Rule::new(Fault::BadRequest).when(Head::is_put)]);
    let run = tree.sync(&bad.endpoint(), &[]).run().code(1);
    assert!(run.stderr.contains("InvalidArgument: Injected by the test proxy."), "{}", run.stderr);
    assert_eq!(bad.injected(Fault::BadRequest), 3, "one attempt for each of the 3 uploads");
}

#[test]
fn the_retry_budget_is_per_request_not_per_run() {
    // Every request is throttled twice before it gets through, 150 at a time. The SDK's default
    // budget, a token bucket shared by the whole client (500 tokens, 5 per retry), runs dry with
    // 150 requests each holding two retries and fails some; a budget per request does not.
    let store = Store::start();
    let tree = Tree::new();
    let files = tree.many(150);
    tree.config("max_attempts = 3\nworkers = 150\n");
    let seen = std::sync::Mutex::new(BTreeMap::<String, u32>::new());
    let rule = Rule::new(Fault::SlowDown).when(move |head: &Head| {
        let mut seen = seen.lock().unwrap();
        let n = seen.entry(format!("{} {}", head.method, head.target)).or_default();
        *n += 1;
        *n <= 2
    });
    let proxy = store.proxy(1, vec![rule]);
    tree.sync(&proxy.endpoint(), &[]).run().code(0);
    assert!(proxy.injected(Fault::SlowDown) >= 2 * files.len() as u64);
    assert_eq!(store.objects(), tree.expected());
}

#[test]
fn multipart_parts_are_retried_alone() {
    // 12 MiB in 5 MiB parts: a failed or reset UploadPart is sent again on its own, with the
    // attempt timeout stretched for its size.
    let store = Store::start();
    let tree = Tree::new();
    let content: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    tree.file("video.bin", &content);
    tree.config("multipart_threshold = 5242880\nmultipart_chunk_size = 5242880\nmax_attempts = 8\n");
    let puts = |fault| Rule::new(fault).when(Head::is_put).rate(0.3);
    let proxy = store.proxy(11, vec![puts(Fault::InternalError), puts(Fault::Reset)]);
    tree.sync(&proxy.endpoint(), &[]).run().code(0);
    assert!(proxy.injected(Fault::InternalError) + proxy.injected(Fault::Reset) > 0);
    assert_eq!(store.objects().get("site/video.bin"), Some(&content));
}

#[test]
fn a_failed_multipart_upload_names_the_s3_operation_and_the_error_code() {
    /// Whether a request is the S3 operation named.
    fn is(operation: &str, h: &Head) -> bool {
        match operation {
            "CreateMultipartUpload" => h.method == "POST" && h.target.contains("?uploads"),
            "UploadPart" => h.method == "PUT" && h.target.contains("uploadId="),
            _ => h.method == "POST" && h.target.contains("uploadId="),
        }
    }
    for operation in ["CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"] {
        for (fault, code) in
            [(Fault::BadRequest, "InvalidArgument"), (Fault::Bare, "HTTP 403 without an S3 error code")]
        {
            let store = Store::start();
            let tree = Tree::new();
            tree.file("video.bin", vec![7u8; 6 * 1024 * 1024]);
            tree.config("multipart_threshold = 5242880\nmultipart_chunk_size = 5242880\nmax_attempts = 1\n");
            let proxy = store.proxy(3, vec![Rule::new(fault).when(move |h| is(operation, h)).limit(1)]);
            let run = tree.sync(&proxy.endpoint(), &["--json"]).run().code(1);
            let error = report(&run.stdout)["failures"][0]["error"].as_str().unwrap_or_default().to_owned();
            assert!(error.contains(operation) && error.contains(code), "{operation}, {fault:?}: {error:?}\n{run}");
            assert!(!error.contains("UnknownError"), "{operation}, {fault:?}: {error:?}");
        }
    }
}
