//! An S3 Inventory report as the remote side (`--remote-inventory`), against a real S3 server
//! holding hand-made inventories: gzip CSV data files with AWS's encoding and quoting, their MD5s
//! in a `manifest.json`, and a `manifest.checksum`. ListObjectsV2 is refused by a proxy, so a run
//! that lists at all fails and shows in the proxy's count.

mod support;

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_types::date_time::Format;
use flate2::Compression;
use flate2::write::GzEncoder;
use md5::{Digest, Md5};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use support::proxy::{Fault, Proxy, Rule};
use support::{BUCKET, Outcome, Store, Tree};

/// The bucket the inventories are delivered to: not the target's, as in most set-ups.
const REPORTS: &str = "inventory-reports";
/// Where a report's files go in it, as S3 Inventory lays them out.
const REPORT_DIR: &str = "reports/bkt/daily";
const SCHEMA: &str = "Bucket, Key, Size, LastModifiedDate, ETag, StorageClass, IsMultipartUploaded";

/// What Java's `URLEncoder` (and so S3 Inventory) leaves alone; a space becomes `+`.
const FORM_SAFE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'*');

/// One row of an inventory.
#[derive(Debug, Clone)]
struct Row {
    bucket: String,
    key: String,
    size: u64,
    modified: String,
    etag: String,
}

impl Row {
    fn other(bucket: &str, key: &str) -> Row {
        let etag = "d41d8cd98f00b204e9800998ecf8427e".into();
        Row { bucket: bucket.into(), key: key.into(), size: 1, modified: "2024-01-02T03:04:05.000Z".into(), etag }
    }
}

/// A data file as S3 Inventory writes it: every field quoted, keys form-encoded, gzip.
struct DataFile {
    bytes: Vec<u8>,
    md5: String,
}

impl DataFile {
    fn of(rows: &[Row]) -> DataFile {
        let mut text = String::new();
        for r in rows {
            let key = utf8_percent_encode(&r.key, FORM_SAFE).to_string().replace("%20", "+");
            let fields = [r.bucket.as_str(), &key, &r.size.to_string(), &r.modified, &r.etag, "STANDARD", "FALSE"];
            let quoted: Vec<String> = fields.iter().map(|f| format!("\"{}\"", f.replace('"', "\"\""))).collect();
            text.push_str(&quoted.join(","));
            text.push('\n');
        }
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(text.as_bytes()).unwrap();
        let bytes = gz.finish().unwrap();
        DataFile { md5: md5_hex(&bytes), bytes }
    }
}

fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// An inventory report to put into the reports bucket.
struct Report {
    source_bucket: String,
    format: String,
    files: Vec<DataFile>,
    created: SystemTime,
}

impl Report {
    /// A CSV report of the target's bucket, made two hours ago, with `rows` spread over `n` data
    /// files out of order: file i holds every n-th row from the i-th, last first.
    fn scattered(rows: &[Row], n: usize) -> Report {
        let files = (0..n)
            .map(|i| {
                let mut part: Vec<Row> = rows.iter().skip(i).step_by(n).cloned().collect();
                part.reverse();
                DataFile::of(&part)
            })
            .collect();
        let created = SystemTime::now() - Duration::from_secs(2 * 3600);
        Report { source_bucket: BUCKET.into(), format: "CSV".into(), files, created }
    }

    fn manifest(&self) -> String {
        let files: Vec<serde_json::Value> = self
            .files
            .iter()
            .enumerate()
            .map(|(i, f)| serde_json::json!({"key": data_key(i), "size": f.bytes.len(), "MD5checksum": f.md5}))
            .collect();
        let created = self.created.duration_since(UNIX_EPOCH).unwrap().as_millis().to_string();
        serde_json::to_string_pretty(&serde_json::json!({
            "sourceBucket": self.source_bucket,
            "destinationBucket": format!("arn:aws:s3:::{REPORTS}"),
            "version": "2016-11-30",
            "creationTimestamp": created,
            "fileFormat": self.format,
            "fileSchema": SCHEMA,
            "files": files,
        }))
        .unwrap()
    }

    /// Puts the data files, `manifest.json` and `manifest.checksum`; returns the manifest's URL.
    fn put(&self, store: &Store) -> String {
        let manifest = self.manifest();
        self.put_with(store, &manifest, &md5_hex(manifest.as_bytes()))
    }

