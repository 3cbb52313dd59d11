//! Stored rows (the encoding of [`super::value`]) written straight from Arrow columns and
//! merged at the byte level, without a `Value` per field.
//!
//! The write path of primary-key tables used to turn every incoming field into a `Value`,
//! clone rows into the changelog and encode them again; for the common merge engine (last row)
//! a merge is only "take these columns from the write, those from the stored row", which this
//! module does on bytes: a column of the stored row is copied as the bytes it already is.
//! The bytes written here are exactly those of `encode_row` for the same values (tested).

use super::value::{corrupt, encode_value, row_schema_id, schema_width, value_at, Reader, SchemaColumns};
use crate::error::{Error, Result};
use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::Array;
use arrow_schema::{DataType, Fields, TimeUnit};
use std::ops::Range;

/// Appends the stored encoding of the non-null value `array[row]` (as `encode_value` would
/// encode `value_at(array, row)`).
pub fn encode_array_value(array: &dyn Array, row: usize, out: &mut Vec<u8>) -> Result<()> {
    let int = |v: i64, out: &mut Vec<u8>| out.extend_from_slice(&v.to_le_bytes());
    match array.data_type() {
        DataType::Boolean => out.push(array.as_boolean().value(row) as u8),
        DataType::Int8 => int(array.as_primitive::<Int8Type>().value(row) as i64, out),
        DataType::Int16 => int(array.as_primitive::<Int16Type>().value(row) as i64, out),
        DataType::Int32 => int(array.as_primitive::<Int32Type>().value(row) as i64, out),
        DataType::Int64 => int(array.as_primitive::<Int64Type>().value(row), out),
        DataType::Date32 => int(array.as_primitive::<Date32Type>().value(row) as i64, out),
        DataType::Time32(TimeUnit::Second) => int(array.as_primitive::<Time32SecondType>().value(row) as i64, out),
        DataType::Time32(_) => int(array.as_primitive::<Time32MillisecondType>().value(row) as i64, out),
        DataType::Time64(TimeUnit::Microsecond) => int(array.as_primitive::<Time64MicrosecondType>().value(row), out),
        DataType::Time64(_) => int(array.as_primitive::<Time64NanosecondType>().value(row), out),
        DataType::Timestamp(unit, _) => int(
            match unit {
                TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(row),
                TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().value(row),
                TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().value(row),
                TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().value(row),
            },
            out,
        ),
        // Floats are stored as f64 whatever their width (as `Value::Float` holds them).
        DataType::Float32 => out.extend_from_slice(&(array.as_primitive::<Float32Type>().value(row) as f64).to_le_bytes()),
        DataType::Float64 => out.extend_from_slice(&array.as_primitive::<Float64Type>().value(row).to_le_bytes()),
        DataType::Decimal128(..) => out.extend_from_slice(&array.as_primitive::<Decimal128Type>().value(row).to_le_bytes()),
        DataType::Utf8 => length_prefixed(array.as_string::<i32>().value(row).as_bytes(), out),
        DataType::Binary => length_prefixed(array.as_binary::<i32>().value(row), out),
        DataType::FixedSizeBinary(_) => length_prefixed(array.as_fixed_size_binary().value(row), out),
        // Nested values are rare in keys and hot paths: through `Value`, one encoding to keep.
        dt => encode_value(&value_at(array, row)?, dt, out)?,
    }
    Ok(())
}

fn length_prefixed(bytes: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Writes one stored row column by column: `begin`, then exactly one of `null`, `array` or
/// `raw` per column, in column order.
pub struct RowWriter<'o> {
    out: &'o mut Vec<u8>,
    bitmap_at: usize,
    column: usize,
    columns: usize,
}

impl<'o> RowWriter<'o> {
    /// Starts a row of `columns` columns written under `schema_id`, appended to `out`.
    pub fn begin(out: &'o mut Vec<u8>, schema_id: u32, columns: usize) -> Self {
        out.extend_from_slice(&schema_id.to_le_bytes());
        let bitmap_at = out.len();
        out.resize(bitmap_at + columns.div_ceil(8), 0);
        Self { out, bitmap_at, column: 0, columns }
    }

