//! The demo site, published by the real binary to the test server, served the way S3 website
//! hosting serves it ([`web::Front`]) and loaded in headless Chromium: what a browser does with
//! the Content-Types and Content-Encodings sitesync sends.
//!
//! `demo/site/index.html` runs `js/checks.mjs`, a module script, which writes into the page
//! whether the stylesheet applied (the heading's computed colour), whether the gzip-compressed
//! stylesheet (`css/checks.css`, compressed by `demo/sync.toml`) was decoded and applied (the
//! list's border colour), and what `WebAssembly.instantiateStreaming` made of `wasm/add.wasm`
//! (it refuses anything not typed `application/wasm`). Chromium prints the page's DOM once the
//! scripts ran (`--dump-dom`), and the tests read the checks from it. A second publish with a
//! `headers` rule typing the wasm and the stylesheet `text/plain` makes those checks fail: the
//! test can tell.
//!
//! A site whose `_redirects` moves a page is opened at the old URL, and the browser must end on
//! the new page (its text, and the URL it reports), both as the website endpoint serves a
//! redirect object (a 301) and as a CDN on the REST endpoint does (the object's own page, whose
//! refresh sends the browser on).
//!
//! A small single-page app whose script loads a lazy chunk after a timer is opened as version 1
//! (its page kept by the front as a CDN keeps it), version 2 is deployed with `delete_grace` while
//! the page is open, and the open page must still load its old chunk (with the grace off it fails:
//! "Failed to fetch dynamically imported module"); after the grace, the next deploy deletes it.
//!
//! Chromium must be installed (`apt-get install -y chromium`; `.ci/run` does it). Without it
//! these tests fail, saying so; they are never skipped.

mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::web::Front;
use support::{BUCKET, DEST, Store, Tree};

/// The minimal module `wasm/add.wasm` holds, written by hand:
/// `(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))`.
const ADD_WASM: [u8; 41] = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // "\0asm", version 1
    0x01, 0x07, 0x01, 0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7f, // type section: (i32, i32) -> i32
    0x03, 0x02, 0x01, 0x00, // function section: one function of type 0
    0x07, 0x07, 0x01, 0x03, b'a', b'd', b'd', 0x00, 0x00, // export section: "add", function 0
    0x0a, 0x09, 0x01, 0x07, 0x00, 0x20, 0x00, 0x20, 0x01, 0x6a, 0x0b, // code: local.get 0 1, i32.add
];

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("demo")
}

/// The Chromium to run: `$CHROMIUM`, else `chromium` or `chromium-browser` on the PATH.
fn chromium() -> PathBuf {
    if let Some(named) = std::env::var_os("CHROMIUM").map(PathBuf::from) {
        assert!(named.is_file(), "CHROMIUM={} is not a file", named.display());
        return named;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut on_path = std::env::split_paths(&path).flat_map(|dir| [dir.join("chromium"), dir.join("chromium-browser")]);
    if let Some(found) = on_path.find(|p| p.is_file()) {
        return found;
    }
    panic!(
        "Chromium is not installed, and tests/browser.rs loads the published demo site in it. Install it with \
         `apt-get install -y chromium` (Debian; .ci/run does this before the tests), or set CHROMIUM to its path."
    );
}

/// Publishes the demo site to `site/` with `demo/sync.toml` and then `more` (TOML appended).
fn publish(store: &Store, tree: &Tree, more: &str) -> serde_json::Value {
    let toml = std::fs::read_to_string(demo().join("sync.toml")).unwrap();
    let config = tree.work_file("demo.toml", &format!("{toml}\n{more}"));
    let cmd = tree.cmd().arg("sync").arg(demo().join("site")).arg(DEST).connect(&store.endpoint());
    cmd.args(["--json", "--config"]).arg(config).run().code(0).json()
}

/// The page's DOM once its scripts ran, as headless `chromium` prints it.
fn load(chromium: &Path, url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut command = Command::new(chromium);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--dump-dom", url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = command.spawn().unwrap_or_else(|e| panic!("starting {}: {e}", chromium.display()));
    let outcome = support::wait(child, Duration::from_secs(90));
    assert_eq!(outcome.code, Some(0), "chromium failed\n{outcome}");
    assert!(outcome.stdout.contains("</html>"), "chromium printed no page\n{outcome}");
    outcome.stdout
}

/// `(data-state, data-value)` of the element `id` of a dumped DOM.
fn check(dom: &str, id: &str) -> (String, String) {
    let start = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in the page:\n{dom}"));
    let tag = &dom[start..start + dom[start..].find('>').unwrap()];
    let attribute = |name: &str| {
        let from =
            tag.find(&format!("{name}=\"")).unwrap_or_else(|| panic!("#{id} has no {name}: {tag}")) + name.len() + 2;
        let value = &tag[from..from + tag[from..].find('"').unwrap()];
        value.replace("&amp;", "&").replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">")
    };
    (attribute("data-state"), attribute("data-value"))
}

