//! The split listing against a real S3 server: every key exactly once, in S3 order, whatever the
//! parallelism, with keys that sit next to folders of the same name and keys with odd characters.

use std::sync::Arc;

use sitesync::clock::Clock;
use sitesync::keys::target::Target;
use sitesync::local_store::LocalStore;
use sitesync::remote::{Listing, RemoteSource};
use sitesync::s3client::{self, Connection};
use tokio::sync::mpsc;

async fn client(store: &LocalStore) -> aws_sdk_s3::Client {
    let conn = Connection { max_attempts: 1, ..store.connection() };
    s3client::client(&conn, Arc::new(Clock::default())).await
}

async fn listed(client: &aws_sdk_s3::Client, target: &Target, parallel: usize) -> Vec<String> {
    let (tx, mut rx) = mpsc::channel(2);
    let (client, t) = (client.clone(), target.clone());
    let listing: Box<dyn RemoteSource> = Box::new(Listing { client, target: t, parallel });
    let task = tokio::spawn(listing.send(tx));
    let mut keys = Vec::new();
    while let Some(batch) = rx.recv().await {
        keys.extend(batch.into_iter().map(|o| o.key));
    }
    task.await.unwrap().unwrap();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_listing_yields_every_key_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::start(dir.path()).await.unwrap();
    let client = client(&store).await;
    client.create_bucket().bucket("bucket").send().await.unwrap();

    let mut relative: Vec<String> =
        ["a.b", "a-b/x", "a/b", "a/c/d", "a0", "b c/+%?#.txt", "b+c/é", "日本/語.html", "index.html", "z"]
            .iter()
            .map(|k| k.to_string())
            .collect();
    // Enough keys in one folder for several pages, so folder listings paginate while others run.
    relative.extend((0..1203).map(|i| format!("many/{i:05}")));
    // (s3s-fs stores keys as paths, so it cannot hold a key `site` beside keys under `site/`.)
    let outside = ["sit", "site-x/y", "site2/x", "sitea.txt", "other/site/x"];
    for key in relative.iter().map(|k| format!("site/{k}")).chain(outside.iter().map(|k| k.to_string())) {
        client.put_object().bucket("bucket").key(&key).body(Vec::from(key.as_bytes()).into()).send().await.unwrap();
    }
    relative.sort();

    let target = Target::parse("s3://bucket/site").unwrap();
    for parallel in [1, 2, 8] {
        assert_eq!(listed(&client, &target, parallel).await, relative, "parallel = {parallel}");
    }
    // A prefix deeper down, and the whole bucket.
    let deeper = Target::parse("s3://bucket/site/a").unwrap();
    assert_eq!(listed(&client, &deeper, 4).await, ["b", "c/d"]);
    let mut everything: Vec<String> =
        relative.iter().map(|k| format!("site/{k}")).chain(outside.iter().map(|k| k.to_string())).collect();
    everything.sort();
    assert_eq!(listed(&client, &Target::parse("s3://bucket").unwrap(), 3).await, everything);
}
