//! Partitioned tables in the engine: routing, dynamic creation, restarts, follow scans that
//! discover new partitions, drops, and idempotent writers across partitions.

mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use common::{EngineFixture, DB};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use strom_flight_api::{
    ColumnSpec, CountKind, CountRequest, CreateTable, DropPartition, ListOffsets, LogScan, LookupKind, LookupRequest, OffsetSpec,
};
use strom_flight_api::{WriteCommand, WriteKind};
use strom_server::engine::{BatchIdentity, Engine, StorageEngine};
use strom_server::Error;

const WAIT: Duration = Duration::from_secs(30);

fn create(engine: &Engine, table: &str, pk: bool) {
    let mut columns = vec![ColumnSpec::new("id", "BIGINT").not_null(), ColumnSpec::new("ds", "STRING")];
    if pk {
        columns.push(ColumnSpec::new("v", "BIGINT"));
    }
    engine
        .create_table(&CreateTable {
            database: DB.into(),
            table: table.into(),
            columns,
            primary_key: if pk { vec!["id".into(), "ds".into()] } else { vec![] },
            partition_keys: vec!["ds".into()],
            bucket_num: Some(2),
            ..Default::default()
        })
        .unwrap();
}

/// Rows (id, ds) for a log table, or (id, ds, v = id * 10) for a primary-key table.
fn batch(rows: &[(i64, &str)], pk: bool) -> RecordBatch {
    let mut fields = vec![Field::new("id", DataType::Int64, false), Field::new("ds", DataType::Utf8, true)];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
    ];
    if pk {
        fields.push(Field::new("v", DataType::Int64, true));
        columns.push(Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0 * 10))));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

async fn write(engine: &Engine, table: &str, rows: &[(i64, &str)], pk: bool, id: Option<BatchIdentity>) -> strom_server::Result<bool> {
    let mut command = WriteCommand::append(DB, table);
    if pk {
        command.write = WriteKind::Upsert;
    }
    let ack = common::write(engine, &command, batch(rows, pk), id).await?;
    Ok(ack.duplicate)
}

fn partitions(engine: &Engine, table: &str) -> Vec<String> {
    engine.list_partitions(DB, table).unwrap().into_iter().map(|p| p.name).collect()
}

async fn count(engine: &Engine, table: &str, partition: Option<&str>) -> u64 {
    let req = CountRequest {
        kind: CountKind::Log,
        database: DB.into(),
        table: table.into(),
        partition: partition.map(str::to_string),
        buckets: None,
    };
    engine.count(&req).await.unwrap()
}

#[tokio::test]
async fn given_rows_of_three_days_when_reopened_should_keep_partitions_rows_and_offsets() {
    let mut f = EngineFixture::builder().open();
    create(&f.engine, "visits", false);
    write(&f.engine, "visits", &[(1, "20261119"), (2, "20261120"), (3, "20261121"), (4, "20261121")], false, None).await.unwrap();
    assert_eq!(partitions(&f.engine, "visits"), ["20261119", "20261120", "20261121"]);
    f.reopen();
    assert_eq!(partitions(&f.engine, "visits"), ["20261119", "20261120", "20261121"], "partitions survive a restart");
    assert_eq!(count(&f.engine, "visits", Some("20261121")).await, 2);
    write(&f.engine, "visits", &[(5, "20261121")], false, None).await.unwrap();
    let offsets = f
        .engine
        .list_offsets(&ListOffsets {
            database: DB.into(),
            table: "visits".into(),
            partition: Some("20261121".into()),
            buckets: None,
            spec: OffsetSpec::Latest,
        })
        .unwrap();
    assert_eq!(offsets.iter().map(|o| o.offset).sum::<u64>(), 3, "offsets continue after the restart");
    assert!(offsets.iter().all(|o| o.partition.as_deref() == Some("20261121")));
    assert_eq!(count(&f.engine, "visits", None).await, 5);
}

