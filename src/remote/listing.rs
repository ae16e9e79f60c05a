//! Listing the objects under the target prefix, split into parallel ListObjectsV2 streams.
//!
//! One ListObjectsV2 stream is a chain of round trips, each waiting for the last; on a large
//! bucket the listing, not the diff, sets the pace. So the listing first asks for the top level
//! with `Delimiter=/`, which returns the keys directly under the prefix and the common prefixes
//! (the "folders"), then lists the folders in parallel, a bounded number at a time. Every folder
//! is a contiguous range of S3's key order, so emitting the direct keys and the folders' keys in
//! the order the top level gave them yields exactly the order of a single stream, which the diff
//! relies on to match keys early. Folders listed ahead of the emit point wait on small bounded
//! channels, so memory stays bounded too.
//!
//! Listings ask for `EncodingType=url`, so keys holding characters XML cannot carry survive the
//! trip, and are decoded here: the SDK does not do it. Decoding treats `+` as a space, as AWS
//! encodes spaces that way while Garage uses `%20`; both encode a literal `+` as `%2B`.

use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
use aws_sdk_s3::types::EncodingType;
use tokio::sync::mpsc;

use super::{RemoteError, RemoteSource};
use crate::error::{Op, StoreError};
use crate::keys::target::Target;
pub use crate::keys::target::decode_key;
use crate::model::{RemoteObject, Time};
pub use crate::s3client::to_time;

/// Pages buffered per folder listed ahead of the emit point.
const PAGES_AHEAD: usize = 2;

/// What a folder's listing sends to the emitter. Its end is said, not inferred: a listing task
/// that stops without `Done` (a panic) fails the listing instead of ending the folder early.
enum Pages {
    Keys(Vec<RemoteObject>),
    Done,
    Failed(StoreError),
}

/// A run of keys in listing order: keys already listed, or a folder being listed.
enum Slot {
    Keys(Vec<RemoteObject>),
    Folder(String, mpsc::Receiver<Pages>),
}

/// The objects under the prefix, from ListObjectsV2, split by top-level folder.
pub struct Listing {
    pub client: aws_sdk_s3::Client,
    pub target: Target,
    /// Folder listings in flight; 1 lists in a single stream.
    pub parallel: usize,
}

#[async_trait::async_trait]
impl RemoteSource for Listing {
    fn describe(&self) -> String {
        format!("listing {}", self.target)
    }

    async fn send(self: Box<Self>, tx: mpsc::Sender<Vec<RemoteObject>>) -> Result<(), RemoteError> {
        Ok(list(&self.client, &self.target, self.parallel, tx).await?)
    }
}

/// Lists every object under the prefix in S3 order, in batches, until done or until the receiver
/// is dropped. `parallel` bounds the folder listings in flight; 1 lists in a single stream.
async fn list(
    client: &aws_sdk_s3::Client,
    target: &Target,
    parallel: usize,
    tx: mpsc::Sender<Vec<RemoteObject>>,
) -> Result<(), StoreError> {
    if parallel <= 1 {
        return list_range(client, target, &target.prefix, &tx).await;
    }
    let (slots_tx, slots_rx) = mpsc::channel::<Slot>(parallel - 1);
    let discover = discover(client, target, slots_tx);
    let emit = async move {
        let mut slots = slots_rx;
        let emitted = emit(&mut slots, &tx).await;
        // Dropping the slots' receiver ends discovery, which may be waiting for room in it: a
        // folder that failed must end the listing, not leave it waiting for ever.
        drop(slots);
        emitted
    };
    let (discovered, emitted) = tokio::join!(discover, emit);
    emitted.and(discovered)
}

/// Sends the keys of the slots in order, until the slots end, one fails or the receiver is gone.
async fn emit(slots: &mut mpsc::Receiver<Slot>, tx: &mpsc::Sender<Vec<RemoteObject>>) -> Result<(), StoreError> {
    while let Some(slot) = slots.recv().await {
        let (folder, mut pages) = match slot {
            Slot::Keys(keys) => {
                if tx.send(keys).await.is_err() {
                    return Ok(());
                }
                continue;
            }
            Slot::Folder(folder, pages) => (folder, pages),
        };
        loop {
            match pages.recv().await {
                Some(Pages::Keys(keys)) => {
                    if tx.send(keys).await.is_err() {
                        return Ok(());
                    }
                }
                Some(Pages::Done) => break,
                Some(Pages::Failed(e)) => return Err(e),
                None => {
                    return Err(StoreError::answer(Op::List, folder, "the folder's listing stopped before its end"));
                }
            }
        }
    }
    Ok(())
}

/// Lists the top level with a delimiter and queues its keys and folders in order, starting a
/// listing task for each folder as it is queued.
async fn discover(client: &aws_sdk_s3::Client, target: &Target, slots: mpsc::Sender<Slot>) -> Result<(), StoreError> {
    let mut token: Option<String> = None;
    loop {
        let page = list_page(client, target, &target.prefix, Some("/"), token.take()).await?;
        for slot in ordered_slots(&page, target) {
            let slot = match slot {
                Ok(keys) => Slot::Keys(keys),
                Err(folder) => {
                    let (tx, rx) = mpsc::channel(PAGES_AHEAD);
                    tokio::spawn(list_folder(client.clone(), target.clone(), folder.clone(), tx));
                    Slot::Folder(format!("s3://{}/{folder}", target.bucket), rx)
                }
            };
            if slots.send(slot).await.is_err() {
                return Ok(());
            }
        }
        match page.next_continuation_token() {
            Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
            _ => return Ok(()),
        }
    }
}

