//! `ALTER TABLE ... ADD COLUMN` on a live node: a writer keeps appending (without the column)
//! while the column is added, another starts using it, and after a SIGKILL every acknowledged
//! row is back, old ones with the new column null.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use strom_flight_api::{AlterTable, ColumnSpec, CreateTable, LogScan, WriterOptions};
use strom_integration::fixtures::*;
use strom_integration::TestServer;

fn rows(ids: std::ops::Range<i64>, city: Option<&str>) -> RecordBatch {
    let mut columns: Vec<(&str, ArrayRef)> = vec![("id", Arc::new(Int64Array::from_iter_values(ids.clone())))];
    if let Some(city) = city {
        columns.push(("city", Arc::new(StringArray::from_iter_values(ids.map(|_| city)))));
    }
    RecordBatch::try_from_iter(columns).unwrap()
}

#[tokio::test]
async fn given_a_column_added_while_a_writer_appends_when_the_node_is_killed_should_keep_every_acknowledged_row() {
    let mut server = TestServer::start().await;
    let client = server.client().await;
    let db = unique("evolve");
    create_database(&client, &db).await;
    client
        .create_table(CreateTable {
            database: db.clone(),
            table: "events".into(),
            columns: vec![ColumnSpec::new("id", "BIGINT").not_null()],
            bucket_num: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();

    // The old writer's stream stays open across the ALTER.
    let mut old_writer = client.append_writer(&db, "events", WriterOptions::default());
    old_writer.append(rows(0..100, None)).await.unwrap();
    let info = client
        .alter_table(AlterTable {
            database: db.clone(),
            table: "events".into(),
            add_columns: vec![ColumnSpec::new("city", "STRING")],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(info.schema_id, 2);
    old_writer.append(rows(100..200, None)).await.unwrap();
    let mut new_writer = client.append_writer(&db, "events", WriterOptions::default());
    new_writer.append(rows(200..300, Some("Hangzhou"))).await.unwrap();

    server.kill9().await;
    server.restart_same_port().await;
    let client = server.client().await;
    let batches = client.collect_log(LogScan { database: db.clone(), table: "events".into(), ..Default::default() }).await.unwrap();
    let mut seen: Vec<(i64, bool)> = Vec::new();
    for b in batches.iter().map(|b| &b.batch) {
        let ids = b.column_by_name("id").unwrap().as_primitive::<Int64Type>();
        let city = b.column_by_name("city").expect("old batches read the added column too").as_string::<i32>();
        for r in 0..b.num_rows() {
            assert_eq!(city.is_null(r), ids.value(r) < 200, "row {}: only the new writer's rows have a city", ids.value(r));
            seen.push((ids.value(r), !city.is_null(r)));
        }
    }
    seen.sort();
    assert_eq!(seen.len(), 300, "every acknowledged row survives the SIGKILL");
    assert_eq!(client.get_table(&db, "events").await.unwrap().schema_id, 2, "the schema change is durable");
}
