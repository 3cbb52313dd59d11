//! The write path: one [`EngineWriter`] per DoPut stream appends to a log table or upserts,
//! partially updates or deletes in a primary-key table, routing rows to partitions (creating
//! them when the table allows it) and to buckets.
//!
//! A batch is written into the page cache on the blocking pool (conform → route → encode →
//! `BucketLog::append_unconfirmed`, or the primary-key merge in `pk::write`); the returned
//! [`PendingAck`] waits for the group commit that covers it (`BucketLog::wait_durable`), then
//! applies a primary-key table's merged rows to RocksDB (also on the blocking pool), and only
//! then resolves. Batches of one idempotent writer are written in call order.

use super::api::{BatchIdentity, IpcMessage, PendingAck, TableWriter};
use super::conform::{self, Routing};
use super::partitions::{split, PartitionedTable};
use super::pk::read::PkShape;
use super::pk::write::PkWriteLayout;
use super::pk::{self, PkOp};
use super::registry::{Registry, TableHandle};
use super::sequence::WriterGate;
use super::table::TableRuntime;
use crate::catalog::options::{self, dynamic_partition_creation, NoKeyAssigner};
use crate::catalog::TableMeta;
use crate::error::{Error, Result};
use crate::log::{encoded_as_sent, record_count, Appended, BatchEncoder, Compression, EncodedBatch};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use strom_flight_api::{BucketAppend, PutAck, WriteCommand, WriteKind};

/// What a write does: append to a log table, or a primary-key operation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum WriteOp {
    Append,
    Pk(PkOp),
}

/// What a stream's batches do to its table: a PATH descriptor appends to a log table and
/// upserts full rows into a primary-key table; a CMD descriptor says which.
fn write_op(shape: Option<&PkShape>, path: &str, command: &WriteCommand, from_path_descriptor: bool) -> Result<WriteOp> {
    if command.target_columns.is_some() && command.write != WriteKind::Upsert {
        return Err(Error::invalid("target_columns (partial updates) apply to \"upsert\" writes only"));
    }
    Ok(match (shape, command.write) {
        (Some(_), WriteKind::Append) if from_path_descriptor => WriteOp::Pk(PkOp::Upsert { targets: None }),
        (Some(pk), WriteKind::Upsert) => {
            let targets = command.target_columns.as_deref().map(|names| pk.resolve_targets(path, names)).transpose()?;
            WriteOp::Pk(PkOp::Upsert { targets })
        }
        (Some(_), WriteKind::Delete) => WriteOp::Pk(PkOp::Delete),
        (Some(_), WriteKind::Append) => {
            return Err(Error::FailedPrecondition(format!(
                "table {path} has a primary key: write it with \"upsert\" or \"delete\", not \"append\""
            )))
        }
        (None, WriteKind::Append) => WriteOp::Append,
        (None, kind) => {
            return Err(Error::FailedPrecondition(format!(
                "table {path} is a log table: {:?} writes need a primary-key table",
                format!("{kind:?}").to_lowercase()
            )))
        }
    })
}

/// The writer of one stream.
pub(crate) struct EngineWriter {
    registry: Arc<Registry>,
    table: TableHandle,
    op: WriteOp,
    partition: Option<String>,
    path: String,
    /// The table's shape when the stream started (schemas are checked against it).
    meta: Arc<TableMeta>,
    shape: Option<PkShape>,
}

impl EngineWriter {
    pub fn open(registry: Arc<Registry>, command: &WriteCommand, from_path_descriptor: bool) -> Result<Self> {
        if command.sequence.is_some() && command.writer_id.is_none() {
            return Err(Error::invalid("\"sequence\" needs \"writer_id\""));
        }
        if command.writer_id.is_some_and(|w| w < 0) {
            return Err(Error::invalid("\"writer_id\" must be >= 0"));
        }
        let table = registry.handle(&command.database, &command.table)?;
        let meta = table.meta();
        let path = meta.path();
        if let Some(p) = &command.partition {
            meta.parse_partition_name(p)?;
            if let TableHandle::Plain(_) = table {
                return Err(Error::invalid(format!("table {path} is not partitioned")));
            }
        }
        let shape = PkShape::of(&meta)?;
        let op = write_op(shape.as_ref(), &path, command, from_path_descriptor)?;
        Ok(Self { registry, table, op, partition: command.partition.clone(), path, meta, shape })
    }

