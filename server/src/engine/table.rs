//! A table's runtime: its bucket logs, its writers' sequence state, and the append path.

use super::pk::{PkOp, PkTable};
use super::write::{self, Routing};
use crate::catalog::options::{self, LogOptions, NoKeyAssigner};
use crate::catalog::TableMeta;
use crate::error::{Error, Result};
use crate::kv::store::KvStore;
use crate::log::bucket::{Appended, BatchIdentity, BucketLog, RecoveryReport, SegmentPolicy};
use crate::log::ipc::BatchEncoder;
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use strom_flight_api::{BucketAppend, PutAck};

/// What a write does: append to a log table, or a primary-key operation.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    Append,
    Pk(PkOp),
}

pub struct TableRuntime {
    meta: RwLock<Arc<TableMeta>>,
    /// What the bucket logs hold and scans return (for primary-key tables: the changelog), at
    /// the current schema version (`alter_table` adds columns online).
    schema: RwLock<SchemaRef>,
    /// The KV side of a primary-key table, at the current schema version.
    pk: RwLock<Option<Arc<PkTable>>>,
    pub dir: PathBuf,
    pub buckets: Vec<Arc<BucketLog>>,
    key_columns: Vec<usize>,
    /// Highest sequence seen per idempotent writer, across buckets (for the gap check).
    /// One lock per writer serializes that writer's batches, so a batch is appended to all of
    /// its buckets before the next one starts.
    writers: WriterSequences,
    round_robin: AtomicU64,
}

