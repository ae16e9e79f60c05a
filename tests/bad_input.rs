//! The bad-input catalogue: one test per case of the table in the "Bad input" section of
//! docs/reliability.md.
//!
//! Each test sets up one bad input, runs the real binary and hands the result to [`check`], which
//! finds the case's row in the table and asserts the exit status and that one line of stderr
//! matches the message given there (`…` stands for any text). So the documented catalogue cannot
//! drift from what the binary says, and [`every_row_has_a_test`] keeps the two lists equal.
//! Tests also check that nothing happened beyond what is safe: the bucket is untouched when the run
//! is refused, and when a file fails, the rest is synced and nothing is deleted.
//!
//! Permission cases need an unprivileged user: as root (the usual container), the binary is run as
//! `nobody`, for whom mode 000 means something.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::Path;

use support::proxy::{Fault, Head, Rule};
use support::{Cmd, Outcome, Store, Tree};

/// The guide page that holds the catalogue.
const RELIABILITY: &str = include_str!("../docs/reliability.md");
const THIS_FILE: &str = include_str!("bad_input.rs");

struct Row {
    exit: i32,
    message: String,
}

/// The catalogue: docs/reliability.md's section from `### Bad input` to the next heading.
fn table() -> &'static str {
    let start = RELIABILITY.find("\n### Bad input").expect("docs/reliability.md has a `### Bad input` section") + 1;
    let section = &RELIABILITY[start..];
    let end = section[1..].find("\n#").map_or(section.len(), |i| i + 1);
    &section[..end]
}

/// The catalogue rows: `| \`id\` | input | \`message\` | exit |`.
fn rows() -> BTreeMap<String, Row> {
    let mut rows = BTreeMap::new();
    for line in table().lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        assert_eq!(cells.len(), 4, "a catalogue row has 4 cells: {line}");
        let unquote = |s: &str| s.strip_prefix('`').and_then(|s| s.strip_suffix('`')).unwrap_or(s).to_owned();
        let exit = cells[3].parse().unwrap_or_else(|_| panic!("exit status of {line}"));
        let row = Row { exit, message: unquote(cells[2]).replace("\\|", "|") };
        assert!(rows.insert(unquote(cells[0]), row).is_none(), "duplicate row {line}");
    }
    rows
}

