//! Resuming a primary-key bucket's snapshot where an earlier reader stopped, after the table
//! changed: a snapshot scan `after_key` (the rows after the last delivered key, from a new
//! snapshot) plus the changelog between the two snapshots `keys_upto` that key (the changes of
//! the keys already delivered) must add up to exactly the table's state — what a source
//! restored in the middle of its snapshot needs to continue without a gap or a duplicate.

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use strom_flight_api::{ColumnSpec, CreateTable, EndPosition, LogScan, SnapshotScan, StartPosition, WriteCommand, WriteKind};
use strom_server::engine::{Engine, StorageEngine};
use strom_server::Error;

mod common;
use common::{EngineFixture, DB};

const USERS: &str = "users";

/// A fixture with `users (id BIGINT, v BIGINT, PRIMARY KEY (id))` in one bucket.
fn fixture() -> EngineFixture {
    let f = EngineFixture::builder().open();
    f.engine
        .create_table(&CreateTable {
            database: DB.into(),
            table: USERS.into(),
            columns: vec![ColumnSpec::new("id", "BIGINT").not_null(), ColumnSpec::new("v", "BIGINT")],
            primary_key: vec!["id".into()],
            bucket_num: Some(1),
            ..Default::default()
        })
        .unwrap();
    f
}

fn batch(rows: &[(i64, i64)]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false), Field::new("v", DataType::Int64, true)]));
    let ids: ArrayRef = Arc::new(Int64Array::from(rows.iter().map(|r| r.0).collect::<Vec<_>>()));
    let vs: ArrayRef = Arc::new(Int64Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>()));
    RecordBatch::try_new(schema, vec![ids, vs]).unwrap()
}

async fn write(engine: &Engine, kind: WriteKind, rows: &[(i64, i64)]) {
    let command = WriteCommand { write: kind, ..WriteCommand::append(DB, USERS) };
    let rows = if kind == WriteKind::Delete { batch(rows).project(&[0]).unwrap() } else { batch(rows) };
    common::write(engine, &command, rows, None).await.unwrap();
}

/// (id, v) rows of a snapshot scan in the order they came, and the log offset it stands at.
async fn snapshot(engine: &Engine, scan: SnapshotScan) -> strom_server::Result<(Vec<(i64, i64)>, u64)> {
    let mut stream = engine.snapshot_scan(&scan)?;
    let (mut rows, mut offset) = (Vec::new(), 0);
    while let Some(chunk) = stream.chunks.recv().await {
        let chunk = chunk?;
        offset = chunk.log_offset;
        let b = common::snapshot_batch(&chunk, &stream.schema);
        let (ids, vs) = (b.column(0).as_primitive::<Int64Type>(), b.column(1).as_primitive::<Int64Type>());
        rows.extend((0..b.num_rows()).map(|r| (ids.value(r), vs.value(r))));
    }
    Ok((rows, offset))
}

fn bucket_snapshot(after_key: Option<i64>) -> SnapshotScan {
    SnapshotScan {
        database: DB.into(),
        table: USERS.into(),
        buckets: Some(vec![0]),
        after_key: after_key.map(|k| vec![json!(k)]),
        ..Default::default()
    }
}

#[tokio::test]
async fn given_changes_after_a_partial_snapshot_when_resumed_after_its_last_key_should_rebuild_the_state_exactly() {
    let f = fixture();
    write(&f.engine, WriteKind::Upsert, &(0..100).map(|i| (i, 0)).collect::<Vec<_>>()).await;
    let (first, l1) = snapshot(&f.engine, bucket_snapshot(None)).await.unwrap();
    assert_eq!(first.len(), 100);
    assert!(first.windows(2).all(|w| w[0].0 < w[1].0), "rows come in key order");
    // The interrupted reader delivered the rows up to key 39.
    let delivered: Vec<(i64, i64)> = first.iter().copied().filter(|r| r.0 <= 39).collect();

    // Meanwhile: updates on both sides of the key, a delete, a new key, the key itself.
    write(&f.engine, WriteKind::Upsert, &[(10, 1), (60, 1), (150, 1), (39, 7)]).await;
    write(&f.engine, WriteKind::Delete, &[(20, 0)]).await;
    write(&f.engine, WriteKind::Upsert, &[(10, 2), (5, 3)]).await;

    let (rest, l2) = snapshot(&f.engine, bucket_snapshot(Some(39))).await.unwrap();
    assert!(l2 > l1);
    assert!(rest.iter().all(|r| r.0 > 39), "only keys after 39: {rest:?}");
    let catch_up = LogScan {
        database: DB.into(),
        table: USERS.into(),
        buckets: Some(vec![0]),
        from: StartPosition::Offset { offset: l1 },
        to: Some(EndPosition::Offset { offset: l2 }),
        keys_upto: Some(vec![json!(39)]),
        ..Default::default()
    };
    let changes = common::scan(f.engine.as_ref(), &catch_up).await.unwrap();

    // Replay: the delivered rows, their changes up to l2, then the resumed rows.
    let mut state: BTreeMap<i64, i64> = delivered.into_iter().collect();
    let mut change_keys = Vec::new();
    for (chunk, b) in &changes {
        assert!(chunk.end_offset.is_some_and(|end| end > chunk.base_offset && end <= l2), "{chunk:?}");
        let ids = b.column_by_name("id").unwrap().as_primitive::<Int64Type>();
        let vs = b.column_by_name("v").unwrap().as_primitive::<Int64Type>();
        let kinds = b.column_by_name("_change_type").unwrap().as_string::<i32>();
        for r in 0..b.num_rows() {
            change_keys.push(ids.value(r));
            match kinds.value(r) {
                "+I" | "+U" => state.insert(ids.value(r), vs.value(r)),
                "-U" | "-D" => state.remove(&ids.value(r)),
                other => panic!("change type {other}"),
            };
        }
    }
    assert!(change_keys.iter().all(|&k| k <= 39), "only changes of delivered keys: {change_keys:?}");
    assert!(change_keys.contains(&10) && change_keys.contains(&20) && change_keys.contains(&39) && change_keys.contains(&5));
    state.extend(rest);

    let (now, _) = snapshot(&f.engine, bucket_snapshot(None)).await.unwrap();
    assert_eq!(state.into_iter().collect::<Vec<_>>(), now);
}

