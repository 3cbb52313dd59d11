//! Tests of the log on its own (a `BucketLog` without an engine).

use super::*;
use crate::clock::system_clock;
use crate::config::Durability;
use crate::fs::FileSystem;
use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use std::sync::Arc;

fn open(dir: &std::path::Path, segment_bytes: u64) -> BucketLog {
    let settings = LogSettings {
        policy: SegmentPolicy { segment_bytes, segment_ms: u64::MAX / 2 },
        durability: Durability::Os,
        clock: system_clock(),
        fs: Arc::new(crate::fs::RealFs::new()),
        tail_cache: super::TailCache::disabled(),
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

/// Decodes every committed batch of the log; returns the ids read.
fn read_all(log: &BucketLog) -> crate::error::Result<Vec<i64>> {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    let (mut at, end, mut out) = (log.log_start_offset(), log.high_watermark(), vec![]);
    while at < end {
        let (entries, next) = log.read_decoded(at, end, 1 << 20, &|_| Ok(schema.clone()))?;
        for e in entries {
            out.extend(e.batch.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values().iter().copied());
        }
        at = next;
    }
    Ok(out)
}

/// Regression (found by the power-loss suite): a full segment is sealed (fsync, index) by the
/// group commit after the roll, but the next segment's directory entry becomes durable with
/// any fsync of the directory — here the index write of an earlier seal. A power loss between
/// the two left the rolled segment with a torn tail in the middle of the log, which recovery
/// served as DATA_LOSS (or left a gap before the next segment), though none of it, nor
/// anything after it, was ever acknowledged.
#[tokio::test]
async fn given_rolled_segment_torn_before_its_seal_when_recovered_should_cut_it_like_a_torn_tail() {
    let mut cut = 0;
    for seed in 0..64 {
        let root = tempfile::tempdir().unwrap();
        let fs = crate::fs::FaultFs::new(root.path()).unwrap();
        let dir = root.path().join("bucket-0");
        let settings = LogSettings {
            policy: SegmentPolicy { segment_bytes: 1024, segment_ms: u64::MAX / 2 },
            durability: Durability::Sync,
            clock: system_clock(),
            fs: Arc::new(fs.clone()),
            tail_cache: super::TailCache::disabled(),
        };
        let mut encoder = BatchEncoder::new(Compression::None).unwrap();
        let log = BucketLog::open(&dir, 0, "test/bucket-0".into(), &settings).unwrap().0;
        let acked = log.append_unconfirmed(&ids(0, 10), 1, None, &mut encoder).unwrap();
        log.wait_durable(acked.end_offset()).await.unwrap();
        let segments =
            || std::fs::read_dir(&dir).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "log")).count();
        let mut next = 10;
        while segments() < 2 {
            log.append_unconfirmed(&ids(next, 10), 1, None, &mut encoder).unwrap();
            next += 10;
        }
        // What the index write of another segment's seal does to the directory.
        fs.sync_dir(&dir).unwrap();
        log.append_unconfirmed(&ids(next, 10), 1, None, &mut encoder).unwrap();
        drop(log);
        let loss = fs.simulate_power_loss(seed).unwrap();
        fs.reset();
        let (log, report) = BucketLog::open(&dir, 0, "test/bucket-0".into(), &settings).unwrap();
        assert_eq!(report.corrupt_ranges, 0, "seed {seed}: nothing acknowledged was damaged; {loss}");
        let read = read_all(&log).unwrap_or_else(|e| panic!("seed {seed}: {e}; {loss}"));
        assert_eq!(read, (0..read.len() as i64).collect::<Vec<_>>(), "seed {seed}: a gap-free prefix of what was written; {loss}");
        assert!(read.len() >= 10, "seed {seed}: the acknowledged batch survives; {loss}");
        cut += usize::from(segments() == 1);
        // The log goes on from where it was cut.
        let more = log.append_unconfirmed(&ids(read.len() as i64, 10), 1, None, &mut encoder).unwrap();
        log.wait_durable(more.end_offset()).await.unwrap();
        assert_eq!(more.base_offset, read.len() as u64, "seed {seed}");
    }
    assert!(cut > 0, "some power loss tore the rolled segment, and recovery removed the segment after it");
}

