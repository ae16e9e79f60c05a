//! The lock's object in the bucket: the conditional writes that take and renew it, reading it
//! back (its ETag, when it was written, who holds it) and deleting it. What S3 answers is sorted
//! here into what the lock decides by: a condition that does not hold (412), a conditional write
//! under way (409), a server that takes none (501), and every other failure.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use super::{Holder, Lock};
use crate::model::Time;
use crate::s3client::{Op, StoreError};

/// A conditional PutObject.
#[derive(Clone, Copy)]
pub(super) enum Cond<'a> {
    /// `If-None-Match: *`: only where there is no lock.
    Create,
    /// `If-Match: ETAG`: only over the lock with that ETag.
    Replace(&'a str),
}

/// Why a conditional write did not happen.
pub(super) enum Refused {
    /// 412: the condition does not hold.
    Precondition,
    /// 409: another conditional write to the key was under way; look again.
    Conflict,
    /// The server does not take conditional writes at all (501 NotImplemented).
    Unsupported(String),
    Store(StoreError),
}

/// The lock's object as read.
pub(super) struct Found {
    pub etag: String,
    /// Its `LastModified`; `None` when the server did not say.
    pub written: Option<Time>,
    /// `None` when its bytes are not a sitesync lock.
    pub holder: Option<Holder>,
}

impl Found {
    pub(super) fn describe(&self) -> String {
        match &self.holder {
            Some(holder) => holder.describe(),
            None => "holder unknown: the lock's content is not sitesync's".to_owned(),
        }
    }
}

impl Lock {
    /// Writes the lock, this run its holder and its expiry counted from now, if `cond` holds;
    /// the new ETag.
    pub(super) async fn put(&self, cond: Cond<'_>) -> Result<String, Refused> {
        let body = self.me.body(crate::history::server_now(self.clock.bounds()));
        let put = self.client.put_object().bucket(&self.bucket).key(&self.key);
        let put = put.content_type("application/json").cache_control("no-store").body(ByteStream::from(body));
        let put = match cond {
            Cond::Create => put.if_none_match("*"),
            Cond::Replace(etag) => put.if_match(etag),
        };
        match put.send().await {
            Ok(out) => out
                .e_tag()
                .map(str::to_owned)
                .ok_or_else(|| Refused::Store(StoreError::answer(Op::Put, &self.url, "the answer carries no ETag"))),
            Err(e) => Err(self.refused(e)),
        }
    }

    /// What a failed write means for the lock.
    fn refused<E>(&self, e: SdkError<E, HttpResponse>) -> Refused
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let status = e.raw_response().map(|r| r.status().as_u16());
        let code = e.as_service_error().and_then(|s| s.code()).map(str::to_owned);
        match (status, code.as_deref()) {
            (Some(412), _) | (_, Some("PreconditionFailed")) => Refused::Precondition,
            (Some(409), _) | (_, Some("ConditionalRequestConflict")) => Refused::Conflict,
            (Some(501), _) | (_, Some("NotImplemented")) => {
                Refused::Unsupported(format!("it answered a conditional PUT with {}", code.as_deref().unwrap_or("501")))
            }
            _ => Refused::Store(StoreError::sdk(Op::Put, &self.url, e)),
        }
    }

    /// The lock's object; `None` when there is none.
    pub(super) async fn read(&self) -> Result<Option<Found>, StoreError> {
        let got = match self.client.get_object().bucket(&self.bucket).key(&self.key).send().await {
            Ok(got) => got,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(StoreError::sdk(Op::Get, &self.url, e)),
        };
        let etag = got.e_tag().unwrap_or_default().to_owned();
        let written = got.last_modified().and_then(|t| std::time::SystemTime::try_from(*t).ok()).map(Time::from_system);
        let body = got.body.collect().await.map_err(|e| StoreError::answer(Op::Get, &self.url, e.to_string()))?;
        Ok(Some(Found { etag, written, holder: Holder::read(&body.into_bytes()) }))
    }

    /// Deletes the lock, whoever holds it: check first.
    pub(super) async fn delete(&self) -> Result<(), StoreError> {
        let deleted = self.client.delete_object().bucket(&self.bucket).key(&self.key).send().await;
        deleted.map(|_| ()).map_err(|e| StoreError::sdk(Op::Delete, &self.url, e))
    }
}
