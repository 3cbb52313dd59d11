//! Reads of primary-key tables: point and prefix lookups (batched into RocksDB `multi_get` and
//! iterator seeks), snapshot scans from one RocksDB snapshot, filters and row counts.

use super::json::json_to_value;
use super::PkTable;
use crate::catalog::pk::PkSpec;
use crate::catalog::TableMeta;
use crate::engine::api::{IpcMessage, SnapshotChunk};
use crate::engine::conform as write;
use crate::error::{Error, Result};
use crate::kv::keys::{bucket_prefix, encode_array_key_value, BUCKET_PREFIX_LEN};
use crate::kv::store::KvSnapshot;
use crate::kv::value::{rows_to_batch, ProjectedRows, Value};
use arrow_array::{ArrayRef, Int32Array, RecordBatch, RecordBatchOptions};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::cmp::Ordering;
use std::sync::Arc;
use strom_flight_api::{LookupKind, Predicate, PredicateOp, KEY_INDEX_COLUMN};

/// A predicate compiled against the table's columns.
#[derive(Clone)]
pub struct Filter {
    column: usize,
    op: PredicateOp,
    operands: Vec<Value>,
}

fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y),
        (Value::Int(x), Value::Float(y)) => (*x as f64).partial_cmp(y),
        (Value::Float(x), Value::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Value::Decimal(x), Value::Decimal(y)) => Some(x.cmp(y)),
        (Value::Str(x), Value::Str(y)) => Some(x.cmp(y)),
        (Value::Bytes(x), Value::Bytes(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

impl Filter {
    pub fn matches(&self, row: &[Value]) -> bool {
        let v = &row[self.column];
        match self.op {
            PredicateOp::IsNull => v.is_null(),
            PredicateOp::IsNotNull => !v.is_null(),
            _ if v.is_null() => false,
            PredicateOp::In => self.operands.iter().any(|o| compare(v, o) == Some(Ordering::Equal)),
            op => {
                let Some(ord) = compare(v, &self.operands[0]) else { return false };
                match op {
                    PredicateOp::Eq => ord == Ordering::Equal,
                    PredicateOp::NotEq => ord != Ordering::Equal,
                    PredicateOp::Lt => ord == Ordering::Less,
                    PredicateOp::LtEq => ord != Ordering::Greater,
                    PredicateOp::Gt => ord == Ordering::Greater,
                    PredicateOp::GtEq => ord != Ordering::Less,
                    PredicateOp::In | PredicateOp::IsNull | PredicateOp::IsNotNull => unreachable!("handled above"),
                }
            }
        }
    }
}

/// What a lookup found: the projected columns of the rows found and, for each, the row of the
/// request's key batch it answers (in request order; a prefix may answer with many rows).
pub struct LookupResult {
    pub key_index: Vec<i32>,
    pub columns: Vec<ArrayRef>,
}

/// What reads need to know about a primary-key table's shape (no storage): projections, key
/// schemas, filters. A partitioned table answers these before any partition exists.
pub trait PkLayout {
    fn spec(&self) -> &PkSpec;
    fn row_schema(&self) -> &SchemaRef;

    /// Column positions of a lookup or scan result: `columns` (or all), plus the key columns
    /// when `with_keys` and they are not listed.
    fn projection(&self, table: &str, columns: &Option<Vec<String>>, with_keys: bool) -> Result<Vec<usize>> {
        let Some(names) = columns else { return Ok((0..self.row_schema().fields().len()).collect()) };
        if names.is_empty() {
            return Err(Error::invalid("\"columns\" must name at least one column"));
        }
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            let i = self.row_schema().index_of(n).map_err(|_| Error::invalid(format!("table {table} has no column {n:?}")))?;
            if out.contains(&i) {
                return Err(Error::invalid(format!("column {n:?} is requested twice")));
            }
            out.push(i);
        }
        if with_keys {
            for &k in &self.spec().key {
                if !out.contains(&k) {
                    out.push(k);
                }
            }
        }
        Ok(out)
    }

    /// Compiles a snapshot filter.
    fn compile_filter(&self, table: &str, predicates: &[Predicate]) -> Result<Vec<Filter>> {
        predicates
            .iter()
            .map(|p| {
                let column = self
                    .row_schema()
                    .index_of(&p.column)
                    .map_err(|_| Error::invalid(format!("filter: table {table} has no column {:?}", p.column)))?;
                let dt = self.row_schema().field(column).data_type();
                let bad = |e: String| Error::invalid(format!("filter on column {:?}: {e}", p.column));
                let operands = match (p.op, &p.value) {
                    (PredicateOp::IsNull | PredicateOp::IsNotNull, None) => vec![],
                    (PredicateOp::IsNull | PredicateOp::IsNotNull, Some(_)) => {
                        return Err(bad("is_null / is_not_null take no \"value\"".into()))
                    }
                    (PredicateOp::In, Some(serde_json::Value::Array(items))) => {
                        items.iter().map(|v| json_to_value(v, dt).map_err(bad)).collect::<Result<_>>()?
                    }
                    (PredicateOp::In, _) => return Err(bad("\"in\" needs an array \"value\"".into())),
                    (_, Some(v)) => vec![json_to_value(v, dt).map_err(bad)?],
                    (_, None) => return Err(bad("a comparison needs a \"value\"".into())),
                };
                Ok(Filter { column, op: p.op, operands })
            })
            .collect()
    }

    /// The key columns a lookup of `kind` takes (positions in the table, in key order).
    fn lookup_key_columns(&self, table: &str, kind: LookupKind) -> Result<Vec<usize>> {
        match kind {
            LookupKind::PrimaryKey => Ok(self.spec().key.clone()),
            LookupKind::Prefix => match self.spec().prefix_len {
                Some(n) => Ok(self.spec().key[..n].to_vec()),
                None => Err(Error::invalid(format!(
                    "table {table} has no prefix-lookup index: its bucket key must be a strict prefix of the primary key"
                ))),
            },
        }
    }

    /// The Arrow schema of a lookup's key batch.
    fn lookup_key_schema(&self, table: &str, kind: LookupKind) -> Result<SchemaRef> {
        let cols = self.lookup_key_columns(table, kind)?;
        Ok(Arc::new(Schema::new(cols.iter().map(|&c| self.row_schema().field(c).clone().with_nullable(false)).collect::<Vec<Field>>())))
    }

    /// JSON keys of a lookup ticket as a key batch.
    /// Each key lists its values in the order the primary key declares these columns (which
    /// differs from the storage order when partition keys are not declared first).
    fn keys_from_json(&self, table: &str, kind: LookupKind, keys: &[Vec<serde_json::Value>]) -> Result<RecordBatch> {
        let stored = self.lookup_key_columns(table, kind)?;
        let declared = &self.spec().declared_key;
        let mut cols = stored.clone();
        cols.sort_by_key(|c| declared.iter().position(|d| d == c));
        let schema =
            Arc::new(Schema::new(cols.iter().map(|&c| self.row_schema().field(c).clone().with_nullable(false)).collect::<Vec<Field>>()));
        let mut rows = Vec::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            if key.len() != cols.len() {
                let names: Vec<&str> = cols.iter().map(|&c| self.row_schema().field(c).name().as_str()).collect();
                return Err(Error::invalid(format!(
                    "key {i} has {} values; table {table} expects {} ({})",
                    key.len(),
                    cols.len(),
                    names.join(", ")
                )));
            }
            let mut row = Vec::with_capacity(cols.len());
            for (v, &c) in key.iter().zip(&cols) {
                let field = self.row_schema().field(c);
                let value =
                    json_to_value(v, field.data_type()).map_err(|e| Error::invalid(format!("key {i}, column {:?}: {e}", field.name())))?;
                if value.is_null() {
                    return Err(Error::invalid(format!("key {i}, column {:?}: a key value cannot be null", field.name())));
                }
                row.push(value);
            }
            rows.push(row);
        }
        rows_to_batch(&schema, &rows)
    }

    /// The schema of lookup results (DoExchange adds `_key_index` first).
    fn result_schema(&self, projection: &[usize], with_key_index: bool) -> SchemaRef {
        let mut fields = Vec::new();
        if with_key_index {
            fields.push(Field::new(KEY_INDEX_COLUMN, DataType::Int32, false));
        }
        fields.extend(projection.iter().map(|&c| self.row_schema().field(c).clone()));
        Arc::new(Schema::new(fields))
    }
}

