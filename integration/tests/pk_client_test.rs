//! Primary-key tables end to end through the Rust client: full and partial upserts (two
//! writers on disjoint columns), deletes, point lookups over DoExchange and as JSON tickets,
//! prefix lookups, snapshot scans with their log offsets, changelog scans with `_change_type`,
//! counts, idempotent retries and `insert_if_not_exists`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use serde_json::json;
use strom_flight_api::{
    ColumnSpec, CountKind, CountRequest, CreateTable, LogScan, LookupKind, LookupOptions, LookupRequest, OffsetSpec, SnapshotScan,
    StartPosition, StromClient, WriterOptions, CHANGE_TYPE_COLUMN, KEY_INDEX_COLUMN,
};
use strom_integration::fixtures::*;
use strom_integration::TestServer;

const BUCKETS: u32 = 3;

/// `users`: `PRIMARY KEY (id)`, every other column nullable (so partial updates and
/// `insert_if_not_exists` apply). Key columns say NOT NULL explicitly: `ColumnSpec` always
/// sends `nullable`, and a key column declared nullable is refused.
fn users_table(database: &str) -> CreateTable {
    CreateTable {
        database: database.into(),
        table: "users".into(),
        columns: vec![
            ColumnSpec::new("id", "BIGINT").not_null(),
            ColumnSpec::new("name", "STRING"),
            ColumnSpec::new("score", "BIGINT"),
            ColumnSpec::new("city", "STRING"),
        ],
        primary_key: vec!["id".into()],
        bucket_num: Some(BUCKETS),
        ..Default::default()
    }
}

/// A batch of the named columns; `id` and `score` are BIGINT, the others STRING.
fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(columns).expect("batch")
}

fn ids(ids: impl IntoIterator<Item = i64>) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(ids))
}

fn strings(values: impl IntoIterator<Item = Option<String>>) -> ArrayRef {
    Arc::new(values.into_iter().collect::<StringArray>())
}

fn user_rows(range: std::ops::Range<i64>, name: &str) -> RecordBatch {
    batch(vec![
        ("id", ids(range.clone())),
        ("name", strings(range.clone().map(|i| Some(format!("{name}{i}"))))),
        ("score", ids(range.clone().map(|i| i * 10))),
        ("city", strings(range.map(|i| Some(format!("city{}", i % 3))))),
    ])
}

fn keys(values: &[i64]) -> RecordBatch {
    batch(vec![("id", ids(values.iter().copied()))])
}

/// A node with a database holding an empty `users` table.
struct Users {
    _server: TestServer,
    client: StromClient,
    database: String,
}

impl Users {
    async fn start() -> Users {
        let server = TestServer::start().await;
        let client = server.client().await;
        let database = unique("pk");
        create_database(&client, &database).await;
        let info = client.create_table(users_table(&database)).await.expect("create_table of a primary-key table");
        assert_eq!(info.kind, "primary_key");
        assert_eq!(info.primary_key, vec!["id".to_string()]);
        Users { _server: server, client, database }
    }

    async fn upsert(&self, batches: Vec<RecordBatch>) {
        let mut writer = self.client.upsert_writer(&self.database, "users", None, WriterOptions::default());
        let mut acks = Vec::new();
        for b in batches {
            acks.push(writer.upsert_unconfirmed(b).await.expect("upsert"));
        }
        for ack in acks {
            ack.await.expect("upsert ack");
        }
        writer.close().await.expect("close upsert writer");
    }

    fn snapshot_scan(&self) -> SnapshotScan {
        SnapshotScan { database: self.database.clone(), table: "users".into(), ..Default::default() }
    }

    async fn snapshot_rows(&self) -> Vec<Vec<String>> {
        sorted_rows(&self.client.collect_snapshot(self.snapshot_scan()).await.expect("snapshot scan").batches)
    }

    async fn count(&self, kind: CountKind) -> u64 {
        let request = CountRequest { kind, database: self.database.clone(), table: "users".into(), ..Default::default() };
        self.client.count(request).await.expect("count")
    }

    /// The changelog of one bucket from `from` to the current end.
    async fn changelog(&self, bucket: u32, from: u64) -> Vec<RecordBatch> {
        let scan = LogScan {
            database: self.database.clone(),
            table: "users".into(),
            buckets: Some(vec![bucket]),
            from: StartPosition::Offset { offset: from },
            ..Default::default()
        };
        self.client.collect_log(scan).await.expect("changelog scan").into_iter().map(|b| b.batch).collect()
    }
}

/// Rows (as strings) keyed by their first column.
fn by_key(rows: Vec<Vec<String>>) -> BTreeMap<String, Vec<String>> {
    rows.into_iter().map(|r| (r[0].clone(), r)).collect()
}

