//! The lookuper, snapshot scans, JSON lookups and row counts against an in-process mock node
//! that answers lookups the way the contract says (one answer per key message, in order,
//! `_key_index` first) and injects faults.
//!
//! The mock's table holds, for every even key `k >= 0`, one row with `v = 10 * k`; a negative
//! key is a bad key (InvalidArgument).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{ArrayRef, Int32Array, Int64Array, RecordBatch};
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::utils::flight_data_to_arrow_batch;
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest, HandshakeResponse, PollInfo,
    PutResult, SchemaAsIpc, SchemaResult, Ticket,
};
use arrow_ipc::writer::{CompressionContext, DictionaryTracker, IpcDataGenerator, IpcWriteOptions};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use futures::stream::BoxStream;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tonic::{Request, Response, Status, Streaming};

use super::mock_handshake_tests::{answer_handshake, HandshakeAnswer};
use super::{LookupOptions, StromClient};
use crate::contract::{CountKind, CountRequest, LookupKind, LookupRequest, SnapshotScan, KEY_INDEX_COLUMN};
use crate::{Code, Error};

#[derive(Default)]
pub(crate) struct KvState {
    /// CMD descriptor JSON of every DoExchange, in order.
    exchanges: Vec<Value>,
    /// Every DoGet ticket, as JSON.
    tickets: Vec<Value>,
    /// Hold answers until this many are pending or the input ends (proves pipelining: a
    /// client that waits for each answer before sending the next would never get one).
    answer_group: usize,
    /// Key messages answered so far, across streams.
    answered: usize,
    /// Break the stream (Unavailable) once this many messages were answered, once.
    break_after_answers: Option<usize>,
    /// This many DoExchange streams (the first ones) read their key messages but never
    /// answer, as a stuck node would.
    stalled_streams: usize,
    /// Record-batch messages of a DoGet: (app_metadata, rows of column `v`).
    pub(crate) do_get_batches: Vec<(Value, Vec<i64>)>,
    /// When set, a scan ticket is answered by an endless stream (a `follow` scan) that
    /// signals here once the node side drops it, i.e. once the client cancelled the call.
    pub(crate) endless_scan_dropped: Option<std::sync::mpsc::Sender<()>>,
}

/// The read side of a node: lookups over DoExchange, DoGet scans, counts and JSON lookups.
#[derive(Clone, Default)]
pub(crate) struct KvMock {
    pub(crate) state: Arc<Mutex<KvState>>,
}

fn answer_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(KEY_INDEX_COLUMN, DataType::Int32, false),
        Field::new("k", DataType::Int64, false),
        Field::new("v", DataType::Int64, true),
    ]))
}

/// Encodes a batch as one message even when it is empty (the stock encoder drops empty ones).
fn encode(batch: &RecordBatch, app_metadata: Vec<u8>) -> FlightData {
    let (_, encoded) = IpcDataGenerator::default()
        .encode(batch, &mut DictionaryTracker::new(false), &IpcWriteOptions::default(), &mut CompressionContext::default())
        .unwrap();
    let mut data: FlightData = encoded.into();
    data.app_metadata = app_metadata.into();
    data
}

fn schema_message(schema: &Schema) -> FlightData {
    SchemaAsIpc::new(schema, &IpcWriteOptions::default()).into()
}

/// The answer to one key message: the found rows with their row in the message.
fn answer(keys: &RecordBatch) -> Result<RecordBatch, Status> {
    let keys = keys.column_by_name("k").ok_or_else(|| Status::invalid_argument("no key column k"))?.as_primitive::<Int64Type>();
    let (mut index, mut k, mut v) = (Vec::new(), Vec::new(), Vec::new());
    for (row, key) in keys.values().iter().enumerate() {
        if *key < 0 {
            return Err(Status::invalid_argument(format!("bad key {key} at row {row}")));
        }
        if key % 2 == 0 {
            index.push(row as i32);
            k.push(*key);
            v.push(key * 10);
        }
    }
    let columns: Vec<ArrayRef> = vec![Arc::new(Int32Array::from(index)), Arc::new(Int64Array::from(k)), Arc::new(Int64Array::from(v))];
    Ok(RecordBatch::try_new(answer_schema(), columns).unwrap())
}

