//! Partitioned tables through the Rust client against the real binary: a writer whose rows span
//! days (acks name each partition), partition administration, scans of one partition and of
//! all, snapshots, counts and lookups that route keys to their partitions.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use strom_flight_api::{
    CountKind, CountRequest, CreatePartition, CreateTable, DropPartition, LogScan, LookupOptions, SnapshotScan, StromClient, WriterOptions,
};
use strom_integration::fixtures::*;
use strom_integration::TestServer;

const TABLE: &str = "order_dtm";

fn orders(rows: &[(i64, &str, i64, f64)]) -> RecordBatch {
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("user_id", Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0)))),
        ("ds", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1)))),
        ("order_id", Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2)))),
        ("amount", Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.3)))),
    ];
    RecordBatch::try_from_iter(columns).unwrap()
}

async fn start() -> (TestServer, StromClient, String) {
    let server = TestServer::start().await;
    let client = server.client().await;
    let database = unique("part");
    create_database(&client, &database).await;
    let info = client
        .create_table(CreateTable { partition_keys: vec!["ds".into()], ..orders_table(&database, TABLE) })
        .await
        .expect("create a partitioned primary-key table");
    assert_eq!(info.partition_keys, ["ds"]);
    (server, client, database)
}

#[tokio::test]
async fn given_a_writer_spanning_days_should_route_rows_and_read_them_back_per_partition_and_across() {
    let (_server, client, db) = start().await;
    let mut writer = client.upsert_writer(&db, TABLE, None, WriterOptions::default());
    let ack = writer
        .upsert(orders(&[(1, "20261120", 10, 1.0), (1, "20261121", 11, 2.0), (2, "20261121", 12, 3.0)]))
        .await
        .expect("upsert across two days");
    let mut partitions: Vec<_> = ack.buckets.iter().map(|b| b.partition.clone().expect("acks name the partition")).collect();
    partitions.sort();
    partitions.dedup();
    assert_eq!(partitions, ["20261120", "20261121"]);
    writer.close().await.unwrap();

    let listed = client.list_partitions(&db, TABLE).await.unwrap();
    assert_eq!(listed.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["20261120", "20261121"]);
    assert_eq!(listed[1].values["ds"], "20261121");

    let day = client
        .collect_log(LogScan { database: db.clone(), table: TABLE.into(), partition: Some("20261121".into()), ..Default::default() })
        .await
        .unwrap();
    assert!(day.iter().all(|b| b.metadata.partition.as_deref() == Some("20261121")));
    assert_eq!(day.iter().map(|b| b.batch.num_rows()).sum::<usize>(), 2);
    let all = client.collect_log(LogScan { database: db.clone(), table: TABLE.into(), ..Default::default() }).await.unwrap();
    assert_eq!(all.iter().map(|b| b.batch.num_rows()).sum::<usize>(), 3);

    let snapshot = client.collect_snapshot(SnapshotScan { database: db.clone(), table: TABLE.into(), ..Default::default() }).await.unwrap();
    assert_eq!(snapshot.num_rows(), 3);
    assert_eq!(snapshot.buckets.iter().filter(|m| m.partition.is_some()).count(), 4, "two buckets in each of two days");
    let rows = |partition: Option<&str>| CountRequest {
        kind: CountKind::Rows,
        database: db.clone(),
        table: TABLE.into(),
        partition: partition.map(str::to_string),
        ..Default::default()
    };
    assert_eq!(client.count(rows(Some("20261120"))).await.unwrap(), 1);
    assert_eq!(client.count(rows(None)).await.unwrap(), 3);

    // Keys carry their day: the lookuper sends one batch, the node routes each key.
    let mut lookuper = client.lookuper(&db, TABLE, LookupOptions::default());
    let keys = RecordBatch::try_from_iter(vec![
        ("user_id", Arc::new(Int64Array::from(vec![2, 1, 1])) as ArrayRef),
        ("ds", Arc::new(StringArray::from(vec!["20261121", "20261119", "20261120"])) as ArrayRef),
        ("order_id", Arc::new(Int64Array::from(vec![12, 10, 10])) as ArrayRef),
    ])
    .unwrap();
    let found = lookuper.lookup(keys).await.unwrap();
    let order_ids = found.column_by_name("order_id").unwrap().as_primitive::<Int64Type>().values().to_vec();
    assert_eq!(order_ids, [12, 10], "request order; a day without a partition answers nothing");
    lookuper.close().await.unwrap();

    assert!(client
        .drop_partition(DropPartition { database: db.clone(), table: TABLE.into(), partition: "20261120".into(), if_exists: false })
        .await
        .unwrap());
    assert_eq!(client.count(rows(None)).await.unwrap(), 2);
    assert!(client
        .create_partition(CreatePartition { database: db.clone(), table: TABLE.into(), partition: "20261122".into(), if_not_exists: false })
        .await
        .unwrap());
    let err = client
        .create_partition(CreatePartition {
            database: db.clone(),
            table: TABLE.into(),
            partition: "2026/11/22".into(),
            if_not_exists: false,
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("2026/11/22"), "{err}");
}