/// Whether `line` holds the parts of `pattern` between its `…`, in order.
fn matches(line: &str, pattern: &str) -> bool {
    let mut rest = line;
    for part in pattern.split('…') {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

#[track_caller]
fn check(run: &Outcome, case: &str) {
    let rows = rows();
    let row = rows.get(case).unwrap_or_else(|| panic!("no row `{case}` in the bad-input table of docs/reliability.md"));
    assert_eq!(run.code, Some(row.exit), "{case}: exit status\n--- stderr\n{}", run.stderr);
    assert!(
        run.stderr.lines().any(|l| matches(l, &row.message)),
        "{case}: no line of stderr matches {:?}\n--- stderr\n{}",
        row.message,
        run.stderr
    );
    if row.exit == 2 {
        let errors: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{case}: one error line, got\n{}", run.stderr);
    }
}

#[test]
fn every_row_has_a_test() {
    let tested: std::collections::BTreeSet<String> = THIS_FILE
        .match_indices("check(&run, \"")
        .map(|(at, m)| THIS_FILE[at + m.len()..].split('"').next().unwrap().to_owned())
        .collect();
    let documented: std::collections::BTreeSet<String> = rows().into_keys().collect();
    assert_eq!(tested, documented, "docs/reliability.md's bad-input rows vs the cases tested here");
}

/// A tree with a good file, a stale object under the prefix and one outside it, so each case can
/// show that the good part was synced and nothing was deleted.
fn setup(store: &Store) -> Tree {
    let tree = Tree::new();
    tree.file("good.txt", "good");
    store.put("site/stale.txt", b"stale");
    store.put("outside.txt", b"outside");
    tree
}

/// The good file is up, nothing was deleted.
#[track_caller]
fn synced_without_deletes(store: &Store) {
    let objects = store.objects();
    assert_eq!(objects.get("site/good.txt").map(Vec::as_slice), Some(&b"good"[..]));
    assert!(objects.contains_key("site/stale.txt"), "no delete after a failure");
    assert!(objects.contains_key("outside.txt"));
}

fn sync(tree: &Tree, store: &Store) -> Outcome {
    tree.sync(&store.endpoint(), &[]).run()
}

/// Runs a command that must change nothing, and checks that it did not.
fn refused(store: &Store, cmd: Cmd) -> Outcome {
    let before = store.objects();
    let run = cmd.run();
    assert_eq!(store.objects(), before, "a refused run must not touch the bucket");
    run
}

/// Runs as `nobody` when we are root, so that mode 000 denies access.
fn unprivileged(tree: &Tree, mut cmd: Cmd) -> Cmd {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        for dir in [tree.src(), tree.work()] {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o777)).unwrap();
        }
        // The checkout holding the binary may be closed to other users: run a copy from the
        // temporary work directory instead, with the same arguments and environment.
        let program = tree.work().join("sitesync-unprivileged");
        fs::copy(env!("CARGO_BIN_EXE_sitesync"), &program).unwrap();
        fs::set_permissions(&program, fs::Permissions::from_mode(0o755)).unwrap();
        let mut command = std::process::Command::new(&program);
        command.env_clear().args(cmd.command.get_args());
        if let Some(dir) = cmd.command.get_current_dir() {
            command.current_dir(dir);
        }
        for (key, value) in cmd.command.get_envs() {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        command.uid(65534).gid(65534);
        cmd.command = command;
    }
    cmd
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

// --- The source directory -------------------------------------------------------------------------

#[test]
fn source_missing() {
    let store = Store::start();
    let tree = setup(&store);
    let mut cmd = tree.cmd();
    cmd.command.arg("sync").arg(tree.path("missing")).arg(support::DEST);
    let run = refused(&store, cmd.arg("--endpoint-url").arg(store.endpoint()).arg("--path-style"));
    check(&run, "source_missing");
}

#[test]
fn source_not_a_directory() {
    let store = Store::start();
    let tree = setup(&store);
    let mut cmd = tree.cmd();
    cmd.command.arg("sync").arg(tree.path("good.txt")).arg(support::DEST);
    let run = refused(&store, cmd.arg("--endpoint-url").arg(store.endpoint()).arg("--path-style"));
    check(&run, "source_not_a_directory");
}

#[test]
fn source_unreadable() {
    let store = Store::start();
    let tree = setup(&store);
    let cmd = unprivileged(&tree, tree.sync(&store.endpoint(), &[]));
    chmod(tree.src(), 0o000);
    let run = refused(&store, cmd);
    chmod(tree.src(), 0o755);
    check(&run, "source_unreadable");
}

#[test]
fn source_empty() {
    let store = Store::start();
    let tree = Tree::new();
    store.put("site/page.html", b"live site");
    let run = refused(&store, tree.sync(&store.endpoint(), &[]));
    check(&run, "source_empty");
}

// --- Entries inside the tree -----------------------------------------------------------------------

#[test]
fn unreadable_file() {
    let store = Store::start();
    let tree = setup(&store);
    let secret = tree.file("secret.txt", "no access");
    chmod(&secret, 0o000);
    let run = unprivileged(&tree, tree.sync(&store.endpoint(), &[])).run();
    check(&run, "unreadable_file");
    synced_without_deletes(&store);
}

#[test]
fn unreadable_directory() {
    let store = Store::start();
    let tree = setup(&store);
    tree.file("private/a.txt", "a");
    store.put("site/private/a.txt", b"published before");
    chmod(&tree.path("private"), 0o000);
    let run = unprivileged(&tree, tree.sync(&store.endpoint(), &[])).run();
    chmod(&tree.path("private"), 0o755);
    check(&run, "unreadable_directory");
    synced_without_deletes(&store);
    assert!(store.objects().contains_key("site/private/a.txt"), "what could not be read is not deleted");
}

#[test]
fn special_file() {
    let store = Store::start();
    let tree = setup(&store);
    let fifo = std::ffi::CString::new(tree.path("pipe").into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: a valid C string and mode.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let run = sync(&tree, &store);
    check(&run, "special_file");
    synced_without_deletes(&store);
}

#[test]
fn broken_symlink() {
    let store = Store::start();
    let tree = setup(&store);
    symlink("nowhere.txt", tree.path("dangling.txt")).unwrap();
    let run = sync(&tree, &store);
    check(&run, "broken_symlink");
    synced_without_deletes(&store);
}

#[test]
fn symlink_loop() {
    let store = Store::start();
    let tree = setup(&store);
    tree.file("a/b/page.txt", "p");
    symlink("../..", tree.path("a/b/up")).unwrap();
    let run = sync(&tree, &store);
    check(&run, "symlink_loop");
    synced_without_deletes(&store);
    assert!(store.objects().contains_key("site/a/b/page.txt"));
}

#[test]
fn symlink_self_loop() {
    let store = Store::start();
    let tree = setup(&store);
    symlink("self", tree.path("self")).unwrap();
    let run = sync(&tree, &store);
    check(&run, "symlink_self_loop");
    synced_without_deletes(&store);
}

/// A symlink to a file outside the source, with each policy.
fn outside_link(policy: &str) -> (Store, Tree, Outcome) {
    let store = Store::start();
    let tree = Tree::new();
    tree.file("good.txt", "good");
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("shared.css"), "outside").unwrap();
    symlink(outside.path().join("shared.css"), tree.path("shared.css")).unwrap();
    store.put("site/shared.css", b"published earlier");
    tree.config(&format!("symlinks = \"{policy}\"\n"));
    let run = sync(&tree, &store);
    (store, tree, run)
}

#[test]
fn symlink_outside_follow() {
    let (store, _tree, run) = outside_link("follow");
    check(&run, "symlink_outside_follow");
    assert_eq!(store.objects().get("site/shared.css").map(Vec::as_slice), Some(&b"outside"[..]));
}

#[test]
fn symlink_outside_skip() {
    let (store, _tree, run) = outside_link("skip");
    check(&run, "symlink_outside_skip");
    assert!(!store.objects().contains_key("site/shared.css"), "a skipped link is not part of the site");
}

#[test]
fn invalid_name() {
    let store = Store::start();
    let tree = setup(&store);
    let name = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"caf\xe9.txt");
    fs::write(tree.src().join(name), "latin-1 name").unwrap();
    let run = sync(&tree, &store);
    check(&run, "invalid_name");
    synced_without_deletes(&store);
}

