//! The storage engine behind the Flight front door: catalog operations, appends, scans,
//! offsets, and the background tasks (os-mode flusher, retention).
//!
//! `StorageEngine` is the narrow interface the Flight layer calls; it speaks the contract's
//! request types and engine types, never gRPC.

pub mod pk;
pub mod scan;
pub mod table;
pub mod write;

use crate::catalog::{Catalog, TableDefaults};
use crate::config::Config;
use crate::error::{Error, IoContext, Result};
use crate::kv::store::KvStore;
use crate::log::bucket::{BatchIdentity, ReadersClosed, SegmentPolicy};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parking_lot::RwLock;
use pk::read::SnapshotPlan;
use pk::serve::{LookupPlan, SnapshotStream};
use scan::{ScanSpec, ScanStream};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use strom_flight_api::{
    AlterTable, BucketOffset, CountKind, CountRequest, CreateDatabase, CreateTable, DropDatabase, DropTable, Health, ListOffsets, LogScan,
    LookupRequest, OffsetSpec, SnapshotScan, TableInfo, CHANGE_TYPE_COLUMN,
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
    fn list_offsets(&self, req: &ListOffsets) -> Result<Vec<BucketOffset>>;
    fn table_schema(&self, database: &str, table: &str) -> Result<SchemaRef>;
    /// Per bucket: (records, bytes).
    fn bucket_totals(&self, database: &str, table: &str) -> Result<Vec<(u64, u64)>>;
    /// Resolves a table for a stream of appends.
    fn table(&self, database: &str, table: &str) -> Result<Arc<TableRuntime>>;
    /// Writes a batch; the returned ack resolves once it is durable.
    async fn write(&self, table: &Arc<TableRuntime>, batch: RecordBatch, op: WriteOp, id: Option<BatchIdentity>) -> Result<PendingAck>;
    fn scan(&self, req: &LogScan) -> Result<ScanStream>;
    fn snapshot_scan(&self, req: &SnapshotScan) -> Result<SnapshotStream>;
    /// Resolves a lookup (ticket or DoExchange stream) against its table.
    fn lookup_plan(&self, req: &LookupRequest) -> Result<LookupPlan>;
    async fn count(&self, req: &CountRequest) -> Result<u64>;
}

pub struct Engine {
    config: Config,
    data_dir: PathBuf,
    catalog: Catalog,
    tables: RwLock<HashMap<u64, Arc<TableRuntime>>>,
    /// The node's RocksDB instance, opened with the first primary-key table (so a node with
    /// only log tables never opens RocksDB).
    kv: parking_lot::Mutex<Option<Arc<KvStore>>>,
    started: Instant,
}

