//! `log.scan_message_bytes`: a stored batch larger than the message size is sent as row ranges
//! of it — the same rows in the same order, each message with the offset of its first row —
//! whether the batch comes from the tail cache or from a segment, full width, projected, with
//! metadata columns, or cut by a scan's range and limit; damaged segment bytes are still
//! DATA_LOSS; 0 sends every stored batch whole, and so do compressed tables (their buffers are
//! compressed whole).

mod common;

use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use common::*;
use std::os::unix::fs::FileExt;
use strom_flight_api::{EndPosition, LogScan, StartPosition};
use strom_server::engine::ScanChunk;
use strom_server::Error;

/// The smallest message size the node accepts.
const MESSAGE_BYTES: usize = 64 * 1024;
/// Three stored batches of ~600 KB each: ~10 messages each at 64 KiB.
const BATCH_ROWS: i64 = 20_000;
const BATCHES: i64 = 3;

/// A fixture whose table stores batches uncompressed (the node's default for new tables is ZSTD).
fn uncompressed() -> FixtureBuilder {
    EngineFixture::builder().option("table.log.arrow.compression.type", "NONE")
}

async fn append_all(f: &EngineFixture) {
    for i in 0..BATCHES {
        f.append(rows(i * BATCH_ROWS, BATCH_ROWS as usize), None).await.unwrap();
    }
}

fn scans() -> Vec<(&'static str, LogScan)> {
    let full = EngineFixture::full_scan;
    vec![
        ("full width", full()),
        ("score, id", LogScan { columns: Some(vec!["score".into(), "id".into()]), ..full() }),
        ("name with metadata columns", LogScan { columns: Some(vec!["name".into(), "id".into()]), metadata_columns: true, ..full() }),
        (
            "offsets 5003..47001",
            LogScan { from: StartPosition::Offset { offset: 5003 }, to: Some(EndPosition::Offset { offset: 47_001 }), ..full() },
        ),
        ("limit 33333", LogScan { limit: Some(33_333), ..full() }),
    ]
}

/// Checks that the messages hold consecutive rows from the scan's start, each message's
/// `base_offset` that of its first row, every value the one appended for its offset (`rows`:
/// id i, name "name-i", score 10 i), and no message body much above the message size.
fn check(what: &str, scan: &LogScan, messages: &[(ScanChunk, RecordBatch)]) -> usize {
    let mut next = match scan.from {
        StartPosition::Offset { offset } => offset,
        _ => 0,
    };
    let end = match scan.to {
        Some(EndPosition::Offset { offset }) => offset,
        _ => (BATCHES * BATCH_ROWS) as u64,
    };
    let end = scan.limit.map_or(end, |l| end.min(next + l));
    for (chunk, batch) in messages {
        assert_eq!(chunk.base_offset, next, "{what}: each message starts where the previous one ended");
        assert_eq!(chunk.rows, batch.num_rows() as u64, "{what}");
        // A batch is cut into ranges of equally many rows (a multiple of 8): where values are
        // longer (later names here), a range may pass the size by a little.
        assert!(chunk.message.body.len() <= MESSAGE_BYTES * 11 / 10, "{what}: a body of {} bytes", chunk.message.body.len());
        let ids: Vec<i64> = (next as i64..next as i64 + batch.num_rows() as i64).collect();
        for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
            match field.name().as_str() {
                "id" | "_offset" => assert_eq!(int64(column).values().to_vec(), ids, "{what}: {}", field.name()),
                "score" => assert_eq!(int64(column).values().to_vec(), ids.iter().map(|i| i * 10).collect::<Vec<_>>(), "{what}"),
                "name" => {
                    let names = column.as_any().downcast_ref::<StringArray>().unwrap();
                    let want: Vec<String> = ids.iter().map(|i| format!("name-{i}")).collect();
                    assert_eq!(names.iter().map(|n| n.unwrap().to_string()).collect::<Vec<_>>(), want, "{what}: name");
                }
                _ => {}
            }
        }
        next += chunk.rows;
    }
    assert_eq!(next, end, "{what}: every row up to the end");
    messages.len()
}

fn int64(column: &arrow_array::ArrayRef) -> &Int64Array {
    column.as_any().downcast_ref::<Int64Array>().unwrap()
}

