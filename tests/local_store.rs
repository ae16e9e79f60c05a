//! The embedded store (`--local-store DIR`) as a user meets it: the real binary serving a folder
//! of its own, several runs sharing that folder, a folder that does not exist yet, keys longer
//! than the file names s3s-fs makes for them. What the folder holds afterwards is read back
//! through a store started on it in this process, once the runs have ended.

mod support;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;

use sitesync::clock::Clock;
use sitesync::local_store::LocalStore;
use sitesync::s3client::{self, Connection};
use support::{Cmd, Tree, wait};

/// `sitesync sync SRC s3://bkt/PREFIX --local-store DIR` with `args`.
fn sync(tree: &Tree, prefix: &str, dir: &Path, args: &[&str]) -> Cmd {
    tree.cmd().arg("sync").arg(tree.src()).arg(format!("s3://bkt/{prefix}")).arg("--local-store").arg(dir).args(args)
}

/// Every object of the bucket `bkt` in the store folder `dir`: key → bytes, in listing order.
fn stored(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let store = LocalStore::start(dir).await.expect("starting a store on the folder");
        let conn = Connection { max_attempts: 1, ..store.connection() };
        let client = s3client::client(&conn, Arc::new(Clock::default())).await;
        let mut objects = Vec::new();
        let mut token = None;
        loop {
            let page = client
                .list_objects_v2()
                .bucket("bkt")
                .set_continuation_token(token.take())
                .send()
                .await
                .expect("listing the bucket");
            // The deploy history every sync keeps beside the site is not what these tests are about.
            for object in page.contents().iter().filter(|o| !support::is_history(o.key().unwrap())) {
                let key = object.key().unwrap().to_owned();
                // A store that mixed up its side files answers 500 for the object: such an
                // object is one more that does not hold its bytes.
                let body = match client.get_object().bucket("bkt").key(&key).send().await {
                    Ok(got) => got.body.collect().await.unwrap().to_vec(),
                    Err(e) => format!("(unreadable: {})", e.into_service_error()).into_bytes(),
                };
                objects.push((key, body));
            }
            match page.next_continuation_token() {
                Some(next) => token = Some(next.to_owned()),
                None => return objects,
            }
        }
    })
}

#[test]
fn runs_sharing_a_store_folder_each_store_their_own_bytes() {
    // Four sources published at once into one store folder, each under its own prefix, with
    // contents that differ in every file: s3s-fs's temporary names repeat from one process to
    // the next, and a second server cleans the first one's temporary files away.
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("store");
    let trees: Vec<Tree> = (0..4).map(|_| Tree::new()).collect();
    let mut expected = BTreeMap::new();
    for (r, tree) in trees.iter().enumerate() {
        for i in 0..80 {
            let content = format!("run {r} file {i} ").repeat(200 + i);
            tree.file(&format!("d{}/f{i}.txt", i % 4), &content);
            expected.insert(format!("p{r}/d{}/f{i}.txt", i % 4), content.into_bytes());
        }
    }
    let children: Vec<_> =
        trees.iter().enumerate().map(|(r, tree)| sync(tree, &format!("p{r}"), &dir, &[]).spawn()).collect();
    for child in children {
        wait(child, support::RUN_TIMEOUT).code(0);
    }
    let got: BTreeMap<String, Vec<u8>> = stored(&dir).into_iter().collect();
    let wrong: Vec<&String> = expected.keys().filter(|k| got.get(*k) != expected.get(*k)).collect();
    assert!(wrong.is_empty(), "{} of {} objects hold other bytes: {wrong:?}", wrong.len(), expected.len());
    assert_eq!(got.len(), expected.len());
}

#[test]
fn a_run_waits_for_a_store_folder_in_use_saying_who_holds_it() {
    let tree = Tree::new();
    tree.file("index.html", "home");
    let dir = tree.work().join("store");
    // This process serves the folder first.
    let holder = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    holder.block_on(LocalStore::start(&dir)).unwrap();

    let mut child = sync(&tree, "site", &dir, &[]).spawn();
    let (tx, lines) = std::sync::mpsc::channel();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let reader = std::thread::spawn(move || {
        for line in stderr.lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    let said = format!("held by another sitesync run (pid {})", std::process::id());
    let mut seen = Vec::new();
    // Until the run says it waits, or its stderr ends.
    while let Ok(line) = lines.recv() {
        seen.push(line);
        if seen.last().unwrap().contains(&said) {
            break;
        }
    }
    assert!(seen.iter().any(|l| l.contains("waiting for the local store") && l.contains(&said)), "{seen:#?}");
    drop(holder);
    let run = wait(child, support::RUN_TIMEOUT);
    reader.join().unwrap();
    run.code(0);
    assert_eq!(stored(&dir), [("site/index.html".to_owned(), b"home".to_vec())]);
}

#[test]
fn a_first_run_into_a_store_folder_not_made_yet_is_the_state_the_next_run_trusts() {
    let tree = Tree::new();
    tree.file("index.html", "home");
    tree.file("a.css", "css");
    // Relative, and missing until the first run makes it.
    let dir = Path::new("stores/new");
    assert!(!tree.work().join(dir).exists());
    sync(&tree, "site", dir, &[]).run().code(0);
    let run = sync(&tree, "site", dir, &["--trust-state", "--json"]).run().code(0);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!((&report["uploaded"], &report["unchanged"]), (&0.into(), &2.into()), "{run}");
}

#[test]
fn keys_longer_than_the_store_can_name_a_file_after_are_stored_listed_and_deleted() {
    let tree = Tree::new();
    let dir = tree.work().join("store");
    // A name of 200 bytes, one of 255 (the longest a file system allows), and one deep path of
    // 1,000 bytes with the prefix: over the 255 bytes of s3s-fs's side file names once encoded.
    let long = ["l".repeat(200), "m".repeat(255), format!("{}/z", vec!["q".repeat(245); 4].join("/"))];
    let mut names: Vec<String> = long.to_vec();
    names.extend(["a.txt", "l", "m.txt", "n/o.txt", "r.txt"].map(str::to_owned));
    for (i, name) in names.iter().enumerate() {
        tree.file(name, format!("content {i}"));
    }
    // A long key in a multipart upload too.
    let config = "multipart_threshold = 5242880\nmultipart_chunk_size = 5242880\nmax_delete_percent = 100\n";
    tree.config(config);
    let big = format!("big-{}.bin", "b".repeat(190));
    tree.file(&big, vec![7u8; 6 << 20]);
    names.push(big);

    sync(&tree, "site", &dir, &[]).run().code(0);
    let mut expected: Vec<(String, Vec<u8>)> =
        names.iter().map(|n| (format!("site/{n}"), std::fs::read(tree.path(n)).unwrap())).collect();
    expected.sort();
    assert_eq!(stored(&dir), expected, "every key once, in S3 order, with its bytes");
    let again = sync(&tree, "site", &dir, &["--json", "--no-state"]).run().code(0);
    let report: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(report["uploaded"], 0, "{again}");

    std::fs::remove_file(tree.path(&long[0])).unwrap();
    tree.file(&long[1], "changed");
    sync(&tree, "site", &dir, &[]).run().code(0);
    let got: BTreeMap<String, Vec<u8>> = stored(&dir).into_iter().collect();
    assert!(!got.contains_key(&format!("site/{}", long[0])), "deleted");
    assert_eq!(got[&format!("site/{}", long[1])], b"changed");
    assert_eq!(got.len(), expected.len() - 1);
}
