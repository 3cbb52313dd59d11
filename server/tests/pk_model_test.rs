//! Primary-key tables through the engine against an independent model: random upserts, partial
//! updates and deletes (several per key per batch) for each merge engine; after every round the
//! snapshot must equal the model's state and the changelog must equal the model's diffs, and
//! after the KV store is lost the changelog alone must rebuild the same state.

use arrow_array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::Arc;
use strom_flight_api::{ColumnSpec, CreateDatabase, CreateTable, LogScan, OffsetSpec, SnapshotScan, WriteCommand, WriteKind};
use strom_server::config::Config;
use strom_server::engine::{Engine, StorageEngine};

mod common;

/// A value of the model (the table's columns are BIGINT, BIGINT, STRING, BOOLEAN).
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Null,
    Int(i64),
    Str(String),
    Bool(bool),
}

fn value_at(column: &dyn arrow_array::Array, row: usize) -> Value {
    use arrow_array::cast::AsArray;
    if column.is_null(row) {
        return Value::Null;
    }
    match column.data_type() {
        DataType::Int64 => Value::Int(column.as_primitive::<arrow_array::types::Int64Type>().value(row)),
        DataType::Utf8 => Value::Str(column.as_string::<i32>().value(row).to_string()),
        DataType::Boolean => Value::Bool(column.as_boolean().value(row)),
        other => panic!("the model has no {other} column"),
    }
}

/// What a batch does: delete keys, or upsert (full rows, or a partial update of `targets`).
#[derive(Debug, Clone, PartialEq)]
enum PkOp {
    Upsert { targets: Option<Vec<usize>> },
    Delete,
}

const COLUMN_NAMES: [&str; WIDTH] = ["id", "v", "s", "f"];

/// Writes `batch` as `op` through the engine's writer and waits until it is durable.
async fn write(engine: &Engine, batch: RecordBatch, op: PkOp) -> strom_flight_api::PutAck {
    let mut command = WriteCommand::append(DB, TABLE);
    match op {
        PkOp::Delete => command.write = WriteKind::Delete,
        PkOp::Upsert { targets } => {
            command.write = WriteKind::Upsert;
            command.target_columns = targets.map(|t| t.iter().map(|&c| COLUMN_NAMES[c].to_string()).collect());
        }
    }
    common::write(engine, &command, batch, None).await.unwrap()
}

const DB: &str = "db";
const TABLE: &str = "t";
/// Columns: id BIGINT (key), v BIGINT, s STRING, f BOOLEAN.
const WIDTH: usize = 4;

type Row = Vec<Value>;

#[derive(Clone, Copy, Debug)]
enum Engine_ {
    LastRow,
    FirstRow,
    Versioned,
    Aggregation,
}

/// One write of the model (and of the table).
#[derive(Clone, Debug)]
enum Op {
    Upsert(Row, Option<Vec<usize>>),
    Delete(i64),
}

/// An independent statement of the merge rules of docs/primary-keys.md (not `kv::merge`).
struct Model {
    engine: Engine_,
    rows: BTreeMap<i64, Row>,
}

fn key(r: &Row) -> i64 {
    match r[0] {
        Value::Int(k) => k,
        _ => unreachable!(),
    }
}

