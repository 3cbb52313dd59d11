//! The blocking facade (`strom_flight_api::blocking`) against the real `strom` binary, the way
//! the JNI bridge will use it: plain `std::thread`s with no tokio runtime (several at once),
//! blocking writers and scan iterators, lookups on a primary-key table, the node's error codes,
//! calls from inside a foreign tokio runtime, and the contract-version handshake.
//!
//! The tests are plain `#[test]`s: only the node fixture runs on a runtime of its own.

use std::sync::Arc;
use std::thread;

use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::{HandshakeRequest, HandshakeResponse};
use strom_flight_api::blocking::StromClient;
use strom_flight_api::{
    Code, ColumnSpec, CountKind, CountRequest, CreateDatabase, CreateTable, HandshakeInfo, LogScan, SnapshotScan, WriterOptions,
    CONTRACT_VERSION, KEY_INDEX_COLUMN,
};
use strom_integration::fixtures::*;
use strom_integration::TestServer;
use tonic::transport::Channel;

/// A running node with the runtime its fixture needs, and a blocking client connected to it.
struct Node {
    client: StromClient,
    // Dropped before the runtime that drains its output.
    server: TestServer,
    runtime: tokio::runtime::Runtime,
}

fn node() -> Node {
    let runtime = tokio::runtime::Runtime::new().expect("fixture runtime");
    let server = runtime.block_on(TestServer::start());
    assert!(tokio::runtime::Handle::try_current().is_err(), "the test thread itself has no runtime");
    let client = StromClient::connect(server.endpoint()).unwrap_or_else(|e| panic!("connect: {e}\n{}", server.stderr_tail(30)));
    Node { client, server, runtime }
}

fn new_database(client: &StromClient, prefix: &str) -> String {
    let database = unique(prefix);
    assert!(client.create_database(CreateDatabase { name: database.clone(), ..Default::default() }).unwrap());
    database
}

fn ids_of(batches: impl IntoIterator<Item = RecordBatch>) -> Vec<i64> {
    let mut ids: Vec<i64> = batches.into_iter().flat_map(|b| int_column(&b, "id")).collect();
    ids.sort_unstable();
    ids
}

#[test]
fn given_plain_threads_when_writing_concurrently_with_blocking_writers_should_read_back_every_row_with_the_scan_iterator() {
    let node = node();
    let client = &node.client;
    let database = new_database(client, "blocking_log");
    client.create_table(events_table(&database, "events", 4)).unwrap();

    let writers: Vec<_> = (0..4i64)
        .map(|t| {
            let (client, database) = (client.clone(), database.clone());
            thread::spawn(move || {
                assert!(tokio::runtime::Handle::try_current().is_err());
                let writer = client.append_writer(&database, "events", WriterOptions::default());
                // Half pipelined (acks waited on later), half one batch at a time.
                let pending: Vec<_> = (0..3).map(|i| writer.write_unconfirmed(events_batch(t * 1_000 + i * 10, 10)).unwrap()).collect();
                for i in 3..5 {
                    assert_eq!(writer.write(events_batch(t * 1_000 + i * 10, 10)).unwrap().rows, 10);
                }
                for ack in pending {
                    assert_eq!(ack.wait().unwrap().rows, 10);
                }
                writer.close().unwrap();
            })
        })
        .collect();
    for writer in writers {
        writer.join().expect("no writer thread panicked");
    }

    let count = client.count(CountRequest { database: database.clone(), table: "events".into(), ..Default::default() }).unwrap();
    assert_eq!(count, 200);
    let mut batches = Vec::new();
    for item in client.scan_log(full_scan(&database, "events")).unwrap() {
        let item = item.unwrap();
        assert!(item.metadata.bucket < 4, "{:?}", item.metadata);
        batches.push(item.batch);
    }
    let expected: Vec<i64> = (0..4).flat_map(|t| (0..50).map(move |i| t * 1_000 + i)).collect();
    assert_eq!(ids_of(batches), expected);
}