fn ok(value: &str) -> (String, String) {
    ("ok".into(), value.into())
}

fn head(store: &Store, key: &str) -> aws_sdk_s3::operation::head_object::HeadObjectOutput {
    store.block_on(store.client.head_object().bucket(BUCKET).key(key).send()).unwrap_or_else(|e| panic!("{key}: {e:?}"))
}

#[test]
fn the_demo_site_works_in_a_real_browser_and_a_wrong_type_breaks_it() {
    let chromium = chromium();
    let store = Store::start();
    let tree = Tree::new();
    let first = publish(&store, &tree, "");
    assert_eq!(first["failed"], 0, "{first}");
    let gz = head(&store, "site/css/checks.css");
    assert_eq!((gz.content_encoding(), gz.content_type()), (Some("gzip"), Some("text/css; charset=utf-8")));
    let front = Front::start(&store, "site/");

    let dom = load(&chromium, &front.url("/"));
    assert_eq!(check(&dom, "check-module"), ok("ran"), "the module script ran");
    assert_eq!(check(&dom, "check-css"), ok("rgb(42, 93, 143)"), "css/site.css applied");
    assert_eq!(check(&dom, "check-gzip-css"), ok("rgb(0, 128, 0)"), "css/checks.css decoded and applied");
    assert_eq!(check(&dom, "check-wasm"), ok("add(2, 3) = 5"), "instantiateStreaming took the wasm");

    // The same objects typed text/plain (a changed chain: copied in place with the new headers).
    let wrong = r#"
[[transform]]
type = "headers"
[[transform.rules]]
glob = "{wasm/add.wasm,css/site.css}"
content_type = "text/plain"
"#;
    let second = publish(&store, &tree, wrong);
    assert_eq!(second["failed"], 0, "{second}");
    assert_eq!(head(&store, "site/wasm/add.wasm").content_type(), Some("text/plain"));
    let dom = load(&chromium, &front.url("/"));
    assert_eq!(check(&dom, "check-module"), ok("ran"));
    assert_eq!(
        check(&dom, "check-css"),
        ("failed".into(), "rgb(0, 0, 0)".into()),
        "a text/plain stylesheet is ignored"
    );
    assert_eq!(check(&dom, "check-gzip-css"), ok("rgb(0, 128, 0)"));
    let (state, why) = check(&dom, "check-wasm");
    assert_eq!(state, "failed", "{why}");
    assert!(
        why.starts_with("TypeError") && why.contains("MIME type"),
        "instantiateStreaming refuses text/plain: {why}"
    );
}

#[test]
fn the_committed_wasm_is_the_hand_written_module() {
    assert_eq!(std::fs::read(demo().join("site/wasm/add.wasm")).unwrap(), ADD_WASM);
}