impl KvMock {
    fn exchanges(&self) -> Vec<Value> {
        self.state.lock().unwrap().exchanges.clone()
    }

    async fn serve_exchange(self, mut input: Streaming<FlightData>, mut out: futures::channel::mpsc::Sender<Result<FlightData, Status>>) {
        let Ok(Some(first)) = input.message().await else { return };
        let descriptor: Value = serde_json::from_slice(&first.flight_descriptor.as_ref().unwrap().cmd).unwrap();
        let (group, stalled) = {
            let mut state = self.state.lock().unwrap();
            state.exchanges.push(descriptor);
            let stalled = state.stalled_streams > 0;
            state.stalled_streams = state.stalled_streams.saturating_sub(1);
            (state.answer_group.max(1), stalled)
        };
        if stalled {
            // Keep the stream open, answering nothing, until the client gives up on it.
            while let Ok(Some(_)) = input.message().await {}
            return;
        }
        let key_schema = Arc::new(Schema::try_from(&first).expect("schema message first"));
        let _ = out.send(Ok(schema_message(&answer_schema()))).await;
        let mut held = Vec::new();
        while let Ok(Some(data)) = input.message().await {
            let keys = flight_data_to_arrow_batch(&data, key_schema.clone(), &HashMap::new()).expect("decodes");
            let broken = {
                let mut state = self.state.lock().unwrap();
                let broken = state.break_after_answers == Some(state.answered + held.len());
                if broken {
                    state.break_after_answers = None;
                }
                broken
            };
            let next = if broken { Err(Status::unavailable("injected: lookup stream broken")) } else { answer(&keys) };
            match next {
                Ok(batch) => held.push(encode(&batch, Vec::new())),
                Err(status) => {
                    // Answers go out in order: everything before the failure first.
                    self.send_held(&mut held, &mut out).await;
                    let _ = out.send(Err(status)).await;
                    return;
                }
            }
            if held.len() >= group {
                self.send_held(&mut held, &mut out).await;
            }
        }
        self.send_held(&mut held, &mut out).await;
    }

    async fn send_held(&self, held: &mut Vec<FlightData>, out: &mut futures::channel::mpsc::Sender<Result<FlightData, Status>>) {
        self.state.lock().unwrap().answered += held.len();
        for data in held.drain(..) {
            let _ = out.send(Ok(data)).await;
        }
    }
}

type Stream<T> = BoxStream<'static, Result<T, Status>>;

#[tonic::async_trait]
impl FlightService for KvMock {
    type HandshakeStream = Stream<HandshakeResponse>;
    type ListFlightsStream = Stream<FlightInfo>;
    type DoGetStream = Stream<FlightData>;
    type DoPutStream = Stream<PutResult>;
    type DoExchangeStream = Stream<FlightData>;
    type DoActionStream = Stream<arrow_flight::Result>;
    type ListActionsStream = Stream<ActionType>;

    async fn handshake(&self, request: Request<Streaming<HandshakeRequest>>) -> Result<Response<Self::HandshakeStream>, Status> {
        answer_handshake(request, &HandshakeAnswer::default()).await.1
    }
    async fn list_flights(&self, _: Request<Criteria>) -> Result<Response<Self::ListFlightsStream>, Status> {
        Err(Status::unimplemented("mock"))
    }
    async fn get_flight_info(&self, _: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        Err(Status::unimplemented("mock"))
    }
    async fn poll_flight_info(&self, _: Request<FlightDescriptor>) -> Result<Response<PollInfo>, Status> {
        Err(Status::unimplemented("mock"))
    }
    async fn get_schema(&self, _: Request<FlightDescriptor>) -> Result<Response<SchemaResult>, Status> {
        Err(Status::unimplemented("mock"))
    }
    async fn do_get(&self, request: Request<Ticket>) -> Result<Response<Self::DoGetStream>, Status> {
        let ticket: Value = serde_json::from_slice(&request.into_inner().ticket).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let mut state = self.state.lock().unwrap();
        state.tickets.push(ticket.clone());
        if let Some(dropped) = state.endless_scan_dropped.clone() {
            return Ok(Response::new(endless_scan(dropped)));
        }
        let schema = if ticket.get("count").is_some() {
            Schema::new(vec![Field::new("count", DataType::Int64, false)])
        } else {
            Schema::new(vec![Field::new("v", DataType::Int64, true)])
        };
        let schema = Arc::new(schema);
        let mut messages = vec![Ok(schema_message(&schema))];
        for (metadata, values) in &state.do_get_batches {
            let column: ArrayRef = Arc::new(Int64Array::from(values.clone()));
            let batch = RecordBatch::try_new(schema.clone(), vec![column]).unwrap();
            messages.push(Ok(encode(&batch, serde_json::to_vec(metadata).unwrap())));
        }
        Ok(Response::new(futures::stream::iter(messages).boxed()))
    }
    async fn do_put(&self, _: Request<Streaming<FlightData>>) -> Result<Response<Self::DoPutStream>, Status> {
        Err(Status::unimplemented("mock"))
    }
    async fn do_exchange(&self, request: Request<Streaming<FlightData>>) -> Result<Response<Self::DoExchangeStream>, Status> {
        let (tx, rx) = futures::channel::mpsc::channel(64);
        tokio::spawn(self.clone().serve_exchange(request.into_inner(), tx));
        Ok(Response::new(rx.boxed()))
    }
    async fn do_action(&self, _: Request<Action>) -> Result<Response<Self::DoActionStream>, Status> {
        Err(Status::unimplemented("mock"))
    }
    async fn list_actions(&self, _: Request<Empty>) -> Result<Response<Self::ListActionsStream>, Status> {
        Err(Status::unimplemented("mock"))
    }
}

