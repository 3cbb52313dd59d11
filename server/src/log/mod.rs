//! Bucket logs: the on-disk batch format, segments with their indexes, and the per-bucket log
//! with group commit, recovery and retention.

pub mod bucket;
pub mod format;
pub mod ipc;
pub mod segment;