impl TableRuntime {
    /// Opens (recovering) the bucket logs of a table.
    pub fn open(meta: Arc<TableMeta>, data_dir: &Path, policy: SegmentPolicy, kv: impl FnOnce() -> Result<Arc<KvStore>>) -> Result<Self> {
        let row_schema = meta.arrow_schema()?;
        let opts = options::log_options(&meta.options)?;
        let dir = data_dir.join("tables").join(meta.table_id.to_string());
        let pk = match meta.pk_spec()? {
            Some(spec) => Some(Arc::new(PkTable::new(
                spec,
                meta.table_id,
                row_schema.clone(),
                meta.schema_columns.clone(),
                meta.bucket_num,
                kv()?,
                &dir,
            )?)),
            None => None,
        };
        let schema = pk.as_ref().map_or(row_schema, |p| p.changelog_schema.clone());
        let started = std::time::Instant::now();
        let mut buckets = Vec::with_capacity(meta.bucket_num as usize);
        let mut total = RecoveryReport::default();
        for b in 0..meta.bucket_num {
            let location = format!("{}/bucket-{b}", meta.path());
            let (log, report) = BucketLog::open(&dir.join(format!("bucket-{b}")), b, location, policy, opts.durability)?;
            total.segments += report.segments;
            total.batches += report.batches;
            total.truncated_bytes += report.truncated_bytes;
            total.corrupt_ranges += report.corrupt_ranges;
            buckets.push(Arc::new(log));
        }
        tracing::info!(table = %meta.path(), buckets = meta.bucket_num, segments = total.segments, batches = total.batches,
            truncated_bytes = total.truncated_bytes, corrupt_ranges = total.corrupt_ranges, elapsed_ms = started.elapsed().as_millis() as u64, "table opened");
        let mut last: HashMap<i64, i64> = HashMap::new();
        for b in &buckets {
            for (w, s) in b.writer_last_sequences() {
                let e = last.entry(w).or_insert(s);
                *e = (*e).max(s);
            }
        }
        let writers = last.into_iter().map(|(w, s)| (w, Arc::new(tokio::sync::Mutex::new(Some(s))))).collect();
        if let Some(pk) = &pk {
            for log in &buckets {
                pk.replay(log)?;
            }
        }
        let key_columns = meta.bucket_key.iter().map(|k| schema.index_of(k)).collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Self {
            meta: RwLock::new(meta),
            schema: RwLock::new(schema),
            pk: RwLock::new(pk),
            dir,
            buckets,
            key_columns,
            writers: Mutex::new(writers),
            round_robin: AtomicU64::new(0),
        })
    }

    pub fn meta(&self) -> Arc<TableMeta> {
        self.meta.read().clone()
    }

    /// What the logs hold and scans return, at the current schema version.
    pub fn schema(&self) -> SchemaRef {
        self.schema.read().clone()
    }

    /// The primary-key side at the current schema version (None for log tables).
    pub fn pk(&self) -> Option<Arc<PkTable>> {
        self.pk.read().clone()
    }

    pub fn is_pk(&self) -> bool {
        self.pk.read().is_some()
    }

    pub fn options(&self) -> Result<LogOptions> {
        options::log_options(&self.meta.read().options)
    }

    /// Applies changed options to the live table.
    pub fn update_meta(&self, meta: Arc<TableMeta>) -> Result<()> {
        let opts = options::log_options(&meta.options)?;
        for b in &self.buckets {
            b.set_durability(opts.durability);
        }
        // Meta, schema and KV shape change together under the meta lock, which readers of
        // `shape` take first: a write never pairs one version's schema id with another's columns.
        let mut current = self.meta.write();
        if meta.schema_id != current.schema_id {
            // Columns were added: writes and reads from now on use the new shape; a write that
            // started before finishes with the old one (its rows carry the old schema id).
            let row_schema = meta.arrow_schema()?;
            let mut pk = self.pk.write();
            let evolved = match (&*pk, meta.pk_spec()?) {
                (Some(old), Some(spec)) => Some(Arc::new(old.evolve(spec, row_schema.clone(), meta.schema_columns.clone()))),
                _ => None,
            };
            *self.schema.write() = evolved.as_ref().map_or(row_schema, |p| p.changelog_schema.clone());
            if evolved.is_some() {
                *pk = evolved;
            }
        }
        *current = meta;
        Ok(())
    }

    /// The metadata with the stored schema and KV side of the same schema version.
    pub fn shape(&self) -> (Arc<TableMeta>, SchemaRef, Option<Arc<PkTable>>) {
        let meta = self.meta.read();
        (meta.clone(), self.schema.read().clone(), self.pk.read().clone())
    }

    pub fn bucket(&self, b: u32) -> Result<&Arc<BucketLog>> {
        self.buckets
            .get(b as usize)
            .ok_or_else(|| Error::invalid(format!("table {} has no bucket {b} (buckets 0..{})", self.meta().path(), self.buckets.len())))
    }

    /// Appends one client batch and waits until it is durable under the table's mode.
    pub async fn append(self: &Arc<Self>, batch: RecordBatch, id: Option<BatchIdentity>) -> Result<PutAck> {
        self.append_unconfirmed(batch, id).await?.wait_durable().await
    }

    /// Conforms, routes, encodes and writes one client batch (page cache, no fsync). Batches
    /// of one writer are written in call order. The returned `PendingAck` resolves once the
    /// batch is durable; retries of a stored (writer, sequence) resolve to the original offsets.
    pub async fn append_unconfirmed(self: &Arc<Self>, batch: RecordBatch, id: Option<BatchIdentity>) -> Result<PendingAck> {
        self.write_unconfirmed(batch, WriteOp::Append, id).await
    }

    /// Writes one client batch (an append, or a primary-key upsert/delete/insert) into the page
    /// cache; the returned `PendingAck` resolves once it is durable (and, for primary-key
    /// tables, applied to the KV store).
    pub async fn write_unconfirmed(self: &Arc<Self>, batch: RecordBatch, op: WriteOp, id: Option<BatchIdentity>) -> Result<PendingAck> {
        match (&op, self.is_pk()) {
            (WriteOp::Append, true) => {
                return Err(Error::FailedPrecondition(format!(
                    "table {} has a primary key: write it with \"upsert\" or \"delete\", not \"append\"",
                    self.meta().path()
                )))
            }
            (WriteOp::Pk(_), false) => {
                return Err(Error::FailedPrecondition(format!(
                    "table {} is a log table: \"upsert\" and \"delete\" need a primary-key table",
                    self.meta().path()
                )))
            }
            _ => {}
        }
        let path = self.meta().path();
        let mut writer = WriterGate::enter(&self.writers, &path, id).await?;
        let rows = batch.num_rows() as u64;
        let part = self.write_unchecked(batch, op, id).await?;
        writer.passed();
        Ok(PendingAck { parts: vec![part], rows, id })
    }

    /// Writes without the writer's sequence-gap check (a partitioned table checks sequences
    /// once for the whole batch, then writes each partition's rows here).
    pub(crate) async fn write_unchecked(self: &Arc<Self>, batch: RecordBatch, op: WriteOp, id: Option<BatchIdentity>) -> Result<AckPart> {
        let this = self.clone();
        let appended = tokio::task::spawn_blocking(move || match op {
            WriteOp::Append => this.write_parts(batch, id),
            WriteOp::Pk(op) => this.write_pk_parts(batch, &op, id),
        })
        .await
        .map_err(|e| Error::Internal(format!("append task failed: {e}")))??;
        Ok(AckPart { table: self.clone(), appended })
    }

    /// The blocking half of an append: conform, route, encode and write (no fsync).
    fn write_parts(&self, batch: RecordBatch, id: Option<BatchIdentity>) -> Result<Vec<(u32, Appended)>> {
        let (meta, schema, _) = self.shape();
        let opts = options::log_options(&meta.options)?;
        let conformed = write::conform_allowing_added(&batch, &schema, &meta.path(), meta.first_added_column())?;
        let routing = if self.key_columns.is_empty() {
            // With an idempotent writer the choice derives from (writer, sequence) so a retry
            // lands in the same bucket as the original.
            let choice = match (opts.no_key_assigner, id) {
                (NoKeyAssigner::RoundRobin, Some(id)) => id.sequence as u64,
                (NoKeyAssigner::Sticky, Some(id)) => {
                    let mut bytes = id.writer_id.to_le_bytes().to_vec();
                    bytes.extend_from_slice(&id.sequence.to_le_bytes());
                    murmur3::murmur3_32(&mut std::io::Cursor::new(bytes), 0).unwrap_or(0) as u64
                }
                (_, None) => self.round_robin.fetch_add(1, Ordering::Relaxed),
            };
            Routing::NoKey { assigner: opts.no_key_assigner, choice }
        } else {
            Routing::Keyed(&self.key_columns)
        };
        let parts = write::route(&conformed, meta.bucket_num, routing)?;
        let mut encoder = BatchEncoder::new(opts.compression)?;
        let mut out = Vec::with_capacity(parts.len());
        for (bucket, part) in parts {
            let log = &self.buckets[bucket as usize];
            if let Some(id) = id {
                log.check_in_window(id)?;
            }
            let encoded = encoder.encode(&part)?;
            let appended = log.append_unconfirmed(&encoded, part.num_rows() as u32, meta.schema_id, id)?;
            out.push((bucket, appended));
        }
        Ok(out)
    }

    /// fsyncs every bucket (os-mode flusher and shutdown).
    pub async fn sync_all(&self) -> Result<()> {
        for b in &self.buckets {
            b.sync().await?;
        }
        Ok(())
    }

    /// Applies durable primary-key changes whose acknowledging request went away.
    pub fn apply_durable(&self) -> Result<()> {
        if let Some(pk) = self.pk() {
            for log in &self.buckets {
                if pk.has_unapplied(log.bucket) {
                    pk.apply_through(log.bucket, log.acknowledgeable_offset())?;
                }
            }
        }
        Ok(())
    }

    /// Deletes expired segments of every bucket. A primary-key table first makes its KV state
    /// durable and keeps every segment the KV store has not applied.
    pub fn apply_retention(&self, now_ms: i64) -> Result<usize> {
        let ttl = self.options()?.ttl;
        let cutoff = now_ms - ttl.as_millis() as i64;
        if let Some(pk) = self.pk() {
            pk.kv.flush()?;
        }
        let mut deleted = 0;
        for b in &self.buckets {
            let keep_from = match self.pk() {
                Some(pk) => pk.kv.applied_offset(pk.table_id, b.bucket)?.unwrap_or(0),
                None => u64::MAX,
            };
            deleted += b.delete_segments_before(cutoff, keep_from)?;
        }
        Ok(deleted)
    }
}

