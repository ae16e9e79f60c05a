//! The harness of the integration tests: a real S3 server on 127.0.0.1, a source tree, and the
//! real `sitesync` binary run as a subprocess against both.
//!
//! Each [`Test`] owns an embedded store (s3s-fs behind [`LocalStore`], on its own tokio runtime
//! that lives as long as the test), a bucket `bkt` in it, a temporary source directory and a
//! working directory for config files. Tests read like a spec, in the manner of casey/just's:
//! `Test::new().file("a.txt", "x").sync(&[]).success()`. The bucket is inspected through an
//! independent aws-sdk-s3 client. It lists with `EncodingType=url` (so keys with control
//! characters survive the XML) and decodes strictly: the store encodes a space as `%20` and `+` as
//! `%2B`, so unlike the tool it never reads `+` as a space, and a key the tool mangled cannot be
//! decoded back into the expected one by the same mistake.
//!
//! Fixture files get an mtime an hour in the past: a file written a few milliseconds before a
//! sync may rightly be uploaded again by the clock rule, and a test must not depend on that.

#![allow(dead_code)]

#[path = "../support/store.rs"]
mod store;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use sitesync::local_store::{ACCESS_KEY, REGION, SECRET_KEY};
use tempfile::TempDir;

/// The bucket every test syncs into.
#[allow(unused_imports)] // not every test file that includes this harness names it
pub use store::BUCKET;
/// The destination most tests use: the folder `site/` of the bucket.
pub const DEST: &str = "s3://bkt/site";

/// How long one run of the binary may take before the test fails instead of hanging.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// An hour ago: the mtime of every fixture file.
pub fn past() -> SystemTime {
    SystemTime::now() - Duration::from_secs(3600)
}

/// A few seconds ahead: later than any `LastModified` the server has given so far.
pub fn future() -> SystemTime {
    SystemTime::now() + Duration::from_secs(5)
}

pub fn set_mtime(path: &Path, mtime: SystemTime) {
    let file = fs::File::options().write(true).open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    file.set_modified(mtime).unwrap_or_else(|e| panic!("set mtime of {}: {e}", path.display()));
}

pub fn mtime(path: &Path) -> SystemTime {
    fs::metadata(path).and_then(|m| m.modified()).unwrap()
}

/// The embedded store of a test (shared with the reliability harness).
pub use store::Store as Server;

impl Server {
    /// Every object of the bucket: key → (size listed, content read back).
    pub fn objects(&self) -> BTreeMap<String, (u64, Vec<u8>)> {
        self.contents()
    }
}

/// One test case: a server, a source tree, and a working directory for config files.
pub struct Test {
    pub server: Server,
    src: TempDir,
    work: TempDir,
}

impl Default for Test {
    fn default() -> Self {
        Test::new()
    }
}

impl Test {
    pub fn new() -> Test {
        Test { server: Server::start(), src: tempfile::tempdir().unwrap(), work: tempfile::tempdir().unwrap() }
    }

    pub fn src(&self) -> &Path {
        self.src.path()
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.src.path().join(relative)
    }

    /// Writes a source file (creating its directories) with an mtime an hour ago.
    pub fn file(self, relative: &str, content: impl AsRef<[u8]>) -> Test {
        self.write(relative, content);
        self
    }

    /// Writes a source file whose name is raw bytes (not necessarily UTF-8).
    pub fn file_bytes(self, name: &[u8], content: impl AsRef<[u8]>) -> Test {
        let path = self.src.path().join(OsStr::from_bytes(name));
        fs::write(&path, content).unwrap();
        set_mtime(&path, past());
        self
    }

    /// Puts an object into the bucket before the test runs.
    pub fn remote(self, key: &str, content: impl AsRef<[u8]>) -> Test {
        self.server.put(key, content.as_ref());
        self
    }

    /// Writes a file into the working directory (where `sync.toml` is looked for) and returns
    /// its path.
    pub fn config(&self, name: &str, content: &str) -> PathBuf {
        let path = self.work.path().join(name);
        fs::write(&path, content).unwrap();
        path
    }

    /// Writes (or rewrites) a source file with an mtime an hour ago.
    pub fn write(&self, relative: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        set_mtime(&path, past());
        path
    }

    /// Marks a source file as modified after everything the server has stored.
    pub fn touch(&self, relative: &str) {
        set_mtime(&self.path(relative), future());
    }

    pub fn remove(&self, relative: &str) {
        fs::remove_file(self.path(relative)).unwrap();
    }

    pub fn objects(&self) -> BTreeMap<String, (u64, Vec<u8>)> {
        self.server.objects()
    }

    pub fn keys(&self) -> Vec<String> {
        self.server.keys()
    }

