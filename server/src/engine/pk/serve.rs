//! Lookups and snapshot scans as the Flight layer runs them: a plan resolved once per request or
//! DoExchange stream, then executed per key batch off the async runtime.

use super::read::{PkLayout, PkShape, SnapshotChunk, SnapshotPlan};
use super::PkOp;
use crate::engine::partitioned::PartitionedTable;
use crate::engine::table::{TableRuntime, WriteOp};
use crate::engine::write;
use crate::error::{Error, Result};
use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{Int32Array, RecordBatch, UInt32Array};
use arrow_schema::SchemaRef;
use std::sync::Arc;
use strom_flight_api::{LookupKind, LookupRequest};
use tokio::sync::mpsc;

/// Point lookups of at most this many keys run on the request's task.
const INLINE_LOOKUP_KEYS: usize = 64;

/// Where a lookup goes: a table, or the partitions of a partitioned table.
pub enum LookupTarget {
    Table(Arc<TableRuntime>),
    /// Keys carry their partition-key values; `partition`, when given, must be theirs.
    Partitioned {
        table: Arc<PartitionedTable>,
        partition: Option<String>,
        shape: Arc<PkShape>,
    },
}

/// A lookup resolved against its table.
pub struct LookupPlan {
    pub target: LookupTarget,
    pub path: String,
    pub kind: LookupKind,
    pub projection: Vec<usize>,
    pub insert_if_not_exists: bool,
    /// What key batches must look like (lenient types, by name).
    pub key_schema: SchemaRef,
    /// The table's shape when the plan was made.
    layout: Arc<dyn PkLayout + Send + Sync>,
}

impl LookupPlan {
    pub fn new(target: LookupTarget, path: String, req: &LookupRequest) -> Result<Self> {
        let layout: Arc<dyn PkLayout + Send + Sync> = match &target {
            LookupTarget::Table(table) => {
                if req.partition.is_some() {
                    return Err(Error::invalid(format!("table {path} is not partitioned")));
                }
                table.pk().ok_or_else(|| {
                    Error::FailedPrecondition(format!("table {path} has no primary key: lookups need a primary-key table"))
                })?
            }
            LookupTarget::Partitioned { shape, .. } => shape.clone(),
        };
        if req.insert_if_not_exists && req.lookup == LookupKind::Prefix {
            return Err(Error::invalid("insert_if_not_exists applies to primary_key lookups, not prefix lookups"));
        }
        let projection = layout.projection(&path, &req.columns, true)?;
        let key_schema = layout.lookup_key_schema(&path, req.lookup)?;
        Ok(Self { projection, key_schema, kind: req.lookup, insert_if_not_exists: req.insert_if_not_exists, path, target, layout })
    }

    fn layout(&self) -> &dyn PkLayout {
        self.layout.as_ref()
    }

    /// The schema of results.
    pub fn result_schema(&self, with_key_index: bool) -> SchemaRef {
        self.layout().result_schema(&self.projection, with_key_index)
    }

    /// JSON keys of a lookup ticket as a key batch.
    pub fn keys_from_json(&self, keys: &[Vec<serde_json::Value>]) -> Result<RecordBatch> {
        let batch = self.layout().keys_from_json(&self.path, self.kind, keys)?;
        self.conform_keys(&batch)
    }

    /// Conforms a client key batch (columns by name, safe casts, no nulls).
    pub fn conform_keys(&self, keys: &RecordBatch) -> Result<RecordBatch> {
        write::conform(keys, &self.key_schema, &self.path)
    }

    /// Looks up a conformed key batch; with `insert_if_not_exists`, missing keys are inserted
    /// (durably, through the write path) and returned too.
    pub async fn run(&self, keys: RecordBatch, with_key_index: bool) -> Result<RecordBatch> {
        let batch = match &self.target {
            LookupTarget::Table(table) => self.run_on(table, keys).await?,
            LookupTarget::Partitioned { table, partition, .. } => self.run_partitioned(table, partition.as_deref(), keys).await?,
        };
        if with_key_index {
            Ok(batch)
        } else {
            Ok(batch.project(&(1..batch.num_columns()).collect::<Vec<_>>())?)
        }
    }

