//! The two scans as the merge reads them in a run: channels from the stages, whose ends are
//! checked.
//!
//! A closed channel is not the end of a side by itself: the stage behind it may have panicked or
//! stopped early, and the objects or files it did not send would read as deleted files or new
//! objects. So when a channel closes, the stages feeding it are joined, and only a clean end of
//! every one of them is the end of the side; anything else fails the run, which then sends no
//! deletes.

use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::mpsc;

use crate::diff::{Read, Sides};
use crate::error::Error;
use crate::model::{LocalItem, RemoteObject};
use crate::remote::RemoteError;
use crate::run::progress::Counts;
use crate::run::stop::Stop;
use crate::scan::WalkError;
use crate::transform::TransformError;

/// The receiving ends of the scans, and the stages behind them.
pub struct ChannelSides<'a> {
    pub local: mpsc::Receiver<Result<Vec<LocalItem>, TransformError>>,
    pub remote: mpsc::Receiver<Vec<RemoteObject>>,
    /// The chain thread, which joins the walk and ends with its result ([`super::local`]).
    pub chain: Option<JoinHandle<Result<(), WalkError>>>,
    pub source: Option<tokio::task::JoinHandle<Result<(), RemoteError>>>,
    /// What the remote source is, for messages.
    pub source_name: String,
    /// What each side yielded so far, for the progress display.
    pub counts: Arc<Counts>,
    pub stop: &'a Stop,
}

impl Sides for ChannelSides<'_> {
    async fn local(&mut self) -> Read<Vec<LocalItem>> {
        let received = tokio::select! {
            _ = self.stop.requested_wait() => return Read::Stopped,
            batch = self.local.recv() => batch,
        };
        match received {
            Some(Ok(batch)) => {
                self.counts.local(batch.len());
                Read::Batch(batch)
            }
            Some(Err(e)) => Read::Failed(Error::Transform(e)),
            None => match self.local_ended().await {
                Ok(()) => {
                    self.counts.local_done();
                    Read::End
                }
                Err(e) => Read::Failed(e),
            },
        }
    }

    async fn remote(&mut self) -> Read<Vec<RemoteObject>> {
        let received = tokio::select! {
            _ = self.stop.requested_wait() => return Read::Stopped,
            batch = self.remote.recv() => batch,
        };
        match received {
            Some(batch) => {
                self.counts.remote(batch.len());
                Read::Batch(batch)
            }
            None => match self.source.take() {
                None => {
                    self.counts.remote_done();
                    Read::End
                }
                Some(source) => match source.await {
                    Ok(Ok(())) => {
                        self.counts.remote_done();
                        Read::End
                    }
                    Ok(Err(e)) => Read::Failed(e.into()),
                    Err(e) => Read::Failed(stage_died(&self.source_name, e.to_string())),
                },
            },
        }
    }
}

impl ChannelSides<'_> {
    /// Joins the chain (which joined the walk) once their channel closed: the local side ended
    /// only if both did.
    async fn local_ended(&mut self) -> Result<(), Error> {
        if let Some(chain) = self.chain.take() {
            join(chain).await.map_err(|why| stage_died("transform chain", why))??;
        }
        Ok(())
    }

    /// Stops every stage still running (its channel closes under it) and waits for the threads.
    pub async fn close(mut self) {
        let (chain, source) = (self.chain.take(), self.source.take());
        drop(self);
        if let Some(source) = source {
            source.abort();
        }
        if let Some(chain) = chain {
            let _ = join(chain).await;
        }
    }
}

fn stage_died(stage: &str, why: String) -> Error {
    Error::Stage { stage: stage.to_owned(), why }
}