#[tokio::test]
async fn given_full_row_upserts_when_read_back_should_see_the_latest_row_per_key_everywhere() {
    let t = Users::start().await;
    t.upsert(vec![user_rows(0..10, "a"), user_rows(10..20, "a"), user_rows(20..30, "a")]).await;
    t.upsert(vec![user_rows(0..10, "b")]).await;

    let expected = sorted_rows(&[user_rows(0..10, "b"), user_rows(10..30, "a")]);
    let snapshot = t.client.collect_snapshot(t.snapshot_scan()).await.unwrap();
    assert_eq!(sorted_rows(&snapshot.batches), expected);
    assert_eq!(column_names(&snapshot.batches[0]), ["id", "name", "score", "city"]);
    assert_eq!(snapshot.log_offsets().len(), BUCKETS as usize, "every bucket reports its log offset");
    assert_eq!(t.count(CountKind::Rows).await, 30);
    let log_records = t.count(CountKind::Log).await;
    assert!(log_records > 30, "updates add change records: {log_records}");
    assert_eq!(snapshot.log_offsets().values().sum::<u64>(), log_records, "the snapshot holds every change written so far");
    let latest = t
        .client
        .list_offsets(strom_flight_api::ListOffsets {
            database: t.database.clone(),
            table: "users".into(),
            partition: None,
            buckets: None,
            spec: OffsetSpec::Latest,
        })
        .await
        .unwrap();
    let latest: BTreeMap<u32, u64> = latest.into_iter().map(|o| (o.bucket, o.offset)).collect();
    assert_eq!(snapshot.log_offsets(), latest, "with no write in between, the snapshot stands at the high watermarks");
}

#[tokio::test]
async fn given_two_partial_writers_on_disjoint_columns_when_both_write_should_keep_both_columns() {
    let t = Users::start().await;
    t.upsert(vec![user_rows(0..20, "a")]).await;
    let names = batch(vec![("id", ids(0..25)), ("name", strings((0..25).map(|i| Some(format!("n{i}")))))]);
    let scores = batch(vec![("id", ids(0..25)), ("score", ids((0..25).map(|i| -i)))]);
    let mut name_writer = t.client.upsert_writer(&t.database, "users", Some(vec!["name".into()]), WriterOptions::default());
    let mut score_writer = t.client.upsert_writer(&t.database, "users", Some(vec!["score".into()]), WriterOptions::default());
    let (a, b) = tokio::join!(name_writer.upsert(names.slice(0, 12)), score_writer.upsert(scores.slice(0, 12)));
    a.expect("partial upsert of name");
    b.expect("partial upsert of score");
    let (a, b) = tokio::join!(name_writer.upsert(names.slice(12, 13)), score_writer.upsert(scores.slice(12, 13)));
    a.expect("partial upsert of name");
    b.expect("partial upsert of score");
    name_writer.close().await.unwrap();
    score_writer.close().await.unwrap();

    let rows = by_key(t.snapshot_rows().await);
    assert_eq!(rows.len(), 25);
    for i in 0..25i64 {
        let city = if i < 20 { format!("city{}", i % 3) } else { "NULL".to_string() };
        let expected = vec![i.to_string(), format!("n{i}"), (-i).to_string(), city];
        assert_eq!(rows[&i.to_string()], expected, "row {i}: each writer set its column, the untouched city is kept");
    }
}

#[tokio::test]
async fn given_deletes_when_read_back_should_drop_the_rows_and_log_minus_d() {
    let t = Users::start().await;
    t.upsert(vec![user_rows(0..10, "a")]).await;
    let snapshot = t.client.collect_snapshot(t.snapshot_scan()).await.unwrap();
    let mut deleter = t.client.delete_writer(&t.database, "users", WriterOptions::default());
    deleter.delete(keys(&[2, 5, 7])).await.expect("delete by key");
    deleter.close().await.unwrap();
    // Whole rows are accepted too (the non-key columns are ignored), e.g. rows from a changelog;
    // a writer streams one schema, so whole rows take their own writer.
    let mut whole_rows = t.client.delete_writer(&t.database, "users", WriterOptions::default());
    whole_rows.delete(user_rows(9..10, "whatever")).await.expect("delete with every column");
    whole_rows.close().await.unwrap();

    let remaining: Vec<String> = by_key(t.snapshot_rows().await).into_keys().collect();
    let mut expected: Vec<String> = [0, 1, 3, 4, 6, 8].iter().map(|i: &i64| i.to_string()).collect();
    expected.sort();
    assert_eq!(remaining, expected);
    assert_eq!(t.count(CountKind::Rows).await, 6);
    let mut deleted = Vec::new();
    for (bucket, offset) in snapshot.log_offsets() {
        for b in t.changelog(bucket, offset).await {
            assert_eq!(column_names(&b).last().map(String::as_str), Some(CHANGE_TYPE_COLUMN));
            let types = b.column_by_name(CHANGE_TYPE_COLUMN).unwrap().as_string::<i32>().clone();
            let ids = int_column(&b, "id");
            for (row, id) in ids.into_iter().enumerate() {
                assert_eq!(types.value(row), "-D", "only deletes happened after the snapshot");
                deleted.push(id);
            }
        }
    }
    deleted.sort_unstable();
    assert_eq!(deleted, vec![2, 5, 7, 9]);
}

