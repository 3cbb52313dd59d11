//! The write path's checks and routing: conform an incoming batch to the table schema (strict
//! about data, lenient about spelling) and split its rows over buckets.

use crate::error::{Error, Result};
use arrow_array::{Array, ArrayRef, RecordBatch, UInt32Array};
use arrow_cast::cast::{can_cast_types, cast_with_options, CastOptions};
use arrow_schema::{DataType, SchemaRef};
use std::collections::HashMap;

/// Whether converting `from` to `to` is one of the allowed "same kind, other width" casts.
fn compatible(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    let int = |t: &DataType| t.is_integer();
    let float = |t: &DataType| t.is_floating();
    match (from, to) {
        _ if from.equals_datatype(to) => true,
        (Dictionary(_, v), _) => compatible(v, to),
        (a, b) if int(a) && int(b) => true,
        (a, b) if float(a) && float(b) => true,
        (a, b) if int(a) && float(b) => true,
        (Utf8 | LargeUtf8 | Utf8View, Utf8 | LargeUtf8) => true,
        (Binary | LargeBinary | BinaryView, Binary | LargeBinary) => true,
        (Timestamp(..), Timestamp(..)) => true,
        (Date64, Date32) | (Time32(_) | Time64(_), Time32(_) | Time64(_)) => true,
        (Decimal128(..) | Decimal256(..), Decimal128(..)) => true,
        (List(a), List(b)) | (LargeList(a), List(b)) => compatible(a.data_type(), b.data_type()),
        (Struct(a), Struct(b)) => {
            a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| x.name() == y.name() && compatible(x.data_type(), y.data_type()))
        }
        (Map(a, _), Map(b, _)) => compatible(a.data_type(), b.data_type()),
        _ => false,
    }
}

/// Casts `column` to `to`, refusing if any value would change.
fn safe_cast(name: &str, column: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    if column.data_type() == to {
        return Ok(column.clone());
    }
    let from = column.data_type();
    if !compatible(from, to) || !can_cast_types(from, to) {
        return Err(Error::invalid(format!("column {name:?}: type {from} cannot be stored as {to}")));
    }
    let strict = CastOptions { safe: false, ..Default::default() };
    let cast =
        cast_with_options(column, to, &strict).map_err(|e| Error::invalid(format!("column {name:?}: a value does not fit {to}: {e}")))?;
    // Lossless check: converting back must give the original values (catches truncated
    // timestamps, rounded floats and the like, which arrow casts without complaint).
    if !from.equals_datatype(to) && !matches!(from, DataType::Dictionary(..)) {
        if let Ok(back) = cast_with_options(&cast, from, &strict) {
            if back.to_data() != column.to_data() {
                let row = (0..column.len()).find(|&i| back.slice(i, 1).to_data() != column.slice(i, 1).to_data()).unwrap_or(0);
                return Err(Error::invalid(format!("column {name:?}: value at row {row} would change when stored as {to}")));
            }
        }
    }
    Ok(cast)
}

/// Reorders, casts and null-checks `batch` into exactly `schema`.
pub fn conform(batch: &RecordBatch, schema: &SchemaRef, table: &str) -> Result<RecordBatch> {
    conform_allowing_added(batch, schema, table, schema.fields().len())
}

/// `conform`, where the columns of `schema` from position `first_added` on (added by
/// `alter_table`, nullable) may be missing from the batch: they are null then. Writers that
/// started before the columns were added keep working.
pub fn conform_allowing_added(batch: &RecordBatch, schema: &SchemaRef, table: &str, first_added: usize) -> Result<RecordBatch> {
    let input = batch.schema();
    let mut by_name: HashMap<&str, usize> = HashMap::with_capacity(input.fields().len());
    for (i, f) in input.fields().iter().enumerate() {
        if by_name.insert(f.name().as_str(), i).is_some() {
            return Err(Error::invalid(format!("table {table}: batch has column {:?} twice", f.name())));
        }
    }
    for f in input.fields() {
        if schema.field_with_name(f.name()).is_err() {
            return Err(Error::invalid(format!(
                "table {table}: batch column {:?} is not a column of the table (columns: {})",
                f.name(),
                field_names(schema)
            )));
        }
    }
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (position, field) in schema.fields().iter().enumerate() {
        let Some(&i) = by_name.get(field.name().as_str()) else {
            if position >= first_added && field.is_nullable() {
                columns.push(arrow_array::new_null_array(field.data_type(), batch.num_rows()));
                continue;
            }
            return Err(Error::invalid(format!("table {table}: batch is missing column {:?}", field.name())));
        };
        let column = safe_cast(field.name(), batch.column(i), field.data_type())?;
        if !field.is_nullable() && column.null_count() > 0 {
            let row = (0..column.len()).find(|&r| column.is_null(r)).unwrap_or(0);
            return Err(Error::invalid(format!("table {table}: column {:?} is NOT NULL but row {row} is null", field.name())));
        }
        columns.push(column);
    }
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| Error::invalid(format!("table {table}: {e}")))
}

