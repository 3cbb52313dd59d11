//! Snapshot scans of primary-key tables: the current rows of one table (or of several
//! partitions), read from one RocksDB snapshot on a blocking thread, so every bucket and
//! partition is read as of the same moment; each batch is encoded on that thread too.

use super::api::{SnapshotChunk, SnapshotStream};
use super::pk::read::{PkLayout, PkShape, SnapshotPlan};
use super::registry::Registry;
use super::table::TableRuntime;
use crate::error::{Error, Result};
use std::sync::Arc;
use strom_flight_api::SnapshotScan;
use tokio::sync::mpsc;

/// Batches a snapshot scan may have in flight towards the client.
const CHANNEL_DEPTH: usize = 4;

/// Resolves a snapshot scan and starts it.
pub(crate) fn start(registry: &Registry, req: &SnapshotScan) -> Result<SnapshotStream> {
    let meta = registry.handle(&req.database, &req.table)?.meta();
    let path = meta.path();
    let shape = PkShape::of(&meta)?.ok_or_else(|| {
        Error::FailedPrecondition(format!("table {path} has no primary key: read it with a log scan ({{\"scan\": \"log\"}})"))
    })?;
    let projection = shape.projection(&path, &req.columns, false)?;
    let filters = shape.compile_filter(&path, req.filter.as_deref().unwrap_or_default())?;
    let after_key = match &req.after_key {
        None => None,
        Some(values) => {
            if req.buckets.as_ref().is_none_or(|b| b.len() != 1) || (!meta.partition_keys.is_empty() && req.partition.is_none()) {
                return Err(Error::invalid(format!(
                    "\"after_key\" resumes the snapshot of one bucket: name exactly one bucket{} of {path}",
                    if meta.partition_keys.is_empty() { "" } else { " and the partition" }
                )));
            }
            Some(super::pk::read::encode_key_suffix(&shape, &path, "\"after_key\"", values)?)
        }
    };
    let mut plans = Vec::new();
    for table in registry.targets(&req.database, &req.table, &req.partition)? {
        let plan = SnapshotPlan {
            partition: table.meta().partition.clone(),
            buckets: table.requested_buckets(&req.buckets)?,
            projection: projection.clone(),
            filters: filters.clone(),
            limit: req.limit,
            batch_rows: registry.config.kv.snapshot_batch_rows,
            after_key: after_key.clone(),
        };
        plans.push((table, plan));
    }
    Ok(run(shape.result_schema(&projection, false), plans, req.limit))
}

/// Reads the tables in order on one blocking thread that holds one RocksDB snapshot
/// throughout. `limit` caps the rows of all of them together.
fn run(schema: arrow_schema::SchemaRef, plans: Vec<(Arc<TableRuntime>, SnapshotPlan)>, limit: Option<u64>) -> SnapshotStream {
    let (tx, rx) = mpsc::channel::<Result<SnapshotChunk>>(CHANNEL_DEPTH);
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
            match super::pk::read::snapshot_scan(&pk, &snapshot, &plan, &tx) {
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
