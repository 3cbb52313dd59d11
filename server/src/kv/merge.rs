//! Merge engines: how a write combines with the stored row of its key, and which change
//! records (`+I`, `-U`, `+U`, `-D`) it emits.
//!
//! `merge` is a pure function of (stored row, write). The KV engine appends the emitted changes
//! to the bucket log (the WAL), acknowledges, then stores `new_row`. Recovery replays the changes
//! as plain puts and deletes, never merging again, so every aggregation is counted once.
//!
//! Rules:
//! - last row (default): an upsert replaces the row; a partial upsert replaces only its target
//!   columns (a new key gets nulls elsewhere).
//! - first_row: the first write of a key wins; later upserts and deletes emit nothing.
//! - versioned: the write with the higher version wins; on equal versions the newer write wins;
//!   a write whose version is null or lower emits nothing.
//! - aggregation: each non-key column folds the write into the stored value with its function;
//!   a partial upsert folds only its target columns.
//! - A write that leaves the row unchanged emits nothing. Updates emit `-U` and `+U` with the
//!   FULL image, only `+U` with WAL. Deletes follow `table.delete.behavior`.

use super::value::Value;
use crate::catalog::pk::{AggFunction, AggSpec, ChangelogImage, DeleteBehavior, MergeEngine, PkSpec};
use crate::error::{Error, Result};
use roaring::{RoaringBitmap, RoaringTreemap};

/// The kind of a change record, as carried by `_change_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    Insert,
    UpdateBefore,
    UpdateAfter,
    Delete,
}

impl ChangeType {
    pub fn symbol(self) -> &'static str {
        match self {
            ChangeType::Insert => "+I",
            ChangeType::UpdateBefore => "-U",
            ChangeType::UpdateAfter => "+U",
            ChangeType::Delete => "-D",
        }
    }
}

/// One write of a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// A full row, or a partial one when `targets` lists the written columns (key columns are
    /// always taken from the write).
    Upsert { row: Vec<Value>, targets: Option<Vec<usize>> },
    /// A delete; only the key columns of `row` are meaningful.
    Delete { row: Vec<Value> },
}

/// What a write does to its key.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// The row to store afterwards (None: no row). Unchanged when `changes` is empty.
    pub new_row: Option<Vec<Value>>,
    pub changes: Vec<(ChangeType, Vec<Value>)>,
}

fn unchanged(old: Option<&[Value]>) -> Merged {
    Merged { new_row: old.map(|r| r.to_vec()), changes: vec![] }
}

/// Merges `write` into the stored row `old` under the table's rules.
pub fn merge(spec: &PkSpec, old: Option<&[Value]>, write: Write) -> Result<Merged> {
    match write {
        Write::Delete { row } => delete(spec, old, row),
        Write::Upsert { row, targets } => {
            if targets.is_some() && matches!(spec.merge_engine, MergeEngine::FirstRow | MergeEngine::Versioned { .. }) {
                return Err(Error::invalid("partial updates are not supported by the first_row and versioned merge engines"));
            }
            let Some(old) = old else {
                // A new key: the write's row, with nulls outside the targets of a partial write.
                let row = match &targets {
                    Some(t) => row
                        .iter()
                        .enumerate()
                        .map(|(i, v)| if spec.key.contains(&i) || t.contains(&i) { v.clone() } else { Value::Null })
                        .collect(),
                    None => row,
                };
                return Ok(Merged { new_row: Some(row.clone()), changes: vec![(ChangeType::Insert, row)] });
            };
            let new = match &spec.merge_engine {
                MergeEngine::FirstRow => return Ok(unchanged(Some(old))),
                MergeEngine::Versioned { column } => {
                    let newer = match (&row[*column], &old[*column]) {
                        (Value::Int(n), Value::Int(o)) => n >= o,
                        (Value::Int(_), Value::Null) => true,
                        _ => false,
                    };
                    if !newer {
                        return Ok(unchanged(Some(old)));
                    }
                    row
                }
                MergeEngine::LastRow => match &targets {
                    None => row,
                    Some(t) => old.iter().enumerate().map(|(i, v)| if t.contains(&i) { row[i].clone() } else { v.clone() }).collect(),
                },
                MergeEngine::Aggregation { functions } => {
                    old.iter()
                        .enumerate()
                        .map(|(i, stored)| match &functions[i] {
                            None => Ok(stored.clone()), // key column
                            Some(_) if targets.as_ref().is_some_and(|t| !t.contains(&i)) => Ok(stored.clone()),
                            Some(agg) => aggregate(agg, stored, &row[i])
                                .map_err(|e| Error::invalid(format!("column {:?}: {e}", spec.column_names[i]))),
                        })
                        .collect::<Result<Vec<_>>>()?
                }
            };
            if new == old {
                return Ok(unchanged(Some(old)));
            }
            let mut changes = Vec::with_capacity(2);
            if spec.changelog_image == ChangelogImage::Full {
                changes.push((ChangeType::UpdateBefore, old.to_vec()));
            }
            changes.push((ChangeType::UpdateAfter, new.clone()));
            Ok(Merged { new_row: Some(new), changes })
        }
    }
}

