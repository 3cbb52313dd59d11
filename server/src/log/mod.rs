//! Bucket logs: the on-disk batch format, segments with their indexes, and the per-bucket log
//! with group commit, recovery, retention and reads.
//!
//! The rest of the node sees only this module's API: a [`BucketLog`] to append record batches
//! to (`append_unconfirmed`, then `wait_durable` before acknowledging) and to read entries from
//! (`read`: verbatim or pruned to columns, CRC-checked or from the tail cache of recent appends; `read_decoded`: record batches). The
//! byte layout of an entry (`format`), the segment files (`segment`) and the Arrow IPC encoding
//! and pruning (`ipc`) stay private to it. The clock and the compression come in as values.

mod bucket;
mod cut;
mod format;
mod ipc;
mod read;
mod recovery_point;
mod segment;
mod tail_cache;

pub use bucket::{record_count, Appended, BatchIdentity, BucketLog, LogSettings, ReadersClosed, RecoveryReport, SegmentPolicy};
pub use ipc::{decode, encoded_as_sent, BatchEncoder, Compression, EncodedBatch};
pub use read::{MessageBody, ReadProjection};
pub use tail_cache::TailCache;

#[cfg(test)]
mod tests;