#[test]
fn key_too_long() {
    let store = Store::start();
    let tree = setup(&store);
    let dir = ["d".repeat(250), "e".repeat(250), "f".repeat(250), "g".repeat(250)].join("/");
    tree.file(&format!("{dir}/a-file-with-a-long-name-too.txt"), "x");
    let run = sync(&tree, &store);
    check(&run, "key_too_long");
    synced_without_deletes(&store);
}

#[test]
fn file_vanishes_between_scan_and_upload() {
    // Assets go up before pages: while the asset's upload hangs, the page is deleted.
    let store = Store::start();
    let tree = setup(&store);
    tree.file("a.css", "css");
    tree.file("index.html", "page");
    let (tx, fired) = std::sync::mpsc::channel();
    let rule = Rule::new(Fault::Stall).when(|h: &Head| h.is_put() && h.target.contains("a.css")).limit(1).notify(tx);
    let proxy = store.proxy(1, vec![rule]);
    let child = tree.sync(&proxy.endpoint(), &[]).spawn();
    fired.recv_timeout(std::time::Duration::from_secs(60)).unwrap();
    fs::remove_file(tree.path("index.html")).unwrap();
    proxy.release();
    let run = support::wait(child, std::time::Duration::from_secs(60));
    check(&run, "file_vanishes");
    synced_without_deletes(&store);
    assert!(!store.objects().contains_key("site/index.html"));
}

#[test]
fn file_grows_during_upload() {
    let store = Store::start();
    let tree = Tree::new();
    tree.file("big.txt", "first part");
    let (tx, fired) = std::sync::mpsc::channel();
    let proxy = store.proxy(1, vec![Rule::new(Fault::Stall).when(Head::is_put).limit(1).notify(tx)]);
    let child = tree.sync(&proxy.endpoint(), &[]).spawn();
    fired.recv_timeout(std::time::Duration::from_secs(60)).unwrap();
    fs::write(tree.path("big.txt"), "first part, and more written during the upload").unwrap();
    proxy.release();
    let run = support::wait(child, std::time::Duration::from_secs(60));
    check(&run, "file_grows");
    assert_eq!(store.objects().get("site/big.txt"), Some(&fs::read(tree.path("big.txt")).unwrap()));
}

// --- The store -------------------------------------------------------------------------------------