    /// The objects as key → content, for comparing with string literals.
    pub fn contents(&self) -> BTreeMap<String, String> {
        self.objects().into_iter().map(|(k, (_, body))| (k, String::from_utf8_lossy(&body).into_owned())).collect()
    }

    /// A command of the binary, with the server's endpoint and credentials and nothing from the
    /// environment of whoever runs the tests.
    pub fn command(&self) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sitesync"));
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("AWS_") || name.starts_with("SITESYNC_") || name == "RUST_LOG" {
                command.env_remove(&*name);
            }
        }
        let home = self.work.path();
        command
            .current_dir(home)
            .env("HOME", home)
            .env("AWS_CONFIG_FILE", home.join("no-aws-config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", home.join("no-aws-credentials"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_REGION", REGION);
        Run { command, endpoint: self.server.endpoint() }
    }

    /// `sitesync sync SRC s3://bkt/site --json ARGS..` against the test server, to run.
    pub fn sync_command(&self, args: &[&str]) -> Run {
        self.command().arg("sync").arg(self.src()).args([DEST, "--json"]).args(args).connect()
    }

    /// Runs `sitesync sync SRC s3://bkt/site --json ARGS..` against the test server.
    pub fn sync(&self, args: &[&str]) -> Outcome {
        self.sync_command(args).run()
    }

    /// `sitesync plan SRC s3://bkt/site ARGS..` (human output) against the test server.
    pub fn plan(&self, args: &[&str]) -> Outcome {
        self.command().arg("plan").arg(self.src()).arg(DEST).args(args).connect().run()
    }
}

/// A command line being built.
pub struct Run {
    command: Command,
    endpoint: String,
}

impl Run {
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Run {
        self.command.arg(arg);
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Run {
        self.command.args(args);
        self
    }

    pub fn env(mut self, name: &str, value: impl AsRef<OsStr>) -> Run {
        self.command.env(name, value);
        self
    }

    /// Adds `--endpoint-url` and `--path-style` for the test server.
    pub fn connect(self) -> Run {
        let endpoint = self.endpoint.clone();
        self.args(["--endpoint-url", &endpoint, "--path-style"])
    }

    /// Runs the binary to its end, killing it if it outlives [`RUN_TIMEOUT`].
    pub fn run(mut self) -> Outcome {
        let child = self
            .command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting sitesync");
        let pid = child.id();
        let (done, finished) = mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || {
            let timed_out = finished.recv_timeout(RUN_TIMEOUT) == Err(mpsc::RecvTimeoutError::Timeout);
            if timed_out {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
            timed_out
        });
        let output = child.wait_with_output().expect("waiting for sitesync");
        drop(done);
        let timed_out = watchdog.join().unwrap();
        let outcome = Outcome {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        assert!(!timed_out, "sitesync did not finish within {RUN_TIMEOUT:?}\n{outcome}");
        outcome
    }
}

/// What a run printed and how it exited.
pub struct Outcome {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status: {:?}\n--- stdout\n{}--- stderr\n{}---", self.code, self.stdout, self.stderr)
    }
}

impl Outcome {
    /// Asserts the exit status.
    #[track_caller]
    pub fn code(self, expected: i32) -> Outcome {
        assert_eq!(self.code, Some(expected), "unexpected exit status\n{self}");
        self
    }

    #[track_caller]
    pub fn success(self) -> Outcome {
        self.code(0)
    }

    #[track_caller]
    pub fn stderr_contains(self, needle: &str) -> Outcome {
        assert!(self.stderr.contains(needle), "stderr lacks {needle:?}\n{self}");
        self
    }

    /// The `--json` report.
    #[track_caller]
    pub fn report(&self) -> Report {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not a report: {e}\n{self}"))
    }

    /// The lines of stdout.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

/// The `--json` report, as the binary prints it.
#[derive(Debug, Deserialize)]
pub struct Report {
    pub dry_run: bool,
    pub uploaded: u64,
    pub copied: u64,
    pub deleted: u64,
    pub unchanged: u64,
    pub failed: u64,
    pub bytes_uploaded: u64,
    pub deletes_withheld: u64,
    #[serde(default)]
    pub refused: Option<String>,
    pub failures: Vec<Failure>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Failure {
    pub key: String,
    pub op: String,
    pub error: String,
}

impl Report {
    /// (uploaded, deleted, unchanged, failed): the counts most assertions are about.
    pub fn counts(&self) -> (u64, u64, u64, u64) {
        (self.uploaded, self.deleted, self.unchanged, self.failed)
    }

    /// The failures as (key, op).
    pub fn failed_keys(&self) -> Vec<(&str, &str)> {
        self.failures.iter().map(|f| (f.key.as_str(), f.op.as_str())).collect()
    }
}