#[tokio::test]
async fn given_projected_catch_up_when_keys_bounded_should_return_the_asked_columns_only() {
    let f = fixture();
    write(&f.engine, WriteKind::Upsert, &[(1, 1), (2, 2), (3, 3)]).await;
    let scan = LogScan {
        database: DB.into(),
        table: USERS.into(),
        buckets: Some(vec![0]),
        to: Some(EndPosition::Latest),
        columns: Some(vec!["v".into()]),
        keys_upto: Some(vec![json!(2)]),
        ..Default::default()
    };
    let out = common::scan(f.engine.as_ref(), &scan).await.unwrap();
    let names: Vec<String> = out[0].1.schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, ["v", "_change_type"]);
    let vs: Vec<i64> = out.iter().flat_map(|(_, b)| b.column(0).as_primitive::<Int64Type>().values().to_vec()).collect();
    assert_eq!(vs, [1, 2]);
}

#[tokio::test]
async fn given_bad_resume_requests_when_scanned_should_be_invalid_argument_naming_the_problem() {
    let f = fixture();
    let all_buckets = SnapshotScan { buckets: None, ..bucket_snapshot(Some(3)) };
    let too_many = SnapshotScan { after_key: Some(vec![json!(1), json!(2)]), ..bucket_snapshot(None) };
    let wrong_type = SnapshotScan { after_key: Some(vec![json!("x")]), ..bucket_snapshot(None) };
    for (scan, culprit) in
        [(all_buckets, "exactly one bucket"), (too_many, "primary key of db.users has 1 (id)"), (wrong_type, "after_key")]
    {
        let err = snapshot(&f.engine, scan).await.unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)) && err.to_string().contains(culprit), "{err}");
    }
    let unbounded =
        LogScan { database: DB.into(), table: USERS.into(), buckets: Some(vec![0]), keys_upto: Some(vec![json!(1)]), ..Default::default() };
    let on_log_table = LogScan { table: common::TABLE.into(), to: Some(EndPosition::Latest), ..unbounded.clone() };
    for (scan, culprit) in [(unbounded, "bounded scan"), (on_log_table, "log table")] {
        let err = f.engine.scan(&scan).err().unwrap();
        assert!(matches!(err, Error::InvalidArgument(_)) && err.to_string().contains(culprit), "{err}");
    }
}

#[tokio::test]
async fn given_partitioned_table_whose_key_declares_the_partition_last_when_resumed_should_seek_in_storage_order() {
    let f = fixture();
    f.engine
        .create_table(&CreateTable {
            database: DB.into(),
            table: "daily".into(),
            columns: vec![ColumnSpec::new("id", "BIGINT").not_null(), ColumnSpec::new("ds", "STRING").not_null()],
            primary_key: vec!["id".into(), "ds".into()],
            partition_keys: vec!["ds".into()],
            bucket_num: Some(1),
            ..Default::default()
        })
        .unwrap();
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false), Field::new("ds", DataType::Utf8, false)]));
    let rows = RecordBatch::try_new(
        schema,
        vec![Arc::new(Int64Array::from((0..20).collect::<Vec<i64>>())), Arc::new(arrow_array::StringArray::from(vec!["2026"; 20]))],
    )
    .unwrap();
    let command = WriteCommand { write: WriteKind::Upsert, ..WriteCommand::append(DB, "daily") };
    common::write(f.engine.as_ref(), &command, rows, None).await.unwrap();
    // Values in the declared order (id, ds); the node stores ds first.
    let scan = SnapshotScan {
        database: DB.into(),
        table: "daily".into(),
        partition: Some("2026".into()),
        buckets: Some(vec![0]),
        after_key: Some(vec![json!(9), json!("2026")]),
        ..Default::default()
    };
    let mut stream = f.engine.snapshot_scan(&scan).unwrap();
    let mut ids = Vec::new();
    while let Some(chunk) = stream.chunks.recv().await {
        let b = common::snapshot_batch(&chunk.unwrap(), &stream.schema);
        ids.extend(b.column_by_name("id").unwrap().as_primitive::<Int64Type>().values().iter().copied());
    }
    assert_eq!(ids, (10..20).collect::<Vec<i64>>());
}
