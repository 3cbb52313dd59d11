//! The write path of primary-key tables: conform, route, merge every row with the current state
//! of its key, append the change records to the bucket logs, and queue the new rows for RocksDB.
//!
//! A batch is all or nothing: every row of every bucket is merged (and checked) before anything
//! is appended, under the KV locks of all the batch's buckets (taken in bucket order).

use super::auto_increment::IdLease;
use super::merge_rows::{self, MergedPart};
use super::read::PkLayout;
use super::{KvBucketState, PkOp, PkTable, Unapplied};
use crate::catalog::options;
use crate::catalog::TableMeta;
use crate::engine::api::BatchIdentity;
use crate::engine::conform::{self as write, Routing};
use crate::error::{Error, Result};
use crate::kv::store::KvWrite;
use crate::log::{Appended, BatchEncoder, BucketLog, EncodedBatch};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema, SchemaRef};
use std::sync::Arc;

/// How write batches are checked and reshaped: needs only the table's shape, so a partitioned
/// table checks a batch before it knows (or creates) the partitions it goes to.
pub trait PkWriteLayout: PkLayout {
    /// The table columns a batch of `op` must hold (positions, in table order).
    fn required_columns(&self, op: &PkOp) -> Vec<usize> {
        let n = self.row_schema().fields().len();
        match op {
            PkOp::Upsert { targets: None } => (0..n).filter(|&i| Some(i) != self.spec().auto_increment).collect(),
            PkOp::Upsert { targets: Some(t) } => (0..n).filter(|i| self.spec().key.contains(i) || t.contains(i)).collect(),
            PkOp::Delete | PkOp::InsertIfAbsent => {
                let mut k = self.spec().key.clone();
                k.sort_unstable();
                k
            }
        }
    }

    /// Resolves `target_columns` of a partial update into positions, checking them.
    fn resolve_targets(&self, table: &str, names: &[String]) -> Result<Vec<usize>> {
        if matches!(self.spec().merge_engine, crate::catalog::pk::MergeEngine::FirstRow | crate::catalog::pk::MergeEngine::Versioned { .. })
        {
            return Err(Error::invalid(format!(
                "table {table}: partial updates (target_columns) are not supported by the first_row and versioned merge engines"
            )));
        }
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let i = self
                .row_schema()
                .index_of(name)
                .map_err(|_| Error::invalid(format!("table {table}: target column {name:?} does not exist")))?;
            if Some(i) == self.spec().auto_increment {
                return Err(Error::invalid(format!(
                    "table {table}: target column {name:?} is the auto-increment column, which the node assigns"
                )));
            }
            if !out.contains(&i) {
                out.push(i);
            }
        }
        Ok(out)
    }

    /// Reshapes a client batch into exactly the columns `op` needs, with the usual lenient
    /// type rules; returns it with the positions of its columns in the table.
    /// Columns from `first_added` on were added by `alter_table` and may be left out (null).
    fn conform(&self, table: &str, batch: &RecordBatch, op: &PkOp, first_added: usize) -> Result<(RecordBatch, Vec<usize>)> {
        let cols = self.required_columns(op);
        let input = batch.schema();
        let mut keep_fields = Vec::new();
        let mut keep_columns: Vec<ArrayRef> = Vec::new();
        for (i, f) in input.fields().iter().enumerate() {
            let position = self.row_schema().index_of(f.name()).ok();
            let ignore = match position {
                None => false, // unknown columns are refused by `conform` below, by name
                Some(p) if Some(p) == self.spec().auto_increment && matches!(op, PkOp::Upsert { .. }) => {
                    if batch.column(i).null_count() != batch.num_rows() {
                        return Err(Error::invalid(format!(
                            "table {table}: column {:?} is auto-increment: the node assigns it, leave it out (or null)",
                            f.name()
                        )));
                    }
                    true
                }
                Some(p) => matches!(op, PkOp::Delete) && !cols.contains(&p),
            };
            if !ignore {
                keep_fields.push(f.as_ref().clone());
                keep_columns.push(batch.column(i).clone());
            }
        }
        if let PkOp::Upsert { targets: Some(_) } = op {
            if let Some(extra) = keep_fields.iter().find(|f| self.row_schema().index_of(f.name()).is_ok_and(|p| !cols.contains(&p))) {
                return Err(Error::invalid(format!(
                    "table {table}: batch column {:?} is not a target column of this partial update (targets and key columns only)",
                    extra.name()
                )));
            }
        }
        let projected = RecordBatch::try_new_with_options(
            Arc::new(Schema::new(keep_fields)),
            keep_columns,
            &arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
        )?;
        let target: SchemaRef = Arc::new(Schema::new(cols.iter().map(|&c| self.row_schema().field(c).clone()).collect::<Vec<Field>>()));
        let first_added_in_target = cols.iter().filter(|&&c| c < first_added).count();
        Ok((write::conform_allowing_added(&projected, &target, table, first_added_in_target)?, cols))
    }

    /// Checks a DoPut schema (an empty batch) before any data arrives.
    fn check_batch_schema(&self, table: &str, empty: &RecordBatch, op: &PkOp, first_added: usize) -> Result<()> {
        self.conform(table, empty, op, first_added).map(|_| ())
    }

    /// A full-row upsert from a writer that does not send some added columns updates the
    /// columns it sends and keeps the stored values of the others (a partial update), under
    /// the merge engines that take partial updates; first_row and versioned rows are whole.
    fn effective_op(&self, op: &PkOp, batch: &RecordBatch, first_added: usize) -> PkOp {
        let PkOp::Upsert { targets: None } = op else { return op.clone() };
        if matches!(self.spec().merge_engine, crate::catalog::pk::MergeEngine::FirstRow | crate::catalog::pk::MergeEngine::Versioned { .. })
        {
            return op.clone();
        }
        let fields = self.row_schema().fields();
        let missing = (first_added..fields.len()).any(|c| batch.column_by_name(fields[c].name()).is_none());
        if !missing {
            return op.clone();
        }
        let targets = (0..fields.len())
            .filter(|&c| !self.spec().key.contains(&c) && Some(c) != self.spec().auto_increment)
            .filter(|&c| batch.column_by_name(fields[c].name()).is_some())
            .collect();
        PkOp::Upsert { targets: Some(targets) }
    }
}