/// One request to the front, as raw HTTP/1.1; the answer's head and body.
fn get(front: &Front, path: &str) -> (String, Vec<u8>) {
    let mut socket = std::net::TcpStream::connect(front.addr).unwrap();
    write!(socket, "GET {path} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    socket.read_to_end(&mut answer).unwrap();
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP answer");
    (String::from_utf8_lossy(&answer[..split]).into_owned(), answer[split + 4..].to_vec())
}

#[test]
fn the_front_serves_what_website_hosting_would() {
    let store = Store::start();
    let tree = Tree::new();
    publish(&store, &tree, "");
    let front = Front::start(&store, "site/");
    let (head, body) = get(&front, "/");
    assert!(head.starts_with("HTTP/1.1 200") && head.contains("Content-Type: text/html; charset=utf-8"), "{head}");
    assert!(head.contains("Content-Encoding: gzip"), "index.html is over 1 KiB, so compressed: {head}");
    assert_eq!(&body[..2], &[0x1f, 0x8b], "the stored bytes, not decompressed");
    let (head, body) = get(&front, "/wasm/add.wasm");
    assert!(head.contains("Content-Type: application/wasm") && !head.contains("Content-Encoding"), "{head}");
    assert_eq!(body, ADD_WASM);
    let (head, _) = get(&front, "/caf%C3%A9.html");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let (head, _) = get(&front, "/blog");
    assert!(head.starts_with("HTTP/1.1 404"), "no blog/index.html: {head}");
    let (head, _) = get(&front, "/nothing.html?x=1");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
}

/// Publishes a small site whose `_redirects` moves `/old.html` to `/new/`, and the new page,
/// which writes the URL the browser ended on into itself.
fn moved_site(store: &Store, tree: &Tree) {
    tree.file("index.html", "<!DOCTYPE html><html><body><h1>home</h1></body></html>");
    tree.file(
        "new/index.html",
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head><body><h1>The new page</h1>\
         <p id=\"at\"></p><script>document.getElementById('at').textContent = location.href;</script></body></html>",
    );
    tree.file("_redirects", "/old.html /new/\n");
    let run = tree.sync(&store.endpoint(), &["--json"]).run().code(0);
    assert_eq!(run.json()["redirect_objects"], 1, "{run}");
}

/// The text of the element `id` of a dumped DOM.
fn text(dom: &str, id: &str) -> String {
    let open = format!("id=\"{id}\">");
    let start = dom.find(&open).unwrap_or_else(|| panic!("no #{id} in the page:\n{dom}")) + open.len();
    dom[start..start + dom[start..].find('<').unwrap()].to_owned()
}

#[test]
fn an_old_url_ends_on_the_new_page_in_a_real_browser() {
    let chromium = chromium();
    let store = Store::start();
    let tree = Tree::new();
    moved_site(&store, &tree);

    // As the website endpoint serves it: a 301.
    let website = Front::start(&store, "site/");
    let dom = load(&chromium, &website.url("/old.html"));
    assert!(dom.contains("<h1>The new page</h1>"), "{dom}");
    assert_eq!(text(&dom, "at"), website.url("/new/"), "the browser's final URL");

    // As CloudFront on the REST endpoint serves it (no redirect header): the page's own refresh.
    let rest = Front::rest(&store, "site/");
    let dom = load(&chromium, &rest.url("/old.html"));
    assert!(dom.contains("<h1>The new page</h1>"), "{dom}");
    assert_eq!(text(&dom, "at"), rest.url("/new/"), "the browser's final URL");
}

/// Version `v` of a small single-page app: `index.html` runs `assets/main.V.js`, which waits
/// until the front lets `/__deployed` through (the page is open meanwhile), then, after a timer,
/// loads its lazy chunk `assets/chunk.V.js` and writes what it said, or why it failed, into the
/// page. The names carry each version's hash, as a bundler's do.
fn spa(tree: &Tree, v: u32) -> Vec<u8> {
    let hash = format!("{v}{v}{v}{v}aaaa");
    for old in 1..v {
        let old = format!("{old}{old}{old}{old}aaaa");
        let _ = std::fs::remove_file(tree.path(&format!("assets/main.{old}.js")));
        let _ = std::fs::remove_file(tree.path(&format!("assets/chunk.{old}.js")));
    }
    let page = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><script type=\"module\" src=\"/assets/main.{hash}.js\">\
         </script></head><body><h1>version {v}</h1><p id=\"chunk\" data-state=\"waiting\" data-value=\"\"></p></body></html>"
    );
    tree.file("index.html", &page);
    tree.file(
        &format!("assets/main.{hash}.js"),
        format!(
            "const out = document.getElementById('chunk');\n\
             await fetch('/__deployed', {{ cache: 'no-store' }});\n\
             setTimeout(async () => {{\n\
               try {{ const chunk = await import('./chunk.{hash}.js'); out.dataset.value = chunk.hello(); out.dataset.state = 'ok'; }}\n\
               catch (e) {{ out.dataset.value = String(e); out.dataset.state = 'failed'; }}\n\
             }}, 500);\n"
        ),
    );
    tree.file(&format!("assets/chunk.{hash}.js"), format!("export function hello() {{ return 'chunk {v} ran'; }}\n"));
    page.into_bytes()
}