#[tokio::test]
async fn given_batches_larger_than_the_message_size_when_scanned_should_send_consecutive_row_ranges_of_them() {
    for (source, cache_bytes) in [("tail cache", 1u64 << 30), ("segments", 0)] {
        let f = uncompressed().scan_message_bytes(MESSAGE_BYTES).tail_cache_bytes(cache_bytes).open();
        append_all(&f).await;
        for (what, scan) in scans() {
            let what = format!("{what} from the {source}");
            let messages = f.scan(scan.clone()).await.unwrap();
            let sent = check(&what, &scan, &messages);
            assert!(sent as i64 >= 2 * BATCHES, "{what}: {sent} messages: the stored batches were cut");
        }
    }
}

#[tokio::test]
async fn given_a_message_size_of_zero_or_a_compressed_table_when_scanned_should_send_each_stored_batch_whole() {
    for (what, f) in [
        ("message size 0", uncompressed().scan_message_bytes(0).open()),
        (
            "ZSTD table",
            EngineFixture::builder().option("table.log.arrow.compression.type", "ZSTD").scan_message_bytes(MESSAGE_BYTES).open(),
        ),
    ] {
        append_all(&f).await;
        let messages = f.scan(EngineFixture::full_scan()).await.unwrap();
        let sizes: Vec<u64> = messages.iter().map(|(chunk, _)| chunk.rows).collect();
        assert_eq!(sizes, vec![BATCH_ROWS as u64; BATCHES as usize], "{what}");
    }
}

#[tokio::test]
async fn given_a_damaged_segment_when_a_cut_scan_reads_it_should_fail_with_data_loss() {
    let f = uncompressed().scan_message_bytes(MESSAGE_BYTES).tail_cache_bytes(0).open();
    f.append(rows(0, BATCH_ROWS as usize), None).await.unwrap();
    let segment = &f.segment_files(0)[0];
    let file = std::fs::OpenOptions::new().read(true).write(true).open(segment).unwrap();
    // Near the end of the body: the last column (`score`) is stored last.
    let at = file.metadata().unwrap().len() - 4096;
    let mut b = [0u8; 1];
    file.read_exact_at(&mut b, at).unwrap();
    file.write_all_at(&[b[0] ^ 0x10], at).unwrap();
    for scan in [EngineFixture::full_scan(), LogScan { columns: Some(vec!["score".into()]), ..EngineFixture::full_scan() }] {
        let err = f.scan(scan.clone()).await.unwrap_err();
        assert!(matches!(err, Error::DataLoss { .. }), "{:?}: {err}", scan.columns);
    }
    // A column whose bytes are intact is still served (a projection checks only its columns).
    let ids = f.scan(LogScan { columns: Some(vec!["id".into()]), ..EngineFixture::full_scan() }).await.unwrap();
    assert_eq!(ids.iter().map(|(c, _)| c.rows).sum::<u64>(), BATCH_ROWS as u64);
}

#[tokio::test]
async fn given_a_ticket_with_message_bytes_when_scanned_should_use_it_over_the_node_setting() {
    let whole_by_default = uncompressed().scan_message_bytes(0).open();
    append_all(&whole_by_default).await;
    let asked = LogScan { message_bytes: Some(MESSAGE_BYTES as u64), ..EngineFixture::full_scan() };
    let messages = whole_by_default.scan(asked.clone()).await.unwrap();
    assert!(check("asked for 64 KiB", &asked, &messages) as i64 >= 2 * BATCHES, "the ticket's size applies");

    let cut_by_default = uncompressed().scan_message_bytes(MESSAGE_BYTES).open();
    append_all(&cut_by_default).await;
    let whole = LogScan { message_bytes: Some(0), ..EngineFixture::full_scan() };
    let messages = cut_by_default.scan(whole).await.unwrap();
    assert_eq!(messages.len() as i64, BATCHES, "0 in the ticket sends whole batches");
}

#[tokio::test]
async fn given_a_message_size_below_the_minimum_when_scanned_should_be_refused_naming_it() {
    let f = uncompressed().open();
    append_all(&f).await;
    let err = f.scan(LogScan { message_bytes: Some(1000), ..EngineFixture::full_scan() }).await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    assert!(err.to_string().contains("\"message_bytes\"") && err.to_string().contains("1000"), "{err}");
}
