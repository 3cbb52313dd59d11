//! Order-preserving ("memcomparable") encoding of primary keys.
//!
//! Comparing encoded keys as bytes gives the order of the key tuples, and the encoding of the
//! first k key columns is a byte prefix of the full key's encoding. So a bucket key that is a
//! strict prefix of the primary key is a seekable range: prefix lookups are one iterator seek.
//!
//! Storage key: `table id (u64 BE) | bucket (u32 BE) | key columns`, one RocksDB keyspace for
//! the node with a 12-byte prefix per table bucket.
//!
//! Column encodings: integers, dates, times and timestamps as i64 with the sign bit flipped,
//! big-endian (8 bytes); floats as their IEEE bits made order-preserving (8 bytes); decimals as
//! i128 with the sign bit flipped (16 bytes); booleans as one byte; fixed-size binary as is;
//! strings and bytes with every 0x00 escaped as 0x00 0xFF and a 0x00 0x00 terminator (which keeps
//! the encoding prefix-free: "ab" < "ab\0" < "abc").

use super::value::{value_at, Value};
use crate::error::{Error, Result};
use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::Array;
use arrow_schema::{DataType, TimeUnit};

/// Bytes of the `table id | bucket` prefix.
pub const BUCKET_PREFIX_LEN: usize = 12;

/// The keyspace prefix of one table bucket.
pub fn bucket_prefix(table_id: u64, bucket: u32) -> [u8; BUCKET_PREFIX_LEN] {
    let mut out = [0u8; BUCKET_PREFIX_LEN];
    out[..8].copy_from_slice(&table_id.to_be_bytes());
    out[8..].copy_from_slice(&bucket.to_be_bytes());
    out
}

/// Appends the order-preserving encoding of one key value of type `dt`.
pub fn encode_key_value(value: &Value, dt: &DataType, out: &mut Vec<u8>) -> Result<()> {
    match (value, dt) {
        (Value::Null, _) => return Err(Error::invalid("a primary key value is null")),
        (Value::Bool(b), DataType::Boolean) => out.push(*b as u8),
        (Value::Int(v), _) => out.extend_from_slice(&((*v as u64) ^ (1 << 63)).to_be_bytes()),
        (Value::Float(f), DataType::Float32 | DataType::Float64) => {
            let bits = f.to_bits();
            let ordered = if bits >> 63 == 1 { !bits } else { bits ^ (1 << 63) };
            out.extend_from_slice(&ordered.to_be_bytes());
        }
        (Value::Decimal(d), DataType::Decimal128(..)) => out.extend_from_slice(&((*d as u128) ^ (1 << 127)).to_be_bytes()),
        (Value::Bytes(b), DataType::FixedSizeBinary(_)) => out.extend_from_slice(b),
        (Value::Str(s), DataType::Utf8) => escape(s.as_bytes(), out),
        (Value::Bytes(b), DataType::Binary) => escape(b, out),
        (v, dt) => return Err(Error::Internal(format!("key value {v:?} of type {dt} cannot be encoded"))),
    }
    Ok(())
}

fn escape(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

/// The storage key of a row: bucket prefix, then the key columns in key order.
pub fn encode_key(table_id: u64, bucket: u32, values: &[&Value], types: &[&DataType]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(BUCKET_PREFIX_LEN + 16 * values.len());
    out.extend_from_slice(&bucket_prefix(table_id, bucket));
    for (v, dt) in values.iter().zip(types) {
        encode_key_value(v, dt, &mut out)?;
    }
    Ok(out)
}

/// Appends the key encoding of `array[row]`: the same bytes as `encode_key_value` of the value
/// read from the array, without materializing it (lookups encode thousands of keys per batch).
pub fn encode_array_key_value(array: &dyn Array, row: usize, out: &mut Vec<u8>) -> Result<()> {
    if array.is_null(row) {
        return Err(Error::invalid("a primary key value is null"));
    }
    let int = |v: i64, out: &mut Vec<u8>| out.extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes());
    match array.data_type() {
        DataType::Int8 => int(array.as_primitive::<Int8Type>().value(row) as i64, out),
        DataType::Int16 => int(array.as_primitive::<Int16Type>().value(row) as i64, out),
        DataType::Int32 => int(array.as_primitive::<Int32Type>().value(row) as i64, out),
        DataType::Int64 => int(array.as_primitive::<Int64Type>().value(row), out),
        DataType::Date32 => int(array.as_primitive::<Date32Type>().value(row) as i64, out),
        DataType::Timestamp(TimeUnit::Second, _) => int(array.as_primitive::<TimestampSecondType>().value(row), out),
        DataType::Timestamp(TimeUnit::Millisecond, _) => int(array.as_primitive::<TimestampMillisecondType>().value(row), out),
        DataType::Timestamp(TimeUnit::Microsecond, _) => int(array.as_primitive::<TimestampMicrosecondType>().value(row), out),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => int(array.as_primitive::<TimestampNanosecondType>().value(row), out),
        DataType::Utf8 => escape(array.as_string::<i32>().value(row).as_bytes(), out),
        DataType::Binary => escape(array.as_binary::<i32>().value(row), out),
        dt => encode_key_value(&value_at(array, row)?, dt, out)?,
    }
    Ok(())
}