fn delete(spec: &PkSpec, old: Option<&[Value]>, _key_row: Vec<Value>) -> Result<Merged> {
    match spec.delete_behavior {
        DeleteBehavior::Disable => Err(Error::invalid("deletes are disabled on this table (table.delete.behavior = DISABLE)")),
        DeleteBehavior::Ignore => Ok(unchanged(old)),
        DeleteBehavior::Allow if matches!(spec.merge_engine, MergeEngine::FirstRow) => Ok(unchanged(old)),
        DeleteBehavior::Allow => match old {
            None => Ok(unchanged(None)),
            Some(old) => Ok(Merged { new_row: None, changes: vec![(ChangeType::Delete, old.to_vec())] }),
        },
    }
}

/// Folds `incoming` into `stored` with one aggregation function.
pub fn aggregate(agg: &AggSpec, stored: &Value, incoming: &Value) -> std::result::Result<Value, String> {
    use AggFunction::*;
    Ok(match agg.function {
        LastValue => incoming.clone(),
        LastValueIgnoreNulls => {
            if incoming.is_null() {
                stored.clone()
            } else {
                incoming.clone()
            }
        }
        FirstValue => stored.clone(),
        FirstValueIgnoreNulls => {
            if stored.is_null() {
                incoming.clone()
            } else {
                stored.clone()
            }
        }
        _ if incoming.is_null() => stored.clone(),
        _ if stored.is_null() => incoming.clone(),
        Sum => match (stored, incoming) {
            (Value::Int(a), Value::Int(b)) => Value::Int(a.checked_add(*b).ok_or("sum overflows")?),
            (Value::Float(a), Value::Float(b)) => Value::Float(a + b),
            (Value::Decimal(a), Value::Decimal(b)) => Value::Decimal(a.checked_add(*b).ok_or("sum overflows")?),
            _ => return Err("sum needs numbers".into()),
        },
        Product => match (stored, incoming) {
            (Value::Int(a), Value::Int(b)) => Value::Int(a.checked_mul(*b).ok_or("product overflows")?),
            (Value::Float(a), Value::Float(b)) => Value::Float(a * b),
            _ => return Err("product needs integers or floats".into()),
        },
        Max | Min => {
            let ord = compare(stored, incoming).ok_or("max/min needs comparable values")?;
            let keep_stored = if agg.function == Max { ord.is_ge() } else { ord.is_le() };
            if keep_stored {
                stored.clone()
            } else {
                incoming.clone()
            }
        }
        ListAgg => match (stored, incoming) {
            (Value::Str(a), Value::Str(b)) => Value::Str(format!("{a}{}{b}", agg.delimiter)),
            _ => return Err("listagg needs strings".into()),
        },
        BoolAnd | BoolOr => match (stored, incoming) {
            (Value::Bool(a), Value::Bool(b)) => Value::Bool(if agg.function == BoolAnd { *a && *b } else { *a || *b }),
            _ => return Err("bool_and/bool_or need booleans".into()),
        },
        Rbm32 => match (stored, incoming) {
            (Value::Bytes(a), Value::Bytes(b)) => {
                let mut x = RoaringBitmap::deserialize_from(&a[..]).map_err(|e| format!("stored rbm32 bitmap does not decode: {e}"))?;
                x |= RoaringBitmap::deserialize_from(&b[..]).map_err(|e| format!("rbm32 value is not a serialized roaring bitmap: {e}"))?;
                let mut out = Vec::with_capacity(x.serialized_size());
                x.serialize_into(&mut out).map_err(|e| e.to_string())?;
                Value::Bytes(out)
            }
            _ => return Err("rbm32 needs BYTES".into()),
        },
        Rbm64 => match (stored, incoming) {
            (Value::Bytes(a), Value::Bytes(b)) => {
                let mut x = RoaringTreemap::deserialize_from(&a[..]).map_err(|e| format!("stored rbm64 bitmap does not decode: {e}"))?;
                x |= RoaringTreemap::deserialize_from(&b[..])
                    .map_err(|e| format!("rbm64 value is not a serialized 64-bit roaring bitmap: {e}"))?;
                let mut out = Vec::with_capacity(x.serialized_size());
                x.serialize_into(&mut out).map_err(|e| e.to_string())?;
                Value::Bytes(out)
            }
            _ => return Err("rbm64 needs BYTES".into()),
        },
    })
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y),
        (Value::Decimal(x), Value::Decimal(y)) => Some(x.cmp(y)),
        (Value::Str(x), Value::Str(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::pk::{validate, MERGE_ENGINE};
    use arrow_schema::{DataType, Field, Schema};
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("a", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("b", DataType::Binary, true),
        ])
    }

    fn spec(options: &[(&str, &str)]) -> PkSpec {
        let opts: BTreeMap<String, String> = options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        validate(&schema(), &["k".to_string()], &[], &[], &[false; 4], &opts).unwrap()
    }

    fn row(k: i64, a: Option<i64>, s: Option<&str>) -> Vec<Value> {
        vec![Value::Int(k), a.map_or(Value::Null, Value::Int), s.map_or(Value::Null, |s| Value::Str(s.into())), Value::Null]
    }

    fn upsert(r: Vec<Value>) -> Write {
        Write::Upsert { row: r, targets: None }
    }

    fn kinds(m: &Merged) -> Vec<&'static str> {
        m.changes.iter().map(|(c, _)| c.symbol()).collect()
    }

    #[test]
    fn given_last_row_table_when_written_should_emit_insert_update_delete_and_skip_noops() {
        let s = spec(&[]);
        let first = merge(&s, None, upsert(row(1, Some(1), Some("x")))).unwrap();
        assert_eq!(kinds(&first), ["+I"]);
        let stored = first.new_row.unwrap();
        assert_eq!(kinds(&merge(&s, Some(&stored), upsert(row(1, Some(1), Some("x")))).unwrap()), Vec::<&str>::new(), "no-op");
        let partial = merge(&s, Some(&stored), Write::Upsert { row: row(1, None, Some("y")), targets: Some(vec![0, 2]) }).unwrap();
        assert_eq!(kinds(&partial), ["-U", "+U"]);
        assert_eq!(partial.new_row.clone().unwrap(), row(1, Some(1), Some("y")), "columns outside the targets keep their values");
        let del = merge(&s, partial.new_row.as_deref(), Write::Delete { row: row(1, None, None) }).unwrap();
        assert_eq!((kinds(&del), del.new_row), (vec!["-D"], None));
        let wal = spec(&[("table.changelog.image", "WAL")]);
        assert_eq!(kinds(&merge(&wal, Some(&stored), upsert(row(1, Some(2), None))).unwrap()), ["+U"]);
    }

    #[test]
    fn given_first_row_and_versioned_tables_when_written_should_keep_the_winner() {
        let first = spec(&[(MERGE_ENGINE, "first_row")]);
        let stored = merge(&first, None, upsert(row(1, Some(1), None))).unwrap().new_row.unwrap();
        let again = merge(&first, Some(&stored), upsert(row(1, Some(2), None))).unwrap();
        assert!(again.changes.is_empty() && again.new_row.unwrap() == stored);
        assert!(merge(&first, Some(&stored), Write::Upsert { row: row(1, None, None), targets: Some(vec![0, 1]) }).is_err());

        let versioned = spec(&[(MERGE_ENGINE, "versioned"), ("table.merge-engine.versioned.ver-column", "a")]);
        let v5 = merge(&versioned, None, upsert(row(1, Some(5), Some("five")))).unwrap().new_row.unwrap();
        let older = merge(&versioned, Some(&v5), upsert(row(1, Some(3), Some("three")))).unwrap();
        assert!(older.changes.is_empty(), "an out-of-order older version is ignored");
        let newer = merge(&versioned, Some(&v5), upsert(row(1, Some(7), Some("seven")))).unwrap();
        assert_eq!(kinds(&newer), ["-U", "+U"]);
        assert_eq!(newer.new_row.unwrap(), row(1, Some(7), Some("seven")));
    }

    #[test]
    fn given_aggregation_functions_when_folded_should_follow_their_definitions() {
        let agg = |f: AggFunction| AggSpec { function: f, delimiter: "|".into() };
        let (i, s, n) = (Value::Int, |x: &str| Value::Str(x.into()), Value::Null);
        use AggFunction::*;
        assert_eq!(aggregate(&agg(Sum), &i(2), &i(3)).unwrap(), i(5));
        assert_eq!(aggregate(&agg(Sum), &n, &i(3)).unwrap(), i(3));
        assert_eq!(aggregate(&agg(Sum), &i(3), &n).unwrap(), i(3));
        assert!(aggregate(&agg(Sum), &i(i64::MAX), &i(1)).is_err(), "overflow is refused, not wrapped");
        assert_eq!(aggregate(&agg(Product), &i(2), &i(3)).unwrap(), i(6));
        assert_eq!(aggregate(&agg(Max), &i(2), &i(3)).unwrap(), i(3));
        assert_eq!(aggregate(&agg(Min), &s("b"), &s("a")).unwrap(), s("a"));
        assert_eq!(aggregate(&agg(LastValue), &i(2), &n).unwrap(), n);
        assert_eq!(aggregate(&agg(LastValueIgnoreNulls), &i(2), &n).unwrap(), i(2));
        assert_eq!(aggregate(&agg(FirstValue), &n, &i(3)).unwrap(), n);
        assert_eq!(aggregate(&agg(FirstValueIgnoreNulls), &n, &i(3)).unwrap(), i(3));
        assert_eq!(aggregate(&agg(ListAgg), &s("a"), &s("b")).unwrap(), s("a|b"));
        assert_eq!(aggregate(&agg(BoolAnd), &Value::Bool(true), &Value::Bool(false)).unwrap(), Value::Bool(false));
        assert_eq!(aggregate(&agg(BoolOr), &Value::Bool(false), &Value::Bool(true)).unwrap(), Value::Bool(true));
        let bitmap = |ids: &[u32]| {
            let mut out = vec![];
            ids.iter().copied().collect::<RoaringBitmap>().serialize_into(&mut out).unwrap();
            Value::Bytes(out)
        };
        let Value::Bytes(union) = aggregate(&agg(Rbm32), &bitmap(&[1, 2]), &bitmap(&[2, 3])).unwrap() else { panic!() };
        assert_eq!(RoaringBitmap::deserialize_from(&union[..]).unwrap().len(), 3);
        assert!(aggregate(&agg(Rbm32), &bitmap(&[1]), &Value::Bytes(b"junk".to_vec())).is_err());
        let tree = |ids: &[u64]| {
            let mut out = vec![];
            ids.iter().copied().collect::<RoaringTreemap>().serialize_into(&mut out).unwrap();
            Value::Bytes(out)
        };
        let Value::Bytes(union) = aggregate(&agg(Rbm64), &tree(&[1, u64::MAX]), &tree(&[1, 5])).unwrap() else { panic!() };
        assert_eq!(RoaringTreemap::deserialize_from(&union[..]).unwrap().len(), 3);
    }

    /// The changelog is the WAL: replaying its records as plain puts and deletes must give the
    /// merged state, for every engine, over random sequences of writes.
    #[test]
    fn given_random_writes_when_changelog_is_replayed_should_equal_the_merged_state() {
        let engines: Vec<Vec<(&str, &str)>> = vec![
            vec![],
            vec![("table.changelog.image", "WAL")],
            vec![(MERGE_ENGINE, "first_row")],
            vec![(MERGE_ENGINE, "versioned"), ("table.merge-engine.versioned.ver-column", "a")],
            vec![(MERGE_ENGINE, "aggregation"), ("fields.a.agg", "sum"), ("fields.s.agg", "listagg"), ("fields.b.agg", "rbm32")],
            vec![(MERGE_ENGINE, "aggregation"), ("fields.a.agg", "max"), ("table.delete.behavior", "IGNORE")],
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for options in engines {
            let s = spec(&options);
            let partial_ok = matches!(s.merge_engine, MergeEngine::LastRow | MergeEngine::Aggregation { .. });
            let mut state: BTreeMap<i64, Vec<Value>> = BTreeMap::new();
            let mut replayed: BTreeMap<i64, Vec<Value>> = BTreeMap::new();
            for _ in 0..2000 {
                let k = rng.gen_range(0..20);
                let mut r =
                    row(k, rng.gen_bool(0.9).then(|| rng.gen_range(-50..50)), rng.gen_bool(0.8).then_some(["x", "y"][rng.gen_range(0..2)]));
                if rng.gen_bool(0.5) {
                    let mut bytes = vec![];
                    [rng.gen_range(0..100u32)].into_iter().collect::<RoaringBitmap>().serialize_into(&mut bytes).unwrap();
                    r[3] = Value::Bytes(bytes);
                }
                let write = match rng.gen_range(0..10) {
                    0 => Write::Delete { row: r },
                    1 | 2 if partial_ok => Write::Upsert { row: r, targets: Some(vec![0, rng.gen_range(1..4)]) },
                    _ => Write::Upsert { row: r, targets: None },
                };
                let merged = merge(&s, state.get(&k).map(|v| v.as_slice()), write).unwrap();
                for (change, image) in &merged.changes {
                    match change {
                        ChangeType::Insert | ChangeType::UpdateAfter => replayed.insert(k, image.clone()),
                        ChangeType::Delete => replayed.remove(&k),
                        ChangeType::UpdateBefore => {
                            assert_eq!(replayed.get(&k), Some(image), "-U carries the stored image");
                            None
                        }
                    };
                }
                match merged.new_row {
                    Some(r) => state.insert(k, r),
                    None => state.remove(&k),
                };
                assert_eq!(replayed, state, "{options:?}");
            }
        }
    }
}