/// Idempotent writers' highest sequence so far, per writer (the gap check).
pub(crate) type WriterSequences = Mutex<HashMap<i64, Arc<tokio::sync::Mutex<Option<i64>>>>>;

/// Holds a writer's lock while one of its batches is written, so its batches are written in
/// call order, and rejects a sequence gap.
pub(crate) struct WriterGate {
    state: Option<(tokio::sync::OwnedMutexGuard<Option<i64>>, i64)>,
}

impl WriterGate {
    pub(crate) async fn enter(writers: &WriterSequences, path: &str, id: Option<BatchIdentity>) -> Result<Self> {
        let Some(id) = id else { return Ok(Self { state: None }) };
        let lock = writers.lock().entry(id.writer_id).or_default().clone();
        let guard = lock.lock_owned().await;
        if let Some(last) = *guard {
            if id.sequence > last + 1 {
                return Err(Error::FailedPrecondition(format!(
                    "table {path}: sequence gap for writer {}: expected {} (or a retry <= {last}), got {}",
                    id.writer_id,
                    last + 1,
                    id.sequence
                )));
            }
        }
        Ok(Self { state: Some((guard, id.sequence)) })
    }

    /// The batch was written: its sequence is the writer's latest.
    pub(crate) fn passed(&mut self) {
        if let Some((guard, sequence)) = &mut self.state {
            **guard = Some(guard.map_or(*sequence, |s| s.max(*sequence)));
        }
    }
}

