//! The storage engine behind the Flight front door: catalog operations, appends, scans,
//! offsets, and the background tasks (os-mode flusher, retention).
//!
//! `StorageEngine` is the narrow interface the Flight layer calls; it speaks the contract's
//! request types and engine types, never gRPC.

pub mod partitioned;
pub mod pk;
pub mod scan;
pub mod table;
pub mod write;

use crate::catalog::{Catalog, PartitionMeta, TableDefaults, TableMeta};
use crate::config::Config;
use crate::error::{Error, IoContext, Result};
use crate::kv::store::KvStore;
use crate::log::bucket::{BatchIdentity, ReadersClosed, SegmentPolicy};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parking_lot::RwLock;
use partitioned::{AutoPartitionReport, PartitionedTable};
use pk::read::{PkLayout, PkShape, SnapshotPlan};
use pk::serve::{LookupPlan, LookupTarget, SnapshotStream};
use scan::{ScanSpec, ScanStream};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use strom_flight_api::{
    AlterTable, BucketOffset, CountKind, CountRequest, CreateDatabase, CreatePartition, CreateTable, DropDatabase, DropPartition,
    DropTable, Health, ListOffsets, LogScan, LookupRequest, OffsetSpec, PartitionInfo, SnapshotScan, TableInfo, CHANGE_TYPE_COLUMN,
};
use table::{PendingAck, TableRuntime, WriteOp};

/// What the Flight front door needs from storage.
#[tonic::async_trait]
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
    fn table_schema(&self, database: &str, table: &str) -> Result<SchemaRef>;
    /// Per partition and bucket: records and bytes stored.
    fn bucket_totals(&self, database: &str, table: &str) -> Result<Vec<BucketTotal>>;
    /// Resolves a table for a stream of writes.
    fn table(&self, database: &str, table: &str) -> Result<TableHandle>;
    /// Writes a batch (to `partition` when named: every row must belong to it); the returned
    /// ack resolves once it is durable.
    async fn write(
        &self,
        table: &TableHandle,
        batch: RecordBatch,
        op: WriteOp,
        id: Option<BatchIdentity>,
        partition: Option<&str>,
    ) -> Result<PendingAck>;
    fn scan(&self, req: &LogScan) -> Result<ScanStream>;
    fn snapshot_scan(&self, req: &SnapshotScan) -> Result<SnapshotStream>;
    /// Resolves a lookup (ticket or DoExchange stream) against its table.
    fn lookup_plan(&self, req: &LookupRequest) -> Result<LookupPlan>;
    async fn count(&self, req: &CountRequest) -> Result<u64>;
}

/// Records and bytes stored in one bucket (of one partition).
pub struct BucketTotal {
    pub partition: Option<String>,
    pub bucket: u32,
    pub records: u64,
    pub bytes: u64,
}

/// A table as writes see it.
#[derive(Clone)]
pub enum TableHandle {
    Plain(Arc<TableRuntime>),
    Partitioned(Arc<PartitionedTable>),
}

impl TableHandle {
    /// The runtime of a table that is not partitioned.
    pub fn into_plain(self) -> Result<Arc<TableRuntime>> {
        match self {
            TableHandle::Plain(t) => Ok(t),
            TableHandle::Partitioned(t) => Err(Error::invalid(format!("table {} is partitioned", t.meta().path()))),
        }
    }

    pub fn meta(&self) -> Arc<TableMeta> {
        match self {
            TableHandle::Plain(t) => t.meta(),
            TableHandle::Partitioned(t) => t.meta(),
        }
    }
}

/// The storage-free shape of a primary-key table (None for log tables).
pub fn pk_shape(meta: &TableMeta) -> Result<Option<PkShape>> {
    match meta.pk_spec()? {
        Some(spec) => Ok(Some(PkShape { spec, row_schema: meta.arrow_schema()? })),
        None => Ok(None),
    }
}

/// What a table's logs hold and log scans return: its rows, or a primary-key table's changelog.
fn stored_schema(meta: &TableMeta) -> Result<SchemaRef> {
    let rows = meta.arrow_schema()?;
    Ok(if meta.primary_key.is_empty() { rows } else { pk::changelog_schema(&rows) })
}

