//! Table definitions and deterministic batch generators for the benchmark scenarios.

use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use strom_flight_api::ColumnSpec;

/// SQL type name and the Arrow type the contract maps it to.
fn arrow_type(sql: &str) -> DataType {
    match sql {
        "BIGINT" => DataType::Int64,
        "INT" => DataType::Int32,
        "DOUBLE" => DataType::Float64,
        "STRING" => DataType::Utf8,
        "BOOLEAN" => DataType::Boolean,
        "TIMESTAMP(3)" => DataType::Timestamp(TimeUnit::Millisecond, None),
        other => panic!("the bench does not generate {other}"),
    }
}

/// A benchmark table: its columns (for `create_table`) and the matching Arrow schema.
pub struct TableDef {
    pub columns: Vec<ColumnSpec>,
    pub schema: SchemaRef,
}

impl TableDef {
    pub fn new(cols: &[(String, &str, bool)]) -> Self {
        let columns =
            cols.iter().map(|(n, t, nullable)| ColumnSpec { nullable: *nullable, ..ColumnSpec::new(n.clone(), t.to_string()) }).collect();
        let fields: Vec<Field> = cols.iter().map(|(n, t, nullable)| Field::new(n, arrow_type(t), *nullable)).collect();
        Self { columns, schema: Arc::new(Schema::new(fields)) }
    }
}

/// The 10-column append table: an order event.
pub fn put_table() -> TableDef {
    let cols: Vec<(String, &str, bool)> = [
        ("order_id", "BIGINT", false),
        ("user_id", "BIGINT", true),
        ("item_id", "BIGINT", true),
        ("price", "DOUBLE", true),
        ("quantity", "INT", true),
        ("discount", "DOUBLE", true),
        ("score", "DOUBLE", true),
        ("category", "STRING", true),
        ("comment", "STRING", true),
        ("event_time", "TIMESTAMP(3)", true),
    ]
    .iter()
    .map(|(n, t, nl)| (n.to_string(), *t, *nl))
    .collect();
    TableDef::new(&cols)
}

const CATEGORIES: &[&str] =
    &["books", "electronics", "grocery", "fashion", "toys", "sports", "beauty", "home", "garden", "auto", "music", "health"];
const WORDS: &[&str] = &[
    "fast",
    "delivery",
    "great",
    "quality",
    "would",
    "buy",
    "again",
    "not",
    "as",
    "described",
    "excellent",
    "value",
    "ok",
    "late",
    "fresh",
    "broken",
];

fn words(rng: &mut StdRng, n: usize) -> String {
    let mut s = String::with_capacity(n * 8);
    for i in 0..n {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(WORDS[rng.gen_range(0..WORDS.len())]);
    }
    s
}

fn price(rng: &mut StdRng) -> f64 {
    (rng.gen_range(100..100_000) as f64) / 100.0
}

/// `rows` order events starting at `first_id`.
pub fn put_batch(def: &TableDef, rows: usize, first_id: i64, seed: u64) -> RecordBatch {
    let mut rng = StdRng::seed_from_u64(seed);
    let base_ts = 1_760_000_000_000i64 + first_id;
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(first_id..first_id + rows as i64)),
        Arc::new(Int64Array::from_iter_values((0..rows).map(|_| rng.gen_range(0..10_000_000)))),
        Arc::new(Int64Array::from_iter_values((0..rows).map(|_| rng.gen_range(0..1_000_000)))),
        Arc::new(Float64Array::from_iter_values((0..rows).map(|_| price(&mut rng)))),
        Arc::new(Int32Array::from_iter_values((0..rows).map(|_| rng.gen_range(1..10)))),
        Arc::new(Float64Array::from_iter_values((0..rows).map(|_| rng.gen_range(0..50) as f64 / 100.0))),
        Arc::new(Float64Array::from_iter_values((0..rows).map(|_| rng.gen::<f64>()))),
        Arc::new(StringArray::from_iter_values((0..rows).map(|_| CATEGORIES[rng.gen_range(0..CATEGORIES.len())]))),
        Arc::new(StringArray::from_iter_values((0..rows).map(|_| {
            let n = rng.gen_range(2..6);
            words(&mut rng, n)
        }))),
        Arc::new(TimestampMillisecondArray::from_iter_values((0..rows as i64).map(|i| base_ts + i * 3))),
    ];
    RecordBatch::try_new(def.schema.clone(), cols).expect("put batch matches its schema")
}

/// Type cycle of the wide scan table.
const WIDE_TYPES: &[&str] = &["BIGINT", "DOUBLE", "STRING", "INT", "BOOLEAN", "TIMESTAMP(3)"];
pub const WIDE_COLUMNS: usize = 43;

fn wide_name(i: usize) -> String {
    let t = WIDE_TYPES[i % WIDE_TYPES.len()];
    let short = match t {
        "BIGINT" => "bigint",
        "DOUBLE" => "double",
        "STRING" => "string",
        "INT" => "int",
        "BOOLEAN" => "bool",
        _ => "ts",
    };
    format!("c{i:02}_{short}")
}

