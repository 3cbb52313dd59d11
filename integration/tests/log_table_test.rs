//! Log tables end to end: append, then read back every way the contract offers (full,
//! projected, per bucket, from an offset or a timestamp, limited, counted, with metadata
//! columns, tailing), plus GetFlightInfo, GetSchema and list_offsets.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arrow_array::RecordBatch;
use arrow_schema::{DataType, TimeUnit};
use futures::StreamExt;
use strom_flight_api::{CountRequest, LogScan, OffsetSpec, StartPosition, BUCKET_COLUMN, OFFSET_COLUMN, TIMESTAMP_COLUMN};
use strom_integration::fixtures::*;

const BUCKETS: u32 = 4;
const BATCHES: usize = 5;
const ROWS: usize = 40;

fn project(batches: &[RecordBatch], columns: &[&str]) -> Vec<RecordBatch> {
    batches
        .iter()
        .map(|b| {
            let indices: Vec<usize> = columns.iter().map(|c| b.schema().index_of(c).unwrap()).collect();
            b.project(&indices).unwrap()
        })
        .collect()
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

#[tokio::test]
async fn given_appended_batches_when_fully_scanned_should_return_exactly_those_rows() {
    let f = EventsFixture::start(BUCKETS, BATCHES, ROWS).await;
    let scan = f.client.collect_log(f.scan()).await.unwrap();
    assert_eq!(total_rows(&scan), BATCHES * ROWS);
    assert_eq!(sorted_rows(&batches_of(&scan)), sorted_rows(&f.written));
    let info = f.client.get_table(&f.database, &f.table).await.unwrap();
    assert_eq!(info.kind, "log");
    assert_eq!(info.bucket_key, vec!["id".to_string()]);
    assert_eq!(info.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["id", "name", "amount", "flag", "ts"]);
    assert!(!info.columns[0].nullable, "id was declared NOT NULL");
    assert_eq!(f.client.list_tables(&f.database).await.unwrap(), vec![f.table.clone()]);
    assert!(f.client.list_databases().await.unwrap().contains(&f.database));
}

#[tokio::test]
async fn given_column_list_when_scanned_should_return_only_those_columns_in_that_order() {
    let f = EventsFixture::start(BUCKETS, BATCHES, ROWS).await;
    let columns = ["ts", "name", "id"];
    let scan = LogScan { columns: Some(columns.iter().map(|c| c.to_string()).collect()), ..f.scan() };
    let result = f.client.collect_log(scan).await.unwrap();
    assert!(!result.is_empty());
    for b in &result {
        assert_eq!(column_names(&b.batch), columns);
    }
    assert_eq!(
        result[0].batch.schema().field(0).data_type(),
        &DataType::Timestamp(TimeUnit::Millisecond, None),
        "TIMESTAMP(3) is a millisecond timestamp without zone"
    );
    assert_eq!(sorted_rows(&batches_of(&result)), sorted_rows(&project(&f.written, &columns)));
}

#[tokio::test]
async fn given_bucket_list_when_scanned_should_return_only_that_buckets_rows() {
    let f = EventsFixture::start(BUCKETS, BATCHES, ROWS).await;
    let mut union = Vec::new();
    for bucket in 0..BUCKETS {
        let scan = LogScan { buckets: Some(vec![bucket]), ..f.scan() };
        let result = f.client.collect_log(scan).await.unwrap();
        assert!(total_rows(&result) > 0, "200 hashed ids leave no bucket of 4 empty (bucket {bucket})");
        assert!(result.iter().all(|b| b.metadata.bucket == bucket), "bucket {bucket} scan returned another bucket");
        let counted = f.client.count(CountRequest { buckets: Some(vec![bucket]), ..count_request(&f) }).await.unwrap();
        assert_eq!(counted as usize, total_rows(&result), "count of bucket {bucket}");
        union.extend(batches_of(&result));
    }
    assert_eq!(sorted_rows(&union), sorted_rows(&f.written), "the buckets partition the table");
}

fn count_request(f: &EventsFixture) -> CountRequest {
    CountRequest { database: f.database.clone(), table: f.table.clone(), ..Default::default() }
}

#[tokio::test]
async fn given_start_offset_when_scanned_should_start_there() {
    let f = EventsFixture::start(BUCKETS, BATCHES, ROWS).await;
    let latest = f.offsets(OffsetSpec::Latest).await;
    let bucket = 0;
    let start = latest[&bucket] / 2;
    let scan = LogScan { buckets: Some(vec![bucket]), from: StartPosition::Offset { offset: start }, metadata_columns: true, ..f.scan() };
    let result = f.client.collect_log(scan).await.unwrap();
    let offsets: Vec<i64> = result.iter().flat_map(|b| int_column(&b.batch, OFFSET_COLUMN)).collect();
    let expected: Vec<i64> = (start as i64..latest[&bucket] as i64).collect();
    assert_eq!(offsets, expected, "a scan from offset {start} returns offsets {start}.. in order");
}

#[tokio::test]
async fn given_timestamp_between_two_appends_when_scanned_from_it_should_return_only_the_later_rows() {
    let mut f = EventsFixture::start(BUCKETS, 2, ROWS).await;
    let before = f.offsets(OffsetSpec::Latest).await;
    // Everything so far was acked, so it committed at or before now; the next append
    // starts strictly after `cut` once the clock has passed it.
    let cut = now_ms() + 1;
    while now_ms() <= cut {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let later = events_batch(10_000, ROWS);
    f.append(later.clone()).await;
    let at_cut = f.offsets(OffsetSpec::Timestamp { timestamp: cut }).await;
    assert_eq!(at_cut, before, "the first offset at the cut is the old high watermark of each bucket");
    let scan = LogScan { from: StartPosition::Timestamp { timestamp: cut }, ..f.scan() };
    let result = f.client.collect_log(scan).await.unwrap();
    assert_eq!(sorted_rows(&batches_of(&result)), sorted_rows(&[later]));
    let future = f.offsets(OffsetSpec::Timestamp { timestamp: now_ms() + 60_000 }).await;
    assert_eq!(future, f.offsets(OffsetSpec::Latest).await, "a timestamp after every record resolves to the high watermark");
}

#[tokio::test]
async fn given_limit_when_scanned_should_return_exactly_limit_rows() {
    let f = EventsFixture::start(BUCKETS, BATCHES, ROWS).await;
    for limit in [1u64, 7, 150] {
        let result = f.client.collect_log(LogScan { limit: Some(limit), ..f.scan() }).await.unwrap();
        assert_eq!(total_rows(&result) as u64, limit, "limit {limit}");
    }
    let result = f.client.collect_log(LogScan { limit: Some(10_000), ..f.scan() }).await.unwrap();
    assert_eq!(total_rows(&result), BATCHES * ROWS, "a limit above the row count returns every row");
}

#[tokio::test]
async fn given_rows_when_counted_should_equal_rows_written() {
    let mut f = EventsFixture::start(BUCKETS, BATCHES, ROWS).await;
    assert_eq!(f.count().await, (BATCHES * ROWS) as u64);
    f.append(events_batch(50_000, 3)).await;
    assert_eq!(f.count().await, (BATCHES * ROWS + 3) as u64);
}

#[tokio::test]
async fn given_metadata_columns_when_scanned_should_add_bucket_offset_timestamp_gap_free() {
    let f = EventsFixture::start(BUCKETS, BATCHES, ROWS).await;
    let started = now_ms();
    let result = f.client.collect_log(LogScan { metadata_columns: true, ..f.scan() }).await.unwrap();
    assert!(!result.is_empty());
    for b in &result {
        let names = column_names(&b.batch);
        assert_eq!(&names[names.len() - 3..], [BUCKET_COLUMN, OFFSET_COLUMN, TIMESTAMP_COLUMN]);
        assert_eq!(&names[..5], ["id", "name", "amount", "flag", "ts"]);
        assert!(int_column(&b.batch, BUCKET_COLUMN).iter().all(|x| *x == b.metadata.bucket as i64));
        let offsets = int_column(&b.batch, OFFSET_COLUMN);
        assert_eq!(offsets[0], b.metadata.base_offset as i64, "the first row is at the message's base_offset");
        assert!(offsets.iter().all(|o| (*o as u64) < b.metadata.high_watermark));
        let ts = int_column(&b.batch, TIMESTAMP_COLUMN);
        assert!(ts.iter().all(|t| *t > started - 600_000 && *t <= now_ms()), "commit timestamps are recent: {ts:?}");
    }
    let earliest = f.offsets(OffsetSpec::Earliest).await;
    let latest = f.offsets(OffsetSpec::Latest).await;
    let per_bucket = assert_offsets_gap_free(&batches_of(&result), &earliest);
    for (bucket, n) in per_bucket {
        assert_eq!(latest[&bucket] - earliest[&bucket], n as u64, "bucket {bucket}: latest - earliest = rows");
    }
    let data_only: Vec<RecordBatch> = result.iter().map(|b| b.batch.project(&[0, 1, 2, 3, 4]).unwrap()).collect();
    assert_eq!(sorted_rows(&data_only), sorted_rows(&f.written));
}

#[tokio::test]
async fn given_follow_scan_when_a_batch_is_appended_later_should_stream_it() {
    let mut f = EventsFixture::start(BUCKETS, 2, ROWS).await;
    let existing = f.written_rows();
    let mut tail = f.client.scan_log(LogScan { follow: true, ..f.scan() }).await.unwrap();
    let mut seen = Vec::new();
    // First the rows that were there when the scan started...
    tokio::time::timeout(Duration::from_secs(20), async {
        while seen.iter().map(RecordBatch::num_rows).sum::<usize>() < existing {
            seen.push(tail.next().await.expect("a follow scan does not end").expect("scan batch").batch);
        }
    })
    .await
    .expect("the follow scan delivers the existing rows");
    // ...then a batch appended afterwards.
    let later = events_batch(90_000, 5);
    f.append(later.clone()).await;
    tokio::time::timeout(Duration::from_secs(20), async {
        while seen.iter().map(RecordBatch::num_rows).sum::<usize>() < existing + 5 {
            seen.push(tail.next().await.expect("a follow scan does not end").expect("scan batch").batch);
        }
    })
    .await
    .expect("the follow scan delivers a batch appended after it started, within 20 s");
    let mut expected = f.written.clone();
    expected.truncate(2);
    expected.push(later);
    assert_eq!(sorted_rows(&seen), sorted_rows(&expected));
}

#[tokio::test]
async fn given_table_when_flight_info_requested_should_have_one_endpoint_per_bucket_scanning_it() {
    let f = EventsFixture::start(BUCKETS, BATCHES, ROWS).await;
    let info = f.client.get_flight_info(&f.database, &f.table).await.unwrap();
    assert_eq!(info.endpoint.len(), BUCKETS as usize);
    assert_eq!(info.total_records, (BATCHES * ROWS) as i64);
    let schema = info.clone().try_decode_schema().unwrap();
    assert_eq!(schema.fields().len(), 5);
    let mut union = Vec::new();
    let mut buckets_seen = Vec::new();
    for endpoint in &info.endpoint {
        let ticket = endpoint.ticket.clone().expect("endpoint has a ticket");
        let result = f.client.scan_ticket(ticket).await.unwrap().collect_all().await.unwrap();
        let buckets: std::collections::BTreeSet<u32> = result.iter().map(|b| b.metadata.bucket).collect();
        assert_eq!(buckets.len(), 1, "an endpoint's ticket scans exactly one bucket, got {buckets:?}");
        buckets_seen.extend(buckets);
        union.extend(batches_of(&result));
    }
    buckets_seen.sort();
    assert_eq!(buckets_seen, (0..BUCKETS).collect::<Vec<_>>());
    assert_eq!(sorted_rows(&union), sorted_rows(&f.written));
    let flights = f.client.list_flights().await.unwrap();
    assert!(flights.iter().any(|fi| fi.flight_descriptor.as_ref().is_some_and(|d| d.path == [f.database.clone(), f.table.clone()])));
}

#[tokio::test]
async fn given_table_when_schema_requested_should_match_declared_columns() {
    let f = EventsFixture::start(BUCKETS, 0, 0).await;
    let schema = f.client.get_schema(&f.database, &f.table).await.unwrap();
    let expected = events_schema();
    let got: Vec<(String, DataType, bool)> =
        schema.fields().iter().map(|x| (x.name().clone(), x.data_type().clone(), x.is_nullable())).collect();
    let want: Vec<(String, DataType, bool)> =
        expected.fields().iter().map(|x| (x.name().clone(), x.data_type().clone(), x.is_nullable())).collect();
    assert_eq!(got, want);
    let empty = f.client.collect_log(f.scan()).await.unwrap();
    assert_eq!(total_rows(&empty), 0, "a new table scans empty");
    assert_eq!(f.count().await, 0);
}

#[tokio::test]
async fn given_appends_when_offsets_listed_should_report_earliest_zero_and_latest_rows_per_bucket() {
    let f = EventsFixture::start(BUCKETS, BATCHES, ROWS).await;
    let earliest = f.offsets(OffsetSpec::Earliest).await;
    let latest = f.offsets(OffsetSpec::Latest).await;
    assert_eq!(earliest, (0..BUCKETS).map(|b| (b, 0)).collect::<BTreeMap<_, _>>());
    assert_eq!(latest.keys().copied().collect::<Vec<_>>(), (0..BUCKETS).collect::<Vec<_>>());
    let mut sum = 0;
    for bucket in 0..BUCKETS {
        let rows = total_rows(&f.client.collect_log(LogScan { buckets: Some(vec![bucket]), ..f.scan() }).await.unwrap());
        assert_eq!(latest[&bucket], rows as u64, "bucket {bucket}: the high watermark is its row count");
        sum += latest[&bucket];
    }
    assert_eq!(sum, (BATCHES * ROWS) as u64);
    let some = f
        .client
        .list_offsets(strom_flight_api::ListOffsets {
            database: f.database.clone(),
            table: f.table.clone(),
            partition: None,
            buckets: Some(vec![2]),
            spec: OffsetSpec::Latest,
        })
        .await
        .unwrap();
    assert_eq!(some.len(), 1);
    assert_eq!((some[0].bucket, some[0].offset), (2, latest[&2]));
}
