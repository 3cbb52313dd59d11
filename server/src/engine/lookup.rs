//! Point and prefix lookups as requests run them: a plan resolved once per ticket or DoExchange
//! stream, then executed per key batch. A few point lookups (block-cache reads of microseconds)
//! run on the request's task; larger batches, prefix lookups, answers that must be merged across
//! partitions and their encoding run on the blocking pool. With `insert_if_not_exists`, missing
//! keys go through the write path (durably) before they are answered.

use super::api::{IpcMessage, Lookup, LookupAnswer};
use super::conform;
use super::partitions::{group_rows, PartitionedTable};
use super::pk::read::{PkLayout, PkShape};
use super::pk::PkOp;
use super::registry::TableHandle;
use super::table::TableRuntime;
use super::writer::{durable_ack, write_to_runtime, WriteOp};
use crate::error::{Error, Result};
use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{Int32Array, RecordBatch, UInt32Array};
use arrow_schema::SchemaRef;
use std::sync::Arc;
use strom_flight_api::{LookupKind, LookupRequest};

/// Point lookups of at most this many keys run on the request's task: one key is a pinned
/// RocksDB `Get` from the block cache, a few microseconds, less than a hop to the blocking pool
/// (single-key latency is the target there). Anything larger (a `MultiGet`) is blocking work.
const INLINE_LOOKUP_KEYS: usize = 1;

/// Where a lookup goes: a table, or the partitions of a partitioned table.
enum LookupTarget {
    Table(Arc<TableRuntime>),
    /// Keys carry their partition-key values; `partition`, when given, must be theirs.
    Partitioned {
        table: Arc<PartitionedTable>,
        partition: Option<String>,
    },
}

/// A lookup resolved against its table.
struct LookupPlan {
    target: LookupTarget,
    path: String,
    kind: LookupKind,
    projection: Vec<usize>,
    insert_if_not_exists: bool,
    /// What key batches must look like (lenient types, by name).
    key_schema: SchemaRef,
    /// The table's shape when the plan was made.
    layout: Arc<dyn PkLayout + Send + Sync>,
}

/// The engine's [`Lookup`] handle.
pub(crate) struct EngineLookup(Arc<LookupPlan>);

impl EngineLookup {
    pub fn open(handle: TableHandle, req: &LookupRequest) -> Result<Self> {
        let (target, layout, path): (_, Arc<dyn PkLayout + Send + Sync>, _) = match handle {
            TableHandle::Plain(table) => {
                let path = table.meta().path();
                if req.partition.is_some() {
                    return Err(Error::invalid(format!("table {path} is not partitioned")));
                }
                let pk = table.pk().ok_or_else(|| no_primary_key(&path))?;
                (LookupTarget::Table(table), pk, path)
            }
            TableHandle::Partitioned(table) => {
                let meta = table.meta();
                let shape = PkShape::of(&meta)?.ok_or_else(|| no_primary_key(&meta.path()))?;
                if let Some(p) = &req.partition {
                    meta.parse_partition_name(p)?;
                }
                (LookupTarget::Partitioned { table, partition: req.partition.clone() }, Arc::new(shape), meta.path())
            }
        };
        if req.insert_if_not_exists && req.lookup == LookupKind::Prefix {
            return Err(Error::invalid("insert_if_not_exists applies to primary_key lookups, not prefix lookups"));
        }
        let projection = layout.projection(&path, &req.columns, true)?;
        let key_schema = layout.lookup_key_schema(&path, req.lookup)?;
        Ok(Self(Arc::new(LookupPlan {
            projection,
            key_schema,
            kind: req.lookup,
            insert_if_not_exists: req.insert_if_not_exists,
            path,
            target,
            layout,
        })))
    }
}

fn no_primary_key(path: &str) -> Error {
    Error::FailedPrecondition(format!("table {path} has no primary key: lookups need a primary-key table"))
}

#[async_trait::async_trait]
impl Lookup for EngineLookup {
    fn table_path(&self) -> &str {
        &self.0.path
    }

    fn result_schema(&self, with_key_index: bool) -> SchemaRef {
        self.0.layout.result_schema(&self.0.projection, with_key_index)
    }

    fn check_key_schema(&self, schema: &SchemaRef) -> Result<()> {
        self.0.conform_keys(&RecordBatch::new_empty(schema.clone())).map(|_| ())
    }

    fn keys_from_json(&self, keys: &[Vec<serde_json::Value>]) -> Result<RecordBatch> {
        self.0.layout.keys_from_json(&self.0.path, self.0.kind, keys)
    }

    async fn lookup(&self, keys: RecordBatch, with_key_index: bool) -> Result<LookupAnswer> {
        let plan = self.0.clone();
        let keys = plan.conform_keys(&keys)?;
        if plan.insert_if_not_exists {
            let found = plan.clone().find_inserting(keys).await?;
            return blocking(move || answer(found, with_key_index)).await;
        }
        if keys.num_rows() <= INLINE_LOOKUP_KEYS && plan.kind == LookupKind::PrimaryKey {
            return answer(plan.find(&keys)?, with_key_index);
        }
        blocking(move || answer(plan.find(&keys)?, with_key_index)).await
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Internal(format!("lookup task failed: {e}")))?
}