/// A primary key given as JSON values in the order the key declares its columns (`after_key`,
/// `keys_upto`), encoded as the node orders keys: the key columns' encodings in storage order,
/// without the bucket prefix. `what` names the request field in errors.
pub fn encode_key_suffix(layout: &dyn PkLayout, path: &str, what: &str, values: &[serde_json::Value]) -> Result<Vec<u8>> {
    let spec = layout.spec();
    if values.len() != spec.declared_key.len() {
        let names: Vec<&str> = spec.declared_key.iter().map(|&c| layout.row_schema().field(c).name().as_str()).collect();
        return Err(Error::invalid(format!(
            "{what} has {} values; the primary key of {path} has {} ({})",
            values.len(),
            names.len(),
            names.join(", ")
        )));
    }
    // Columns of the key batch follow the declared order; storage order puts partition keys first.
    let keys = layout.keys_from_json(path, LookupKind::PrimaryKey, &[values.to_vec()]).map_err(|e| match e {
        Error::InvalidArgument(m) => Error::InvalidArgument(format!("{what}: {m}")),
        other => other,
    })?;
    let mut suffix = Vec::new();
    for stored in &spec.key {
        let declared = spec.declared_key.iter().position(|d| d == stored).expect("the same key columns");
        encode_array_key_value(keys.column(declared).as_ref(), 0, &mut suffix)?;
    }
    Ok(suffix)
}

