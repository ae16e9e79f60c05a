//! An embedded S3-compatible store: s3s-fs served over HTTP on 127.0.0.1.
//!
//! It lets a newcomer run a real sync without an AWS account (`--local-store DIR`) and gives the
//! test suite a real S3 protocol peer. The requests travel over HTTP exactly as they would to AWS;
//! nothing in the client knows the server is in-process.
//!
//! s3s-fs 0.14.1 echoes `EncodingType=url` in listings but returns the keys raw, so a correct
//! client would decode `a%20b.txt` into `a b.txt`. [`Compliant`] wraps its `FileSystem` and
//! percent-encodes listed keys when asked, as AWS and Garage do; everything else is delegated.

use std::net::SocketAddr;
use std::path::Path;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result};
use tokio::net::TcpListener;

use crate::s3client::Connection;

/// The fixed credentials of the embedded store; they protect nothing and are not secrets.
pub const ACCESS_KEY: &str = "sitesync-local";
pub const SECRET_KEY: &str = "sitesync-local-secret";
pub const REGION: &str = "us-east-1";

/// A running store. The server stops when the runtime that started it shuts down.
#[derive(Debug, Clone)]
pub struct LocalStore {
    pub addr: SocketAddr,
}

impl LocalStore {
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How to reach this store: its endpoint, path-style, its fixed credentials and region.
    pub fn connection(&self) -> Connection {
        Connection {
            endpoint_url: Some(self.endpoint()),
            path_style: true,
            region: Some(REGION.into()),
            static_credentials: Some((ACCESS_KEY.into(), SECRET_KEY.into())),
            ..Connection::default()
        }
    }

    /// Starts serving `root` (created if missing) on a free port of 127.0.0.1.
    pub async fn start(root: &Path) -> std::io::Result<LocalStore> {
        std::fs::create_dir_all(root)?;
        let fs = s3s_fs::FileSystem::new(root).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        let service = {
            let mut b = s3s::service::S3ServiceBuilder::new(Compliant(fs));
            b.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
            b.build()
        };
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            while let Ok((socket, _)) = listener.accept().await {
                // Responses are written in pieces; with Nagle each small one waits ~40 ms for
                // the client's delayed ACK.
                let _ = socket.set_nodelay(true);
                let conn = http.serve_connection(TokioIo::new(socket), service.clone()).into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
        });
        Ok(LocalStore { addr })
    }
}

/// The characters S3 leaves alone when it url-encodes a key.
const KEY_SAFE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');

fn encode_key(key: &str) -> String {
    utf8_percent_encode(key, KEY_SAFE).to_string()
}

/// s3s-fs with S3's `EncodingType=url` behaviour for listings; every other call is delegated.
pub struct Compliant(pub s3s_fs::FileSystem);

#[async_trait::async_trait]
impl S3 for Compliant {
    async fn create_bucket(&self, req: S3Request<CreateBucketInput>) -> S3Result<S3Response<CreateBucketOutput>> {
        self.0.create_bucket(req).await
    }

    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        self.0.head_bucket(req).await
    }

    async fn list_buckets(&self, req: S3Request<ListBucketsInput>) -> S3Result<S3Response<ListBucketsOutput>> {
        self.0.list_buckets(req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.0.get_bucket_location(req).await
    }

    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        self.0.put_object(req).await
    }

    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        self.0.get_object(req).await
    }

    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        self.0.head_object(req).await
    }

    async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
        self.0.copy_object(req).await
    }

    async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.0.delete_object(req).await
    }

    async fn delete_objects(&self, req: S3Request<DeleteObjectsInput>) -> S3Result<S3Response<DeleteObjectsOutput>> {
        self.0.delete_objects(req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.0.create_multipart_upload(req).await
    }

    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        self.0.upload_part(req).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        self.0.upload_part_copy(req).await
    }

    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        self.0.list_parts(req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        self.0.complete_multipart_upload(req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.0.abort_multipart_upload(req).await
    }

    async fn list_objects_v2(&self, req: S3Request<ListObjectsV2Input>) -> S3Result<S3Response<ListObjectsV2Output>> {
        let encode = req.input.encoding_type.as_ref().is_some_and(|e| e.as_str() == EncodingType::URL);
        let mut resp = self.0.list_objects_v2(req).await?;
        if encode {
            let out = &mut resp.output;
            for object in out.contents.iter_mut().flatten() {
                object.key = object.key.as_deref().map(encode_key);
            }
            for common in out.common_prefixes.iter_mut().flatten() {
                common.prefix = common.prefix.as_deref().map(encode_key);
            }
            out.prefix = out.prefix.as_deref().map(encode_key);
            out.start_after = out.start_after.as_deref().map(encode_key);
            out.delimiter = out.delimiter.as_deref().map(encode_key);
        }
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_encoded_like_s3() {
        assert_eq!(super::encode_key("a b+c%/é?#.txt"), "a%20b%2Bc%25/%C3%A9%3F%23.txt");
    }
}
