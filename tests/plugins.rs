//! Transform plugins, end to end: the example plugin and libraries that misbehave, built from the
//! workspace, dropped into a `plugins/` folder next to `sync.toml`, and run by the real binary
//! against a real S3 server.
//!
//! A library that cannot be loaded or created is a configuration error: exit 2, before anything
//! is sent. A plugin that fails during the run fails the run: exit 1, no crash, no deletes.

mod plugin_build;
mod support;

use std::fs;
use std::path::PathBuf;

use support::Test;

/// Copies plugin package `package` into `plugins/` beside the test's `sync.toml`, and returns
/// the path to write in `plugin = ".."`.
fn drop_in(test: &Test, package: &str) -> String {
    let library = plugin_build::library(package);
    let name = library.file_name().unwrap().to_str().unwrap().to_owned();
    let dir = work_dir(test).join("plugins");
    fs::create_dir_all(&dir).unwrap();
    fs::copy(&library, dir.join(&name)).unwrap();
    format!("plugins/{name}")
}

fn work_dir(test: &Test) -> PathBuf {
    test.config(".probe", "").parent().unwrap().to_owned()
}

/// Writes `sync.toml` with one plugin table: `plugin = PATH` and `settings` lines.
fn with_plugin(test: &Test, path: &str, settings: &str) {
    test.config("sync.toml", &format!("[[transform]]\nplugin = {path:?}\n{settings}\n"));
}

fn site() -> Test {
    Test::new()
        .file("index.html", "home")
        .file("about.html", "about")
        .file("blog/post.html", "post")
        .file("docs/index.html", "docs")
        .file("style.css", "css")
}

fn head(test: &Test, key: &str) -> aws_sdk_s3::operation::head_object::HeadObjectOutput {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime
        .block_on(test.server.client.head_object().bucket(support::BUCKET).key(key).send())
        .unwrap_or_else(|e| panic!("head {key}: {e:?}"))
}

#[test]
fn clean_urls_publishes_pages_under_their_pretty_url() {
    let test = site();
    let path = drop_in(&test, "clean-urls");
    with_plugin(&test, &path, "");
    let outcome = test.sync(&["-v"]).success();
    let outcome = outcome.stderr_contains("plugin: loaded plugins/libclean_urls.so");
    let report = outcome.report();
    assert_eq!((report.uploaded, report.copied, report.failed), (5, 2, 0), "{report:?}");
    let contents = test.contents();
    assert_eq!(contents["site/about"], "about");
    assert_eq!(contents["site/blog/post"], "post");
    assert!(!contents.contains_key("site/docs"), "index pages stay as they are by default");
    assert!(!contents.contains_key("site/index"));
    assert_eq!(head(&test, "site/about").content_type(), Some("text/html"), "the plugin's, as it is");
    assert_eq!(head(&test, "site/about.html").content_type(), Some("text/html; charset=utf-8"));

    let again = test.sync(&[]).success().report();
    assert_eq!((again.uploaded, again.copied, again.deleted, again.unchanged), (0, 0, 0, 7));

    test.remove("about.html");
    let removed = test.sync(&[]).success().report();
    assert_eq!((removed.uploaded, removed.copied, removed.deleted), (0, 0, 2));
    assert!(!test.keys().iter().any(|k| k.starts_with("site/about")), "{:?}", test.keys());
}

#[test]
fn plugin_settings_reach_the_plugin_as_json() {
    let test = site();
    let path = drop_in(&test, "clean-urls");
    with_plugin(&test, &path, "index_as_directory = true");
    let plan = test.plan(&[]).success();
    assert!(
        plan.lines().contains(&"copy site/docs (from site/docs/index.html, new) [Content-Type: text/html]"),
        "{plan}"
    );

    with_plugin(&test, &path, "index_as_directry = true");
    test.plan(&[]).code(2).stderr_contains(
        "key `transform[0]`: plugins/libclean_urls.so: cannot create the plugin: unknown key `index_as_directry`",
    );
}

/// A run refused before anything is sent: exit 2, the bucket as it was.
#[track_caller]
fn refused(test: &Test, message: &str) {
    test.sync(&[]).code(2).stderr_contains(message);
    assert_eq!(test.keys(), ["site/old.txt"], "nothing may be sent");
}

#[test]
fn a_library_for_another_major_version_is_refused() {
    let test = site().remote("site/old.txt", "old");
    let path = drop_in(&test, "test-plugin-abi-v2");
    with_plugin(&test, &path, "");
    refused(
        &test,
        "key `transform[0].plugin`: plugins/libtest_plugin_abi_v2.so was built for plugin ABI 2.0, but this sitesync loads plugin ABI 1.0 to 1.1",
    );
}

