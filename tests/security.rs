//! Secrets stay secret, and keys stay under the prefix.
//!
//! A recognisable secret key is used for every run, and no output of any kind (`-vv` logs, errors
//! after retries, plans, `--json`) may contain it or a request signature. File names built to
//! escape the prefix (`..` look-alikes, slash look-alikes, percent-encodings) must only ever
//! produce keys under it, and deletes must never reach a key outside it.

mod support;

use std::collections::BTreeMap;
use std::fs;

use sitesync::local_store::SECRET_KEY;
use support::proxy::{Fault, Rule};
use support::{Outcome, Store, Tree};

/// A secret that cannot appear by accident.
const SENTINEL: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSENTINELKEY";

#[track_caller]
fn clean(what: &str, run: &Outcome) {
    for text in [&run.stdout, &run.stderr] {
        for secret in [SECRET_KEY, SENTINEL] {
            assert!(!text.contains(secret), "{what}: the secret key appears in the output:\n{text}");
        }
        for signed in ["Signature=", "X-Amz-Signature", "x-amz-signature"] {
            assert!(!text.contains(signed), "{what}: a request signature appears in the output");
        }
    }
}

#[test]
fn the_secret_key_never_appears_in_any_output() {
    let store = Store::start();
    let tree = Tree::new();
    tree.many(30);
    tree.file("page.html", "<p>");
    symlink_to_nowhere(&tree);
    store.put("site/old.txt", b"old");
    tree.config("max_attempts = 4\n");
    // Faults make the SDK log retries and errors too.
    let proxy = store.proxy(9, vec![Rule::new(Fault::InternalError).rate(0.2), Rule::new(Fault::Reset).rate(0.1)]);
    let endpoint = proxy.endpoint();

    let mut plan = tree.cmd();
    plan.command.args(["plan", "--json", "-vv"]).arg(tree.src()).arg(support::DEST);
    plan.command.args(["--endpoint-url", &endpoint, "--path-style"]);
    clean("plan --json -vv", &plan.run());
    clean("sync -vv", &tree.sync(&endpoint, &["-vv"]).run().code(1));
    clean("sync --json", &tree.sync(&endpoint, &["--json"]).run());

    // Wrong credentials: the error path, with the sentinel as the secret.
    let run = tree.sync(&endpoint, &["-vv"]).env("AWS_SECRET_ACCESS_KEY", SENTINEL).run().code(1);
    assert!(run.stderr.contains("SignatureDoesNotMatch"), "{}", run.stderr);
    clean("sync -vv with a wrong secret", &run);
    let run = tree.sync(&endpoint, &["--json"]).env("AWS_SECRET_ACCESS_KEY", SENTINEL).run();
    clean("sync --json with a wrong secret", &run);

    // The embedded store logs whole requests on its side; they stay out of -vv.
    let mut local = tree.cmd();
    local.command.args(["sync", "-vv"]).arg(tree.src()).arg(support::DEST);
    local.command.arg("--local-store").arg(tree.work().join("store"));
    clean("--local-store -vv", &local.run());
}

fn symlink_to_nowhere(tree: &Tree) {
    std::os::unix::fs::symlink("missing", tree.path("dangling")).unwrap();
}

/// Names that would escape the prefix if a key were built carelessly: dot segments in disguise,
/// slash look-alikes (U+2215, U+FF0F, U+2044, U+29F8), backslashes, percent-encoded dots and
/// slashes, control and bidi characters.
const ADVERSARIAL: &[&str] = &[
    "..a",
    "...",
    "a..",
    "..\u{2215}..\u{2215}outside.txt",
    "\u{ff0f}etc\u{ff0f}passwd",
    "\u{2044}fraction",
    "\u{29f8}big-solidus",
    "..\\..\\windows.txt",
    "%2e%2e%2fescape",
    "%2E%2E/encoded-dir-file",
    " leading-space",
    ".hidden",
    "tab\there",
    "new\nline",
    "\u{202e}txt.exe",
    "dir/..hidden/x",
    "dir/.../y",
];

#[test]
fn adversarial_names_only_ever_make_keys_under_the_prefix() {
    let store = Store::start();
    let tree = Tree::new();
    for name in ADVERSARIAL {
        tree.file(name, name);
    }
    // Neighbours of the prefix that a careless prefix match would reach. (The key `site` itself
    // cannot sit beside `site/...` in s3s-fs, which stores keys as file paths.)
    let outside: BTreeMap<String, Vec<u8>> = ["site2/x", "sitea.txt", "site.txt", "outside.txt", "other/site/x"]
        .iter()
        .map(|k| (k.to_string(), b"outside".to_vec()))
        .collect();
    for (key, content) in &outside {
        store.put(key, content);
    }
    // The source given with a `..` of its own: keys still come from paths relative to it.
    fs::create_dir(tree.path("sub")).unwrap();
    let mut cmd = tree.cmd();
    cmd.command.arg("sync").arg(tree.src().join("sub/..")).arg(support::DEST);
    cmd.command.args(["--endpoint-url", &store.endpoint(), "--path-style"]);
    cmd.run().code(0);

    let mut expected = outside.clone();
    for name in ADVERSARIAL {
        expected.insert(format!("site/{name}"), name.as_bytes().to_vec());
    }
    assert_eq!(store.objects(), expected);

    // Every file gone: the deletes reach exactly the keys under the prefix.
    for name in ADVERSARIAL {
        fs::remove_file(tree.path(name)).unwrap();
    }
    tree.file("index.html", "<p>");
    let run = tree.sync(&store.endpoint(), &["--force-delete", "--json"]).run().code(0);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["deleted"].as_u64(), Some(ADVERSARIAL.len() as u64));
    let mut expected = outside;
    expected.insert("site/index.html".into(), b"<p>".to_vec());
    assert_eq!(store.objects(), expected);
}
