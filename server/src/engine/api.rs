//! The engine's API: everything the Flight front door (and tests, and benchmarks) may use.
//!
//! It speaks the contract's request types and a few engine types, never gRPC. Reads and writes
//! go through opaque handles: a [`TableWriter`] per DoPut stream, a [`ScanStream`] or
//! [`SnapshotStream`] per scan, a [`Lookup`] per lookup ticket or DoExchange stream. Batches
//! that leave the engine are already encoded Arrow IPC messages ([`IpcMessage`]), so the front
//! door frames bytes and never encodes on an async worker.
//!
//! Blocking: the catalog methods (`create_*`, `drop_*`, `alter_table`) write and fsync files
//! and may delete data; callers run them off the async workers (`tokio::task::spawn_blocking`).
//! Everything `async` here keeps its blocking work on the blocking pool itself.

use crate::error::Result;
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use bytes::Bytes;
use futures::future::BoxFuture;
use std::sync::Arc;
use strom_flight_api::{
    AlterTable, BucketOffset, CountRequest, CreateDatabase, CreatePartition, CreateTable, DropDatabase, DropPartition, DropTable, Health,
    ListOffsets, LogScan, LookupRequest, PartitionInfo, PutAck, SnapshotScan, TableInfo, WriteCommand,
};
use tokio::sync::mpsc;

pub use crate::log::{BatchIdentity, MessageBody};

/// What the Flight front door needs from storage.
#[async_trait::async_trait]
pub trait StorageEngine: Send + Sync + 'static {
    fn health(&self) -> Health;
    fn create_database(&self, req: &CreateDatabase) -> Result<bool>;
    fn drop_database(&self, req: &DropDatabase) -> Result<bool>;
    fn list_databases(&self) -> Vec<String>;
    fn create_table(&self, req: &CreateTable) -> Result<TableInfo>;
    fn drop_table(&self, req: &DropTable) -> Result<bool>;
    fn get_table(&self, database: &str, table: &str) -> Result<TableInfo>;
    fn list_tables(&self, database: &str) -> Result<Vec<String>>;
    fn all_tables(&self) -> Vec<TableInfo>;
    fn alter_table(&self, req: &AlterTable) -> Result<TableInfo>;
    /// Returns whether the partition was created.
    fn create_partition(&self, req: &CreatePartition) -> Result<bool>;
    /// Returns whether the partition existed.
    fn drop_partition(&self, req: &DropPartition) -> Result<bool>;
    fn list_partitions(&self, database: &str, table: &str) -> Result<Vec<PartitionInfo>>;
    fn list_offsets(&self, req: &ListOffsets) -> Result<Vec<BucketOffset>>;
    /// What log scans of the table return (a primary-key table's changelog).
    fn table_schema(&self, database: &str, table: &str) -> Result<SchemaRef>;
    /// Per partition and bucket: records and bytes stored.
    fn bucket_totals(&self, database: &str, table: &str) -> Result<Vec<BucketTotal>>;
    /// A writer for one stream of batches. `from_path_descriptor`: the stream named its table
    /// by path only, which appends to a log table and upserts full rows into a primary-key one.
    fn open_writer(&self, command: &WriteCommand, from_path_descriptor: bool) -> Result<Box<dyn TableWriter>>;
    fn scan(&self, req: &LogScan) -> Result<ScanStream>;
    fn snapshot_scan(&self, req: &SnapshotScan) -> Result<SnapshotStream>;
    /// Resolves a lookup (its `keys` are ignored: they arrive with `Lookup::lookup`).
    fn open_lookup(&self, req: &LookupRequest) -> Result<Arc<dyn Lookup>>;
    async fn count(&self, req: &CountRequest) -> Result<u64>;
}

/// The write side of one stream: batches are written in call order.
#[async_trait::async_trait]
pub trait TableWriter: Send + Sync {
    /// `database.table`, for logs and messages.
    fn table_path(&self) -> &str;
    /// Checks the schema a stream declares before any data arrives, so a mismatch fails fast.
    fn check_schema(&self, schema: &SchemaRef) -> Result<()>;
    /// Writes one batch into the page cache (of `id`'s writer, when idempotent); the returned
    /// ack resolves once the batch is durable under the table's mode (and, for primary-key
    /// tables, applied to the KV store).
    async fn write(&self, batch: RecordBatch, id: Option<BatchIdentity>) -> Result<PendingAck>;
    /// `write`, given also the record-batch message `batch` was decoded from: where the table
    /// can store that message as it is (a log table with the same body compression, the batch
    /// whole in one bucket), it is stored instead of the batch being encoded again.
    async fn write_as_sent(&self, batch: RecordBatch, sent: IpcMessage, id: Option<BatchIdentity>) -> Result<PendingAck> {
        let _ = sent;
        self.write(batch, id).await
    }
}

