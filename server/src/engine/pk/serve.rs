//! Lookups and snapshot scans as the Flight layer runs them: a plan resolved once per request or
//! DoExchange stream, then executed per key batch off the async runtime.

use super::read::{SnapshotChunk, SnapshotPlan};
use super::PkOp;
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

/// A lookup resolved against its table.
pub struct LookupPlan {
    pub table: Arc<TableRuntime>,
    pub path: String,
    pub kind: LookupKind,
    pub projection: Vec<usize>,
    pub insert_if_not_exists: bool,
    /// What key batches must look like (lenient types, by name).
    pub key_schema: SchemaRef,
}

impl LookupPlan {
    pub fn new(table: Arc<TableRuntime>, req: &LookupRequest) -> Result<Self> {
        let path = table.meta().path();
        let pk = table
            .pk
            .as_ref()
            .ok_or_else(|| Error::FailedPrecondition(format!("table {path} has no primary key: lookups need a primary-key table")))?;
        if req.partition.is_some() {
            return Err(Error::invalid(format!("table {path} is not partitioned")));
        }
        if req.insert_if_not_exists && req.lookup == LookupKind::Prefix {
            return Err(Error::invalid("insert_if_not_exists applies to primary_key lookups, not prefix lookups"));
        }
        let projection = pk.projection(&path, &req.columns, true)?;
        let key_schema = pk.lookup_key_schema(&path, req.lookup)?;
        Ok(Self { projection, key_schema, kind: req.lookup, insert_if_not_exists: req.insert_if_not_exists, path, table })
    }

    /// The schema of results.
    pub fn result_schema(&self, with_key_index: bool) -> SchemaRef {
        self.table.pk.as_ref().expect("checked in new").result_schema(&self.projection, with_key_index)
    }

    /// Conforms a client key batch (columns by name, safe casts, no nulls).
    pub fn conform_keys(&self, keys: &RecordBatch) -> Result<RecordBatch> {
        write::conform(keys, &self.key_schema, &self.path)
    }

    /// Looks up a conformed key batch; with `insert_if_not_exists`, missing keys are inserted
    /// (durably, through the write path) and returned too.
    pub async fn run(&self, keys: RecordBatch, with_key_index: bool) -> Result<RecordBatch> {
        let table = self.table.clone();
        let (kind, path) = (self.kind, self.path.clone());
        let bucket_num = table.buckets.len() as u32;
        let projection = self.projection.clone();
        let pk = table.pk.as_ref().expect("checked in new");
        let found = if keys.num_rows() <= INLINE_LOOKUP_KEYS && kind == LookupKind::PrimaryKey {
            // A few point lookups are block-cache reads of microseconds: a hop to the blocking
            // pool would cost more than the lookup (single-key latency is the target here).
            pk.lookup(&path, kind, &keys, bucket_num, &projection)?
        } else {
            let (k, t) = (keys.clone(), table.clone());
            tokio::task::spawn_blocking(move || t.pk.as_ref().expect("pk").lookup(&path, kind, &k, bucket_num, &projection))
                .await
                .map_err(|e| Error::Internal(format!("lookup task failed: {e}")))??
        };
        let batch = pk.result_batch(found, &self.projection, true)?;
        let batch = if self.insert_if_not_exists { self.insert_missing(&keys, batch).await? } else { batch };
        if with_key_index {
            Ok(batch)
        } else {
            Ok(batch.project(&(1..batch.num_columns()).collect::<Vec<_>>())?)
        }
    }

    /// Inserts the keys `found` (a result with `_key_index`) has no row for, durably through the
    /// write path, and returns `found` plus their new rows, in request order.
    async fn insert_missing(&self, keys: &RecordBatch, found: RecordBatch) -> Result<RecordBatch> {
        let mut present = vec![false; keys.num_rows()];
        for &i in found.column(0).as_primitive::<Int32Type>().values() {
            present[i as usize] = true;
        }
        let missing: Vec<u32> = (0..keys.num_rows() as u32).filter(|&i| !present[i as usize]).collect();
        if missing.is_empty() {
            return Ok(found);
        }
        let subset = arrow_select::take::take_record_batch(keys, &UInt32Array::from(missing.clone()))?;
        self.table.write_unconfirmed(subset.clone(), WriteOp::Pk(PkOp::InsertIfAbsent), None).await?.wait_durable().await?;
        let (table, path, projection) = (self.table.clone(), self.path.clone(), self.projection.clone());
        let bucket_num = table.buckets.len() as u32;
        let inserted = tokio::task::spawn_blocking(move || {
            let pk = table.pk.as_ref().expect("pk");
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

/// Starts a snapshot scan on a blocking thread that holds one RocksDB snapshot throughout.
pub fn start_snapshot_scan(table: Arc<TableRuntime>, plan: SnapshotPlan) -> Result<SnapshotStream> {
    let pk = table.pk.as_ref().ok_or_else(|| Error::Internal("not a primary-key table".into()))?;
    let schema = pk.result_schema(&plan.projection, false);
    let (tx, rx) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let pk = table.pk.as_ref().expect("checked");
        if let Err(e) = pk.snapshot_scan(&plan, &tx) {
            let _ = tx.blocking_send(Err(e));
        }
    });
    Ok(SnapshotStream { schema, chunks: rx })
}