/// The engine's wall clock (ms since the epoch): injectable, so tests move time by days without
/// waiting.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

pub struct Engine {
    config: Config,
    clock: Clock,
    data_dir: PathBuf,
    catalog: Catalog,
    /// Every table runtime by id: plain tables, and each partition (under its partition id).
    tables: RwLock<HashMap<u64, Arc<TableRuntime>>>,
    /// Partitioned tables by table id.
    partitioned: RwLock<HashMap<u64, Arc<PartitionedTable>>>,
    /// Serializes partition creation (a write may create the partition another write creates).
    partition_creation: parking_lot::Mutex<()>,
    /// The node's RocksDB instance, opened with the first primary-key table (so a node with
    /// only log tables never opens RocksDB).
    kv: parking_lot::Mutex<Option<Arc<KvStore>>>,
    started: Instant,
}

impl Engine {
    /// Opens the data directory: the catalog, then every table's logs (recovering them).
    pub fn open(config: Config) -> Result<Arc<Self>> {
        Self::open_with_clock(config, Arc::new(crate::catalog::now_ms))
    }

    /// Opens with an injected clock (tests).
    pub fn open_with_clock(mut config: Config, clock: Clock) -> Result<Arc<Self>> {
        // Sized once: the KV store and `health` report the same figure for the node's life.
        if config.kv.block_cache_bytes == crate::config::CacheSize::Auto {
            let bytes = config.kv.block_cache_bytes.resolve();
            tracing::info!(block_cache_bytes = bytes, "kv.block_cache_bytes = \"auto\": a quarter of the memory limit");
            config.kv.block_cache_bytes = crate::config::CacheSize::Bytes(bytes);
        }
        let data_dir = config.storage.data_dir.clone();
        std::fs::create_dir_all(&data_dir).at(data_dir.display())?;
        let catalog = Catalog::open(&data_dir.join("catalog"))?;
        let engine = Self {
            config,
            clock,
            data_dir,
            catalog,
            tables: RwLock::new(HashMap::new()),
            partitioned: RwLock::new(HashMap::new()),
            partition_creation: parking_lot::Mutex::new(()),
            kv: parking_lot::Mutex::new(None),
            started: Instant::now(),
        };
        let metas = engine.catalog.all_tables();
        let started = Instant::now();
        for (i, meta) in metas.iter().enumerate() {
            if meta.is_partitioned() {
                let mut children = BTreeMap::new();
                for p in meta.partitions.values() {
                    children.insert(p.name.clone(), engine.open_partition(meta, p)?);
                }
                engine.partitioned.write().insert(meta.table_id, Arc::new(PartitionedTable::new(meta.clone(), children)));
            } else {
                let runtime = TableRuntime::open(meta.clone(), &engine.data_dir, engine.policy(), || engine.kv())?;
                engine.tables.write().insert(meta.table_id, Arc::new(runtime));
            }
            tracing::info!(progress = format!("{}/{}", i + 1, metas.len()), table = %meta.path(), partitions = meta.partitions.len(), "recovery");
        }
        engine.remove_orphan_table_dirs()?;
        tracing::info!(tables = metas.len(), elapsed_ms = started.elapsed().as_millis() as u64, data_dir = %engine.data_dir.display(), "storage opened");
        Ok(Arc::new(engine))
    }

    /// The KV store, opened on first use.
    fn kv(&self) -> Result<Arc<KvStore>> {
        let mut slot = self.kv.lock();
        if let Some(kv) = &*slot {
            return Ok(kv.clone());
        }
        let kv = Arc::new(KvStore::open_with(&self.data_dir.join("kv"), &self.config.kv)?);
        *slot = Some(kv.clone());
        Ok(kv)
    }

    fn policy(&self) -> SegmentPolicy {
        SegmentPolicy { segment_bytes: self.config.log.segment_bytes, segment_ms: self.config.log.segment_ms }
    }