/// Batches `v = [n]` with log-scan metadata, forever; tells `dropped` when the stream goes.
fn endless_scan(dropped: std::sync::mpsc::Sender<()>) -> Stream<FlightData> {
    struct SignalOnDrop(std::sync::mpsc::Sender<()>);
    impl Drop for SignalOnDrop {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }
    let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
    let first = futures::stream::once(futures::future::ready(Ok(schema_message(&schema))));
    let batches = futures::stream::unfold((0i64, SignalOnDrop(dropped)), move |(n, guard)| {
        let schema = schema.clone();
        async move {
            let column: ArrayRef = Arc::new(Int64Array::from(vec![n]));
            let batch = RecordBatch::try_new(schema, vec![column]).unwrap();
            let metadata = json!({"bucket": 0, "base_offset": n, "high_watermark": n + 1});
            Some((Ok(encode(&batch, serde_json::to_vec(&metadata).unwrap())), (n + 1, guard)))
        }
    });
    first.chain(batches).boxed()
}

/// Serves `mock` on a free loopback port (on the current runtime).
pub(crate) async fn serve(mock: &KvMock) -> SocketAddr {
    let incoming = tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr: SocketAddr = incoming.local_addr().unwrap();
    tokio::spawn(tonic::transport::Server::builder().add_service(FlightServiceServer::new(mock.clone())).serve_with_incoming(incoming));
    addr
}

async fn connect(mock: &KvMock) -> StromClient {
    StromClient::connect(&serve(mock).await.to_string()).await.unwrap()
}

pub(crate) fn keys(values: &[i64]) -> RecordBatch {
    let column: ArrayRef = Arc::new(Int64Array::from(values.to_vec()));
    RecordBatch::try_from_iter([("k", column)]).unwrap()
}

fn int32s(batch: &RecordBatch, column: &str) -> Vec<i32> {
    batch.column_by_name(column).unwrap().as_primitive::<Int32Type>().values().to_vec()
}

pub(crate) fn int64s(batch: &RecordBatch, column: &str) -> Vec<i64> {
    batch.column_by_name(column).unwrap().as_primitive::<Int64Type>().values().to_vec()
}

fn fast_retries() -> LookupOptions {
    LookupOptions { initial_backoff: Duration::from_millis(5), max_backoff: Duration::from_millis(20), ..Default::default() }
}

/// Turns a hang (a lost answer, a client that does not pipeline) into a failure.
async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), future).await.expect("timed out: an answer never came")
}