#[test]
fn bucket_missing() {
    let store = Store::start();
    let tree = setup(&store);
    let mut cmd = tree.cmd();
    cmd.command.arg("sync").arg(tree.src()).arg("s3://no-such-bucket/site");
    let run = refused(&store, cmd.arg("--endpoint-url").arg(store.endpoint()).arg("--path-style"));
    check(&run, "bucket_missing");
}

#[test]
fn wrong_credentials() {
    let store = Store::start();
    let tree = setup(&store);
    let run = refused(&store, tree.sync(&store.endpoint(), &[]).env("AWS_SECRET_ACCESS_KEY", "not-the-secret"));
    check(&run, "wrong_credentials");
}

#[test]
fn unknown_access_key() {
    let store = Store::start();
    let tree = setup(&store);
    let run = refused(&store, tree.sync(&store.endpoint(), &[]).env("AWS_ACCESS_KEY_ID", "AKIDNOSUCHKEY"));
    check(&run, "unknown_access_key");
}

#[test]
fn endpoint_unreachable() {
    let tree = Tree::new();
    tree.file("good.txt", "good");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let run = tree.sync(&format!("http://{closed}"), &[]).env("SITESYNC_MAX_ATTEMPTS", "2").run();
    check(&run, "endpoint_unreachable");
}

// --- The destination -------------------------------------------------------------------------------

fn destination(url: &str) -> Outcome {
    let store = Store::start();
    let tree = setup(&store);
    let mut cmd = tree.cmd();
    cmd.command.arg("sync").arg(tree.src()).arg(url);
    refused(&store, cmd.arg("--endpoint-url").arg(store.endpoint()).arg("--path-style"))
}

#[test]
fn malformed_url() {
    let run = destination("bkt/site");
    check(&run, "malformed_url");
}

#[test]
fn prefix_with_dot_dot() {
    let run = destination("s3://bkt/site/../other");
    check(&run, "prefix_dot_dot");
}

#[test]
fn prefix_with_double_slash() {
    let run = destination("s3://bkt/site//x");
    check(&run, "prefix_double_slash");
}

#[test]
fn prefix_with_leading_slash() {
    let run = destination("s3://bkt//site");
    check(&run, "prefix_leading_slash");
}

// --- sync.toml -------------------------------------------------------------------------------------

fn with_config(text: &str) -> Outcome {
    let store = Store::start();
    let tree = setup(&store);
    tree.config(text);
    refused(&store, tree.sync(&store.endpoint(), &[]))
}

#[test]
fn config_syntax_error() {
    let run = with_config("workers = [\n");
    check(&run, "config_syntax");
}

#[test]
fn config_unknown_key() {
    let run = with_config("wokers = 8\n");
    check(&run, "config_unknown_key");
}

#[test]
fn config_wrong_type() {
    let run = with_config("workers = \"many\"\n");
    check(&run, "config_wrong_type");
}

#[test]
fn config_out_of_range() {
    let run = with_config("max_attempts = 0\n");
    check(&run, "config_out_of_range");
}

#[test]
fn config_bad_choice() {
    let run = with_config("retry_mode = \"eager\"\n");
    check(&run, "config_bad_choice");
}

#[test]
fn remote_side_chosen_twice() {
    let store = Store::start();
    let tree = setup(&store);
    let manifest = "s3://inventories/bkt/daily/manifest.json";
    let run = refused(&store, tree.sync(&store.endpoint(), &["--trust-state", "--remote-inventory", manifest]));
    check(&run, "remote_side_twice");
}

#[test]
fn bad_glob() {
    let run = with_config("[[transform]]\ntype = \"filter\"\nexclude = [\"drafts/[a\"]\n");
    check(&run, "bad_glob");
}

/// A sync of a source holding `name` with `text`, with `args`, which must change nothing.
fn with_site_file(name: &str, text: &str, args: &[&str]) -> Outcome {
    let store = Store::start();
    let tree = setup(&store);
    tree.file(name, text);
    refused(&store, tree.sync(&store.endpoint(), args))
}

#[test]
fn redirects_malformed() {
    let run = with_site_file(
        "_redirects",
        "/old /new/
/lonely
",
        &[],
    );
    check(&run, "redirects_malformed");
}

#[test]
fn redirects_unservable() {
    let run = with_site_file(
        "_redirects",
        "/app/* /index.html 200
",
        &[],
    );
    check(&run, "redirects_unservable");
}

