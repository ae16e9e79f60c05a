//! The S3 server of a run: a single-node Garage on loopback, or the embedded store as a fallback.
//!
//! Garage is `--garage-bin`, else `garage` on `PATH`, else the file `$GARAGE_BIN` names; without
//! it the bench says how to install it. It is set up as a single node: a 1 GB layout, an
//! imported key allowed to create buckets. The embedded store (s3s-fs, as `sitesync --local-store` uses)
//! runs in a child process of this binary, so its CPU is counted apart from the client's in the
//! same way. Either server is killed when the [`Server`] is dropped, unless it is kept on purpose;
//! a child is also told to die with us (`PR_SET_PDEATHSIG`) if the bench itself is killed.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::paths;

const GARAGE_KEY: &str = "GK000000000000000000000001";
/// How to install the Garage the bench is set up for (about 15 minutes on 2 cores).
const INSTALL_GARAGE: &str =
    "cargo install --locked garage --version 2.5.0 --no-default-features --features bundled-libs,lmdb";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Choice {
    /// Garage when it is installed, else the embedded store (with a warning).
    Auto,
    Garage,
    Embedded,
}

/// What the results say about the server.
#[derive(Debug, Clone, Serialize)]
pub struct Info {
    pub kind: &'static str,
    pub version: String,
    #[serde(serialize_with = "paths::serialize_option")]
    pub binary: Option<PathBuf>,
    pub endpoint: String,
    #[serde(serialize_with = "paths::serialize")]
    pub dir: PathBuf,
}

pub struct Server {
    pub info: Info,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    child: Child,
    keep: bool,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_garage(&self) -> bool {
        self.info.kind == "garage"
    }

