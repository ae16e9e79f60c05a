//! The physical baselines: the least work that any sync of the same tree and bucket must do.
//!
//! - `walk`: read every directory and stat every file with `std::fs`, on one thread or several.
//! - `list`: ListObjectsV2 of the prefix, page after page (what one stream costs), or split by
//!   the first-level common prefixes and listed in parallel (what the engine can aim for).
//! - `put`: PutObject of every file of the tree, `--workers` requests in flight.
//!
//! Each runs in its own child process (a hidden subcommand of this binary) so its CPU and peak
//! RSS are measured exactly like sitesync's, and prints one JSON line with what it counted. The
//! listings use the bare SDK (static credentials, request and response checksums only when
//! required, no interceptors); the PutObject loop sends as sitesync sends (`sitesync::s3client::
//! clients`, and the Content-Type sitesync gives each key): a body under 1 MiB by the direct
//! PutObject, a larger one through the SDK client with sitesync's retries, timeouts, checksums,
//! endpoint rules and stalled-stream protection. So the first sync's ratio to it is the
//! pipeline's cost alone.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use anyhow::{Context, Result, bail};
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::EncodingType;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sitesync::model::fields::header_list;
use sitesync::model::mime::{Charset, content_type};
use sitesync::s3client::Direct;
use sitesync::s3client::direct::DIRECT_BELOW;
use tokio::task::JoinSet;

use crate::paths;

/// What a baseline process counted.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Counted {
    pub items: u64,
    pub bytes: u64,
    /// Directories walked, or list requests sent.
    pub extra: u64,
}

/// How a baseline process reaches the server; credentials come from `AWS_ACCESS_KEY_ID` and
/// `AWS_SECRET_ACCESS_KEY`.
#[derive(Debug, Clone, clap::Args)]
pub struct Endpoint {
    #[arg(long)]
    pub endpoint: String,
    #[arg(long)]
    pub bucket: String,
    #[arg(long, default_value = "")]
    pub prefix: String,
}

pub fn client(endpoint: &str) -> Result<aws_sdk_s3::Client> {
    let key = std::env::var("AWS_ACCESS_KEY_ID").context("AWS_ACCESS_KEY_ID")?;
    let secret = std::env::var("AWS_SECRET_ACCESS_KEY").context("AWS_SECRET_ACCESS_KEY")?;
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
    Ok(client_with(endpoint, &key, &secret, &region))
}

pub fn client_with(endpoint: &str, key: &str, secret: &str, region: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new(key, secret, None, None, "sitesync-bench"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// The client sitesync builds for the same server, with the same credentials, and its direct
/// PutObject of small bodies.
async fn sitesync_clients(endpoint: &str) -> Result<(aws_sdk_s3::Client, Option<Arc<Direct>>)> {
    let key = std::env::var("AWS_ACCESS_KEY_ID").context("AWS_ACCESS_KEY_ID")?;
    let secret = std::env::var("AWS_SECRET_ACCESS_KEY").context("AWS_SECRET_ACCESS_KEY")?;
    let conn = sitesync::s3client::Connection {
        endpoint_url: Some(endpoint.to_owned()),
        path_style: true,
        region: Some(std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into())),
        static_credentials: Some((key, secret)),
        ..Default::default()
    };
    Ok(sitesync::s3client::clients(&conn, Default::default()).await)
}

/// Walks `root` and stats every file, with `threads` threads sharing a queue of directories.
pub fn walk(root: &Path, threads: usize) -> Result<Counted> {
    if threads <= 1 {
        let mut counted = Counted::default();
        let mut stack = vec![root.to_owned()];
        while let Some(dir) = stack.pop() {
            visit(&dir, &mut counted, |d| stack.push(d))?;
        }
        return Ok(counted);
    }
    // The queue of directories to visit, and how many threads are visiting one right now.
    let shared = Arc::new((Mutex::new((VecDeque::from([root.to_owned()]), 0usize)), Condvar::new()));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let shared = shared.clone();
            std::thread::spawn(move || -> Result<Counted> {
                let (lock, cvar) = &*shared;
                let mut counted = Counted::default();
                loop {
                    let dir = {
                        let mut state = lock.lock().unwrap_or_else(|e| e.into_inner());
                        loop {
                            if let Some(dir) = state.0.pop_back() {
                                state.1 += 1;
                                break Some(dir);
                            }
                            if state.1 == 0 {
                                break None;
                            }
                            state = cvar.wait(state).unwrap_or_else(|e| e.into_inner());
                        }
                    };
                    let Some(dir) = dir else {
                        cvar.notify_all();
                        return Ok(counted);
                    };
                    let mut found = Vec::new();
                    let result = visit(&dir, &mut counted, |d| found.push(d));
                    let mut state = lock.lock().unwrap_or_else(|e| e.into_inner());
                    state.0.extend(found);
                    state.1 -= 1;
                    cvar.notify_all();
                    drop(state);
                    result?;
                }
            })
        })
        .collect();
    let mut total = Counted::default();
    for worker in workers {
        let counted = worker.join().map_err(|_| anyhow::anyhow!("a walk thread panicked"))??;
        total.items += counted.items;
        total.bytes += counted.bytes;
        total.extra += counted.extra;
    }
    Ok(total)
}

