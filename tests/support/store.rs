//! The S3 server of one test, shared by both harnesses (`common` for the CLI tests, `support` for
//! the reliability tests): s3s-fs behind [`LocalStore`] on a tokio runtime of its own that lives
//! as long as the test, a bucket [`BUCKET`] in it, and an independent aws-sdk-s3 client to inspect
//! it. The client lists with `EncodingType=url` (so keys with control characters survive the XML)
//! and decodes strictly: the store encodes a space as `%20` and `+` as `%2B`, so unlike the tool it
//! never reads `+` as a space, and a key the tool mangled cannot be decoded back into the expected
//! one by the same mistake.

use std::collections::BTreeMap;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::EncodingType;
use sitesync::local_store::{ACCESS_KEY, LocalStore, REGION, SECRET_KEY};
use tempfile::TempDir;

pub const BUCKET: &str = "bkt";

pub struct Store {
    runtime: Option<tokio::runtime::Runtime>,
    pub addr: std::net::SocketAddr,
    pub client: aws_sdk_s3::Client,
    _root: TempDir,
}

impl Store {
    /// A server with the bucket [`BUCKET`], whose listings carry ETags (as AWS's and Garage's do).
    pub fn start() -> Store {
        Store::start_with(true)
    }

    /// A server whose listings carry no ETag, as some S3-compatible servers (and s3s-fs itself).
    pub fn without_listed_etags() -> Store {
        Store::start_with(false)
    }

    fn start_with(list_etags: bool) -> Store {
        let root = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("test-s3")
            .build()
            .unwrap();
        let store = runtime.block_on(LocalStore::start_with(root.path(), list_etags)).expect("starting the store");
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
            .endpoint_url(store.endpoint())
            .force_path_style(true)
            .build();
        let client = aws_sdk_s3::Client::from_conf(config);
        runtime.block_on(client.create_bucket().bucket(BUCKET).send()).expect("creating the bucket");
        Store { runtime: Some(runtime), addr: store.addr, client, _root: root }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn handle(&self) -> tokio::runtime::Handle {
        self.runtime.as_ref().unwrap().handle().clone()
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.as_ref().unwrap().block_on(f)
    }

    pub fn put(&self, key: &str, content: &[u8]) {
        self.block_on(self.client.put_object().bucket(BUCKET).key(key).body(ByteStream::from(content.to_vec())).send())
            .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
    }

    /// Every key of the bucket with its listed size, decoded strictly; without the deploy
    /// history (`site/.sitesync/deploys/` and `site/.sitesync/kept/`), which every sync keeps beside
    /// the site and most tests are not about ([`Store::list_all`] has it).
    pub fn list(&self) -> BTreeMap<String, u64> {
        let mut listed = self.list_all();
        listed.retain(|key, _| !is_history(key));
        listed
    }

    /// Every key of the bucket with its listed size, decoded strictly, the history's included.
    pub fn list_all(&self) -> BTreeMap<String, u64> {
        self.block_on(async {
            let mut objects = BTreeMap::new();
            let mut token = None;
            loop {
                let page = self
                    .client
                    .list_objects_v2()
                    .bucket(BUCKET)
                    .encoding_type(EncodingType::Url)
                    .set_continuation_token(token.take())
                    .send()
                    .await
                    .expect("listing the bucket");
                assert_eq!(page.encoding_type(), Some(&EncodingType::Url), "the store must url-encode listed keys");
                for object in page.contents() {
                    let encoded = object.key().unwrap();
                    let key = percent_encoding::percent_decode_str(encoded)
                        .decode_utf8()
                        .expect("a listed key is UTF-8")
                        .into_owned();
                    objects.insert(key, object.size().unwrap() as u64);
                }
                match page.next_continuation_token() {
                    Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
                    _ => return objects,
                }
            }
        })
    }

    /// Every object of the bucket: key → (size listed, content read back). A listing and the
    /// reads after it are not one snapshot: a key deleted in between (by a request the server
    /// was still handling when its client was killed) is left out, as a second listing would.
    pub fn contents(&self) -> BTreeMap<String, (u64, Vec<u8>)> {
        let listed = self.list();
        self.block_on(async {
            let mut objects = BTreeMap::new();
            for (key, size) in listed {
                let got = match self.client.get_object().bucket(BUCKET).key(&key).send().await {
                    Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => continue,
                    got => got.unwrap_or_else(|e| panic!("get {key}: {e:?}")),
                };
                objects.insert(key, (size, got.body.collect().await.unwrap().to_vec()));
            }
            objects
        })
    }

    pub fn keys(&self) -> Vec<String> {
        self.list().into_keys().collect()
    }

    /// Multipart uploads started and neither completed nor aborted. s3s-fs has no
    /// ListMultipartUploads; it keeps one `.upload-ID.json` file per open upload in its root.
    pub fn open_uploads(&self) -> usize {
        std::fs::read_dir(self._root.path())
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                let name = name.to_string_lossy();
                name.starts_with(".upload-") && name.ends_with(".json")
            })
            .count()
    }

    /// Makes `key`'s object read as written at `when`: s3s-fs lists the stored file's mtime as
    /// its `LastModified`. Another writer a moment after a run has a `LastModified` that the
    /// run's clock cannot tell from its own upload's; this makes a test of "the object changed
    /// since the run saw it" independent of how fast the test runs.
    pub fn set_last_modified(&self, key: &str, when: std::time::SystemTime) {
        let path = sitesync::local_store::stored_path(self._root.path(), BUCKET, key);
        let file = std::fs::File::options().write(true).open(&path).unwrap_or_else(|e| panic!("{key}: {e}"));
        file.set_modified(when).unwrap();
    }
}

/// Whether a key is one of the deploy history's, under any prefix.
pub fn is_history(key: &str) -> bool {
    key.contains(".sitesync/deploys/") || key.contains(".sitesync/kept/")
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