#[test]
fn headers_unstorable_strict() {
    let run = with_site_file("_headers", "/*\n  X-Frame-Options: DENY\n", &["--strict"]);
    check(&run, "headers_unstorable_strict");
}

#[test]
fn plugin_missing() {
    let run = with_config("[[transform]]\nplugin = \"plugins/libnope.so\"\n");
    check(&run, "plugin_missing");
}

#[test]
fn plugin_not_a_library() {
    let run = with_config("[[transform]]\nplugin = \"sync.toml\"\n");
    check(&run, "plugin_not_a_library");
}

// --- The lock --------------------------------------------------------------------------------------

#[test]
fn lock_held() {
    let store = Store::start();
    let tree = setup(&store);
    let lock = tree.work().join("site.lock");
    tree.config(&format!("lock_file = {:?}\n", lock.display().to_string()));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _held = runtime.block_on(sitesync::run::lock::acquire(&lock, "s3://bkt/site/", false)).unwrap();
    let run = refused(&store, tree.sync(&store.endpoint(), &[]));
    check(&run, "lock_held");
    assert!(run.stderr.contains(&format!("(pid {})", std::process::id())), "{}", run.stderr);
}

#[test]
fn bucket_lock_held() {
    let store = Store::start();
    let tree = setup(&store);
    let lock = r#"{"v":1,"host":"ci-runner-7","pid":4242,"start":"2026-01-02T10:45:00.000Z","version":"0.1.0","ttl":120,"token":"feedfacefeedface","machine":"another-boot pid:[1]"}"#;
    store.put("site/.sitesync/lock", lock.as_bytes());
    let run = refused(&store, tree.sync(&store.endpoint(), &[]));
    check(&run, "bucket_lock_held");
}

#[test]
fn remote_lock_unsupported() {
    let store = Store::start();
    let tree = setup(&store);
    let proxy = store.proxy(1, vec![]);
    proxy.strip_request_headers(&["If-None-Match", "If-Match"]);
    tree.config("remote_lock = \"required\"\n");
    let run = refused(&store, tree.sync(&proxy.endpoint(), &[]));
    check(&run, "remote_lock_unsupported");
}

#[test]
fn lock_file_unusable() {
    let run = with_config("lock_file = \"/nonexistent/dir/site.lock\"\n");
    check(&run, "lock_file_unusable");
}

#[test]
fn endpoint_stalls() {
    let store = Store::start();
    let tree = setup(&store);
    tree.config("max_attempts = 2\ntimeout = 0.5\n");
    let proxy = store.proxy(1, vec![Rule::new(Fault::Stall)]);
    let run = refused(&store, tree.sync(&proxy.endpoint(), &[]));
    check(&run, "endpoint_stalls");
}

// --- The local state -------------------------------------------------------------------------------

#[test]
fn trust_state_missing() {
    let store = Store::start();
    let tree = setup(&store);
    let run = refused(&store, tree.sync(&store.endpoint(), &["--trust-state"]));
    check(&run, "trust_state_missing");
}

#[test]
fn trust_state_corrupt() {
    let store = Store::start();
    let tree = setup(&store);
    assert_eq!(sync(&tree, &store).code, Some(0));
    let states = tree.work().join(".cache/sitesync");
    let state = fs::read_dir(&states).unwrap().map(|e| e.unwrap().path()).find(|p| p.is_file()).unwrap();
    let bytes = fs::read(&state).unwrap();
    fs::write(&state, &bytes[..bytes.len() - 10]).unwrap();
    tree.file("good.txt", "changed");
    let run = refused(&store, tree.sync(&store.endpoint(), &["--trust-state"]));
    check(&run, "trust_state_corrupt");
}

#[test]
fn ledger_unreadable() {
    let store = Store::start();
    let tree = setup(&store);
    store.put("site/.sitesync/retired", b"{\"v\":1,\"shard\":null,\"written\":1}\nfive stale.txt\n");
    let run = tree.sync(&store.endpoint(), &["--delete-grace", "1h"]).run();
    check(&run, "ledger_unreadable");
    synced_without_deletes(&store);
    assert!(
        store.objects()["site/.sitesync/retired"].starts_with(b"{\"v\":1,\"shard\":null,\"written\":1}\nfive"),
        "left as it is"
    );
}