    /// The partition runtimes a partitioned batch goes to, created when missing and allowed.
    /// Runs on the blocking pool: creating a partition writes the catalog and makes directories.
    async fn partition_runtime(&self, pt: &Arc<PartitionedTable>, name: &str) -> Result<Arc<TableRuntime>> {
        match pt.partition(name) {
            Err(Error::NotFound(_)) if dynamic_partition_creation(&pt.meta().options) => {}
            Err(Error::NotFound(_)) => {
                return Err(Error::NotFound(format!(
                    "partition {name:?} of table {} does not exist; create it with create_partition or set \
                     \"client.writer.dynamic-create-partition.enabled\" = \"true\"",
                    self.path
                )))
            }
            other => return other,
        }
        let (registry, meta, owned) = (self.registry.clone(), pt.meta(), name.to_string());
        tokio::task::spawn_blocking(move || registry.create_partition(&meta.database, &meta.name, &owned, true))
            .await
            .map_err(|e| Error::Internal(format!("partition creation task failed: {e}")))??;
        pt.partition(name)
    }

    /// Writes a batch to a partitioned table: every row goes to the partition its partition
    /// keys name (the stream's `partition`, when given, must be that partition for every row).
    async fn write_partitioned(&self, pt: &Arc<PartitionedTable>, batch: RecordBatch, id: Option<BatchIdentity>) -> Result<PendingAck> {
        let meta = pt.meta();
        // A log table's batch is conformed whole first, so errors name rows of the batch sent.
        let batch = match self.op {
            WriteOp::Append => conform::conform_allowing_added(&batch, &meta.arrow_schema()?, &self.path, meta.first_added_column())?,
            WriteOp::Pk(_) => batch,
        };
        let names = pt.partition_names(&batch)?;
        if let Some(p) = &self.partition {
            if let Some(row) = names.iter().position(|n| n != p) {
                return Err(Error::invalid(format!(
                    "table {}: the write names partition {p:?} but row {row} belongs to partition {:?}",
                    self.path, names[row]
                )));
            }
        }
        // Resolve (or create) every partition before anything is written.
        let mut targets = Vec::new();
        for (name, part) in split(&batch, &names)? {
            let runtime = self.partition_runtime(pt, &name).await?;
            targets.push((name, runtime, part));
        }
        let mut gate = WriterGate::enter(&pt.writers, &self.path, id).await?;
        let several = targets.len() > 1;
        let mut parts = Vec::with_capacity(targets.len());
        for (name, runtime, part) in targets {
            let written = write_to_runtime(&runtime, part, None, self.op.clone(), id).await.map_err(|e| match several {
                true => e.with_context(&format!("partition {name:?} (row numbers count that partition's rows of the batch)")),
                false => e,
            })?;
            parts.push(written);
        }
        gate.passed();
        Ok(durable_ack(parts, batch.num_rows() as u64, id))
    }
}

#[async_trait::async_trait]
impl TableWriter for EngineWriter {
    fn table_path(&self) -> &str {
        &self.path
    }

    fn check_schema(&self, schema: &SchemaRef) -> Result<()> {
        let empty = RecordBatch::new_empty(schema.clone());
        match (&self.op, &self.shape) {
            (WriteOp::Pk(op), Some(pk)) => pk.check_batch_schema(&self.path, &empty, op, self.meta.first_added_column()),
            _ => {
                conform::conform_allowing_added(&empty, &self.meta.arrow_schema()?, &self.path, self.meta.first_added_column()).map(|_| ())
            }
        }
    }

    async fn write(&self, batch: RecordBatch, id: Option<BatchIdentity>) -> Result<PendingAck> {
        self.write_batch(batch, None, id).await
    }

    async fn write_as_sent(&self, batch: RecordBatch, sent: IpcMessage, id: Option<BatchIdentity>) -> Result<PendingAck> {
        self.write_batch(batch, Some(sent), id).await
    }
}

