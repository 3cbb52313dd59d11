//! Log scans: positions, bounds, limit, projection, metadata columns, follow.

mod common;

use common::*;
use std::time::Duration;
use strom_flight_api::{EndPosition, LogScan, StartPosition};
use strom_server::engine::StorageEngine;

async fn filled(buckets: u32) -> EngineFixture {
    let f = EngineFixture::builder().buckets(buckets).open();
    for i in 0..5 {
        f.append(rows(i * 100, 100), None).await.unwrap();
    }
    f
}

#[tokio::test]
async fn given_offset_inside_a_batch_when_scanned_should_start_exactly_there() {
    let f = filled(1).await;
    let out = f
        .scan(LogScan {
            from: StartPosition::Offset { offset: 150 },
            to: Some(EndPosition::Offset { offset: 420 }),
            ..EngineFixture::full_scan()
        })
        .await
        .unwrap();
    assert_eq!(ids(&out), (150..420).collect::<Vec<_>>());
    assert_eq!(out[0].0.base_offset, 150);
}

#[tokio::test]
async fn given_limit_across_buckets_when_scanned_should_return_exactly_limit_rows() {
    let f = filled(4).await;
    for limit in [0u64, 1, 77, 499, 500, 10_000] {
        let out = f.scan(LogScan { limit: Some(limit), ..EngineFixture::full_scan() }).await.unwrap();
        assert_eq!(out.iter().map(|(_, b)| b.num_rows() as u64).sum::<u64>(), limit.min(500), "limit {limit}");
    }
}

#[tokio::test]
async fn given_projection_when_scanned_should_return_requested_columns_in_order() {
    let f = filled(1).await;
    let out = f.scan(LogScan { columns: Some(vec!["score".into(), "id".into()]), ..EngineFixture::full_scan() }).await.unwrap();
    let schema = out[0].1.schema();
    assert_eq!(schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>(), vec!["score", "id"]);
    assert_eq!(ids(&out), (0..500).collect::<Vec<_>>());
    let bad = f.engine.scan(&LogScan { columns: Some(vec!["nope".into()]), ..EngineFixture::full_scan() }).err().unwrap();
    assert!(bad.to_string().contains("nope"));
}

#[tokio::test]
async fn given_metadata_columns_when_scanned_should_number_rows_gap_free_per_bucket() {
    let f = filled(4).await;
    let out = f.scan(LogScan { metadata_columns: true, ..EngineFixture::full_scan() }).await.unwrap();
    let mut per_bucket: std::collections::BTreeMap<i32, Vec<i64>> = Default::default();
    for (chunk, b) in &out {
        let bucket = b.column_by_name("_bucket").unwrap().as_any().downcast_ref::<arrow_array::Int32Array>().unwrap();
        let offset = b.column_by_name("_offset").unwrap().as_any().downcast_ref::<arrow_array::Int64Array>().unwrap();
        assert!(bucket.values().iter().all(|&x| x == chunk.bucket as i32));
        per_bucket.entry(chunk.bucket as i32).or_default().extend(offset.values().iter());
    }
    for (bucket, mut offsets) in per_bucket {
        offsets.sort_unstable();
        assert_eq!(offsets, (0..offsets.len() as i64).collect::<Vec<_>>(), "bucket {bucket}");
    }
}

#[tokio::test]
async fn given_timestamp_when_scanned_should_start_at_first_batch_committed_after_it() {
    let f = filled(1).await;
    let before = strom_server::clock::system_now_ms();
    // Commit timestamps are per batch in ms: wait until the clock has moved past `before`.
    while strom_server::clock::system_now_ms() <= before {
        tokio::task::yield_now().await;
    }
    f.append(rows(500, 10), None).await.unwrap();
    let out = f.scan(LogScan { from: StartPosition::Timestamp { timestamp: before + 1 }, ..EngineFixture::full_scan() }).await.unwrap();
    assert_eq!(ids(&out), (500..510).collect::<Vec<_>>());
}

#[tokio::test]
async fn given_follow_scan_when_rows_are_appended_later_should_stream_them() {
    let f = filled(2).await;
    let mut stream = f.engine.scan(&LogScan { from: StartPosition::Latest, follow: true, ..EngineFixture::full_scan() }).unwrap();
    let engine = f.engine.clone();
    let append = strom_flight_api::WriteCommand::append(common::DB, common::TABLE);
    let writer = tokio::spawn(async move { common::write(engine.as_ref(), &append, rows(1000, 3), None).await.unwrap() });
    let mut seen = 0;
    while seen < 3 {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunks.recv())
            .await
            .expect("follow delivers within 10 s")
            .unwrap()
            .unwrap();
        seen += chunk.rows;
    }
    assert_eq!(seen, 3);
    writer.await.unwrap();
}

#[tokio::test]
async fn given_offsets_when_listed_should_report_earliest_latest_and_counts() {
    let f = filled(1).await;
    let latest = f
        .engine
        .list_offsets(&strom_flight_api::ListOffsets {
            database: DB.into(),
            table: TABLE.into(),
            partition: None,
            buckets: None,
            spec: strom_flight_api::OffsetSpec::Latest,
        })
        .unwrap();
    assert_eq!(latest[0].offset, 500);
    let count =
        f.engine.count(&strom_flight_api::CountRequest { database: DB.into(), table: TABLE.into(), ..Default::default() }).await.unwrap();
    assert_eq!(count, 500);
    let bad = f.engine.scan(&LogScan { buckets: Some(vec![3]), ..EngineFixture::full_scan() }).err().unwrap();
    assert!(bad.to_string().contains("bucket 3"), "{bad}");
}

#[tokio::test]
async fn given_follow_scan_when_table_is_dropped_should_end_with_not_found() {
    let f = filled(1).await;
    let mut stream = f.engine.scan(&LogScan { from: StartPosition::Latest, follow: true, ..EngineFixture::full_scan() }).unwrap();
    f.engine.drop_table(&strom_flight_api::DropTable { database: DB.into(), table: TABLE.into(), if_exists: false }).unwrap();
    let end = tokio::time::timeout(Duration::from_secs(10), stream.chunks.recv())
        .await
        .expect("the reader is woken up")
        .expect("an error, not a silent end");
    let err = end.unwrap_err();
    assert!(matches!(err, strom_server::Error::NotFound(_)) && err.to_string().contains("dropped"), "{err}");
}

#[tokio::test]
async fn given_follow_scan_when_node_closes_readers_should_end_promptly() {
    let f = filled(1).await;
    let mut stream = f.engine.scan(&LogScan { from: StartPosition::Latest, follow: true, ..EngineFixture::full_scan() }).unwrap();
    f.engine.close_readers();
    let end = tokio::time::timeout(Duration::from_secs(10), stream.chunks.recv()).await.expect("the reader is woken up").unwrap();
    assert!(matches!(end, Err(strom_server::Error::ShuttingDown)));
}