#[test]
fn a_library_for_a_newer_minor_version_is_refused() {
    let test = site().remote("site/old.txt", "old");
    let path = drop_in(&test, "test-plugin-newer-minor");
    with_plugin(&test, &path, "");
    refused(
        &test,
        "plugins/libtest_plugin_newer_minor.so was built for plugin ABI 1.2, but this sitesync loads plugin ABI 1.0 to \
         1.1; rebuild the plugin against sitesync-plugin-abi 1.1",
    );
}

#[test]
fn a_plugin_built_for_abi_1_0_still_loads_and_runs() {
    // Its table ends before `finish`, and its entries are 1.0's: 16 bytes shorter than 1.1's.
    let test = Test::new().file("a.txt", "a").file("b.css", "b").file("c/d.txt", "d").remote("site/old.txt", "old");
    let path = drop_in(&test, "test-plugin-abi-1-0");
    with_plugin(&test, &path, "");
    let outcome = test.sync(&["-v"]).success().stderr_contains("(abi-1-0 0.1.0, plugin ABI 1.0)");
    let report = outcome.report();
    assert_eq!((report.uploaded, report.copied, report.deleted, report.failed), (3, 2, 1, 0), "{report:?}");
    let mut contents = test.contents();
    contents.remove("site/.sitesync/chain");
    let expected = [("a.txt", "a"), ("a.txt.bak", "a"), ("b.css", "b"), ("c/d.txt", "d"), ("c/d.txt.bak", "d")];
    let expected: std::collections::BTreeMap<String, String> =
        expected.iter().map(|(k, v)| (format!("site/{k}"), v.to_string())).collect();
    assert_eq!(contents, expected);
    for key in expected.keys() {
        assert_eq!(head(&test, key).cache_control(), Some("from-abi-1.0"), "{key}");
    }
    let again = test.sync(&[]).success().report();
    assert_eq!((again.uploaded, again.copied, again.deleted, again.unchanged), (0, 0, 0, 5));
}

#[test]
fn a_library_without_the_entry_symbol_is_refused() {
    let test = site().remote("site/old.txt", "old");
    let path = drop_in(&test, "test-plugin-no-symbol");
    with_plugin(&test, &path, "");
    refused(
        &test,
        "plugins/libtest_plugin_no_symbol.so is not a sitesync plugin: it exports no `sitesync_plugin_v1` function",
    );
}

#[test]
fn a_file_that_is_not_a_library_is_refused() {
    let test = site().remote("site/old.txt", "old");
    fs::create_dir_all(work_dir(&test).join("plugins")).unwrap();
    test.config("plugins/fake.so", "not a library");
    with_plugin(&test, "plugins/fake.so", "");
    refused(&test, "plugins/fake.so: cannot be loaded as a shared library");
    with_plugin(&test, "plugins/missing.so", "");
    refused(&test, "key `transform[0].plugin`: plugins/missing.so: no such file");
}

#[test]
fn a_plugin_that_refuses_its_settings_stops_the_run_before_anything_is_sent() {
    let test = site().remote("site/old.txt", "old");
    let path = drop_in(&test, "test-plugin-misbehave");
    with_plugin(&test, &path, "create = \"error\"");
    refused(&test, "cannot create the plugin: refusing to start: create = \"error\"");
    with_plugin(&test, &path, "create = \"panic\"");
    refused(&test, "cannot create the plugin: it panicked: panicked: create = \"panic\"");
}

/// A run that a transform failed: exit 1 (not a crash), and the stale object is not deleted.
#[track_caller]
fn failed(test: &Test, message: &str) {
    let outcome = test.sync(&[]).code(1).stderr_contains(message);
    assert!(test.keys().contains(&"site/old.txt".to_owned()), "a failed run deleted something\n{outcome}");
}

#[test]
fn a_plugin_error_fails_the_run_without_deletes() {
    let test = site().remote("site/old.txt", "old");
    let path = drop_in(&test, "test-plugin-misbehave");
    with_plugin(&test, &path, "transform = \"error\"");
    failed(&test, "transform[0] (plugins/libtest_plugin_misbehave.so) failed: cannot transform about.html");
}

#[test]
fn a_plugin_panic_fails_the_run_without_a_crash() {
    let test = site().remote("site/old.txt", "old");
    let path = drop_in(&test, "test-plugin-misbehave");
    with_plugin(&test, &path, "transform = \"panic\"");
    failed(&test, "failed: it panicked: panicked: transform = \"panic\" at about.html");
}

#[test]
fn a_plugin_failing_in_finish_fails_the_run_without_deletes() {
    let test = site().remote("site/old.txt", "old");
    let path = drop_in(&test, "test-plugin-misbehave");
    with_plugin(&test, &path, "finish = \"error\"");
    failed(&test, "transform[0] (plugins/libtest_plugin_misbehave.so) failed: cannot finish after 5 entries");
    with_plugin(&test, &path, "finish = \"panic\"");
    failed(&test, "failed: it panicked: panicked: finish = \"panic\"");
}

