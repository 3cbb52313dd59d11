//! The engine's tables: the catalog, one runtime per table (and per partition), the node's KV
//! store, and everything that creates, changes or removes them — recovery at open, catalog
//! operations, partition lifecycle (manual, dynamic and automatic), retention and flushes.
//!
//! Methods here that write the catalog, open tables or delete data are blocking: they fsync
//! files, create directories, open RocksDB or compact a key range. Callers run them on the
//! blocking pool. Locks are never held across a compaction: dropping data happens after the
//! runtime is unregistered, outside every lock.

use super::health::{BackgroundFailures, DROP_DATA};
use super::partitions::PartitionedTable;
use super::table::TableRuntime;
use crate::catalog::auto_partition;
use crate::catalog::{Catalog, PartitionMeta, TableDefaults, TableMeta};
use crate::clock::Clock;
use crate::config::{CacheSize, Config};
use crate::error::{Error, IoContext, Result};
use crate::fs::{self, FileSystem};
use crate::kv::store::KvStore;
use crate::log::{LogSettings, ReadersClosed, SegmentPolicy, TailCache};
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use strom_flight_api::{AlterTable, CreateTable, DropDatabase, DropTable, TableInfo};

/// A table as requests see it.
#[derive(Clone)]
pub(crate) enum TableHandle {
    Plain(Arc<TableRuntime>),
    Partitioned(Arc<PartitionedTable>),
}

impl TableHandle {
    pub fn meta(&self) -> Arc<TableMeta> {
        match self {
            TableHandle::Plain(t) => t.meta(),
            TableHandle::Partitioned(t) => t.meta(),
        }
    }
}

/// What one auto-partition check did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct AutoPartitionReport {
    /// (table, partition) created / dropped.
    pub created: Vec<(String, String)>,
    pub dropped: Vec<(String, String)>,
}

pub(crate) struct Registry {
    pub config: Config,
    pub clock: Clock,
    /// Where every log, index, catalog and auto-increment file lives (RocksDB's files do not
    /// go through it).
    fs: Arc<dyn FileSystem>,
    data_dir: PathBuf,
    pub catalog: Catalog,
    /// Every table runtime by id: plain tables, and each partition (under its partition id).
    tables: RwLock<HashMap<u64, Arc<TableRuntime>>>,
    /// Partitioned tables by table id.
    partitioned: RwLock<HashMap<u64, Arc<PartitionedTable>>>,
    /// The node's RocksDB instance, opened with the first primary-key table (so a node with
    /// only log tables never opens RocksDB).
    kv: Mutex<Option<Arc<KvStore>>>,
    /// Background work that failed (reported by `health`).
    pub failures: Arc<BackgroundFailures>,
    /// Recent appends of every bucket, served to readers from memory (`log.tail_cache_bytes`).
    pub tail_cache: Arc<TailCache>,
}

