//! The typed writers: [`AppendWriter`] for log tables, [`UpsertWriter`] (full rows or a
//! partial update of target columns) and [`DeleteWriter`] for primary-key tables.
//!
//! Each is a [`TableWriter`] of one kind, so all of them pipeline, retry and deduplicate the
//! same way (see `writer.rs`); the types only keep an append from being sent through an
//! upsert writer by mistake and name the operation at the call site.

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use super::writer::{AckFuture, TableWriter, WriterOptions};
use super::StromClient;
use crate::contract::{PutAck, WriteKind};
use crate::error::Result;

/// The methods every typed writer forwards to its [`TableWriter`].
macro_rules! forward_common {
    ($writer:ident) => {
        impl $writer {
            /// The writer id sent with every stream (for resuming or for inspecting the log).
            pub fn writer_id(&self) -> i64 {
                self.inner.writer_id()
            }

            /// The schema of the first batch, which every later batch must have.
            pub fn schema(&self) -> Option<&SchemaRef> {
                self.inner.schema()
            }

            /// Waits until every batch sent so far is acknowledged or failed. Returns the first
            /// failure since the previous flush, so fire-and-forget callers still learn about it.
            pub async fn flush(&mut self) -> Result<()> {
                self.inner.flush().await
            }

            /// Flushes, ends the stream and waits for the node to close it. Dropping a writer
            /// instead abandons unacknowledged batches (they may or may not be written).
            pub async fn close(self) -> Result<()> {
                self.inner.close().await
            }

            /// The untyped writer underneath.
            pub fn into_inner(self) -> TableWriter {
                self.inner
            }
        }
    };
}

/// Appends record batches to a log table. See [`TableWriter`] for pipelining and retries.
#[derive(Debug)]
pub struct AppendWriter {
    inner: TableWriter,
}

impl AppendWriter {
    /// Sends a batch and waits until it is durable.
    pub async fn append(&mut self, batch: RecordBatch) -> Result<PutAck> {
        self.inner.write(batch).await
    }

    /// Sends a batch without waiting for its ack (waits only for an in-flight slot).
    pub async fn append_unconfirmed(&mut self, batch: RecordBatch) -> Result<AckFuture> {
        self.inner.write_unconfirmed(batch).await
    }
}

forward_common!(AppendWriter);

/// Upserts rows of a primary-key table: full rows, or (with target columns) a partial update
/// whose batches hold the primary-key columns and exactly the target columns; the other
/// columns keep their stored values. Acks count the change records written.
#[derive(Debug)]
pub struct UpsertWriter {
    inner: TableWriter,
}

impl UpsertWriter {
    /// Upserts a batch and waits until its changes are durable.
    pub async fn upsert(&mut self, batch: RecordBatch) -> Result<PutAck> {
        self.inner.write(batch).await
    }

    /// Upserts a batch without waiting for its ack (waits only for an in-flight slot).
    pub async fn upsert_unconfirmed(&mut self, batch: RecordBatch) -> Result<AckFuture> {
        self.inner.write_unconfirmed(batch).await
    }

    /// The columns this writer updates; `None` for full rows.
    pub fn target_columns(&self) -> Option<&[String]> {
        self.inner.target_columns()
    }
}

forward_common!(UpsertWriter);

/// Deletes rows of a primary-key table by key: batches hold the primary-key columns (other
/// columns may be present and are ignored, so rows read from a changelog can be sent back).
#[derive(Debug)]
pub struct DeleteWriter {
    inner: TableWriter,
}

impl DeleteWriter {
    /// Deletes the keys of a batch and waits until the deletes are durable.
    pub async fn delete(&mut self, batch: RecordBatch) -> Result<PutAck> {
        self.inner.write(batch).await
    }

    /// Deletes the keys of a batch without waiting for the ack.
    pub async fn delete_unconfirmed(&mut self, batch: RecordBatch) -> Result<AckFuture> {
        self.inner.write_unconfirmed(batch).await
    }
}

forward_common!(DeleteWriter);

impl StromClient {
    /// Opens an idempotent append writer on a log table. Nothing is sent until the first
    /// batch (whose schema becomes the writer's schema).
    pub fn append_writer(&self, database: &str, table: &str, options: WriterOptions) -> AppendWriter {
        AppendWriter { inner: self.table_writer(database, table, WriteKind::Append, None, options) }
    }

    /// Opens an idempotent upsert writer on a primary-key table: full rows when
    /// `target_columns` is `None`, else a partial update of those columns (two writers may
    /// update disjoint columns of the same rows). A batch without a target column is refused
    /// locally with `InvalidArgument`.
    pub fn upsert_writer(&self, database: &str, table: &str, target_columns: Option<Vec<String>>, options: WriterOptions) -> UpsertWriter {
        UpsertWriter { inner: self.table_writer(database, table, WriteKind::Upsert, target_columns, options) }
    }

    /// Opens an idempotent delete writer on a primary-key table.
    pub fn delete_writer(&self, database: &str, table: &str, options: WriterOptions) -> DeleteWriter {
        DeleteWriter { inner: self.table_writer(database, table, WriteKind::Delete, None, options) }
    }
}