    /// Splits the keys by the partition they name, looks each part up in its partition (a
    /// partition that does not exist holds no rows) and merges the answers in request order.
    async fn run_partitioned(&self, table: &Arc<PartitionedTable>, partition: Option<&str>, keys: RecordBatch) -> Result<RecordBatch> {
        let names = table.partition_names(&keys)?;
        if let Some(p) = partition {
            if let Some(row) = names.iter().position(|n| n != p) {
                return Err(Error::invalid(format!(
                    "table {}: the lookup names partition {p:?} but key {row} belongs to partition {:?}",
                    self.path, names[row]
                )));
            }
        }
        let mut groups: Vec<(String, Vec<u32>)> = Vec::new();
        for (row, name) in names.iter().enumerate() {
            match groups.iter_mut().find(|(n, _)| n == name) {
                Some((_, rows)) => rows.push(row as u32),
                None => groups.push((name.clone(), vec![row as u32])),
            }
        }
        let mut answers = Vec::with_capacity(groups.len());
        for (name, rows) in groups {
            let runtime = match table.partition(&name) {
                Ok(r) => r,
                Err(Error::NotFound(_)) if !self.insert_if_not_exists => continue,
                Err(e) => return Err(e),
            };
            let subset = if rows.len() == keys.num_rows() {
                keys.clone()
            } else {
                arrow_select::take::take_record_batch(&keys, &UInt32Array::from(rows.clone()))?
            };
            let found = self.run_on(&runtime, subset).await?;
            // Number the rows as in the whole request.
            let renumbered: Int32Array =
                found.column(0).as_primitive::<Int32Type>().values().iter().map(|&i| rows[i as usize] as i32).collect();
            let mut columns = found.columns().to_vec();
            columns[0] = Arc::new(renumbered);
            answers.push(RecordBatch::try_new(found.schema(), columns)?);
        }
        let mut order: Vec<(usize, usize)> = Vec::new();
        for (b, batch) in answers.iter().enumerate() {
            order.extend((0..batch.num_rows()).map(|r| (b, r)));
        }
        if answers.len() <= 1 {
            return match answers.pop() {
                Some(a) => Ok(a),
                None => Ok(RecordBatch::new_empty(self.result_schema(true))),
            };
        }
        let index = |&(b, r): &(usize, usize)| answers[b].column(0).as_primitive::<Int32Type>().value(r);
        order.sort_by_key(index);
        let refs: Vec<&RecordBatch> = answers.iter().collect();
        Ok(arrow_select::interleave::interleave_record_batch(&refs, &order)?)
    }

    /// Looks keys up in one table (or partition); the answer has `_key_index` first.
    async fn run_on(&self, table: &Arc<TableRuntime>, keys: RecordBatch) -> Result<RecordBatch> {
        let kind = self.kind;
        let path = self.path.clone();
        let bucket_num = table.buckets.len() as u32;
        let projection = self.projection.clone();
        let pk = table.pk().ok_or_else(|| Error::Internal("not a primary-key table".into()))?;
        let found = if keys.num_rows() <= INLINE_LOOKUP_KEYS && kind == LookupKind::PrimaryKey {
            // A few point lookups are block-cache reads of microseconds: a hop to the blocking
            // pool would cost more than the lookup (single-key latency is the target here).
            pk.lookup(&path, kind, &keys, bucket_num, &projection)?
        } else {
            let (k, pk) = (keys.clone(), pk.clone());
            tokio::task::spawn_blocking(move || pk.lookup(&path, kind, &k, bucket_num, &projection))
                .await
                .map_err(|e| Error::Internal(format!("lookup task failed: {e}")))??
        };
        let batch = pk.result_batch(found, &self.projection, true)?;
        if self.insert_if_not_exists {
            self.insert_missing(table, &keys, batch).await
        } else {
            Ok(batch)
        }
    }