    /// Opens one partition's runtime and registers it under its partition id.
    fn open_partition(&self, meta: &TableMeta, partition: &PartitionMeta) -> Result<Arc<TableRuntime>> {
        let view = Arc::new(meta.partition_view(partition));
        let runtime = Arc::new(TableRuntime::open(view, &self.data_dir, self.policy(), || self.kv())?);
        self.tables.write().insert(partition.partition_id, runtime.clone());
        Ok(runtime)
    }

    fn handle(&self, database: &str, table: &str) -> Result<TableHandle> {
        let meta = self.catalog.get_table(database, table)?;
        let missing = || Error::Internal(format!("table {database}.{table} has no runtime"));
        if meta.is_partitioned() {
            let t = self.partitioned.read().get(&meta.table_id).cloned();
            return t.map(TableHandle::Partitioned).ok_or_else(missing);
        }
        let t = self.tables.read().get(&meta.table_id).cloned();
        t.map(TableHandle::Plain).ok_or_else(missing)
    }

    /// The runtimes a request reaches: the table, or the named partition (or every partition
    /// when none is named) of a partitioned table.
    fn targets(&self, database: &str, table: &str, partition: &Option<String>) -> Result<Vec<Arc<TableRuntime>>> {
        match self.handle(database, table)? {
            TableHandle::Plain(t) => match partition {
                Some(_) => Err(Error::invalid(format!("table {database}.{table} is not partitioned"))),
                None => Ok(vec![t]),
            },
            TableHandle::Partitioned(t) => Ok(t.resolve(partition)?.into_iter().map(|(_, r)| r).collect()),
        }
    }