#[tokio::test]
async fn given_node_answering_only_after_three_requests_when_three_are_submitted_should_resolve_each_with_its_own_keys() {
    let mock = KvMock::default();
    mock.state.lock().unwrap().answer_group = 3;
    let client = connect(&mock).await;
    let options = LookupOptions { columns: Some(vec!["v".into()]), ..Default::default() };
    let mut lookuper = client.lookuper("d", "t", options);
    let (a, b, c) = within(async {
        let a = lookuper.submit(keys(&[2, 3, 4])).await.unwrap();
        let b = lookuper.submit(keys(&[5])).await.unwrap();
        let c = lookuper.submit(keys(&[7, 8])).await.unwrap();
        (a.await.unwrap(), b.await.unwrap(), c.await.unwrap())
    })
    .await;
    assert_eq!(a.schema().field(0).name(), KEY_INDEX_COLUMN);
    assert_eq!((int32s(&a, KEY_INDEX_COLUMN), int64s(&a, "v")), (vec![0, 2], vec![20, 40]));
    assert_eq!(b.num_rows(), 0, "a request with no key found is answered by an empty batch");
    assert_eq!((int32s(&c, KEY_INDEX_COLUMN), int64s(&c, "k")), (vec![1], vec![8]));
    within(lookuper.close()).await.unwrap();
    let exchanges = mock.exchanges();
    assert_eq!(exchanges, vec![json!({"lookup": "primary_key", "database": "d", "table": "t", "columns": ["v"]})], "no keys in the CMD");
}

#[tokio::test]
async fn given_prefix_lookuper_with_insert_when_opened_should_send_prefix_kind_and_insert_flag() {
    let mock = KvMock::default();
    let client = connect(&mock).await;
    let mut lookuper = client.prefix_lookuper("d", "t", LookupOptions { insert_if_not_exists: true, ..Default::default() });
    assert_eq!(lookuper.kind(), LookupKind::Prefix);
    let answer = within(lookuper.lookup(keys(&[6]))).await.unwrap();
    assert_eq!(int64s(&answer, "v"), vec![60]);
    assert_eq!(mock.exchanges(), vec![json!({"lookup": "prefix", "database": "d", "table": "t", "insert_if_not_exists": true})]);
}

#[tokio::test]
async fn given_key_batch_above_message_size_when_looked_up_should_merge_slices_with_indexes_into_the_whole_batch() {
    let mock = KvMock::default();
    let client = connect(&mock).await;
    let mut lookuper = client.lookuper("d", "t", LookupOptions { max_flight_data_size: 8 * 1024, ..Default::default() });
    let all: Vec<i64> = (0..10_000).collect();
    let answer = within(lookuper.lookup(keys(&all))).await.unwrap();
    assert!(mock.state.lock().unwrap().answered > 1, "the batch went out as several messages");
    assert_eq!(answer.num_rows(), 5_000);
    assert_eq!(int32s(&answer, KEY_INDEX_COLUMN), (0..10_000).step_by(2).collect::<Vec<i32>>());
    assert_eq!(int64s(&answer, "k"), (0..10_000).step_by(2).collect::<Vec<i64>>());
    assert_eq!(mock.exchanges().len(), 1);
}

#[tokio::test]
async fn given_stream_broken_with_lookups_in_flight_when_retried_should_answer_every_lookup_once_in_order() {
    let mock = KvMock::default();
    mock.state.lock().unwrap().break_after_answers = Some(2);
    let client = connect(&mock).await;
    let mut lookuper = client.lookuper("d", "t", fast_retries());
    let answers = within(async {
        let mut pending = Vec::new();
        for i in 0..6 {
            pending.push(lookuper.submit(keys(&[2 * i, 2 * i + 1])).await.unwrap());
        }
        futures::future::try_join_all(pending).await.unwrap()
    })
    .await;
    for (i, answer) in answers.iter().enumerate() {
        assert_eq!(int64s(answer, "k"), vec![2 * i as i64], "answer {i} belongs to request {i}");
    }
    assert_eq!(mock.exchanges().len(), 2, "one reconnect");
}

#[tokio::test]
async fn given_stream_the_node_stopped_answering_when_the_answer_timeout_passes_should_answer_on_a_new_stream() {
    let mock = KvMock::default();
    mock.state.lock().unwrap().stalled_streams = 1;
    let client = connect(&mock).await;
    let options = LookupOptions { answer_timeout: Some(Duration::from_millis(200)), ..fast_retries() };
    let mut lookuper = client.lookuper("d", "t", options);
    let started = std::time::Instant::now();
    let (a, b) = within(async {
        let a = lookuper.submit(keys(&[2, 3])).await.unwrap();
        let b = lookuper.submit(keys(&[4])).await.unwrap();
        (a.await.unwrap(), b.await.unwrap())
    })
    .await;
    assert!(started.elapsed() >= Duration::from_millis(200), "answered only after the stalled stream was given up");
    assert_eq!((int64s(&a, "k"), int64s(&b, "k")), (vec![2], vec![4]));
    assert_eq!(mock.exchanges().len(), 2, "one new stream");
}

