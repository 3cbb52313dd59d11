//! Online schema evolution: `alter_table` appends nullable columns while writers keep writing.
//! Old segments and old KV rows read the new columns as null, writers that do not send them
//! keep working, and everything reads the same after a restart and after a KV rebuild.

mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use common::{EngineFixture, DB, TABLE};
use std::sync::Arc;
use strom_flight_api::{AlterTable, ColumnSpec, CreateTable, LogScan, LookupKind, LookupRequest, SnapshotScan};
use strom_server::engine::{Engine, StorageEngine};
use strom_server::Error;

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(columns).unwrap()
}

fn int64(values: &[i64]) -> ArrayRef {
    Arc::new(Int64Array::from(values.to_vec()))
}

fn strings(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

fn add_city(engine: &Engine, table: &str) -> strom_flight_api::TableInfo {
    engine
        .alter_table(&AlterTable {
            database: DB.into(),
            table: table.into(),
            add_columns: vec![ColumnSpec::new("city", "STRING")],
            ..Default::default()
        })
        .unwrap()
}

/// (id, city) of every row a full log scan returns, sorted by id.
async fn scanned(f: &EngineFixture, columns: Option<Vec<String>>) -> Vec<(i64, Option<String>)> {
    let chunks = f.scan(LogScan { columns, ..EngineFixture::full_scan() }).await.unwrap();
    let mut out = Vec::new();
    for (_, b) in &chunks {
        let ids = b.column_by_name("id").unwrap().as_primitive::<Int64Type>();
        let city = b.column_by_name("city").expect("every batch has the added column").as_string::<i32>();
        for r in 0..b.num_rows() {
            out.push((ids.value(r), (!city.is_null(r)).then(|| city.value(r).to_string())));
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn given_a_log_table_when_a_column_is_added_between_writes_should_read_old_rows_as_null_before_and_after_restart() {
    let mut f = EngineFixture::builder().buckets(2).open();
    f.append(common::rows(0, 3), None).await.unwrap();
    let info = add_city(&f.engine, TABLE);
    assert_eq!(info.schema_id, 2);
    assert_eq!(info.columns.last().unwrap().name, "city");
    // A writer that does not know the column yet keeps working...
    f.append(common::rows(3, 2), None).await.unwrap();
    // ...and one that does sends it.
    let with_city = batch(vec![
        ("id", int64(&[5, 6])),
        ("name", strings(&[Some("name-5"), Some("name-6")])),
        ("score", int64(&[50, 60])),
        ("city", strings(&[Some("Hangzhou"), None])),
    ]);
    f.append(with_city, None).await.unwrap();
    let expected: Vec<(i64, Option<String>)> = (0..7).map(|i| (i, (i == 5).then(|| "Hangzhou".to_string()))).collect();
    assert_eq!(scanned(&f, None).await, expected);
    assert_eq!(scanned(&f, Some(vec!["id".into(), "city".into()])).await, expected, "projected reads of old batches too");
    f.reopen();
    assert_eq!(f.engine.get_table(DB, TABLE).unwrap().schema_id, 2);
    assert_eq!(scanned(&f, None).await, expected, "after a restart");
}

#[tokio::test]
async fn given_bad_added_columns_should_be_rejected_and_change_nothing() {
    let f = EngineFixture::builder().open();
    for (column, culprit) in [
        (ColumnSpec::new("name", "STRING"), "already exists"),
        (ColumnSpec::new("zip", "STRING").not_null(), "must be nullable"),
        (ColumnSpec::new("zip", "STRIN"), "STRIN"),
        (ColumnSpec::new("_offset", "BIGINT"), "reserved"),
    ] {
        let req = AlterTable { database: DB.into(), table: TABLE.into(), add_columns: vec![column], ..Default::default() };
        let err = f.engine.alter_table(&req).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)) && err.to_string().contains(culprit), "{err}");
    }
    assert_eq!(f.engine.get_table(DB, TABLE).unwrap().schema_id, 1);
}

fn users(engine: &Engine) {
    engine
        .create_table(&CreateTable {
            database: DB.into(),
            table: "users".into(),
            columns: vec![ColumnSpec::new("id", "BIGINT").not_null(), ColumnSpec::new("name", "STRING")],
            primary_key: vec!["id".into()],
            bucket_num: Some(2),
            ..Default::default()
        })
        .unwrap();
}

async fn upsert(engine: &Engine, rows: RecordBatch, targets: Option<Vec<&str>>) {
    let command = strom_flight_api::WriteCommand {
        write: strom_flight_api::WriteKind::Upsert,
        target_columns: targets.map(|t| t.iter().map(|c| c.to_string()).collect()),
        ..strom_flight_api::WriteCommand::append(DB, "users")
    };
    common::write(engine, &command, rows, None).await.unwrap();
}

/// (id, name, city) of the snapshot, sorted.
async fn users_snapshot(engine: &Engine) -> Vec<(i64, Option<String>, Option<String>)> {
    let mut stream = engine.snapshot_scan(&SnapshotScan { database: DB.into(), table: "users".into(), ..Default::default() }).unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = stream.chunks.recv().await {
        let b = common::snapshot_batch(&chunk.unwrap(), &stream.schema);
        let ids = b.column_by_name("id").unwrap().as_primitive::<Int64Type>();
        let text = |name: &str, r: usize| {
            let c = b.column_by_name(name).unwrap().as_string::<i32>();
            (!c.is_null(r)).then(|| c.value(r).to_string())
        };
        for r in 0..b.num_rows() {
            out.push((ids.value(r), text("name", r), text("city", r)));
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn given_a_pk_table_when_a_column_is_added_should_merge_old_rows_keep_it_for_old_writers_and_rebuild_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = strom_server::config::Config::default();
    config.storage.data_dir = dir.path().to_path_buf();
    let mut engine = Engine::open(config.clone()).unwrap();
    engine.create_database(&strom_flight_api::CreateDatabase { name: DB.into(), ..Default::default() }).unwrap();
    users(&engine);
    upsert(&engine, batch(vec![("id", int64(&[1, 2, 3])), ("name", strings(&[Some("a"), Some("b"), Some("c")]))]), None).await;
    add_city(&engine, "users");
    // A partial update of the new column on a row written before it existed.
    upsert(&engine, batch(vec![("id", int64(&[1, 4])), ("city", strings(&[Some("Hangzhou"), Some("Beijing")]))]), Some(vec!["city"])).await;
    // An old writer's full row (no city) keeps the stored city.
    upsert(&engine, batch(vec![("id", int64(&[1])), ("name", strings(&[Some("a2")]))]), None).await;
    let expected = vec![
        (1, Some("a2".to_string()), Some("Hangzhou".to_string())),
        (2, Some("b".to_string()), None),
        (3, Some("c".to_string()), None),
        (4, None, Some("Beijing".to_string())),
    ];
    assert_eq!(users_snapshot(&engine).await, expected);
    {
        let lookup = LookupRequest {
            lookup: LookupKind::PrimaryKey,
            database: DB.into(),
            table: "users".into(),
            keys: vec![vec![2.into()], vec![1.into()]],
            columns: Some(vec!["city".into()]),
            ..Default::default()
        };
        let plan = engine.open_lookup(&lookup).unwrap();
        let answer = plan.lookup(plan.keys_from_json(&lookup.keys).unwrap(), false).await.unwrap();
        let found = answer.message.decode(&plan.result_schema(false)).unwrap();
        let city = found.column_by_name("city").unwrap().as_string::<i32>();
        assert!(city.is_null(0) && city.value(1) == "Hangzhou", "an old row reads null, an updated one its value");
    }

    drop(engine);
    engine = Engine::open(config.clone()).unwrap();
    assert_eq!(users_snapshot(&engine).await, expected, "after a restart");

    // Rebuild the KV store from the changelog, whose entries have both schema versions.
    drop(engine);
    std::fs::remove_dir_all(dir.path().join("kv")).unwrap();
    engine = Engine::open(config).unwrap();
    assert_eq!(users_snapshot(&engine).await, expected, "after replaying the changelog into an empty KV store");
}