/// The 43-column scan table (8 columns of each type, plus one more BIGINT).
pub fn wide_table() -> TableDef {
    let cols: Vec<(String, &str, bool)> = (0..WIDE_COLUMNS).map(|i| (wide_name(i), WIDE_TYPES[i % WIDE_TYPES.len()], i != 0)).collect();
    TableDef::new(&cols)
}

/// The 13 columns of the projected scan: a typical analytic pick spread over the table
/// (3 BIGINT, 2 DOUBLE, 3 STRING, 2 INT, 1 BOOLEAN, 2 TIMESTAMP).
pub const PROJECTED: [usize; 13] = [0, 2, 5, 7, 9, 12, 16, 20, 24, 25, 29, 33, 38];

pub fn projected_names() -> Vec<String> {
    PROJECTED.iter().map(|&i| wide_name(i)).collect()
}

/// `rows` rows of the wide table starting at row `first`.
pub fn wide_batch(def: &TableDef, rows: usize, first: i64, seed: u64) -> RecordBatch {
    let mut rng = StdRng::seed_from_u64(seed);
    let cols: Vec<ArrayRef> = (0..WIDE_COLUMNS)
        .map(|i| -> ArrayRef {
            match WIDE_TYPES[i % WIDE_TYPES.len()] {
                "BIGINT" if i == 0 => Arc::new(Int64Array::from_iter_values(first..first + rows as i64)),
                "BIGINT" => Arc::new(Int64Array::from_iter_values((0..rows).map(|_| rng.gen_range(0..100_000_000i64)))),
                "DOUBLE" => Arc::new(Float64Array::from_iter_values((0..rows).map(|_| price(&mut rng)))),
                "STRING" => {
                    // Alternate short codes and short phrases.
                    if (i / WIDE_TYPES.len()).is_multiple_of(2) {
                        Arc::new(StringArray::from_iter_values(
                            (0..rows)
                                .map(|_| format!("{}-{:05}", CATEGORIES[rng.gen_range(0..CATEGORIES.len())], rng.gen_range(0..100_000))),
                        ))
                    } else {
                        Arc::new(StringArray::from_iter_values((0..rows).map(|_| {
                            let n = rng.gen_range(1..5);
                            words(&mut rng, n)
                        })))
                    }
                }
                "INT" => Arc::new(Int32Array::from_iter_values((0..rows).map(|_| rng.gen_range(0..10_000)))),
                "BOOLEAN" => Arc::new(BooleanArray::from_iter((0..rows).map(|_| Some(rng.gen_bool(0.3))))),
                _ => {
                    let base = 1_760_000_000_000i64 + first * 7;
                    Arc::new(TimestampMillisecondArray::from_iter_values((0..rows as i64).map(|r| base + r * 7 + rng.gen_range(0..5))))
                }
            }
        })
        .collect();
    RecordBatch::try_new(def.schema.clone(), cols).expect("wide batch matches its schema")
}

/// The follow table: each row carries the writer's send time in microseconds.
pub fn follow_table() -> TableDef {
    let cols: Vec<(String, &str, bool)> =
        [("sent_us", "BIGINT", false), ("seq", "BIGINT", true), ("value", "DOUBLE", true), ("tag", "STRING", true)]
            .iter()
            .map(|(n, t, nl)| (n.to_string(), *t, *nl))
            .collect();
    TableDef::new(&cols)
}

pub fn follow_batch(def: &TableDef, rows: usize, first_seq: i64, sent_us: i64) -> RecordBatch {
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![sent_us; rows])),
        Arc::new(Int64Array::from_iter_values(first_seq..first_seq + rows as i64)),
        Arc::new(Float64Array::from_iter_values((0..rows).map(|i| i as f64 * 0.5))),
        Arc::new(StringArray::from_iter_values((0..rows).map(|i| CATEGORIES[i % CATEGORIES.len()]))),
    ];
    RecordBatch::try_new(def.schema.clone(), cols).expect("follow batch matches its schema")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_generators_when_called_should_match_schemas() {
        let p = put_table();
        assert_eq!(p.columns.len(), 10);
        assert_eq!(put_batch(&p, 100, 0, 1).num_rows(), 100);
        let w = wide_table();
        assert_eq!(w.columns.len(), 43);
        let b = wide_batch(&w, 10, 0, 1);
        assert_eq!(b.num_columns(), 43);
        assert_eq!(projected_names().len(), 13);
        let mut types: Vec<&str> = PROJECTED.iter().map(|&i| WIDE_TYPES[i % 6]).collect();
        types.sort();
        types.dedup();
        assert_eq!(types.len(), 6, "the projection mixes every type");
        let f = follow_table();
        assert_eq!(follow_batch(&f, 5, 0, 7).num_rows(), 5);
    }
}
