//! Garage, a real S3 server with a website endpoint, for the tests where what the website serves
//! matters (redirect objects answered with a 301, the bucket's routing rules): the embedded store
//! has no website endpoint and no website configuration.
//!
//! [`Garage::start`] runs one node as a child process in a temporary folder, on free ports of
//! 127.0.0.1 (S3 API, RPC, web, admin), lays it out, imports a fixed key, and kills it on drop. A
//! bucket's website is reached at `http://BUCKET.web.localhost:PORT` ([`Garage::web`] sends that
//! Host header to 127.0.0.1). Garage must be installed: `$GARAGE`, or `garage` on the PATH;
//! without it the tests fail saying how to install it (`.ci/run` does), and are never skipped.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use tempfile::TempDir;

/// The key the tests use: Garage's format, `GK` and 24 hex digits, and 64 hex digits.
pub const ACCESS_KEY: &str = "GK000000000000000000000001";
pub const SECRET_KEY: &str = "0000000000000000000000000000000000000000000000000000000000000001";

/// How long Garage may take to start and lay itself out.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The Garage to run: `$GARAGE`, else `garage` on the PATH.
fn binary() -> PathBuf {
    if let Some(named) = std::env::var_os("GARAGE").map(PathBuf::from) {
        assert!(named.is_file(), "GARAGE={} is not a file", named.display());
        return named;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(found) = std::env::split_paths(&path).map(|dir| dir.join("garage")).find(|p| p.is_file()) {
        return found;
    }
    panic!(
        "Garage is not installed, and these tests need its website endpoint. Install it with `cargo install \
         --locked garage --version 2.5.0 --no-default-features --features bundled-libs,lmdb` (about 15 minutes; \
         .ci/run does this before the tests), or set GARAGE to its path."
    );
}

/// A single Garage node, killed on drop.
pub struct Garage {
    child: Child,
    config: PathBuf,
    log: PathBuf,
    pub s3: SocketAddr,
    pub web: SocketAddr,
    runtime: tokio::runtime::Runtime,
    pub client: aws_sdk_s3::Client,
    _dir: TempDir,
}

impl Garage {
    pub fn start() -> Garage {
        let binary = binary();
        let dir = tempfile::tempdir().unwrap();
        let [s3, rpc, web, admin] = free_ports();
        let config = dir.path().join("garage.toml");
        let root = dir.path().display();
        fs::write(
            &config,
            format!(
                r#"metadata_dir = "{root}/meta"
data_dir = "{root}/data"
db_engine = "lmdb"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"
[s3_api]
s3_region = "us-east-1"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.localhost"
[s3_web]
bind_addr = "127.0.0.1:{web}"
root_domain = ".web.localhost"
index = "index.html"
[admin]
api_bind_addr = "127.0.0.1:{admin}"
admin_token = "admin-token"
"#,
                secret = "0".repeat(64)
            ),
        )
        .unwrap();
        let log = dir.path().join("garage.log");
        let child = Command::new(&binary)
            .arg("-c")
            .arg(&config)
            .arg("server")
            .stdin(Stdio::null())
            .stdout(File::create(&log).unwrap())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let client = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
                .endpoint_url(format!("http://127.0.0.1:{s3}"))
                .force_path_style(true)
                .build(),
        );
        let addr = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let mut garage = Garage { child, config, log, s3: addr(s3), web: addr(web), runtime, client, _dir: dir };
        garage.lay_out();
        garage
    }

    /// Waits for the node, gives it the whole layout and imports the test key.
    fn lay_out(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        while !self.try_cli(&["status"]).status.success() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("garage exited ({status}):\n{}", fs::read_to_string(&self.log).unwrap_or_default());
            }
            assert!(Instant::now() < deadline, "garage did not answer within {START_TIMEOUT:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let id = self.cli(&["node", "id", "-q"]);
        let id = id.get(..64).unwrap_or_else(|| panic!("garage node id: {id:?}")).to_owned();
        self.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &id]);
        self.cli(&["layout", "apply", "--version", "1"]);
        self.cli(&["key", "import", "--yes", "-n", "tests", ACCESS_KEY, SECRET_KEY]);
        self.cli(&["key", "allow", "--create-bucket", ACCESS_KEY]);
    }

    fn try_cli(&self, args: &[&str]) -> Output {
        let binary = binary();
        Command::new(&binary).arg("-c").arg(&self.config).args(args).output().expect("running garage")
    }

    /// Runs `garage ARGS` against this node; its stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self.try_cli(args);
        assert!(out.status.success(), "garage {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A bucket the test key owns; with `website`, served at its website endpoint with these
    /// index and error documents (`garage bucket website --allow`).
    pub fn bucket(&self, name: &str, website: Option<(&str, &str)>) {
        self.cli(&["bucket", "create", name]);
        self.cli(&["bucket", "allow", "--read", "--write", "--owner", name, "--key", ACCESS_KEY]);
        if let Some((index, error)) = website {
            self.cli(&["bucket", "website", "--allow", "--index-document", index, "--error-document", error, name]);
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.s3)
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// `GET path` at `bucket`'s website endpoint: the status line, the headers (names in lower
    /// case) and the body.
    pub fn web(&self, bucket: &str, path: &str) -> (String, Vec<(String, String)>, String) {
        let mut socket = TcpStream::connect(self.web).unwrap();
        let host = format!("{bucket}.web.localhost:{}", self.web.port());
        write!(socket, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
        let mut answer = Vec::new();
        socket.read_to_end(&mut answer).unwrap();
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        let mut lines = head.lines();
        let status = lines.next().unwrap_or_default().to_owned();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        (status, headers, body.to_owned())
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Four ports nobody listens on right now, all different.
fn free_ports() -> [u16; 4] {
    let listeners: Vec<TcpListener> = (0..4).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let ports: Vec<u16> = listeners.iter().map(|l| l.local_addr().unwrap().port()).collect();
    [ports[0], ports[1], ports[2], ports[3]]
}