#[tokio::test]
async fn given_node_that_never_answers_when_the_retry_deadline_passes_should_fail_with_deadline_exceeded() {
    let mock = KvMock::default();
    mock.state.lock().unwrap().stalled_streams = usize::MAX;
    let client = connect(&mock).await;
    let options =
        LookupOptions { answer_timeout: Some(Duration::from_millis(100)), retry_deadline: Duration::from_millis(250), ..fast_retries() };
    let mut lookuper = client.lookuper("d", "t", options);
    let error = within(lookuper.lookup(keys(&[2]))).await.expect_err("nothing answers");
    assert_eq!(error.code(), Code::DeadlineExceeded, "{error}");
    assert!(error.to_string().contains("did not answer a lookup key batch within 100ms"), "{error}");
    let streams = mock.exchanges().len();
    assert!((2..=4).contains(&streams), "new streams until the retry deadline, then none: {streams}");
}

#[tokio::test]
async fn given_rejected_key_batch_among_pipelined_ones_when_answered_should_fail_only_that_lookup() {
    let mock = KvMock::default();
    mock.state.lock().unwrap().answer_group = 2;
    let client = connect(&mock).await;
    let mut lookuper = client.lookuper("d", "t", fast_retries());
    let results = within(async {
        let mut pending = Vec::new();
        for batch in [keys(&[0]), keys(&[2]), keys(&[-1]), keys(&[4]), keys(&[6])] {
            pending.push(lookuper.submit(batch).await.unwrap());
        }
        futures::future::join_all(pending).await
    })
    .await;
    let err = results[2].as_ref().unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.to_string().contains("bad key -1"), "{err}");
    let found: Vec<Vec<i64>> = results.iter().filter_map(|r| r.as_ref().ok()).map(|b| int64s(b, "k")).collect();
    assert_eq!(found, vec![vec![0], vec![2], vec![4], vec![6]]);
    // Still usable afterwards (two lookups: the mock answers in pairs).
    let (a, b) = within(async {
        let a = lookuper.submit(keys(&[8])).await.unwrap();
        let b = lookuper.submit(keys(&[10])).await.unwrap();
        (a.await.unwrap(), b.await.unwrap())
    })
    .await;
    assert_eq!((int64s(&a, "v"), int64s(&b, "v")), (vec![80], vec![100]));
}

#[tokio::test]
async fn given_key_batch_with_other_schema_when_submitted_should_be_rejected_locally() {
    let mock = KvMock::default();
    let client = connect(&mock).await;
    let mut lookuper = client.lookuper("d", "t", LookupOptions::default());
    within(lookuper.lookup(keys(&[2]))).await.unwrap();
    let other: ArrayRef = Arc::new(Int64Array::from(vec![1]));
    let other = RecordBatch::try_from_iter([("j", other)]).unwrap();
    assert!(matches!(lookuper.submit(other).await, Err(Error::InvalidArgument(_))));
}

#[tokio::test]
async fn given_json_lookup_when_sent_should_put_the_keys_in_the_ticket_and_return_the_batches() {
    let mock = KvMock::default();
    mock.state.lock().unwrap().do_get_batches = vec![(json!({}), vec![1, 2]), (json!({}), vec![3])];
    let client = connect(&mock).await;
    let request = LookupRequest {
        lookup: LookupKind::PrimaryKey,
        database: "d".into(),
        table: "t".into(),
        keys: vec![vec![json!(1), json!("a")], vec![json!(2), json!("b")]],
        ..Default::default()
    };
    let batches = client.lookup_json(request).await.unwrap();
    assert_eq!(batches.iter().map(|b| int64s(b, "v")).collect::<Vec<_>>(), vec![vec![1, 2], vec![3]]);
    let ticket = mock.state.lock().unwrap().tickets[0].clone();
    assert_eq!(ticket, json!({"lookup": "primary_key", "database": "d", "table": "t", "keys": [[1, "a"], [2, "b"]]}));
    let empty = LookupRequest { database: "d".into(), table: "t".into(), ..Default::default() };
    assert!(matches!(client.lookup_json(empty).await, Err(Error::InvalidArgument(_))));
}