impl EngineWriter {
    async fn write_batch(&self, batch: RecordBatch, sent: Option<IpcMessage>, id: Option<BatchIdentity>) -> Result<PendingAck> {
        match &self.table {
            TableHandle::Plain(table) => {
                let rows = batch.num_rows() as u64;
                let mut gate = WriterGate::enter(&table.writers, &self.path, id).await?;
                let part = write_to_runtime(table, batch, sent, self.op.clone(), id).await?;
                gate.passed();
                Ok(durable_ack(vec![part], rows, id))
            }
            // A partitioned table's rows are split by partition first: encoded per partition.
            TableHandle::Partitioned(pt) => self.write_partitioned(pt, batch, id).await,
        }
    }
}

/// The bucket appends of a batch in one table (or one partition).
pub(crate) struct AckPart {
    table: Arc<TableRuntime>,
    appended: Vec<(u32, Appended)>,
}

/// Writes one batch to one table or partition (no sequence-gap check: the caller holds the
/// writer's gate) into the page cache, on the blocking pool. `sent`: the message the batch was
/// decoded from, stored as it is where a log table can (`append_parts`).
pub(crate) async fn write_to_runtime(
    table: &Arc<TableRuntime>,
    batch: RecordBatch,
    sent: Option<IpcMessage>,
    op: WriteOp,
    id: Option<BatchIdentity>,
) -> Result<AckPart> {
    let this = table.clone();
    let appended = tokio::task::spawn_blocking(move || {
        let (meta, schema, pk) = this.shape();
        match (op, pk) {
            (WriteOp::Append, None) => append_parts(&this, &meta, &schema, batch, sent, id),
            (WriteOp::Pk(op), Some(pk)) => pk::write::write_batch(&pk, &this.buckets, &meta, batch, &op, id),
            (WriteOp::Append, Some(_)) => Err(Error::FailedPrecondition(format!(
                "table {} has a primary key: write it with \"upsert\" or \"delete\", not \"append\"",
                meta.path()
            ))),
            (WriteOp::Pk(_), None) => Err(Error::FailedPrecondition(format!(
                "table {} is a log table: \"upsert\" and \"delete\" need a primary-key table",
                meta.path()
            ))),
        }
    })
    .await
    .map_err(|e| Error::Internal(format!("write task failed: {e}")))??;
    Ok(AckPart { table: table.clone(), appended })
}

/// A log table's append: conform, route, then encode and write each bucket's rows (no fsync).
/// A batch that needed no conforming and goes whole to one bucket is stored as the message
/// `sent` it was decoded from, when that message can be (`log::encoded_as_sent`).
fn append_parts(
    table: &TableRuntime,
    meta: &TableMeta,
    schema: &SchemaRef,
    batch: RecordBatch,
    sent: Option<IpcMessage>,
    id: Option<BatchIdentity>,
) -> Result<Vec<(u32, Appended)>> {
    let opts = options::log_options(&meta.options)?;
    let conformed = conform::conform_allowing_added(&batch, schema, &meta.path(), meta.first_added_column())?;
    let routing = if table.key_columns.is_empty() {
        // With an idempotent writer the choice derives from (writer, sequence) so a retry
        // lands in the same bucket as the original.
        let choice = match (opts.no_key_assigner, id) {
            (NoKeyAssigner::RoundRobin, Some(id)) => id.sequence as u64,
            (NoKeyAssigner::Sticky, Some(id)) => {
                let mut bytes = id.writer_id.to_le_bytes().to_vec();
                bytes.extend_from_slice(&id.sequence.to_le_bytes());
                murmur3::murmur3_32(&mut std::io::Cursor::new(bytes), 0).unwrap_or(0) as u64
            }
            (_, None) => table.round_robin.fetch_add(1, Ordering::Relaxed),
        };
        Routing::NoKey { choice }
    } else {
        Routing::Keyed(&table.key_columns)
    };
    let parts = conform::route(&conformed, meta.bucket_num, routing)?;
    if let (Some(sent), [(bucket, part)]) = (&sent, parts.as_slice()) {
        if let Some(encoded) = stored_as_sent(sent, &batch, &conformed, part, opts.compression, schema) {
            let log = &table.buckets[*bucket as usize];
            if let Some(id) = id {
                log.check_in_window(id)?;
            }
            return Ok(vec![(*bucket, log.append_encoded(&encoded, record_count(part.num_rows())?, meta.schema_id, id)?)]);
        }
    }
    let mut encoder = BatchEncoder::new(opts.compression)?;
    let mut out = Vec::with_capacity(parts.len());
    for (bucket, part) in parts {
        let log = &table.buckets[bucket as usize];
        if let Some(id) = id {
            log.check_in_window(id)?;
        }
        out.push((bucket, log.append_unconfirmed(&part, meta.schema_id, id, &mut encoder)?));
    }
    Ok(out)
}

