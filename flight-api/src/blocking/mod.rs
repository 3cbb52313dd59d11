//! A blocking facade over the async client for callers without a tokio runtime: JNI, Python
//! bindings, plain threads.
//!
//! [`StromClient`] owns a small multi-thread tokio runtime (threads `strom-client-N`) on
//! which the connection and every background task run. Its methods block the calling thread
//! until the answer is there and can be called from any thread, by many threads at once:
//!
//! * a plain `std::thread`: the call runs on that thread with the facade's runtime driving
//!   the IO (no extra hop);
//! * a thread inside another tokio runtime (async code calling the facade): the call runs as
//!   a task of the facade's runtime while the calling thread waits on a channel. This does
//!   not panic, but it **blocks that runtime's worker** for the duration of the call; async
//!   code should use [`crate::StromClient`] instead.
//!
//! Everything is `Send + Sync`; the client is cheap to clone (clones share the connection
//! and the runtime). The runtime stops when the last client clone *and* the last handle
//! opened from it (writer, lookuper, scan iterator, ack) are dropped; dropping inside another
//! runtime's task is fine too (the workers then stop in the background).
//!
//! ```no_run
//! # fn demo() -> strom_flight_api::Result<()> {
//! use strom_flight_api::blocking::StromClient;
//! use strom_flight_api::LogScan;
//! let client = StromClient::connect("grpc://127.0.0.1:9123")?;
//! let mut rows = 0;
//! for batch in client.scan_log(LogScan { database: "db".into(), table: "t".into(), ..Default::default() })? {
//!     rows += batch?.batch.num_rows();
//! }
//! # let _ = rows; Ok(()) }
//! ```

mod handles;
#[cfg(test)]
mod mock_tests;
mod pending;
mod runtime;

use std::future::Future;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_flight::{FlightInfo, Ticket};
use arrow_schema::SchemaRef;
use serde::de::DeserializeOwned;
use serde::Serialize;

use self::runtime::ClientRuntime;
use crate::client::{ClientOptions, LookupOptions, Snapshot, WriterOptions};
use crate::contract::{
    AlterTable, BucketOffset, CountRequest, CreateDatabase, CreatePartition, CreateTable, DropDatabase, DropPartition, DropTable, Health,
    ListOffsets, LogScan, LookupRequest, PartitionInfo, SnapshotScan, TableInfo, TableRef, TableStats, WriteKind,
};
use crate::error::Result;

pub use handles::{LogScanIter, Lookuper, ScanIter, SnapshotScanIter, Writer};
pub use pending::{AckHandle, LookupHandle};

/// How the blocking client connects and how big its runtime is.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Connection settings shared with the async client.
    pub client: ClientOptions,
    /// Worker threads of the facade's runtime. They only move bytes and decode; two serve a
    /// node at full speed on the machines Strom targets, and each facade adds its own.
    pub worker_threads: usize,
    /// Decoded batches a scan iterator reads ahead of its consumer.
    pub scan_buffer: usize,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self { client: ClientOptions::default(), worker_threads: 2, scan_buffer: 4 }
    }
}

/// A blocking connection to one Strom node; see the module documentation for the threading
/// rules. Cheap to clone.
#[derive(Clone, Debug)]
pub struct StromClient {
    /// Declared before `runtime` so the connection is dropped while the runtime still runs.
    inner: crate::StromClient,
    runtime: Arc<ClientRuntime>,
    scan_buffer: usize,
}

impl StromClient {
    /// Starts the facade's runtime, connects to `grpc://host:port` (or `http://host:port`,
    /// `host:port`) and checks the contract version: fails with `UNAVAILABLE` when the node
    /// cannot be reached and `FAILED_PRECONDITION` when it speaks another contract version.
    pub fn connect(endpoint: &str) -> Result<StromClient> {
        Self::connect_with(endpoint, &ConnectOptions::default())
    }

    /// [`StromClient::connect`] with options.
    pub fn connect_with(endpoint: &str, options: &ConnectOptions) -> Result<StromClient> {
        let runtime = Arc::new(ClientRuntime::start(options.worker_threads)?);
        let (handle, endpoint, client_options) = (runtime.handle().clone(), endpoint.to_string(), options.client.clone());
        let inner = runtime.call(async move { crate::StromClient::connect_on(&handle, &endpoint, &client_options).await })?;
        Ok(StromClient { inner, runtime, scan_buffer: options.scan_buffer })
    }