    pub fn null(&mut self) {
        self.out[self.bitmap_at + self.column / 8] |= 1 << (self.column % 8);
        self.column += 1;
    }

    /// The column's value from `array[row]` (null when it is null there).
    pub fn array(&mut self, array: &dyn Array, row: usize) -> Result<()> {
        if array.is_null(row) {
            self.null();
            return Ok(());
        }
        encode_array_value(array, row, self.out)?;
        self.column += 1;
        Ok(())
    }

    /// The column's value as already-encoded bytes (a non-null column of a stored row).
    pub fn raw(&mut self, encoded: &[u8]) {
        self.out.extend_from_slice(encoded);
        self.column += 1;
    }

    /// Checks that every column was written.
    pub fn finish(self) -> Result<()> {
        if self.column != self.columns {
            return Err(Error::Internal(format!("a stored row was written with {} of its {} columns", self.column, self.columns)));
        }
        Ok(())
    }
}

/// Where each column's value lies in a stored row: `None` for a null (or a column added after
/// the row was written), else the byte range of its encoding. Padded to `fields.len()`.
pub fn column_ranges(bytes: &[u8], fields: &Fields, schema_columns: &SchemaColumns, out: &mut Vec<Option<Range<usize>>>) -> Result<()> {
    out.clear();
    let stored = schema_width(schema_columns, row_schema_id(bytes)?, fields)?;
    if stored > fields.len() {
        return Err(corrupt("row has more columns than the table"));
    }
    let mut r = Reader::at(bytes, 4);
    let bitmap = r.take(stored.div_ceil(8))?;
    for (i, field) in fields.iter().enumerate() {
        if i >= stored || bitmap[i / 8] & (1 << (i % 8)) != 0 {
            out.push(None);
        } else {
            let start = r.pos;
            r.skip(field.data_type())?;
            out.push(Some(start..r.pos));
        }
    }
    if r.pos != bytes.len() {
        return Err(corrupt("row has trailing bytes"));
    }
    Ok(())
}

/// Whether column `column` of a stored row is null, from its bitmap (columns past the ones
/// the row stores are null).
pub fn is_null_in(bytes: &[u8], stored: usize, column: usize) -> bool {
    column >= stored || bytes.get(4 + column / 8).is_none_or(|b| b & (1 << (column % 8)) != 0)
}