/// The bucket appends of a batch in one table (or one partition).
pub struct AckPart {
    table: Arc<TableRuntime>,
    appended: Vec<(u32, Appended)>,
}

/// A written batch whose acknowledgement waits for durability.
pub struct PendingAck {
    pub(crate) parts: Vec<AckPart>,
    pub(crate) rows: u64,
    pub(crate) id: Option<BatchIdentity>,
}

impl PendingAck {
    /// Resolves once every bucket part is durable (group commit in `sync` mode; at once in `os`).
    pub async fn wait_durable(self) -> Result<PutAck> {
        let waits = self.parts.iter().flat_map(|part| {
            let buckets = &part.table.buckets;
            part.appended
                .iter()
                .filter(|(b, _)| buckets[*b as usize].acks_wait_for_sync())
                .map(|(b, a)| buckets[*b as usize].wait_durable(a.end_offset()))
        });
        futures::future::try_join_all(waits).await?;
        for part in &self.parts {
            if let Some(pk) = part.table.pk() {
                // Durable: apply to RocksDB before acknowledging, so lookups see the write.
                for (b, a) in &part.appended {
                    pk.apply_through(*b, a.end_offset())?;
                }
            }
        }
        let all = || self.parts.iter().flat_map(|p| p.appended.iter());
        let duplicate = all().next().is_some() && all().all(|(_, a)| a.duplicate);
        let mut buckets = Vec::new();
        for part in self.parts {
            let partition = part.table.meta().partition.clone();
            buckets.extend(part.appended.into_iter().map(|(bucket, a)| BucketAppend {
                bucket,
                partition: partition.clone(),
                base_offset: a.base_offset,
                count: a.count,
            }));
        }
        Ok(PutAck { rows: self.rows, buckets, sequence: self.id.map(|i| i.sequence), duplicate })
    }
}