    /// Table directories whose table is gone from the catalog (a crash during a drop).
    fn remove_orphan_table_dirs(&self) -> Result<()> {
        let dir = self.data_dir.join("tables");
        let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(()) };
        let live = self.tables.read();
        for entry in entries.flatten() {
            let id = entry.file_name().to_str().and_then(|n| n.parse::<u64>().ok());
            if id.is_some_and(|id| !live.contains_key(&id)) {
                tracing::warn!(dir = %entry.path().display(), "removing data of a dropped table");
                std::fs::remove_dir_all(entry.path()).at(entry.path().display())?;
            }
        }
        Ok(())
    }

    fn delete_table_data(&self, table_id: u64) {
        let partitioned = self.partitioned.write().remove(&table_id);
        if let Some(pt) = partitioned {
            for (_, runtime) in pt.all() {
                self.delete_runtime_data(runtime.meta().table_id);
            }
            return;
        }
        self.delete_runtime_data(table_id);
    }

    /// Removes one table's (or partition's) runtime, KV rows and files.
    fn delete_runtime_data(&self, table_id: u64) {
        let removed = self.tables.write().remove(&table_id);
        if let Some(rt) = removed {
            for b in &rt.buckets {
                b.close_readers(ReadersClosed::TableDropped);
            }
            if let Some(pk) = rt.pk() {
                if let Err(e) = pk.delete_data() {
                    tracing::warn!(table = rt.meta().path(), error = %e, "could not delete a dropped table's KV rows");
                }
            }
            if let Err(e) = std::fs::remove_dir_all(&rt.dir) {
                tracing::warn!(dir = %rt.dir.display(), error = %e, "could not delete a dropped table's data; it is removed at the next start");
            }
        }
    }

    fn buckets_of(table: &TableRuntime, requested: &Option<Vec<u32>>) -> Result<Vec<u32>> {
        match requested {
            None => Ok((0..table.buckets.len() as u32).collect()),
            Some(list) => {
                let mut out = Vec::with_capacity(list.len());
                for &b in list {
                    table.bucket(b)?;
                    if out.contains(&b) {
                        return Err(Error::invalid(format!("bucket {b} is listed twice")));
                    }
                    out.push(b);
                }
                Ok(out)
            }
        }
    }

    /// fsyncs every bucket with unsynced writes (the os-mode flusher and shutdown).
    pub async fn sync_all(&self) -> Result<()> {
        let tables: Vec<_> = self.tables.read().values().cloned().collect();
        for t in tables {
            t.sync_all().await?;
            t.apply_durable()?;
        }
        Ok(())
    }

    /// Persists the KV store's applied state (shutdown), so the next start replays little.
    pub fn flush_kv(&self) -> Result<()> {
        let kv = self.kv.lock().clone();
        match kv {
            Some(kv) => kv.flush(),
            None => Ok(()),
        }
    }

    /// Ends every tailing reader (graceful shutdown), so running requests can finish.
    pub fn close_readers(&self) {
        for t in self.tables.read().values() {
            for b in &t.buckets {
                b.close_readers(ReadersClosed::ShuttingDown);
            }
        }
    }

    /// Deletes expired segments everywhere; returns how many.
    pub fn apply_retention(&self, now_ms: i64) -> usize {
        let tables: Vec<_> = self.tables.read().values().cloned().collect();
        let mut deleted = 0;
        for t in tables {
            match t.apply_retention(now_ms) {
                Ok(n) => deleted += n,
                Err(e) => tracing::error!(table = %t.meta().path(), error = %e, "retention failed"),
            }
        }
        deleted
    }

    /// Starts the os-mode flusher and the retention task; they stop when `shutdown` fires.
    pub fn spawn_background(self: &Arc<Self>, shutdown: tokio::sync::watch::Receiver<bool>) {
        let flush = std::time::Duration::from_millis(self.config.log.flush_interval_ms);
        let retention = std::time::Duration::from_millis(self.config.log.retention_check_interval_ms);
        let (engine, mut stop) = (self.clone(), shutdown.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(flush);
            loop {
                tokio::select! {
                    _ = tick.tick() => if let Err(e) = engine.sync_all().await { tracing::error!(error = %e, "background flush failed") },
                    _ = stop.changed() => return,
                }
            }
        });
        if self.config.kv.idle_flush_ms > 0 {
            let idle = std::time::Duration::from_millis(self.config.kv.idle_flush_ms);
            let (engine, mut stop) = (self.clone(), shutdown.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(idle.min(std::time::Duration::from_secs(1)));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {
                            let Some(kv) = engine.kv.lock().clone() else { continue };
                            let started = std::time::Instant::now();
                            match tokio::task::spawn_blocking(move || kv.flush_if_idle(idle)).await {
                                Ok(Ok(true)) => tracing::debug!(ms = started.elapsed().as_millis() as u64, "KV store flushed after idle writes"),
                                Ok(Ok(false)) => {}
                                Ok(Err(e)) => tracing::error!(error = %e, "KV idle flush failed"),
                                Err(e) => tracing::error!(error = %e, "KV idle flush task failed"),
                            }
                        }
                        _ = stop.changed() => return,
                    }
                }
            });
        }
        let auto_partition = std::time::Duration::from_millis(self.config.log.auto_partition_check_interval_ms.max(1));
        let (engine, mut stop) = (self.clone(), shutdown.clone());
        tokio::spawn(async move {
            // The first tick fires at once: a node that was down catches up at start.
            let mut tick = tokio::time::interval(auto_partition);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let e2 = engine.clone();
                        if let Ok(report) = tokio::task::spawn_blocking(move || e2.check_auto_partitions()).await {
                            if !report.created.is_empty() || !report.dropped.is_empty() {
                                tracing::info!(created = report.created.len(), dropped = report.dropped.len(), "auto-partition check");
                            }
                        }
                    }
                    _ = stop.changed() => return,
                }
            }
        });
        let (engine, mut stop) = (self.clone(), shutdown);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(retention);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let e2 = engine.clone();
                        let n = tokio::task::spawn_blocking(move || { let now = (e2.clock)(); e2.apply_retention(now) }).await.unwrap_or(0);
                        if n > 0 { tracing::info!(segments = n, "retention deleted expired segments") }
                    }
                    _ = stop.changed() => return,
                }
            }
        });
    }
}

#[tonic::async_trait]
impl StorageEngine for Engine {
    fn health(&self) -> Health {
        Health {
            status: "ok".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            kv_block_cache_bytes: self.config.kv.block_cache_bytes.resolve() as u64,
        }
    }

