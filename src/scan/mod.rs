//! The two scans that feed the diff: the local tree and the bucket listing.
//!
//! Both yield keys relative to the target prefix in S3's listing order (UTF-8 bytes), in batches
//! over bounded channels, so they run at the same time and the slower one paces the other.

mod listing;
pub mod local;
mod prefetch;
pub mod s3;
