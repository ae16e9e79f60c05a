//! Keys: how a file's name becomes a key ([`names`]), where keys go ([`target`]: the bucket, the
//! prefix, S3's limits), and which keys a copy of a split run owns ([`shard`]). Everything that
//! decides what a key is, and whose it is, is here.

pub mod names;
pub mod shard;
pub mod target;