    /// Starts the server chosen, in a fresh directory under `work`.
    pub fn start(choice: Choice, explicit_garage: Option<&Path>, work: &Path, keep: bool) -> Result<Server> {
        let garage = explicit_garage.map(Path::to_path_buf).or_else(find_garage);
        match (choice, garage) {
            (Choice::Embedded, _) => start_embedded(work, keep),
            (Choice::Auto | Choice::Garage, Some(bin)) => start_garage(&bin, work, keep),
            (Choice::Garage, None) => bail!("{}", garage_not_found(std::env::var_os("GARAGE_BIN").as_deref())),
            (Choice::Auto, None) => {
                eprintln!("{}", "!".repeat(100));
                eprintln!("!! WARNING: Garage is not installed: falling back to the EMBEDDED store (s3s-fs).");
                eprintln!("!! Its listing re-walks its folder for every page of 1,000 keys, so it is slow and not");
                eprintln!(
                    "!! representative of a real S3 server; keep trees small (10k). For real figures install Garage:"
                );
                eprintln!("!!   {INSTALL_GARAGE}");
                eprintln!("{}", "!".repeat(100));
                start_embedded(work, keep)
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.keep {
            eprintln!(
                "bench: keeping the {} server (pid {}) at {} with data in {}; stop it with: kill {}",
                self.info.kind,
                self.pid(),
                self.info.endpoint,
                paths::shown(&self.info.dir),
                self.pid()
            );
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.info.dir);
    }
}

/// The Garage of this machine: `garage` on `PATH`, else `$GARAGE_BIN`.
fn find_garage() -> Option<PathBuf> {
    find_garage_in(std::env::var_os("PATH").as_deref(), std::env::var_os("GARAGE_BIN").as_deref())
}

/// `garage` in the first folder of `path` (a `PATH` value) that has one, else the file
/// `garage_bin` names; only an executable file counts.
fn find_garage_in(path: Option<&OsStr>, garage_bin: Option<&OsStr>) -> Option<PathBuf> {
    let on_path =
        path.and_then(|paths| std::env::split_paths(paths).map(|d| d.join("garage")).find(|p| is_executable(p)));
    on_path.or_else(|| garage_bin.map(PathBuf::from).filter(|p| is_executable(p)))
}

/// Why `--server garage` cannot run, and how to install it.
fn garage_not_found(garage_bin: Option<&OsStr>) -> String {
    let at = match garage_bin {
        Some(file) => format!("$GARAGE_BIN ({}) is not an executable file", paths::shown(Path::new(file))),
        None => "$GARAGE_BIN is not set".to_owned(),
    };
    format!(
        "garage not found: it is not on PATH and {at}; install it with\n  {INSTALL_GARAGE}\nor name it with --garage-bin FILE"
    )
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A child that receives SIGTERM when this thread's process dies, unless it is to be kept.
fn tied(cmd: &mut Command, keep: bool) -> &mut Command {
    if !keep {
        // SAFETY: prctl is async-signal-safe and touches only the child being set up.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
    }
    cmd
}

fn fresh_dir(work: &Path, kind: &str) -> Result<PathBuf> {
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis();
    let dir = work.join(format!("{kind}-{stamp}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", paths::shown(&dir)))?;
    Ok(std::fs::canonicalize(dir)?)
}

/// A base port with base, base+1 and base+3 free on 127.0.0.1 (S3, RPC, admin).
fn free_ports() -> Result<u16> {
    for base in (39_000..40_000).step_by(10) {
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(base) && free(base + 1) && free(base + 3) {
            return Ok(base);
        }
    }
    bail!("no free ports between 39000 and 40000 on 127.0.0.1")
}

/// A single-node Garage in a fresh folder under `work`, on free ports, ready for requests.
fn start_garage(bin: &Path, work: &Path, keep: bool) -> Result<Server> {
    let version =
        Command::new(bin).arg("--version").output().with_context(|| format!("running {}", paths::shown(bin)))?;
    let version = String::from_utf8_lossy(&version.stdout).trim().to_owned();
    let dir = fresh_dir(work, "garage")?;
    let port = free_ports()?;
    let garage = Garage { bin, config: dir.join("garage.toml") };
    std::fs::write(&garage.config, garage_config(&dir, port))?;
    let log = std::fs::File::create(dir.join("garage.log"))?;
    let child = tied(Command::new(bin).arg("-c").arg(&garage.config).arg("server"), keep)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", paths::shown(bin)))?;
    let endpoint = format!("http://127.0.0.1:{port}");
    let server = Server {
        info: Info { kind: "garage", version, binary: Some(bin.to_owned()), endpoint, dir: dir.clone() },
        access_key: GARAGE_KEY.into(),
        secret_key: format!("{:064}", 1),
        region: "us-east-1".into(),
        child,
        keep,
    };
    wait_until(Duration::from_secs(30), || garage.admin(&["status"]).is_ok())
        .with_context(|| format!("garage did not come up; see {}", paths::shown(&dir.join("garage.log"))))?;
    garage.lay_out_and_admit(&server.secret_key)?;
    wait_until(Duration::from_secs(30), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok())
        .context("garage's S3 port did not open")?;
    Ok(server)
}

/// The configuration of a single node keeping its data in `dir`: S3 on `port`, RPC on the next
/// port and the admin API on the third after it, all on loopback.
fn garage_config(dir: &Path, port: u16) -> String {
    format!(
        r#"metadata_dir = "{dir}/meta"
data_dir = "{dir}/data"
db_engine = "lmdb"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{rpc_secret:064}"
[s3_api]
s3_region = "us-east-1"
api_bind_addr = "127.0.0.1:{port}"
root_domain = ".s3.localhost"
[admin]
api_bind_addr = "127.0.0.1:{admin}"
admin_token = "admin-token"
"#,
        dir = dir.display(),
        rpc = port + 1,
        admin = port + 3,
        rpc_secret = 0,
    )
}

/// A running Garage's command line, for its admin commands.
struct Garage<'a> {
    bin: &'a Path,
    config: PathBuf,
}

impl Garage<'_> {
    /// `garage -c CONFIG args..`: its stdout, or an error with its stderr.
    fn admin(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(self.bin).arg("-c").arg(&self.config).args(args).output()?;
        if !out.status.success() {
            bail!("garage {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Gives the node its 1 GB layout and imports the bench's key, allowed to create buckets.
    fn lay_out_and_admit(&self, secret_key: &str) -> Result<()> {
        let id = self.admin(&["node", "id", "-q"])?;
        let id = id.trim().get(..64).context("garage node id")?.to_owned();
        self.admin(&["layout", "assign", "-z", "dc1", "-c", "1G", &id])?;
        self.admin(&["layout", "apply", "--version", "1"])?;
        self.admin(&["key", "import", "--yes", "-n", "bench", GARAGE_KEY, secret_key])?;
        self.admin(&["key", "allow", "--create-bucket", GARAGE_KEY])?;
        Ok(())
    }
}

fn start_embedded(work: &Path, keep: bool) -> Result<Server> {
    let dir = fresh_dir(work, "embedded")?;
    let exe = std::env::current_exe()?;
    let mut child = tied(Command::new(&exe).arg("serve-embedded").arg(&dir), keep)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the embedded store")?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("embedded store stdout")?).read_line(&mut line)?;
    let endpoint = line.trim().to_owned();
    if !endpoint.starts_with("http://") {
        let _ = child.kill();
        bail!("the embedded store did not start (said {endpoint:?})");
    }
    Ok(Server {
        info: Info {
            kind: "embedded",
            version: "sitesync::local_store (s3s-fs 0.14.1)".into(),
            binary: None,
            endpoint,
            dir,
        },
        access_key: sitesync::local_store::ACCESS_KEY.into(),
        secret_key: sitesync::local_store::SECRET_KEY.into(),
        region: sitesync::local_store::REGION.into(),
        child,
        keep,
    })
}

/// The `serve-embedded` role: serve `dir` until killed, after printing the endpoint.
pub fn serve_embedded(dir: &Path) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let store = sitesync::local_store::LocalStore::start(dir).await?;
        println!("{}", store.endpoint());
        std::future::pending::<()>().await;
        Ok(())
    })
}

fn wait_until(limit: Duration, mut ready: impl FnMut() -> bool) -> Result<()> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("timed out after {}s", limit.as_secs())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A folder of its own for each test, with `garage` files as the test lays them out.
    struct Folders(PathBuf);