fn field_names(schema: &SchemaRef) -> String {
    schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
}

/// Appends the canonical bytes of `column[row]` to `out` (the bucket hash input).
fn key_bytes(column: &dyn Array, row: usize, out: &mut Vec<u8>) {
    use arrow_array::cast::AsArray;
    use arrow_array::types::*;
    if column.is_null(row) {
        out.push(0);
        return;
    }
    out.push(1);
    match column.data_type() {
        DataType::Boolean => out.push(column.as_boolean().value(row) as u8),
        DataType::Int8 => out.extend_from_slice(&(column.as_primitive::<Int8Type>().value(row) as i64).to_le_bytes()),
        DataType::Int16 => out.extend_from_slice(&(column.as_primitive::<Int16Type>().value(row) as i64).to_le_bytes()),
        DataType::Int32 => out.extend_from_slice(&(column.as_primitive::<Int32Type>().value(row) as i64).to_le_bytes()),
        DataType::Int64 => out.extend_from_slice(&column.as_primitive::<Int64Type>().value(row).to_le_bytes()),
        DataType::Utf8 => {
            let v = column.as_string::<i32>().value(row).as_bytes();
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(v);
        }
        DataType::Binary => {
            let v = column.as_binary::<i32>().value(row);
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(v);
        }
        _ => {
            // Other key types hash their fixed-width value bytes.
            let data = column.to_data();
            let width = data.data_type().primitive_width().unwrap_or(0);
            if width > 0 {
                let buf = &data.buffers()[0];
                let start = (data.offset() + row) * width;
                out.extend_from_slice(&buf.as_slice()[start..start + width]);
            }
        }
    }
}

/// Murmur3 (x86, 32-bit, seed 0) of the bucket key, as Iceberg's bucket transform does.
pub fn bucket_of(hash: u32, bucket_num: u32) -> u32 {
    (hash & i32::MAX as u32) % bucket_num
}

/// How rows of one batch are assigned to buckets.
pub enum Routing<'a> {
    Keyed(&'a [usize]),
    /// A whole batch goes to bucket `choice % bucket_num` (the assigner picked `choice`).
    NoKey {
        choice: u64,
    },
}

/// The bucket of every row of `batch`, by the murmur3 hash of its `key_columns`.
pub fn buckets_of_rows(batch: &RecordBatch, key_columns: &[usize], bucket_num: u32) -> Result<Vec<u32>> {
    let mut scratch = Vec::with_capacity(64);
    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        scratch.clear();
        for &c in key_columns {
            key_bytes(batch.column(c).as_ref(), row, &mut scratch);
        }
        let hash =
            murmur3::murmur3_32(&mut std::io::Cursor::new(&scratch), 0).map_err(|e| Error::Internal(format!("hashing failed: {e}")))?;
        out.push(bucket_of(hash, bucket_num));
    }
    Ok(out)
}

