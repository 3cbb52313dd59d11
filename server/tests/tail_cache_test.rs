//! The tail cache (`log.tail_cache_bytes`): recent appends served from memory give exactly
//! what the same reads give from the segment files, whatever mix of cached and uncached
//! batches a read step covers; damage on disk is still caught for every read that comes from
//! a segment.

mod common;

use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use common::*;
use std::os::unix::fs::FileExt;
use strom_flight_api::{ColumnSpec, CreateTable, EndPosition, LogScan, StartPosition, TailCacheHealth, WriteCommand, WriteKind};
use strom_server::engine::{BatchIdentity, StorageEngine};
use strom_server::Error;

const BATCHES: i64 = 20;
const ROWS: i64 = 100;

async fn append_all(f: &EngineFixture) {
    for i in 0..BATCHES {
        f.append(rows(i * ROWS, ROWS as usize), None).await.unwrap();
    }
}

fn tail_cache(f: &EngineFixture) -> TailCacheHealth {
    f.engine.health().tail_cache
}

/// The reads the cache must serve exactly: full width (verbatim), pruned and reordered
/// columns, a start inside a batch and an end inside another (decoded and cut), a row limit,
/// and the metadata columns.
fn reads() -> Vec<(&'static str, LogScan)> {
    let full = EngineFixture::full_scan;
    vec![
        ("full width", full()),
        ("score, id", LogScan { columns: Some(vec!["score".into(), "id".into()]), ..full() }),
        ("name", LogScan { columns: Some(vec!["name".into()]), ..full() }),
        (
            "offsets 150..1730",
            LogScan { from: StartPosition::Offset { offset: 150 }, to: Some(EndPosition::Offset { offset: 1730 }), ..full() },
        ),
        ("limit 333", LogScan { limit: Some(333), ..full() }),
        ("with metadata columns", LogScan { columns: Some(vec!["id".into()]), metadata_columns: true, ..full() }),
    ]
}

/// Checks every row a read returned against what was appended (`rows`: id i, name "name-i",
/// score 10 i) and, with metadata columns, that `_offset` is the row's offset.
fn check(what: &str, scan: &LogScan, batches: &[RecordBatch]) {
    let from = match scan.from {
        StartPosition::Offset { offset } => offset as i64,
        _ => 0,
    };
    let end = match scan.to {
        Some(EndPosition::Offset { offset }) => offset as i64,
        _ => BATCHES * ROWS,
    };
    let end = scan.limit.map_or(end, |l| end.min(from + l as i64));
    let mut next = from;
    for b in batches {
        let schema = b.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let wanted = scan.columns.clone().unwrap_or_else(|| vec!["id".into(), "name".into(), "score".into()]);
        assert_eq!(names[..wanted.len()], wanted.iter().map(String::as_str).collect::<Vec<_>>()[..], "{what}: columns");
        let expected: Vec<i64> = (next..next + b.num_rows() as i64).collect();
        for (name, column) in names.iter().zip(b.columns()) {
            match *name {
                "id" | "_offset" => {
                    assert_eq!(column.as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec(), expected, "{what}: {name}")
                }
                "score" => {
                    let scores = column.as_any().downcast_ref::<Int64Array>().unwrap();
                    assert_eq!(scores.values().to_vec(), expected.iter().map(|i| i * 10).collect::<Vec<_>>(), "{what}: score");
                }
                "name" => {
                    let names = column.as_any().downcast_ref::<StringArray>().unwrap();
                    assert_eq!(names.null_count(), 0);
                    assert_eq!(
                        names.iter().map(|n| n.unwrap().to_string()).collect::<Vec<_>>(),
                        expected.iter().map(|i| format!("name-{i}")).collect::<Vec<_>>(),
                        "{what}: name"
                    );
                }
                _ => {}
            }
        }
        next += b.num_rows() as i64;
    }
    assert_eq!(next, end, "{what}: rows {from}..{end}");
}

async fn run_reads(f: &EngineFixture) {
    for (what, scan) in reads() {
        let batches: Vec<RecordBatch> = f.scan(scan.clone()).await.unwrap().into_iter().map(|(_, b)| b).collect();
        check(what, &scan, &batches);
    }
}

#[tokio::test]
async fn given_recent_appends_when_read_every_way_should_serve_them_from_memory_exactly() {
    // Small segments: the reads cross segment boundaries.
    let f = EngineFixture::builder().segment_bytes(2 * 1024).open();
    append_all(&f).await;
    let segments = f.segment_files(0);
    assert!(segments.len() > 3, "segments rolled: {segments:?}");
    let before = tail_cache(&f);
    assert!(before.held_bytes > 0 && before.hits == 0, "{before:?}");
    run_reads(&f).await;
    let after = tail_cache(&f);
    assert!(after.hits > 0 && after.misses == 0, "every read came from the cache: {after:?}");
}

