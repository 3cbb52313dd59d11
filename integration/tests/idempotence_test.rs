//! Idempotent writes: `(writer_id, sequence)` makes a resent batch a no-op that answers with
//! the original offsets; a sequence gap is FailedPrecondition; a retrying writer survives a
//! node crash without writing anything twice.

use std::time::Duration;

use strom_flight_api::client::AppendWriterOptions;
use strom_flight_api::{Code, PutAck};
use strom_integration::fixtures::*;
use strom_integration::TestServer;

async fn events(server: &TestServer) -> (strom_flight_api::StromClient, String) {
    let client = server.client().await;
    let database = unique("idem");
    create_database(&client, &database).await;
    client.create_table(events_table(&database, "events", 4)).await.unwrap();
    (client, database)
}

fn writer_options(writer_id: i64, sequence: i64) -> AppendWriterOptions {
    AppendWriterOptions { writer_id: Some(writer_id), sequence, ..Default::default() }
}

#[tokio::test]
async fn given_acked_batches_when_resent_with_same_sequences_should_return_original_offsets_and_write_nothing() {
    let server = TestServer::start().await;
    let (client, db) = events(&server).await;
    let batches: Vec<_> = (0..3).map(|i| events_batch(i * 100, 25)).collect();
    let mut first = client.append_writer(&db, "events", writer_options(4242, 0));
    let mut original: Vec<PutAck> = Vec::new();
    for b in &batches {
        original.push(first.append(b.clone()).await.unwrap());
    }
    first.close().await.unwrap();
    assert!(original.iter().all(|a| !a.duplicate));
    assert_eq!(original.iter().map(|a| a.sequence).collect::<Vec<_>>(), [Some(0), Some(1), Some(2)]);

    // A second stream of the same writer resends everything from sequence 0.
    let mut again = client.append_writer(&db, "events", writer_options(4242, 0));
    for (b, orig) in batches.iter().zip(&original) {
        let ack = again.append(b.clone()).await.unwrap();
        assert!(ack.duplicate, "sequence {:?} was stored before: {ack:?}", orig.sequence);
        assert_eq!(ack.buckets, orig.buckets, "a retry answers with the original offsets");
        assert_eq!(ack.rows, orig.rows);
    }
    // ...and carries on with new data after the last stored sequence.
    let next = again.append(events_batch(1_000, 5)).await.unwrap();
    again.close().await.unwrap();
    assert!(!next.duplicate);
    assert_eq!(next.sequence, Some(3));

    assert_eq!(count(&client, &db, "events").await, 3 * 25 + 5, "no row was written twice");
    let mut expected = batches.clone();
    expected.push(events_batch(1_000, 5));
    let scan = client.collect_log(full_scan(&db, "events")).await.unwrap();
    assert_eq!(sorted_rows(&batches_of(&scan)), sorted_rows(&expected));
}

#[tokio::test]
async fn given_stored_sequences_when_a_later_stream_skips_ahead_should_fail_with_failed_precondition() {
    let server = TestServer::start().await;
    let (client, db) = events(&server).await;
    let mut writer = client.append_writer(&db, "events", writer_options(77, 0));
    writer.append(events_batch(0, 10)).await.unwrap();
    writer.append(events_batch(10, 10)).await.unwrap();
    writer.close().await.unwrap();

    let mut gap = client.append_writer(&db, "events", writer_options(77, 5));
    let err = gap.append(events_batch(20, 10)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
    assert!(err.to_string().contains("gap"), "the message says what is wrong: {err}");
    assert_eq!(count(&client, &db, "events").await, 20, "nothing of the rejected batch was written");

    // The next sequence in order is still accepted.
    let mut resume = client.append_writer(&db, "events", writer_options(77, 2));
    let ack = resume.append(events_batch(20, 10)).await.unwrap();
    resume.close().await.unwrap();
    assert_eq!(ack.sequence, Some(2));
    assert_eq!(count(&client, &db, "events").await, 30);
}

#[tokio::test]
async fn given_pipelined_writer_when_node_is_killed_and_restarted_on_same_port_should_deliver_every_batch_once() {
    let mut server = TestServer::start().await;
    let (client, db) = events(&server).await;
    let options = AppendWriterOptions {
        max_in_flight: 8,
        max_retries: 100,
        retry_deadline: Duration::from_secs(60),
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        ..Default::default()
    };
    let mut writer = client.append_writer(&db, "events", options);
    let batches: Vec<_> = (0..40).map(|i| events_batch(i * 10, 10)).collect();
    let mut acks = Vec::new();
    for b in &batches[..20] {
        acks.push(writer.append_unconfirmed(b.clone()).await.unwrap());
    }
    // Wait for a real ack so the crash happens with data both stored and in flight.
    let first = acks.remove(0).await.unwrap();
    server.kill9().await;
    let restart = async {
        server.restart_same_port().await;
    };
    // Keep appending while the node is down: the writer buffers (bounded) and resends.
    let more = async {
        for b in &batches[20..] {
            acks.push(writer.append_unconfirmed(b.clone()).await.unwrap());
        }
    };
    tokio::join!(restart, more);
    let results = futures::future::join_all(acks).await;
    let mut all = vec![first];
    for (i, r) in results.into_iter().enumerate() {
        all.push(r.unwrap_or_else(|e| panic!("batch {} failed although the writer retries: {e}", i + 1)));
    }
    writer.close().await.unwrap();
    let sequences: Vec<i64> = all.iter().map(|a| a.sequence.unwrap()).collect();
    assert_eq!(sequences, (0..40).collect::<Vec<_>>());

    let client = server.client().await;
    assert_eq!(count(&client, &db, "events").await, 400, "every batch exactly once");
    let scan = client.collect_log(full_scan(&db, "events")).await.unwrap();
    assert_eq!(sorted_rows(&batches_of(&scan)), sorted_rows(&batches));
}