/// The smallest key greater than every key starting with `prefix` (the end of a prefix scan),
/// or None when no such key exists (all bytes 0xFF).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last != 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::cmp::Ordering;

    fn enc(values: &[Value], types: &[DataType]) -> Vec<u8> {
        encode_key(7, 3, &values.iter().collect::<Vec<_>>(), &types.iter().collect::<Vec<_>>()).unwrap()
    }

    fn cmp_values(a: &[Value], b: &[Value]) -> Ordering {
        for (x, y) in a.iter().zip(b) {
            let o = match (x, y) {
                (Value::Int(x), Value::Int(y)) => x.cmp(y),
                (Value::Float(x), Value::Float(y)) => x.total_cmp(y),
                (Value::Str(x), Value::Str(y)) => x.as_bytes().cmp(y.as_bytes()),
                (Value::Decimal(x), Value::Decimal(y)) => x.cmp(y),
                _ => unreachable!(),
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    }

    #[test]
    fn given_random_key_tuples_when_encoded_should_sort_like_the_tuples() {
        let types = [DataType::Int64, DataType::Utf8, DataType::Float64, DataType::Decimal128(20, 2)];
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        let strings = ["", "a", "a\0", "a\0b", "ab", "b", "\0", "\u{ff}", "zz"];
        let tuples: Vec<Vec<Value>> = (0..2000)
            .map(|_| {
                vec![
                    Value::Int(*[i64::MIN, -1, 0, 1, i64::MAX, rng.gen_range(-5..5)].get(rng.gen_range(0..6)).unwrap()),
                    Value::Str(strings[rng.gen_range(0..strings.len())].to_string()),
                    Value::Float([-1.5, -0.0, 0.0, 2.25, f64::INFINITY, f64::NEG_INFINITY][rng.gen_range(0..6)]),
                    Value::Decimal(rng.gen_range(-1000..1000)),
                ]
            })
            .collect();
        for pair in tuples.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            assert_eq!(enc(a, &types).cmp(&enc(b, &types)), cmp_values(a, b), "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn given_key_prefix_when_encoded_should_be_a_byte_prefix_of_the_full_key() {
        let full = [Value::Int(5), Value::Str("2025-08-01".into()), Value::Int(99)];
        let types = [DataType::Int64, DataType::Utf8, DataType::Int64];
        let full_key = enc(&full, &types);
        for k in 0..=3 {
            assert!(full_key.starts_with(&enc(&full[..k], &types[..k])), "prefix of {k} columns");
        }
        // A different first column never shares the one-column prefix.
        assert!(!enc(&[Value::Int(50)], &types[..1]).starts_with(&enc(&[Value::Int(5)], &types[..1])));
        let end = prefix_end(&enc(&full[..1], &types[..1])).unwrap();
        assert!(full_key < end && enc(&[Value::Int(6)], &types[..1]) >= end);
    }

    #[test]
    fn given_null_key_value_when_encoded_should_be_invalid() {
        assert!(encode_key(1, 0, &[&Value::Null], &[&DataType::Int64]).is_err());
        assert_eq!(prefix_end(&[0xFF, 0xFF]), None);
        assert_eq!(prefix_end(&[1, 0xFF]).unwrap(), vec![2]);
    }

    #[test]
    fn given_arrays_when_keys_encoded_from_them_should_equal_the_value_encoding() {
        use arrow_array::{
            ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, FixedSizeBinaryArray, Float32Array, Float64Array,
            Int16Array, Int32Array, Int64Array, Int8Array, StringArray, TimestampMicrosecondArray,
        };
        use std::sync::Arc;
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let n = 200;
        let strings: Vec<String> =
            (0..n).map(|_| (0..rng.gen_range(0..6)).map(|_| ['a', '\0', 'ü', 'z'][rng.gen_range(0..4)]).collect()).collect();
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(Int8Array::from_iter_values((0..n).map(|_| rng.gen::<i8>()))),
            Arc::new(Int16Array::from_iter_values((0..n).map(|_| rng.gen::<i16>()))),
            Arc::new(Int32Array::from_iter_values((0..n).map(|_| rng.gen::<i32>()))),
            Arc::new(Int64Array::from_iter_values((0..n).map(|_| rng.gen::<i64>()))),
            Arc::new(Date32Array::from_iter_values((0..n).map(|_| rng.gen::<i32>()))),
            Arc::new(TimestampMicrosecondArray::from_iter_values((0..n).map(|_| rng.gen::<i64>())).with_timezone("UTC")),
            Arc::new(Float32Array::from_iter_values((0..n).map(|_| rng.gen::<f32>() - 0.5))),
            Arc::new(Float64Array::from_iter_values((0..n).map(|_| rng.gen::<f64>() - 0.5))),
            Arc::new(Decimal128Array::from_iter_values((0..n).map(|_| rng.gen::<i64>() as i128)).with_precision_and_scale(20, 2).unwrap()),
            Arc::new(BooleanArray::from_iter((0..n).map(|_| Some(rng.gen::<bool>())))),
            Arc::new(StringArray::from_iter_values(strings.iter())),
            Arc::new(BinaryArray::from_iter_values(strings.iter().map(|s| s.as_bytes()))),
            Arc::new(FixedSizeBinaryArray::try_from_iter((0..n).map(|_| rng.gen::<[u8; 4]>())).unwrap()),
        ];
        for array in &arrays {
            for row in 0..n {
                let (mut direct, mut via_value) = (Vec::new(), Vec::new());
                encode_array_key_value(array.as_ref(), row, &mut direct).unwrap();
                encode_key_value(&value_at(array.as_ref(), row).unwrap(), array.data_type(), &mut via_value).unwrap();
                assert_eq!(direct, via_value, "{} row {row}", array.data_type());
            }
        }
        let nulls = Int64Array::from(vec![None, Some(1)]);
        assert!(encode_array_key_value(&nulls, 0, &mut Vec::new()).is_err());
    }
}
