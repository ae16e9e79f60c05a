//! The one harness of the integration tests: a real S3 server on 127.0.0.1 ([`Store`]: s3s-fs
//! behind [`LocalStore`](sitesync::local_store::LocalStore), on its own runtime), an optional
//! fault-injecting [`proxy`] in front of it, a source tree ([`Tree`]), and the real `sitesync`
//! binary run against them as a subprocess with a clean environment (no AWS config files, no
//! `SITESYNC_*` variables from the caller).
//!
//! A command being built is a [`Cmd`]; a finished run is an [`Outcome`]. Tests read like a spec,
//! in the manner of casey/just's: `Test::new().file("a.txt", "x").sync(&[]).success()`, where a
//! [`Test`] is a store and a tree together.
//!
//! Fixture files get an mtime an hour in the past: a file written a few milliseconds before a
//! sync may rightly be uploaded again by the clock rule, and a test must not depend on that.

#![allow(dead_code)]

pub mod garage;
pub mod moto;
pub mod proxy;
mod sigv4;
mod store;
pub mod tls;
pub mod web;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use sitesync::local_store::{ACCESS_KEY, REGION, SECRET_KEY};
use tempfile::TempDir;

#[allow(unused_imports)] // not every test file names both
pub use store::{BUCKET, Store, is_history};

/// The destination most tests use: the folder `site/` of the bucket.
pub const DEST: &str = "s3://bkt/site";

/// How long one run of the binary may take before the test fails instead of hanging.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// An hour ago: the mtime of every fixture file, so the clock rule never re-uploads it.
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

impl Store {
    /// An `https://` endpoint in front of `upstream` (this server's address, or a proxy's).
    pub fn tls(&self, upstream: std::net::SocketAddr) -> String {
        tls::start(&self.handle(), upstream)
    }

    /// A proxy in front of this server.
    pub fn proxy(&self, seed: u64, rules: Vec<proxy::Rule>) -> proxy::Proxy {
        proxy::Proxy::start(&self.handle(), self.addr, seed, rules)
    }

    /// Every object of the bucket with its content.
    pub fn objects(&self) -> BTreeMap<String, Vec<u8>> {
        self.contents().into_iter().map(|(key, (_, content))| (key, content)).collect()
    }
}

/// A source tree and a working directory (where `sync.toml` and the lock file go).
pub struct Tree {
    src: TempDir,
    work: TempDir,
}

impl Default for Tree {
    fn default() -> Self {
        Tree::new()
    }
}

impl Tree {
    pub fn new() -> Tree {
        Tree { src: tempfile::tempdir().unwrap(), work: tempfile::tempdir().unwrap() }
    }

    pub fn src(&self) -> &Path {
        self.src.path()
    }

    pub fn work(&self) -> &Path {
        self.work.path()
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.src.path().join(relative)
    }

    /// Writes a file (and its directories) with an mtime an hour ago.
    pub fn file(&self, relative: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        set_mtime(&path, past());
        path
    }

    /// Writes a file whose name is raw bytes (not necessarily UTF-8), with an mtime an hour ago.
    pub fn file_bytes(&self, name: &[u8], content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.src.path().join(OsStr::from_bytes(name));
        fs::write(&path, content).unwrap();
        set_mtime(&path, past());
        path
    }

    /// `n` tiny files spread over a few directories: `d{i % 10}/f{i}.txt` holding `c{i}`.
    pub fn many(&self, n: usize) -> BTreeMap<String, Vec<u8>> {
        (0..n)
            .map(|i| {
                let key = format!("d{}/f{i:05}.txt", i % 10);
                let content = format!("c{i}").into_bytes();
                self.file(&key, &content);
                (key, content)
            })
            .collect()
    }

    /// Writes `sync.toml` into the working directory.
    pub fn config(&self, text: &str) -> PathBuf {
        self.work_file("sync.toml", text)
    }

    /// Writes a file into the working directory and returns its path.
    pub fn work_file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.work.path().join(name);
        fs::write(&path, text).unwrap();
        path
    }

    /// What the bucket must hold under `site/` after a complete sync.
    pub fn expected(&self) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![self.src().to_owned()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let rel = path.strip_prefix(self.src()).unwrap().to_str().unwrap().to_owned();
                    out.insert(format!("site/{rel}"), fs::read(&path).unwrap());
                }
            }
        }
        out
    }

    /// A `sitesync` command with a clean environment, run in the working directory, whose lock
    /// file and home are the working directory too.
    pub fn cmd(&self) -> Cmd {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sitesync"));
        command.current_dir(self.work.path()).env_clear();
        for var in ["PATH", "LANG", "LC_ALL"] {
            if let Some(v) = std::env::var_os(var) {
                command.env(var, v);
            }
        }
        command
            .env("HOME", self.work.path())
            .env("TMPDIR", self.work.path())
            .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_REGION", REGION)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY);
        Cmd { command }
    }

    /// `sitesync sync SRC s3://bkt/site --endpoint-url ENDPOINT --path-style` and `args`.
    pub fn sync(&self, endpoint: &str, args: &[&str]) -> Cmd {
        self.cmd().arg("sync").arg(self.src()).arg(DEST).connect(endpoint).args(args)
    }
}

/// A command of the binary being built.
pub struct Cmd {
    pub command: Command,
}

