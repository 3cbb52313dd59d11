//! Lookups and snapshot scans as the Flight layer runs them: a plan resolved once per request or
//! DoExchange stream, then executed per key batch off the async runtime.

use super::read::{PkLayout, SnapshotChunk, SnapshotPlan};
use super::PkOp;
use crate::engine::partitioned::{group_rows, PartitionedTable};
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
    /// `layout` is the table's shape now (a partitioned table's, when no partition exists yet).
    pub fn new(target: LookupTarget, layout: Arc<dyn PkLayout + Send + Sync>, path: String, req: &LookupRequest) -> Result<Self> {
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
        let groups = group_rows(&names);
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
            answers.push(renumber(self.run_on(&runtime, subset).await?, &rows)?);
        }
        match answers.len() {
            0 => Ok(RecordBatch::new_empty(self.result_schema(true))),
            _ => merge_in_request_order(answers),
        }
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
        let inserted = renumber(inserted, &missing)?;
        merge_in_request_order(vec![found, inserted])
    }
}

/// An answer (`_key_index` first) to a subset of a request's keys, numbered as in the whole
/// request: `rows[i]` is the request row of the subset's row `i`.
fn renumber(answer: RecordBatch, rows: &[u32]) -> Result<RecordBatch> {
    let renumbered: Int32Array = answer.column(0).as_primitive::<Int32Type>().values().iter().map(|&i| rows[i as usize] as i32).collect();
    let mut columns = answer.columns().to_vec();
    columns[0] = Arc::new(renumbered);
    Ok(RecordBatch::try_new(answer.schema(), columns)?)
}

/// Answers to disjoint subsets of a request's keys, merged into request order (by `_key_index`;
/// rows answering one key keep their order).
fn merge_in_request_order(answers: Vec<RecordBatch>) -> Result<RecordBatch> {
    if answers.len() == 1 {
        return Ok(answers.into_iter().next().expect("one"));
    }
    let mut order: Vec<(usize, usize)> = Vec::new();
    for (b, batch) in answers.iter().enumerate() {
        order.extend((0..batch.num_rows()).map(|r| (b, r)));
    }
    order.sort_by_key(|&(b, r)| answers[b].column(0).as_primitive::<Int32Type>().value(r));
    let refs: Vec<&RecordBatch> = answers.iter().collect();
    Ok(arrow_select::interleave::interleave_record_batch(&refs, &order)?)
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
