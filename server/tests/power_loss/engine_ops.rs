//! Engine calls the workloads share, through the engine's API only.

use super::log_model::BucketId;
use arrow_array::RecordBatch;
use std::collections::BTreeMap;
use std::sync::Arc;
use strom_flight_api::{CreateDatabase, CreateTable, ListOffsets, LogScan, OffsetSpec, PutAck, WriteCommand};
use strom_server::engine::{BatchIdentity, Engine, ScanChunk, StorageEngine};

pub const DB: &str = "power";

/// Runs a blocking engine call (catalog changes, retention) on the blocking pool.
pub async fn blocking<T: Send + 'static>(engine: &Arc<Engine>, call: impl FnOnce(&Engine) -> T + Send + 'static) -> T {
    let engine = engine.clone();
    tokio::task::spawn_blocking(move || call(&engine)).await.expect("a blocking engine call panicked")
}

/// Creates the database and `table` unless they exist (idempotent, so a life can repeat it
/// after a power loss that may or may not have kept an earlier creation).
pub async fn ensure_table(engine: &Arc<Engine>, table: CreateTable) -> strom_server::Result<()> {
    blocking(engine, move |e| {
        e.create_database(&CreateDatabase { name: DB.into(), if_not_exists: true, ..Default::default() })?;
        e.create_table(&CreateTable { if_not_exists: true, ..table }).map(|_| ())
    })
    .await
}

/// Writes one batch as an idempotent writer's batch and waits for its ack.
pub async fn write(engine: &Engine, command: &WriteCommand, batch: RecordBatch, id: BatchIdentity) -> strom_server::Result<PutAck> {
    let writer = engine.open_writer(command, false)?;
    writer.write(batch, Some(id)).await?.durable().await
}

/// A full log scan of `table` (every partition and bucket, from the log start to the high
/// watermark), decoded.
pub async fn scan_all(engine: &Engine, table: &str, columns: Option<&[&str]>) -> strom_server::Result<Vec<(ScanChunk, RecordBatch)>> {
    let columns = columns.map(|c| c.iter().map(|c| c.to_string()).collect());
    let mut stream = engine.scan(&LogScan { database: DB.into(), table: table.into(), columns, ..Default::default() })?;
    let mut out = Vec::new();
    while let Some(chunk) = stream.chunks.recv().await {
        let chunk = chunk?;
        let batch = chunk.message.decode(&stream.schema)?;
        out.push((chunk, batch));
    }
    Ok(out)
}

/// Every bucket's offset at `spec` (of every partition).
pub fn offsets(engine: &Engine, table: &str, spec: OffsetSpec) -> strom_server::Result<BTreeMap<BucketId, u64>> {
    let req = ListOffsets { database: DB.into(), table: table.into(), partition: None, buckets: None, spec };
    Ok(engine.list_offsets(&req)?.into_iter().map(|o| ((o.partition, o.bucket), o.offset)).collect())
}