    fn create_database(&self, req: &CreateDatabase) -> Result<bool> {
        self.catalog.create_database(req)
    }

    fn drop_database(&self, req: &DropDatabase) -> Result<bool> {
        match self.catalog.drop_database(&req.name, req.if_exists, req.cascade)? {
            None => Ok(false),
            Some(tables) => {
                for t in tables {
                    self.delete_table_data(t.table_id);
                }
                Ok(true)
            }
        }
    }

    fn list_databases(&self) -> Vec<String> {
        self.catalog.list_databases()
    }

    fn create_table(&self, req: &CreateTable) -> Result<TableInfo> {
        let defaults = TableDefaults { bucket_num: self.config.log.default_bucket_num, durability: self.config.log.durability };
        match self.catalog.create_table(req, defaults)? {
            Some(meta) if meta.is_partitioned() => {
                let pt = Arc::new(PartitionedTable::new(meta.clone(), BTreeMap::new()));
                self.partitioned.write().insert(meta.table_id, pt.clone());
                // An auto-partitioned table has its current and coming partitions at once.
                let mut report = AutoPartitionReport::default();
                self.check_table_auto_partitions(&pt, &mut report)?;
                Ok(self.catalog.get_table(&meta.database, &meta.name)?.info())
            }
            Some(meta) => {
                let runtime = match TableRuntime::open(meta.clone(), &self.data_dir, self.policy(), || self.kv()) {
                    Ok(rt) => rt,
                    Err(e) => {
                        // Keep the catalog and the disk in agreement.
                        let _ = self.catalog.drop_table(&meta.database, &meta.name, true);
                        return Err(e);
                    }
                };
                self.tables.write().insert(meta.table_id, Arc::new(runtime));
                Ok(meta.info())
            }
            None => Ok(self.catalog.get_table(&req.database, &req.table)?.info()),
        }
    }