    fn put_with(&self, store: &Store, manifest: &str, checksum: &str) -> String {
        store.block_on(async {
            let _ = store.client.create_bucket().bucket(REPORTS).send().await;
        });
        for (i, file) in self.files.iter().enumerate() {
            put_report(store, &data_key(i), file.bytes.clone());
        }
        let dir = format!("{REPORT_DIR}/2024-01-02T03-04Z");
        put_report(store, &format!("{dir}/manifest.json"), manifest.as_bytes().to_vec());
        put_report(store, &format!("{dir}/manifest.checksum"), format!("{checksum}\n").into_bytes());
        format!("s3://{REPORTS}/{dir}/manifest.json")
    }
}

fn data_key(i: usize) -> String {
    format!("{REPORT_DIR}/data/{:08x}-part-{i}.csv.gz", 0x5eed_0000 + i)
}

fn put_report(store: &Store, key: &str, bytes: Vec<u8>) {
    let put = store.client.put_object().bucket(REPORTS).key(key).body(ByteStream::from(bytes)).send();
    store.block_on(put).unwrap_or_else(|e| panic!("put {key}: {e:?}"));
}

/// The rows of what the target's bucket holds now, read back with HEAD as S3 Inventory would
/// record them.
fn rows_of(store: &Store) -> Vec<Row> {
    let mut rows = Vec::new();
    for (key, size) in store.list() {
        let head = store.block_on(store.client.head_object().bucket(BUCKET).key(&key).send()).unwrap();
        let modified = head.last_modified().unwrap();
        // Whole seconds, written with milliseconds as S3 Inventory writes them.
        let modified = aws_smithy_types::DateTime::from_secs(modified.secs()).fmt(Format::DateTime).unwrap();
        let modified = modified.replace('Z', ".000Z");
        let etag = head.e_tag().unwrap_or_default().trim_matches('"').to_owned();
        rows.push(Row { bucket: BUCKET.into(), key, size, modified, etag });
    }
    rows
}

/// Rows an inventory of the whole bucket, or one shared with another bucket, also holds: none is
/// an object under the target, so none may be deleted or even counted.
fn rows_not_of_the_target() -> Vec<Row> {
    vec![
        Row::other("other-bucket", "site/ghost.txt"),
        Row::other("other-bucket", "site/a b.txt"),
        Row::other(BUCKET, "site2/x.txt"),
        Row::other(BUCKET, "sitea.txt"),
        Row::other(BUCKET, "site"),
        Row::other(BUCKET, "other/site/y.txt"),
        Row::other(BUCKET, "site/"),
    ]
}

/// ListObjectsV2 of the site answered with 400 every time.
fn no_listing(store: &Store) -> Proxy {
    store.proxy(7, vec![Rule::new(Fault::BadRequest).when(|h| h.lists_the_site())])
}

fn sync_with(tree: &Tree, proxy: &Proxy, manifest: &str) -> Outcome {
    tree.sync(&proxy.endpoint(), &["--json", "--remote-inventory", manifest]).run()
}

/// Names with spaces, `+`, `%`, commas, quotes and non-ASCII, beside plain ones.
const ODD_NAMES: [&str; 8] = [
    "a b.txt",
    "c+d.txt",
    "100%.txt",
    "x,\"y\".css",
    "日本/é.html",
    "caf\u{e9} menu/index.html",
    "a.b/c.txt",
    "a/b.txt",
];