/// Reads one directory: stats its files, hands its subdirectories to `push`.
fn visit(dir: &Path, counted: &mut Counted, mut push: impl FnMut(PathBuf)) -> Result<()> {
    counted.extra += 1;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", paths::shown(dir)))? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            push(entry.path());
        } else {
            let meta = std::fs::metadata(entry.path())?;
            counted.items += 1;
            counted.bytes += meta.len();
        }
    }
    Ok(())
}

/// GNU `md5sum` of every file of the tree, `threads` processes at once (`xargs -0 -P`): the floor
/// of a sync that must read and hash every file. The files are found with the same walk as
/// `walk`; each process gets an equal share of the list. Counts the files hashed (the lines
/// `md5sum` printed) and their bytes.
pub fn md5sum(root: &Path, threads: usize) -> Result<Counted> {
    use std::io::{BufRead, Write};
    let mut files = Vec::new();
    let mut bytes = 0;
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", paths::shown(&dir)))? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
            } else {
                bytes += entry.metadata()?.len();
                files.push(entry.path());
            }
        }
    }
    let mut list = Vec::new();
    for file in &files {
        list.extend_from_slice(file.as_os_str().as_encoded_bytes());
        list.push(0);
    }
    let mut child = std::process::Command::new("xargs")
        .args(["-0", "-P", &threads.max(1).to_string(), "-n"])
        .arg((files.len() / threads.max(1) / 8 + 1).to_string())
        .arg("md5sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("running xargs md5sum")?;
    let mut stdin = child.stdin.take().context("xargs stdin")?;
    let feeding = std::thread::spawn(move || stdin.write_all(&list));
    let lines = std::io::BufReader::new(child.stdout.take().context("xargs stdout")?).lines().count() as u64;
    feeding.join().map_err(|_| anyhow::anyhow!("feeding xargs panicked"))??;
    if !child.wait()?.success() {
        bail!("xargs md5sum failed");
    }
    Ok(Counted { items: lines, bytes, extra: 0 })
}

/// Lists every key under the prefix: one stream, or one per first-level common prefix (found with
/// `Delimiter=/`) with at most `parallel` listings in flight.
pub async fn list(at: &Endpoint, split: bool, parallel: usize) -> Result<Counted> {
    let client = client(&at.endpoint)?;
    if !split {
        return Ok(list_stream(&client, &at.bucket, &at.prefix, false).await?.0);
    }
    let (mut counted, prefixes) = list_stream(&client, &at.bucket, &at.prefix, true).await?;
    let mut tasks = JoinSet::new();
    let mut pending = prefixes.into_iter();
    loop {
        while tasks.len() < parallel.max(1) {
            let Some(prefix) = pending.next() else { break };
            let (client, bucket) = (client.clone(), at.bucket.clone());
            tasks.spawn(async move { list_stream(&client, &bucket, &prefix, false).await });
        }
        let Some(done) = tasks.join_next().await else { break };
        let (part, _) = done??;
        counted.items += part.items;
        counted.bytes += part.bytes;
        counted.extra += part.extra;
    }
    Ok(counted)
}