/// The encoded answer (`_key_index` first only when asked for).
fn answer(found: RecordBatch, with_key_index: bool) -> Result<LookupAnswer> {
    let batch = match with_key_index {
        true => found,
        false => found.project(&(1..found.num_columns()).collect::<Vec<_>>())?,
    };
    Ok(LookupAnswer { rows: batch.num_rows(), message: IpcMessage::encode(&batch)? })
}

impl LookupPlan {
    /// Conforms a client key batch (columns by name, safe casts, no nulls).
    fn conform_keys(&self, keys: &RecordBatch) -> Result<RecordBatch> {
        conform::conform(keys, &self.key_schema, &self.path)
    }

    /// The rows found for a conformed key batch, `_key_index` first, in request order
    /// (blocking for large batches: the caller decides where it runs).
    fn find(&self, keys: &RecordBatch) -> Result<RecordBatch> {
        match &self.target {
            LookupTarget::Table(table) => self.find_in(table, keys),
            LookupTarget::Partitioned { table, partition } => {
                let mut answers = Vec::new();
                for (name, rows) in self.partition_groups(table, partition.as_deref(), keys)? {
                    let runtime = match table.partition(&name) {
                        Ok(r) => r,
                        Err(Error::NotFound(_)) => continue, // a partition that does not exist holds no rows
                        Err(e) => return Err(e),
                    };
                    answers.push(renumber(self.find_in(&runtime, &subset(keys, &rows)?)?, &rows)?);
                }
                match answers.len() {
                    0 => Ok(RecordBatch::new_empty(self.layout.result_schema(&self.projection, true))),
                    _ => merge_in_request_order(answers),
                }
            }
        }
    }

    /// The keys' partitions, checked against the request's partition.
    fn partition_groups(&self, table: &PartitionedTable, partition: Option<&str>, keys: &RecordBatch) -> Result<Vec<(String, Vec<u32>)>> {
        let names = table.partition_names(keys)?;
        if let Some(p) = partition {
            if let Some(row) = names.iter().position(|n| n != p) {
                return Err(Error::invalid(format!(
                    "table {}: the lookup names partition {p:?} but key {row} belongs to partition {:?}",
                    self.path, names[row]
                )));
            }
        }
        Ok(group_rows(&names))
    }

    /// Looks keys up in one table (or partition); the answer has `_key_index` first.
    fn find_in(&self, table: &TableRuntime, keys: &RecordBatch) -> Result<RecordBatch> {
        let pk = table.pk().ok_or_else(|| Error::Internal("not a primary-key table".into()))?;
        let found = super::pk::read::lookup(&pk, &self.path, self.kind, keys, table.buckets.len() as u32, &self.projection)?;
        super::pk::read::result_batch(&pk, found, &self.projection, true)
    }

    /// `find`, inserting the keys that have no row first (durably, through the write path).
    async fn find_inserting(self: Arc<Self>, keys: RecordBatch) -> Result<RecordBatch> {
        let groups: Vec<(Arc<TableRuntime>, Option<Vec<u32>>)> = match &self.target {
            LookupTarget::Table(table) => vec![(table.clone(), None)],
            LookupTarget::Partitioned { table, partition } => {
                let mut out = Vec::new();
                for (name, rows) in self.partition_groups(table, partition.as_deref(), &keys)? {
                    out.push((table.partition(&name)?, Some(rows)));
                }
                out
            }
        };
        let mut answers = Vec::with_capacity(groups.len());
        for (runtime, rows) in groups {
            let part = match &rows {
                Some(rows) => subset(&keys, rows)?,
                None => keys.clone(),
            };
            let answer = self.clone().insert_missing(runtime, part).await?;
            answers.push(match &rows {
                Some(rows) => renumber(answer, rows)?,
                None => answer,
            });
        }
        let plan = self.clone();
        blocking(move || match answers.len() {
            0 => Ok(RecordBatch::new_empty(plan.layout.result_schema(&plan.projection, true))),
            _ => merge_in_request_order(answers),
        })
        .await
    }

    /// Looks `keys` up in one table, inserts the ones without a row and returns all of them,
    /// in request order.
    async fn insert_missing(self: Arc<Self>, table: Arc<TableRuntime>, keys: RecordBatch) -> Result<RecordBatch> {
        let (plan, t, k) = (self.clone(), table.clone(), keys.clone());
        let found = blocking(move || plan.find_in(&t, &k)).await?;
        let mut present = vec![false; keys.num_rows()];
        for &i in found.column(0).as_primitive::<Int32Type>().values() {
            present[i as usize] = true;
        }
        let missing: Vec<u32> = (0..keys.num_rows() as u32).filter(|&i| !present[i as usize]).collect();
        if missing.is_empty() {
            return Ok(found);
        }
        let absent = subset(&keys, &missing)?;
        let part = write_to_runtime(&table, absent.clone(), None, WriteOp::Pk(PkOp::InsertIfAbsent), None).await?;
        durable_ack(vec![part], absent.num_rows() as u64, None).durable().await?;
        let plan = self.clone();
        let inserted = blocking(move || plan.find_in(&table, &absent)).await?;
        merge_in_request_order(vec![found, renumber(inserted, &missing)?])
    }
}

fn subset(keys: &RecordBatch, rows: &[u32]) -> Result<RecordBatch> {
    if rows.len() == keys.num_rows() {
        return Ok(keys.clone());
    }
    Ok(arrow_select::take::take_record_batch(keys, &UInt32Array::from(rows.to_vec()))?)
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
