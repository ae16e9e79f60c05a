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

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{BUCKET, Store};

/// A running front; it stops with the store's runtime.
pub struct Front {
    pub addr: SocketAddr,
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
        store.handle().spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (client, prefix) = (client.clone(), prefix.clone());
                tokio::spawn(async move {
                    let _ = serve(socket, &client, &prefix, website).await;
                });
            }
        });
        Front { addr }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

async fn serve(mut socket: TcpStream, client: &aws_sdk_s3::Client, prefix: &str, website: bool) -> std::io::Result<()> {
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
        (Some("GET"), Some(target)) => answer(client, prefix, target, website).await,
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
