//! JSON values of lookup keys and filter operands, read as typed values of a column.
//!
//! Integers for integer columns; numbers for floats; strings; booleans; DECIMAL as a string or a
//! number; DATE as `"2024-06-01"` or days since the epoch; TIMESTAMP as an integer in the
//! column's unit or an ISO-8601 string; TIME as an integer in the column's unit; BYTES as a
//! string (its UTF-8 bytes) or an array of byte values. Strings for temporal and decimal types
//! are parsed by Arrow's own casts, so they accept what Arrow accepts.

use crate::kv::value::{value_at, Value};
use arrow_array::{Array, StringArray};
use arrow_cast::cast::{cast_with_options, CastOptions};
use arrow_schema::DataType;
use serde_json::Value as Json;

fn parse_with_arrow(text: &str, dt: &DataType) -> Result<Value, String> {
    // Instants are parsed as UTC (an offset in the text is applied); the stored value of a
    // TIMESTAMP_LTZ is the same i64 either way.
    if let DataType::Timestamp(unit, Some(_)) = dt {
        return parse_with_arrow(text, &DataType::Timestamp(*unit, None));
    }
    let input = StringArray::from(vec![text]);
    let strict = CastOptions { safe: false, ..Default::default() };
    let out = cast_with_options(&input, dt, &strict).map_err(|e| format!("{text:?} is not a valid {dt}: {e}"))?;
    if out.is_null(0) {
        return Err(format!("{text:?} is not a valid {dt}"));
    }
    value_at(out.as_ref(), 0).map_err(|e| e.to_string())
}

fn integer_in(v: &Json, min: i64, max: i64, dt: &DataType) -> Result<Value, String> {
    let n = v.as_i64().ok_or_else(|| format!("{v} is not an integer (column type {dt})"))?;
    if n < min || n > max {
        return Err(format!("{n} is out of range for {dt}"));
    }
    Ok(Value::Int(n))
}

/// Reads `v` as a value of `dt`.
pub fn json_to_value(v: &Json, dt: &DataType) -> Result<Value, String> {
    use DataType::*;
    if v.is_null() {
        return Ok(Value::Null);
    }
    match dt {
        Boolean => v.as_bool().map(Value::Bool).ok_or_else(|| format!("{v} is not a boolean")),
        Int8 => integer_in(v, i8::MIN as i64, i8::MAX as i64, dt),
        Int16 => integer_in(v, i16::MIN as i64, i16::MAX as i64, dt),
        Int32 => integer_in(v, i32::MIN as i64, i32::MAX as i64, dt),
        Int64 => integer_in(v, i64::MIN, i64::MAX, dt),
        Float32 | Float64 => v.as_f64().map(Value::Float).ok_or_else(|| format!("{v} is not a number")),
        Utf8 | LargeUtf8 => v.as_str().map(|s| Value::Str(s.to_string())).ok_or_else(|| format!("{v} is not a string")),
        Decimal128(..) => match v {
            Json::String(s) => parse_with_arrow(s, dt),
            Json::Number(n) => parse_with_arrow(&n.to_string(), dt),
            _ => Err(format!("{v} is not a decimal (use a string such as \"12.50\")")),
        },
        Date32 | Time32(_) | Time64(_) | Timestamp(..) => match v {
            Json::Number(_) => integer_in(v, i64::MIN, i64::MAX, dt),
            Json::String(s) => parse_with_arrow(s, dt),
            _ => Err(format!("{v} is not a {dt} (an integer or an ISO-8601 string)")),
        },
        Binary | LargeBinary | FixedSizeBinary(_) => {
            let bytes = match v {
                Json::String(s) => s.as_bytes().to_vec(),
                Json::Array(items) => items
                    .iter()
                    .map(|b| b.as_u64().filter(|&b| b <= 255).map(|b| b as u8).ok_or_else(|| format!("{b} is not a byte value")))
                    .collect::<Result<Vec<u8>, String>>()?,
                _ => return Err(format!("{v} is not bytes (a string or an array of byte values)")),
            };
            if let FixedSizeBinary(n) = dt {
                if bytes.len() != *n as usize {
                    return Err(format!("{} bytes given, the column holds exactly {n}", bytes.len()));
                }
            }
            Ok(Value::Bytes(bytes))
        }
        other => Err(format!("JSON values of type {other} are not supported here")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::TimeUnit;
    use serde_json::json;

    #[test]
    fn given_json_values_when_read_for_columns_should_convert_or_name_the_problem() {
        assert_eq!(json_to_value(&json!(5), &DataType::Int32).unwrap(), Value::Int(5));
        assert!(json_to_value(&json!(1i64 << 40), &DataType::Int32).unwrap_err().contains("out of range"));
        assert!(json_to_value(&json!("5"), &DataType::Int64).unwrap_err().contains("not an integer"));
        assert_eq!(json_to_value(&json!("1970-01-02"), &DataType::Date32).unwrap(), Value::Int(1));
        assert_eq!(json_to_value(&json!(3), &DataType::Date32).unwrap(), Value::Int(3));
        assert_eq!(
            json_to_value(&json!("1970-01-01T00:00:01"), &DataType::Timestamp(TimeUnit::Millisecond, None)).unwrap(),
            Value::Int(1000)
        );
        assert_eq!(
            json_to_value(&json!("1970-01-01T01:00:01+01:00"), &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))).unwrap(),
            Value::Int(1000)
        );
        assert_eq!(json_to_value(&json!("12.50"), &DataType::Decimal128(10, 2)).unwrap(), Value::Decimal(1250));
        assert_eq!(json_to_value(&json!([1, 2]), &DataType::Binary).unwrap(), Value::Bytes(vec![1, 2]));
        assert!(json_to_value(&json!("ab"), &DataType::FixedSizeBinary(3)).is_err());
        assert!(json_to_value(&json!("not a date"), &DataType::Date32).is_err());
        assert_eq!(json_to_value(&json!(null), &DataType::Utf8).unwrap(), Value::Null);
    }
}