impl Cmd {
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Cmd {
        self.command.arg(arg);
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Cmd {
        self.command.args(args);
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Cmd {
        self.command.env(key, value);
        self
    }

    /// Adds `--endpoint-url ENDPOINT --path-style`.
    pub fn connect(self, endpoint: &str) -> Cmd {
        self.args(["--endpoint-url", endpoint, "--path-style"])
    }

    /// Runs the binary to its end, failing the test if it outlives [`RUN_TIMEOUT`].
    pub fn run(self) -> Outcome {
        wait(self.spawn(), RUN_TIMEOUT)
    }

    pub fn spawn(mut self) -> Child {
        self.command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        // A binary just copied (see bad_input's unprivileged runs) can be busy for a moment: a
        // thread of this test process that forked meanwhile holds the copy's file open for
        // writing until it execs (ETXTBSY). That is the kernel's race, not the test's: try again.
        for _ in 0..50 {
            match self.command.spawn() {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => std::thread::sleep(Duration::from_millis(20)),
                spawned => return spawned.expect("starting sitesync"),
            }
        }
        panic!("starting sitesync: its binary stayed busy (ETXTBSY)")
    }
}

/// Waits for a child, killing it (and failing the test) if it outlives `limit`.
pub fn wait(child: Child, limit: Duration) -> Outcome {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if rx.recv_timeout(limit).is_err() {
            // SAFETY: kill(2) with a pid we spawned and have not yet reaped.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            return true;
        }
        false
    });
    let output = child.wait_with_output().expect("waiting for sitesync");
    let _ = tx.send(());
    let timed_out = watchdog.join().unwrap();
    let outcome = Outcome::from(output);
    assert!(!timed_out, "sitesync ran for more than {limit:?}\n{outcome}");
    outcome
}

/// Sends `signal` to a child.
pub fn signal(child: &Child, signal: i32) {
    // SAFETY: kill(2) on the pid of a child we have not reaped yet.
    let rc = unsafe { libc::kill(child.id() as i32, signal) };
    assert_eq!(rc, 0, "kill({}, {signal})", child.id());
}

/// What a finished run printed and how it exited.
pub struct Outcome {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Outcome {
    fn from(output: Output) -> Outcome {
        Outcome {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
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

    /// The `--json` report as JSON, for the fields `Report` leaves out.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON: {e}\n{self}"))
    }

    /// The lines of stdout.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// The lines of stderr that report an error.
    pub fn errors(&self) -> Vec<&str> {
        self.stderr.lines().filter(|l| l.starts_with("error:") || l.contains("ERROR")).collect()
    }
}

/// The `--json` report, as the binary prints it: read independently of `src/report.rs`, so a
/// change of the wire format shows here.
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
    pub hashed: u64,
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

/// One test case as a spec: a server, a source tree and a working directory.
pub struct Test {
    pub server: Store,
    pub tree: Tree,
}

impl Default for Test {
    fn default() -> Self {
        Test::new()
    }
}

impl Test {
    pub fn new() -> Test {
        Test { server: Store::start(), tree: Tree::new() }
    }

    pub fn src(&self) -> &Path {
        self.tree.src()
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.tree.path(relative)
    }

    /// Writes a source file (creating its directories) with an mtime an hour ago.
    pub fn file(self, relative: &str, content: impl AsRef<[u8]>) -> Test {
        self.tree.file(relative, content);
        self
    }

    /// Writes a source file whose name is raw bytes (not necessarily UTF-8).
    pub fn file_bytes(self, name: &[u8], content: impl AsRef<[u8]>) -> Test {
        self.tree.file_bytes(name, content);
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
        self.tree.work_file(name, content)
    }

    /// Writes (or rewrites) a source file with an mtime an hour ago.
    pub fn write(&self, relative: &str, content: impl AsRef<[u8]>) -> PathBuf {
        self.tree.file(relative, content)
    }

    /// Marks a source file as modified after everything the server has stored.
    pub fn touch(&self, relative: &str) {
        set_mtime(&self.path(relative), future());
    }

    pub fn remove(&self, relative: &str) {
        fs::remove_file(self.path(relative)).unwrap();
    }

    /// Every object of the bucket: key → (size listed, content read back).
    pub fn objects(&self) -> BTreeMap<String, (u64, Vec<u8>)> {
        self.server.contents()
    }

    pub fn keys(&self) -> Vec<String> {
        self.server.keys()
    }

    /// The objects as key → content, for comparing with string literals.
    pub fn contents(&self) -> BTreeMap<String, String> {
        self.objects().into_iter().map(|(k, (_, body))| (k, String::from_utf8_lossy(&body).into_owned())).collect()
    }

    /// A command of the binary with a clean environment and the server's credentials.
    pub fn command(&self) -> Cmd {
        self.tree.cmd()
    }

    /// `sitesync sync SRC s3://bkt/site --json ARGS..` against the test server, to run.
    pub fn sync_command(&self, args: &[&str]) -> Cmd {
        self.tree.sync(&self.server.endpoint(), &["--json"]).args(args)
    }

    /// Runs `sitesync sync SRC s3://bkt/site --json ARGS..` against the test server.
    pub fn sync(&self, args: &[&str]) -> Outcome {
        self.sync_command(args).run()
    }

    /// `sitesync plan SRC s3://bkt/site ARGS..` (human output) against the test server.
    pub fn plan(&self, args: &[&str]) -> Outcome {
        self.command().arg("plan").arg(self.src()).arg(DEST).connect(&self.server.endpoint()).args(args).run()
    }
}
