//! A fault-injecting HTTP/1.1 proxy between `sitesync` and the test's S3 server.
//!
//! It works on bytes: it reads each request's head and body off the client connection (the SDK
//! keeps connections alive, so faults are chosen per request, not per connection), decides with a
//! fixed-seed RNG whether one of its [`Rule`]s fires, and either forwards the request to the
//! server over its own upstream connection or answers it with a fault: a canned `503 SlowDown`,
//! `500 InternalError` or `400 InvalidArgument` XML error, a gateway's `403 Forbidden` page with no
//! S3 error code, a TCP reset (before or after the server saw the request, so some
//! "failed" requests did take effect), or a stall that answers nothing until the client gives up
//! or the test calls [`Proxy::release`]. A rule can report each request it hits on a channel, which
//! lets a test act at an exact point of a run (kill the process while an upload is stalled)
//! without sleeping. Concurrency makes the order of requests vary between runs, so the seed fixes
//! the sequence of coin flips, not which request gets which.
//!
//! It can also remove request headers on the way ([`Proxy::strip_request_headers`]), as a server
//! that ignores them would: `If-None-Match` and `If-Match` make the test server one without
//! conditional writes. Headers are signed, so a request that loses one is signed again with the
//! test server's credentials.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// `503 SlowDown`, as S3 throttles.
    SlowDown,
    /// `500 InternalError`.
    InternalError,
    /// `400 InvalidArgument`: a request retrying cannot fix.
    BadRequest,
    /// The connection is reset, half the time after the server has handled the request.
    Reset,
    /// No answer until the client hangs up or the test releases the proxy.
    Stall,
    /// `403 Forbidden` with an HTML page, as a gateway or firewall in front of the store answers:
    /// no S3 error code.
    Bare,
}

const FAULTS: [Fault; 6] =
    [Fault::SlowDown, Fault::InternalError, Fault::BadRequest, Fault::Reset, Fault::Stall, Fault::Bare];

/// What a rule sees of a request.
#[derive(Debug, Clone)]
pub struct Head {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
}

impl Head {
    /// A DeleteObjects call (`POST /bucket?delete`).
    pub fn is_delete_objects(&self) -> bool {
        self.method == "POST" && self.target.contains("?delete")
    }

    /// A ListObjectsV2 call.
    pub fn is_list(&self) -> bool {
        self.method == "GET" && self.target.contains("list-type=2")
    }

    /// A ListObjectsV2 call of the site's keys: not of the deploy history under `.sitesync/`,
    /// which every sync lists (a few records, whatever the site's size).
    pub fn lists_the_site(&self) -> bool {
        self.is_list() && !self.target.contains(".sitesync%2F")
    }

    /// A PutObject, UploadPart or CopyObject call, but for the bucket lock's writes.
    pub fn is_put(&self) -> bool {
        self.method == "PUT" && !self.is_lock()
    }

    /// A request about the bucket lock (`.sitesync/lock`, a shard's `.sitesync/lock.K-of-N`).
    pub fn is_lock(&self) -> bool {
        self.target.contains("/.sitesync/lock")
    }
}

type Matcher = Box<dyn Fn(&Head) -> bool + Send + Sync>;

/// Injects `fault` into a share of the requests it matches.
pub struct Rule {
    matcher: Matcher,
    fault: Fault,
    rate: f64,
    after: u64,
    limit: u64,
    notify: Option<std::sync::mpsc::Sender<String>>,
    matched: AtomicU64,
    fired: AtomicU64,
}

impl Rule {
    /// Every request, at rate 1.
    pub fn new(fault: Fault) -> Rule {
        Rule {
            matcher: Box::new(|_| true),
            fault,
            rate: 1.0,
            after: 0,
            limit: u64::MAX,
            notify: None,
            matched: AtomicU64::new(0),
            fired: AtomicU64::new(0),
        }
    }

    pub fn when(mut self, matcher: impl Fn(&Head) -> bool + Send + Sync + 'static) -> Rule {
        self.matcher = Box::new(matcher);
        self
    }

    /// The share of matching requests that get the fault.
    pub fn rate(mut self, rate: f64) -> Rule {
        self.rate = rate;
        self
    }

    /// Lets the first `n` matching requests through.
    pub fn after(mut self, n: u64) -> Rule {
        self.after = n;
        self
    }

    /// Fires at most `n` times.
    pub fn limit(mut self, n: u64) -> Rule {
        self.limit = n;
        self
    }

    /// Sends `METHOD TARGET` of every request the rule fires on.
    pub fn notify(mut self, tx: std::sync::mpsc::Sender<String>) -> Rule {
        self.notify = Some(tx);
        self
    }
}

struct Shared {
    upstream: SocketAddr,
    rules: Vec<Rule>,
    rng: Mutex<u64>,
    requests: AtomicU64,
    injected: [AtomicU64; 6],
    released: watch::Sender<bool>,
    /// Response headers removed on the way back (lowercase names), as some gateways strip `Date`.
    stripped: Mutex<Vec<String>>,
    /// Request headers removed on the way in (lowercase names).
    stripped_requests: Mutex<Vec<String>>,
}