    impl Folders {
        fn new(test: &str) -> Folders {
            let root = std::env::temp_dir().join(format!("sitesync-bench-{test}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(&root).unwrap();
            Folders(root)
        }

        /// `<root>/<dir>/garage`, executable or not; `<root>/<dir>` alone when `mode` is `None`.
        fn garage(&self, dir: &str, mode: Option<u32>) -> PathBuf {
            let dir = self.0.join(dir);
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join("garage");
            if let Some(mode) = mode {
                std::fs::write(&file, "#!/bin/sh\n").unwrap();
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
            }
            file
        }

        fn path_of(&self, dirs: &[&str]) -> std::ffi::OsString {
            std::env::join_paths(dirs.iter().map(|d| self.0.join(d))).unwrap()
        }
    }

    impl Drop for Folders {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn garage_is_found_in_the_first_folder_of_path_that_has_it() {
        let f = Folders::new("garage-on-path");
        f.garage("empty", None);
        let found = f.garage("bin", Some(0o755));
        f.garage("later", Some(0o755));
        let path = f.path_of(&["empty", "bin", "later"]);
        assert_eq!(find_garage_in(Some(&path), None), Some(found));
    }

    #[test]
    fn garage_bin_is_used_when_path_has_no_garage() {
        let f = Folders::new("garage-bin");
        f.garage("empty", None);
        let named = f.garage("elsewhere", Some(0o755));
        let path = f.path_of(&["empty"]);
        assert_eq!(find_garage_in(Some(&path), Some(named.as_os_str())), Some(named.clone()));
        assert_eq!(find_garage_in(None, Some(named.as_os_str())), Some(named));
    }

    #[test]
    fn garage_on_path_comes_before_garage_bin() {
        let f = Folders::new("garage-order");
        let on_path = f.garage("bin", Some(0o755));
        let named = f.garage("elsewhere", Some(0o755));
        let path = f.path_of(&["bin"]);
        assert_eq!(find_garage_in(Some(&path), Some(named.as_os_str())), Some(on_path));
    }

    #[test]
    fn only_an_executable_file_counts_as_garage() {
        let f = Folders::new("garage-not-executable");
        let plain = f.garage("plain", Some(0o644));
        let folder = f.garage("folder", None);
        std::fs::create_dir_all(&folder).unwrap();
        let path = f.path_of(&["plain", "folder"]);
        assert_eq!(find_garage_in(Some(&path), Some(plain.as_os_str())), None);
        assert_eq!(find_garage_in(Some(&path), Some(folder.as_os_str())), None);
        assert_eq!(find_garage_in(None, None), None);
    }

    #[test]
    fn without_garage_the_error_says_how_to_install_it() {
        let unset = garage_not_found(None);
        assert!(unset.contains("not on PATH and $GARAGE_BIN is not set"), "{unset}");
        assert!(unset.contains(INSTALL_GARAGE), "{unset}");
        let wrong = garage_not_found(Some(OsStr::new("nowhere/garage")));
        assert!(wrong.contains("$GARAGE_BIN (nowhere/garage) is not an executable file"), "{wrong}");
    }
}
