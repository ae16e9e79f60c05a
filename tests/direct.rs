//! Small uploads are sent without the SDK's orchestrator (`s3client::direct`), large ones through
//! it: the same objects, with the same headers, under the same keys, over HTTP and over TLS.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use support::proxy::{Fault, Head, Rule};
use support::{BUCKET, Store, Tree};

/// A rule that never fires and notes the method and target of every request it sees.
fn recorder() -> (Rule, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let noted = seen.clone();
    let rule = Rule::new(Fault::InternalError).when(move |head: &Head| {
        noted.lock().unwrap().push(format!("{} {}", head.method, head.target));
        false
    });
    (rule, seen)
}

/// The PutObjects of the site's own keys (not the run's records under `.sitesync/`) that a
/// [`recorder`] saw, sorted.
fn site_puts(seen: &Mutex<Vec<String>>) -> Vec<String> {
    let seen = seen.lock().unwrap();
    let mut puts: Vec<String> =
        seen.iter().filter(|r| r.starts_with("PUT /bkt/site/") && !r.contains("/.sitesync/")).cloned().collect();
    puts.sort();
    puts
}

/// The site's objects (not the run's records under `.sitesync/`) are the tree's files.
fn assert_published(store: &Store, tree: &Tree) {
    let published: BTreeMap<String, Vec<u8>> =
        store.objects().into_iter().filter(|(k, _)| !k.contains("/.sitesync/")).collect();
    assert!(published == tree.expected(), "{:?}", published.keys());
}

fn head(store: &Store, key: &str) -> HeadObjectOutput {
    store
        .block_on(store.client.head_object().bucket(BUCKET).key(key).send())
        .unwrap_or_else(|e| panic!("head {key}: {e:?}"))
}

/// What a visitor and the next run see of an object's headers.
fn headers(object: &HeadObjectOutput) -> String {
    format!(
        "{:?} {:?} {:?} {:?} {:?}",
        object.content_type(),
        object.cache_control(),
        object.content_disposition(),
        object.content_language(),
        object.metadata().map(|m| m.iter().collect::<std::collections::BTreeMap<_, _>>())
    )
}

const HEADERS: &str = r#"
[[transform]]
type = "headers"
[[transform.rules]]
glob = "**"
cache_control = "public, max-age=60"
content_disposition = "inline"
content_language = "fr"
metadata = { team = "web" }
"#;

#[test]
fn small_files_are_put_directly_with_the_headers_the_sdk_sets_on_large_ones() {
    let store = Store::start();
    let tree = Tree::new();
    let large: Vec<u8> = (0..3 * 512 * 1024u32).map(|i| (i % 251) as u8).collect();
    tree.file("large.txt", &large);
    tree.file("small.txt", "small");
    // Every character the key encoding escapes, and some it does not.
    let odd = "odd names/a b+c%d~e(f)[g]{h}=i&j;k,l:m@n!o$p'q*r^s`t|u\"v<w>x#y?z é€😀.txt";
    tree.file(odd, "odd");
    tree.config(HEADERS);
    let (rule, seen) = recorder();
    let proxy = store.proxy(1, vec![rule]);

    tree.sync(&proxy.endpoint(), &[]).run().code(0);
    assert_published(&store, &tree);

    let puts = site_puts(&seen);
    assert_eq!(puts.len(), 3, "{puts:#?}");
    let through_sdk: Vec<&String> = puts.iter().filter(|r| r.contains("x-id=PutObject")).collect();
    assert_eq!(through_sdk, ["PUT /bkt/site/large.txt?x-id=PutObject"], "only the large file goes through the SDK");

    let (small, large) = (head(&store, "site/small.txt"), head(&store, "site/large.txt"));
    assert_eq!(headers(&small), headers(&large));
    assert_eq!(small.cache_control(), Some("public, max-age=60"));
    assert_eq!(small.metadata().unwrap()["team"], "web");
    assert_eq!(headers(&head(&store, &format!("site/{odd}"))), headers(&large));

    // What was put directly is known to the next run as what the SDK put.
    let run = tree.sync(&proxy.endpoint(), &["--json"]).run().code(0);
    assert_eq!(run.report().counts(), (0, 0, 3, 0), "{run}");
}