#[test]
fn a_no_change_run_reads_the_inventory_and_lists_nothing() {
    let store = Store::start();
    let tree = Tree::new();
    // More keys than one batch between stages (1,000), in several folders.
    let mut files = tree.many(1100).len();
    for name in ODD_NAMES {
        tree.file(name, name);
        files += 1;
    }
    tree.sync(&store.endpoint(), &["--json"]).run().code(0);
    let published = store.objects();
    assert_eq!(published, tree.expected());

    let mut rows = rows_of(&store);
    rows.extend(rows_not_of_the_target());
    let manifest = Report::scattered(&rows, 3).put(&store);
    let proxy = no_listing(&store);

    let run = sync_with(&tree, &proxy, &manifest).code(0);
    let report = run.report();
    assert_eq!(report.counts(), (0, 0, files as u64, 0), "{run}");
    assert_eq!(proxy.injected(Fault::BadRequest), 0, "no ListObjectsV2 was sent");
    assert!(proxy.requests() > 0, "the run went through the proxy");
    assert!(run.stderr.contains(&format!("inventory {manifest}: made ")), "{run}");
    assert!(run.stderr.contains("2h 0m ago") || run.stderr.contains("2h 1m ago"), "{run}");
    assert_eq!(store.objects(), published);

    // The same run with a listing is refused by the proxy: a listing would have shown above.
    let listed = tree.sync(&proxy.endpoint(), &["--json"]).run().code(1);
    assert!(listed.stderr.contains("list"), "{listed}");
    assert!(proxy.injected(Fault::BadRequest) > 0);
}

fn write_all(tree: &Tree, files: &[(&str, &str)]) {
    for (name, content) in files {
        tree.file(name, content);
    }
}

/// A published tree and an inventory of it, then the bucket and the tree moved on: after the
/// inventory a run published a new file, a changed one and a removal, an object was deleted
/// behind the tool's back, and then a file was added, one changed and two removed. Returns the
/// manifest's URL.
fn stale_inventory(store: &Store, tree: &Tree) -> String {
    for i in 0..10 {
        tree.file(&format!("keep/{i}.txt"), format!("k{i}"));
    }
    write_all(tree, &[("a.txt", "a"), ("b.txt", "b"), ("c.txt", "c"), ("d/e.txt", "e"), ("old.txt", "o")]);
    tree.sync(&store.endpoint(), &["--json"]).run().code(0);
    let mut rows = rows_of(store);
    rows.extend(rows_not_of_the_target());
    let manifest = Report::scattered(&rows, 2).put(store);

    tree.file("late.txt", "late");
    tree.file("c.txt", "c, longer");
    std::fs::remove_file(tree.path("b.txt")).unwrap();
    tree.sync(&store.endpoint(), &["--json"]).run().code(0);
    store.block_on(store.client.delete_object().bucket(BUCKET).key("site/old.txt").send()).unwrap();
    assert!(!store.keys().contains(&"site/old.txt".to_owned()));

    tree.file("new.txt", "new");
    tree.file("a.txt", "a, longer");
    std::fs::remove_file(tree.path("d/e.txt")).unwrap();
    std::fs::remove_file(tree.path("old.txt")).unwrap();
    manifest
}

/// Uploaded: late.txt (not in the inventory), c.txt (its size there is stale), new.txt, a.txt.
/// Deleted: b.txt and old.txt (already gone), d/e.txt. Unchanged: keep/*. Failed: none.
const STALE_COUNTS: (u64, u64, u64, u64) = (4, 3, 10, 0);

#[test]
fn a_stale_inventory_still_converges() {
    let (store, tree) = (Store::start(), Tree::new());
    let manifest = stale_inventory(&store, &tree);
    let proxy = no_listing(&store);
    for pass in ["first", "second"] {
        let run = sync_with(&tree, &proxy, &manifest).code(0);
        assert_eq!(run.report().counts(), STALE_COUNTS, "{pass} run\n{run}");
        assert_eq!(store.objects(), tree.expected(), "{pass} run: the bucket is the tree");
    }
    assert_eq!(proxy.injected(Fault::BadRequest), 0, "no ListObjectsV2 was sent");
}

#[test]
fn shards_share_one_stale_inventory_and_converge_without_listing() {
    let (store, tree) = (Store::start(), Tree::new());
    let manifest = stale_inventory(&store, &tree);
    let proxy = no_listing(&store);
    let n = 3;
    let mut sum = (0, 0, 0, 0);
    for k in 1..=n {
        let shard = format!("{k}/{n}");
        let args = ["--json", "--remote-inventory", manifest.as_str(), "--shard", shard.as_str()];
        let run = tree.sync(&proxy.endpoint(), &args).run().code(0);
        let c = run.report().counts();
        sum = (sum.0 + c.0, sum.1 + c.1, sum.2 + c.2, sum.3 + c.3);
    }
    assert_eq!(sum, STALE_COUNTS, "each key once, in one shard");
    assert_eq!(store.objects(), tree.expected(), "the bucket is the tree");
    assert_eq!(proxy.injected(Fault::BadRequest), 0, "no ListObjectsV2 was sent");
}

