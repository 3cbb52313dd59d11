//! Reads of primary-key tables: point and prefix lookups (batched into RocksDB `multi_get` and
//! iterator seeks), snapshot scans from one RocksDB snapshot, filters and row counts.

use super::json::json_to_value;
use super::PkTable;
use crate::engine::write;
use crate::error::{Error, Result};
use crate::kv::keys::{bucket_prefix, encode_key};
use crate::kv::value::{decode_row, rows_to_batch, value_at, Value};
use arrow_array::{ArrayRef, Int32Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::cmp::Ordering;
use std::sync::Arc;
use strom_flight_api::{LookupKind, Predicate, PredicateOp, KEY_INDEX_COLUMN};

/// A predicate compiled against the table's columns.
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

/// Rows of a lookup: (row of the request's key batch, full-width row).
pub type LookupRows = Vec<(u32, Vec<Value>)>;

impl PkTable {
    /// Column positions of a lookup or scan result: `columns` (or all), plus the key columns
    /// when `with_keys` and they are not listed.
    pub fn projection(&self, table: &str, columns: &Option<Vec<String>>, with_keys: bool) -> Result<Vec<usize>> {
        let Some(names) = columns else { return Ok((0..self.row_schema.fields().len()).collect()) };
        if names.is_empty() {
            return Err(Error::invalid("\"columns\" must name at least one column"));
        }
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            let i = self.row_schema.index_of(n).map_err(|_| Error::invalid(format!("table {table} has no column {n:?}")))?;
            if out.contains(&i) {
                return Err(Error::invalid(format!("column {n:?} is requested twice")));
            }
            out.push(i);
        }
        if with_keys {
            for &k in &self.spec.key {
                if !out.contains(&k) {
                    out.push(k);
                }
            }
        }
        Ok(out)
    }

    /// Compiles a snapshot filter.
    pub fn compile_filter(&self, table: &str, predicates: &[Predicate]) -> Result<Vec<Filter>> {
        predicates
            .iter()
            .map(|p| {
                let column = self
                    .row_schema
                    .index_of(&p.column)
                    .map_err(|_| Error::invalid(format!("filter: table {table} has no column {:?}", p.column)))?;
                let dt = self.row_schema.field(column).data_type();
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
    pub fn lookup_key_columns(&self, table: &str, kind: LookupKind) -> Result<Vec<usize>> {
        match kind {
            LookupKind::PrimaryKey => Ok(self.spec.key.clone()),
            LookupKind::Prefix => match self.spec.prefix_len {
                Some(n) => Ok(self.spec.key[..n].to_vec()),
                None => Err(Error::invalid(format!(
                    "table {table} has no prefix-lookup index: its bucket key must be a strict prefix of the primary key"
                ))),
            },
        }
    }

    /// The Arrow schema of a lookup's key batch.
    pub fn lookup_key_schema(&self, table: &str, kind: LookupKind) -> Result<SchemaRef> {
        let cols = self.lookup_key_columns(table, kind)?;
        Ok(Arc::new(Schema::new(cols.iter().map(|&c| self.row_schema.field(c).clone().with_nullable(false)).collect::<Vec<Field>>())))
    }

    /// JSON keys of a lookup ticket as a key batch.
    pub fn keys_from_json(&self, table: &str, kind: LookupKind, keys: &[Vec<serde_json::Value>]) -> Result<RecordBatch> {
        let cols = self.lookup_key_columns(table, kind)?;
        let schema = self.lookup_key_schema(table, kind)?;
        let mut rows = Vec::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            if key.len() != cols.len() {
                let names: Vec<&str> = cols.iter().map(|&c| self.row_schema.field(c).name().as_str()).collect();
                return Err(Error::invalid(format!(
                    "key {i} has {} values; table {table} expects {} ({})",
                    key.len(),
                    cols.len(),
                    names.join(", ")
                )));
            }
            let mut row = Vec::with_capacity(cols.len());
            for (v, &c) in key.iter().zip(&cols) {
                let field = self.row_schema.field(c);
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

    /// The buckets of a key batch's rows (its columns are the lookup key columns of `kind`).
    fn buckets_of_keys(&self, keys: &RecordBatch, key_cols: &[usize], bucket_num: u32) -> Result<Vec<u32>> {
        let positions: Vec<usize> =
            self.spec.bucket_key.iter().map(|b| key_cols.iter().position(|k| k == b).expect("bucket key ⊆ lookup key")).collect();
        write::buckets_of_rows(keys, &positions, bucket_num)
    }

    fn key_row(keys: &RecordBatch, row: usize) -> Result<Vec<Value>> {
        keys.columns().iter().map(|c| value_at(c.as_ref(), row)).collect()
    }

    /// Looks up every row of `keys` (conformed to `lookup_key_schema`), in request order.
    pub fn lookup(&self, table: &str, kind: LookupKind, keys: &RecordBatch, bucket_num: u32) -> Result<LookupRows> {
        let key_cols = self.lookup_key_columns(table, kind)?;
        let buckets = self.buckets_of_keys(keys, &key_cols, bucket_num)?;
        let types: Vec<&DataType> = key_cols.iter().map(|&c| self.row_schema.field(c).data_type()).collect();
        let fields = self.row_schema.fields();
        let mut encoded = Vec::with_capacity(keys.num_rows());
        for (r, &bucket) in buckets.iter().enumerate() {
            let row = Self::key_row(keys, r)?;
            encoded.push(encode_key(self.table_id, bucket, &row.iter().collect::<Vec<_>>(), &types)?);
        }
        let mut out = Vec::new();
        match kind {
            LookupKind::PrimaryKey => {
                for (i, found) in self.kv.multi_get(&encoded)?.into_iter().enumerate() {
                    if let Some(bytes) = found {
                        out.push((i as u32, decode_row(&bytes, fields)?));
                    }
                }
            }
            LookupKind::Prefix => {
                let snapshot = self.kv.snapshot();
                for (i, prefix) in encoded.iter().enumerate() {
                    snapshot.for_each_prefix(prefix, |_, v| {
                        out.push((i as u32, decode_row(v, fields)?));
                        Ok(true)
                    })?;
                }
            }
        }
        Ok(out)
    }

    /// A result batch of `rows` with the `projection` columns (and `_key_index` first).
    pub fn result_batch(&self, rows: &[(u32, Vec<Value>)], projection: &[usize], with_key_index: bool) -> Result<RecordBatch> {
        let schema = Arc::new(Schema::new(projection.iter().map(|&c| self.row_schema.field(c).clone()).collect::<Vec<Field>>()));
        let projected: Vec<Vec<Value>> = rows.iter().map(|(_, r)| projection.iter().map(|&c| r[c].clone()).collect()).collect();
        let batch = rows_to_batch(&schema, &projected)?;
        if !with_key_index {
            return Ok(batch);
        }
        let mut fields = vec![Field::new(KEY_INDEX_COLUMN, DataType::Int32, false)];
        fields.extend(schema.fields().iter().map(|f| f.as_ref().clone()));
        let mut columns: Vec<ArrayRef> = vec![Arc::new(Int32Array::from_iter_values(rows.iter().map(|(i, _)| *i as i32)))];
        columns.extend(batch.columns().iter().cloned());
        Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
    }

    /// The schema of lookup results (DoExchange adds `_key_index` first).
    pub fn result_schema(&self, projection: &[usize], with_key_index: bool) -> SchemaRef {
        let mut fields = Vec::new();
        if with_key_index {
            fields.push(Field::new(KEY_INDEX_COLUMN, DataType::Int32, false));
        }
        fields.extend(projection.iter().map(|&c| self.row_schema.field(c).clone()));
        Arc::new(Schema::new(fields))
    }

    /// The number of current rows of `buckets`, from one snapshot.
    pub fn count_rows(&self, buckets: &[u32]) -> Result<u64> {
        let snapshot = self.kv.snapshot();
        let mut n = 0u64;
        for &b in buckets {
            snapshot.for_each_prefix(&bucket_prefix(self.table_id, b), |_, _| {
                n += 1;
                Ok(true)
            })?;
        }
        Ok(n)
    }
}

/// One batch of a snapshot scan.
pub struct SnapshotChunk {
    pub bucket: u32,
    pub log_offset: u64,
    pub batch: RecordBatch,
}

/// What a snapshot scan reads.
pub struct SnapshotPlan {
    pub buckets: Vec<u32>,
    pub projection: Vec<usize>,
    pub filters: Vec<Filter>,
    pub limit: Option<u64>,
    pub batch_rows: usize,
}

impl PkTable {
    /// Runs a snapshot scan (blocking), sending batches until done, the limit, or the receiver
    /// going away. Every bucket sends at least one batch, so each one's log offset is known.
    pub fn snapshot_scan(&self, plan: &SnapshotPlan, tx: &tokio::sync::mpsc::Sender<Result<SnapshotChunk>>) -> Result<()> {
        let snapshot = self.kv.snapshot();
        let fields = self.row_schema.fields();
        let mut remaining = plan.limit.unwrap_or(u64::MAX);
        for &bucket in &plan.buckets {
            let log_offset = snapshot.applied_offset(self.table_id, bucket)?.unwrap_or(0);
            let mut rows: Vec<(u32, Vec<Value>)> = Vec::new();
            let mut sent = false;
            let mut closed = false;
            snapshot.for_each_prefix(&bucket_prefix(self.table_id, bucket), |_, v| {
                if remaining == 0 {
                    return Ok(false);
                }
                let row = decode_row(v, fields)?;
                if !plan.filters.iter().all(|f| f.matches(&row)) {
                    return Ok(true);
                }
                remaining -= 1;
                rows.push((0, row));
                if rows.len() >= plan.batch_rows {
                    let batch = self.result_batch(&std::mem::take(&mut rows), &plan.projection, false)?;
                    sent = true;
                    if tx.blocking_send(Ok(SnapshotChunk { bucket, log_offset, batch })).is_err() {
                        closed = true;
                        return Ok(false);
                    }
                }
                Ok(true)
            })?;
            if closed {
                return Ok(());
            }
            if !rows.is_empty() || !sent {
                let batch = self.result_batch(&rows, &plan.projection, false)?;
                if tx.blocking_send(Ok(SnapshotChunk { bucket, log_offset, batch })).is_err() {
                    return Ok(());
                }
            }
            if remaining == 0 {
                return Ok(());
            }
        }
        Ok(())
    }
}