/// One paginated listing; with `delimit`, also the common prefixes (decoded: keys and prefixes
/// are requested url-encoded, as sitesync does).
async fn list_stream(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    delimit: bool,
) -> Result<(Counted, Vec<String>)> {
    let mut counted = Counted::default();
    let mut prefixes = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_delimiter(delimit.then(|| "/".to_owned()))
            .encoding_type(EncodingType::Url)
            .set_continuation_token(token.take())
            .send()
            .await
            .with_context(|| format!("ListObjectsV2 {bucket}/{prefix}"))?;
        counted.extra += 1;
        let encoded = page.encoding_type() == Some(&EncodingType::Url);
        // sitesync's own objects under `.sitesync/` (the deploy history) are listed, but the
        // count is the tree's files'. The keys come url-encoded (`/` as `%2F` on some servers).
        let own = |key: &str| {
            let key = if encoded { sitesync::remote::decode_key(key) } else { key.to_owned() };
            key.contains(".sitesync/")
        };
        for object in page.contents().iter().filter(|o| !own(o.key().unwrap_or(""))) {
            counted.items += 1;
            counted.bytes += object.size().unwrap_or(0).max(0) as u64;
        }
        for p in page.common_prefixes().iter().filter_map(|p| p.prefix()) {
            prefixes.push(if encoded { sitesync::remote::decode_key(p) } else { p.to_owned() });
        }
        match page.next_continuation_token() {
            Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
            _ => return Ok((counted, prefixes)),
        }
    }
}

/// PutObject of every file under `root` (keys relative to it, under the prefix), `workers` at a
/// time. The file list is gathered first; reading each file is part of the loop, as it is for
/// any uploader.
pub async fn put(at: &Endpoint, root: &Path, workers: usize, sdk: bool) -> Result<Counted> {
    let (client, direct) = sitesync_clients(&at.endpoint).await?;
    let direct = direct.filter(|_| !sdk);
    // The bucket's first request runs the endpoint rules, as a run's listing does.
    client.list_objects_v2().bucket(&at.bucket).max_keys(1).send().await.context("ListObjectsV2")?;
    let mut files = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    let mut counted = Counted::default();
    let mut tasks = JoinSet::new();
    let mut pending = files.into_iter();
    loop {
        while tasks.len() < workers.max(1) {
            let Some(path) = pending.next() else { break };
            let rel = path.strip_prefix(root)?.to_str().context("a non-UTF-8 file name")?;
            let key = format!("{}{rel}", at.prefix);
            let (client, direct, bucket) = (client.clone(), direct.clone(), at.bucket.clone());
            tasks.spawn(async move {
                let body =
                    Bytes::from(std::fs::read(&path).with_context(|| format!("reading {}", paths::shown(&path)))?);
                let len = body.len() as u64;
                // As sitesync sends it: directly below 1 MiB, through the SDK above, with the
                // Content-Type it gives the key.
                let content_type = content_type(&key, &Charset::default());
                if let Some(direct) = direct.filter(|_| len < DIRECT_BELOW)
                    && let Some(sent) = direct.put(&bucket, &key, header_list(&content_type, None), body.clone()).await
                {
                    sent.with_context(|| format!("PutObject {key}"))?;
                    return anyhow::Ok(len);
                }
                let request = client.put_object().bucket(bucket).key(&key).content_type(content_type);
                let request = request.body(ByteStream::from(body));
                request.send().await.with_context(|| format!("PutObject {key}"))?;
                anyhow::Ok(len)
            });
        }
        let Some(done) = tasks.join_next().await else { break };
        counted.bytes += done??;
        counted.items += 1;
    }
    Ok(counted)
}

/// Creates a bucket, accepting one that already exists.
pub async fn create_bucket(client: &aws_sdk_s3::Client, bucket: &str) -> Result<()> {
    match client.create_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(()),
        Err(e) => {
            let code = aws_sdk_s3::error::ProvideErrorMetadata::code(&e).unwrap_or_default().to_owned();
            if code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists" {
                return Ok(());
            }
            bail!("CreateBucket {bucket}: {}", aws_sdk_s3::error::DisplayErrorContext(&e))
        }
    }
}
