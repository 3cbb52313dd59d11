//! Partitioned tables: one `TableRuntime` per partition (its own buckets, logs and KV key
//! range, under the partition's id), and the routing of rows to partitions by their values.
//!
//! A partition is named by its partition-key value(s) (`$`-joined for several keys). Sequence
//! numbers of idempotent writers are checked once per batch for the whole table (`writers`);
//! each partition deduplicates its part of a batch in its own bucket logs.

use super::sequence::WriterSequences;
use super::table::TableRuntime;
use crate::catalog::{validate_partition_value, TableMeta, PARTITION_VALUE_SEPARATOR};
use crate::error::{Error, Result};
use arrow_array::cast::AsArray;
use arrow_array::{RecordBatch, UInt32Array};
use arrow_schema::DataType;
use parking_lot::{Mutex, RwLock};
use std::collections::BTreeMap;
use std::sync::Arc;

pub(crate) struct PartitionedTable {
    meta: RwLock<Arc<TableMeta>>,
    partitions: RwLock<BTreeMap<String, Arc<TableRuntime>>>,
    pub writers: WriterSequences,
    /// Serializes creating and dropping partitions of this table (a write may create the
    /// partition another write creates). Taken on the blocking pool only.
    pub lifecycle: Mutex<()>,
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
            lifecycle: Mutex::new(()),
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
pub(crate) fn split(batch: &RecordBatch, names: &[String]) -> Result<Vec<(String, RecordBatch)>> {
    let groups = group_rows(names);
    if groups.len() == 1 {
        return Ok(vec![(groups.into_iter().next().expect("one").0, batch.clone())]);
    }
    groups.into_iter().map(|(name, rows)| Ok((name, arrow_select::take::take_record_batch(batch, &UInt32Array::from(rows))?))).collect()
}