#[test]
fn a_plugin_failing_mid_run_withholds_every_delete() {
    // 1,200 files: the walk sends batches of 1,000, and the plugin fails on the second.
    let mut test = Test::new().remote("site/old.txt", "old");
    for i in 0..1200 {
        test = test.file(&format!("f/{i:04}.txt"), "x");
    }
    let path = drop_in(&test, "test-plugin-misbehave");
    with_plugin(&test, &path, "transform = \"error\"\nafter = 1000");
    failed(&test, "failed: cannot transform f/1000.txt");
}

#[test]
fn a_plugin_written_in_c_against_the_header_works() {
    let test = Test::new().file("a.txt", "a").file("secret/key.pem", "k").remote("site/secret/old.pem", "o");
    let dir = work_dir(&test).join("plugins");
    fs::create_dir_all(&dir).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    let status = std::process::Command::new(&cc)
        .args(["-std=c99", "-Wall", "-Werror", "-shared", "-fPIC", "-I"])
        .arg(root.join("crates/sitesync-plugin-abi"))
        .arg(root.join("tests/c-plugin/nosecret.c"))
        .arg("-o")
        .arg(dir.join("libnosecret.so"))
        .status()
        .expect("running the C compiler (set CC)");
    assert!(status.success(), "compiling the C plugin failed");

    with_plugin(&test, "plugins/libnosecret.so", "");
    let report = test.sync(&[]).success().report();
    assert_eq!((report.uploaded, report.deleted), (1, 1), "{report:?}");
    assert_eq!(head(&test, "site/a.txt").cache_control(), Some("no-cache"));
    assert!(!test.keys().iter().any(|k| k.contains("secret")), "{:?}", test.keys());

    // ABI 1.1 from C: a page generated at the end, its bytes on the plugin's stack. The settings
    // changed, so `a.txt` is re-published in place (copied onto itself).
    with_plugin(&test, "plugins/libnosecret.so", "mode = \"report\"");
    let report = test.sync(&[]).success().report();
    assert_eq!((report.uploaded, report.copied, report.deleted, report.bytes_uploaded), (1, 1, 0, 10), "{report:?}");
    assert_eq!(test.contents()["site/nosecret.txt"], "dropped 1\n");
    assert_eq!(head(&test, "site/nosecret.txt").content_type(), Some("text/plain; charset=utf-8"));
    assert_eq!(head(&test, "site/a.txt").cache_control(), Some("no-cache"));

    with_plugin(&test, "plugins/libnosecret.so", "mode = \"fail\"");
    test.sync(&[]).code(2).stderr_contains("cannot create the plugin: refusing settings that say fail");
}

/// Compiles and runs a C program against the header in a temporary directory; its stdout.
fn run_c(test: &Test, source: &str) -> String {
    let dir = work_dir(test);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    let exe = dir.join("c-program");
    let status = std::process::Command::new(&cc)
        .args(["-std=c99", "-Wall", "-Werror", "-I"])
        .arg(root.join("crates/sitesync-plugin-abi"))
        .arg(root.join(source))
        .arg("-o")
        .arg(&exe)
        .status()
        .expect("running the C compiler (set CC)");
    assert!(status.success(), "compiling {source} failed");
    let output = std::process::Command::new(&exe).output().unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn the_c_header_lays_the_structs_out_as_the_rust_types() {
    use sitesync_plugin_abi as abi;
    use std::mem::{offset_of, size_of};
    let test = Test::new();
    let expected = [
        format!("size sitesync_str {}", size_of::<abi::Str>()),
        format!("size sitesync_bytes {}", size_of::<abi::Bytes>()),
        format!("size sitesync_key_value {}", size_of::<abi::KeyValue>()),
        format!("size sitesync_headers {}", size_of::<abi::Headers>()),
        format!("size sitesync_entry_view {}", size_of::<abi::EntryView>()),
        format!("size sitesync_entry_out {}", size_of::<abi::EntryOut>()),
        format!("size sitesync_error_sink {}", size_of::<abi::ErrorSink>()),
        format!("size sitesync_plugin_table_v1 {}", size_of::<abi::PluginV1>()),
        format!("offset sitesync_entry_out.headers {}", offset_of!(abi::EntryOut, headers)),
        format!("offset sitesync_entry_out.body {}", offset_of!(abi::EntryOut, body)),
        format!("offset sitesync_plugin_table_v1.create {}", offset_of!(abi::PluginV1, create)),
        format!("offset sitesync_plugin_table_v1.destroy {}", offset_of!(abi::PluginV1, destroy)),
        format!("offset sitesync_plugin_table_v1.finish {}", offset_of!(abi::PluginV1, finish)),
        format!("version {}.{}", abi::ABI_MAJOR, abi::ABI_MINOR),
        format!("no_source {}", u8::from(abi::NO_SOURCE == usize::MAX)),
    ];
    assert_eq!(run_c(&test, "tests/c-plugin/layout.c").lines().collect::<Vec<_>>(), expected);
}