#[tokio::test]
async fn given_point_lookups_when_sent_over_exchange_and_as_json_should_return_the_same_rows() {
    let t = Users::start().await;
    t.upsert(vec![user_rows(0..50, "a")]).await;
    let options = LookupOptions { columns: Some(vec!["name".into()]), ..Default::default() };
    let mut lookuper = t.client.lookuper(&t.database, "users", options);
    let answer = lookuper.lookup(keys(&[5, 1000, 1])).await.expect("lookup");
    assert_eq!(column_names(&answer), [KEY_INDEX_COLUMN, "name", "id"], "_key_index first, the key after the listed columns");
    assert_eq!(rows(&[answer]), vec![vec!["0", "a5", "5"], vec!["2", "a1", "1"]]);

    // Pipelined: several requests in flight, answered in order.
    let mut pending = Vec::new();
    for i in 0..8 {
        pending.push(lookuper.submit(keys(&[i, 100 + i, 40 + i])).await.unwrap());
    }
    for (i, p) in pending.into_iter().enumerate() {
        let answer = tokio::time::timeout(Duration::from_secs(30), p).await.expect("answered").unwrap();
        assert_eq!(int_column(&answer, KEY_INDEX_COLUMN), vec![0, 2], "request {i}");
        assert_eq!(int_column(&answer, "id"), vec![i as i64, 40 + i as i64], "request {i}");
    }
    let empty = tokio::time::timeout(Duration::from_secs(30), lookuper.lookup(keys(&[]))).await.expect("an empty key batch is answered");
    assert_eq!(empty.unwrap().num_rows(), 0);
    lookuper.close().await.unwrap();

    let request = LookupRequest {
        lookup: LookupKind::PrimaryKey,
        database: t.database.clone(),
        table: "users".into(),
        keys: vec![vec![json!(5)], vec![json!(1000)], vec![json!(1)]],
        columns: Some(vec!["name".into()]),
        ..Default::default()
    };
    let found = t.client.lookup_json(request).await.expect("JSON lookup");
    assert_eq!(rows(&found), vec![vec!["a5", "5"], vec!["a1", "1"]], "rows in key order, the missing key left out");
}

#[tokio::test]
async fn given_insert_if_not_exists_when_keys_are_missing_should_insert_and_return_them() {
    let t = Users::start().await;
    t.upsert(vec![user_rows(0..3, "a")]).await;
    let options = LookupOptions { insert_if_not_exists: true, ..Default::default() };
    let mut lookuper = t.client.lookuper(&t.database, "users", options);
    let answer = lookuper.lookup(keys(&[1, 77])).await.expect("lookup with insert");
    lookuper.close().await.unwrap();
    assert_eq!(int_column(&answer, KEY_INDEX_COLUMN), vec![0, 1]);
    assert_eq!(int_column(&answer, "id"), vec![1, 77]);
    let rows = by_key(t.snapshot_rows().await);
    assert_eq!(rows["77"], vec!["77", "NULL", "NULL", "NULL"], "the inserted key has nulls elsewhere");
    assert_eq!(t.count(CountKind::Rows).await, 4);
}

