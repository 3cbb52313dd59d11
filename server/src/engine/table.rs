//! A table's runtime (or one partition's): its bucket logs, its KV side when it has a primary
//! key, its current metadata and schema version, and its writers' sequence state.
//!
//! Writes, scans and lookups are in their own modules (`writer`, `scan`, `lookup`); this one
//! opens and recovers the table and keeps its shape consistent when `alter_table` changes it.

use super::pk::{self, PkTable};
use super::sequence::WriterSequences;
use crate::catalog::options::{self, LogOptions};
use crate::catalog::TableMeta;
use crate::error::{Error, Result};
use crate::kv::store::KvStore;
use crate::log::{BucketLog, LogSettings, RecoveryReport};
use arrow_schema::SchemaRef;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// What a table's logs hold and log scans return: its rows, or a primary-key table's changelog.
pub(crate) fn stored_schema(meta: &TableMeta) -> Result<SchemaRef> {
    let rows = meta.arrow_schema()?;
    Ok(if meta.primary_key.is_empty() { rows } else { pk::changelog_schema(&rows) })
}

pub(crate) struct TableRuntime {
    meta: RwLock<Arc<TableMeta>>,
    /// What the bucket logs hold and scans return (for primary-key tables: the changelog), at
    /// the current schema version (`alter_table` adds columns online).
    schema: RwLock<SchemaRef>,
    /// The KV side of a primary-key table, at the current schema version.
    pk: RwLock<Option<Arc<PkTable>>>,
    pub dir: PathBuf,
    pub buckets: Vec<Arc<BucketLog>>,
    /// Positions of the bucket-key columns in the stored schema (empty: no bucket key).
    pub key_columns: Vec<usize>,
    /// Idempotent writers' sequences (the gap check).
    pub writers: WriterSequences,
    /// Next bucket of round-robin / sticky assignment for writes without a writer id.
    pub round_robin: AtomicU64,
}

impl TableRuntime {
    /// Opens (recovering) the bucket logs of a table, and replays a primary-key table's
    /// changelog into the KV store from where the store was applied up to.
    /// `node` carries the node's segment policy, clock and file system; the durability mode
    /// comes from the table's options.
    pub fn open(meta: Arc<TableMeta>, data_dir: &Path, node: &LogSettings, kv: impl FnOnce() -> Result<Arc<KvStore>>) -> Result<Self> {
        let row_schema = meta.arrow_schema()?;
        let opts = options::log_options(&meta.options)?;
        let dir = data_dir.join("tables").join(meta.table_id.to_string());
        let pk = match meta.pk_spec()? {
            Some(spec) => Some(Arc::new(PkTable::new(spec, &meta, row_schema.clone(), kv()?, &dir, node.fs.clone())?)),
            None => None,
        };
        let schema = pk.as_ref().map_or(row_schema, |p| p.changelog_schema.clone());
        let started = std::time::Instant::now();
        let settings = LogSettings { durability: opts.durability, ..node.clone() };
        let mut buckets = Vec::with_capacity(meta.bucket_num as usize);
        let mut total = RecoveryReport::default();
        for b in 0..meta.bucket_num {
            let location = format!("{}/bucket-{b}", meta.path());
            let (log, report) = BucketLog::open(&dir.join(format!("bucket-{b}")), b, location, &settings)?;
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
        if let Some(pk) = &pk {
            for log in &buckets {
                super::pk::recover::replay(pk, log)?;
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
            writers: WriterSequences::with_last(last),
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

    /// The buckets a request names (all when None), each checked and listed once.
    pub fn requested_buckets(&self, requested: &Option<Vec<u32>>) -> Result<Vec<u32>> {
        match requested {
            None => Ok((0..self.buckets.len() as u32).collect()),
            Some(list) => {
                let mut out = Vec::with_capacity(list.len());
                for &b in list {
                    self.bucket(b)?;
                    if out.contains(&b) {
                        return Err(Error::invalid(format!("bucket {b} is listed twice")));
                    }
                    out.push(b);
                }
                Ok(out)
            }
        }
    }

    /// fsyncs every bucket with unsynced writes, then applies to the KV store the durable
    /// primary-key changes whose acknowledging request went away (the os-mode flusher and
    /// shutdown). The KV apply runs on the blocking pool.
    pub async fn sync_all(self: &Arc<Self>) -> Result<()> {
        for b in &self.buckets {
            b.sync().await?;
        }
        let Some(pk) = self.pk() else { return Ok(()) };
        let pending: Vec<(u32, u64)> =
            self.buckets.iter().filter(|b| pk.has_unapplied(b.bucket)).map(|b| (b.bucket, b.acknowledgeable_offset())).collect();
        if pending.is_empty() {
            return Ok(());
        }
        tokio::task::spawn_blocking(move || pending.into_iter().try_for_each(|(bucket, upto)| pk.apply_through(bucket, upto)))
            .await
            .map_err(|e| Error::Internal(format!("KV apply task failed: {e}")))?
    }

    /// Deletes expired segments of every bucket. A primary-key table first makes its KV state
    /// durable and keeps every segment the KV store has not applied. Blocking.
    pub fn apply_retention(&self, now_ms: i64) -> Result<usize> {
        let ttl = self.options()?.ttl;
        let cutoff = now_ms - ttl.as_millis() as i64;
        let pk = self.pk();
        if let Some(pk) = &pk {
            pk.kv.flush()?;
        }
        let mut deleted = 0;
        for b in &self.buckets {
            let keep_from = match &pk {
                Some(pk) => pk.kv.applied_offset(pk.table_id, b.bucket)?.unwrap_or(0),
                None => u64::MAX,
            };
            deleted += b.delete_segments_before(cutoff, keep_from)?;
        }
        Ok(deleted)
    }
}