/// A published tree, then a file removed and one added locally: a run that succeeded would
/// delete `site/gone.txt` and upload `site/new.txt`. Returns the rows of the bucket.
fn published_then_changed(store: &Store, tree: &Tree) -> Vec<Row> {
    write_all(tree, &[("index.html", "i"), ("gone.txt", "g"), ("a b/c+d.txt", "x")]);
    for i in 0..5 {
        tree.file(&format!("keep/{i}.txt"), "k");
    }
    tree.sync(&store.endpoint(), &["--json"]).run().code(0);
    std::fs::remove_file(tree.path("gone.txt")).unwrap();
    tree.file("new.txt", "n");
    rows_of(store)
}

/// The run fails with `code`, says each of `named`, and leaves the bucket as it was.
#[track_caller]
fn refused(store: &Store, tree: &Tree, manifest: &str, code: i32, named: &[&str]) {
    let before = store.objects();
    assert!(before.contains_key("site/gone.txt"));
    let proxy = no_listing(store);
    let run = sync_with(tree, &proxy, manifest).code(code);
    for name in named {
        assert!(run.stderr.contains(name), "the error does not name {name:?}\n{run}");
    }
    assert_eq!(store.objects(), before, "nothing deleted, nothing uploaded\n{run}");
    assert_eq!(proxy.injected(Fault::BadRequest), 0);
}

#[test]
fn a_data_file_that_fails_its_md5_fails_the_run() {
    let store = Store::start();
    let tree = Tree::new();
    let rows = published_then_changed(&store, &tree);

    // The manifest's MD5 is another file's.
    let mut report = Report::scattered(&rows, 3);
    report.files[1].md5 = report.files[0].md5.clone();
    let manifest = report.put(&store);
    let named = [data_key(1), report.files[0].md5.clone(), report.files[1].md5.clone()];
    refused(&store, &tree, &manifest, 1, &[&named[0], "MD5", &named[1], &named[2]]);

    // A file cut short: the checksum says why, before gunzip does.
    let mut report = Report::scattered(&rows, 3);
    let len = report.files[2].bytes.len();
    report.files[2].bytes.truncate(len - 9);
    let manifest = report.put(&store);
    refused(&store, &tree, &manifest, 1, &[&data_key(2), "MD5", "damaged"]);
}

#[test]
fn an_inventory_of_another_bucket_is_refused() {
    let store = Store::start();
    let tree = Tree::new();
    let rows = published_then_changed(&store, &tree);
    let mut report = Report::scattered(&rows, 2);
    report.source_bucket = "other-bucket".into();
    let manifest = report.put(&store);
    refused(&store, &tree, &manifest, 1, &[&manifest, "\"other-bucket\"", "\"bkt\""]);
}

#[test]
fn orc_and_parquet_inventories_are_refused_by_name() {
    let store = Store::start();
    let tree = Tree::new();
    let rows = published_then_changed(&store, &tree);
    for format in ["ORC", "Parquet"] {
        let mut report = Report::scattered(&rows, 1);
        report.format = format.into();
        let manifest = report.put(&store);
        refused(&store, &tree, &manifest, 1, &[&format!("fileFormat is {format}"), "only CSV"]);
    }
}

#[test]
fn a_manifest_that_fails_its_checksum_or_is_not_a_manifest_url_is_refused() {
    let store = Store::start();
    let tree = Tree::new();
    let rows = published_then_changed(&store, &tree);
    let report = Report::scattered(&rows, 2);
    let manifest = report.manifest();
    let url = report.put_with(&store, &manifest, &md5_hex(b"an older manifest"));
    refused(&store, &tree, &url, 1, &["manifest.checksum", &md5_hex(manifest.as_bytes())]);

    // A URL that is not a manifest's is a configuration error.
    let not_a_manifest = format!("s3://{REPORTS}/{REPORT_DIR}/data/part-0.csv.gz");
    refused(&store, &tree, &not_a_manifest, 2, &["remote_inventory", "manifest.json", "command line"]);
    // No manifest there at all.
    refused(&store, &tree, &format!("s3://{REPORTS}/nothing/manifest.json"), 1, &["nothing/manifest.json"]);
}
