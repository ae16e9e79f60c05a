//! Counting what the diff plans for the progress display, on the way to the sink.

use std::sync::Arc;

use super::{Applied, Finish, Sink};
use crate::model::Event;
use crate::run::progress::Counts;

/// A sink that counts what the diff plans before handing it on.
pub struct Counting {
    inner: Box<dyn Sink>,
    counts: Arc<Counts>,
}

impl Counting {
    pub fn new(inner: Box<dyn Sink>, counts: Arc<Counts>) -> Counting {
        Counting { inner, counts }
    }
}

#[async_trait::async_trait]
impl Sink for Counting {
    async fn accept(&mut self, events: Vec<Event>) {
        self.counts.planned(&events);
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
