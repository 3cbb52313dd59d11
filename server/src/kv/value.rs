//! Rows of primary-key tables as typed values, their stable on-disk encoding, and conversion
//! from and to Arrow columns.
//!
//! A stored row is `schema id (u32 LE) | null bitmap (1 bit per column) | non-null values in
//! column order`. Values are encoded by the column's type, little-endian: fixed widths as is,
//! strings and bytes as `u32 length + bytes`, lists as `u32 count + elements` (each element
//! with a null byte), maps as lists of key/value pairs, structs as a nested row without schema
//! id. The format is defined here, not borrowed from a library whose layout may change.

use crate::error::{Error, Result};
use arrow_array::builder::{make_builder, ArrayBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Fields, SchemaRef, TimeUnit};
use std::sync::Arc;

/// One value of a column.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Decimal(i128),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Struct(Vec<Value>),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

pub(crate) fn corrupt(what: &str) -> Error {
    Error::DataLoss { location: "stored row".into(), detail: what.to_string() }
}

/// Reads `array[row]` as a value of `array.data_type()`.
pub fn value_at(array: &dyn Array, row: usize) -> Result<Value> {
    if array.is_null(row) {
        return Ok(Value::Null);
    }
    Ok(match array.data_type() {
        DataType::Boolean => Value::Bool(array.as_boolean().value(row)),
        DataType::Int8 => Value::Int(array.as_primitive::<Int8Type>().value(row) as i64),
        DataType::Int16 => Value::Int(array.as_primitive::<Int16Type>().value(row) as i64),
        DataType::Int32 => Value::Int(array.as_primitive::<Int32Type>().value(row) as i64),
        DataType::Int64 => Value::Int(array.as_primitive::<Int64Type>().value(row)),
        DataType::Float32 => Value::Float(array.as_primitive::<Float32Type>().value(row) as f64),
        DataType::Float64 => Value::Float(array.as_primitive::<Float64Type>().value(row)),
        DataType::Decimal128(..) => Value::Decimal(array.as_primitive::<Decimal128Type>().value(row)),
        DataType::Date32 => Value::Int(array.as_primitive::<Date32Type>().value(row) as i64),
        DataType::Time32(TimeUnit::Second) => Value::Int(array.as_primitive::<Time32SecondType>().value(row) as i64),
        DataType::Time32(_) => Value::Int(array.as_primitive::<Time32MillisecondType>().value(row) as i64),
        DataType::Time64(TimeUnit::Microsecond) => Value::Int(array.as_primitive::<Time64MicrosecondType>().value(row)),
        DataType::Time64(_) => Value::Int(array.as_primitive::<Time64NanosecondType>().value(row)),
        DataType::Timestamp(unit, _) => Value::Int(match unit {
            TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(row),
            TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().value(row),
            TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().value(row),
            TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().value(row),
        }),
        DataType::Utf8 => Value::Str(array.as_string::<i32>().value(row).to_string()),
        DataType::Binary => Value::Bytes(array.as_binary::<i32>().value(row).to_vec()),
        DataType::FixedSizeBinary(_) => Value::Bytes(array.as_fixed_size_binary().value(row).to_vec()),
        DataType::List(_) => {
            let items = array.as_list::<i32>().value(row);
            Value::List((0..items.len()).map(|i| value_at(items.as_ref(), i)).collect::<Result<_>>()?)
        }
        DataType::Map(..) => {
            let entries = array.as_map().value(row);
            let (keys, values) = (entries.column(0), entries.column(1));
            Value::Map((0..entries.len()).map(|i| Ok((value_at(keys.as_ref(), i)?, value_at(values.as_ref(), i)?))).collect::<Result<_>>()?)
        }
        DataType::Struct(_) => {
            let s = array.as_struct();
            Value::Struct(s.columns().iter().map(|c| value_at(c.as_ref(), row)).collect::<Result<_>>()?)
        }
        other => return Err(Error::Internal(format!("type {other} is not stored in primary-key tables"))),
    })
}

