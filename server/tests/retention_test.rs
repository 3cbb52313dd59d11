//! Retention by `table.log.ttl`: whole expired segments go, the log start moves, and readers
//! asking for deleted offsets get a clear error.

mod common;

use common::*;
use strom_flight_api::{LogScan, StartPosition};
use strom_server::Error;

#[tokio::test]
async fn given_expired_segments_when_retention_runs_should_delete_them_and_move_log_start() {
    let f = EngineFixture::builder().segment_bytes(2 * 1024).option("table.log.ttl", "1 h").open();
    for i in 0..12 {
        f.table().append(rows(i * 100, 100), None).await.unwrap();
    }
    let before = f.segment_files(0).len();
    assert!(before > 2);
    // Nothing is older than an hour yet.
    assert_eq!(f.engine.apply_retention(strom_server::catalog::now_ms()), 0);
    // Two hours later every sealed segment has expired; the active one stays.
    let deleted = f.engine.apply_retention(strom_server::catalog::now_ms() + 2 * 3600 * 1000);
    assert_eq!(deleted, before - 1);
    assert_eq!(f.segment_files(0).len(), 1);
    let start = f.table().buckets[0].log_start_offset();
    assert!(start > 0);
    let err = f.scan(LogScan { from: StartPosition::Offset { offset: 0 }, ..EngineFixture::full_scan() }).await.unwrap_err();
    assert!(matches!(err, Error::FailedPrecondition(_)) && err.to_string().contains(&format!("log start offset {start}")), "{err}");
    let rest = f.scan(EngineFixture::full_scan()).await.unwrap();
    assert_eq!(ids(&rest), (start as i64..1200).collect::<Vec<_>>(), "earliest starts at the new log start");
}

/// Regression: `BucketLog::totals` (GetFlightInfo, list offsets) read the segment list twice
/// under one guard. Once retention queued for the write lock between the two reads, parking_lot
/// let neither through and the node hung (seen in CI: the retention check against a reader).
#[test]
fn given_sizes_read_while_retention_runs_should_never_deadlock() {
    let f = EngineFixture::builder().segment_bytes(2 * 1024).option("table.log.ttl", "1 h").open();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for i in 0..4 {
        rt.block_on(f.table().append(rows(i * 100, 100), None)).unwrap();
    }
    let bucket = f.table().buckets[0].clone();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let reader = {
        let (bucket, done) = (bucket.clone(), done_tx.clone());
        std::thread::spawn(move || {
            let mut records = 0;
            for _ in 0..200_000 {
                records = bucket.totals().0;
            }
            done.send(records).unwrap();
        })
    };
    let retention = std::thread::spawn(move || {
        for _ in 0..200_000 {
            // A cutoff older than every batch: takes the write lock, deletes nothing.
            bucket.delete_segments_before(i64::MIN, u64::MAX).unwrap();
        }
        done_tx.send(0).unwrap();
    });
    // A deadlock shows up as a missing message, not as a hung test run.
    let deadline = std::time::Duration::from_secs(120);
    let records: Vec<u64> = (0..2).map(|_| done_rx.recv_timeout(deadline).expect("totals and retention deadlocked")).collect();
    assert!(records.contains(&400), "totals counted every record: {records:?}");
    reader.join().unwrap();
    retention.join().unwrap();
}