/// A value of the stored row decoded for messages (tests, errors).
#[cfg(test)]
fn decode(bytes: &[u8], fields: &Fields) -> Vec<super::value::Value> {
    super::value::decode_row(bytes, fields).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::value::{encode_row, Value};
    use arrow_array::{
        ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, FixedSizeBinaryArray, Float32Array, Float64Array, Int16Array,
        Int32Array, Int64Array, Int8Array, ListArray, RecordBatch, StringArray, Time64MicrosecondArray, TimestampMicrosecondArray,
    };
    use arrow_schema::{Field, Schema};
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![Some(1), Some(-2), Some(i64::MAX)])),
            Arc::new(Int8Array::from(vec![Some(-8), None, Some(7)])),
            Arc::new(Int16Array::from(vec![Some(300), Some(-300), None])),
            Arc::new(Int32Array::from(vec![None, Some(70_000), Some(-1)])),
            Arc::new(Float32Array::from(vec![Some(1.5), Some(f32::NAN), None])),
            Arc::new(Float64Array::from(vec![Some(-0.0), None, Some(1e300)])),
            Arc::new(Decimal128Array::from(vec![Some(12345), None, Some(-1)]).with_precision_and_scale(20, 2).unwrap()),
            Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
            Arc::new(StringArray::from(vec![Some("ünï"), Some(""), None])),
            Arc::new(BinaryArray::from(vec![Some(&b"\0\x01"[..]), None, Some(&b""[..])])),
            Arc::new(
                FixedSizeBinaryArray::try_from_sparse_iter_with_size(vec![Some(vec![1u8, 2]), None, Some(vec![3, 4])].into_iter(), 2)
                    .unwrap(),
            ),
            Arc::new(Date32Array::from(vec![Some(19000), None, Some(-1)])),
            Arc::new(Time64MicrosecondArray::from(vec![Some(1), Some(86_399_999_999), None])),
            Arc::new(TimestampMicrosecondArray::from(vec![Some(1_700_000_000_000_000), None, Some(0)]).with_timezone("UTC")),
            Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(vec![Some(1), None]), None, Some(vec![])])),
        ];
        let fields: Vec<Field> = cols.iter().enumerate().map(|(i, c)| Field::new(format!("c{i}"), c.data_type().clone(), i != 0)).collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
    }

    fn values(b: &RecordBatch, row: usize) -> Vec<Value> {
        b.columns().iter().map(|c| value_at(c.as_ref(), row).unwrap()).collect()
    }

    #[test]
    fn given_arrow_rows_when_written_column_by_column_should_equal_encode_row_for_every_type() {
        let b = batch();
        let fields = b.schema().fields().clone();
        for row in 0..b.num_rows() {
            let mut out = Vec::new();
            let mut w = RowWriter::begin(&mut out, 7, fields.len());
            for c in b.columns() {
                w.array(c.as_ref(), row).unwrap();
            }
            w.finish().unwrap();
            assert_eq!(out, encode_row(7, &values(&b, row), &fields).unwrap(), "row {row}");
        }
    }

    #[test]
    fn given_a_stored_row_when_its_ranges_are_spliced_with_new_columns_should_equal_the_merged_row() {
        let b = batch();
        let fields = b.schema().fields().clone();
        let old = encode_row(1, &values(&b, 0), &fields).unwrap();
        let mut ranges = Vec::new();
        column_ranges(&old, &fields, &SchemaColumns::default(), &mut ranges).unwrap();
        assert_eq!(ranges.len(), fields.len());
        // Take columns 3, 8 and 14 from row 1 of the batch, the others from the stored row 0.
        let targets = [3, 8, 14];
        let mut out = Vec::new();
        let mut w = RowWriter::begin(&mut out, 1, fields.len());
        for (i, range) in ranges.iter().enumerate() {
            match (targets.contains(&i), range) {
                (true, _) => w.array(b.column(i).as_ref(), 1).unwrap(),
                (false, Some(r)) => w.raw(&old[r.clone()]),
                (false, None) => w.null(),
            }
        }
        w.finish().unwrap();
        let mut want = values(&b, 0);
        for &t in &targets {
            want[t] = value_at(b.column(t).as_ref(), 1).unwrap();
        }
        assert_eq!(out, encode_row(1, &want, &fields).unwrap());
        assert_eq!(decode(&out, &fields)[8], Value::Str(String::new()));
        assert!(is_null_in(&old, fields.len(), 4) == (values(&b, 0)[4] == Value::Null));
        assert!(is_null_in(&old, 3, 5), "a column past the stored ones is null");
    }

    #[test]
    fn given_rows_of_an_older_schema_or_damaged_when_ranged_should_pad_or_report_data_loss() {
        let b = batch();
        let fields = b.schema().fields().clone();
        let narrow: Fields = fields.iter().take(5).cloned().collect();
        let old = encode_row(1, &values(&b, 0)[..5], &narrow).unwrap();
        let schema_columns: SchemaColumns = Arc::new([(1u32, 5usize), (2, fields.len())].into_iter().collect());
        let mut ranges = Vec::new();
        column_ranges(&old, &fields, &schema_columns, &mut ranges).unwrap();
        assert!(ranges[5..].iter().all(Option::is_none), "columns added later are null");
        let mut padded = old.clone();
        padded.push(0);
        assert!(matches!(column_ranges(&padded, &fields, &schema_columns, &mut ranges), Err(Error::DataLoss { .. })));
        assert!(matches!(column_ranges(&old[..old.len() - 1], &fields, &schema_columns, &mut ranges), Err(Error::DataLoss { .. })));
        let mut w = RowWriter::begin(&mut padded, 1, 2);
        w.null();
        assert!(w.finish().is_err(), "a row missing a column is refused");
    }
}