#[tokio::test]
async fn given_a_cache_smaller_than_the_table_when_read_should_mix_cached_and_stored_batches_exactly() {
    // Room for about five of the twenty batches: every read step covers both kinds.
    let probe = EngineFixture::builder().open();
    probe.append(rows(0, ROWS as usize), None).await.unwrap();
    let one_batch = tail_cache(&probe).held_bytes;
    let f = EngineFixture::builder().tail_cache_bytes(5 * one_batch + one_batch / 2).open();
    append_all(&f).await;
    run_reads(&f).await;
    let stats = tail_cache(&f);
    assert!(stats.hits > 0 && stats.misses > 0, "{stats:?}");
    assert!(stats.held_bytes <= stats.budget_bytes, "{stats:?}");
}

#[tokio::test]
async fn given_the_cache_turned_off_or_a_restart_when_read_should_read_every_batch_from_segments() {
    let f = EngineFixture::builder().tail_cache_bytes(0).open();
    append_all(&f).await;
    run_reads(&f).await;
    let stats = tail_cache(&f);
    assert_eq!((stats.hits, stats.held_bytes), (0, 0), "{stats:?}");
    let mut f = EngineFixture::builder().open();
    append_all(&f).await;
    f.reopen();
    run_reads(&f).await;
    let stats = tail_cache(&f);
    assert!(stats.hits == 0 && stats.misses > 0, "a restart starts with an empty cache: {stats:?}");
}

#[tokio::test]
async fn given_a_segment_damaged_on_disk_while_its_batches_are_cached_when_read_should_serve_the_appended_bytes_and_refuse_after_a_restart()
{
    let mut f = EngineFixture::builder().segment_bytes(2 * 1024).open();
    append_all(&f).await;
    let first = &f.segment_files(0)[0];
    let file = std::fs::OpenOptions::new().read(true).write(true).open(first).unwrap();
    let at = file.metadata().unwrap().len() / 2;
    let mut b = [0u8; 1];
    file.read_exact_at(&mut b, at).unwrap();
    file.write_all_at(&[b[0] ^ 0x40], at).unwrap();
    // What readers get while the batches are cached are the bytes the node appended.
    run_reads(&f).await;
    f.reopen();
    let err = f.scan(EngineFixture::full_scan()).await.unwrap_err();
    assert!(matches!(err, Error::DataLoss { .. }), "read from the segment, the damage is caught: {err}");
}

/// Regression (seen in CI: a Flink job restored from a savepoint never saw the rows written
/// after an idempotent upsert that changed nothing): such a write leaves a zero-record entry
/// at the offset the next entry starts at, and the cache answered that offset with no rows.
#[tokio::test]
async fn given_an_idempotent_upsert_that_changed_nothing_when_the_changelog_is_read_should_serve_every_later_change() {
    let f = EngineFixture::builder().open();
    f.engine
        .create_table(&CreateTable {
            database: DB.into(),
            table: "firsts".into(),
            columns: vec![
                ColumnSpec::new("id", "BIGINT").not_null(),
                ColumnSpec::new("name", "STRING"),
                ColumnSpec::new("score", "BIGINT"),
            ],
            primary_key: vec!["id".into()],
            bucket_num: Some(1),
            options: [("table.merge-engine".to_string(), "first_row".to_string())].into_iter().collect(),
            ..Default::default()
        })
        .unwrap();
    let mut upsert = WriteCommand::append(DB, "firsts");
    upsert.write = WriteKind::Upsert;
    let id = |sequence| Some(BatchIdentity { writer_id: 7, sequence });
    write(f.engine.as_ref(), &upsert, rows(0, 10), id(0)).await.unwrap();
    // first_row keeps the first row of key 3: nothing changes, a zero-record entry is logged.
    let ack = write(f.engine.as_ref(), &upsert, rows(3, 1), id(1)).await.unwrap();
    assert_eq!(ack.rows, 1, "{ack:?}");
    write(f.engine.as_ref(), &upsert, rows(10, 10), id(2)).await.unwrap();
    let changelog = LogScan { database: DB.into(), table: "firsts".into(), columns: Some(vec!["id".into()]), ..Default::default() };
    let read = common::scan(f.engine.as_ref(), &changelog).await.unwrap();
    assert_eq!(ids(&read), (0..20).collect::<Vec<_>>(), "every change once, the ones after the no-op included");
    assert!(tail_cache(&f).hits > 0, "{:?}", tail_cache(&f));
}