/// Appends `value` (of type `dt`) to `out`. Nulls are not written here (the bitmap has them).
pub(crate) fn encode_value(value: &Value, dt: &DataType, out: &mut Vec<u8>) -> Result<()> {
    let mismatch = || Error::Internal(format!("value {value:?} does not fit type {dt}"));
    match (value, dt) {
        (Value::Bool(b), DataType::Boolean) => out.push(*b as u8),
        (Value::Int(v), _) => out.extend_from_slice(&v.to_le_bytes()),
        (Value::Float(v), DataType::Float32 | DataType::Float64) => out.extend_from_slice(&v.to_le_bytes()),
        (Value::Decimal(v), DataType::Decimal128(..)) => out.extend_from_slice(&v.to_le_bytes()),
        (Value::Str(s), DataType::Utf8) => {
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        (Value::Bytes(b), DataType::Binary | DataType::FixedSizeBinary(_)) => {
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(b);
        }
        (Value::List(items), DataType::List(f)) => {
            out.extend_from_slice(&(items.len() as u32).to_le_bytes());
            for item in items {
                encode_nullable(item, f.data_type(), out)?;
            }
        }
        (Value::Map(entries), DataType::Map(f, _)) => {
            let DataType::Struct(kv) = f.data_type() else { return Err(mismatch()) };
            out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
            for (k, v) in entries {
                encode_nullable(k, kv[0].data_type(), out)?;
                encode_nullable(v, kv[1].data_type(), out)?;
            }
        }
        (Value::Struct(values), DataType::Struct(fields)) => encode_fields(values, fields, out)?,
        _ => return Err(mismatch()),
    }
    Ok(())
}

fn encode_nullable(value: &Value, dt: &DataType, out: &mut Vec<u8>) -> Result<()> {
    out.push(!value.is_null() as u8);
    if !value.is_null() {
        encode_value(value, dt, out)?;
    }
    Ok(())
}

fn encode_fields(values: &[Value], fields: &Fields, out: &mut Vec<u8>) -> Result<()> {
    if values.len() != fields.len() {
        return Err(Error::Internal(format!("row has {} values for {} columns", values.len(), fields.len())));
    }
    let bitmap_at = out.len();
    out.resize(bitmap_at + values.len().div_ceil(8), 0);
    for (i, (v, f)) in values.iter().zip(fields.iter()).enumerate() {
        if v.is_null() {
            out[bitmap_at + i / 8] |= 1 << (i % 8);
        } else {
            encode_value(v, f.data_type(), out)?;
        }
    }
    Ok(())
}

/// Encodes a row of `schema` written under `schema_id`.
pub fn encode_row(schema_id: u32, values: &[Value], fields: &Fields) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(16 + values.len() * 8);
    out.extend_from_slice(&schema_id.to_le_bytes());
    encode_fields(values, fields, &mut out)?;
    Ok(out)
}

