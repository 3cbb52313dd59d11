//! Durability across restarts: a graceful SIGTERM keeps every row; a SIGKILL keeps every
//! acknowledged row. The catalog and the offsets survive too, and appends carry on.

use strom_flight_api::OffsetSpec;
use strom_integration::fixtures::*;

const BUCKETS: u32 = 4;

#[tokio::test]
async fn given_rows_when_sigterm_and_restart_should_keep_every_row_and_continue_offsets() {
    let mut f = EventsFixture::start(BUCKETS, 6, 50).await;
    let latest_before = f.offsets(OffsetSpec::Latest).await;

    let status = f.server.terminate().await;
    assert!(status.success(), "SIGTERM is a graceful shutdown with exit code 0, got {status}");
    f.server.restart().await;
    f.client = f.server.client().await;

    assert!(f.client.list_databases().await.unwrap().contains(&f.database));
    let info = f.client.get_table(&f.database, &f.table).await.unwrap();
    assert_eq!(info.bucket_num, BUCKETS);
    assert_eq!(f.offsets(OffsetSpec::Latest).await, latest_before, "the high watermarks survive");
    assert_eq!(f.count().await, 300);
    let scan = f.client.collect_log(f.scan()).await.unwrap();
    assert_eq!(sorted_rows(&batches_of(&scan)), sorted_rows(&f.written));

    // Appends after the restart continue each bucket's offsets.
    let ack = f.append(events_batch(5_000, 20)).await;
    for part in &ack.buckets {
        assert_eq!(part.base_offset, latest_before[&part.bucket], "bucket {} continues at its old high watermark", part.bucket);
    }
    let scan = f.client.collect_log(f.scan()).await.unwrap();
    assert_eq!(sorted_rows(&batches_of(&scan)), sorted_rows(&f.written));
}

#[tokio::test]
async fn given_acked_rows_when_kill9_and_restart_should_keep_every_acked_row() {
    let mut f = EventsFixture::start(BUCKETS, 0, 0).await;
    // Pipelined appends: everything acked must survive the crash.
    let mut writer = f.client.append_writer(&f.database, &f.table, Default::default());
    let mut pending = Vec::new();
    let batches: Vec<_> = (0..30).map(|i| events_batch(i * 20, 20)).collect();
    for b in &batches {
        pending.push(writer.append_unconfirmed(b.clone()).await.unwrap());
    }
    for ack in pending {
        ack.await.unwrap();
    }
    f.written.extend(batches);
    let latest_before = f.offsets(OffsetSpec::Latest).await;

    f.server.kill9().await;
    drop(writer);
    f.server.restart().await;
    f.client = f.server.client().await;

    assert_eq!(f.count().await, 600, "every acked row survives SIGKILL");
    let scan = f.client.collect_log(f.scan()).await.unwrap();
    assert_eq!(sorted_rows(&batches_of(&scan)), sorted_rows(&f.written));
    assert_eq!(f.offsets(OffsetSpec::Latest).await, latest_before);
    let earliest = f.offsets(OffsetSpec::Earliest).await;
    let with_offsets = f.client.collect_log(strom_flight_api::LogScan { metadata_columns: true, ..f.scan() }).await.unwrap();
    assert_offsets_gap_free(&batches_of(&with_offsets), &earliest);

    // A second crash right after a restart loses nothing either.
    f.append(events_batch(100_000, 7)).await;
    f.server.kill9().await;
    f.server.restart().await;
    f.client = f.server.client().await;
    assert_eq!(f.count().await, 607);
}
