//! The copy phase under faults: a key made by server-side copy is never copied from a source
//! whose upload failed, such a run sends no deletes, and the next run repairs both keys.

mod support;

use support::proxy::{Fault, Rule};
use support::{Store, Tree};

const MIRROR: &str =
    "max_attempts = 1\n\n[[transform]]\ntype = \"prefix_duplicate\"\nrules = [{ from = \"\", to = \"m/\" }]\n";

fn report(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn a_copy_whose_source_failed_to_upload_is_reported_and_the_next_run_repairs_both() {
    let store = Store::start();
    store.put("site/stale.txt", b"stale");
    let tree = Tree::new();
    tree.file("a.txt", "a");
    tree.file("b.txt", "b");
    tree.config(MIRROR);
    let fail_a = Rule::new(Fault::InternalError).when(|h| h.method == "PUT" && h.target.starts_with("/bkt/site/a.txt"));
    let proxy = store.proxy(1, vec![fail_a]);

    let run = tree.sync(&proxy.endpoint(), &["--json"]).run().code(1);
    let r = report(&run.stdout);
    assert_eq!((r["uploaded"].as_u64(), r["copied"].as_u64(), r["deleted"].as_u64()), (Some(1), Some(1), Some(0)));
    let failures: Vec<(&str, &str, &str)> = r["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["key"].as_str().unwrap(), f["op"].as_str().unwrap(), f["error"].as_str().unwrap()))
        .collect();
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert_eq!((failures[0].0, failures[0].1), ("a.txt", "upload"));
    assert_eq!(failures[1], ("m/a.txt", "copy", "not copied: its source a.txt failed to upload"));
    // No delete, and no chain marker: something failed, so not every key has the chain's headers.
    assert_eq!(store.keys(), ["site/b.txt", "site/m/b.txt", "site/stale.txt"]);

    // The next run repairs both keys and, with no marker yet, re-publishes the others in place.
    let run = tree.sync(&store.endpoint(), &["--json"]).run().code(0);
    let r = report(&run.stdout);
    assert_eq!((r["uploaded"].as_u64(), r["copied"].as_u64(), r["deleted"].as_u64()), (Some(1), Some(3), Some(1)));
    assert_eq!(store.keys(), ["site/.sitesync/chain", "site/a.txt", "site/b.txt", "site/m/a.txt", "site/m/b.txt"]);
}

#[test]
fn a_failed_republish_keeps_the_old_marker_so_the_next_run_tries_again() {
    let store = Store::start();
    let tree = Tree::new();
    tree.file("a.css", "a");
    tree.file("b.css", "b");
    let headers = |age: u32| {
        format!(
            "max_attempts = 1\n\n[[transform]]\ntype = \"headers\"\nrules = [{{ glob = \"*.css\", cache_control = \"max-age={age}\" }}]\n"
        )
    };
    tree.config(&headers(60));
    tree.sync(&store.endpoint(), &["--json"]).run().code(0);
    let recorded = store.objects()["site/.sitesync/chain"].clone();

    tree.config(&headers(3600));
    let fail_a = Rule::new(Fault::InternalError)
        .when(|h| h.method == "PUT" && h.target.starts_with("/bkt/site/a.css?x-id=CopyObject"));
    let proxy = store.proxy(2, vec![fail_a]);
    let run = tree.sync(&proxy.endpoint(), &["--json"]).run().code(1);
    let r = report(&run.stdout);
    assert_eq!((r["copied"].as_u64(), r["failed"].as_u64()), (Some(1), Some(1)), "{r}");
    assert_eq!(store.objects()["site/.sitesync/chain"], recorded, "the old chain stays recorded");

    let r = report(&tree.sync(&store.endpoint(), &["--json"]).run().code(0).stdout);
    assert_eq!(r["copied"].as_u64(), Some(2), "both are re-published again: {r}");
    let r = report(&tree.sync(&store.endpoint(), &["--json"]).run().code(0).stdout);
    assert_eq!((r["copied"].as_u64(), r["unchanged"].as_u64()), (Some(0), Some(2)));
}
