//! The S3 client of a run: the embedded store when selected, otherwise the standard AWS chain.

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Store;
use crate::error::Error;
use crate::s3client::{self, Connection, Direct};

/// Connects to `store` (whose `bucket` the run uses); every response feeds `clock`. Gives the
/// client, and the direct PutObject of small bodies beside it when the client allows one.
pub async fn connect(
    store: &Store,
    bucket: &str,
    clock: Arc<Clock>,
) -> Result<(aws_sdk_s3::Client, Option<Arc<Direct>>), Error> {
    let configured = &store.connection;
    let conn = match &store.local_store {
        // The embedded store's address and credentials, with the configured patience.
        Some(dir) => Connection {
            max_attempts: configured.max_attempts,
            retry_mode: configured.retry_mode,
            timeout: configured.timeout,
            direct_put: configured.direct_put,
            ..local_store(dir).await?
        },
        None => configured.clone(),
    };
    let (client, direct) = s3client::clients(&conn, clock).await;
    if store.local_store.is_some() {
        create_bucket(&client, bucket).await?;
    }
    Ok((client, direct))
}

#[cfg(feature = "local-store")]
async fn local_store(dir: &std::path::Path) -> Result<Connection, Error> {
    let store = crate::local_store::LocalStore::start(dir)
        .await
        .map_err(|e| Error::LocalStore(format!("cannot start the local store in {}: {e}", dir.display())))?;
    tracing::info!("local store: serving {} at {}", dir.display(), store.endpoint());
    Ok(store.connection())
}

#[cfg(not(feature = "local-store"))]
async fn local_store(_dir: &std::path::Path) -> Result<Connection, Error> {
    Err(Error::LocalStore(
        "this sitesync was built without the embedded store (cargo feature `local-store`); use an endpoint".into(),
    ))
}

/// The embedded store starts empty: its bucket is made on first use. The store's folder is this
/// run's alone while it serves it, but a bucket that exists by the time it is created is this
/// store's all the same.
async fn create_bucket(client: &aws_sdk_s3::Client, bucket: &str) -> Result<(), Error> {
    if client.head_bucket().bucket(bucket).send().await.is_ok() {
        return Ok(());
    }
    match client.create_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_bucket_already_exists() || e.is_bucket_already_owned_by_you()) =>
        {
            Ok(())
        }
        Err(e) => {
            let error = crate::error::StoreError::sdk(crate::error::Op::CreateBucket, format!("s3://{bucket}"), e);
            Err(Error::LocalStore(format!("cannot create bucket {bucket} in the local store: {}", error.message)))
        }
    }
}