/// A written batch whose acknowledgement waits for durability.
pub struct PendingAck(BoxFuture<'static, Result<PutAck>>);

impl PendingAck {
    pub fn new(wait: impl std::future::Future<Output = Result<PutAck>> + Send + 'static) -> Self {
        Self(Box::pin(wait))
    }

    /// An ack that is already durable.
    pub fn ready(ack: PutAck) -> Self {
        Self::new(std::future::ready(Ok(ack)))
    }

    /// Resolves once the batch is durable.
    pub async fn durable(self) -> Result<PutAck> {
        self.0.await
    }
}

/// One Arrow IPC record-batch message: the flatbuffer header and the body, ready to be framed
/// as FlightData (`data_header`, `data_body`). The body may be several byte ranges (a projected
/// stored batch), sent one after the other without being copied together.
#[derive(Debug, Clone)]
pub struct IpcMessage {
    pub header: Bytes,
    pub body: MessageBody,
}

impl IpcMessage {
    /// Encodes `batch` uncompressed (results the engine computes: lookups, snapshots, counts).
    pub fn encode(batch: &RecordBatch) -> Result<Self> {
        let encoded = crate::log::BatchEncoder::new(crate::log::Compression::None)?.encode(batch)?;
        Ok(Self { header: Bytes::from(encoded.meta), body: encoded.body.into() })
    }

    /// Decodes the message with `schema` (tests and tools; the node serves bytes as they are).
    pub fn decode(&self, schema: &SchemaRef) -> Result<RecordBatch> {
        crate::log::decode(&self.header, self.body.clone().into_contiguous(), schema)
    }
}

/// Records and bytes stored in one bucket (of one partition).
#[derive(Debug, Clone, PartialEq)]
pub struct BucketTotal {
    pub partition: Option<String>,
    pub bucket: u32,
    pub records: u64,
    pub bytes: u64,
}

/// One encoded record batch of a log scan.
#[derive(Debug, Clone)]
pub struct ScanChunk {
    pub bucket: u32,
    /// The partition the bucket belongs to (partitioned tables).
    pub partition: Option<String>,
    pub base_offset: u64,
    pub high_watermark: u64,
    pub rows: u64,
    pub message: IpcMessage,
    /// The offset after the stored batch, when some of its records were left out of the
    /// message (`keys_upto`).
    pub end_offset: Option<u64>,
}

/// A running log scan: batches arrive as the bucket readers produce them (bounded, so a slow
/// client slows the readers instead of buffering the table).
pub struct ScanStream {
    pub schema: SchemaRef,
    pub chunks: mpsc::Receiver<Result<ScanChunk>>,
}

/// One encoded batch of a snapshot scan.
#[derive(Debug, Clone)]
pub struct SnapshotChunk {
    pub bucket: u32,
    pub partition: Option<String>,
    /// The bucket's log offset the snapshot reflects (its changelog continues from there).
    pub log_offset: u64,
    pub rows: u64,
    pub message: IpcMessage,
}

/// A running snapshot scan of a primary-key table.
pub struct SnapshotStream {
    pub schema: SchemaRef,
    pub chunks: mpsc::Receiver<Result<SnapshotChunk>>,
}

/// A lookup resolved against its table, for one ticket or one DoExchange stream.
#[async_trait::async_trait]
pub trait Lookup: Send + Sync {
    /// `database.table`, for logs and messages.
    fn table_path(&self) -> &str;
    /// The schema of answers (`_key_index` first when `with_key_index`).
    fn result_schema(&self, with_key_index: bool) -> SchemaRef;
    /// Checks the schema of the key batches a stream declares, before any keys arrive.
    fn check_key_schema(&self, schema: &SchemaRef) -> Result<()>;
    /// The JSON keys of a lookup ticket as a key batch.
    fn keys_from_json(&self, keys: &[Vec<serde_json::Value>]) -> Result<RecordBatch>;
    /// Answers one key batch (columns by name, lenient types): the rows found, in request
    /// order, encoded; with `insert_if_not_exists`, missing keys are inserted durably first.
    async fn lookup(&self, keys: RecordBatch, with_key_index: bool) -> Result<LookupAnswer>;
}

/// The answer to one key batch.
#[derive(Debug, Clone)]
pub struct LookupAnswer {
    pub rows: usize,
    pub message: IpcMessage,
}
