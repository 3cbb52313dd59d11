//! Partitioned tables: one `TableRuntime` per partition (its own buckets, logs and KV key
//! range, under the partition's id), and the routing of writes, scans and lookups to them.
//!
//! A partition is named by its partition-key value(s) (`$`-joined for several keys). Writes
//! route every row to the partition its values name, creating missing partitions when
//! `client.writer.dynamic-create-partition.enabled` is on (the default). Sequence numbers of
//! idempotent writers are checked once per batch here; each partition deduplicates its part.

use super::table::{PendingAck, TableRuntime, WriteOp, WriterGate, WriterSequences};
use super::{Engine, StorageEngine, TableHandle};
use crate::catalog::options::dynamic_partition_creation;
use crate::catalog::{validate_partition_value, TableMeta, PARTITION_VALUE_SEPARATOR};
use crate::engine::write;
use crate::error::{Error, Result};
use crate::log::bucket::BatchIdentity;
use arrow_array::cast::AsArray;
use arrow_array::{RecordBatch, UInt32Array};
use arrow_schema::DataType;
use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::sync::Arc;
use strom_flight_api::DropPartition;

pub struct PartitionedTable {
    meta: RwLock<Arc<TableMeta>>,
    partitions: RwLock<BTreeMap<String, Arc<TableRuntime>>>,
    writers: WriterSequences,
    /// Counts partition creations and drops: scans that follow every partition watch it to
    /// pick up new partitions as they are created (no catalog polling).
    changes: tokio::sync::watch::Sender<u64>,
}

impl PartitionedTable {
    pub fn new(meta: Arc<TableMeta>, partitions: BTreeMap<String, Arc<TableRuntime>>) -> Self {
        Self {
            meta: RwLock::new(meta),
            partitions: RwLock::new(partitions),
            writers: Default::default(),
            changes: tokio::sync::watch::channel(0).0,
        }
    }

    pub fn meta(&self) -> Arc<TableMeta> {
        self.meta.read().clone()
    }

    pub fn set_meta(&self, meta: Arc<TableMeta>) -> Result<()> {
        for (name, runtime) in self.partitions.read().iter() {
            let Some(p) = meta.partitions.get(name) else { continue };
            runtime.update_meta(Arc::new(meta.partition_view(p)))?;
        }
        *self.meta.write() = meta;
        Ok(())
    }

    /// The runtime of one partition, NOT_FOUND naming it when it does not exist.
    pub fn partition(&self, name: &str) -> Result<Arc<TableRuntime>> {
        let meta = self.meta();
        meta.parse_partition_name(name)?;
        self.partitions
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("partition {name:?} of table {} does not exist", meta.path())))
    }

    /// Every partition, in name order.
    pub fn all(&self) -> Vec<(String, Arc<TableRuntime>)> {
        self.partitions.read().iter().map(|(n, r)| (n.clone(), r.clone())).collect()
    }

    /// The partitions a request names: one, or all of them.
    pub fn resolve(&self, partition: &Option<String>) -> Result<Vec<(String, Arc<TableRuntime>)>> {
        match partition {
            Some(name) => Ok(vec![(name.clone(), self.partition(name)?)]),
            None => Ok(self.all()),
        }
    }

    pub(crate) fn insert(&self, name: String, runtime: Arc<TableRuntime>) {
        self.partitions.write().insert(name, runtime);
        self.changes.send_modify(|n| *n += 1);
    }

    pub(crate) fn remove(&self, name: &str) -> Option<Arc<TableRuntime>> {
        let removed = self.partitions.write().remove(name);
        self.changes.send_modify(|n| *n += 1);
        removed
    }

    /// A receiver that changes whenever a partition is created or dropped.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The partition name of every row (from the partition-key columns, by name).
    pub fn partition_names(&self, batch: &RecordBatch) -> Result<Vec<String>> {
        let meta = self.meta();
        let mut columns = Vec::with_capacity(meta.partition_keys.len());
        for key in &meta.partition_keys {
            let column = batch.column_by_name(key).ok_or_else(|| {
                Error::invalid(format!(
                    "table {}: the batch has no partition key column {key:?}; every row names its partition",
                    meta.path()
                ))
            })?;
            let column = match column.data_type() {
                DataType::Utf8 => column.clone(),
                DataType::LargeUtf8 | DataType::Utf8View => arrow_cast::cast(column, &DataType::Utf8)?,
                other => {
                    return Err(Error::invalid(format!(
                        "table {}: partition key column {key:?} must be a string, not {other}",
                        meta.path()
                    )))
                }
            };
            columns.push(column);
        }
        let mut names: Vec<String> = Vec::with_capacity(batch.num_rows());
        let mut name = String::new();
        for row in 0..batch.num_rows() {
            name.clear();
            for (i, (key, column)) in meta.partition_keys.iter().zip(&columns).enumerate() {
                if column.is_null(row) {
                    return Err(Error::invalid(format!("table {}: row {row}: partition key column {key:?} is null", meta.path())));
                }
                let value = column.as_string::<i32>().value(row);
                validate_partition_value(key, value).map_err(|e| Error::invalid(format!("table {}: row {row}: {e}", meta.path())))?;
                if i > 0 {
                    name.push(PARTITION_VALUE_SEPARATOR);
                }
                name.push_str(value);
            }
            names.push(name.clone());
        }
        Ok(names)
    }
}

/// The rows of each partition name, in order of first appearance.
pub(crate) fn group_rows(names: &[String]) -> Vec<(String, Vec<u32>)> {
    let mut groups: Vec<(String, Vec<u32>)> = Vec::new();
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (row, name) in names.iter().enumerate() {
        let slot = *index.entry(name.as_str()).or_insert_with(|| {
            groups.push((name.clone(), Vec::new()));
            groups.len() - 1
        });
        groups[slot].1.push(row as u32);
    }
    groups
}