    /// The async client underneath, for code that wants both (its tasks run on this facade's
    /// runtime). Keep this facade alive while using it: the runtime stops with the last
    /// facade handle.
    pub fn as_async(&self) -> &crate::StromClient {
        &self.inner
    }

    /// The `http://host:port` URI this client talks to.
    pub fn endpoint(&self) -> &str {
        self.inner.endpoint()
    }

    /// The node's build version, as its handshake reported it.
    pub fn server_version(&self) -> &str {
        self.inner.server_version()
    }

    /// Runs one async client call on the facade's runtime and blocks for its result.
    fn run<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: FnOnce(crate::StromClient) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        self.runtime.call(call(self.inner.clone()))
    }

    // --- catalog and metadata -------------------------------------------------------------

    /// `health`: liveness and version of the node.
    pub fn health(&self) -> Result<Health> {
        self.run(|c| async move { c.health().await })
    }

    /// `table_stats`: what the node's scans of one table sent since it started.
    pub fn table_stats(&self, database: &str, table: &str) -> Result<TableStats> {
        let table = TableRef { database: database.into(), table: table.into() };
        self.run(|c| async move { c.table_stats(table).await })
    }

    /// `create_database`; whether it was created (false: it existed and `if_not_exists`).
    pub fn create_database(&self, request: CreateDatabase) -> Result<bool> {
        self.run(|c| async move { c.create_database(request).await })
    }

    /// `drop_database`; whether it was dropped (false: absent and `if_exists`).
    pub fn drop_database(&self, request: DropDatabase) -> Result<bool> {
        self.run(|c| async move { c.drop_database(request).await })
    }

    /// `list_databases`.
    pub fn list_databases(&self) -> Result<Vec<String>> {
        self.run(|c| async move { c.list_databases().await })
    }

    /// `create_table`; the table as stored, with every default filled in.
    pub fn create_table(&self, request: CreateTable) -> Result<TableInfo> {
        self.run(|c| async move { c.create_table(request).await })
    }

    /// `drop_table`; whether it was dropped (false: absent and `if_exists`).
    pub fn drop_table(&self, request: DropTable) -> Result<bool> {
        self.run(|c| async move { c.drop_table(request).await })
    }

    /// `get_table`.
    pub fn get_table(&self, database: &str, table: &str) -> Result<TableInfo> {
        let (database, table) = (database.to_string(), table.to_string());
        self.run(|c| async move { c.get_table(&database, &table).await })
    }

    /// `list_tables`.
    pub fn list_tables(&self, database: &str) -> Result<Vec<String>> {
        let database = database.to_string();
        self.run(|c| async move { c.list_tables(&database).await })
    }

    /// `alter_table`; the table after the change.
    pub fn alter_table(&self, request: AlterTable) -> Result<TableInfo> {
        self.run(|c| async move { c.alter_table(request).await })
    }

    /// `create_partition`; whether it was created.
    pub fn create_partition(&self, request: CreatePartition) -> Result<bool> {
        self.run(|c| async move { c.create_partition(request).await })
    }

    /// `drop_partition`; whether it was dropped.
    pub fn drop_partition(&self, request: DropPartition) -> Result<bool> {
        self.run(|c| async move { c.drop_partition(request).await })
    }

    /// `list_partitions`, in name order.
    pub fn list_partitions(&self, database: &str, table: &str) -> Result<Vec<PartitionInfo>> {
        let (database, table) = (database.to_string(), table.to_string());
        self.run(|c| async move { c.list_partitions(&database, &table).await })
    }

    /// `list_offsets`: earliest, latest or first offset at a timestamp, per bucket.
    pub fn list_offsets(&self, request: ListOffsets) -> Result<Vec<BucketOffset>> {
        self.run(|c| async move { c.list_offsets(request).await })
    }

    /// `GetSchema` of `db.table`.
    pub fn get_schema(&self, database: &str, table: &str) -> Result<SchemaRef> {
        let (database, table) = (database.to_string(), table.to_string());
        self.run(|c| async move { c.get_schema(&database, &table).await })
    }

    /// `GetFlightInfo` of `db.table`: schema, one endpoint per bucket, totals.
    pub fn get_flight_info(&self, database: &str, table: &str) -> Result<FlightInfo> {
        let (database, table) = (database.to_string(), table.to_string());
        self.run(|c| async move { c.get_flight_info(&database, &table).await })
    }

    /// `ListFlights`: one FlightInfo per table.
    pub fn list_flights(&self) -> Result<Vec<FlightInfo>> {
        self.run(|c| async move { c.list_flights().await })
    }

    /// Any action with a typed body and answer (for actions newer than this facade).
    pub fn do_action_json<B: Serialize, R: DeserializeOwned + Send + 'static>(&self, action_type: &str, body: &B) -> Result<R> {
        let (action_type, body) = (action_type.to_string(), serde_json::to_value(body)?);
        self.run(|c| async move { c.do_action_json(&action_type, &body).await })
    }

    // --- reads ----------------------------------------------------------------------------

    /// Starts a log scan (or changelog scan of a primary-key table). Errors of the request
    /// itself (unknown table, bad bucket) are returned here; errors later in the stream come
    /// as an item of the iterator, which then ends.
    pub fn scan_log(&self, scan: LogScan) -> Result<LogScanIter> {
        let stream = self.run(|c| async move { c.scan_log(scan).await })?;
        Ok(ScanIter::start(stream, self.runtime.clone(), self.scan_buffer))
    }

    /// Runs any log-scan ticket, e.g. one of a `GetFlightInfo` endpoint.
    pub fn scan_ticket(&self, ticket: Ticket) -> Result<LogScanIter> {
        let stream = self.run(|c| async move { c.scan_ticket(ticket).await })?;
        Ok(ScanIter::start(stream, self.runtime.clone(), self.scan_buffer))
    }

    /// Reads a bounded log scan to the end.
    pub fn collect_log(&self, scan: LogScan) -> Result<Vec<crate::ScanBatch>> {
        self.run(|c| async move { c.collect_log(scan).await })
    }

    /// Starts a snapshot scan of a primary-key table: its current rows from one consistent
    /// snapshot, each batch with its bucket's changelog offset.
    pub fn scan_snapshot(&self, scan: SnapshotScan) -> Result<SnapshotScanIter> {
        let stream = self.run(|c| async move { c.scan_snapshot(scan).await })?;
        Ok(ScanIter::start(stream, self.runtime.clone(), self.scan_buffer))
    }

    /// Reads a whole snapshot scan: rows and per-bucket changelog offsets.
    pub fn collect_snapshot(&self, scan: SnapshotScan) -> Result<Snapshot> {
        self.run(|c| async move { c.collect_snapshot(scan).await })
    }

    /// Records of a table (`CountKind::Log`) or current rows of a primary-key table
    /// (`CountKind::Rows`).
    pub fn count(&self, request: CountRequest) -> Result<u64> {
        self.run(|c| async move { c.count(request).await })
    }

    /// A one-shot lookup with JSON keys; the rows found, in key order.
    pub fn lookup_json(&self, request: LookupRequest) -> Result<Vec<RecordBatch>> {
        self.run(|c| async move { c.lookup_json(request).await })
    }

    // --- writers and lookupers --------------------------------------------------------------

    /// An idempotent append writer on a log table.
    pub fn append_writer(&self, database: &str, table: &str, options: WriterOptions) -> Writer {
        self.table_writer(database, table, WriteKind::Append, None, options)
    }

    /// An idempotent upsert writer on a primary-key table: full rows when `target_columns` is
    /// `None`, else a partial update of those columns.
    pub fn upsert_writer(&self, database: &str, table: &str, target_columns: Option<Vec<String>>, options: WriterOptions) -> Writer {
        self.table_writer(database, table, WriteKind::Upsert, target_columns, options)
    }

    /// An idempotent delete writer on a primary-key table (batches hold the key columns).
    pub fn delete_writer(&self, database: &str, table: &str, options: WriterOptions) -> Writer {
        self.table_writer(database, table, WriteKind::Delete, None, options)
    }

    /// A writer of any kind; nothing is sent until the first batch.
    pub fn table_writer(
        &self,
        database: &str,
        table: &str,
        kind: WriteKind,
        target_columns: Option<Vec<String>>,
        options: WriterOptions,
    ) -> Writer {
        // Opening spawns the writer's task onto the client's runtime (never the caller's), so
        // this is safe on any thread and needs no blocking.
        Writer::new(self.inner.table_writer(database, table, kind, target_columns, options), self.runtime.clone())
    }

    /// A point lookuper: key batches hold the primary-key columns.
    pub fn lookuper(&self, database: &str, table: &str, options: LookupOptions) -> Lookuper {
        Lookuper::new(self.inner.lookuper(database, table, options), self.runtime.clone())
    }

    /// A prefix lookuper: key batches hold the bucket-key columns (a strict prefix of the key).
    pub fn prefix_lookuper(&self, database: &str, table: &str, options: LookupOptions) -> Lookuper {
        Lookuper::new(self.inner.prefix_lookuper(database, table, options), self.runtime.clone())
    }
}
