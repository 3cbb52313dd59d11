//! Recovery: torn tails are truncated, corruption is refused as DataLoss (never skipped),
//! indexes are rebuilt, and offsets continue without gaps after a restart.

mod common;

use common::*;
use std::io::Write;
use std::os::unix::fs::FileExt;
use strom_flight_api::{LogScan, StartPosition};
use strom_server::Error;

async fn append_batches(f: &EngineFixture, batches: usize, rows_per_batch: usize) {
    for i in 0..batches {
        f.append(rows((i * rows_per_batch) as i64, rows_per_batch), None).await.unwrap();
    }
}

/// The documented on-disk layout of a batch entry (docs/architecture.md, "A batch entry"),
/// read here independently of the node's own code: a 64-byte header (`STRB`, version, codec,
/// column count u16 @6, meta length u32 @8, body length u32 @12, ...), one CRC32C per column,
/// the Arrow IPC message padded to 8 bytes, then the body.
struct EntryLayout {
    column_count: usize,
    meta_len: usize,
    body_len: usize,
}

const HEADER_LEN: usize = 64;

impl EntryLayout {
    fn read(bytes: &[u8]) -> Self {
        assert_eq!(&bytes[0..4], b"STRB", "an entry starts with its magic");
        let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap()) as usize;
        Self { column_count: u16::from_le_bytes([bytes[6], bytes[7]]) as usize, meta_len: u32_at(8), body_len: u32_at(12) }
    }

    fn meta_start(&self) -> usize {
        HEADER_LEN + self.column_count * 4
    }

    fn body_start(&self) -> usize {
        self.meta_start() + self.meta_len.div_ceil(8) * 8
    }

    fn entry_len(&self) -> usize {
        self.body_start() + self.body_len
    }
}

/// The body byte range of the first column, from the entry's Arrow IPC message.
fn first_column_range(meta: &[u8]) -> (usize, usize) {
    let message = arrow_ipc::root_as_message(meta).unwrap();
    let buffers = message.header_as_record_batch().unwrap().buffers().unwrap();
    // The first column is a non-nested one: a validity and a values buffer.
    let first_two: Vec<(usize, usize)> =
        buffers.iter().take(2).map(|b| (b.offset() as usize, (b.offset() + b.length()) as usize)).collect();
    (first_two.iter().map(|r| r.0).min().unwrap(), first_two.iter().map(|r| r.1).max().unwrap())
}