/// Splits `batch` into (bucket, rows) parts. A batch that falls into one bucket is not copied.
pub fn route(batch: &RecordBatch, bucket_num: u32, routing: Routing<'_>) -> Result<Vec<(u32, RecordBatch)>> {
    if batch.num_rows() == 0 {
        return Ok(vec![]);
    }
    let key_columns = match routing {
        Routing::NoKey { choice, .. } => return Ok(vec![((choice % bucket_num as u64) as u32, batch.clone())]),
        Routing::Keyed(cols) => cols,
    };
    if bucket_num == 1 {
        return Ok(vec![(0, batch.clone())]);
    }
    let mut per_bucket: Vec<Vec<u32>> = vec![Vec::new(); bucket_num as usize];
    for (row, bucket) in buckets_of_rows(batch, key_columns, bucket_num)?.into_iter().enumerate() {
        per_bucket[bucket as usize].push(row as u32);
    }
    let mut out = Vec::new();
    for (bucket, rows) in per_bucket.into_iter().enumerate() {
        if rows.is_empty() {
            continue;
        }
        if rows.len() == batch.num_rows() {
            out.push((bucket as u32, batch.clone()));
        } else {
            let indices = UInt32Array::from(rows);
            out.push((bucket as u32, arrow_select::take::take_record_batch(batch, &indices)?));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int32Array, Int64Array, StringArray, TimestampMillisecondArray, TimestampNanosecondArray};
    use arrow_schema::{Field, Schema, TimeUnit};
    use std::sync::Arc;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("small", DataType::Int32, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        ]))
    }

    fn input(fields: Vec<Field>, cols: Vec<ArrayRef>) -> RecordBatch {
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
    }

    #[test]
    fn given_reordered_nullable_and_narrower_columns_when_conformed_should_cast_safely() {
        let b = input(
            vec![
                Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
                Field::new("small", DataType::Int64, true),
                Field::new("name", DataType::LargeUtf8, true),
                Field::new("id", DataType::Int32, true),
            ],
            vec![
                Arc::new(TimestampNanosecondArray::from(vec![1_000_000, 2_000_000])),
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(arrow_array::LargeStringArray::from(vec!["a", "b"])),
                Arc::new(Int32Array::from(vec![10, 20])),
            ],
        );
        let out = conform(&b, &schema(), "t").unwrap();
        assert_eq!(out.schema(), schema());
        assert_eq!(out.column(0).as_ref(), &Int64Array::from(vec![10, 20]) as &dyn Array);
        assert_eq!(out.column(3).as_ref(), &TimestampMillisecondArray::from(vec![1, 2]) as &dyn Array);
    }

    #[test]
    fn given_values_that_would_change_when_conformed_should_reject_naming_row() {
        let base = |small: ArrayRef, ts: ArrayRef| {
            input(
                vec![
                    Field::new("id", DataType::Int64, false),
                    Field::new("name", DataType::Utf8, true),
                    Field::new("small", small.data_type().clone(), true),
                    Field::new("ts", ts.data_type().clone(), true),
                ],
                vec![Arc::new(Int64Array::from(vec![1, 2])), Arc::new(StringArray::from(vec!["a", "b"])), small, ts],
            )
        };
        let ms = || Arc::new(TimestampMillisecondArray::from(vec![1, 2])) as ArrayRef;
        let overflow = base(Arc::new(Int64Array::from(vec![1, i64::MAX])), ms());
        let err = conform(&overflow, &schema(), "t").unwrap_err().to_string();
        assert!(err.contains("small"), "{err}");
        let truncated = base(Arc::new(Int32Array::from(vec![1, 2])), Arc::new(TimestampNanosecondArray::from(vec![1_000_000, 2_000_001])));
        let err = conform(&truncated, &schema(), "t").unwrap_err().to_string();
        assert!(err.contains("\"ts\"") && err.contains("row 1"), "{err}");
    }

    #[test]
    fn given_schema_mismatches_when_conformed_should_name_the_column() {
        let missing = input(vec![Field::new("id", DataType::Int64, false)], vec![Arc::new(Int64Array::from(vec![1]))]);
        assert!(conform(&missing, &schema(), "t").unwrap_err().to_string().contains("missing column \"name\""));
        let wrong = input(
            vec![
                Field::new("id", DataType::Utf8, false),
                Field::new("name", DataType::Utf8, true),
                Field::new("small", DataType::Int32, true),
                Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            ],
            vec![
                Arc::new(StringArray::from(vec!["x"])),
                Arc::new(StringArray::from(vec!["a"])),
                Arc::new(Int32Array::from(vec![1])),
                Arc::new(TimestampMillisecondArray::from(vec![1])),
            ],
        );
        assert!(conform(&wrong, &schema(), "t").unwrap_err().to_string().contains("\"id\""));
        let null_key = input(
            vec![
                Field::new("id", DataType::Int64, true),
                Field::new("name", DataType::Utf8, true),
                Field::new("small", DataType::Int32, true),
                Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            ],
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None])),
                Arc::new(StringArray::from(vec!["a", "b"])),
                Arc::new(Int32Array::from(vec![1, 2])),
                Arc::new(TimestampMillisecondArray::from(vec![1, 2])),
            ],
        );
        let err = conform(&null_key, &schema(), "t").unwrap_err().to_string();
        assert!(err.contains("\"id\"") && err.contains("row 1"), "{err}");
    }

    #[test]
    fn given_keyed_routing_when_routed_should_be_deterministic_and_complete() {
        let ids: Vec<i64> = (0..1000).collect();
        let b = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)])),
            vec![Arc::new(Int64Array::from(ids))],
        )
        .unwrap();
        let parts = route(&b, 4, Routing::Keyed(&[0])).unwrap();
        assert_eq!(parts.len(), 4, "1000 keys spread over all 4 buckets");
        assert_eq!(parts.iter().map(|(_, p)| p.num_rows()).sum::<usize>(), 1000);
        let again = route(&b, 4, Routing::Keyed(&[0])).unwrap();
        assert_eq!(parts, again);
        for (bucket, part) in &parts {
            let single = route(&part.slice(0, 1), 4, Routing::Keyed(&[0])).unwrap();
            assert_eq!(single[0].0, *bucket, "a row routes the same alone or in a batch");
        }
    }
}
