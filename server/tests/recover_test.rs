//! Recovery: torn tails are truncated, corruption is refused as DataLoss (never skipped),
//! indexes are rebuilt, and offsets continue without gaps after a restart.

mod common;

use common::*;
use std::io::Write;
use std::os::unix::fs::FileExt;
use strom_flight_api::{LogScan, StartPosition};
use strom_server::log::format::{BatchHeader, HEADER_LEN};
use strom_server::log::ipc::BatchLayout;
use strom_server::Error;

async fn append_batches(f: &EngineFixture, batches: usize, rows_per_batch: usize) {
    let table = f.table();
    for i in 0..batches {
        table.append(rows((i * rows_per_batch) as i64, rows_per_batch), None).await.unwrap();
    }
}

#[tokio::test]
async fn given_torn_tail_when_reopened_should_truncate_and_keep_every_acked_batch() {
    let mut f = EngineFixture::builder().open();
    append_batches(&f, 5, 100).await;
    let segment = f.segment_files(0).pop().unwrap();
    let good_len = std::fs::metadata(&segment).unwrap().len();
    // A torn write: the first half of a copy of the last entry.
    let bytes = std::fs::read(&segment).unwrap();
    let header = BatchHeader::decode(&bytes, "t").unwrap();
    let torn = &bytes[..header.entry_len() / 2];
    std::fs::OpenOptions::new().append(true).open(&segment).unwrap().write_all(torn).unwrap();

    f.reopen();
    assert_eq!(std::fs::metadata(&segment).unwrap().len(), good_len, "the torn tail is cut");
    let scanned = f.scan(EngineFixture::full_scan()).await.unwrap();
    assert_eq!(ids(&scanned), (0..500).collect::<Vec<_>>());
    let ack = f.table().append(rows(500, 10), None).await.unwrap();
    assert_eq!(ack.buckets[0].base_offset, 500, "offsets continue without a gap");
}

#[tokio::test]
async fn given_zero_filled_tail_when_reopened_should_truncate() {
    let mut f = EngineFixture::builder().open();
    append_batches(&f, 3, 50).await;
    let segment = f.segment_files(0).pop().unwrap();
    let good_len = std::fs::metadata(&segment).unwrap().len();
    std::fs::OpenOptions::new().append(true).open(&segment).unwrap().write_all(&[0u8; 4096]).unwrap();
    f.reopen();
    assert_eq!(std::fs::metadata(&segment).unwrap().len(), good_len);
    assert_eq!(ids(&f.scan(EngineFixture::full_scan()).await.unwrap()).len(), 150);
}

/// Flips one byte inside the `id` column of the first batch of `segment`.
fn flip_id_byte(segment: &std::path::Path, schema: &arrow_schema::SchemaRef) {
    let bytes = std::fs::read(segment).unwrap();
    let header = BatchHeader::decode(&bytes, "t").unwrap();
    let meta_start = HEADER_LEN + header.column_count as usize * 4;
    let layout = BatchLayout::parse(&bytes[meta_start..meta_start + header.meta_len as usize], schema).unwrap();
    let (start, end) = layout.column_ranges()[0];
    let at = (header.body_start() + (start + end) / 2) as u64;
    let file = std::fs::OpenOptions::new().read(true).write(true).open(segment).unwrap();
    let mut b = [0u8; 1];
    file.read_exact_at(&mut b, at).unwrap();
    file.write_all_at(&[b[0] ^ 0x40], at).unwrap();
}

#[tokio::test]
async fn given_flipped_bit_in_sealed_segment_when_scanned_should_answer_data_loss_naming_the_range() {
    let mut f = EngineFixture::builder().segment_bytes(2 * 1024).open();
    append_batches(&f, 12, 100).await;
    let segments = f.segment_files(0);
    assert!(segments.len() > 2, "small segments rolled: {segments:?}");
    flip_id_byte(&segments[0], &f.table().schema());
    f.reopen();

    let err = f.scan(EngineFixture::full_scan()).await.unwrap_err();
    assert!(matches!(err, Error::DataLoss { .. }), "{err}");
    assert!(err.to_string().contains("offsets 0..100"), "names the damaged range: {err}");
    let with_id = LogScan { columns: Some(vec!["score".into(), "id".into()]), ..EngineFixture::full_scan() };
    assert!(matches!(f.scan(with_id).await.unwrap_err(), Error::DataLoss { .. }), "a projection reading the damaged column is refused too");
    // Columns whose bytes are intact can still be served: their own CRCs check out.
    let names = f.scan(LogScan { columns: Some(vec!["name".into()]), ..EngineFixture::full_scan() }).await.unwrap();
    assert_eq!(names.iter().map(|(_, b)| b.num_rows()).sum::<usize>(), 1200);
    // Data after the damaged batch is still served.
    let after = f.scan(LogScan { from: StartPosition::Offset { offset: 100 }, ..EngineFixture::full_scan() }).await.unwrap();
    assert_eq!(ids(&after), (100..1200).collect::<Vec<_>>());
}

#[tokio::test]
async fn given_damaged_batch_inside_active_segment_when_reopened_should_keep_later_batches_and_refuse_the_range() {
    let mut f = EngineFixture::builder().open();
    append_batches(&f, 4, 100).await;
    let segment = f.segment_files(0).pop().unwrap();
    flip_id_byte(&segment, &f.table().schema());
    let len = std::fs::metadata(&segment).unwrap().len();
    f.reopen();
    assert_eq!(
        std::fs::metadata(&segment).unwrap().len(),
        len,
        "valid batches after the damage mean it is not a torn tail: nothing is cut"
    );
    let err = f.scan(EngineFixture::full_scan()).await.unwrap_err();
    assert!(err.to_string().contains("0..100"), "{err}");
    let after = f.scan(LogScan { from: StartPosition::Offset { offset: 100 }, ..EngineFixture::full_scan() }).await.unwrap();
    assert_eq!(ids(&after), (100..400).collect::<Vec<_>>());
    assert_eq!(f.table().append(rows(400, 1), None).await.unwrap().buckets[0].base_offset, 400);
}

#[tokio::test]
async fn given_missing_or_damaged_index_files_when_reopened_should_rebuild_them() {
    let mut f = EngineFixture::builder().segment_bytes(2 * 1024).open();
    append_batches(&f, 10, 100).await;
    let indexes: Vec<_> = f.segment_files(0).iter().map(|s| s.with_extension("index")).filter(|p| p.exists()).collect();
    assert!(indexes.len() >= 2, "sealed segments have index files");
    std::fs::remove_file(&indexes[0]).unwrap();
    std::fs::write(&indexes[1], b"garbage").unwrap();
    f.reopen();
    assert_eq!(ids(&f.scan(EngineFixture::full_scan()).await.unwrap()), (0..1000).collect::<Vec<_>>());
}

#[tokio::test]
async fn given_unsynced_os_mode_appends_when_engine_dropped_should_keep_what_reached_the_file() {
    // Dropping the engine without a graceful shutdown is what a process crash leaves behind:
    // the page cache survives a process crash, so os-mode acks are kept.
    let mut f = EngineFixture::builder().durability(strom_server::config::Durability::Os).open();
    append_batches(&f, 7, 10).await;
    f.reopen();
    assert_eq!(ids(&f.scan(EngineFixture::full_scan()).await.unwrap()), (0..70).collect::<Vec<_>>());
}
