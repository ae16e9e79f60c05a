//! The immutable guard: a key published `immutable` never gets other bytes under its name.
//!
//! A browser or CDN that cached a response with `Cache-Control: immutable` (and a long max-age)
//! never asks for it again, so new bytes under that URL reach nobody who has the old ones: a
//! fingerprinted name whose bytes changed is a broken build (a hash that is not deterministic, a
//! file edited by hand), and publishing it would leave visitors with a mix of versions. The guard
//! wraps the sink after the content check ([`Guarded`]) and turns such an upload into a failure of
//! the run ([`refusal`]): exit 1, the key named, its object kept, and, as after any failure, no
//! deletes. `--allow-immutable-change` leaves it out of the run.
//!
//! It judges what the run already knows, and sends nothing of its own. A new key, or one copied
//! in place because only its headers changed, passes. Bytes known to differ (a size, or a content
//! check that read them) are refused. The diff reads an immutable key's bytes wherever something
//! can compare them before it would upload it (`diff::judge`), so an upload that reaches the guard
//! for any other reason is one nothing could compare (no ETag it can match, no local state): it
//! is refused too, since it may change a published URL unseen. A run with the local state records
//! what it sends, so such a key is compared by the next run once it was published with
//! `--allow-immutable-change`.

use super::{Applied, Finish, Sink};
use crate::keys::names::printable;
use crate::model::{Event, Problem, Reason};
use crate::transform::is_immutable;

/// A sink that refuses uploads that would change an immutable key's bytes, and hands the rest on.
pub struct Guarded {
    inner: Box<dyn Sink>,
}

impl Guarded {
    pub fn new(inner: Box<dyn Sink>) -> Guarded {
        Guarded { inner }
    }
}

/// The failure an upload becomes, when the guard refuses it.
pub fn refusal(event: &Event) -> Option<Problem> {
    let Event::Upload { file, reason } = event else { return None };
    let why = match reason {
        Reason::New | Reason::Chain => return None,
        Reason::Size | Reason::Content => "its object holds other bytes",
        Reason::Newer | Reason::Unverified | Reason::Replaced | Reason::Restored => {
            "nothing can tell whether its object holds the same bytes (no ETag to compare them with and no \
             record in the local state, or the file could not be read)"
        }
    };
    if !is_immutable(file) {
        return None;
    }
    let message = format!(
        "refused: its Cache-Control says immutable and {why}; browsers and CDNs that cached it would never \
         see the change. A fingerprinted name must change with its bytes (is the build's hash \
         deterministic?); --allow-immutable-change publishes it anyway"
    );
    tracing::debug!("immutable guard: {} ({})", printable(&file.key), reason.as_str());
    Some(Problem::refused_upload(file.key.clone(), message))
}

#[async_trait::async_trait]
impl Sink for Guarded {
    async fn accept(&mut self, mut events: Vec<Event>) {
        for event in &mut events {
            if let Some(problem) = refusal(event) {
                *event = Event::Problem(problem);
            }
        }
        self.inner.accept(events).await;
    }

    fn deletes_planned(&self) -> u64 {
        self.inner.deletes_planned()
    }

    fn failures(&self) -> u64 {
        self.inner.failures()
    }

    async fn finish(self: Box<Self>, finish: Finish) -> Applied {
        self.inner.finish(finish).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::target::Target;
    use crate::model::fields::Field;
    use crate::model::{LocalFile, RemoteObject, Time};
    use crate::sink::PlanSink;

    fn upload(key: &str, cache_control: Option<&str>, reason: Reason) -> Event {
        let mut file = LocalFile::new(key.into(), key.into(), 1, Time(0));
        if let Some(value) = cache_control {
            file.meta.get_or_insert_default().set(Field::CacheControl, value);
        }
        Event::Upload { file, reason }
    }

    #[test]
    fn only_an_immutable_key_whose_bytes_may_change_is_refused() {
        let immutable = Some("public, max-age=31536000, immutable");
        for reason in [Reason::New, Reason::Chain] {
            assert_eq!(refusal(&upload("a.3f2a91c7.js", immutable, reason)), None, "{reason:?}");
        }
        for reason in [Reason::Size, Reason::Content, Reason::Newer, Reason::Unverified, Reason::Replaced] {
            let refused = refusal(&upload("a.3f2a91c7.js", immutable, reason)).unwrap();
            assert_eq!((refused.place.as_str(), refused.op.as_str()), ("a.3f2a91c7.js", "upload"), "{reason:?}");
            assert!(refused.message.contains("immutable"), "{}", refused.message);
        }
        assert_eq!(refusal(&upload("index.html", Some("max-age=0, must-revalidate"), Reason::Content)), None);
        assert_eq!(refusal(&upload("index.html", None, Reason::Content)), None);
        let delete = Event::Delete {
            object: RemoteObject { key: "a".into(), size: 1, last_modified: Time(0), etag: None },
            retired: None,
        };
        assert_eq!(refusal(&delete), None);
    }

    #[tokio::test]
    async fn a_refused_upload_is_a_failure_of_the_plan_and_withholds_its_deletes() {
        let plan = PlanSink::new(Target::parse("s3://bkt/site").unwrap(), true);
        let mut sink = Guarded::new(Box::new(plan));
        let delete = Event::Delete {
            object: RemoteObject { key: "old.js".into(), size: 1, last_modified: Time(0), etag: None },
            retired: None,
        };
        sink.accept(vec![upload("a.3f2a91c7.js", Some("immutable"), Reason::Content), delete]).await;
        assert_eq!((sink.failures(), sink.deletes_planned()), (1, 1));
        let applied = Box::new(sink).finish(Finish { deletes: true, unchanged: 0, hashed: 0 }).await;
        assert_eq!(applied.failures[0].op.as_str(), "upload");
        assert!(applied.plan.contains("fail site/a.3f2a91c7.js refused:"), "{}", applied.plan);
        assert!(applied.plan.contains("delete site/old.js (withheld: a failure below)"), "{}", applied.plan);
    }
}