impl<T: PkLayout + ?Sized> PkWriteLayout for T {}

/// A primary-key write (blocking): conform, route, merge every row with the current state of
/// its key, append the change records to the bucket `logs` (no fsync), and queue the new rows
/// for RocksDB. `meta` is the table's metadata at the same schema version as `pk`.
pub(crate) fn write_batch(
    pk: &PkTable,
    logs: &[Arc<BucketLog>],
    meta: &TableMeta,
    batch: RecordBatch,
    op: &PkOp,
    id: Option<BatchIdentity>,
) -> Result<Vec<(u32, Appended)>> {
    let table = meta.path();
    if matches!(op, PkOp::InsertIfAbsent) {
        if let Some(f) = pk
            .row_schema
            .fields()
            .iter()
            .enumerate()
            .find(|(i, f)| !f.is_nullable() && !pk.spec.key.contains(i) && Some(*i) != pk.spec.auto_increment)
        {
            return Err(Error::invalid(format!(
                "table {table}: insert_if_not_exists needs every non-key column nullable or auto-increment; {:?} is NOT NULL",
                f.1.name()
            )));
        }
    }
    let op = &pk.effective_op(op, &batch, meta.first_added_column());
    let (conformed, cols) = pk.conform(&table, &batch, op, meta.first_added_column())?;
    let bucket_key: Vec<usize> =
        pk.spec.bucket_key.iter().map(|b| cols.iter().position(|c| c == b).expect("bucket key is part of the key")).collect();
    let parts = write::route(&conformed, meta.bucket_num, Routing::Keyed(&bucket_key))?;
    // Auto-increment ids are leased before any bucket lock is taken: a lease that needs a
    // new range on disk fsyncs, and no lock is held across an fsync.
    let mut ids = match (&pk.auto_increment, op) {
        (Some(ai), PkOp::Upsert { .. } | PkOp::InsertIfAbsent) => ai.lease(conformed.num_rows())?,
        _ => IdLease::empty(),
    };
    // Lock every bucket of the batch, in bucket order (route returns them sorted).
    let mut guards: Vec<_> = parts.iter().map(|(b, _)| pk.buckets[*b as usize].state.lock()).collect();
    let compression = options::log_options(&meta.options)?.compression;
    // Merges one bucket's part and encodes its changelog (None: the batch is a duplicate there).
    let merge_one = |bucket: u32, part: &RecordBatch, state: &KvBucketState, ids: &mut IdLease| -> Result<Option<Merged>> {
        let log = &logs[bucket as usize];
        if let Some(id) = id {
            if log.duplicate_of(id).is_some() {
                return Ok(None);
            }
            log.check_in_window(id)?;
        }
        let mut part = merge_rows::merge_part(pk, &table, bucket, state, part, &cols, op, meta.schema_id, ids)?;
        // Encoded here, on the merging thread; the batch itself is not needed after that.
        let changelog = match part.changelog.take() {
            Some(c) => Some((BatchEncoder::new(compression)?.encode(&c)?, rows_of(&c)?)),
            None => None,
        };
        Ok(Some(Merged { part, changelog }))
    };
    // The parts are independent (own bucket, own state, own log) and a merge is mostly RocksDB
    // reads and encoding: a large batch spread over buckets merges them in parallel. Tables with
    // an auto-increment column share one id lease between parts, so they merge one at a time.
    let large = parts.len() > 1 && conformed.num_rows() >= PARALLEL_MERGE_ROWS && pk.auto_increment.is_none();
    let merged: Vec<Option<Merged>> = if large {
        let jobs: Vec<(u32, &RecordBatch, &KvBucketState)> = parts.iter().zip(&guards).map(|((b, p), g)| (*b, p, &**g)).collect();
        in_parallel(jobs, |(bucket, part, state)| merge_one(bucket, part, state, &mut IdLease::empty()))?
    } else {
        let mut out = Vec::with_capacity(parts.len());
        for ((bucket, part), state) in parts.iter().zip(&guards) {
            out.push(merge_one(*bucket, part, state, &mut ids)?);
        }
        out
    };
    if let Some(ai) = &pk.auto_increment {
        ai.release(ids);
    }
    // Everything merged: now write.
    let mut out = Vec::with_capacity(parts.len());
    for (((bucket, _), state), m) in parts.iter().zip(guards.iter_mut()).zip(merged) {
        let log = &logs[*bucket as usize];
        let Some(Merged { part: m, changelog }) = m else {
            out.push((*bucket, log.duplicate_of(id.expect("duplicates have an id")).expect("checked under the lock")));
            continue;
        };
        let appended = match (&changelog, id) {
            (None, None) => {
                out.push((*bucket, Appended { base_offset: log.next_offset(), count: 0, duplicate: false }));
                continue;
            }
            (Some((encoded, rows)), _) => log.append_encoded(encoded, *rows, meta.schema_id, id)?,
            // An idempotent write that changed nothing still records its sequence (0 records).
            (None, Some(_)) => log.append_unconfirmed(
                &RecordBatch::new_empty(pk.changelog_schema.clone()),
                meta.schema_id,
                id,
                &mut BatchEncoder::new(compression)?,
            )?,
        };
        if !m.finals.is_empty() {
            let end = appended.end_offset();
            let mut writes: Vec<KvWrite> = Vec::with_capacity(m.finals.len());
            for (key, bytes) in m.finals {
                state.overlay.insert(key.clone(), (end, bytes.clone()));
                writes.push((key, bytes));
            }
            state.unapplied.push_back(Unapplied { end_offset: end, writes });
        }
        out.push((*bucket, appended));
    }
    Ok(out)
}