/// Splits `batch` by partition name, in order of first appearance (a batch of one partition is
/// not copied).
fn split(batch: &RecordBatch, names: &[String]) -> Result<Vec<(String, RecordBatch)>> {
    let groups = group_rows(names);
    if groups.len() == 1 {
        return Ok(vec![(groups.into_iter().next().expect("one").0, batch.clone())]);
    }
    groups.into_iter().map(|(name, rows)| Ok((name, arrow_select::take::take_record_batch(batch, &UInt32Array::from(rows))?))).collect()
}

/// What one auto-partition check did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct AutoPartitionReport {
    /// (table, partition) created / dropped.
    pub created: Vec<(String, String)>,
    pub dropped: Vec<(String, String)>,
}

impl Engine {
    /// Runs the auto-partition check of every auto-partitioned table at the clock's time:
    /// creates the partitions of the coming periods, drops the expired ones. A table that fails
    /// is logged and skipped; the others still run.
    pub fn check_auto_partitions(&self) -> AutoPartitionReport {
        let tables: Vec<_> = self.partitioned.read().values().cloned().collect();
        let mut report = AutoPartitionReport::default();
        for pt in tables {
            if let Err(e) = self.check_table_auto_partitions(&pt, &mut report) {
                tracing::error!(table = %pt.meta().path(), error = %e, "auto-partition check failed");
            }
        }
        report
    }

    pub(crate) fn check_table_auto_partitions(&self, pt: &PartitionedTable, report: &mut AutoPartitionReport) -> Result<()> {
        let meta = pt.meta();
        let Some(auto) = crate::catalog::auto_partition::from_options(&meta.options, &meta.partition_keys)? else { return Ok(()) };
        let now = (self.clock)();
        let existing: Vec<(String, String)> =
            meta.partitions.values().map(|p| (p.name.clone(), p.values[auto.key_index].clone())).collect();
        let (create, drop) = auto.plan(now, meta.partition_keys.len() == 1, &existing);
        for name in create {
            if self.create_partition_runtime(&meta.database, &meta.name, &name, true)? {
                report.created.push((meta.path(), name));
            }
        }
        for name in drop {
            let req = DropPartition { database: meta.database.clone(), table: meta.name.clone(), partition: name.clone(), if_exists: true };
            if self.drop_partition(&req)? {
                tracing::info!(table = %meta.path(), partition = %name, "auto-partition: expired partition dropped");
                report.dropped.push((meta.path(), name));
            }
        }
        Ok(())
    }

    /// Creates a partition and its runtime; returns whether it was created.
    pub(crate) fn create_partition_runtime(&self, database: &str, table: &str, name: &str, if_not_exists: bool) -> Result<bool> {
        let _serial = self.partition_creation.lock();
        let TableHandle::Partitioned(pt) = self.handle(database, table)? else {
            return Err(Error::invalid(format!("table {database}.{table} is not partitioned")));
        };
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

    /// Writes a batch to a partitioned table: every row goes to the partition its partition
    /// keys name (`partition`, when given, must be that partition for every row).
    pub(crate) async fn write_partitioned(
        &self,
        table: &Arc<PartitionedTable>,
        batch: RecordBatch,
        op: WriteOp,
        id: Option<BatchIdentity>,
        partition: Option<&str>,
    ) -> Result<PendingAck> {
        let meta = table.meta();
        let path = meta.path();
        if let Some(p) = partition {
            meta.parse_partition_name(p)?;
        }
        // A log table's batch is conformed whole first, so errors name rows of the batch sent.
        let batch = match op {
            WriteOp::Append => write::conform_allowing_added(&batch, &meta.arrow_schema()?, &path, meta.first_added_column())?,
            WriteOp::Pk(_) => batch,
        };
        let names = table.partition_names(&batch)?;
        if let Some(p) = partition {
            if let Some(row) = names.iter().position(|n| n != p) {
                return Err(Error::invalid(format!(
                    "table {path}: the write names partition {p:?} but row {row} belongs to partition {:?}",
                    names[row]
                )));
            }
        }
        let parts = split(&batch, &names)?;
        // Resolve (or create) every partition before anything is written.
        let mut targets = Vec::with_capacity(parts.len());
        for (name, part) in parts {
            let runtime = match table.partition(&name) {
                Ok(r) => r,
                Err(Error::NotFound(_)) if dynamic_partition_creation(&meta.options) => {
                    self.create_partition_runtime(&meta.database, &meta.name, &name, true)?;
                    table.partition(&name)?
                }
                Err(Error::NotFound(_)) => {
                    return Err(Error::NotFound(format!(
                        "partition {name:?} of table {path} does not exist; create it with create_partition or set \
                         \"client.writer.dynamic-create-partition.enabled\" = \"true\""
                    )))
                }
                Err(e) => return Err(e),
            };
            targets.push((name, runtime, part));
        }
        let mut gate = WriterGate::enter(&table.writers, &path, id).await?;
        let rows = batch.num_rows() as u64;
        let several = targets.len() > 1;
        let mut ack = PendingAck { parts: Vec::with_capacity(targets.len()), rows, id };
        for (name, runtime, part) in targets {
            let written = runtime.write_unchecked(part, op.clone(), id).await.map_err(|e| {
                if several {
                    e.with_context(&format!("partition {name:?} (row numbers count that partition's rows of the batch)"))
                } else {
                    e
                }
            })?;
            ack.parts.push(written);
        }
        gate.passed();
        Ok(ack)
    }
}
