//! Builds the workspace's plugin libraries for the tests that load them.
//!
//! `cargo test --workspace` compiles the plugin crates' unit tests but not their `cdylib`
//! artifacts, so the tests build them here, once per test binary, with the same cargo, target
//! directory and profile as the test binary itself (a no-op when they are up to date).

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Every plugin package of the workspace the tests use.
const PACKAGES: &[&str] = &[
    "clean-urls",
    "dir-index",
    "test-plugin-misbehave",
    "test-plugin-abi-v2",
    "test-plugin-newer-minor",
    "test-plugin-no-symbol",
    "test-plugin-abi-1-0",
];

/// `target/<profile>`, where this test binary (`target/<profile>/deps/NAME`) was built.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(|deps| deps.parent()).expect("the test binary lives in target/<profile>/deps").to_owned()
}

fn build_all() -> PathBuf {
    let profile_dir = profile_dir();
    let target_dir = profile_dir.parent().unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(env!("CARGO_MANIFEST_DIR")).arg("build").arg("--quiet").arg("--target-dir").arg(target_dir);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        command.arg("--release");
    }
    for package in PACKAGES {
        command.args(["-p", package]);
    }
    let status = command.status().expect("running cargo build for the plugins");
    assert!(status.success(), "building the plugins failed: {command:?}");
    profile_dir
}

/// The library of plugin package `package`, built.
pub fn library(package: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    assert!(PACKAGES.contains(&package), "{package} is not a plugin package of the workspace");
    let dir = BUILT.get_or_init(build_all);
    let file = format!("{}{}{}", std::env::consts::DLL_PREFIX, package.replace('-', "_"), std::env::consts::DLL_SUFFIX);
    let path = dir.join(file);
    assert!(path.is_file(), "{} was not built", path.display());
    path
}