#[tokio::test]
async fn given_a_follow_scan_of_every_partition_when_a_new_day_is_written_should_stream_it() {
    let f = EngineFixture::builder().open();
    create(&f.engine, "events", false);
    write(&f.engine, "events", &[(1, "20261120")], false, None).await.unwrap();
    let scan = LogScan { database: DB.into(), table: "events".into(), follow: true, ..Default::default() };
    let mut stream = tokio_stream::wrappers::ReceiverStream::new(f.engine.scan(&scan).unwrap().chunks);
    let first = tokio::time::timeout(WAIT, stream.next()).await.expect("the existing day").unwrap().unwrap();
    assert_eq!(first.partition.as_deref(), Some("20261120"));
    // A partition that did not exist when the scan started: its rows must reach the scan.
    write(&f.engine, "events", &[(2, "20261121"), (3, "20261121")], false, None).await.unwrap();
    let mut rows = 0;
    while rows < 2 {
        let chunk = tokio::time::timeout(WAIT, stream.next()).await.expect("the new day's rows").unwrap().unwrap();
        assert_eq!(chunk.partition.as_deref(), Some("20261121"));
        rows += chunk.rows;
    }
    assert_eq!(rows, 2);
}

#[tokio::test]
async fn given_concurrent_writes_to_a_missing_partition_should_create_it_once_and_keep_every_row() {
    let f = EngineFixture::builder().open();
    create(&f.engine, "orders", false);
    let writes = (0..8).map(|i| {
        let engine = f.engine.clone();
        tokio::spawn(async move { write(&engine, "orders", &[(i, "20261121")], false, None).await.unwrap() })
    });
    for w in writes {
        w.await.unwrap();
    }
    assert_eq!(partitions(&f.engine, "orders"), ["20261121"]);
    assert_eq!(count(&f.engine, "orders", Some("20261121")).await, 8);
}

#[tokio::test]
async fn given_dynamic_creation_off_when_a_batch_names_a_missing_day_should_write_nothing() {
    let f = EngineFixture::builder().open();
    f.engine
        .create_table(&CreateTable {
            database: DB.into(),
            table: "strict".into(),
            columns: vec![ColumnSpec::new("id", "BIGINT").not_null(), ColumnSpec::new("ds", "STRING")],
            partition_keys: vec!["ds".into()],
            options: [("client.writer.dynamic-create-partition.enabled".to_string(), "false".to_string())].into(),
            ..Default::default()
        })
        .unwrap();
    f.engine
        .create_partition(&strom_flight_api::CreatePartition {
            database: DB.into(),
            table: "strict".into(),
            partition: "20261120".into(),
            if_not_exists: false,
        })
        .unwrap();
    let err = write(&f.engine, "strict", &[(1, "20261120"), (2, "20261121")], false, None).await.unwrap_err();
    assert!(matches!(&err, Error::NotFound(m) if m.contains("20261121")), "{err}");
    assert_eq!(count(&f.engine, "strict", None).await, 0, "the existing partition's rows of the batch are not written either");
}

#[tokio::test]
async fn given_a_dropped_partition_when_recreated_should_start_empty_with_its_files_gone() {
    let f = EngineFixture::builder().open();
    create(&f.engine, "kv", true);
    write(&f.engine, "kv", &[(1, "20261120"), (2, "20261120"), (1, "20261121")], true, None).await.unwrap();
    let old = f.engine.list_partitions(DB, "kv").unwrap().into_iter().find(|p| p.name == "20261120").unwrap();
    let dir = f.dir.path().join("tables").join(old.partition_id.to_string());
    assert!(dir.exists());
    let dropped =
        f.engine.drop_partition(&DropPartition { database: DB.into(), table: "kv".into(), partition: "20261120".into(), if_exists: false });
    assert!(dropped.unwrap());
    assert!(!dir.exists(), "the partition's logs are deleted");
    let lookup = LookupRequest {
        lookup: LookupKind::PrimaryKey,
        database: DB.into(),
        table: "kv".into(),
        keys: vec![vec![1.into(), "20261120".into()], vec![1.into(), "20261121".into()]],
        ..Default::default()
    };
    let plan = f.engine.open_lookup(&lookup).unwrap();
    let run = |with_key_index: bool| {
        let plan = plan.clone();
        let keys = plan.keys_from_json(&lookup.keys).unwrap();
        async move { plan.lookup(keys, with_key_index).await.unwrap().message.decode(&plan.result_schema(with_key_index)).unwrap() }
    };
    let found = run(true).await;
    assert_eq!(found.column(0).as_primitive::<arrow_array::types::Int32Type>().values().to_vec(), [1], "only the other day's key");
    write(&f.engine, "kv", &[(3, "20261120")], true, None).await.unwrap();
    let found = run(false).await;
    assert_eq!(found.num_rows(), 1, "the recreated day does not hold the dropped rows");
    let ids = found.column_by_name("id").unwrap().as_primitive::<Int64Type>().values().to_vec();
    assert_eq!(ids, [1]);
    let new = f.engine.list_partitions(DB, "kv").unwrap().into_iter().find(|p| p.name == "20261120").unwrap();
    assert_ne!(new.partition_id, old.partition_id);
}

