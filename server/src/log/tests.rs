//! Tests of the log on its own (a `BucketLog` without an engine).

use super::*;
use crate::clock::system_clock;
use crate::config::Durability;
use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use std::sync::Arc;

fn open(dir: &std::path::Path, segment_bytes: u64) -> BucketLog {
    let settings = LogSettings {
        policy: SegmentPolicy { segment_bytes, segment_ms: u64::MAX / 2 },
        durability: Durability::Os,
        clock: system_clock(),
        fs: Arc::new(crate::fs::RealFs::new()),
    };
    BucketLog::open(dir, 0, "test/bucket-0".into(), &settings).unwrap().0
}

fn ids(start: i64, n: i64) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(start..start + n))]).unwrap()
}

/// Regression: `BucketLog::totals` (GetFlightInfo, list offsets) read the segment list twice
/// under one guard. Once retention queued for the write lock between the two reads, parking_lot
/// let neither through and the node hung (seen in CI: the retention check against a reader).
#[test]
fn given_sizes_read_while_retention_runs_should_never_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open(dir.path(), 2 * 1024));
    let mut encoder = BatchEncoder::new(Compression::Zstd).unwrap();
    for i in 0..4 {
        log.append_unconfirmed(&ids(i * 100, 100), 1, None, &mut encoder).unwrap();
    }
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let reader = {
        let (log, done) = (log.clone(), done_tx.clone());
        std::thread::spawn(move || {
            let mut records = 0;
            for _ in 0..200_000 {
                records = log.totals().0;
            }
            done.send(records).unwrap();
        })
    };
    let retention = std::thread::spawn(move || {
        for _ in 0..200_000 {
            // A cutoff older than every batch: takes the write lock, deletes nothing.
            log.delete_segments_before(i64::MIN, u64::MAX).unwrap();
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
