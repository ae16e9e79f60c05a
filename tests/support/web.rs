//! A web front for a published prefix, as S3 website hosting serves it, so a real browser can
//! load what sitesync published: `GET /PATH` answers with the object `PREFIX + PATH` (a path
//! ending in `/`, and `/` itself, with its `index.html`; a folder named without its `/` is
//! redirected there, as S3 does), with the stored Content-Type and Content-Encoding and the
//! stored bytes as they are (nothing is decompressed); an object carrying
//! `x-amz-website-redirect-location` is a 301 to it, as the website endpoint answers; anything
//! else is a 404. [`Front::rest`] serves as a CDN on the bucket's REST endpoint does instead: the
//! redirect header is ignored and the object's body served. One request per connection,
//! HTTP/1.1, on the test server's runtime; the objects are read with GetObject from the test
//! server, so the front sees exactly what a sync stored.
//!
//! As a CDN would, it may also hold a page it served before ([`Front::hold`]: the previous
//! version's HTML, still served after a deploy), and hold back the requests for one path until
//! the test lets them through ([`Front::gate`]: a page that is open, its scripts running, while
//! the test deploys); it records what it answered ([`Front::served`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, mpsc};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::{BUCKET, Store};

/// A running front; it stops with the store's runtime.
pub struct Front {
    pub addr: SocketAddr,
    cdn: Arc<Cdn>,
}

/// What the front keeps besides the bucket.
#[derive(Default)]
struct Cdn {
    /// Path → (Content-Type, body): served instead of the bucket's object.
    held: Mutex<HashMap<String, (String, Vec<u8>)>>,
    /// A path whose requests wait until the gate opens, and who hears of each.
    gate: Mutex<Option<(String, mpsc::Sender<()>)>>,
    open: watch::Sender<bool>,
    /// (path, status) of every answer, in order.
    served: Mutex<Vec<(String, u16)>>,
}

/// What the front answers one request with.
struct Answer {
    status: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Front {
    /// Serves the objects under `prefix` (`site/`) of the test bucket on a free port of 127.0.0.1.
    pub fn start(store: &Store, prefix: &str) -> Front {
        Front::serve(store, prefix, true)
    }

    /// The same, but serving a redirect object's body, as CloudFront on the REST endpoint does.
    pub fn rest(store: &Store, prefix: &str) -> Front {
        Front::serve(store, prefix, false)
    }

    fn serve(store: &Store, prefix: &str, website: bool) -> Front {
        let listener = store.block_on(TcpListener::bind("127.0.0.1:0")).expect("binding the web front");
        let addr = listener.local_addr().unwrap();
        let (client, prefix) = (store.client.clone(), prefix.to_owned());
        let cdn = Arc::new(Cdn::default());
        let serving = cdn.clone();
        store.handle().spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (client, prefix, cdn) = (client.clone(), prefix.clone(), serving.clone());
                tokio::spawn(async move {
                    let _ = serve(socket, &client, &prefix, website, &cdn).await;
                });
            }
        });
        Front { addr, cdn }
    }

    /// Serves `body` for `path` from now on, whatever the bucket holds: a page a CDN cached.
    pub fn hold(&self, path: &str, content_type: &str, body: Vec<u8>) {
        self.cdn.held.lock().unwrap().insert(path.to_owned(), (content_type.to_owned(), body));
    }

    /// Holds back every request for `path` until [`Front::open_gate`]; the receiver hears of each
    /// as it arrives. It is then answered `200 open`.
    pub fn gate(&self, path: &str) -> mpsc::Receiver<()> {
        let (tx, rx) = mpsc::channel();
        *self.cdn.gate.lock().unwrap() = Some((path.to_owned(), tx));
        self.cdn.open.send_replace(false);
        rx
    }

    pub fn open_gate(&self) {
        self.cdn.open.send_replace(true);
    }

    /// The status of every answer for `path`, in order.
    pub fn served(&self, path: &str) -> Vec<u16> {
        self.cdn.served.lock().unwrap().iter().filter(|(p, _)| p == path).map(|(_, status)| *status).collect()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

async fn serve(
    mut socket: TcpStream,
    client: &aws_sdk_s3::Client,
    prefix: &str,
    website: bool,
    cdn: &Cdn,
) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = socket.read(&mut buf).await?;
        if n == 0 || request.len() > 64 * 1024 {
            return Ok(());
        }
        request.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&request[..request.iter().position(|&b| b == b'\r').unwrap_or(0)]).into_owned();
    let mut parts = line.split(' ');
    let answer = match (parts.next(), parts.next()) {
        (Some("GET"), Some(target)) => {
            let path = target.split(['?', '#']).next().unwrap_or("/").to_owned();
            let answer = match kept(cdn, &path).await {
                Some(kept) => kept,
                None => answer(client, prefix, target, website).await,
            };
            let status = answer.status.split(' ').next().and_then(|s| s.parse().ok()).unwrap_or(0);
            cdn.served.lock().unwrap().push((path, status));
            answer
        }
        _ => Answer { status: "405 Method Not Allowed", headers: Vec::new(), body: Vec::new() },
    };
    let mut head =
        format!("HTTP/1.1 {}\r\nContent-Length: {}\r\nConnection: close\r\n", answer.status, answer.body.len());
    for (name, value) in &answer.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(&answer.body).await?;
    socket.shutdown().await
}

