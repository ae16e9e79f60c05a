//! The harness of the reliability tests: an S3 server on 127.0.0.1 (s3s-fs behind
//! [`LocalStore`], on its own runtime), an optional fault-injecting [`proxy`] in front of it, a
//! source tree, and the real `sitesync` binary run against them as a subprocess with a clean
//! environment (no AWS config files, no `SITESYNC_*` variables from the caller).

#![allow(dead_code)]

pub mod proxy;
mod store;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use sitesync::local_store::{ACCESS_KEY, REGION, SECRET_KEY};
use tempfile::TempDir;

pub const DEST: &str = "s3://bkt/site";

#[allow(unused_imports)] // not every test file that includes this harness names both
pub use store::{BUCKET, Store};

impl Store {
    /// A proxy in front of this server.
    pub fn proxy(&self, seed: u64, rules: Vec<proxy::Rule>) -> proxy::Proxy {
        proxy::Proxy::start(&self.handle(), self.addr, seed, rules)
    }

    /// Every object of the bucket with its content.
    pub fn objects(&self) -> BTreeMap<String, Vec<u8>> {
        self.contents().into_iter().map(|(key, (_, content))| (key, content)).collect()
    }
}

/// An hour ago: fixture files get this mtime, so the clock rule never re-uploads them.
pub fn past() -> SystemTime {
    SystemTime::now() - Duration::from_secs(3600)
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
        fs::File::options().write(true).open(&path).unwrap().set_modified(past()).unwrap();
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
        let path = self.work.path().join("sync.toml");
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
    /// file is kept in the working directory too.
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
        let mut cmd = self.cmd();
        cmd.command.arg("sync").arg(self.src()).arg(DEST).args(["--endpoint-url", endpoint, "--path-style"]).args(args);
        cmd
    }
}

pub struct Cmd {
    pub command: Command,
}

/// What a finished run left behind.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn expect(self, code: i32) -> Run {
        assert_eq!(self.code, Some(code), "exit status\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        self
    }

    /// The lines of stderr that start with `error:`.
    pub fn errors(&self) -> Vec<&str> {
        self.stderr.lines().filter(|l| l.starts_with("error:") || l.contains("ERROR")).collect()
    }
}

impl Cmd {
    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Cmd {
        self.command.env(key, value);
        self
    }

    pub fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Cmd {
        self.command.arg(arg);
        self
    }

    pub fn run(mut self) -> Run {
        let child = self.command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("starting sitesync");
        wait(child, Duration::from_secs(120))
    }

    pub fn spawn(mut self) -> Child {
        self.command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("starting sitesync")
    }
}

/// Waits for a child, killing it (and failing the test) if it outlives `limit`.
pub fn wait(child: Child, limit: Duration) -> Run {
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
    let run = Run::from(output);
    assert!(!timed_out, "sitesync ran for more than {limit:?}\n--- stderr\n{}", run.stderr);
    run
}

/// Sends `signal` to a child.
pub fn signal(child: &Child, signal: i32) {
    // SAFETY: kill(2) on the pid of a child we have not reaped yet.
    let rc = unsafe { libc::kill(child.id() as i32, signal) };
    assert_eq!(rc, 0, "kill({}, {signal})", child.id());
}
