//! The storage engine of one node: implements [`StorageEngine`] over the table registry, the
//! write path, scans, snapshot scans and lookups, and runs the background tasks.

use super::api::{BucketTotal, Lookup, ScanStream, SnapshotStream, StorageEngine, TableWriter};
use super::lookup::EngineLookup;
use super::registry::{AutoPartitionReport, Registry, TableHandle};
use super::table::stored_schema;
use super::writer::EngineWriter;
use super::{background, scan, snapshot};
use crate::clock::{system_clock, Clock};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::fs::{FileSystem, RealFs};
use arrow_schema::SchemaRef;
use std::sync::Arc;
use std::time::Instant;
use strom_flight_api::{
    AlterTable, BucketOffset, CountKind, CountRequest, CreateDatabase, CreatePartition, CreateTable, DropDatabase, DropPartition,
    DropTable, Health, ListOffsets, LogScan, LookupRequest, OffsetSpec, PartitionInfo, SnapshotScan, TableInfo, TailCacheHealth,
    WriteCommand,
};

pub struct Engine {
    registry: Arc<Registry>,
    started: Instant,
}

impl Engine {
    fn scan_sizes(&self) -> scan::ScanSizes {
        let log = &self.registry.config.log;
        scan::ScanSizes { read_bytes: log.scan_read_bytes, message_bytes: log.scan_message_bytes }
    }

    /// Opens the data directory: the catalog, then every table's logs (recovering them).
    /// Blocking.
    pub fn open(config: Config) -> Result<Arc<Self>> {
        Self::open_with_clock(config, system_clock())
    }

    /// Opens with an injected clock (tests move time by days).
    pub fn open_with_clock(config: Config, clock: Clock) -> Result<Arc<Self>> {
        Self::open_on(config, clock, Arc::new(RealFs::new()))
    }

    /// Opens with an injected clock and file system (power-loss tests use a fault-injecting
    /// one: `crate::fs::FaultFs`).
    pub fn open_on(config: Config, clock: Clock, fs: Arc<dyn FileSystem>) -> Result<Arc<Self>> {
        Ok(Arc::new(Self { registry: Arc::new(Registry::open(config, clock, fs)?), started: Instant::now() }))
    }

    /// Starts the os-mode flusher, retention, the auto-partition check and the idle KV flush;
    /// they stop when `shutdown` changes.
    pub fn spawn_background(&self, shutdown: tokio::sync::watch::Receiver<bool>) {
        background::spawn(self.registry.clone(), shutdown);
    }

    /// fsyncs every bucket with unsynced writes and applies durable KV changes (shutdown).
    pub async fn sync_all(&self) -> Result<()> {
        self.registry.sync_all().await
    }

    /// Persists the KV store's applied state (shutdown), so the next start replays little.
    pub async fn flush_kv(&self) -> Result<()> {
        let Some(kv) = self.registry.open_kv() else { return Ok(()) };
        tokio::task::spawn_blocking(move || kv.flush()).await.map_err(|e| Error::Internal(format!("KV flush task failed: {e}")))?
    }

    /// Ends every tailing reader (graceful shutdown), so running requests can finish.
    pub fn close_readers(&self) {
        self.registry.close_readers();
    }

    /// Deletes expired segments everywhere (what the retention task runs); returns how many.
    /// Blocking.
    pub fn apply_retention(&self, now_ms: i64) -> usize {
        let (deleted, failures) = self.registry.apply_retention(now_ms);
        for (table, e) in failures {
            self.registry.failures.record(super::health::RETENTION, Some(&table), &e, now_ms);
        }
        deleted
    }

    /// Runs the auto-partition check at the clock's time (what the background task runs).
    /// Blocking.
    pub fn check_auto_partitions(&self) -> AutoPartitionReport {
        let (report, failures) = self.registry.check_auto_partitions();
        for (table, e) in failures {
            self.registry.failures.record(super::health::AUTO_PARTITION, Some(&table), &e, (self.registry.clock)());
        }
        report
    }
}

#[async_trait::async_trait]
impl StorageEngine for Engine {
    fn health(&self) -> Health {
        let background_failures = self.registry.failures.list();
        Health {
            status: if background_failures.is_empty() { "ok" } else { "degraded" }.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            kv_block_cache_bytes: self.registry.config.kv.block_cache_bytes.resolve() as u64,
            tail_cache: {
                let s = self.registry.tail_cache.stats();
                TailCacheHealth { budget_bytes: s.budget_bytes, held_bytes: s.held_bytes, hits: s.hits, misses: s.misses }
            },
            background_failures,
        }
    }

    fn create_database(&self, req: &CreateDatabase) -> Result<bool> {
        self.registry.catalog.create_database(req)
    }

    fn drop_database(&self, req: &DropDatabase) -> Result<bool> {
        self.registry.drop_database(req)
    }