fn users_table(database: &str) -> CreateTable {
    CreateTable {
        database: database.into(),
        table: "users".into(),
        columns: vec![ColumnSpec::new("id", "BIGINT").not_null(), ColumnSpec::new("name", "STRING")],
        primary_key: vec!["id".into()],
        bucket_num: Some(2),
        ..Default::default()
    }
}

fn users(ids: &[i64], prefix: &str) -> RecordBatch {
    let id: ArrayRef = Arc::new(Int64Array::from(ids.to_vec()));
    let name: ArrayRef = Arc::new(ids.iter().map(|i| Some(format!("{prefix}{i}"))).collect::<StringArray>());
    RecordBatch::try_from_iter([("id", id), ("name", name)]).unwrap()
}

#[test]
fn given_primary_key_table_when_upserted_from_threads_should_look_up_and_snapshot_the_latest_rows() {
    let node = node();
    let client = &node.client;
    let database = new_database(client, "blocking_pk");
    client.create_table(users_table(&database)).unwrap();
    // Two threads upsert disjoint keys, then one overwrites a key of the other.
    thread::scope(|s| {
        for (first, prefix) in [(0i64, "a"), (100, "b")] {
            let database = &database;
            s.spawn(move || {
                let writer = client.upsert_writer(database, "users", None, WriterOptions::default());
                writer.write(users(&(first..first + 10).collect::<Vec<_>>(), prefix)).unwrap();
                writer.close().unwrap();
            });
        }
    });
    let writer = client.upsert_writer(&database, "users", None, WriterOptions::default());
    writer.write(users(&[5], "updated")).unwrap();
    writer.close().unwrap();

    let lookuper = client.lookuper(&database, "users", Default::default());
    let key: ArrayRef = Arc::new(Int64Array::from(vec![5, 999, 105]));
    let answer = lookuper.lookup(RecordBatch::try_from_iter([("id", key)]).unwrap()).unwrap();
    lookuper.close().unwrap();
    let index: Vec<i32> = answer.column_by_name(KEY_INDEX_COLUMN).unwrap().as_primitive::<Int32Type>().values().to_vec();
    assert_eq!(index, vec![0, 2], "key 999 is missing, the others found in request order");
    let names: Vec<&str> = answer.column_by_name("name").unwrap().as_string::<i32>().iter().map(Option::unwrap).collect();
    assert_eq!(names, vec!["updated5", "b105"]);

    let snapshot: Vec<RecordBatch> = client
        .scan_snapshot(SnapshotScan { database: database.clone(), table: "users".into(), ..Default::default() })
        .unwrap()
        .map(|b| b.unwrap().batch)
        .collect();
    let expected: Vec<i64> = (0..10).chain(100..110).collect();
    assert_eq!(ids_of(snapshot), expected);
    let rows = CountRequest { kind: CountKind::Rows, database: database.clone(), table: "users".into(), ..Default::default() };
    assert_eq!(client.count(rows).unwrap(), 20);
    let changes = LogScan { database, table: "users".into(), ..Default::default() };
    let change_records: usize = client.scan_log(changes).unwrap().map(|b| b.unwrap().batch.num_rows()).sum();
    assert_eq!(change_records, 22, "20 inserts, then -U/+U for the overwritten key");
}

#[test]
fn given_admin_mistakes_when_called_blocking_should_surface_the_nodes_codes_and_messages() {
    let node = node();
    let client = &node.client;
    let database = new_database(client, "blocking_err");

    let missing = client.get_table(&database, "nope").unwrap_err();
    assert_eq!(missing.code(), Code::NotFound, "{missing}");
    assert!(missing.to_string().contains("nope"), "{missing}");

    let mut bad_option = events_table(&database, "t1", 2);
    bad_option.options.insert("table.log.ttl.typo".into(), "7 d".into());
    let invalid = client.create_table(bad_option).unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument, "{invalid}");
    assert!(invalid.to_string().contains("table.log.ttl.typo"), "{invalid}");

    let twice = client.create_database(CreateDatabase { name: database.clone(), ..Default::default() }).unwrap_err();
    assert_eq!(twice.code(), Code::AlreadyExists, "{twice}");

    let writer = client.append_writer(&database, "nope", WriterOptions::default());
    let write = writer.write(events_batch(0, 3)).unwrap_err();
    assert_eq!(write.code(), Code::NotFound, "{write}");
    for err in [&missing, &invalid, &twice, &write] {
        assert!(!err.is_retriable(), "fix-your-input errors are not retriable: {err}");
    }
}