/// The schema id a stored row was written with.
pub fn row_schema_id(bytes: &[u8]) -> Result<u32> {
    bytes.get(..4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes"))).ok_or_else(|| corrupt("row shorter than its schema id"))
}

pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader of `bytes` from `pos`.
    pub(crate) fn at(bytes: &'a [u8], pos: usize) -> Self {
        Self { bytes, pos }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or_else(|| corrupt("row is truncated"))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn value(&mut self, dt: &DataType) -> Result<Value> {
        Ok(match dt {
            DataType::Boolean => Value::Bool(self.take(1)?[0] != 0),
            DataType::Float32 | DataType::Float64 => Value::Float(f64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes"))),
            DataType::Decimal128(..) => Value::Decimal(i128::from_le_bytes(self.take(16)?.try_into().expect("16 bytes"))),
            DataType::Utf8 => {
                let n = self.u32()? as usize;
                Value::Str(String::from_utf8(self.take(n)?.to_vec()).map_err(|_| corrupt("string is not UTF-8"))?)
            }
            DataType::Binary | DataType::FixedSizeBinary(_) => {
                let n = self.u32()? as usize;
                Value::Bytes(self.take(n)?.to_vec())
            }
            DataType::List(f) => {
                let n = self.u32()? as usize;
                Value::List((0..n).map(|_| self.nullable(f.data_type())).collect::<Result<_>>()?)
            }
            DataType::Map(f, _) => {
                let DataType::Struct(kv) = f.data_type() else { return Err(corrupt("map entries are not a struct")) };
                let n = self.u32()? as usize;
                Value::Map(
                    (0..n).map(|_| Ok((self.nullable(kv[0].data_type())?, self.nullable(kv[1].data_type())?))).collect::<Result<_>>()?,
                )
            }
            DataType::Struct(fields) => Value::Struct(self.fields(fields)?),
            _ => Value::Int(i64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes"))),
        })
    }

    fn nullable(&mut self, dt: &DataType) -> Result<Value> {
        if self.take(1)?[0] == 0 {
            Ok(Value::Null)
        } else {
            self.value(dt)
        }
    }

    fn fields(&mut self, fields: &Fields) -> Result<Vec<Value>> {
        let bitmap = self.take(fields.len().div_ceil(8))?;
        fields
            .iter()
            .enumerate()
            .map(|(i, f)| if bitmap[i / 8] & (1 << (i % 8)) != 0 { Ok(Value::Null) } else { self.value(f.data_type()) })
            .collect()
    }
}

/// Decodes a row stored with `encode_row` for the given fields.
#[cfg(test)]
pub fn decode_row(bytes: &[u8], fields: &Fields) -> Result<Vec<Value>> {
    decode_row_padded(bytes, fields, fields.len())
}

/// Decodes a row that encodes the first `stored` of `fields` (it was written before the
/// others were added), giving the others null.
pub fn decode_row_padded(bytes: &[u8], fields: &Fields, stored: usize) -> Result<Vec<Value>> {
    if stored > fields.len() {
        return Err(corrupt("row has more columns than the table"));
    }
    let mut r = Reader { bytes, pos: 4 };
    let stored_fields: Fields = fields.iter().take(stored).cloned().collect();
    let mut values = r.fields(&stored_fields)?;
    if r.pos != bytes.len() {
        return Err(corrupt("row has trailing bytes"));
    }
    values.resize(fields.len(), Value::Null);
    Ok(values)
}

/// Column count per schema id of a table's stored rows (empty: every row has every column).
pub type SchemaColumns = std::sync::Arc<std::collections::BTreeMap<u32, usize>>;

/// How many of `fields` stored data of `schema_id` holds (empty `schema_columns`: all of them).
pub fn schema_width(schema_columns: &SchemaColumns, schema_id: u32, fields: &Fields) -> Result<usize> {
    if schema_columns.is_empty() {
        return Ok(fields.len());
    }
    schema_columns
        .get(&schema_id)
        .copied()
        .ok_or_else(|| corrupt(&format!("stored data has schema id {schema_id}, which the table never had")))
}

/// How many of `fields` a stored row encodes, from its schema id.
pub fn stored_columns(bytes: &[u8], fields: &Fields, schema_columns: &SchemaColumns) -> Result<usize> {
    schema_width(schema_columns, row_schema_id(bytes)?, fields)
}

/// `builder` (made by `make_builder` for `dt`) as its concrete type.
fn typed<'b, B: ArrayBuilder>(builder: &'b mut dyn ArrayBuilder, dt: &DataType) -> Result<&'b mut B> {
    builder.as_any_mut().downcast_mut::<B>().ok_or_else(|| Error::Internal(format!("no builder for {dt}")))
}

/// Appends `value` to an Arrow builder made by `make_builder` for `dt`.
fn append(builder: &mut dyn ArrayBuilder, dt: &DataType, value: &Value) -> Result<()> {
    use arrow_array::builder::*;
    macro_rules! prim {
        ($b:ty, $conv:expr) => {{
            let b = typed::<$b>(builder, dt)?;
            match value {
                Value::Null => b.append_null(),
                v => b.append_value($conv(v).ok_or_else(|| Error::Internal(format!("value {v:?} does not fit {dt}")))?),
            }
        }};
    }
    let int = |v: &Value| if let Value::Int(i) = v { Some(*i) } else { None };
    match dt {
        DataType::Boolean => prim!(BooleanBuilder, |v: &Value| if let Value::Bool(b) = v { Some(*b) } else { None }),
        DataType::Int8 => prim!(Int8Builder, |v: &Value| int(v).map(|i| i as i8)),
        DataType::Int16 => prim!(Int16Builder, |v: &Value| int(v).map(|i| i as i16)),
        DataType::Int32 => prim!(Int32Builder, |v: &Value| int(v).map(|i| i as i32)),
        DataType::Int64 => prim!(Int64Builder, int),
        DataType::Float32 => prim!(Float32Builder, |v: &Value| if let Value::Float(f) = v { Some(*f as f32) } else { None }),
        DataType::Float64 => prim!(Float64Builder, |v: &Value| if let Value::Float(f) = v { Some(*f) } else { None }),
        DataType::Decimal128(..) => prim!(Decimal128Builder, |v: &Value| if let Value::Decimal(d) = v { Some(*d) } else { None }),
        DataType::Date32 => prim!(Date32Builder, |v: &Value| int(v).map(|i| i as i32)),
        DataType::Time32(TimeUnit::Second) => prim!(Time32SecondBuilder, |v: &Value| int(v).map(|i| i as i32)),
        DataType::Time32(_) => prim!(Time32MillisecondBuilder, |v: &Value| int(v).map(|i| i as i32)),
        DataType::Time64(TimeUnit::Microsecond) => prim!(Time64MicrosecondBuilder, int),
        DataType::Time64(_) => prim!(Time64NanosecondBuilder, int),
        DataType::Timestamp(TimeUnit::Second, _) => prim!(TimestampSecondBuilder, int),
        DataType::Timestamp(TimeUnit::Millisecond, _) => prim!(TimestampMillisecondBuilder, int),
        DataType::Timestamp(TimeUnit::Microsecond, _) => prim!(TimestampMicrosecondBuilder, int),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => prim!(TimestampNanosecondBuilder, int),
        DataType::Utf8 => prim!(StringBuilder, |v: &Value| if let Value::Str(s) = v { Some(s.clone()) } else { None }),
        DataType::Binary => prim!(BinaryBuilder, |v: &Value| if let Value::Bytes(b) = v { Some(b.clone()) } else { None }),
        DataType::FixedSizeBinary(_) => {
            let b = typed::<FixedSizeBinaryBuilder>(builder, dt)?;
            match value {
                Value::Bytes(bytes) => b.append_value(bytes)?,
                _ => b.append_null(),
            }
        }
        DataType::List(f) => {
            let b = typed::<ListBuilder<Box<dyn ArrayBuilder>>>(builder, dt)?;
            match value {
                Value::List(items) => {
                    for item in items {
                        append(b.values().as_mut(), f.data_type(), item)?;
                    }
                    b.append(true);
                }
                _ => b.append_null(),
            }
        }
        DataType::Map(f, _) => {
            let DataType::Struct(kv) = f.data_type() else { return Err(Error::Internal(format!("map type {dt} has no entry struct"))) };
            let b = typed::<MapBuilder<Box<dyn ArrayBuilder>, Box<dyn ArrayBuilder>>>(builder, dt)?;
            match value {
                Value::Map(entries) => {
                    for (k, v) in entries {
                        append(b.keys().as_mut(), kv[0].data_type(), k)?;
                        append(b.values().as_mut(), kv[1].data_type(), v)?;
                    }
                    b.append(true)?;
                }
                _ => b.append(false)?,
            }
        }
        DataType::Struct(fields) => {
            let b = typed::<StructBuilder>(builder, dt)?;
            let children = b.field_builders_mut();
            for (i, f) in fields.iter().enumerate() {
                let child = match value {
                    Value::Struct(values) => values.get(i).unwrap_or(&Value::Null),
                    _ => &Value::Null,
                };
                append(children[i].as_mut(), f.data_type(), child)?;
            }
            b.append(matches!(value, Value::Struct(_)));
        }
        other => return Err(Error::Internal(format!("type {other} is not stored in primary-key tables"))),
    }
    Ok(())
}

/// Builds a record batch of `schema` from decoded rows (lookup and snapshot results).
pub fn rows_to_batch(schema: &SchemaRef, rows: &[Vec<Value>]) -> Result<RecordBatch> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (c, field) in schema.fields().iter().enumerate() {
        let mut builder = make_builder(field.data_type(), rows.len());
        for row in rows {
            append(builder.as_mut(), field.data_type(), &row[c])?;
        }
        columns.push(Arc::new(builder.finish()));
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// Decodes stored rows straight into Arrow builders of some of their columns: no per-row
/// `Value`s for the columns a lookup or scan returns, and the others are skipped in place.
pub struct ProjectedRows {
    fields: Fields,
    schema_columns: SchemaColumns,
    /// For every stored column, the builder it goes to (None: skipped).
    slots: Vec<Option<usize>>,
    builders: Vec<Box<dyn ArrayBuilder>>,
    rows: usize,
}

impl ProjectedRows {
    /// Builders for the `projection` columns (positions in `fields`, in output order).
    pub fn new(fields: &Fields, projection: &[usize], capacity: usize) -> Self {
        let mut slots = vec![None; fields.len()];
        for (slot, &c) in projection.iter().enumerate() {
            slots[c] = Some(slot);
        }
        let builders = projection.iter().map(|&c| make_builder(fields[c].data_type(), capacity)).collect();
        Self { fields: fields.clone(), schema_columns: SchemaColumns::default(), slots, builders, rows: 0 }
    }

    /// Reads rows written under older schema versions (fewer columns) too.
    pub fn with_schema_columns(mut self, schema_columns: SchemaColumns) -> Self {
        self.schema_columns = schema_columns;
        self
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one stored row.
    pub fn append_row(&mut self, bytes: &[u8]) -> Result<()> {
        let stored = stored_columns(bytes, &self.fields, &self.schema_columns)?;
        if stored > self.fields.len() {
            return Err(corrupt("row has more columns than the table"));
        }
        let mut r = Reader { bytes, pos: 4 };
        let bitmap = r.take(stored.div_ceil(8))?;
        for (i, field) in self.fields.iter().enumerate() {
            // Columns added after the row was written are null in it.
            let null = i >= stored || bitmap[i / 8] & (1 << (i % 8)) != 0;
            match self.slots[i] {
                None if null => {}
                None => r.skip(field.data_type())?,
                Some(b) => {
                    let builder = self.builders[b].as_mut();
                    if null {
                        append(builder, field.data_type(), &Value::Null)?;
                    } else {
                        r.value_into(builder, field.data_type())?;
                    }
                }
            }
        }
        if r.pos != bytes.len() {
            return Err(corrupt("row has trailing bytes"));
        }
        self.rows += 1;
        Ok(())
    }

    /// The columns built so far (the builders start over, empty).
    pub fn finish(&mut self) -> Vec<ArrayRef> {
        self.rows = 0;
        self.builders.iter_mut().map(|b| b.finish()).collect()
    }
}

impl Reader<'_> {
    /// Moves past one non-null value of type `dt`.
    pub(crate) fn skip(&mut self, dt: &DataType) -> Result<()> {
        match dt {
            DataType::Boolean => self.take(1).map(|_| ()),
            DataType::Decimal128(..) => self.take(16).map(|_| ()),
            DataType::Utf8 | DataType::Binary | DataType::FixedSizeBinary(_) => {
                let n = self.u32()? as usize;
                self.take(n).map(|_| ())
            }
            DataType::List(_) | DataType::Map(..) | DataType::Struct(_) => self.value(dt).map(|_| ()),
            _ => self.take(8).map(|_| ()),
        }
    }

    /// Decodes one non-null value of type `dt` into `builder` (made by `make_builder(dt)`):
    /// fixed-width and string values directly, nested ones through `Value`.
    fn value_into(&mut self, builder: &mut dyn ArrayBuilder, dt: &DataType) -> Result<()> {
        use arrow_array::builder::*;
        macro_rules! int {
            ($b:ty, $t:ty) => {{
                let v = i64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes"));
                typed::<$b>(builder, dt)?.append_value(v as $t)
            }};
        }
        match dt {
            DataType::Int8 => int!(Int8Builder, i8),
            DataType::Int16 => int!(Int16Builder, i16),
            DataType::Int32 => int!(Int32Builder, i32),
            DataType::Int64 => int!(Int64Builder, i64),
            DataType::Date32 => int!(Date32Builder, i32),
            DataType::Timestamp(TimeUnit::Second, _) => int!(TimestampSecondBuilder, i64),
            DataType::Timestamp(TimeUnit::Millisecond, _) => int!(TimestampMillisecondBuilder, i64),
            DataType::Timestamp(TimeUnit::Microsecond, _) => int!(TimestampMicrosecondBuilder, i64),
            DataType::Timestamp(TimeUnit::Nanosecond, _) => int!(TimestampNanosecondBuilder, i64),
            DataType::Float64 => {
                let v = f64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes"));
                typed::<Float64Builder>(builder, dt)?.append_value(v)
            }
            DataType::Utf8 => {
                let n = self.u32()? as usize;
                let s = std::str::from_utf8(self.take(n)?).map_err(|_| corrupt("string is not UTF-8"))?;
                typed::<StringBuilder>(builder, dt)?.append_value(s)
            }
            DataType::Binary => {
                let n = self.u32()? as usize;
                let b = self.take(n)?;
                typed::<BinaryBuilder>(builder, dt)?.append_value(b)
            }
            _ => {
                let v = self.value(dt)?;
                append(builder, dt, &v)?
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{
        BooleanArray, Decimal128Array, Float64Array, Int32Array, Int64Array, ListArray, StringArray, TimestampMillisecondArray,
    };
    use arrow_schema::{Field, Schema};

    fn batch() -> RecordBatch {
        let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(vec![Some(1), None, Some(3)]), None, Some(vec![])]);
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![1, -2, i64::MAX])),
            Arc::new(StringArray::from(vec![Some("a"), None, Some("ünïcode")])),
            Arc::new(Float64Array::from(vec![0.5, f64::NAN, -0.0])),
            Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
            Arc::new(Decimal128Array::from(vec![12345, -1, 0]).with_precision_and_scale(10, 2).unwrap()),
            Arc::new(TimestampMillisecondArray::from(vec![Some(1_700_000_000_000), None, Some(0)])),
            Arc::new(Int32Array::from(vec![Some(7), Some(8), None])),
            Arc::new(list),
        ];
        let fields: Vec<Field> = cols.iter().enumerate().map(|(i, c)| Field::new(format!("c{i}"), c.data_type().clone(), i != 0)).collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
    }

    #[test]
    fn given_rows_when_encoded_and_decoded_should_round_trip_every_type() {
        let b = batch();
        let fields = b.schema().fields().clone();
        for row in 0..b.num_rows() {
            let values: Vec<Value> = b.columns().iter().map(|c| value_at(c.as_ref(), row).unwrap()).collect();
            let bytes = encode_row(3, &values, &fields).unwrap();
            assert_eq!(row_schema_id(&bytes).unwrap(), 3);
            let back = decode_row(&bytes, &fields).unwrap();
            // NaN != NaN: compare the encodings instead of the values.
            assert_eq!(encode_row(3, &back, &fields).unwrap(), bytes, "row {row}");
        }
    }

    #[test]
    fn given_truncated_or_padded_rows_when_decoded_should_report_data_loss() {
        let b = batch();
        let fields = b.schema().fields().clone();
        let values: Vec<Value> = b.columns().iter().map(|c| value_at(c.as_ref(), 0).unwrap()).collect();
        let bytes = encode_row(1, &values, &fields).unwrap();
        for cut in [3, 5, bytes.len() - 1] {
            assert!(matches!(decode_row(&bytes[..cut], &fields), Err(Error::DataLoss { .. })), "cut at {cut}");
        }
        let mut padded = bytes.clone();
        padded.push(0);
        assert!(matches!(decode_row(&padded, &fields), Err(Error::DataLoss { .. })));
    }

    #[test]
    fn given_decoded_rows_when_built_into_a_batch_should_equal_the_input() {
        let b = batch();
        let rows: Vec<Vec<Value>> =
            (0..b.num_rows()).map(|r| b.columns().iter().map(|c| value_at(c.as_ref(), r).unwrap()).collect()).collect();
        let rebuilt = rows_to_batch(&b.schema(), &rows).unwrap();
        for (c, (got, want)) in rebuilt.columns().iter().zip(b.columns()).enumerate() {
            if c == 2 {
                continue; // NaN != NaN; covered by the encoding round trip
            }
            assert_eq!(got.as_ref(), want.as_ref(), "column {c}");
        }
    }

    #[test]
    fn given_stored_rows_when_decoded_into_projected_builders_should_equal_the_value_path() {
        let b = batch();
        let fields = b.schema().fields().clone();
        let rows: Vec<Vec<Value>> =
            (0..b.num_rows()).map(|r| b.columns().iter().map(|c| value_at(c.as_ref(), r).unwrap()).collect()).collect();
        let stored: Vec<Vec<u8>> = rows.iter().map(|r| encode_row(1, r, &fields).unwrap()).collect();
        for projection in [vec![0, 1, 2, 3, 4, 5, 6, 7], vec![7, 1], vec![5], vec![3, 0, 6]] {
            let mut projected = ProjectedRows::new(&fields, &projection, 4);
            for bytes in &stored {
                projected.append_row(bytes).unwrap();
            }
            assert_eq!(projected.len(), rows.len());
            let got = projected.finish();
            assert!(projected.is_empty(), "finish starts over");
            let schema = Arc::new(Schema::new(projection.iter().map(|&c| fields[c].as_ref().clone()).collect::<Vec<_>>()));
            let want_rows: Vec<Vec<Value>> = rows.iter().map(|r| projection.iter().map(|&c| r[c].clone()).collect()).collect();
            let want = rows_to_batch(&schema, &want_rows).unwrap();
            for (i, (g, w)) in got.iter().zip(want.columns()).enumerate() {
                if projection[i] == 2 {
                    continue; // NaN != NaN
                }
                assert_eq!(g.as_ref(), w.as_ref(), "projection {projection:?} column {i}");
            }
        }
        let mut projected = ProjectedRows::new(&fields, &[1], 1);
        let mut padded = stored[0].clone();
        padded.push(0);
        assert!(matches!(projected.append_row(&padded), Err(Error::DataLoss { .. })));
        assert!(matches!(projected.append_row(&stored[0][..stored[0].len() - 1]), Err(Error::DataLoss { .. })));
    }
}