    /// Inserts the keys `found` (a result with `_key_index`) has no row for, durably through the
    /// write path, and returns `found` plus their new rows, in request order.
    async fn insert_missing(&self, table: &Arc<TableRuntime>, keys: &RecordBatch, found: RecordBatch) -> Result<RecordBatch> {
        let mut present = vec![false; keys.num_rows()];
        for &i in found.column(0).as_primitive::<Int32Type>().values() {
            present[i as usize] = true;
        }
        let missing: Vec<u32> = (0..keys.num_rows() as u32).filter(|&i| !present[i as usize]).collect();
        if missing.is_empty() {
            return Ok(found);
        }
        let subset = arrow_select::take::take_record_batch(keys, &UInt32Array::from(missing.clone()))?;
        table.write_unconfirmed(subset.clone(), WriteOp::Pk(PkOp::InsertIfAbsent), None).await?.wait_durable().await?;
        let (table, path, projection) = (table.clone(), self.path.clone(), self.projection.clone());
        let bucket_num = table.buckets.len() as u32;
        let inserted = tokio::task::spawn_blocking(move || {
            let pk = table.pk().ok_or_else(|| Error::Internal("not a primary-key table".into()))?;
            let rows = pk.lookup(&path, LookupKind::PrimaryKey, &subset, bucket_num, &projection)?;
            pk.result_batch(rows, &projection, true)
        })
        .await
        .map_err(|e| Error::Internal(format!("lookup task failed: {e}")))??;
        // Number the inserted rows as in the request, then merge both results in request order.
        let renumbered: Int32Array =
            inserted.column(0).as_primitive::<Int32Type>().values().iter().map(|&i| missing[i as usize] as i32).collect();
        let mut columns = inserted.columns().to_vec();
        columns[0] = Arc::new(renumbered);
        let inserted = RecordBatch::try_new(inserted.schema(), columns)?;
        let (a, b) = (found.column(0).as_primitive::<Int32Type>().values(), inserted.column(0).as_primitive::<Int32Type>().values());
        let (mut i, mut j, mut order) = (0, 0, Vec::with_capacity(a.len() + b.len()));
        while i < a.len() || j < b.len() {
            if j == b.len() || (i < a.len() && a[i] < b[j]) {
                order.push((0, i));
                i += 1;
            } else {
                order.push((1, j));
                j += 1;
            }
        }
        Ok(arrow_select::interleave::interleave_record_batch(&[&found, &inserted], &order)?)
    }
}

/// A running snapshot scan.
pub struct SnapshotStream {
    pub schema: SchemaRef,
    pub chunks: mpsc::Receiver<Result<SnapshotChunk>>,
}

/// Starts a snapshot scan of one or more tables (the partitions of a partitioned table) on a
/// blocking thread that holds one RocksDB snapshot throughout, so all of them are read as of
/// the same moment. `limit` caps the rows of all of them together.
pub fn start_snapshot_scans(schema: SchemaRef, plans: Vec<(Arc<TableRuntime>, SnapshotPlan)>, limit: Option<u64>) -> SnapshotStream {
    let (tx, rx) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let Some(kv) = plans.first().and_then(|(t, _)| t.pk()).map(|pk| pk.kv.clone()) else { return };
        let snapshot = kv.snapshot();
        let mut remaining = limit;
        for (table, mut plan) in plans {
            if remaining == Some(0) {
                return;
            }
            plan.limit = remaining;
            let Some(pk) = table.pk() else { return };
            match pk.snapshot_scan(&snapshot, &plan, &tx) {
                Ok(Some(sent)) => remaining = remaining.map(|r| r - sent),
                Ok(None) => return,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    SnapshotStream { schema, chunks: rx }
}