impl Shared {
    /// splitmix64: small, seeded, good enough for coin flips.
    fn next(&self) -> u64 {
        let mut state = self.rng.lock().unwrap();
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn coin(&self, rate: f64) -> bool {
        rate >= 1.0 || (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= rate
    }

    fn choose(&self, head: &Head) -> Option<Fault> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        for rule in &self.rules {
            if !(rule.matcher)(head) {
                continue;
            }
            let n = rule.matched.fetch_add(1, Ordering::Relaxed);
            if n < rule.after || !self.coin(rule.rate) {
                continue;
            }
            if rule.fired.fetch_add(1, Ordering::Relaxed) >= rule.limit {
                continue;
            }
            let index = FAULTS.iter().position(|f| *f == rule.fault).unwrap();
            self.injected[index].fetch_add(1, Ordering::Relaxed);
            if let Some(tx) = &rule.notify {
                let _ = tx.send(format!("{} {}", head.method, head.target));
            }
            return Some(rule.fault);
        }
        None
    }
}

/// A running proxy; it stops with the runtime it was started on.
#[derive(Clone)]
pub struct Proxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Proxy {
    pub fn start(runtime: &tokio::runtime::Handle, upstream: SocketAddr, seed: u64, rules: Vec<Rule>) -> Proxy {
        let (released, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            upstream,
            rules,
            rng: Mutex::new(seed),
            requests: AtomicU64::new(0),
            injected: Default::default(),
            released,
            stripped: Mutex::new(Vec::new()),
            stripped_requests: Mutex::new(Vec::new()),
        });
        let listener = runtime.block_on(TcpListener::bind(("127.0.0.1", 0))).unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = shared.clone();
        runtime.spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let shared = accept.clone();
                tokio::spawn(async move {
                    let _ = serve(socket, shared).await;
                });
            }
        });
        Proxy { addr, shared }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests seen so far.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// How many times `fault` was injected.
    pub fn injected(&self, fault: Fault) -> u64 {
        let index = FAULTS.iter().position(|f| *f == fault).unwrap();
        self.shared.injected[index].load(Ordering::Relaxed)
    }

    /// Removes the header `name` from every response from now on.
    pub fn strip_response_header(&self, name: &str) {
        self.shared.stripped.lock().unwrap().push(name.to_ascii_lowercase());
    }

    /// Removes the headers `names` from every request from now on, signing it again.
    pub fn strip_request_headers(&self, names: &[&str]) {
        self.shared.stripped_requests.lock().unwrap().extend(names.iter().map(|n| n.to_ascii_lowercase()));
    }

    /// Lets every stalled request (and every later one) go through to the server.
    pub fn release(&self) {
        self.shared.released.send_replace(true);
    }
}

/// One raw HTTP/1.1 message: the head as sent, and the body with its framing.
struct Message {
    head: Vec<u8>,
    body: Vec<u8>,
    close: bool,
}

