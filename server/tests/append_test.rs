//! Appends: idempotent retries, sequence gaps, group commit, routing, durability modes.

mod common;

use common::*;
use strom_server::config::Durability;
use strom_server::engine::BatchIdentity;
use strom_server::engine::StorageEngine;
use strom_server::Error;

fn id(writer_id: i64, sequence: i64) -> Option<BatchIdentity> {
    Some(BatchIdentity { writer_id, sequence })
}

#[tokio::test]
async fn given_retried_sequence_when_appended_should_return_original_offsets_and_store_once() {
    let f = EngineFixture::builder().buckets(4).open();
    let first = f.append(rows(0, 100), id(7, 0)).await.unwrap();
    f.append(rows(100, 100), id(7, 1)).await.unwrap();
    let retry = f.append(rows(0, 100), id(7, 0)).await.unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.buckets, first.buckets, "a retry answers with the original offsets");
    assert_eq!(ids(&f.scan(EngineFixture::full_scan()).await.unwrap()), (0..200).collect::<Vec<_>>());
}

#[tokio::test]
async fn given_retry_after_restart_when_appended_should_still_be_deduplicated() {
    let mut f = EngineFixture::builder().buckets(2).open();
    let first = f.append(rows(0, 50), id(3, 10)).await.unwrap();
    f.reopen();
    let retry = f.append(rows(0, 50), id(3, 10)).await.unwrap();
    assert!(retry.duplicate && retry.buckets == first.buckets);
    assert_eq!(ids(&f.scan(EngineFixture::full_scan()).await.unwrap()).len(), 50);
}