#[test]
fn a_page_left_open_across_a_deploy_still_loads_its_old_chunk_during_the_grace() {
    const GRACE: &str = "8s";
    let chromium = chromium();
    let store = Store::start();
    let tree = Tree::new();
    // Every deploy of so small an app replaces most of its files.
    tree.config("max_delete_percent = 100\n");
    let sync = || tree.sync(&store.endpoint(), &["--json", "--delete-grace", GRACE]).run().success().json();
    let page = spa(&tree, 1);
    assert_eq!(sync()["uploaded"], 3);

    // The CDN keeps version 1's page; the assets come from the bucket.
    let front = Front::start(&store, "site/");
    front.hold("/", "text/html; charset=utf-8", page);
    let opened = front.gate("/__deployed");
    let url = front.url("/");
    let browser = std::thread::spawn(move || load(&chromium, &url));
    opened.recv_timeout(Duration::from_secs(90)).expect("the page never got to its script");

    // Version 2 is deployed while the page is open.
    spa(&tree, 2);
    let deployed = sync();
    assert_eq!((deployed["uploaded"].as_u64(), deployed["retired"].as_u64()), (Some(3), Some(2)), "{deployed}");
    assert_eq!(deployed["deleted"], 0);
    front.open_gate();
    let dom = browser.join().unwrap();
    assert!(dom.contains("<h1>version 1</h1>"), "{dom}");
    assert_eq!(check(&dom, "chunk"), ok("chunk 1 ran"), "the open page loaded its old chunk");
    assert_eq!(front.served("/assets/chunk.1111aaaa.js"), [200]);
    let (head, _) = get(&front, "/assets/main.2222aaaa.js");
    assert!(head.starts_with("HTTP/1.1 200"), "version 2 is published: {head}");

    // After the grace, the next deploy deletes the old chunk.
    let ledger = store.objects()["site/.sitesync/retired"].clone();
    let line = String::from_utf8(ledger).unwrap().lines().nth(1).unwrap().to_owned();
    let retired: u64 = line.split(' ').next().unwrap().parse().unwrap();
    let until = std::time::UNIX_EPOCH + Duration::from_millis(retired + 9000);
    while std::time::SystemTime::now() < until {
        std::thread::sleep(Duration::from_millis(200));
    }
    let later = sync();
    assert_eq!((later["deleted"].as_u64(), later["retired"].as_u64()), (Some(2), Some(0)), "{later}");
    let (head, _) = get(&front, "/assets/chunk.1111aaaa.js");
    assert!(head.starts_with("HTTP/1.1 404"), "the old chunk is gone: {head}");
}

/// A page whose stylesheet colours its heading, and which writes the colour it got into itself.
fn versioned_page(tree: &Tree, version: &str, color: &str) {
    tree.file(
        "index.html",
        format!(
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><link rel=\"stylesheet\" href=\"site.css\"></head>\
             <body><h1 id=\"title\">The {version} page</h1><p id=\"color\"></p><script>\
             document.getElementById('color').textContent = getComputedStyle(document.getElementById('title')).color;\
             </script></body></html>"
        ),
    );
    tree.file("site.css", format!("h1 {{ color: {color}; }}\n"));
    for key in ["index.html", "site.css"] {
        support::set_mtime(&tree.path(key), support::future());
    }
}

#[test]
fn a_rollback_from_v3_serves_v2_in_a_real_browser() {
    let chromium = chromium();
    let store = Store::start();
    let tree = Tree::new();
    versioned_page(&tree, "v2", "rgb(0, 128, 0)");
    tree.sync(&store.endpoint(), &[]).run().code(0);
    versioned_page(&tree, "v3, longer", "rgb(0, 0, 255)");
    tree.sync(&store.endpoint(), &[]).run().code(0);
    let front = Front::start(&store, "site/");
    let dom = load(&chromium, &front.url("/"));
    assert_eq!((text(&dom, "title"), text(&dom, "color")), ("The v3, longer page".into(), "rgb(0, 0, 255)".into()));

    tree.cmd().arg("rollback").arg(DEST).connect(&store.endpoint()).run().code(0);
    let dom = load(&chromium, &front.url("/"));
    assert_eq!(text(&dom, "title"), "The v2 page", "v2's text");
    assert_eq!(text(&dom, "color"), "rgb(0, 128, 0)", "v2's stylesheet");
}