    fn list_databases(&self) -> Vec<String> {
        self.registry.catalog.list_databases()
    }

    fn create_table(&self, req: &CreateTable) -> Result<TableInfo> {
        self.registry.create_table(req)
    }

    fn drop_table(&self, req: &DropTable) -> Result<bool> {
        self.registry.drop_table(req)
    }

    fn get_table(&self, database: &str, table: &str) -> Result<TableInfo> {
        Ok(self.registry.catalog.get_table(database, table)?.info())
    }

    fn list_tables(&self, database: &str) -> Result<Vec<String>> {
        self.registry.catalog.list_tables(database)
    }

    fn all_tables(&self) -> Vec<TableInfo> {
        self.registry.catalog.all_tables().iter().map(|t| t.info()).collect()
    }

    fn alter_table(&self, req: &AlterTable) -> Result<TableInfo> {
        self.registry.alter_table(req)
    }

    fn create_partition(&self, req: &CreatePartition) -> Result<bool> {
        self.registry.create_partition(&req.database, &req.table, &req.partition, req.if_not_exists)
    }

    fn drop_partition(&self, req: &DropPartition) -> Result<bool> {
        self.registry.drop_partition(&req.database, &req.table, &req.partition, req.if_exists)
    }

    fn list_partitions(&self, database: &str, table: &str) -> Result<Vec<PartitionInfo>> {
        let meta = self.registry.catalog.get_table(database, table)?;
        if !meta.is_partitioned() {
            return Err(Error::invalid(format!("table {database}.{table} is not partitioned")));
        }
        Ok(meta
            .partitions
            .values()
            .map(|p| PartitionInfo {
                name: p.name.clone(),
                partition_id: p.partition_id,
                values: meta.partition_keys.iter().cloned().zip(p.values.iter().cloned()).collect(),
                created_at_ms: p.created_at_ms,
            })
            .collect())
    }

    fn list_offsets(&self, req: &ListOffsets) -> Result<Vec<BucketOffset>> {
        let mut out = Vec::new();
        for table in self.registry.targets(&req.database, &req.table, &req.partition)? {
            let partition = table.meta().partition.clone();
            for b in table.requested_buckets(&req.buckets)? {
                let log = table.bucket(b)?;
                let offset = match req.spec {
                    OffsetSpec::Earliest => log.log_start_offset(),
                    OffsetSpec::Latest => log.high_watermark(),
                    OffsetSpec::Timestamp { timestamp } => log.offset_for_timestamp(timestamp).max(log.log_start_offset()),
                };
                out.push(BucketOffset { bucket: b, partition: partition.clone(), offset });
            }
        }
        Ok(out)
    }

    fn table_schema(&self, database: &str, table: &str) -> Result<SchemaRef> {
        match self.registry.handle(database, table)? {
            TableHandle::Plain(t) => Ok(t.schema()),
            TableHandle::Partitioned(t) => stored_schema(&t.meta()),
        }
    }

    fn bucket_totals(&self, database: &str, table: &str) -> Result<Vec<BucketTotal>> {
        let mut out = Vec::new();
        for t in self.registry.targets(database, table, &None)? {
            let partition = t.meta().partition.clone();
            for b in &t.buckets {
                let (records, bytes) = b.totals();
                out.push(BucketTotal { partition: partition.clone(), bucket: b.bucket, records, bytes });
            }
        }
        Ok(out)
    }

    fn open_writer(&self, command: &WriteCommand, from_path_descriptor: bool) -> Result<Box<dyn TableWriter>> {
        Ok(Box::new(EngineWriter::open(self.registry.clone(), command, from_path_descriptor)?))
    }

    fn scan(&self, req: &LogScan) -> Result<ScanStream> {
        scan::start(self.registry.handle(&req.database, &req.table)?, req, self.scan_sizes())
    }

    fn snapshot_scan(&self, req: &SnapshotScan) -> Result<SnapshotStream> {
        snapshot::start(&self.registry, req)
    }

    fn open_lookup(&self, req: &LookupRequest) -> Result<Arc<dyn Lookup>> {
        Ok(Arc::new(EngineLookup::open(self.registry.handle(&req.database, &req.table)?, req)?))
    }

    async fn count(&self, req: &CountRequest) -> Result<u64> {
        let mut total = 0;
        for table in self.registry.targets(&req.database, &req.table, &req.partition)? {
            let buckets = table.requested_buckets(&req.buckets)?;
            total += match (req.kind, table.pk()) {
                // Counting rows walks the KV store: the blocking pool.
                (CountKind::Rows, Some(pk)) => tokio::task::spawn_blocking(move || super::pk::read::count_rows(&pk, &buckets))
                    .await
                    .map_err(|e| Error::Internal(format!("count task failed: {e}")))??,
                _ => buckets.into_iter().map(|b| table.buckets[b as usize].totals().0).sum(),
            };
        }
        Ok(total)
    }
}