#[test]
fn direct_put_false_sends_every_upload_through_the_sdk() {
    let store = Store::start();
    let tree = Tree::new();
    tree.file("index.html", "<p>hi</p>");
    tree.file("app.js", "run()");
    tree.config("direct_put = false\n");
    let (rule, seen) = recorder();
    let proxy = store.proxy(1, vec![rule]);
    tree.sync(&proxy.endpoint(), &[]).run().code(0);
    let puts = site_puts(&seen);
    assert_eq!(puts, ["PUT /bkt/site/app.js?x-id=PutObject", "PUT /bkt/site/index.html?x-id=PutObject"]);
    assert_eq!(store.objects().get("site/app.js").map(Vec::as_slice), Some(&b"run()"[..]));
}

#[test]
fn a_small_put_refused_by_the_server_names_its_code_and_is_not_retried() {
    let store = Store::start();
    let tree = Tree::new();
    tree.file("index.html", "<p>hi</p>");
    tree.config("max_attempts = 4\n");
    let proxy = store.proxy(1, vec![Rule::new(Fault::BadRequest).when(Head::is_put)]);
    let run = tree.sync(&proxy.endpoint(), &[]).run().code(1);
    assert!(run.stderr.contains("upload index.html: InvalidArgument: Injected by the test proxy."), "{}", run.stderr);
    assert_eq!(proxy.injected(Fault::BadRequest), 1, "a 400 is not retried");
}

#[test]
fn a_small_put_throttled_failed_and_reset_is_retried_until_it_goes_through() {
    let store = Store::start();
    let tree = Tree::new();
    tree.file("index.html", "<p>hi</p>");
    tree.config("max_attempts = 4\n");
    let once = |fault| Rule::new(fault).when(Head::is_put).limit(1);
    let faults = [Fault::SlowDown, Fault::InternalError, Fault::Reset];
    let proxy = store.proxy(1, faults.into_iter().map(once).collect());
    tree.sync(&proxy.endpoint(), &[]).run().code(0);
    for fault in faults {
        assert_eq!(proxy.injected(fault), 1, "{fault:?}");
    }
    assert_eq!(store.objects().get("site/index.html").map(Vec::as_slice), Some(&b"<p>hi</p>"[..]));
}

#[test]
fn over_https_small_files_are_put_directly_and_large_ones_through_the_sdk() {
    // As against AWS: TLS in front of the fault proxy, whose recorder sees the decrypted requests.
    let store = Store::start();
    let tree = Tree::new();
    let large: Vec<u8> = (0..3 * 512 * 1024u32).map(|i| (i % 253) as u8).collect();
    tree.file("large.bin", &large);
    tree.file("index.html", "<p>over TLS</p>");
    tree.file("a b/c+d.css", "body{}");
    let (rule, seen) = recorder();
    let proxy = store.proxy(1, vec![rule]);
    let https = store.tls(proxy.addr);
    let ca = support::tls::ca_file();

    tree.sync(&https, &[]).env("SSL_CERT_FILE", &ca).run().code(0);
    assert_published(&store, &tree);
    assert_eq!(
        site_puts(&seen),
        ["PUT /bkt/site/a%20b/c%2Bd.css", "PUT /bkt/site/index.html", "PUT /bkt/site/large.bin?x-id=PutObject"]
    );
    let run = tree.sync(&https, &["--json"]).env("SSL_CERT_FILE", &ca).run().code(0);
    assert_eq!(run.report().counts(), (0, 0, 3, 0), "{run}");

    // A server whose certificate no trusted CA signed is refused (the store is trusted alone).
    tree.file("index.html", "<p>changed</p>");
    let untrusted = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tls/server.pem");
    let refused = tree.sync(&https, &[]).env("SSL_CERT_FILE", untrusted).env("SITESYNC_MAX_ATTEMPTS", "1").run();
    assert_ne!(refused.code, Some(0), "{refused}");
    assert!(refused.stderr.contains("invalid peer certificate: UnknownIssuer"), "{refused}");
    assert_eq!(store.objects()["site/index.html"], b"<p>over TLS</p>");
}