#[tokio::test]
async fn given_an_idempotent_writer_across_partitions_should_deduplicate_retries_and_refuse_gaps() {
    let f = EngineFixture::builder().open();
    create(&f.engine, "idem", false);
    let id = |sequence| Some(BatchIdentity { writer_id: 7, sequence });
    assert!(!write(&f.engine, "idem", &[(1, "20261120")], false, id(0)).await.unwrap());
    assert!(!write(&f.engine, "idem", &[(2, "20261120"), (3, "20261121")], false, id(1)).await.unwrap());
    assert!(write(&f.engine, "idem", &[(2, "20261120"), (3, "20261121")], false, id(1)).await.unwrap(), "a retry is a duplicate");
    assert!(!write(&f.engine, "idem", &[(4, "20261121")], false, id(2)).await.unwrap(), "no gap although this day skipped 0");
    let err = write(&f.engine, "idem", &[(5, "20261121")], false, id(4)).await.unwrap_err();
    assert!(matches!(err, Error::FailedPrecondition(_)), "{err}");
    assert_eq!(count(&f.engine, "idem", None).await, 4);
}

/// 2026-11-21 23:30:00 UTC.
const NOV_21: i64 = 1_795_303_800_000;
const DAY_MS: i64 = 86_400_000;

#[tokio::test]
async fn given_an_auto_partitioned_table_when_days_pass_should_precreate_and_expire_partitions_on_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = strom_server::config::Config::default();
    config.storage.data_dir = dir.path().to_path_buf();
    let now = Arc::new(std::sync::atomic::AtomicI64::new(NOV_21));
    let clock_now = now.clone();
    let engine = Engine::open_with_clock(config.clone(), Arc::new(move || clock_now.load(std::sync::atomic::Ordering::SeqCst))).unwrap();
    engine.create_database(&strom_flight_api::CreateDatabase { name: DB.into(), ..Default::default() }).unwrap();
    // The seeds' order table: PRIMARY KEY (user_id, ds, order_id) PARTITIONED BY (ds), daily.
    let info = engine
        .create_table(&CreateTable {
            database: DB.into(),
            table: "order_ri".into(),
            columns: vec![
                ColumnSpec::new("user_id", "BIGINT"),
                ColumnSpec::new("ds", "STRING"),
                ColumnSpec::new("order_id", "BIGINT"),
                ColumnSpec::new("amount", "DOUBLE"),
            ],
            primary_key: vec!["user_id".into(), "ds".into(), "order_id".into()],
            partition_keys: vec!["ds".into()],
            bucket_key: vec!["user_id".into()],
            options: [
                ("table.auto-partition.enabled", "true"),
                ("table.auto-partition.time-unit", "day"),
                ("table.auto-partition.num-precreate", "2"),
                ("table.auto-partition.num-retention", "2"),
                ("table.auto-partition.time-zone", "Asia/Shanghai"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            ..Default::default()
        })
        .unwrap();
    // 23:30 UTC is already the 22nd in Shanghai.
    assert_eq!(info.partitions, ["20261122", "20261123"], "the current day and the next one exist at creation");
    let rows = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Int64, false),
            Field::new("ds", DataType::Utf8, false),
            Field::new("order_id", DataType::Int64, false),
            Field::new("amount", DataType::Float64, true),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(StringArray::from(vec!["20261122", "20261123"])),
            Arc::new(Int64Array::from(vec![10, 20])),
            Arc::new(arrow_array::Float64Array::from(vec![1.0, 2.0])),
        ],
    )
    .unwrap();
    let upsert = WriteCommand { write: WriteKind::Upsert, ..WriteCommand::append(DB, "order_ri") };
    common::write(engine.as_ref(), &upsert, rows, None).await.unwrap();
    let first_dir = dir.path().join("tables").join(engine.list_partitions(DB, "order_ri").unwrap()[0].partition_id.to_string());
    assert!(first_dir.exists());

    // Nothing changes within the day.
    now.store(NOV_21 + 3_600_000, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(engine.check_auto_partitions(), Default::default());

    // Three days later: 25th and 26th are created; the 22nd is older than the two kept days.
    now.store(NOV_21 + 3 * DAY_MS, std::sync::atomic::Ordering::SeqCst);
    let report = engine.check_auto_partitions();
    let path = format!("{DB}.order_ri");
    assert_eq!(report.created, [(path.clone(), "20261125".to_string()), (path.clone(), "20261126".to_string())]);
    assert_eq!(report.dropped, [(path.clone(), "20261122".to_string())]);
    assert_eq!(partitions(&engine, "order_ri"), ["20261123", "20261125", "20261126"], "the 24th was never needed: no gap filling");
    assert!(!first_dir.exists(), "an expired partition's data is removed");
    assert_eq!(
        engine
            .count(&CountRequest { kind: CountKind::Rows, database: DB.into(), table: "order_ri".into(), partition: None, buckets: None })
            .await
            .unwrap(),
        1,
        "the 23rd's row is kept"
    );

    // The schedule survives a restart: two days on (the 27th in Shanghai) the 23rd expires.
    drop(engine);
    now.store(NOV_21 + 5 * DAY_MS, std::sync::atomic::Ordering::SeqCst);
    let clock_now = now.clone();
    let engine = Engine::open_with_clock(config, Arc::new(move || clock_now.load(std::sync::atomic::Ordering::SeqCst))).unwrap();
    let report = engine.check_auto_partitions();
    assert_eq!(report.dropped, [(path, "20261123".to_string())]);
    assert_eq!(partitions(&engine, "order_ri"), ["20261125", "20261126", "20261127", "20261128"]);
}

