//! Merging one bucket's part of a write batch with the current rows of its keys: the change
//! records to append to the bucket log (as an Arrow batch) and the final row of every key the
//! part changed (stored-row bytes, for RocksDB).
//!
//! Two ways, same results:
//! - **on bytes** ([`merge_encoded`]) for the last-row merge engine without an auto-increment
//!   column (the default, and the bulk of upserts): a merge only takes some columns from the
//!   write and the others from the stored row, so rows are never decoded into `Value`s — new
//!   rows are encoded straight from the Arrow columns, kept columns are copied as the bytes
//!   they are, unchanged rows are found by comparing bytes, and the changelog batch is decoded
//!   from the old and new row bytes straight into Arrow builders;
//! - **through `Value`s** ([`merge_values`]) for the engines that compute values (aggregation,
//!   versioned, first row), auto-increment columns and `insert_if_not_exists`.

use super::auto_increment::IdLease;
use super::{KvBucketState, PkOp, PkTable};
use crate::catalog::pk::{ChangelogImage, DeleteBehavior, MergeEngine};
use crate::error::{Error, Result};
use crate::kv::keys::{bucket_prefix, encode_array_key_value, BUCKET_PREFIX_LEN};
use crate::kv::merge::{merge, ChangeType, Merged, Write};
use crate::kv::row_bytes::{column_ranges, is_null_in, RowWriter};
use crate::kv::value::{encode_row, row_schema_id, rows_to_batch, value_at, ProjectedRows, Value};
use arrow_array::{ArrayRef, RecordBatch, StringArray};
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// What one bucket's rows do.
pub(super) struct MergedPart {
    /// The change records (row columns + `_change_type`); None when nothing changed.
    pub changelog: Option<RecordBatch>,
    /// Final state of every key the part changed, in first-change order: the stored row, or
    /// None for a deleted key.
    pub finals: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// Merges `part` (the batch columns `cols` are table positions of) with the current state of
/// its keys, under the bucket's lock (`state`), with the cheapest correct method.
#[allow(clippy::too_many_arguments)] // one call site; the arguments are the write's context
pub(super) fn merge_part(
    pk: &PkTable,
    table: &str,
    bucket: u32,
    state: &KvBucketState,
    part: &RecordBatch,
    cols: &[usize],
    op: &PkOp,
    schema_id: u32,
    ids: &mut IdLease,
) -> Result<MergedPart> {
    let on_bytes = matches!(pk.spec.merge_engine, MergeEngine::LastRow)
        && pk.auto_increment.is_none()
        && matches!(op, PkOp::Upsert { .. } | PkOp::Delete);
    if on_bytes {
        merge_encoded(pk, table, bucket, state, part, cols, op, schema_id)
    } else {
        let width = pk.row_schema.fields().len();
        let mut rows = Vec::with_capacity(part.num_rows());
        for r in 0..part.num_rows() {
            let mut row = vec![Value::Null; width];
            for (c, &position) in cols.iter().enumerate() {
                row[position] = value_at(part.column(c).as_ref(), r)?;
            }
            rows.push(row);
        }
        merge_values(pk, table, bucket, state, rows, op, schema_id, ids)
    }
}

/// Where the current row of a key is while a part is merged: an index into the part's row
/// arena, or None (no row).
type Current = Option<usize>;

/// The byte-level merge (last-row engine, no auto-increment column; upserts and deletes).
#[allow(clippy::too_many_arguments)] // see merge_part
fn merge_encoded(
    pk: &PkTable,
    table: &str,
    bucket: u32,
    state: &KvBucketState,
    part: &RecordBatch,
    cols: &[usize],
    op: &PkOp,
    schema_id: u32,
) -> Result<MergedPart> {
    let fields = pk.row_schema.fields();
    let width = fields.len();
    let n = part.num_rows();
    // For every table column, the batch column that carries it (None: not in the batch).
    let mut from_batch: Vec<Option<usize>> = vec![None; width];
    for (c, &position) in cols.iter().enumerate() {
        from_batch[position] = Some(c);
    }
    let key_columns: Vec<usize> = pk
        .spec
        .key
        .iter()
        .map(|k| from_batch[*k].ok_or_else(|| Error::Internal("a key column is missing from the write".into())))
        .collect::<Result<_>>()?;
    // The storage key of every row.
    let prefix = bucket_prefix(pk.table_id, bucket);
    let mut keys: Vec<Vec<u8>> = Vec::with_capacity(n);
    for r in 0..n {
        let mut key = Vec::with_capacity(BUCKET_PREFIX_LEN + 16 * key_columns.len());
        key.extend_from_slice(&prefix);
        for &c in &key_columns {
            encode_array_key_value(part.column(c).as_ref(), r, &mut key)?;
        }
        keys.push(key);
    }

    // The current row of every distinct key: the bucket's overlay (merged, not yet applied),
    // else RocksDB, in one batched read. Rows live in `arena`; keys point into it.
    let mut arena: Vec<Vec<u8>> = Vec::with_capacity(n * 2);
    let mut current: HashMap<&[u8], Current> = HashMap::with_capacity(n);
    let mut missing: Vec<usize> = Vec::new();
    for (r, key) in keys.iter().enumerate() {
        if let Entry::Vacant(slot) = current.entry(key.as_slice()) {
            match state.overlay.get(key) {
                Some((_, Some(bytes))) => {
                    arena.push(bytes.clone());
                    slot.insert(Some(arena.len() - 1));
                }
                Some((_, None)) => {
                    slot.insert(None);
                }
                None => {
                    slot.insert(None);
                    missing.push(r);
                }
            }
        }
    }
    if !missing.is_empty() {
        let lookups: Vec<Vec<u8>> = missing.iter().map(|&r| keys[r].clone()).collect();
        let mut found: Vec<(usize, Vec<u8>)> = Vec::new();
        pk.kv.multi_get_each(&lookups, |i, value| {
            if let Some(bytes) = value {
                found.push((missing[i], bytes.to_vec()));
            }
            Ok(())
        })?;
        for (r, bytes) in found {
            arena.push(bytes);
            current.insert(keys[r].as_slice(), Some(arena.len() - 1));
        }
    }

    let not_null: Vec<usize> = fields.iter().enumerate().filter(|(_, f)| !f.is_nullable()).map(|(i, _)| i).collect();
    let full_image = pk.spec.changelog_image == ChangelogImage::Full;
    let mut changes: Vec<(ChangeType, usize)> = Vec::new();
    let mut touched: Vec<usize> = Vec::new(); // rows whose key changed first, in order
    let mut touched_set: HashSet<&[u8]> = HashSet::new();
    let mut ranges = Vec::with_capacity(width);
    for (r, key) in keys.iter().enumerate() {
        let old = current[key.as_slice()];
        let new = match op {
            PkOp::Upsert { targets } => {
                let mut bytes = Vec::with_capacity(old.map_or(64, |o| arena[o].len() + 16));
                let mut w = RowWriter::begin(&mut bytes, schema_id, width);
                match (targets, old) {
                    // A full row: every column from the write (a full upsert's batch holds them all).
                    (None, _) => {
                        for source in &from_batch {
                            let c = source.ok_or_else(|| Error::Internal("a full upsert is missing a column".into()))?;
                            w.array(part.column(c).as_ref(), r)?;
                        }
                    }
                    // A partial update of a stored row: targets from the write, the rest kept.
                    (Some(t), Some(o)) => {
                        let stored = &arena[o];
                        column_ranges(stored, fields, &pk.schema_columns, &mut ranges)?;
                        for (i, range) in ranges.iter().enumerate() {
                            match (t.contains(&i), range) {
                                (true, _) => w.array(part.column(from_batch[i].expect("targets are in the batch")).as_ref(), r)?,
                                (false, Some(range)) => w.raw(&stored[range.clone()]),
                                (false, None) => w.null(),
                            }
                        }
                    }
                    // A partial update of a new key: the key and the targets, nulls elsewhere.
                    (Some(t), None) => {
                        for (i, source) in from_batch.iter().enumerate() {
                            match source {
                                Some(c) if t.contains(&i) || pk.spec.key.contains(&i) => w.array(part.column(*c).as_ref(), r)?,
                                _ => w.null(),
                            }
                        }
                    }
                }
                w.finish()?;
                if let Some(o) = old {
                    if same_row(pk, &arena[o], &bytes)? {
                        continue; // unchanged: no change record, nothing to store
                    }
                }
                if let Some(&c) = not_null.iter().find(|&&c| is_null_in(&bytes, width, c)) {
                    return Err(Error::invalid(format!(
                        "table {table}: row {r}: column {:?} is NOT NULL but would be null (a partial update or insert of a new key leaves it null)",
                        fields[c].name()
                    )));
                }
                arena.push(bytes);
                let new = arena.len() - 1;
                match old {
                    None => changes.push((ChangeType::Insert, new)),
                    Some(o) => {
                        if full_image {
                            changes.push((ChangeType::UpdateBefore, o));
                        }
                        changes.push((ChangeType::UpdateAfter, new));
                    }
                }
                Some(new)
            }
            PkOp::Delete => match (pk.spec.delete_behavior, old) {
                (DeleteBehavior::Disable, _) => {
                    return Err(Error::invalid(format!(
                        "table {table}: row {r}: deletes are disabled on this table (table.delete.behavior = DISABLE)"
                    )))
                }
                (DeleteBehavior::Ignore, _) | (DeleteBehavior::Allow, None) => continue,
                (DeleteBehavior::Allow, Some(o)) => {
                    changes.push((ChangeType::Delete, o));
                    None
                }
            },
            PkOp::InsertIfAbsent => return Err(Error::Internal("insert_if_not_exists is merged through values".into())),
        };
        current.insert(key.as_slice(), new);
        if touched_set.insert(key.as_slice()) {
            touched.push(r);
        }
    }

    let changelog = match changes.is_empty() {
        true => None,
        false => {
            let all: Vec<usize> = (0..width).collect();
            let mut rows = ProjectedRows::new(fields, &all, changes.len()).with_schema_columns(pk.schema_columns.clone());
            for (_, row) in &changes {
                rows.append_row(&arena[*row])?;
            }
            Some(changelog_batch(pk, rows.finish(), changes.iter().map(|(t, _)| *t))?)
        }
    };
    let finals = touched
        .into_iter()
        .map(|r| {
            let row = current[keys[r].as_slice()].map(|i| std::mem::take(&mut arena[i]));
            (keys[r].clone(), row)
        })
        .collect();
    Ok(MergedPart { changelog, finals })
}

/// Whether the merged row `new` (current schema) equals the stored row `old`. Rows of the
/// same schema id are compared as bytes (the encoding is canonical); a row stored before
/// columns were added is compared by value (the added columns read as null).
fn same_row(pk: &PkTable, old: &[u8], new: &[u8]) -> Result<bool> {
    if row_schema_id(old)? == row_schema_id(new)? {
        return Ok(old == new);
    }
    Ok(pk.decode(old)? == pk.decode(new)?)
}

/// The changelog batch of row columns (in table order) and their change types.
fn changelog_batch(pk: &PkTable, mut columns: Vec<ArrayRef>, types: impl Iterator<Item = ChangeType>) -> Result<RecordBatch> {
    columns.push(Arc::new(StringArray::from_iter_values(types.map(ChangeType::symbol))));
    Ok(RecordBatch::try_new(pk.changelog_schema.clone(), columns)?)
}

/// Whether an integer value fits its (possibly narrower) column type.
fn int_fits(v: &Value, dt: &arrow_schema::DataType) -> bool {
    use arrow_schema::DataType::*;
    let Value::Int(n) = v else { return true };
    match dt {
        Int8 => i8::try_from(*n).is_ok(),
        Int16 => i16::try_from(*n).is_ok(),
        Int32 | Date32 => i32::try_from(*n).is_ok(),
        _ => true,
    }
}

/// The merge through `Value`s: `rows` are full-width (in batch order), merged by `kv::merge`.
#[allow(clippy::too_many_arguments)] // see merge_part
fn merge_values(
    pk: &PkTable,
    table: &str,
    bucket: u32,
    state: &KvBucketState,
    rows: Vec<Vec<Value>>,
    op: &PkOp,
    schema_id: u32,
    ids: &mut IdLease,
) -> Result<MergedPart> {
    let mut next_id = || ids.next().map(Value::Int).ok_or_else(|| Error::Internal("auto-increment ids were not leased".into()));
    let fields = pk.row_schema.fields();
    let keys = rows.iter().map(|r| pk.key_of(bucket, r)).collect::<Result<Vec<_>>>()?;
    let mut current: HashMap<Vec<u8>, Option<Vec<Value>>> = HashMap::with_capacity(keys.len());
    let mut missing = Vec::new();
    for k in &keys {
        if current.contains_key(k) {
            continue;
        }
        match state.overlay.get(k) {
            Some((_, bytes)) => {
                current.insert(k.clone(), bytes.as_deref().map(|b| pk.decode(b)).transpose()?);
            }
            None => {
                current.insert(k.clone(), None);
                missing.push(k.clone());
            }
        }
    }
    if !missing.is_empty() {
        pk.kv.multi_get_each(&missing, |i, found| {
            if let Some(bytes) = found {
                current.insert(missing[i].clone(), Some(pk.decode(bytes)?));
            }
            Ok(())
        })?;
    }
    let mut changes = Vec::new();
    // Keys in first-touch order (the order their final rows are applied in), deduplicated
    // through a set: a batch may hold tens of thousands of rows.
    let mut touched: Vec<Vec<u8>> = Vec::new();
    let mut touched_set: HashSet<Vec<u8>> = HashSet::new();
    for (i, (key, mut row)) in keys.into_iter().zip(rows).enumerate() {
        let old = current.get(&key).cloned().flatten();
        let merged = match op {
            PkOp::Upsert { targets } => {
                let mut targets = targets.clone();
                if let Some(ai) = &pk.auto_increment {
                    row[ai.column] = match &old {
                        Some(o) => o[ai.column].clone(),
                        None => next_id()?,
                    };
                    if let Some(t) = targets.as_mut() {
                        t.push(ai.column);
                    }
                }
                merge(&pk.spec, old.as_deref(), Write::Upsert { row, targets })
            }
            PkOp::Delete => merge(&pk.spec, old.as_deref(), Write::Delete { row }),
            PkOp::InsertIfAbsent => match &old {
                Some(_) => continue,
                None => {
                    if let Some(ai) = &pk.auto_increment {
                        row[ai.column] = next_id()?;
                    }
                    Ok(Merged { new_row: Some(row.clone()), changes: vec![(ChangeType::Insert, row)] })
                }
            },
        }
        .map_err(|e| Error::invalid(format!("table {table}: row {i}: {e}")))?;
        if merged.changes.is_empty() {
            continue;
        }
        for (_, changed) in &merged.changes {
            if let Some(c) = fields.iter().enumerate().find(|(c, f)| !f.is_nullable() && changed[*c].is_null()).map(|(_, f)| f) {
                return Err(Error::invalid(format!(
                    "table {table}: row {i}: column {:?} is NOT NULL but would be null (a partial update or insert of a new key leaves it null)",
                    c.name()
                )));
            }
            if let Some((f, v)) = fields.iter().zip(changed).find(|(f, v)| !int_fits(v, f.data_type())) {
                return Err(Error::invalid(format!(
                    "table {table}: row {i}: column {:?}: the aggregated value {v:?} overflows {}",
                    f.name(),
                    f.data_type()
                )));
            }
        }
        if touched_set.insert(key.clone()) {
            touched.push(key.clone());
        }
        current.insert(key, merged.new_row);
        changes.extend(merged.changes);
    }
    let changelog = match changes.is_empty() {
        true => None,
        false => {
            let rows: Vec<Vec<Value>> = changes.iter().map(|(_, r)| r.clone()).collect();
            let base = rows_to_batch(&pk.row_schema, &rows)?;
            Some(changelog_batch(pk, base.columns().to_vec(), changes.iter().map(|(t, _)| *t))?)
        }
    };
    let mut finals = Vec::with_capacity(touched.len());
    for key in touched {
        let row = current.remove(&key).flatten().map(|r| encode_row(schema_id, &r, fields)).transpose()?;
        finals.push((key, row));
    }
    Ok(MergedPart { changelog, finals })
}