#[tokio::test]
async fn given_count_rows_request_when_counted_should_send_a_rows_ticket() {
    let mock = KvMock::default();
    mock.state.lock().unwrap().do_get_batches = vec![(json!({}), vec![42])];
    let client = connect(&mock).await;
    let request = CountRequest { kind: CountKind::Rows, database: "d".into(), table: "t".into(), ..Default::default() };
    assert_eq!(client.count(request).await.unwrap(), 42);
    let ticket = mock.state.lock().unwrap().tickets[0].clone();
    assert_eq!(ticket, json!({"count": "rows", "database": "d", "table": "t"}));
}

#[tokio::test]
async fn given_snapshot_scan_when_collected_should_return_rows_and_each_buckets_log_offset() {
    let mock = KvMock::default();
    mock.state.lock().unwrap().do_get_batches = vec![
        (json!({"bucket": 0, "log_offset": 7}), vec![1, 2]),
        (json!({"bucket": 0, "log_offset": 7}), vec![3]),
        (json!({"bucket": 1, "log_offset": 0}), vec![]),
        (json!({"bucket": 2, "log_offset": 12}), vec![4]),
    ];
    let client = connect(&mock).await;
    let scan = SnapshotScan { database: "d".into(), table: "t".into(), limit: Some(10), ..Default::default() };
    let snapshot = client.collect_snapshot(scan).await.unwrap();
    assert_eq!(snapshot.num_rows(), 4);
    assert_eq!(snapshot.batches.len(), 4, "the empty batch of bucket 1 is kept");
    assert_eq!(snapshot.log_offsets().into_iter().collect::<Vec<_>>(), vec![(0, 7), (1, 0), (2, 12)]);
    assert_eq!(snapshot.log_offset(2), Some(12));
    assert_eq!(snapshot.schema.as_ref().map(|s| s.field(0).name().clone()), Some("v".to_string()));
    let ticket = mock.state.lock().unwrap().tickets[0].clone();
    assert_eq!(ticket, json!({"scan": "snapshot", "database": "d", "table": "t", "limit": 10}));
}

#[tokio::test]
async fn given_snapshot_batches_without_or_with_conflicting_offsets_when_collected_should_be_protocol_errors() {
    let mock = KvMock::default();
    mock.state.lock().unwrap().do_get_batches =
        vec![(json!({"bucket": 0, "log_offset": 7}), vec![1]), (json!({"bucket": 0, "log_offset": 8}), vec![2])];
    let client = connect(&mock).await;
    let scan = SnapshotScan { database: "d".into(), table: "t".into(), ..Default::default() };
    let err = client.collect_snapshot(scan.clone()).await.unwrap_err();
    assert!(matches!(&err, Error::Protocol(m) if m.contains("7") && m.contains("8")), "{err}");
    mock.state.lock().unwrap().do_get_batches = vec![(json!({"bucket": 0, "base_offset": 0, "high_watermark": 1}), vec![1])];
    assert!(matches!(client.collect_snapshot(scan).await, Err(Error::Protocol(_))));
}

#[test]
fn given_plain_thread_without_runtime_when_opening_a_lookuper_should_run_it_on_the_client_runtime() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mock = KvMock::default();
    let client = runtime.block_on(connect(&mock));
    let answer = std::thread::spawn(move || {
        assert!(tokio::runtime::Handle::try_current().is_err(), "a plain thread has no runtime");
        // Opening spawns the driver: onto the client's runtime, not the (absent) ambient one.
        let mut lookuper = client.lookuper("d", "t", LookupOptions::default());
        // A non-tokio executor polls the lookup; the stream itself runs on the client's runtime.
        futures::executor::block_on(async {
            let answer = lookuper.lookup(keys(&[4, 5])).await;
            lookuper.close().await.unwrap();
            answer
        })
    })
    .join()
    .expect("no panic on a thread without a runtime")
    .unwrap();
    assert_eq!(int64s(&answer, "v"), vec![40]);
}