impl Model {
    /// Applies `op`; returns the change records it emits.
    fn apply(&mut self, op: &Op) -> Vec<(&'static str, Row)> {
        match op {
            Op::Delete(k) => {
                if matches!(self.engine, Engine_::FirstRow) {
                    return vec![];
                }
                self.rows.remove(k).map(|old| vec![("-D", old)]).unwrap_or_default()
            }
            Op::Upsert(row, targets) => {
                let k = key(row);
                let Some(old) = self.rows.get(&k).cloned() else {
                    let new: Row = (0..WIDTH)
                        .map(|c| if c == 0 || targets.as_ref().is_none_or(|t| t.contains(&c)) { row[c].clone() } else { Value::Null })
                        .collect();
                    self.rows.insert(k, new.clone());
                    return vec![("+I", new)];
                };
                let new: Row = match self.engine {
                    Engine_::FirstRow => return vec![],
                    Engine_::Versioned => match (&row[1], &old[1]) {
                        (Value::Int(n), Value::Int(o)) if n >= o => row.clone(),
                        (Value::Int(_), Value::Null) => row.clone(),
                        _ => return vec![],
                    },
                    Engine_::LastRow => (0..WIDTH)
                        .map(|c| if targets.as_ref().is_none_or(|t| t.contains(&c)) { row[c].clone() } else { old[c].clone() })
                        .collect(),
                    Engine_::Aggregation => {
                        let on = |c: usize| c > 0 && targets.as_ref().is_none_or(|t| t.contains(&c));
                        let v = match (&old[1], &row[1]) {
                            (Value::Int(a), Value::Int(b)) if on(1) => Value::Int(a + b),
                            (Value::Null, b) if on(1) => b.clone(),
                            (a, _) => a.clone(),
                        };
                        let s = match (&old[2], &row[2]) {
                            (Value::Str(a), Value::Str(b)) if on(2) => Value::Str(format!("{a}|{b}")),
                            (Value::Null, b) if on(2) => b.clone(),
                            (a, _) => a.clone(),
                        };
                        let f = match (&old[3], &row[3]) {
                            (Value::Bool(a), Value::Bool(b)) if on(3) => Value::Bool(*a || *b),
                            (Value::Null, b) if on(3) => b.clone(),
                            (a, _) => a.clone(),
                        };
                        vec![old[0].clone(), v, s, f]
                    }
                };
                if new == old {
                    return vec![];
                }
                self.rows.insert(k, new.clone());
                vec![("-U", old), ("+U", new)]
            }
        }
    }
}

fn random_row(rng: &mut StdRng, keys: i64) -> Row {
    let s = ["a", "b", "c"];
    vec![
        Value::Int(rng.gen_range(0..keys)),
        if rng.gen_bool(0.1) { Value::Null } else { Value::Int(rng.gen_range(0..5)) },
        if rng.gen_bool(0.2) { Value::Null } else { Value::Str(s[rng.gen_range(0..3)].into()) },
        if rng.gen_bool(0.2) { Value::Null } else { Value::Bool(rng.gen_bool(0.3)) },
    ]
}