/// The segments recovery removes after a torn, unsealed one must stay removed: if a later
/// power loss brought one back while the cut segment had grown to its base offset again, the
/// old segment would be adopted as the log's continuation — here holding a batch the writer
/// had meanwhile resent, which would then be stored twice. So recovery fsyncs the directory
/// after the removal (the first group commit after it would too, but not before a crash).
#[tokio::test]
async fn given_segments_removed_by_recovery_when_power_is_lost_again_should_stay_removed() {
    let mut cut = 0;
    for seed in 0..128u64 {
        let root = tempfile::tempdir().unwrap();
        let fs = crate::fs::FaultFs::new(root.path()).unwrap();
        let dir = root.path().join("bucket-0");
        let settings = LogSettings {
            policy: SegmentPolicy { segment_bytes: 1024, segment_ms: u64::MAX / 2 },
            durability: Durability::Sync,
            clock: system_clock(),
            fs: Arc::new(fs.clone()),
            tail_cache: super::TailCache::disabled(),
        };
        let open = || BucketLog::open(&dir, 0, "test/bucket-0".into(), &settings).unwrap().0;
        let mut encoder = BatchEncoder::new(Compression::None).unwrap();
        let segments =
            || std::fs::read_dir(&dir).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "log")).count();
        let retried = Some(BatchIdentity { writer_id: 1, sequence: 1 });
        // Batches of 10 rows all take the same bytes: fill the first segment with synced ones
        // but the last, then the retried batch rolls into a second segment.
        let log = open();
        let first = log.append_unconfirmed(&ids(0, 10), 1, None, &mut encoder).unwrap();
        log.wait_durable(first.end_offset()).await.unwrap();
        let per_segment = 1024 / std::fs::metadata(dir.join(segment::segment_file_name(0))).unwrap().len() as i64;
        for b in 1..per_segment {
            let a = log.append_unconfirmed(&ids(b * 10, 10), 1, None, &mut encoder).unwrap();
            if b + 1 < per_segment {
                log.wait_durable(a.end_offset()).await.unwrap();
            }
        }
        let rolled = log.append_unconfirmed(&ids(per_segment * 10, 10), 1, retried, &mut encoder).unwrap();
        assert_eq!((segments(), rolled.base_offset), (2, per_segment as u64 * 10), "the retried batch opened the second segment");
        fs.sync_dir(&dir).unwrap();
        drop(log);
        fs.simulate_power_loss(seed).unwrap();
        fs.reset();
        let log = open();
        if segments() != 1 || log.next_offset() != rolled.base_offset - 10 {
            continue; // the first segment kept its unsynced batch: nothing was cut
        }
        cut += 1;
        // The writer resends its batch: it lands where the removed segment began.
        let resent = log.append_unconfirmed(&ids(per_segment * 10, 10), 1, retried, &mut encoder).unwrap();
        assert_eq!(resent.end_offset(), rolled.base_offset);
        drop(log);
        let loss = fs.simulate_power_loss(seed.wrapping_mul(31).wrapping_add(7)).unwrap();
        fs.reset();
        let read = read_all(&open()).unwrap_or_else(|e| panic!("seed {seed}: {e}; {loss}"));
        let unique: std::collections::BTreeSet<i64> = read.iter().copied().collect();
        assert_eq!(unique.len(), read.len(), "seed {seed}: a row is stored twice ({} rows read); {loss}", read.len());
    }
    assert!(cut > 0, "some power loss cut the first segment");
}

/// Found with the power-loss suite (docs/durability.md, "Bugs it found"): a power loss may
/// leave garbage or zeros inside the unsynced bytes of the active segment with intact unsynced
/// entries after it (dirty pages reach the disk in any order). The recovery point tells those
/// bytes from synced ones: the tail is cut there, and no DATA_LOSS is served for offsets that
/// were never acknowledged.
#[tokio::test]
async fn given_garbage_inside_unsynced_entries_when_recovered_should_cut_it_not_report_data_loss() {
    for seed in 0..400u64 {
        let root = tempfile::tempdir().unwrap();
        let fs = crate::fs::FaultFs::new(root.path()).unwrap();
        let dir = root.path().join("bucket-0");
        let settings = LogSettings {
            policy: SegmentPolicy { segment_bytes: 1 << 20, segment_ms: u64::MAX / 2 },
            durability: Durability::Sync,
            clock: system_clock(),
            fs: Arc::new(fs.clone()),
            tail_cache: super::TailCache::disabled(),
        };
        let mut encoder = BatchEncoder::new(Compression::None).unwrap();
        let log = BucketLog::open(&dir, 0, "test/bucket-0".into(), &settings).unwrap().0;
        let acked = log.append_unconfirmed(&ids(0, 10), 1, None, &mut encoder).unwrap();
        log.wait_durable(acked.end_offset()).await.unwrap();
        // Three entries written, none fsynced (nor acknowledged).
        for b in 1..4 {
            log.append_unconfirmed(&ids(b * 10, 10), 1, None, &mut encoder).unwrap();
        }
        drop(log);
        let loss = fs.simulate_power_loss(seed).unwrap();
        fs.reset();
        let (log, report) = BucketLog::open(&dir, 0, "test/bucket-0".into(), &settings).unwrap();
        assert_eq!(report.corrupt_ranges, 0, "seed {seed}: nothing acknowledged was damaged; {loss}");
        read_all(&log).unwrap_or_else(|e| panic!("seed {seed}: {e}; {loss}"));
    }
}