#[test]
fn given_threads_inside_a_foreign_runtime_when_calling_the_blocking_client_should_answer_without_panicking() {
    let node = node();
    let database = new_database(&node.client, "blocking_rt");
    node.client.create_table(events_table(&database, "events", 2)).unwrap();
    let foreign = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let client = node.client.clone();
    let task = foreign.spawn(async move {
        // Blocking calls from async code: they block this worker, but must not panic.
        let writer = client.append_writer(&database, "events", WriterOptions::default());
        let ack = writer.write(events_batch(0, 7)).unwrap();
        writer.close().unwrap();
        let scanned: usize = client.scan_log(full_scan(&database, "events")).unwrap().map(|b| b.unwrap().batch.num_rows()).sum();
        let health = client.health().unwrap();
        // The last handles of this clone are dropped here, inside the foreign runtime.
        (ack.rows, scanned, health.status)
    });
    let (written, scanned, status) = foreign.block_on(task).expect("the task did not panic");
    assert_eq!((written, scanned, status.as_str()), (7, 7, "ok"));
    // A facade created and dropped entirely inside a foreign runtime.
    let endpoint = node.server.endpoint().to_string();
    let health = foreign.block_on(async move {
        let own = StromClient::connect(&endpoint).unwrap();
        own.health().unwrap()
    });
    assert_eq!(health.version, node.client.server_version());
}

/// One Flight handshake announcing `version`; the node's (first) answer.
async fn handshake(flight: &mut FlightServiceClient<Channel>, version: u64) -> Result<HandshakeResponse, tonic::Status> {
    let request = HandshakeRequest { protocol_version: version, payload: Default::default() };
    let mut answers = flight.handshake(futures::stream::iter([request])).await?.into_inner();
    Ok(answers.message().await?.expect("the node answers a handshake with one message"))
}

#[test]
fn given_handshakes_with_various_versions_when_sent_raw_should_accept_ours_and_zero_and_refuse_others() {
    let node = node();
    let endpoint = node.server.endpoint().to_string();
    let (ours, unspecified, other) = node.runtime.block_on(async move {
        let mut flight = raw_flight_client(&endpoint).await;
        (
            handshake(&mut flight, CONTRACT_VERSION).await,
            handshake(&mut flight, 0).await,
            handshake(&mut flight, CONTRACT_VERSION + 1).await,
        )
    });
    for answer in [ours.unwrap(), unspecified.unwrap()] {
        assert_eq!(answer.protocol_version, CONTRACT_VERSION);
        let info: HandshakeInfo = serde_json::from_slice(&answer.payload).expect("a JSON payload");
        assert_eq!(info.contract_version, CONTRACT_VERSION);
        assert_eq!(info.server_version, node.client.health().unwrap().version);
    }
    let refused = other.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused:?}");
    let message = refused.message();
    assert!(
        message.contains(&format!("version {}", CONTRACT_VERSION + 1)) && message.contains(&format!("version {CONTRACT_VERSION}")),
        "{message}"
    );
    assert_eq!(node.client.server_version(), node.client.health().unwrap().version, "connect read the node's version");
}

#[test]
fn given_blocking_writer_when_closed_should_refuse_more_batches_with_cancelled() {
    let node = node();
    let database = new_database(&node.client, "blocking_close");
    node.client.create_table(events_table(&database, "events", 1)).unwrap();
    let writer = node.client.append_writer(&database, "events", WriterOptions::default());
    writer.write(events_batch(0, 2)).unwrap();
    writer.close().unwrap();
    let err = writer.write(events_batch(2, 2)).unwrap_err();
    assert_eq!(err.code(), Code::Cancelled, "{err}");
    assert!(!err.is_retriable());
    let scan = node.client.collect_log(full_scan(&database, "events")).unwrap();
    assert_eq!(ids_of(batches_of(&scan)), vec![0, 1], "nothing after close was written");
}