#[tokio::test]
async fn given_sequence_gap_when_appended_should_fail_precondition_and_store_nothing() {
    let f = EngineFixture::builder().open();
    f.append(rows(0, 10), id(1, 0)).await.unwrap();
    let err = f.append(rows(10, 10), id(1, 2)).await.unwrap_err();
    assert!(matches!(err, Error::FailedPrecondition(_)), "{err}");
    assert!(err.to_string().contains("expected 1"), "{err}");
    assert_eq!(ids(&f.scan(EngineFixture::full_scan()).await.unwrap()).len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_concurrent_sync_appends_when_acked_should_all_be_durable_and_gap_free() {
    // Small segments: the concurrent appends also roll (and seal) segments between group commits.
    let mut f = EngineFixture::builder().durability(Durability::Sync).segment_bytes(8 * 1024).fault_fs().open();
    let mut acked: Vec<i64> = vec![];
    for round in 0..3i64 {
        let tasks: Vec<_> = (0..16)
            .map(|w| {
                let engine = f.engine.clone();
                tokio::spawn(async move {
                    let mut acks = vec![];
                    for s in 0..10 {
                        let append = strom_flight_api::WriteCommand::append(DB, TABLE);
                        let first = round * 100_000 + w * 1000 + s * 10;
                        let ack = common::write(engine.as_ref(), &append, rows(first, 10), id(w, round * 10 + s)).await.unwrap();
                        acks.push((first, ack));
                    }
                    acks
                })
            })
            .collect();
        let mut offsets: Vec<u64> = vec![];
        for task in tasks {
            for (first, ack) in task.await.unwrap() {
                offsets.push(ack.buckets[0].base_offset);
                acked.extend(first..first + 10);
            }
        }
        offsets.sort_unstable();
        let base = round as u64 * 1600;
        assert_eq!(offsets, (0..160).map(|i| base + i * 10).collect::<Vec<u64>>(), "every batch got its own gap-free range");
        assert_eq!(f.high_watermark(0), base + 1600, "acked appends are visible");
        // Everything acked was covered by an fdatasync: a power loss takes none of it.
        let (next, report) = f.power_loss(round as u64);
        f = next;
        acked.sort_unstable();
        assert_eq!(ids(&f.scan(EngineFixture::full_scan()).await.unwrap()), acked, "round {round}: acked rows after {report}");
        assert_eq!(f.high_watermark(0), base + 1600, "round {round}: no offset lost or added; {report}");
    }
}

#[tokio::test]
async fn given_keyed_table_when_appended_should_route_each_key_to_one_bucket() {
    let f = EngineFixture::builder().buckets(4).open();
    let a = f.append(rows(0, 1000), None).await.unwrap();
    assert_eq!(a.buckets.len(), 4);
    let b = f.append(rows(0, 1000), None).await.unwrap();
    let counts = |ack: &strom_flight_api::PutAck| ack.buckets.iter().map(|b| (b.bucket, b.count)).collect::<Vec<_>>();
    assert_eq!(counts(&a), counts(&b), "the same keys land in the same buckets");
}

#[tokio::test]
async fn given_os_durability_when_appended_should_be_visible_at_once_and_synced_by_flush() {
    let (mut unflushed_lost, mut unflushed_kept) = (0, 0);
    for seed in 0..16 {
        let f = EngineFixture::builder().durability(Durability::Os).fault_fs().open();
        let fs = f.fault.clone().unwrap();
        let syncs = fs.file_syncs();
        f.append(rows(0, 10), None).await.unwrap();
        assert_eq!(f.high_watermark(0), 10, "visible at once");
        assert_eq!(fs.file_syncs(), syncs, "acknowledged without an fsync");
        f.engine.sync_all().await.unwrap();
        assert!(fs.file_syncs() > syncs, "the flush fsynced the segment");
        f.append(rows(10, 10), None).await.unwrap();
        let (f, report) = f.power_loss(seed);
        // What the flush synced survives; the batch acked after it (os mode: not yet fsynced)
        // is whole or gone, never torn.
        let got = ids(&f.scan(EngineFixture::full_scan()).await.unwrap());
        if got == (0..10).collect::<Vec<_>>() {
            unflushed_lost += 1;
        } else {
            assert_eq!(got, (0..20).collect::<Vec<_>>(), "seed {seed}: {report}");
            unflushed_kept += 1;
        }
        assert_eq!(f.high_watermark(0), got.len() as u64, "seed {seed}: {report}");
    }
    assert!(unflushed_lost > 0, "os mode promises nothing for unflushed acks: some power loss takes them");
    assert!(unflushed_kept > 0, "and some keeps them");
}

/// The segment size an index file says it describes (its body starts with it; see
/// docs/durability.md: an index only ever describes data that is on disk).
fn indexed_size(index: &std::path::Path) -> u64 {
    let bytes = std::fs::read(index).unwrap();
    let body = &bytes[strom_server::fs::ENVELOPE_HEADER_LEN..];
    u64::from_le_bytes(body[..8].try_into().unwrap())
}

#[tokio::test]
async fn given_os_mode_rolls_when_flushed_should_seal_segments_and_survive_reopen() {
    let f = EngineFixture::builder().durability(Durability::Os).segment_bytes(2 * 1024).fault_fs().open();
    for i in 0..12 {
        f.append(rows(i * 100, 100), None).await.unwrap();
    }
    let segments = f.segment_files(0);
    assert!(segments.len() > 2, "rolled: {segments:?}");
    let indexed = |f: &EngineFixture| f.segment_files(0).iter().filter(|s| s.with_extension("index").exists()).count();
    assert_eq!(indexed(&f), 0, "os-mode rolls leave fsync and index to the flusher");
    f.engine.sync_all().await.unwrap();
    assert_eq!(indexed(&f), segments.len() - 1, "the flush sealed every rolled segment");
    // Sealed means durable: a power loss now finds nothing unsynced but the recovery point
    // (rewritten without an fsync by design: docs/durability.md), and every index still
    // describes its whole segment.
    let (mut f, report) = f.power_loss(7);
    let unsynced_data = report.files.iter().any(|loss| !loss.path.ends_with("recovery.point"));
    assert!(!unsynced_data && report.undone.is_empty(), "the flush left something unsynced: {report}");
    assert_eq!(f.segment_files(0), segments, "the same segments after the power loss");
    for segment in &segments[..segments.len() - 1] {
        let size = std::fs::metadata(segment).unwrap().len();
        assert_eq!(indexed_size(&segment.with_extension("index")), size, "{}", segment.display());
    }
    assert_eq!(
        ids(&f.scan(EngineFixture::full_scan()).await.unwrap()),
        (0..1200).collect::<Vec<_>>(),
        "sealed segments readable after the power loss"
    );
    f.reopen();
    assert_eq!(ids(&f.scan(EngineFixture::full_scan()).await.unwrap()), (0..1200).collect::<Vec<_>>(), "and after a reopen");
}

/// A record-batch message as a client sends it: 64-byte aligned buffers (pyarrow's layout),
/// uncompressed — not what the node's own encoder (8-byte alignment) would make of the batch.
fn sent_message(batch: &arrow_array::RecordBatch) -> strom_server::engine::IpcMessage {
    use arrow_ipc::writer::{CompressionContext, DictionaryTracker, IpcDataGenerator, IpcWriteOptions};
    let options = IpcWriteOptions::try_new(64, false, arrow_ipc::MetadataVersion::V5).unwrap();
    let (_, encoded) =
        IpcDataGenerator {}.encode(batch, &mut DictionaryTracker::new(false), &options, &mut CompressionContext::default()).unwrap();
    strom_server::engine::IpcMessage { header: encoded.ipc_message.into(), body: bytes::Bytes::from(encoded.arrow_data).into() }
}

async fn append_as_sent(f: &EngineFixture, batch: arrow_array::RecordBatch) -> bytes::Bytes {
    let sent = sent_message(&batch);
    let body = sent.body.clone().into_contiguous();
    let writer = f.engine.open_writer(&strom_flight_api::WriteCommand::append(DB, TABLE), true).unwrap();
    writer.write_as_sent(batch, sent, None).await.unwrap().durable().await.unwrap();
    body
}

#[tokio::test]
async fn given_message_with_the_tables_compression_when_appended_should_store_and_serve_its_bytes() {
    let f = EngineFixture::builder().buckets(1).option("table.log.arrow.compression.type", "NONE").open();
    let sent = append_as_sent(&f, rows(0, 1000)).await;
    let scanned = f.scan(EngineFixture::full_scan()).await.unwrap();
    assert_eq!(ids(&scanned), (0..1000).collect::<Vec<_>>());
    let served = scanned[0].0.message.body.clone().into_contiguous();
    assert_eq!(served, sent, "stored as sent (not encoded again, which would pad buffers to 8 bytes) and served as stored");
    assert_eq!(scanned[0].1, rows(0, 1000));
}

#[tokio::test]
async fn given_message_the_table_must_compress_when_appended_should_be_encoded_with_the_tables_codec() {
    let f = EngineFixture::builder().buckets(1).option("table.log.arrow.compression.type", "ZSTD").open();
    let sent = append_as_sent(&f, rows(0, 1000)).await;
    let scanned = f.scan(EngineFixture::full_scan()).await.unwrap();
    let served = scanned[0].0.message.body.clone().into_contiguous();
    assert!(served.len() < sent.len() / 2, "compressed: {} of {} bytes", served.len(), sent.len());
    assert_eq!(scanned[0].1, rows(0, 1000));
}