/// Joins a thread off the async runtime's workers; `Err` is what its panic said.
async fn join<T: Send + 'static>(thread: JoinHandle<T>) -> Result<T, String> {
    match tokio::task::spawn_blocking(move || thread.join()).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(panic)) => Err(crate::run::panic::message(panic.as_ref())),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    //! A stage that dies must fail the merge, not read as the end of its side: each test kills
    //! one stage mid-run and checks the merge does not end `Complete` (which would let the sink
    //! send the deletes of every object the dead stage did not get to).

    use super::*;
    use crate::clock::{ChangeRule, Offset};
    use crate::diff::merge::Fixed;
    use crate::diff::{DeleteLimits, Diff, Ended, Schedule, merge};
    use crate::keys::target::Target;
    use crate::model::{LocalFile, Time};
    use crate::pipeline::local::LocalSide;
    use crate::sink::PlanSink;
    use crate::transform::{Chain, ChainSpec, StepError, Transform};

    fn object(key: &str) -> RemoteObject {
        RemoteObject { key: key.into(), size: 1, last_modified: Time(0), etag: None }
    }

    async fn merged(sides: &mut ChannelSides<'_>) -> Ended {
        let mut diff = Diff::new(ChangeRule { fudge: 0 });
        let mut sink = PlanSink::new(Target::parse("s3://bkt/site").unwrap(), true);
        let limits = DeleteLimits { enforced: false, max: 0, max_percent: 0, early: false };
        let offsets = Fixed::new(Offset::exact(0), Offset::exact(0));
        merge(&mut diff, sides, &offsets, &mut sink, &limits, Schedule::Behind).await
    }

    fn stage_failed(ended: &Ended, stage: &str) -> bool {
        matches!(ended, Ended::Failed(Error::Stage { stage: s, .. }) if s == stage)
    }

    /// A source that lists `keys` and then `end`s as told.
    fn source(
        tx: mpsc::Sender<Vec<RemoteObject>>,
        keys: &'static [&'static str],
        panics: bool,
    ) -> tokio::task::JoinHandle<Result<(), RemoteError>> {
        tokio::spawn(async move {
            let _ = tx.send(keys.iter().map(|k| object(k)).collect()).await;
            assert!(!panics, "a bug in the listing (a fault of the test)");
            Ok(())
        })
    }

    #[tokio::test]
    async fn a_listing_that_panics_fails_the_run() {
        let stop = Stop::listen().unwrap();
        let (local_tx, local) = mpsc::channel(4);
        let (remote_tx, remote) = mpsc::channel(4);
        local_tx.send(Ok(vec![LocalItem::File(LocalFile::new("a".into(), "a".into(), 1, Time(0)))])).await.unwrap();
        drop(local_tx);
        let source = Some(source(remote_tx, &["a", "b"], true));
        let mut sides = ChannelSides {
            local,
            remote,
            chain: None,
            source,
            source_name: "listing".into(),
            counts: Default::default(),
            stop: &stop,
        };
        let ended = merged(&mut sides).await;
        assert!(stage_failed(&ended, "listing"), "{ended:?}");
    }

    fn tree(paths: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for path in paths {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x").unwrap();
        }
        dir
    }

    async fn walked_through(chain: Chain, dir: &std::path::Path, stop: &Stop) -> Ended {
        let names = crate::keys::names::NameDecoder::new("utf-8", "none").unwrap();
        let (walk_tx, walk_rx) = mpsc::channel(4);
        let (local_tx, local) = mpsc::channel(4);
        let (remote_tx, remote) = mpsc::channel(4);
        let walker = crate::scan::spawn(dir.to_owned(), crate::scan::WalkOptions::new(names), walk_tx).unwrap();
        let mut sides = ChannelSides {
            chain: Some(
                crate::pipeline::local::spawn(LocalSide::new(chain, None, None), walker, walk_rx, local_tx).unwrap(),
            ),
            source: Some(source(remote_tx, &["a/x", "b/y", "c/z"], false)),
            source_name: "listing".into(),
            counts: Default::default(),
            local,
            remote,
            stop,
        };
        let ended = merged(&mut sides).await;
        sides.close().await;
        ended
    }

    #[tokio::test]
    async fn a_walk_that_dies_fails_the_run() {
        let stop = Stop::listen().unwrap();
        // Reading this directory panics, in test builds only (a fault point of `scan::listing`).
        let dir = tree(&["a/x", "b/sitesync-test-panic/y", "c/z"]);
        let ended = walked_through(ChainSpec::default().start().unwrap(), dir.path(), &stop).await;
        assert!(stage_failed(&ended, "walk"), "{ended:?}");
    }

    #[tokio::test]
    async fn a_walk_whose_reader_thread_cannot_start_fails_the_run_saying_so() {
        let stop = Stop::listen().unwrap();
        let dir = tree(&["a/x", "c/z"]);
        crate::run::thread::fault::refuse("sitesync-read-");
        let ended = walked_through(ChainSpec::default().start().unwrap(), dir.path(), &stop).await;
        let failed = match &ended {
            Ended::Failed(e) => e.to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(failed, "cannot start the thread sitesync-read-0: refused (a fault point of the tests)");
    }

    #[test]
    fn a_walk_or_chain_thread_that_cannot_start_is_an_error() {
        let names = crate::keys::names::NameDecoder::new("utf-8", "none").unwrap();
        let dir = tree(&["a/x"]);
        let (walk_tx, walk_rx) = mpsc::channel(4);
        let (local_tx, _local) = mpsc::channel(4);
        crate::run::thread::fault::refuse("sitesync-chain");
        let walker = crate::scan::spawn(dir.path().to_owned(), crate::scan::WalkOptions::new(names), walk_tx).unwrap();
        let chain = ChainSpec::default().start().unwrap();
        let e =
            crate::pipeline::local::spawn(LocalSide::new(chain, None, None), walker, walk_rx, local_tx).unwrap_err();
        assert_eq!(e.to_string(), "cannot start the thread sitesync-chain: refused (a fault point of the tests)");

        crate::run::thread::fault::refuse("sitesync-walk");
        let (walk_tx, _walk_rx) = mpsc::channel(4);
        let e = crate::scan::spawn(dir.path().to_owned(), crate::scan::WalkOptions::new(names), walk_tx).unwrap_err();
        assert_eq!(e.to_string(), "cannot start the thread sitesync-walk: refused (a fault point of the tests)");
    }

    /// A step that makes a page at the end, and says whether it was asked to.
    struct Finisher(std::sync::Arc<std::sync::atomic::AtomicBool>);

    impl Transform for Finisher {
        fn apply(&mut self, batch: Vec<LocalFile>) -> Result<Vec<LocalFile>, StepError> {
            Ok(batch)
        }

        fn finish(&mut self) -> Result<Vec<LocalFile>, StepError> {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(vec![LocalFile::inline("index.html".into(), std::sync::Arc::from(&b"made"[..]), Time(0))])
        }
    }

    #[tokio::test]
    async fn steps_finish_only_after_a_walk_that_ended_cleanly() {
        let stop = Stop::listen().unwrap();
        for (paths, clean) in [(&["a/x", "c/z"][..], true), (&["a/x", "b/sitesync-test-panic/y", "c/z"], false)] {
            let dir = tree(paths);
            let finished = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let chain = Chain::of(vec![("finisher".into(), Box::new(Finisher(finished.clone())))], true);
            let ended = walked_through(chain, dir.path(), &stop).await;
            assert_eq!(finished.load(std::sync::atomic::Ordering::SeqCst), clean, "{paths:?}: {ended:?}");
            assert_eq!(stage_failed(&ended, "walk"), !clean, "{ended:?}");
        }
    }

    struct Boom;

    impl Transform for Boom {
        fn apply(&mut self, _: Vec<LocalFile>) -> Result<Vec<LocalFile>, StepError> {
            panic!("a bug in a transform (a fault of the test)")
        }
    }

    #[tokio::test]
    async fn a_chain_that_panics_fails_the_run() {
        let stop = Stop::listen().unwrap();
        let dir = tree(&["a/x", "c/z"]);
        let chain = Chain::of(vec![("boom".into(), Box::new(Boom))], false);
        let ended = walked_through(chain, dir.path(), &stop).await;
        assert!(stage_failed(&ended, "transform chain"), "{ended:?}");
    }
}