    fn drop_table(&self, req: &DropTable) -> Result<bool> {
        match self.catalog.drop_table(&req.database, &req.table, req.if_exists)? {
            Some(meta) => {
                self.delete_table_data(meta.table_id);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn get_table(&self, database: &str, table: &str) -> Result<TableInfo> {
        Ok(self.catalog.get_table(database, table)?.info())
    }

    fn list_tables(&self, database: &str) -> Result<Vec<String>> {
        self.catalog.list_tables(database)
    }

    fn all_tables(&self) -> Vec<TableInfo> {
        self.catalog.all_tables().iter().map(|t| t.info()).collect()
    }

    fn alter_table(&self, req: &AlterTable) -> Result<TableInfo> {
        let meta = self.catalog.alter_table(req)?;
        match self.handle(&req.database, &req.table)? {
            TableHandle::Plain(t) => t.update_meta(meta.clone())?,
            TableHandle::Partitioned(t) => t.set_meta(meta.clone())?,
        }
        Ok(meta.info())
    }

    fn create_partition(&self, req: &CreatePartition) -> Result<bool> {
        self.create_partition_runtime(&req.database, &req.table, &req.partition, req.if_not_exists)
    }

    fn drop_partition(&self, req: &DropPartition) -> Result<bool> {
        let TableHandle::Partitioned(pt) = self.handle(&req.database, &req.table)? else {
            return Err(Error::invalid(format!("table {}.{} is not partitioned", req.database, req.table)));
        };
        let _serial = self.partition_creation.lock();
        let Some(partition) = self.catalog.drop_partition(&req.database, &req.table, &req.partition, req.if_exists)? else {
            return Ok(false);
        };
        pt.remove(&partition.name);
        pt.set_meta(self.catalog.get_table(&req.database, &req.table)?)?;
        self.delete_runtime_data(partition.partition_id);
        tracing::info!(table = %pt.meta().path(), partition = %partition.name, "partition dropped");
        Ok(true)
    }

    fn list_partitions(&self, database: &str, table: &str) -> Result<Vec<PartitionInfo>> {
        let meta = self.catalog.get_table(database, table)?;
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
        for table in self.targets(&req.database, &req.table, &req.partition)? {
            let partition = table.meta().partition.clone();
            for b in Self::buckets_of(&table, &req.buckets)? {
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
        match self.handle(database, table)? {
            TableHandle::Plain(t) => Ok(t.schema()),
            TableHandle::Partitioned(t) => stored_schema(&t.meta()),
        }
    }

    fn bucket_totals(&self, database: &str, table: &str) -> Result<Vec<BucketTotal>> {
        let mut out = Vec::new();
        for t in self.targets(database, table, &None)? {
            let partition = t.meta().partition.clone();
            for b in &t.buckets {
                let (records, bytes) = b.totals();
                out.push(BucketTotal { partition: partition.clone(), bucket: b.bucket, records, bytes });
            }
        }
        Ok(out)
    }

    fn table(&self, database: &str, table: &str) -> Result<TableHandle> {
        self.handle(database, table)
    }

    async fn write(
        &self,
        table: &TableHandle,
        batch: RecordBatch,
        op: WriteOp,
        id: Option<BatchIdentity>,
        partition: Option<&str>,
    ) -> Result<PendingAck> {
        match table {
            TableHandle::Plain(t) => {
                if partition.is_some() {
                    return Err(Error::invalid(format!("table {} is not partitioned", t.meta().path())));
                }
                t.write_unconfirmed(batch, op, id).await
            }
            TableHandle::Partitioned(t) => self.write_partitioned(t, batch, op, id, partition).await,
        }
    }

    fn scan(&self, req: &LogScan) -> Result<ScanStream> {
        if req.filter.is_some() {
            return Err(Error::Unimplemented(
                "\"filter\" on log scans is not served by this node version; project columns and filter on the client".into(),
            ));
        }
        let handle = self.handle(&req.database, &req.table)?;
        let meta = handle.meta();
        let schema = stored_schema(&meta)?;
        let columns = scan_columns(&schema, &meta, &req.columns)?;
        let template = ScanSpec {
            buckets: vec![],
            from: req.from,
            to: req.to,
            follow: req.follow,
            columns: columns.clone(),
            limit: req.limit,
            metadata_columns: req.metadata_columns,
        };
        let requested = req.buckets.clone();
        let spec = move |table: &TableRuntime, template: &ScanSpec| -> Result<ScanSpec> {
            Ok(ScanSpec { buckets: Self::buckets_of(table, &requested)?, ..template.clone() })
        };
        let read_bytes = self.config.log.scan_read_bytes;
        let pt = match handle {
            TableHandle::Plain(table) => {
                if req.partition.is_some() {
                    return Err(Error::invalid(format!("table {} is not partitioned", meta.path())));
                }
                let spec = spec(&table, &template)?;
                return scan::start_scan(table, spec, read_bytes);
            }
            TableHandle::Partitioned(pt) => pt,
        };
        if req.partition.is_some() {
            let (_, table) = pt.resolve(&req.partition)?.pop().expect("one partition");
            let spec = spec(&table, &template)?;
            return scan::start_scan(table, spec, read_bytes);
        }
        // Every partition: those that exist now, and (when following) those created later,
        // which are read from their start.
        let mut first = Vec::new();
        for (name, table) in pt.all() {
            let spec = spec(&table, &template)?;
            first.push((name, scan::start_scan(table, spec, read_bytes)?));
        }
        let output = match first.first() {
            Some((_, s)) => s.schema.clone(),
            None => scan::output_schema(&schema, &columns, req.metadata_columns),
        };
        let follow = req.follow.then(|| {
            let (watched, template) = (pt.clone(), ScanSpec { from: strom_flight_api::StartPosition::Earliest, ..template });
            let start: scan::StartNewPartitions = Box::new(move |known: &[String]| {
                let mut added = Vec::new();
                for (name, table) in watched.all() {
                    if !known.contains(&name) {
                        let spec = spec(&table, &template)?;
                        added.push((name, scan::start_scan(table, spec, read_bytes)?));
                    }
                }
                Ok(added)
            });
            (pt.watch(), start)
        });
        Ok(scan::merge_partition_scans(output, first, follow, req.limit))
    }

    async fn count(&self, req: &CountRequest) -> Result<u64> {
        let mut total = 0;
        for table in self.targets(&req.database, &req.table, &req.partition)? {
            let buckets = Self::buckets_of(&table, &req.buckets)?;
            total += if let (CountKind::Rows, Some(pk)) = (req.kind, table.pk()) {
                tokio::task::spawn_blocking(move || pk.count_rows(&buckets))
                    .await
                    .map_err(|e| Error::Internal(format!("count task failed: {e}")))??
            } else {
                buckets.into_iter().map(|b| table.buckets[b as usize].totals().0).sum()
            };
        }
        Ok(total)
    }

    fn snapshot_scan(&self, req: &SnapshotScan) -> Result<SnapshotStream> {
        let handle = self.handle(&req.database, &req.table)?;
        let meta = handle.meta();
        let path = meta.path();
        let shape = pk_shape(&meta)?.ok_or_else(|| {
            Error::FailedPrecondition(format!("table {path} has no primary key: read it with a log scan ({{\"scan\": \"log\"}})"))
        })?;
        let projection = shape.projection(&path, &req.columns, false)?;
        let filters = shape.compile_filter(&path, req.filter.as_deref().unwrap_or_default())?;
        let targets = self.targets(&req.database, &req.table, &req.partition)?;
        let mut plans = Vec::with_capacity(targets.len());
        for table in targets {
            let plan = SnapshotPlan {
                partition: table.meta().partition.clone(),
                buckets: Self::buckets_of(&table, &req.buckets)?,
                projection: projection.clone(),
                filters: filters.clone(),
                limit: req.limit,
                batch_rows: self.config.kv.snapshot_batch_rows,
            };
            plans.push((table, plan));
        }
        let schema = shape.result_schema(&projection, false);
        Ok(pk::serve::start_snapshot_scans(schema, plans, req.limit))
    }

    fn lookup_plan(&self, req: &LookupRequest) -> Result<LookupPlan> {
        match self.handle(&req.database, &req.table)? {
            TableHandle::Plain(table) => {
                let path = table.meta().path();
                if req.partition.is_some() {
                    return Err(Error::invalid(format!("table {path} is not partitioned")));
                }
                let pk = table.pk().ok_or_else(|| {
                    Error::FailedPrecondition(format!("table {path} has no primary key: lookups need a primary-key table"))
                })?;
                LookupPlan::new(LookupTarget::Table(table), pk, path, req)
            }
            TableHandle::Partitioned(table) => {
                let meta = table.meta();
                let shape = pk_shape(&meta)?.ok_or_else(|| {
                    Error::FailedPrecondition(format!("table {} has no primary key: lookups need a primary-key table", meta.path()))
                })?;
                if let Some(p) = &req.partition {
                    meta.parse_partition_name(p)?;
                }
                LookupPlan::new(LookupTarget::Partitioned { table, partition: req.partition.clone() }, Arc::new(shape), meta.path(), req)
            }
        }
    }
}

/// Positions of the requested columns in what the logs hold (a changelog keeps its change
/// type: it cannot be read correctly without it).
fn scan_columns(schema: &SchemaRef, meta: &TableMeta, columns: &Option<Vec<String>>) -> Result<Option<Vec<usize>>> {
    let Some(names) = columns else { return Ok(None) };
    if names.is_empty() {
        return Err(Error::invalid("\"columns\" must name at least one column"));
    }
    let mut idx = Vec::with_capacity(names.len());
    for n in names {
        let i = schema.index_of(n).map_err(|_| Error::invalid(format!("table {} has no column {n:?}", meta.path())))?;
        if idx.contains(&i) {
            return Err(Error::invalid(format!("column {n:?} is requested twice")));
        }
        idx.push(i);
    }
    if !meta.primary_key.is_empty() {
        let ct = schema.index_of(CHANGE_TYPE_COLUMN).expect("changelog schema");
        if !idx.contains(&ct) {
            idx.push(ct);
        }
    }
    Ok(Some(idx))
}