#[tokio::test]
async fn given_torn_tail_when_reopened_should_truncate_and_keep_every_acked_batch() {
    let mut f = EngineFixture::builder().open();
    append_batches(&f, 5, 100).await;
    let segment = f.segment_files(0).pop().unwrap();
    let good_len = std::fs::metadata(&segment).unwrap().len();
    // A torn write: the first half of a copy of the last entry.
    let bytes = std::fs::read(&segment).unwrap();
    let torn = &bytes[..EntryLayout::read(&bytes).entry_len() / 2];
    std::fs::OpenOptions::new().append(true).open(&segment).unwrap().write_all(torn).unwrap();

    f.reopen();
    assert_eq!(std::fs::metadata(&segment).unwrap().len(), good_len, "the torn tail is cut");
    let scanned = f.scan(EngineFixture::full_scan()).await.unwrap();
    assert_eq!(ids(&scanned), (0..500).collect::<Vec<_>>());
    let ack = f.append(rows(500, 10), None).await.unwrap();
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
fn flip_id_byte(segment: &std::path::Path) {
    let bytes = std::fs::read(segment).unwrap();
    let entry = EntryLayout::read(&bytes);
    let (start, end) = first_column_range(&bytes[entry.meta_start()..entry.meta_start() + entry.meta_len]);
    let at = (entry.body_start() + (start + end) / 2) as u64;
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
    flip_id_byte(&segments[0]);
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
    flip_id_byte(&segment);
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
    assert_eq!(f.append(rows(400, 1), None).await.unwrap().buckets[0].base_offset, 400);
}

/// The documented price of a recovery point written without an fsync (docs/durability.md): when
/// the point is unknown, recovery cannot tell a bit flip in synced bytes of the active segment
/// from a torn write, and errs towards cutting — it never serves DATA_LOSS for bytes that may
/// never have been acknowledged.
#[tokio::test]
async fn given_damaged_batch_inside_active_segment_and_unknown_recovery_point_when_reopened_should_cut_from_the_damage() {
    let mut f = EngineFixture::builder().open();
    append_batches(&f, 4, 100).await;
    let segment = f.segment_files(0).pop().unwrap();
    let entry_len = EntryLayout::read(&std::fs::read(&segment).unwrap()).entry_len() as u64;
    // Damage the second batch; the point file's CRC no longer matches its body.
    let second = std::fs::read(&segment).unwrap()[entry_len as usize..].to_vec();
    let second_segment = segment.with_extension("second");
    std::fs::write(&second_segment, &second).unwrap();
    flip_id_byte(&second_segment);
    let file = std::fs::OpenOptions::new().write(true).open(&segment).unwrap();
    file.write_all_at(&std::fs::read(&second_segment).unwrap(), entry_len).unwrap();
    std::fs::remove_file(&second_segment).unwrap();
    let point = segment.parent().unwrap().join("recovery.point");
    let mut bytes = std::fs::read(&point).unwrap();
    *bytes.last_mut().unwrap() ^= 0x01;
    std::fs::write(&point, &bytes).unwrap();
    f.reopen();
    assert_eq!(std::fs::metadata(&segment).unwrap().len(), entry_len, "cut at the damaged batch, valid batches after it included");
    assert_eq!(ids(&f.scan(EngineFixture::full_scan()).await.unwrap()), (0..100).collect::<Vec<_>>());
    assert_eq!(f.append(rows(100, 1), None).await.unwrap().buckets[0].base_offset, 100, "offsets continue after the cut");
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

/// Regression (found by the power-loss suite's primary-key workload): an idempotent write that
/// changes nothing (a delete of an absent key) still stores an entry of no records, to keep its
/// sequence. Its ack waited for the offset the entry ends at — where it starts, already
/// durable — so it came before any fsync; a power loss took the entry, and the writer's next
/// batch was refused as a sequence gap.
#[tokio::test]
async fn given_acked_idempotent_write_that_changed_nothing_when_power_is_lost_should_keep_its_sequence() {
    use arrow_array::{ArrayRef, Int64Array, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};
    use std::sync::Arc;
    use strom_flight_api::{ColumnSpec, CreateTable, WriteCommand, WriteKind};
    use strom_server::engine::{BatchIdentity, StorageEngine};
    let batch = |columns: &[&str], id: i64| {
        let fields: Vec<Field> = columns.iter().map(|c| Field::new(*c, DataType::Int64, false)).collect();
        let arrays: Vec<ArrayRef> = columns.iter().map(|_| Arc::new(Int64Array::from(vec![id])) as ArrayRef).collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
    };
    let command = |write| WriteCommand { write, ..WriteCommand::append(DB, "pk") };
    let id = |sequence| Some(BatchIdentity { writer_id: 9, sequence });
    for seed in 0..16 {
        let f = EngineFixture::builder().fault_fs().open();
        f.engine
            .create_table(&CreateTable {
                database: DB.into(),
                table: "pk".into(),
                columns: vec![ColumnSpec::new("id", "BIGINT"), ColumnSpec::new("v", "BIGINT")],
                primary_key: vec!["id".into()],
                bucket_num: Some(1),
                ..Default::default()
            })
            .unwrap();
        // The writer is known to the table (a durable entry), then changes nothing twice.
        common::write(f.engine.as_ref(), &command(WriteKind::Upsert), batch(&["id", "v"], 100), id(0)).await.unwrap();
        for sequence in 1..3 {
            let ack = common::write(f.engine.as_ref(), &command(WriteKind::Delete), batch(&["id"], sequence), id(sequence)).await.unwrap();
            assert_eq!(ack.buckets.iter().map(|b| b.count).sum::<u64>(), 0, "deleting an absent key changes nothing");
        }
        let (f, report) = f.power_loss(seed);
        let next = common::write(f.engine.as_ref(), &command(WriteKind::Delete), batch(&["id"], 3), id(3)).await;
        assert!(next.is_ok(), "seed {seed}: the acked sequences 1 and 2 must survive: {:?}\n{report}", next.err());
    }
}
