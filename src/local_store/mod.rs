//! An embedded S3-compatible store: s3s-fs served over HTTP on 127.0.0.1.
//!
//! It lets a newcomer run a real sync without an AWS account (`--local-store DIR`) and gives the
//! test suite a real S3 protocol peer. The requests travel over HTTP exactly as they would to AWS;
//! nothing in the client knows the server is in-process.
//!
//! s3s-fs keeps each object as a file named after its key, so it cannot hold both `a` and `a/b`,
//! which S3 allows (a site where a page becomes a folder has both for one run), and its listings
//! get `EncodingType=url` wrong. [`Compliant`] wraps its `FileSystem`: keys are stored under
//! names where a folder can never meet a file (`layout`), a key too long to name s3s-fs's files
//! after under a short name of its own (`long`), and listings are made here, from those names,
//! with S3's order, prefixes, delimiter, pages and encoding (`listing`).
//!
//! One server at a time serves a folder. s3s-fs names its temporary files from a counter that
//! starts at 0 in every process, and deletes every temporary file in its folder when it starts:
//! two servers on one folder overwrite and delete each other's writes in flight, and objects end
//! up holding another file's bytes under their own ETag. So a server holds an exclusive lock on
//! [`LOCK_FILE`] in its folder for as long as it serves, and a second one waits for it, saying
//! which process holds it (two quick starts in two terminals are legitimate).

mod keys;
mod layout;
mod listing;
mod long;

pub use layout::Compliant;

use std::net::SocketAddr;
use std::path::Path;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use tokio::net::TcpListener;

use crate::s3client::Connection;

/// The fixed credentials of the embedded store; they protect nothing and are not secrets.
pub const ACCESS_KEY: &str = "sitesync-local";
pub const SECRET_KEY: &str = "sitesync-local-secret";
pub const REGION: &str = "us-east-1";

/// The lock file in a store's folder, held by the one server that serves the folder.
pub const LOCK_FILE: &str = ".sitesync-store.lock";

/// Where the object `key` of `bucket` is stored under the store's `root` (its `LastModified` is
/// that file's mtime), for a key short enough to keep its plain name: for tests that play
/// another writer.
pub fn stored_path(root: &Path, bucket: &str, key: &str) -> std::path::PathBuf {
    root.join(bucket).join(keys::stored(key))
}

/// A running store. The server stops, and lets go of its folder, when the runtime that started
/// it shuts down.
#[derive(Debug, Clone)]
pub struct LocalStore {
    pub addr: SocketAddr,
}

impl LocalStore {
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How to reach this store: its endpoint, path-style, its fixed credentials and region.
    pub fn connection(&self) -> Connection {
        Connection {
            endpoint_url: Some(self.endpoint()),
            path_style: true,
            region: Some(REGION.into()),
            static_credentials: Some((ACCESS_KEY.into(), SECRET_KEY.into())),
            ..Connection::default()
        }
    }

    /// Starts serving `root` (created if missing) on a free port of 127.0.0.1, once no other
    /// server holds it.
    pub async fn start(root: &Path) -> std::io::Result<LocalStore> {
        LocalStore::start_with(root, true).await
    }

    /// [`start`](LocalStore::start), with listings that carry ETags or not: some S3-compatible
    /// servers list none, and the content check must do without them there.
    pub async fn start_with(root: &Path, list_etags: bool) -> std::io::Result<LocalStore> {
        std::fs::create_dir_all(root)?;
        let what = format!("the local store {}", root.display());
        let lock = crate::run::lock::wait_for(&root.join(LOCK_FILE), &what).await.map_err(std::io::Error::other)?;
        let fs = s3s_fs::FileSystem::new(root).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        let service = {
            let compliant = Compliant::new(fs, &std::fs::canonicalize(root)?, list_etags);
            let mut b = s3s::service::S3ServiceBuilder::new(compliant);
            b.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
            b.build()
        };
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _lock = lock;
            let http = ConnBuilder::new(TokioExecutor::new());
            while let Ok((socket, _)) = listener.accept().await {
                // Responses are written in pieces; with Nagle each small one waits ~40 ms for
                // the client's delayed ACK.
                let _ = socket.set_nodelay(true);
                let conn = http.serve_connection(TokioIo::new(socket), service.clone()).into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
        });
        Ok(LocalStore { addr })
    }
}