/// `sent` as it is stored, when the one bucket part is the batch as sent (conforming changed no
/// column, routing kept every row) and the message can be stored as it is.
fn stored_as_sent(
    sent: &IpcMessage,
    batch: &RecordBatch,
    conformed: &RecordBatch,
    part: &RecordBatch,
    compression: Compression,
    schema: &SchemaRef,
) -> Option<EncodedBatch> {
    let unchanged = part.num_rows() == batch.num_rows()
        && conformed.num_columns() == batch.num_columns()
        && conformed.columns().iter().zip(batch.columns()).all(|(a, b)| Arc::ptr_eq(a, b));
    unchanged.then(|| encoded_as_sent(&sent.header, &sent.body.clone().into_contiguous(), compression, schema)).flatten()
}

/// The ack of a written batch: resolves once every bucket part is durable (group commit in
/// `sync` mode, at once in `os` mode) and, for primary-key tables, applied to RocksDB (so
/// lookups see the write before the client hears of it).
pub(crate) fn durable_ack(parts: Vec<AckPart>, rows: u64, id: Option<BatchIdentity>) -> PendingAck {
    PendingAck::new(async move {
        let waits = parts.iter().flat_map(|part| {
            let buckets = &part.table.buckets;
            part.appended.iter().filter(|(b, _)| buckets[*b as usize].acks_wait_for_sync()).map(move |(b, a)| {
                let log = &buckets[*b as usize];
                // An idempotent write that changed nothing is an entry of no records: its end
                // offset is already durable, the entry maybe not. Its sequence must survive, or
                // the writer's next batch is refused as a gap.
                match a.count == 0 && id.is_some() {
                    true => futures::future::Either::Left(log.wait_durable_written()),
                    false => futures::future::Either::Right(log.wait_durable(a.end_offset())),
                }
            })
        });
        futures::future::try_join_all(waits).await?;
        let applies: Vec<(Arc<pk::PkTable>, u32, u64)> = parts
            .iter()
            .filter_map(|part| part.table.pk().map(|pk| (pk, part)))
            .flat_map(|(pk, part)| part.appended.iter().map(move |(b, a)| (pk.clone(), *b, a.end_offset())))
            .filter(|(pk, b, _)| pk.has_unapplied(*b))
            .collect();
        // One blocking task per bucket: RocksDB takes concurrent writers (a group commit of
        // their write batches, memtable inserts in parallel), and each bucket applies in its
        // own log order under its own lock.
        let applied = futures::future::join_all(
            applies.into_iter().map(|(pk, bucket, upto)| tokio::task::spawn_blocking(move || pk.apply_through(bucket, upto))),
        )
        .await;
        for result in applied {
            result.map_err(|e| Error::Internal(format!("KV apply task failed: {e}")))??;
        }
        let all = || parts.iter().flat_map(|p| p.appended.iter());
        let duplicate = all().next().is_some() && all().all(|(_, a)| a.duplicate);
        let mut buckets = Vec::new();
        for part in parts {
            let partition = part.table.meta().partition.clone();
            buckets.extend(part.appended.into_iter().map(|(bucket, a)| BucketAppend {
                bucket,
                partition: partition.clone(),
                base_offset: a.base_offset,
                count: a.count,
            }));
        }
        Ok(PutAck { rows, buckets, sequence: id.map(|i| i.sequence), duplicate })
    })
}