fn batch_of(rows: &[Row], columns: &[usize]) -> RecordBatch {
    let all = [("id", DataType::Int64), ("v", DataType::Int64), ("s", DataType::Utf8), ("f", DataType::Boolean)];
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for &c in columns {
        fields.push(Field::new(all[c].0, all[c].1.clone(), true));
        let vals = rows.iter().map(|r| r[c].clone());
        arrays.push(match c {
            0 | 1 => Arc::new(Int64Array::from(vals.map(|v| if let Value::Int(i) = v { Some(i) } else { None }).collect::<Vec<_>>())),
            2 => Arc::new(StringArray::from(vals.map(|v| if let Value::Str(s) = v { Some(s) } else { None }).collect::<Vec<_>>())),
            _ => Arc::new(BooleanArray::from(vals.map(|v| if let Value::Bool(b) = v { Some(b) } else { None }).collect::<Vec<_>>())),
        });
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
}

fn open(dir: &std::path::Path) -> Arc<Engine> {
    let mut config = Config::default();
    config.storage.data_dir = dir.to_path_buf();
    Engine::open(config).unwrap()
}

fn create(engine: &Engine, kind: Engine_) {
    let mut options: BTreeMap<String, String> = BTreeMap::new();
    match kind {
        Engine_::LastRow => {}
        Engine_::FirstRow => {
            options.insert("table.merge-engine".into(), "first_row".into());
        }
        Engine_::Versioned => {
            options.insert("table.merge-engine".into(), "versioned".into());
            options.insert("table.merge-engine.versioned.ver-column".into(), "v".into());
        }
        Engine_::Aggregation => {
            options.insert("table.merge-engine".into(), "aggregation".into());
            options.insert("fields.v.agg".into(), "sum".into());
            options.insert("fields.s.agg".into(), "listagg".into());
            options.insert("fields.s.listagg.delimiter".into(), "|".into());
            options.insert("fields.f.agg".into(), "bool_or".into());
        }
    }
    engine.create_database(&CreateDatabase { name: DB.into(), if_not_exists: true, ..Default::default() }).unwrap();
    engine
        .create_table(&CreateTable {
            database: DB.into(),
            table: TABLE.into(),
            columns: vec![
                ColumnSpec::new("id", "BIGINT"),
                ColumnSpec::new("v", "BIGINT"),
                ColumnSpec::new("s", "STRING"),
                ColumnSpec::new("f", "BOOLEAN"),
            ],
            primary_key: vec!["id".into()],
            bucket_num: Some(4),
            options,
            ..Default::default()
        })
        .unwrap();
}

fn rows_of(batch: &RecordBatch, width: usize) -> Vec<Row> {
    (0..batch.num_rows()).map(|r| (0..width).map(|c| value_at(batch.column(c).as_ref(), r)).collect()).collect()
}

async fn snapshot(engine: &Engine) -> BTreeMap<i64, Row> {
    let mut stream = engine.snapshot_scan(&SnapshotScan { database: DB.into(), table: TABLE.into(), ..Default::default() }).unwrap();
    let mut out = BTreeMap::new();
    while let Some(chunk) = stream.chunks.recv().await {
        for row in rows_of(&common::snapshot_batch(&chunk.unwrap(), &stream.schema), WIDTH) {
            assert!(out.insert(key(&row), row).is_none(), "a key appears once in a snapshot");
        }
    }
    out
}

/// Change records per key, in log order, from offset `from` of every bucket.
async fn changelog(engine: &Engine) -> BTreeMap<i64, Vec<(String, Row)>> {
    let mut stream = engine.scan(&LogScan { database: DB.into(), table: TABLE.into(), ..Default::default() }).unwrap();
    let mut out: BTreeMap<i64, Vec<(String, Row)>> = BTreeMap::new();
    while let Some(chunk) = stream.chunks.recv().await {
        let chunk = chunk.unwrap();
        let batch = chunk.message.decode(&stream.schema).unwrap();
        for row in rows_of(&batch, WIDTH + 1) {
            let Value::Str(t) = &row[WIDTH] else { panic!("no change type") };
            out.entry(key(&row)).or_default().push((t.clone(), row[..WIDTH].to_vec()));
        }
    }
    out
}

async fn run_engine(kind: Engine_, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    create(&engine, kind);
    let mut model = Model { engine: kind, rows: BTreeMap::new() };
    let mut expected_changes: BTreeMap<i64, Vec<(String, Row)>> = BTreeMap::new();
    let mut rng = StdRng::seed_from_u64(seed);
    let partial_ok = matches!(kind, Engine_::LastRow | Engine_::Aggregation);
    for _round in 0..60 {
        let n = rng.gen_range(1..40);
        let choice = rng.gen_range(0..10);
        let (op, columns, ops): (PkOp, Vec<usize>, Vec<Op>) = if choice < 2 {
            let rows: Vec<Row> = (0..n).map(|_| random_row(&mut rng, 50)).collect();
            (PkOp::Delete, vec![0], rows.iter().map(|r| Op::Delete(key(r))).collect())
        } else if choice < 5 && partial_ok {
            let mut targets: Vec<usize> = (1..WIDTH).filter(|_| rng.gen_bool(0.5)).collect();
            if targets.is_empty() {
                targets.push(2);
            }
            let rows: Vec<Row> = (0..n).map(|_| random_row(&mut rng, 50)).collect();
            let mut columns = vec![0];
            columns.extend(&targets);
            (
                PkOp::Upsert { targets: Some(targets.clone()) },
                columns,
                rows.into_iter().map(|r| Op::Upsert(r, Some(targets.clone()))).collect(),
            )
        } else {
            let rows: Vec<Row> = (0..n).map(|_| random_row(&mut rng, 50)).collect();
            (PkOp::Upsert { targets: None }, (0..WIDTH).collect(), rows.into_iter().map(|r| Op::Upsert(r, None)).collect())
        };
        let rows: Vec<Row> = ops
            .iter()
            .map(|o| match o {
                Op::Upsert(r, _) => r.clone(),
                Op::Delete(k) => vec![Value::Int(*k), Value::Null, Value::Null, Value::Null],
            })
            .collect();
        let batch = batch_of(&rows, &columns);
        let targets = match &op {
            PkOp::Upsert { targets: Some(t) } => Some(t.clone()),
            _ => None,
        };
        let op = match op {
            PkOp::Upsert { .. } => PkOp::Upsert { targets },
            other => other,
        };
        let ack = write(&engine, batch, op).await;
        let mut emitted = 0;
        for o in &ops {
            for (t, r) in model.apply(o) {
                emitted += 1;
                expected_changes.entry(key(&r)).or_default().push((t.to_string(), r));
            }
        }
        assert_eq!(ack.buckets.iter().map(|b| b.count).sum::<u64>(), emitted, "{kind:?}: change records of the batch");
    }
    assert_eq!(snapshot(&engine).await, model.rows, "{kind:?}: snapshot == model");
    assert_eq!(changelog(&engine).await, expected_changes, "{kind:?}: changelog == model diffs");
    // Lose the KV store entirely: the changelog alone rebuilds the state (replayed, not merged).
    drop(engine);
    std::fs::remove_dir_all(dir.path().join("kv")).unwrap();
    let engine = open(dir.path());
    assert_eq!(snapshot(&engine).await, model.rows, "{kind:?}: state rebuilt from the changelog == model");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_random_writes_on_a_last_row_table_should_match_the_model() {
    // The last-row engine merges on stored-row bytes (engine/pk/merge_rows.rs): several seeds.
    for seed in [1, 11, 12] {
        run_engine(Engine_::LastRow, seed).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_random_writes_on_a_first_row_table_should_match_the_model() {
    run_engine(Engine_::FirstRow, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_random_writes_on_a_versioned_table_should_match_the_model() {
    run_engine(Engine_::Versioned, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_random_writes_on_an_aggregation_table_should_match_the_model_and_never_double_count_on_replay() {
    run_engine(Engine_::Aggregation, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_expired_changelog_segments_when_retention_runs_should_keep_the_rows_and_recover_without_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.storage.data_dir = dir.path().to_path_buf();
    config.log.segment_bytes = 2048; // below the file config's minimum, to roll often
    let engine = Engine::open(config.clone()).unwrap();
    create(&engine, Engine_::LastRow);
    engine
        .alter_table(&strom_flight_api::AlterTable {
            database: DB.into(),
            table: TABLE.into(),
            set_options: [("table.log.ttl".to_string(), "1 h".to_string())].into(),
            ..Default::default()
        })
        .unwrap();
    let mut model = Model { engine: Engine_::LastRow, rows: BTreeMap::new() };
    let mut rng = StdRng::seed_from_u64(9);
    for _ in 0..40 {
        let rows: Vec<Row> = (0..10).map(|_| random_row(&mut rng, 20)).collect();
        for r in &rows {
            model.apply(&Op::Upsert(r.clone(), None));
        }
        let batch = batch_of(&rows, &[0, 1, 2, 3]);
        write(&engine, batch, PkOp::Upsert { targets: None }).await;
    }
    let deleted = engine.apply_retention(strom_server::clock::system_now_ms() + 2 * 3600 * 1000);
    assert!(deleted > 0, "sealed changelog segments expired");
    assert!(common::offsets(engine.as_ref(), DB, TABLE, OffsetSpec::Earliest).iter().any(|&start| start > 0));
    assert_eq!(snapshot(&engine).await, model.rows, "the current rows outlive their changelog");
    drop(engine);
    let engine = Engine::open(config.clone()).unwrap();
    assert_eq!(snapshot(&engine).await, model.rows, "recovery needs no deleted segment");
    drop(engine);
    // Without the KV store the remaining changelog cannot rebuild the rows: a clear DATA_LOSS.
    std::fs::remove_dir_all(dir.path().join("kv")).unwrap();
    let err = Engine::open(config).err().expect("recovery must refuse");
    assert!(matches!(err, strom_server::Error::DataLoss { .. }) && err.to_string().contains("bucket-"), "{err}");
}