async fn serve(client: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let mut client = BufReader::new(client);
    let mut upstream: Option<BufReader<TcpStream>> = None;
    loop {
        let Some(head) = read_head(&mut client).await? else { return Ok(()) };
        let mut request = read_message(&mut client, head, None).await?;
        let names = shared.stripped_requests.lock().unwrap().clone();
        if let Some(head) = super::sigv4::resigned_without(&request.head, &names) {
            request.head = head;
        }
        let line = String::from_utf8_lossy(&request.head);
        let mut words = line.split_whitespace();
        let head =
            Head { method: words.next().unwrap_or("").to_owned(), target: words.next().unwrap_or("").to_owned() };
        match shared.choose(&head) {
            None => {}
            Some(Fault::SlowDown) => {
                canned(&mut client, "503 Slow Down", "SlowDown", "Please reduce your request rate.").await?;
                continue;
            }
            Some(Fault::InternalError) => {
                canned(&mut client, "500 Internal Server Error", "InternalError", "We encountered an internal error.")
                    .await?;
                continue;
            }
            Some(Fault::BadRequest) => {
                canned(&mut client, "400 Bad Request", "InvalidArgument", "Injected by the test proxy.").await?;
                continue;
            }
            Some(Fault::Bare) => {
                let body = "<html><body><h1>403 Forbidden</h1>Request blocked.</body></html>";
                let head = format!(
                    "HTTP/1.1 403 Forbidden\r\ncontent-type: text/html\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                );
                client.get_mut().write_all(head.as_bytes()).await?;
                client.get_mut().write_all(body.as_bytes()).await?;
                continue;
            }
            Some(Fault::Reset) => {
                if shared.next().is_multiple_of(2) {
                    let _ = forward(&shared, &mut upstream, &request, &head).await;
                }
                client.get_ref().set_zero_linger()?;
                return Ok(());
            }
            Some(Fault::Stall) => {
                let mut released = shared.released.subscribe();
                let mut byte = [0u8; 1];
                tokio::select! {
                    _ = released.wait_for(|r| *r) => {}
                    // The client sends nothing more before its answer: a read ends when it hangs up.
                    _ = client.read(&mut byte) => return Ok(()),
                }
            }
        }
        let mut response = forward(&shared, &mut upstream, &request, &head).await?;
        strip(&mut response, &shared.stripped.lock().unwrap());
        client.get_mut().write_all(&response.head).await?;
        client.get_mut().write_all(&response.body).await?;
        if response.close || request.close {
            return Ok(());
        }
    }
}

/// Sends a request upstream (connecting, or reconnecting once, as needed) and reads the answer,
/// passing interim `100 Continue` responses along with the final one.
async fn forward(
    shared: &Shared,
    upstream: &mut Option<BufReader<TcpStream>>,
    request: &Message,
    head: &Head,
) -> std::io::Result<Message> {
    for attempt in 0..2 {
        if upstream.is_none() {
            *upstream = Some(BufReader::new(TcpStream::connect(shared.upstream).await?));
        }
        let conn = upstream.as_mut().unwrap();
        let sent = async {
            conn.get_mut().write_all(&request.head).await?;
            conn.get_mut().write_all(&request.body).await
        }
        .await;
        let mut interim = Vec::new();
        let answer = match sent {
            Ok(()) => loop {
                match read_head(conn).await {
                    Ok(Some(h)) if h.starts_with(b"HTTP/1.1 1") => interim.extend_from_slice(&h),
                    Ok(Some(h)) => break read_message(conn, h, Some(&head.method)).await.map(Some),
                    Ok(None) => break Ok(None),
                    Err(e) => break Err(e),
                }
            },
            Err(e) => Err(e),
        };
        match answer {
            Ok(Some(mut response)) => {
                if response.close {
                    *upstream = None;
                }
                interim.extend_from_slice(&response.head);
                response.head = interim;
                return Ok(response);
            }
            // A kept-alive connection the server closed meanwhile: try a fresh one.
            Ok(None) | Err(_) if attempt == 0 => *upstream = None,
            Ok(None) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Err(e) => return Err(e),
        }
    }
    unreachable!()
}

/// Removes the lines of the headers named in `names` from a response's head.
fn strip(response: &mut Message, names: &[String]) {
    if names.is_empty() {
        return;
    }
    let head = String::from_utf8_lossy(&response.head).into_owned();
    let kept: String = head
        .split_inclusive('\n')
        .filter(|line| {
            let name = line.split_once(':').map(|(n, _)| n.trim().to_ascii_lowercase());
            !name.is_some_and(|n| names.contains(&n))
        })
        .collect();
    response.head = kept.into_bytes();
}

async fn canned(client: &mut BufReader<TcpStream>, status: &str, code: &str, message: &str) -> std::io::Result<()> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>proxy</RequestId></Error>"
    );
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/xml\r\ncontent-length: {}\r\nx-amz-request-id: proxy\r\n\r\n",
        body.len()
    );
    client.get_mut().write_all(head.as_bytes()).await?;
    client.get_mut().write_all(body.as_bytes()).await
}

/// The head of the next message, up to and including its blank line; `None` at a clean end.
async fn read_head(conn: &mut BufReader<TcpStream>) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    loop {
        let start = head.len();
        if conn.read_until(b'\n', &mut head).await? == 0 {
            return if head.is_empty() { Ok(None) } else { Err(std::io::ErrorKind::UnexpectedEof.into()) };
        }
        if head[start..] == *b"\r\n" || head[start..] == *b"\n" {
            return Ok(Some(head));
        }
        if head.len() > 64 * 1024 {
            return Err(std::io::Error::other("head too long"));
        }
    }
}

/// Reads the body that follows `head`; `request_method` is set for responses (a HEAD's answer
/// has no body).
async fn read_message(
    conn: &mut BufReader<TcpStream>,
    head: Vec<u8>,
    request_method: Option<&str>,
) -> std::io::Result<Message> {
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let header = |name: &str| {
        text.lines().skip(1).find_map(|l| l.split_once(':').filter(|(n, _)| n.trim() == name).map(|(_, v)| v.trim()))
    };
    let close = header("connection") == Some("close");
    let status = text.split_whitespace().nth(1).unwrap_or("");
    let no_body = request_method == Some("HEAD") || status == "204" || status == "304";
    let mut body = Vec::new();
    if no_body {
    } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let start = body.len();
            conn.read_until(b'\n', &mut body).await?;
            let line = String::from_utf8_lossy(&body[start..]).to_string();
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| std::io::Error::other("bad chunk size"))?;
            if size == 0 {
                // Trailers, then a blank line.
                loop {
                    let start = body.len();
                    if conn.read_until(b'\n', &mut body).await? == 0 || body[start..].trim_ascii().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size + 2, 0);
            conn.read_exact(&mut body[start..]).await?;
        }
    } else if let Some(length) = header("content-length") {
        let length: usize = length.parse().map_err(|_| std::io::Error::other("bad content-length"))?;
        body.resize(length, 0);
        conn.read_exact(&mut body).await?;
    } else if request_method.is_some() {
        // A response without framing runs to the end of the connection.
        conn.read_to_end(&mut body).await?;
        return Ok(Message { head, body, close: true });
    }
    Ok(Message { head, body, close })
}