#[tokio::test]
async fn given_a_ttl_on_a_partitioned_pk_table_when_segments_expire_should_drop_changelog_but_keep_rows() {
    let f = EngineFixture::builder().segment_bytes(2 * 1024).open();
    f.engine
        .create_table(&CreateTable {
            database: DB.into(),
            table: "ttl".into(),
            columns: vec![ColumnSpec::new("id", "BIGINT").not_null(), ColumnSpec::new("ds", "STRING"), ColumnSpec::new("v", "BIGINT")],
            primary_key: vec!["id".into(), "ds".into()],
            partition_keys: vec!["ds".into()],
            bucket_num: Some(1),
            options: [("table.log.ttl".to_string(), "1 h".to_string())].into(),
            ..Default::default()
        })
        .unwrap();
    for i in 0..20 {
        let rows: Vec<(i64, &str)> = (i * 50..i * 50 + 50).map(|k| (k, if k % 2 == 0 { "20261120" } else { "20261121" })).collect();
        write(&f.engine, "ttl", &rows, true, None).await.unwrap();
    }
    let earliest = |partition: &str| ListOffsets {
        database: DB.into(),
        table: "ttl".into(),
        partition: Some(partition.into()),
        buckets: None,
        spec: OffsetSpec::Earliest,
    };
    assert_eq!(f.engine.list_offsets(&earliest("20261120")).unwrap()[0].offset, 0);
    assert_eq!(f.engine.apply_retention(strom_server::clock::system_now_ms()), 0, "nothing is an hour old");
    let deleted = f.engine.apply_retention(strom_server::clock::system_now_ms() + 2 * 3_600_000);
    assert!(deleted >= 2, "sealed changelog segments of both partitions expire ({deleted})");
    for day in ["20261120", "20261121"] {
        let start = f.engine.list_offsets(&earliest(day)).unwrap()[0].offset;
        assert!(start > 0, "{day}: the log start moved");
        let scan = LogScan {
            database: DB.into(),
            table: "ttl".into(),
            partition: Some(day.into()),
            from: strom_flight_api::StartPosition::Offset { offset: 0 },
            ..Default::default()
        };
        let err = f.engine.scan(&scan).map(|_| ()).unwrap_err();
        assert!(matches!(err, Error::FailedPrecondition(_)), "{err}");
    }
    let rows = CountRequest { kind: CountKind::Rows, database: DB.into(), table: "ttl".into(), partition: None, buckets: None };
    assert_eq!(f.engine.count(&rows).await.unwrap(), 1000, "the KV state outlives its changelog");
}