impl Engine {
    /// Opens the data directory: the catalog, then every table's logs (recovering them).
    pub fn open(config: Config) -> Result<Arc<Self>> {
        let data_dir = config.storage.data_dir.clone();
        std::fs::create_dir_all(&data_dir).at(data_dir.display())?;
        let catalog = Catalog::open(&data_dir.join("catalog"))?;
        let engine = Self {
            config,
            data_dir,
            catalog,
            tables: RwLock::new(HashMap::new()),
            kv: parking_lot::Mutex::new(None),
            started: Instant::now(),
        };
        let metas = engine.catalog.all_tables();
        let started = Instant::now();
        for (i, meta) in metas.iter().enumerate() {
            let runtime = TableRuntime::open(meta.clone(), &engine.data_dir, engine.policy(), || engine.kv())?;
            engine.tables.write().insert(meta.table_id, Arc::new(runtime));
            tracing::info!(progress = format!("{}/{}", i + 1, metas.len()), table = %meta.path(), "recovery");
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
        let kv = Arc::new(KvStore::open_with_cache(&self.data_dir.join("kv"), self.config.kv.block_cache_bytes)?);
        *slot = Some(kv.clone());
        Ok(kv)
    }

    fn policy(&self) -> SegmentPolicy {
        SegmentPolicy { segment_bytes: self.config.log.segment_bytes, segment_ms: self.config.log.segment_ms }
    }

    fn runtime(&self, database: &str, table: &str) -> Result<Arc<TableRuntime>> {
        let meta = self.catalog.get_table(database, table)?;
        self.tables.read().get(&meta.table_id).cloned().ok_or_else(|| Error::Internal(format!("table {database}.{table} has no runtime")))
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
        let removed = self.tables.write().remove(&table_id);
        if let Some(rt) = removed {
            for b in &rt.buckets {
                b.close_readers(ReadersClosed::TableDropped);
            }
            if let Some(pk) = &rt.pk {
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
        let (engine, mut stop) = (self.clone(), shutdown);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(retention);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let e2 = engine.clone();
                        let n = tokio::task::spawn_blocking(move || e2.apply_retention(crate::catalog::now_ms())).await.unwrap_or(0);
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
        Health { status: "ok".into(), version: env!("CARGO_PKG_VERSION").into(), uptime_ms: self.started.elapsed().as_millis() as u64 }
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
        self.runtime(&req.database, &req.table)?.update_meta(meta.clone())?;
        Ok(meta.info())
    }

    fn list_offsets(&self, req: &ListOffsets) -> Result<Vec<BucketOffset>> {
        if req.partition.is_some() {
            return Err(Error::invalid(format!("table {}.{} is not partitioned", req.database, req.table)));
        }
        let table = self.runtime(&req.database, &req.table)?;
        Self::buckets_of(&table, &req.buckets)?
            .into_iter()
            .map(|b| {
                let log = table.bucket(b)?;
                let offset = match req.spec {
                    OffsetSpec::Earliest => log.log_start_offset(),
                    OffsetSpec::Latest => log.high_watermark(),
                    OffsetSpec::Timestamp { timestamp } => log.offset_for_timestamp(timestamp).max(log.log_start_offset()),
                };
                Ok(BucketOffset { bucket: b, partition: None, offset })
            })
            .collect()
    }

    fn table_schema(&self, database: &str, table: &str) -> Result<SchemaRef> {
        Ok(self.runtime(database, table)?.schema.clone())
    }

    fn bucket_totals(&self, database: &str, table: &str) -> Result<Vec<(u64, u64)>> {
        Ok(self.runtime(database, table)?.buckets.iter().map(|b| b.totals()).collect())
    }

    fn table(&self, database: &str, table: &str) -> Result<Arc<TableRuntime>> {
        self.runtime(database, table)
    }

    async fn write(&self, table: &Arc<TableRuntime>, batch: RecordBatch, op: WriteOp, id: Option<BatchIdentity>) -> Result<PendingAck> {
        table.write_unconfirmed(batch, op, id).await
    }

    fn scan(&self, req: &LogScan) -> Result<ScanStream> {
        if req.partition.is_some() {
            return Err(Error::invalid(format!("table {}.{} is not partitioned", req.database, req.table)));
        }
        if req.filter.is_some() {
            return Err(Error::Unimplemented(
                "\"filter\" on log scans is not served by this node version; project columns and filter on the client".into(),
            ));
        }
        let table = self.runtime(&req.database, &req.table)?;
        let columns = match &req.columns {
            None => None,
            Some(names) => {
                if names.is_empty() {
                    return Err(Error::invalid("\"columns\" must name at least one column"));
                }
                let mut idx = Vec::with_capacity(names.len());
                for n in names {
                    let i = table
                        .schema
                        .index_of(n)
                        .map_err(|_| Error::invalid(format!("table {}.{} has no column {n:?}", req.database, req.table)))?;
                    if idx.contains(&i) {
                        return Err(Error::invalid(format!("column {n:?} is requested twice")));
                    }
                    idx.push(i);
                }
                if table.pk.is_some() {
                    // A changelog without its change types cannot be read correctly.
                    let ct = table.schema.index_of(CHANGE_TYPE_COLUMN).expect("changelog schema");
                    if !idx.contains(&ct) {
                        idx.push(ct);
                    }
                }
                Some(idx)
            }
        };
        let spec = ScanSpec {
            buckets: Self::buckets_of(&table, &req.buckets)?,
            from: req.from,
            to: req.to,
            follow: req.follow,
            columns,
            limit: req.limit,
            metadata_columns: req.metadata_columns,
        };
        scan::start_scan(table, spec, self.config.log.scan_read_bytes)
    }

    async fn count(&self, req: &CountRequest) -> Result<u64> {
        if req.partition.is_some() {
            return Err(Error::invalid(format!("table {}.{} is not partitioned", req.database, req.table)));
        }
        let table = self.runtime(&req.database, &req.table)?;
        let buckets = Self::buckets_of(&table, &req.buckets)?;
        if req.kind == CountKind::Rows && table.pk.is_some() {
            return tokio::task::spawn_blocking(move || table.pk.as_ref().expect("checked").count_rows(&buckets))
                .await
                .map_err(|e| Error::Internal(format!("count task failed: {e}")))?;
        }
        Ok(buckets.into_iter().map(|b| table.buckets[b as usize].totals().0).sum())
    }

    fn snapshot_scan(&self, req: &SnapshotScan) -> Result<SnapshotStream> {
        if req.partition.is_some() {
            return Err(Error::invalid(format!("table {}.{} is not partitioned", req.database, req.table)));
        }
        let table = self.runtime(&req.database, &req.table)?;
        let path = table.meta().path();
        let pk = table.pk.as_ref().ok_or_else(|| {
            Error::FailedPrecondition(format!("table {path} has no primary key: read it with a log scan ({{\"scan\": \"log\"}})"))
        })?;
        let plan = SnapshotPlan {
            buckets: Self::buckets_of(&table, &req.buckets)?,
            projection: pk.projection(&path, &req.columns, false)?,
            filters: pk.compile_filter(&path, req.filter.as_deref().unwrap_or_default())?,
            limit: req.limit,
            batch_rows: self.config.kv.snapshot_batch_rows,
        };
        pk::serve::start_snapshot_scan(table, plan)
    }

    fn lookup_plan(&self, req: &LookupRequest) -> Result<LookupPlan> {
        LookupPlan::new(self.runtime(&req.database, &req.table)?, req)
    }
}