/// Rows of a batch below which its parts merge on the calling thread: a thread costs tens of
/// microseconds to start, a part of a few thousand rows about as much to merge.
const PARALLEL_MERGE_ROWS: usize = 4096;

/// One bucket part merged (its `changelog` taken out), with the changelog encoded (and its
/// row count).
struct Merged {
    part: MergedPart,
    changelog: Option<(EncodedBatch, u32)>,
}

fn rows_of(changelog: &RecordBatch) -> Result<u32> {
    u32::try_from(changelog.num_rows()).map_err(|_| Error::ResourceExhausted("a single batch must hold fewer than 2^32 rows".into()))
}

/// Runs `f` on every job, on up to as many threads as the machine has cores (the calling thread
/// is one of them), and returns the results in job order; the first error wins.
fn in_parallel<J: Send, R: Send>(jobs: Vec<J>, f: impl Fn(J) -> Result<R> + Sync) -> Result<Vec<R>> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).min(jobs.len()).max(1);
    let mut lanes: Vec<Vec<(usize, J)>> = (0..threads).map(|_| Vec::new()).collect();
    let n = jobs.len();
    for (i, job) in jobs.into_iter().enumerate() {
        lanes[i % threads].push((i, job));
    }
    let run = |lane: Vec<(usize, J)>| lane.into_iter().map(|(i, job)| f(job).map(|r| (i, r))).collect::<Result<Vec<_>>>();
    let mut results: Vec<Option<R>> = (0..n).map(|_| None).collect();
    std::thread::scope(|scope| -> Result<()> {
        let mut lanes = lanes.into_iter();
        let here = lanes.next().expect("at least one lane");
        let spawned: Vec<_> = lanes.map(|lane| scope.spawn(move || run(lane))).collect();
        let mut all = vec![run(here)];
        for handle in spawned {
            all.push(handle.join().map_err(|_| Error::Internal("a merge thread panicked".into()))?);
        }
        for (i, r) in all.into_iter().collect::<Result<Vec<_>>>()?.into_iter().flatten() {
            results[i] = Some(r);
        }
        Ok(())
    })?;
    Ok(results.into_iter().map(|r| r.expect("every job ran")).collect())
}