/// The shape of a primary-key table without its storage.
pub struct PkShape {
    pub spec: PkSpec,
    pub row_schema: SchemaRef,
}

impl PkShape {
    /// The shape of `meta`'s table (None for log tables).
    pub fn of(meta: &TableMeta) -> Result<Option<Self>> {
        match meta.pk_spec()? {
            Some(spec) => Ok(Some(Self { spec, row_schema: meta.arrow_schema()? })),
            None => Ok(None),
        }
    }
}

impl PkLayout for PkShape {
    fn spec(&self) -> &PkSpec {
        &self.spec
    }
    fn row_schema(&self) -> &SchemaRef {
        &self.row_schema
    }
}

impl PkLayout for PkTable {
    fn spec(&self) -> &PkSpec {
        &self.spec
    }
    fn row_schema(&self) -> &SchemaRef {
        &self.row_schema
    }
}

/// The buckets of a key batch's rows (its columns are the lookup key columns of `kind`).
fn buckets_of_keys(pk: &PkTable, keys: &RecordBatch, key_cols: &[usize], bucket_num: u32) -> Result<Vec<u32>> {
    let positions: Vec<usize> =
        pk.spec.bucket_key.iter().map(|b| key_cols.iter().position(|k| k == b).expect("bucket key ⊆ lookup key")).collect();
    write::buckets_of_rows(keys, &positions, bucket_num)
}

/// Looks up every row of `keys` (conformed to `lookup_key_schema`), in request order, and
/// returns the `projection` columns of the rows found. Stored rows are decoded straight into
/// the result's Arrow builders, pinned in RocksDB's block cache (no copy, no `Value`s).
pub fn lookup(
    pk: &PkTable,
    table: &str,
    kind: LookupKind,
    keys: &RecordBatch,
    bucket_num: u32,
    projection: &[usize],
) -> Result<LookupResult> {
    let key_cols = pk.lookup_key_columns(table, kind)?;
    let buckets = buckets_of_keys(pk, keys, &key_cols, bucket_num)?;
    let mut encoded = Vec::with_capacity(keys.num_rows());
    for (r, &bucket) in buckets.iter().enumerate() {
        let mut key = Vec::with_capacity(BUCKET_PREFIX_LEN + 16 * key_cols.len());
        key.extend_from_slice(&bucket_prefix(pk.table_id, bucket));
        for column in keys.columns() {
            encode_array_key_value(column.as_ref(), r, &mut key)?;
        }
        encoded.push(key);
    }
    let mut rows = ProjectedRows::new(pk.row_schema.fields(), projection, keys.num_rows()).with_schema_columns(pk.schema_columns.clone());
    let mut key_index = Vec::new();
    match kind {
        LookupKind::PrimaryKey => {
            pk.kv.multi_get_each(&encoded, |i, found| {
                if let Some(bytes) = found {
                    rows.append_row(bytes)?;
                    key_index.push(i as i32);
                }
                Ok(())
            })?;
        }
        LookupKind::Prefix => {
            let snapshot = pk.kv.snapshot();
            for (i, prefix) in encoded.iter().enumerate() {
                snapshot.for_each_prefix(prefix, |_, v| {
                    rows.append_row(v)?;
                    key_index.push(i as i32);
                    Ok(true)
                })?;
            }
        }
    }
    Ok(LookupResult { key_index, columns: rows.finish() })
}