impl Registry {
    /// Opens the data directory: the catalog, then every table's logs (recovering them).
    /// Blocking.
    pub fn open(mut config: Config, clock: Clock, fs: Arc<dyn FileSystem>) -> Result<Self> {
        // Sized once: the KV store and `health` report the same figure for the node's life.
        if config.kv.block_cache_bytes == CacheSize::Auto {
            let bytes = config.kv.block_cache_bytes.resolve();
            tracing::info!(block_cache_bytes = bytes, "kv.block_cache_bytes = \"auto\" resolved");
            config.kv.block_cache_bytes = CacheSize::Bytes(bytes);
        }
        let data_dir = config.storage.data_dir.clone();
        fs::create_dir_all_durable(fs.as_ref(), &data_dir)?;
        let catalog = Catalog::open(fs.clone(), &data_dir.join("catalog"))?;
        let tail_cache = TailCache::new(config.log.tail_cache_bytes);
        let registry = Self {
            config,
            clock,
            fs,
            data_dir,
            catalog,
            tables: RwLock::new(HashMap::new()),
            partitioned: RwLock::new(HashMap::new()),
            kv: Mutex::new(None),
            failures: Arc::default(),
            tail_cache,
        };
        let metas = registry.catalog.all_tables();
        let started = Instant::now();
        for (i, meta) in metas.iter().enumerate() {
            if meta.is_partitioned() {
                let mut children = BTreeMap::new();
                for p in meta.partitions.values() {
                    children.insert(p.name.clone(), registry.open_partition(meta, p)?);
                }
                registry.partitioned.write().insert(meta.table_id, Arc::new(PartitionedTable::new(meta.clone(), children)));
            } else {
                let runtime = registry.open_runtime(meta.clone())?;
                registry.tables.write().insert(meta.table_id, runtime);
            }
            tracing::info!(progress = format!("{}/{}", i + 1, metas.len()), table = %meta.path(), partitions = meta.partitions.len(), "recovery");
        }
        registry.remove_orphan_table_dirs()?;
        tracing::info!(tables = metas.len(), elapsed_ms = started.elapsed().as_millis() as u64, data_dir = %registry.data_dir.display(), "storage opened");
        Ok(registry)
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

    /// The KV store if one is open.
    pub fn open_kv(&self) -> Option<Arc<KvStore>> {
        self.kv.lock().clone()
    }

    fn open_runtime(&self, meta: Arc<TableMeta>) -> Result<Arc<TableRuntime>> {
        let node = LogSettings {
            policy: SegmentPolicy { segment_bytes: self.config.log.segment_bytes, segment_ms: self.config.log.segment_ms },
            durability: self.config.log.durability,
            clock: self.clock.clone(),
            fs: self.fs.clone(),
            tail_cache: self.tail_cache.clone(),
        };
        Ok(Arc::new(TableRuntime::open(meta, &self.data_dir, &node, || self.kv())?))
    }

    /// Opens one partition's runtime and registers it under its partition id.
    fn open_partition(&self, meta: &TableMeta, partition: &PartitionMeta) -> Result<Arc<TableRuntime>> {
        let runtime = self.open_runtime(Arc::new(meta.partition_view(partition)))?;
        self.tables.write().insert(partition.partition_id, runtime.clone());
        Ok(runtime)
    }

    pub fn handle(&self, database: &str, table: &str) -> Result<TableHandle> {
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
    pub fn targets(&self, database: &str, table: &str, partition: &Option<String>) -> Result<Vec<Arc<TableRuntime>>> {
        match self.handle(database, table)? {
            TableHandle::Plain(t) => match partition {
                Some(_) => Err(Error::invalid(format!("table {database}.{table} is not partitioned"))),
                None => Ok(vec![t]),
            },
            TableHandle::Partitioned(t) => Ok(t.resolve(partition)?.into_iter().map(|(_, r)| r).collect()),
        }
    }

    /// Every table and partition runtime.
    pub fn runtimes(&self) -> Vec<Arc<TableRuntime>> {
        self.tables.read().values().cloned().collect()
    }

    /// Table directories whose table is gone from the catalog (a crash during a drop).
    fn remove_orphan_table_dirs(&self) -> Result<()> {
        let dir = self.data_dir.join("tables");
        let Ok(names) = self.fs.list_dir(&dir) else { return Ok(()) };
        let live = self.tables.read();
        for name in names {
            let id = name.to_str().and_then(|n| n.parse::<u64>().ok());
            if id.is_some_and(|id| !live.contains_key(&id)) {
                let path = dir.join(&name);
                tracing::warn!(dir = %path.display(), "removing data of a dropped table");
                self.fs.remove_dir_all(&path).at(path.display())?;
            }
        }
        Ok(())
    }

    pub fn create_table(&self, req: &CreateTable) -> Result<TableInfo> {
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
                let runtime = match self.open_runtime(meta.clone()) {
                    Ok(rt) => rt,
                    Err(e) => {
                        // Keep the catalog and the disk in agreement.
                        let _ = self.catalog.drop_table(&meta.database, &meta.name, true);
                        return Err(e);
                    }
                };
                self.tables.write().insert(meta.table_id, runtime);
                Ok(meta.info())
            }
            None => Ok(self.catalog.get_table(&req.database, &req.table)?.info()),
        }
    }