/// Lists one folder into `tx`, and says how it ended.
async fn list_folder(client: aws_sdk_s3::Client, target: Target, folder: String, tx: mpsc::Sender<Pages>) {
    let (pages_tx, mut pages_rx) = mpsc::channel(PAGES_AHEAD);
    let forward = async {
        while let Some(page) = pages_rx.recv().await {
            if tx.send(Pages::Keys(page)).await.is_err() {
                return;
            }
        }
    };
    // The listing owns `pages_tx`, so `forward` sees the end when it is done.
    let list = async move { list_range(&client, &target, &folder, &pages_tx).await };
    let (listed, ()) = tokio::join!(list, forward);
    let _ = tx.send(listed.map_or_else(Pages::Failed, |()| Pages::Done)).await;
}

/// The keys and folders of a delimited page, merged into key order: `Ok` runs of keys and `Err`
/// folder prefixes (full keys, decoded).
fn ordered_slots(page: &ListObjectsV2Output, target: &Target) -> Vec<Result<Vec<RemoteObject>, String>> {
    let encoded = page.encoding_type() == Some(&EncodingType::Url);
    let decode = |raw: &str| if encoded { decode_key(raw) } else { raw.to_owned() };
    let mut keys = page.contents().iter().filter_map(|o| object(o, target, encoded)).peekable();
    let folders: Vec<String> = page.common_prefixes().iter().filter_map(|p| p.prefix()).map(decode).collect();
    let mut slots = Vec::new();
    let mut run = Vec::new();
    for folder in folders {
        let relative = folder.strip_prefix(target.prefix.as_str()).unwrap_or(&folder).to_owned();
        while let Some(key) = keys.next_if(|k| k.key < relative) {
            run.push(key);
        }
        if !run.is_empty() {
            slots.push(Ok(std::mem::take(&mut run)));
        }
        slots.push(Err(folder));
    }
    run.extend(keys);
    if !run.is_empty() {
        slots.push(Ok(run));
    }
    slots
}

/// Lists every key under `prefix` in one paginated stream.
async fn list_range(
    client: &aws_sdk_s3::Client,
    target: &Target,
    prefix: &str,
    tx: &mpsc::Sender<Vec<RemoteObject>>,
) -> Result<(), StoreError> {
    let mut token: Option<String> = None;
    loop {
        let page = list_page(client, target, prefix, None, token.take()).await?;
        let encoded = page.encoding_type() == Some(&EncodingType::Url);
        let batch: Vec<RemoteObject> = page.contents().iter().filter_map(|o| object(o, target, encoded)).collect();
        if !batch.is_empty() && tx.send(batch).await.is_err() {
            return Ok(());
        }
        match page.next_continuation_token() {
            Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
            _ => return Ok(()),
        }
    }
}

async fn list_page(
    client: &aws_sdk_s3::Client,
    target: &Target,
    prefix: &str,
    delimiter: Option<&str>,
    token: Option<String>,
) -> Result<ListObjectsV2Output, StoreError> {
    client
        .list_objects_v2()
        .bucket(&target.bucket)
        .prefix(prefix)
        .set_delimiter(delimiter.map(str::to_owned))
        .encoding_type(EncodingType::Url)
        .set_continuation_token(token)
        .send()
        .await
        .map_err(|e| StoreError::sdk(Op::List, format!("s3://{}/{prefix}", target.bucket), e))
}

/// A listed object as a key relative to the prefix; `None` for the prefix's own folder marker and
/// for anything outside the prefix, which a prefixed listing cannot return and is never acted on.
fn object(o: &aws_sdk_s3::types::Object, target: &Target, encoded: bool) -> Option<RemoteObject> {
    let raw = o.key()?;
    let key = if encoded { decode_key(raw) } else { raw.to_owned() };
    let relative = key.strip_prefix(target.prefix.as_str())?;
    if relative.is_empty() {
        return None;
    }
    Some(RemoteObject {
        key: relative.to_owned(),
        size: o.size().unwrap_or(0).max(0) as u64,
        last_modified: o.last_modified().map(to_time).unwrap_or(Time(0)),
        etag: o.e_tag().map(|e| e.trim_matches('"').to_owned()).filter(|e| !e.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::types::{CommonPrefix, Object};

    #[test]
    fn decodes_aws_and_garage_forms() {
        // Garage: `a%20b+c é.txt` comes back as below.
        assert_eq!(decode_key("a%2520b%2Bc%20%C3%A9.txt"), "a%20b+c é.txt");
        // AWS encodes spaces as `+`.
        assert_eq!(decode_key("a+b%2Bc"), "a b+c");
    }

    #[test]
    fn delimited_pages_merge_into_key_order() {
        let target = Target::parse("s3://bucket/site").unwrap();
        let page = ListObjectsV2Output::builder()
            .encoding_type(EncodingType::Url)
            .set_contents(Some(
                ["site/", "site/a", "site/a.b", "site/b%20c", "site/z"]
                    .iter()
                    .map(|k| Object::builder().key(*k).size(1).build())
                    .collect(),
            ))
            .set_common_prefixes(Some(
                ["site/a/", "site/b%2B/"].iter().map(|p| CommonPrefix::builder().prefix(*p).build()).collect(),
            ))
            .build();
        let described: Vec<String> = ordered_slots(&page, &target)
            .into_iter()
            .map(|slot| match slot {
                Ok(keys) => keys.iter().map(|k| k.key.as_str()).collect::<Vec<_>>().join(","),
                Err(folder) => format!("[{folder}]"),
            })
            .collect();
        // `a` < `a.b` < `a/`: a key equal to a folder's name comes before the folder; `b c` < `b+/`.
        assert_eq!(described, ["a,a.b", "[site/a/]", "b c", "[site/b+/]", "z"]);
    }
}