/// A result batch of `found` (with `_key_index` first when asked for); `projection` is the
/// one `found` was looked up with.
pub fn result_batch(pk: &PkTable, found: LookupResult, projection: &[usize], with_key_index: bool) -> Result<RecordBatch> {
    let schema = pk.result_schema(projection, with_key_index);
    let rows = found.key_index.len();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(found.columns.len() + 1);
    if with_key_index {
        columns.push(Arc::new(Int32Array::from(found.key_index)));
    }
    columns.extend(found.columns);
    Ok(RecordBatch::try_new_with_options(schema, columns, &RecordBatchOptions::new().with_row_count(Some(rows)))?)
}

/// The number of current rows of `buckets`, from one snapshot.
pub fn count_rows(pk: &PkTable, buckets: &[u32]) -> Result<u64> {
    let snapshot = pk.kv.snapshot();
    let mut n = 0u64;
    for &b in buckets {
        snapshot.for_each_prefix(&bucket_prefix(pk.table_id, b), |_, _| {
            n += 1;
            Ok(true)
        })?;
    }
    Ok(n)
}

/// What a snapshot scan reads.
pub struct SnapshotPlan {
    /// The partition scanned (reported with every batch).
    pub partition: Option<String>,
    pub buckets: Vec<u32>,
    pub projection: Vec<usize>,
    pub filters: Vec<Filter>,
    pub limit: Option<u64>,
    pub batch_rows: usize,
    /// Start after this key (its encoded columns, without the bucket prefix): `after_key`.
    pub after_key: Option<Vec<u8>>,
}

/// Runs a snapshot scan (blocking) on `snapshot`, sending batches until done, the limit, or
/// the receiver going away; returns the rows sent (None: the receiver went away). Every
/// bucket sends at least one batch, so each one's log offset is known.
pub fn snapshot_scan(
    pk: &PkTable,
    snapshot: &KvSnapshot<'_>,
    plan: &SnapshotPlan,
    tx: &tokio::sync::mpsc::Sender<Result<SnapshotChunk>>,
) -> Result<Option<u64>> {
    let fields = pk.row_schema.fields();
    let schema = pk.result_schema(&plan.projection, false);
    let limit = plan.limit.unwrap_or(u64::MAX);
    let mut remaining = limit;
    let mut rows = ProjectedRows::new(fields, &plan.projection, plan.batch_rows).with_schema_columns(pk.schema_columns.clone());
    let chunk = |rows: &mut ProjectedRows, bucket: u32, log_offset: u64| -> Result<SnapshotChunk> {
        let n = rows.len();
        let batch = RecordBatch::try_new_with_options(schema.clone(), rows.finish(), &RecordBatchOptions::new().with_row_count(Some(n)))?;
        Ok(SnapshotChunk { bucket, partition: plan.partition.clone(), log_offset, rows: n as u64, message: IpcMessage::encode(&batch)? })
    };
    for &bucket in &plan.buckets {
        let log_offset = snapshot.applied_offset(pk.table_id, bucket)?.unwrap_or(0);
        let mut sent = false;
        let mut closed = false;
        let prefix = bucket_prefix(pk.table_id, bucket);
        let after = plan.after_key.as_ref().map(|suffix| [&prefix[..], suffix].concat());
        snapshot.for_each_prefix_after(&prefix, after.as_deref(), |_, v| {
            if remaining == 0 {
                return Ok(false);
            }
            // Filters need typed values; rows that pass are decoded again, into the builders.
            if !plan.filters.is_empty() {
                let row = pk.decode(v)?;
                if !plan.filters.iter().all(|f| f.matches(&row)) {
                    return Ok(true);
                }
            }
            remaining -= 1;
            rows.append_row(v)?;
            if rows.len() >= plan.batch_rows {
                sent = true;
                if tx.blocking_send(Ok(chunk(&mut rows, bucket, log_offset)?)).is_err() {
                    closed = true;
                    return Ok(false);
                }
            }
            Ok(true)
        })?;
        if closed {
            return Ok(None);
        }
        if (!rows.is_empty() || !sent) && tx.blocking_send(Ok(chunk(&mut rows, bucket, log_offset)?)).is_err() {
            return Ok(None);
        }
        if remaining == 0 {
            break;
        }
    }
    Ok(Some(limit - remaining))
}