    pub fn drop_table(&self, req: &DropTable) -> Result<bool> {
        match self.catalog.drop_table(&req.database, &req.table, req.if_exists)? {
            Some(meta) => {
                self.delete_table_data(meta.table_id);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    pub fn drop_database(&self, req: &DropDatabase) -> Result<bool> {
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

    pub fn alter_table(&self, req: &AlterTable) -> Result<TableInfo> {
        let meta = self.catalog.alter_table(req)?;
        match self.handle(&req.database, &req.table)? {
            TableHandle::Plain(t) => t.update_meta(meta.clone())?,
            TableHandle::Partitioned(t) => t.set_meta(meta.clone())?,
        }
        Ok(meta.info())
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

    /// Unregisters one table's (or partition's) runtime, then removes its KV rows (a range
    /// delete and a compaction of the range) and its files, holding no lock.
    fn delete_runtime_data(&self, table_id: u64) {
        let removed = self.tables.write().remove(&table_id);
        let Some(rt) = removed else { return };
        for b in &rt.buckets {
            b.close_readers(ReadersClosed::TableDropped);
        }
        let path = rt.meta().path();
        if let Some(pk) = rt.pk() {
            // A failure leaves rows nothing reads (the table id is never reused); reported.
            if let Err(e) = pk.delete_data() {
                self.failures.record(DROP_DATA, Some(&path), &e.with_context("deleting the KV rows of a dropped table"), (self.clock)());
            }
        }
        if let Err(e) = self.fs.remove_dir_all(&rt.dir) {
            let e = Error::io(rt.dir.display(), e).with_context("deleting a dropped table's files (retried at the next start)");
            self.failures.record(DROP_DATA, Some(&path), &e, (self.clock)());
        }
    }

    /// Creates a partition and its runtime; returns whether it was created.
    pub fn create_partition(&self, database: &str, table: &str, name: &str, if_not_exists: bool) -> Result<bool> {
        let TableHandle::Partitioned(pt) = self.handle(database, table)? else {
            return Err(Error::invalid(format!("table {database}.{table} is not partitioned")));
        };
        let _serial = pt.lifecycle.lock();
        let Some(partition) = self.catalog.create_partition(database, table, name, if_not_exists)? else { return Ok(false) };
        let meta = self.catalog.get_table(database, table)?;
        match self.open_partition(&meta, &partition) {
            Ok(runtime) => {
                pt.set_meta(meta)?;
                pt.insert(partition.name.clone(), runtime);
                tracing::info!(table = %pt.meta().path(), partition = %partition.name, id = partition.partition_id, "partition created");
                Ok(true)
            }
            Err(e) => {
                // Keep the catalog and the disk in agreement.
                let _ = self.catalog.drop_partition(database, table, name, true);
                Err(e)
            }
        }
    }

    /// Drops a partition; returns whether it existed. Its data is deleted after it is
    /// unregistered, outside the lifecycle lock (a compaction must not hold up creations).
    pub fn drop_partition(&self, database: &str, table: &str, name: &str, if_exists: bool) -> Result<bool> {
        let TableHandle::Partitioned(pt) = self.handle(database, table)? else {
            return Err(Error::invalid(format!("table {database}.{table} is not partitioned")));
        };
        let partition = {
            let _serial = pt.lifecycle.lock();
            let Some(partition) = self.catalog.drop_partition(database, table, name, if_exists)? else {
                return Ok(false);
            };
            pt.remove(&partition.name);
            pt.set_meta(self.catalog.get_table(database, table)?)?;
            partition
        };
        self.delete_runtime_data(partition.partition_id);
        tracing::info!(table = %pt.meta().path(), partition = %partition.name, "partition dropped");
        Ok(true)
    }

    /// Runs the auto-partition check of every auto-partitioned table at the clock's time:
    /// creates the partitions of the coming periods, drops the expired ones. A table that fails
    /// is reported and skipped; the others still run.
    pub fn check_auto_partitions(&self) -> (AutoPartitionReport, Vec<(String, Error)>) {
        let tables: Vec<_> = self.partitioned.read().values().cloned().collect();
        let mut report = AutoPartitionReport::default();
        let mut failures = Vec::new();
        for pt in tables {
            if let Err(e) = self.check_table_auto_partitions(&pt, &mut report) {
                failures.push((pt.meta().path(), e));
            }
        }
        (report, failures)
    }

    fn check_table_auto_partitions(&self, pt: &PartitionedTable, report: &mut AutoPartitionReport) -> Result<()> {
        let meta = pt.meta();
        let Some(auto) = auto_partition::from_options(&meta.options, &meta.partition_keys)? else { return Ok(()) };
        let now = (self.clock)();
        let existing: Vec<(String, String)> =
            meta.partitions.values().map(|p| (p.name.clone(), p.values[auto.key_index].clone())).collect();
        let (create, drop) = auto.plan(now, meta.partition_keys.len() == 1, &existing);
        for name in create {
            if self.create_partition(&meta.database, &meta.name, &name, true)? {
                report.created.push((meta.path(), name));
            }
        }
        for name in drop {
            if self.drop_partition(&meta.database, &meta.name, &name, true)? {
                tracing::info!(table = %meta.path(), partition = %name, "auto-partition: expired partition dropped");
                report.dropped.push((meta.path(), name));
            }
        }
        Ok(())
    }

    /// Deletes expired segments everywhere; returns how many, and the tables that failed.
    /// Blocking.
    pub fn apply_retention(&self, now_ms: i64) -> (usize, Vec<(String, Error)>) {
        let mut deleted = 0;
        let mut failures = Vec::new();
        for t in self.runtimes() {
            match t.apply_retention(now_ms) {
                Ok(n) => deleted += n,
                Err(e) => failures.push((t.meta().path(), e)),
            }
        }
        (deleted, failures)
    }

    /// fsyncs every bucket with unsynced writes and applies durable KV changes (the os-mode
    /// flusher and shutdown).
    pub async fn sync_all(&self) -> Result<()> {
        for t in self.runtimes() {
            t.sync_all().await?;
        }
        Ok(())
    }

    /// Ends every tailing reader (graceful shutdown), so running requests can finish.
    pub fn close_readers(&self) {
        for t in self.tables.read().values() {
            for b in &t.buckets {
                b.close_readers(ReadersClosed::ShuttingDown);
            }
        }
    }
}
