//! The S3 calls of the embedded store: each call that names a key is translated to the stored
//! name (`keys`, or `long` for a key too long for that) on the way in, and back where a response
//! names one, then delegated to s3s-fs; listings are made from the stored names (`listing`).

use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};

use super::long::Names;

/// s3s-fs behind S3's key semantics; see the module documentation.
pub struct Compliant {
    inner: s3s_fs::FileSystem,
    /// The store's root folder, where each bucket is a folder.
    root: std::path::PathBuf,
    /// Whether listings carry ETags.
    list_etags: bool,
    names: Names,
}

impl Compliant {
    pub fn new(inner: s3s_fs::FileSystem, root: &std::path::Path, list_etags: bool) -> Compliant {
        Compliant { inner, root: root.to_owned(), list_etags, names: Names::new(root) }
    }

    /// S3 refuses a write into a bucket that does not exist; s3s-fs would make the bucket's
    /// folder for it.
    async fn bucket_exists(&self, bucket: &str) -> S3Result<()> {
        match tokio::fs::metadata(self.root.join(bucket)).await {
            Ok(meta) if meta.is_dir() => Ok(()),
            _ => Err(s3_error!(NoSuchBucket)),
        }
    }

    async fn source_in(&self, source: &mut CopySource) {
        if let CopySource::Bucket { bucket, key, .. } = source {
            *key = self.names.of(bucket, key).await.into();
        }
    }
}

#[async_trait::async_trait]
impl S3 for Compliant {
    async fn create_bucket(&self, req: S3Request<CreateBucketInput>) -> S3Result<S3Response<CreateBucketOutput>> {
        self.inner.create_bucket(req).await
    }

    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        self.inner.head_bucket(req).await
    }

    async fn list_buckets(&self, req: S3Request<ListBucketsInput>) -> S3Result<S3Response<ListBucketsOutput>> {
        self.inner.list_buckets(req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.inner.get_bucket_location(req).await
    }

    async fn put_object(&self, mut req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        self.bucket_exists(&req.input.bucket).await?;
        req.input.key = self.names.for_write(&req.input.bucket, &req.input.key).await?;
        self.inner.put_object(req).await
    }

    async fn get_object(&self, mut req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        req.input.key = self.names.of(&req.input.bucket, &req.input.key).await;
        self.inner.get_object(req).await
    }

    async fn head_object(&self, mut req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        req.input.key = self.names.of(&req.input.bucket, &req.input.key).await;
        self.inner.head_object(req).await
    }

    async fn copy_object(&self, mut req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
        self.bucket_exists(&req.input.bucket).await?;
        req.input.key = self.names.for_write(&req.input.bucket, &req.input.key).await?;
        self.source_in(&mut req.input.copy_source).await;
        self.inner.copy_object(req).await
    }

    async fn delete_object(&self, mut req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
        req.input.key = self.names.of(&req.input.bucket, &req.input.key).await;
        self.inner.delete_object(req).await
    }

    async fn delete_objects(
        &self,
        mut req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let mut keys = std::collections::HashMap::new();
        for object in &mut req.input.delete.objects {
            let name = self.names.of(&req.input.bucket, &object.key).await;
            keys.insert(name.clone(), std::mem::replace(&mut object.key, name));
        }
        let mut resp = self.inner.delete_objects(req).await?;
        let back = |key: &mut Option<String>| {
            if let Some(k) = key.as_ref().and_then(|name| keys.get(name)) {
                *key = Some(k.clone());
            }
        };
        resp.output.deleted.iter_mut().flatten().for_each(|d| back(&mut d.key));
        resp.output.errors.iter_mut().flatten().for_each(|e| back(&mut e.key));
        Ok(resp)
    }

    async fn create_multipart_upload(
        &self,
        mut req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.bucket_exists(&req.input.bucket).await?;
        let key = req.input.key.clone();
        req.input.key = self.names.for_write(&req.input.bucket, &req.input.key).await?;
        let mut resp = self.inner.create_multipart_upload(req).await?;
        resp.output.key = Some(key);
        Ok(resp)
    }

    async fn upload_part(&self, mut req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        req.input.key = self.names.of(&req.input.bucket, &req.input.key).await;
        self.inner.upload_part(req).await
    }

    async fn upload_part_copy(
        &self,
        mut req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        req.input.key = self.names.of(&req.input.bucket, &req.input.key).await;
        self.source_in(&mut req.input.copy_source).await;
        self.inner.upload_part_copy(req).await
    }

    async fn list_parts(&self, mut req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        let key = req.input.key.clone();
        req.input.key = self.names.of(&req.input.bucket, &req.input.key).await;
        let mut resp = self.inner.list_parts(req).await?;
        resp.output.key = Some(key);
        Ok(resp)
    }

    async fn complete_multipart_upload(
        &self,
        mut req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let key = req.input.key.clone();
        req.input.key = self.names.for_write(&req.input.bucket, &req.input.key).await?;
        let mut resp = self.inner.complete_multipart_upload(req).await?;
        resp.output.key = Some(key);
        Ok(resp)
    }

    async fn abort_multipart_upload(
        &self,
        mut req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        req.input.key = self.names.of(&req.input.bucket, &req.input.key).await;
        self.inner.abort_multipart_upload(req).await
    }

    async fn list_objects_v2(&self, req: S3Request<ListObjectsV2Input>) -> S3Result<S3Response<ListObjectsV2Output>> {
        super::listing::list(&self.root, req.input, self.list_etags).await.map(S3Response::new)
    }
}
