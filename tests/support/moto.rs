//! A CloudFront API on 127.0.0.1 for the invalidation tests: moto's server mode, a real HTTP
//! server that speaks CloudFront's REST-XML, started per test as a child process killed on drop.
//!
//! moto comes from PyPI: the first test binary that needs it makes a venv under the cargo target
//! directory (`<target>/moto-venv`) and installs `moto[server]` into it, so a fresh machine needs
//! only `python3` and PyPI; later runs reuse the venv. A lock file keeps two test binaries from
//! installing at once, and a marker written after the install keeps a half-made venv (an
//! interrupted install) from being taken for a ready one.
//!
//! An independent aws-sdk-cloudfront client ([`Moto::client`]) makes the distributions and reads
//! back the invalidations the binary sent. moto completes invalidations at once and does not
//! validate their paths, so [`valid_path`] checks CloudFront's rules here.

use std::fs::{self, File};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_cloudfront::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_cloudfront::types::{
    DefaultCacheBehavior, DistributionConfig, Origin, Origins, S3OriginConfig, ViewerProtocolPolicy,
};
use tempfile::TempDir;

/// How long moto may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// `<target>`, the cargo target directory this test binary (`<target>/<profile>/deps/NAME`) was
/// built in.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().expect("the test binary lives in target/<profile>/deps");
    deps.parent().and_then(Path::parent).expect("the test binary lives in target/<profile>/deps").to_owned()
}

/// The venv's python, with moto installed in it (once per test binary).
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let target = target_dir();
        let venv = target.join("moto-venv");
        let lock = File::create(target.join("moto-venv.lock")).expect("creating the moto venv's lock file");
        // SAFETY: flock(2) on a descriptor this function owns; it is released when `lock` drops.
        let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "locking {}", target.join("moto-venv.lock").display());
        let marker = venv.join("installed");
        if !marker.is_file() {
            install(&venv);
            fs::write(&marker, "moto[server]\n").unwrap();
        }
        drop(lock);
        venv.join("bin/python")
    })
}

fn install(venv: &Path) {
    let _ = fs::remove_dir_all(venv);
    let run = |command: &mut Command| {
        let status = command.status().unwrap_or_else(|e| panic!("running {command:?}: {e}"));
        assert!(status.success(), "{command:?} failed ({status}); moto's tests need python3 and PyPI");
    };
    run(Command::new("python3").arg("-m").arg("venv").arg(venv));
    run(Command::new(venv.join("bin/pip")).args(["install", "--quiet", "--disable-pip-version-check", "moto[server]"]));
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A moto server, killed on drop.
pub struct Moto {
    child: Child,
    pub addr: SocketAddr,
    runtime: tokio::runtime::Runtime,
    pub client: aws_sdk_cloudfront::Client,
    log: PathBuf,
    _dir: TempDir,
}

impl Moto {
    pub fn start() -> Moto {
        let python = python();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("moto.log");
        let port = free_port();
        let child = Command::new(python)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(File::create(&log).unwrap())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .expect("starting moto_server");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let config = aws_sdk_cloudfront::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .endpoint_url(format!("http://{addr}"))
            .build();
        let client = aws_sdk_cloudfront::Client::from_conf(config);
        let mut moto = Moto { child, addr, runtime, client, log, _dir: dir };
        moto.wait_until_listening();
        moto
    }

    /// Waits until the port accepts connections, failing with moto's output if it exits first.
    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_err() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("moto_server exited ({status}):\n{}", fs::read_to_string(&self.log).unwrap_or_default());
            }
            assert!(Instant::now() < deadline, "moto_server did not listen on {} within {START_TIMEOUT:?}", self.addr);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// An S3 client of the same server (moto serves every service on one port), path-style, with
    /// moto's test credentials (`testing`).
    pub fn s3(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "test"))
            .endpoint_url(self.endpoint())
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// A distribution whose one origin is `domain` (moto wants it to end in `amazonaws.com`)
    /// with origin path `origin_path`; its id.
    pub fn distribution(&self, domain: &str, origin_path: &str) -> String {
        let origin = Origin::builder()
            .id("site")
            .domain_name(domain)
            .origin_path(origin_path)
            .s3_origin_config(S3OriginConfig::builder().origin_access_identity("").build())
            .build()
            .unwrap();
        let behavior = DefaultCacheBehavior::builder()
            .target_origin_id("site")
            .viewer_protocol_policy(ViewerProtocolPolicy::AllowAll)
            .build()
            .unwrap();
        let config = DistributionConfig::builder()
            .caller_reference(format!("test-{}", self.addr.port()))
            .comment("sitesync tests")
            .enabled(true)
            .origins(Origins::builder().quantity(1).items(origin).build().unwrap())
            .default_cache_behavior(behavior)
            .build()
            .unwrap();
        let out = self
            .block_on(self.client.create_distribution().distribution_config(config).send())
            .unwrap_or_else(|e| panic!("CreateDistribution: {e:?}"));
        out.distribution().expect("CreateDistribution returns the distribution").id().to_owned()
    }

    /// The ids of the distribution's invalidations.
    pub fn invalidation_ids(&self, distribution: &str) -> Vec<String> {
        let out = self
            .block_on(self.client.list_invalidations().distribution_id(distribution).send())
            .unwrap_or_else(|e| panic!("ListInvalidations: {e:?}"));
        let list = out.invalidation_list().expect("ListInvalidations returns a list");
        list.items().iter().map(|i| i.id().to_owned()).collect()
    }

    /// The paths of one invalidation, sorted, each checked against CloudFront's rules.
    #[track_caller]
    pub fn paths(&self, distribution: &str, invalidation: &str) -> Vec<String> {
        let out = self
            .block_on(self.client.get_invalidation().distribution_id(distribution).id(invalidation).send())
            .unwrap_or_else(|e| panic!("GetInvalidation: {e:?}"));
        let invalidation = out.invalidation().expect("GetInvalidation returns the invalidation");
        let paths = invalidation.invalidation_batch().and_then(|b| b.paths()).expect("an invalidation has paths");
        assert_eq!(paths.quantity() as usize, paths.items().len(), "Quantity must count the paths");
        let mut items = paths.items().to_vec();
        for path in &items {
            assert!(valid_path(path), "CloudFront would refuse the path {path:?}");
        }
        items.sort();
        items
    }

    /// The paths of the distribution's only invalidation; fails if there is not exactly one.
    #[track_caller]
    pub fn only_invalidation(&self, distribution: &str) -> (String, Vec<String>) {
        let ids = self.invalidation_ids(distribution);
        assert_eq!(ids.len(), 1, "expected one invalidation, found {ids:?}");
        let paths = self.paths(distribution, &ids[0]);
        (ids[0].clone(), paths)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What CloudFront accepts as a path: it starts with `/`, holds `*` only as its last character,
/// and needs no escaping in its XML (no control characters, spaces or non-ASCII: those are sent
/// percent-encoded).
pub fn valid_path(path: &str) -> bool {
    path.starts_with('/')
        && path.find('*').is_none_or(|i| i == path.len() - 1)
        && path.bytes().all(|b| b.is_ascii_graphic())
}