#[tokio::test]
async fn given_prefix_table_when_looked_up_by_prefix_should_return_every_row_with_the_prefix_in_key_order() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let database = unique("pk");
    create_database(&client, &database).await;
    client.create_table(orders_table(&database, "orders")).await.expect("create prefix table");
    // Written out of key order on purpose.
    let rows_in = [(2, "2024-06-02", 1), (1, "2024-06-01", 9), (2, "2024-06-01", 5), (3, "2024-06-01", 1), (2, "2024-06-01", 3)];
    let written = batch(vec![
        ("user_id", ids(rows_in.iter().map(|r| r.0))),
        ("ds", strings(rows_in.iter().map(|r| Some(r.1.to_string())))),
        ("order_id", ids(rows_in.iter().map(|r| r.2))),
        ("amount", Arc::new(Float64Array::from_iter_values(rows_in.iter().map(|r| r.2 as f64 / 2.0))) as ArrayRef),
    ]);
    let mut writer = client.upsert_writer(&database, "orders", None, WriterOptions::default());
    writer.upsert(written).await.expect("upsert orders");
    writer.close().await.unwrap();

    let mut lookuper = client.prefix_lookuper(&database, "orders", LookupOptions::default());
    let answer = lookuper.lookup(batch(vec![("user_id", ids([2, 9, 1]))])).await.expect("prefix lookup");
    lookuper.close().await.unwrap();
    assert_eq!(int_column(&answer, KEY_INDEX_COLUMN), vec![0, 0, 0, 2]);
    let projected = answer.project(&[answer.schema().index_of("user_id").unwrap(), answer.schema().index_of("order_id").unwrap()]);
    assert_eq!(
        rows(&[projected.unwrap()]),
        vec![vec!["2", "3"], vec!["2", "5"], vec!["2", "1"], vec!["1", "9"]],
        "user 2 in key order (ds, then order_id), then user 1"
    );

    let request = LookupRequest {
        lookup: LookupKind::Prefix,
        database: database.clone(),
        table: "orders".into(),
        keys: vec![vec![json!(3)], vec![json!(2)]],
        columns: Some(vec!["order_id".into()]),
        ..Default::default()
    };
    let found = client.lookup_json(request).await.expect("JSON prefix lookup");
    let order_ids: Vec<i64> = found.iter().flat_map(|b| int_column(b, "order_id")).collect();
    assert_eq!(order_ids, vec![1, 3, 5, 1], "user 3's order, then user 2's in key order");
}

#[tokio::test]
async fn given_snapshot_then_changes_when_changelog_is_replayed_from_its_log_offsets_should_equal_the_new_snapshot() {
    let t = Users::start().await;
    t.upsert(vec![user_rows(0..12, "a")]).await;
    let before = t.client.collect_snapshot(t.snapshot_scan()).await.unwrap();
    t.upsert(vec![user_rows(3..6, "b"), user_rows(12..14, "a")]).await;
    let mut deleter = t.client.delete_writer(&t.database, "users", WriterOptions::default());
    deleter.delete(keys(&[0, 13])).await.unwrap();
    deleter.close().await.unwrap();

    let mut state = by_key(sorted_rows(&before.batches));
    let mut seen_types = std::collections::BTreeSet::new();
    for (bucket, offset) in before.log_offsets() {
        for b in t.changelog(bucket, offset).await {
            let names = column_names(&b);
            assert_eq!(names, ["id", "name", "score", "city", CHANGE_TYPE_COLUMN]);
            let types = b.column_by_name(CHANGE_TYPE_COLUMN).unwrap().as_string::<i32>().clone();
            let table_rows = rows(&[b.project(&[0, 1, 2, 3]).unwrap()]);
            for (row, values) in table_rows.into_iter().enumerate() {
                let change = types.value(row).to_string();
                match change.as_str() {
                    "+I" | "+U" => state.insert(values[0].clone(), values),
                    "-U" | "-D" => state.remove(&values[0]),
                    other => panic!("unknown change type {other}"),
                };
                seen_types.insert(change);
            }
        }
    }
    let after = by_key(t.snapshot_rows().await);
    assert_eq!(state, after, "snapshot + changelog from its offsets = the new snapshot, exactly once");
    assert!(seen_types.contains("+I") && seen_types.contains("+U") && seen_types.contains("-D"), "{seen_types:?}");
}

#[tokio::test]
async fn given_upsert_writer_resumed_with_the_same_id_when_resending_should_change_nothing() {
    let t = Users::start().await;
    let options = WriterOptions { writer_id: Some(4242), sequence: 0, ..Default::default() };
    let mut first = t.client.upsert_writer(&t.database, "users", None, options.clone());
    let a = first.upsert(user_rows(0..5, "a")).await.unwrap();
    let b = first.upsert(user_rows(0..5, "b")).await.unwrap();
    first.close().await.unwrap();
    let log_records = t.count(CountKind::Log).await;
    let mut again = t.client.upsert_writer(&t.database, "users", None, options);
    let a2 = again.upsert(user_rows(0..5, "a")).await.unwrap();
    let b2 = again.upsert(user_rows(0..5, "b")).await.unwrap();
    again.close().await.unwrap();
    assert!(a2.duplicate && b2.duplicate, "resent batches are recognised");
    assert_eq!((a2.buckets, b2.buckets), (a.buckets, b.buckets), "with their original offsets");
    assert_eq!(t.count(CountKind::Log).await, log_records, "nothing written twice");
    assert!(by_key(t.snapshot_rows().await).values().all(|r| r[1].starts_with('b')), "the later batch still wins");
}
