//! Appends: idempotent retries, sequence gaps, group commit, routing, durability modes.

mod common;

use common::*;
use strom_server::config::Durability;
use strom_server::engine::BatchIdentity;
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

#[tokio::test]
async fn given_concurrent_sync_appends_when_acked_should_all_be_durable_and_gap_free() {
    let f = EngineFixture::builder().durability(Durability::Sync).open();
    let tasks: Vec<_> = (0..16)
        .map(|w| {
            let engine = f.engine.clone();
            tokio::spawn(async move {
                let mut acks = vec![];
                for s in 0..10 {
                    let append = strom_flight_api::WriteCommand::append(DB, TABLE);
                    acks.push(common::write(engine.as_ref(), &append, rows(w * 1000 + s * 10, 10), id(w, s)).await.unwrap());
                }
                acks
            })
        })
        .collect();
    let mut offsets: Vec<u64> = vec![];
    for task in tasks {
        offsets.extend(task.await.unwrap().iter().map(|a| a.buckets[0].base_offset));
    }
    offsets.sort_unstable();
    assert_eq!(offsets, (0..160).map(|i| i * 10).collect::<Vec<u64>>(), "every batch got its own gap-free range");
    assert_eq!(f.high_watermark(0), 1600, "acked appends are visible");
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
    let f = EngineFixture::builder().durability(Durability::Os).open();
    f.append(rows(0, 10), None).await.unwrap();
    assert_eq!(f.high_watermark(0), 10);
    f.engine.sync_all().await.unwrap();
    assert_eq!(ids(&f.scan(EngineFixture::full_scan()).await.unwrap()).len(), 10);
}

#[tokio::test]
async fn given_os_mode_rolls_when_flushed_should_seal_segments_and_survive_reopen() {
    let mut f = EngineFixture::builder().durability(Durability::Os).segment_bytes(2 * 1024).open();
    for i in 0..12 {
        f.append(rows(i * 100, 100), None).await.unwrap();
    }
    let segments = f.segment_files(0);
    assert!(segments.len() > 2, "rolled: {segments:?}");
    let indexed = |f: &EngineFixture| f.segment_files(0).iter().filter(|s| s.with_extension("index").exists()).count();
    assert_eq!(indexed(&f), 0, "os-mode rolls leave fsync and index to the flusher");
    f.engine.sync_all().await.unwrap();
    assert_eq!(indexed(&f), segments.len() - 1, "the flush sealed every rolled segment");
    f.reopen();
    assert_eq!(ids(&f.scan(EngineFixture::full_scan()).await.unwrap()), (0..1200).collect::<Vec<_>>());
}