/// What the front answers for `path` itself, not from the bucket: the gate, once open, or a page
/// it holds.
async fn kept(cdn: &Cdn, path: &str) -> Option<Answer> {
    let gated = cdn.gate.lock().unwrap().as_ref().filter(|(gate, _)| gate == path).map(|(_, tx)| tx.clone());
    if let Some(arrived) = gated {
        let _ = arrived.send(());
        let mut open = cdn.open.subscribe();
        let _ = open.wait_for(|open| *open).await;
        let headers = vec![("Content-Type", "text/plain".to_owned()), ("Cache-Control", "no-store".to_owned())];
        return Some(Answer { status: "200 OK", headers, body: b"open".to_vec() });
    }
    let held = cdn.held.lock().unwrap().get(path).cloned();
    held.map(|(content_type, body)| Answer { status: "200 OK", headers: vec![("Content-Type", content_type)], body })
}

/// The object a request target names, as S3 website hosting finds it.
async fn answer(client: &aws_sdk_s3::Client, prefix: &str, target: &str, website: bool) -> Answer {
    let path = target.split(['?', '#']).next().unwrap_or("/");
    let Ok(path) = percent_encoding::percent_decode_str(path).decode_utf8() else { return not_found() };
    let Some(path) = path.strip_prefix('/') else { return not_found() };
    let key = if path.is_empty() || path.ends_with('/') {
        format!("{prefix}{path}index.html")
    } else {
        format!("{prefix}{path}")
    };
    if let Some(found) = get(client, &key, website).await {
        return found;
    }
    // `/folder` of a `folder/index.html`: S3 redirects to `/folder/`.
    let folder = format!("{prefix}{path}/index.html");
    if !path.is_empty() && !path.ends_with('/') && get(client, &folder, website).await.is_some() {
        return Answer { status: "302 Found", headers: vec![("Location", format!("/{path}/"))], body: Vec::new() };
    }
    not_found()
}

async fn get(client: &aws_sdk_s3::Client, key: &str, website: bool) -> Option<Answer> {
    let object = client.get_object().bucket(BUCKET).key(key).send().await.ok()?;
    if let Some(location) = object.website_redirect_location().filter(|_| website) {
        let headers = vec![("Location", location.to_owned())];
        return Some(Answer { status: "301 Moved Permanently", headers, body: Vec::new() });
    }
    let mut headers = Vec::new();
    if let Some(t) = object.content_type() {
        headers.push(("Content-Type", t.to_owned()));
    }
    if let Some(e) = object.content_encoding() {
        headers.push(("Content-Encoding", e.to_owned()));
    }
    let body = object.body.collect().await.ok()?.to_vec();
    Some(Answer { status: "200 OK", headers, body })
}

fn not_found() -> Answer {
    let headers = vec![("Content-Type", "text/html; charset=utf-8".to_owned())];
    Answer { status: "404 Not Found", headers, body: b"<h1>404 Not Found</h1>".to_vec() }
}
