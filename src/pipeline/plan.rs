//! A dry run over a bucket held in memory: the plan `sitesync plan` would print for a source on
//! disk and a bucket described rather than listed.
//!
//! It is a run's own path with the network taken out, not a copy of it: the source is checked
//! and walked as a run walks it, and its batches go through the same chain, this shard's part of
//! what the chain yields and the chain's `finish` after the walk ([`LocalSide`]); the diff, the
//! delete limits and the content check around the plan sink are built by the functions a run
//! builds them with ([`stages`](super::stages)), and the merge is the run's loop. Only what a
//! run asks the bucket comes from [`Bucket`] instead: the listing, the chain marker, the clock
//! offset, the ledger of retired keys and what a HEAD of a compressed key would answer
//! ([`Heads::known`]). There is no local
//! state, as on a first run or a fresh cache. The snapshot tests pin what it returns, under
//! several schedules and batch sizes, which must all give the same plan.

use std::collections::{HashMap, VecDeque};

use super::local::{LocalSide, OwnPart};
use super::{RunOptions, stages};
use crate::clock::Offset;
use crate::config::Config;
use crate::diff::merge::{Fixed, InMemory};
use crate::diff::{Ended, Schedule, Tally, merge};
use crate::error::Error;
use crate::history::ledger::{Layout, LedgerFile, Retired};
use crate::model::{LocalItem, RemoteObject, Time};
use crate::sink::{Finish, Heads, Retiring};

/// What a run would learn of the bucket, given instead of asked.
#[derive(Debug, Clone)]
pub struct Bucket {
    /// The objects under the prefix, keys relative to it, in S3 order as a listing returns them.
    pub objects: Vec<RemoteObject>,
    /// The source size each key's object records (`fields::SOURCE_SIZE`), which a HEAD returns;
    /// an object without an entry records none.
    pub source_sizes: HashMap<String, u64>,
    /// The chain marker under the prefix: the fingerprint of the chain the objects were
    /// published with, empty when there is none.
    pub marker: String,
    /// The clock offset measured while listing, and the narrower one a run would measure by the
    /// end, for the pairs it could not settle.
    pub offset: Offset,
    pub narrowed: Offset,
    /// The ledger of retired keys under the prefix (`delete_grace`): each layout's file.
    pub ledger: Vec<LedgerFile>,
    /// The server's time during the run: what a key retired now is retired at.
    pub now: Time,
}

/// How the merge reads the two sides: which side next, and the batches each is cut into (a
/// run's walk sends batches of 1,000).
#[derive(Debug, Clone, Copy)]
pub struct Interleave {
    pub schedule: Schedule,
    pub batch: usize,
}

/// What a dry run would report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// The plan, as `sitesync plan` prints it.
    pub plan: String,
    pub tally: Tally,
    /// Why the delete limits would refuse the run, when they would.
    pub refused: Option<String>,
}

/// The plan of `config`'s source against `bucket`. Blocking: it walks the source and runs the
/// merge on a runtime of its own, so call it outside any async runtime.
pub fn in_memory(config: &Config, bucket: &Bucket, interleave: Interleave) -> Result<Planned, Error> {
    super::check_source(config, false)?;
    let chain = stages::chain(config)?;
    let walk = config.walk_options();
    let walked = crate::scan::walk_all(&config.source, walk.clone())?;
    let local = LocalSide::new(chain, OwnPart::of(config, &walk), None);
    let refresh = stages::chain_changed(config, &bucket.marker);
    let mut diff = stages::diff_for(config, &walk, refresh, true);
    let mut sides = InMemory {
        local: local_batches(local, walked, interleave.batch),
        remote: bucket.objects.chunks(interleave.batch.max(1)).map(<[_]>::to_vec).collect(),
    };
    let offsets = Fixed::new(bucket.offset, bucket.narrowed);
    let heads = Heads::known(bucket.source_sizes.clone());
    let sink = stages::checking(config, stages::plan_sink(config), refresh, heads, true);
    let limits = stages::limits_for(config, &RunOptions { dry_run: true, ..RunOptions::default() });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| Error::Stage { stage: "planner's runtime".into(), why: e.to_string() })?;
    runtime.block_on(async {
        let mut sink = match stages::grace(config) {
            Some(grace) => {
                let own = Layout::of(config.shard.as_ref());
                let ledger = Retired::of_files(own, &bucket.ledger).await?;
                Box::new(Retiring::new(sink, ledger, grace, (bucket.now, bucket.narrowed)))
            }
            None => sink,
        };
        let ended = merge(&mut diff, &mut sides, &offsets, sink.as_mut(), &limits, interleave.schedule).await;
        let tally = diff.tally();
        let complete = matches!(ended, Ended::Complete);
        let finish = Finish { deletes: complete, unchanged: tally.unchanged, hashed: 0 };
        let applied = sink.finish(finish).await;
        let refused = match ended {
            Ended::Complete => None,
            Ended::Refused(why) => Some(why),
            Ended::Failed(e) => return Err(e),
            Ended::Stopped => unreachable!("an in-memory side never reads a stop"),
        };
        debug_assert_eq!(diff.pending(), 0, "the diff holds keys after both sides ended");
        Ok(Planned { plan: applied.plan, tally, refused })
    })
}

/// The walk's items in batches of `size`, as the chain thread hands them to the merge: each
/// through `local`, then what the chain held back; a failing batch is the last.
fn local_batches(mut local: LocalSide, walked: Vec<LocalItem>, size: usize) -> VecDeque<Result<Vec<LocalItem>, Error>> {
    let mut batches = VecDeque::new();
    for batch in walked.chunks(size.max(1)) {
        let yielded = local.batch(batch.to_vec());
        let failed = yielded.is_err();
        batches.push_back(yielded.map_err(Error::Transform));
        if failed {
            return batches;
        }
    }
    if let Some(last) = local.finish() {
        batches.push_back(last.map_err(Error::Transform));
    }
    batches
}
