//! The writer's retry and rejection rules against an in-process mock node that follows the
//! contract's idempotence rule (batch `i` of a stream has sequence `sequence + i`; a known
//! sequence is answered with its original ack; a gap is FailedPrecondition) and injects faults.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, Int64Array, RecordBatch};
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::utils::flight_data_to_arrow_batch;
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest, HandshakeResponse, PollInfo,
    PutResult, SchemaResult, Ticket,
};
use arrow_schema::Schema;
use futures::stream::BoxStream;
use futures::{SinkExt, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::mock_handshake_tests::{answer_handshake, HandshakeAnswer};
use super::{AppendWriterOptions, StromClient, WriterOptions};
use crate::contract::{BucketAppend, PutAck, WriteCommand, WriteKind};
use crate::error::Code;

#[derive(Default)]
pub(crate) struct MockState {
    /// Column `v` of every written row, in write order (the offset is the index).
    rows: Vec<i64>,
    /// Acks of every written batch per writer; the index is the sequence.
    acks: HashMap<i64, Vec<PutAck>>,
    /// Writes so far (duplicates excluded).
    writes: usize,
    /// Break the stream right after these write counts, without acking that write.
    break_after_writes: Vec<usize>,
    /// Withhold acks until this many are pending or the input pauses (a group commit); on a
    /// rejection the withheld acks are lost although their batches are written.
    ack_group: usize,
    /// Answer every call with Unavailable.
    unavailable: bool,
    streams: usize,
    /// The CMD descriptor of every stream, in order.
    commands: Vec<WriteCommand>,
    /// How the handshake is answered, and the `protocol_version` of every handshake request.
    pub(crate) handshake: HandshakeAnswer,
    pub(crate) handshake_versions: Vec<u64>,
}

/// The writer side of a node: DoPut with the contract's idempotence rule and injected faults.
#[derive(Clone, Default)]
pub(crate) struct Mock {
    pub(crate) state: Arc<Mutex<MockState>>,
}

impl Mock {
    pub(crate) fn rows(&self) -> Vec<i64> {
        self.state.lock().unwrap().rows.clone()
    }

    pub(crate) fn streams(&self) -> usize {
        self.state.lock().unwrap().streams
    }

    fn commands(&self) -> Vec<WriteCommand> {
        self.state.lock().unwrap().commands.clone()
    }

    /// Handles one message of a stream; `Err` ends the stream with that status.
    fn on_batch(&self, writer: i64, sequence: i64, batch: &RecordBatch) -> Result<(PutAck, bool), Status> {
        let mut state = self.state.lock().unwrap();
        let written = state.acks.entry(writer).or_default().len() as i64;
        if sequence < written {
            let mut ack = state.acks[&writer][sequence as usize].clone();
            ack.duplicate = true;
            return Ok((ack, false));
        }
        if sequence > written {
            return Err(Status::failed_precondition(format!("sequence gap: expected {written}, got {sequence}")));
        }
        let values = batch.column(0).as_primitive::<Int64Type>();
        if let Some(row) = values.iter().position(|v| v.is_some_and(|v| v < 0)) {
            return Err(Status::invalid_argument(format!("negative v at row {row}")));
        }
        let base_offset = state.rows.len() as u64;
        state.rows.extend(values.iter().map(|v| v.unwrap_or_default()));
        let count = batch.num_rows() as u64;
        let ack = PutAck {
            rows: count,
            buckets: vec![BucketAppend { bucket: 0, partition: None, base_offset, count }],
            sequence: Some(sequence),
            duplicate: false,
        };
        state.acks.get_mut(&writer).unwrap().push(ack.clone());
        state.writes += 1;
        let writes = state.writes;
        let break_now = state.break_after_writes.contains(&writes);
        Ok((ack, break_now))
    }

    async fn serve_put(self, mut input: Streaming<FlightData>, mut out: futures::channel::mpsc::Sender<Result<PutResult, Status>>) {
        let ack_group = self.state.lock().unwrap().ack_group.max(1);
        let Ok(Some(first)) = input.message().await else { return };
        let command: WriteCommand = match first.flight_descriptor.as_ref().map(|d| serde_json::from_slice(&d.cmd)) {
            Some(Ok(c)) => c,
            _ => {
                let _ = out.send(Err(Status::invalid_argument("no CMD descriptor"))).await;
                return;
            }
        };
        self.state.lock().unwrap().commands.push(command.clone());
        let schema = Arc::new(Schema::try_from(&first).expect("schema message first"));
        let writer = command.writer_id.expect("writer id");
        let mut sequence = command.sequence.unwrap_or(0);
        let mut withheld = Vec::new();
        loop {
            // Like a group commit, withheld acks go out once the input pauses.
            let next = match tokio::time::timeout(Duration::from_millis(20), input.message()).await {
                Ok(next) => next,
                Err(_) => {
                    for ack in withheld.drain(..) {
                        let _ = out.send(Ok(PutResult { app_metadata: serde_json::to_vec(&ack).unwrap().into() })).await;
                    }
                    continue;
                }
            };
            let Ok(Some(data)) = next else { break };
            let batch = flight_data_to_arrow_batch(&data, schema.clone(), &HashMap::new()).expect("decodes");
            match self.on_batch(writer, sequence, &batch) {
                Ok((_, true)) => {
                    let _ = out.send(Err(Status::unavailable("injected: stream broken after a write"))).await;
                    return;
                }
                Ok((ack, false)) => {
                    withheld.push(ack);
                    if withheld.len() >= ack_group {
                        for ack in withheld.drain(..) {
                            let metadata = serde_json::to_vec(&ack).unwrap();
                            let _ = out.send(Ok(PutResult { app_metadata: metadata.into() })).await;
                        }
                    }
                }
                Err(status) => {
                    let _ = out.send(Err(status)).await;
                    return;
                }
            }
            sequence += 1;
        }
        for ack in withheld {
            let _ = out.send(Ok(PutResult { app_metadata: serde_json::to_vec(&ack).unwrap().into() })).await;
        }
    }
}

type Stream<T> = BoxStream<'static, Result<T, Status>>;

#[tonic::async_trait]
impl FlightService for Mock {
    type HandshakeStream = Stream<HandshakeResponse>;
    type ListFlightsStream = Stream<FlightInfo>;
    type DoGetStream = Stream<FlightData>;
    type DoPutStream = Stream<PutResult>;
    type DoExchangeStream = Stream<FlightData>;
    type DoActionStream = Stream<arrow_flight::Result>;
    type ListActionsStream = Stream<ActionType>;

    async fn handshake(&self, request: Request<Streaming<HandshakeRequest>>) -> Result<Response<Self::HandshakeStream>, Status> {
        let answer = self.state.lock().unwrap().handshake.clone();
        let (version, response) = answer_handshake(request, &answer).await;
        self.state.lock().unwrap().handshake_versions.extend(version);
        response
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
    async fn do_get(&self, _: Request<Ticket>) -> Result<Response<Self::DoGetStream>, Status> {
        Err(Status::unimplemented("mock"))
    }
    async fn do_put(&self, request: Request<Streaming<FlightData>>) -> Result<Response<Self::DoPutStream>, Status> {
        {
            let mut state = self.state.lock().unwrap();
            state.streams += 1;
            if state.unavailable {
                return Err(Status::unavailable("injected: node unavailable"));
            }
        }
        let (tx, rx) = futures::channel::mpsc::channel(64);
        tokio::spawn(self.clone().serve_put(request.into_inner(), tx));
        Ok(Response::new(rx.boxed()))
    }
    async fn do_exchange(&self, _: Request<Streaming<FlightData>>) -> Result<Response<Self::DoExchangeStream>, Status> {
        Err(Status::unimplemented("mock"))
    }
    async fn do_action(&self, _: Request<Action>) -> Result<Response<Self::DoActionStream>, Status> {
        Err(Status::unimplemented("mock"))
    }
    async fn list_actions(&self, _: Request<Empty>) -> Result<Response<Self::ListActionsStream>, Status> {
        Err(Status::unimplemented("mock"))
    }
}

/// Serves `mock` on a free loopback port (on the current runtime).
pub(crate) async fn start(mock: Mock) -> SocketAddr {
    let incoming = tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = incoming.local_addr().unwrap();
    tokio::spawn(tonic::transport::Server::builder().add_service(FlightServiceServer::new(mock)).serve_with_incoming(incoming));
    addr
}

pub(crate) fn batch(values: &[i64]) -> RecordBatch {
    let column: ArrayRef = Arc::new(Int64Array::from(values.to_vec()));
    RecordBatch::try_from_iter([("v", column)]).unwrap()
}

pub(crate) fn fast_retries() -> AppendWriterOptions {
    AppendWriterOptions { initial_backoff: Duration::from_millis(5), max_backoff: Duration::from_millis(20), ..Default::default() }
}

#[tokio::test]
async fn given_pipelined_batches_when_all_acked_should_resolve_in_order_with_sequences() {
    let mock = Mock::default();
    let client = StromClient::connect(&start(mock.clone()).await.to_string()).await.unwrap();
    let mut writer = client.append_writer("d", "t", AppendWriterOptions { sequence: 0, ..Default::default() });
    let mut acks = Vec::new();
    for i in 0..10 {
        acks.push(writer.append_unconfirmed(batch(&[i, i + 100])).await.unwrap());
    }
    for (i, ack) in acks.into_iter().enumerate() {
        let ack = ack.await.unwrap();
        assert_eq!(ack.sequence, Some(i as i64));
        assert_eq!(ack.buckets[0].base_offset, 2 * i as u64);
        assert!(!ack.duplicate);
    }
    writer.close().await.unwrap();
    assert_eq!(mock.rows().len(), 20);
    assert_eq!(mock.streams(), 1, "one stream carries every batch");
}

#[tokio::test]
async fn given_stream_broken_after_unacked_writes_when_writer_retries_should_write_each_batch_once() {
    let mock = Mock::default();
    mock.state.lock().unwrap().break_after_writes = vec![3, 7];
    let client = StromClient::connect(&start(mock.clone()).await.to_string()).await.unwrap();
    let mut writer = client.append_writer("d", "t", fast_retries());
    let mut acks = Vec::new();
    for i in 0..12 {
        acks.push(writer.append_unconfirmed(batch(&[i])).await.unwrap());
    }
    writer.flush().await.unwrap();
    let mut duplicates = 0;
    for (i, ack) in acks.into_iter().enumerate() {
        let ack = ack.await.unwrap();
        assert_eq!(ack.sequence, Some(i as i64));
        duplicates += usize::from(ack.duplicate);
    }
    writer.close().await.unwrap();
    assert_eq!(mock.rows(), (0..12).collect::<Vec<_>>(), "every batch exactly once, in order");
    assert_eq!(duplicates, 2, "the two written-but-unacked batches come back as duplicates");
    assert!(mock.streams() >= 3);
}

#[tokio::test]
async fn given_rejected_batch_among_pipelined_ones_when_acks_are_grouped_should_fail_only_that_batch() {
    let mock = Mock::default();
    // Acks come in pairs, so the rejection arrives while written batches are still unacked.
    mock.state.lock().unwrap().ack_group = 2;
    let client = StromClient::connect(&start(mock.clone()).await.to_string()).await.unwrap();
    let mut writer = client.append_writer("d", "t", fast_retries());
    let mut acks = Vec::new();
    // Batch 2 is written but its ack is withheld when batch 3 is rejected.
    for values in [[0], [1], [2], [-3], [4], [5]] {
        acks.push(writer.append_unconfirmed(batch(&values)).await.unwrap());
    }
    let results: Vec<_> = futures::future::join_all(acks).await;
    let err = results[3].as_ref().unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.to_string().contains("negative v"), "{err}");
    let sequences: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).map(|a| a.sequence.unwrap()).collect();
    assert_eq!(sequences, vec![0, 1, 2, 3, 4], "the batches after the rejected one take over its sequence");
    let flushed = writer.flush().await;
    assert_eq!(flushed.unwrap_err().code(), Code::InvalidArgument, "flush reports the failure once");
    writer.append(batch(&[5])).await.unwrap();
    writer.close().await.unwrap();
    assert_eq!(mock.rows(), vec![0, 1, 2, 4, 5, 5]);
}

#[tokio::test]
async fn given_node_unavailable_when_retries_run_out_should_fail_every_waiter_and_refuse_more() {
    let mock = Mock::default();
    mock.state.lock().unwrap().unavailable = true;
    let client = StromClient::connect(&start(mock.clone()).await.to_string()).await.unwrap();
    let options = AppendWriterOptions { max_retries: 3, ..fast_retries() };
    let mut writer = client.append_writer("d", "t", options);
    let first = writer.append_unconfirmed(batch(&[1])).await.unwrap();
    let second = writer.append_unconfirmed(batch(&[2])).await.unwrap();
    let err = first.await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert!(err.to_string().contains("giving up after 3 retries"), "{err}");
    assert_eq!(second.await.unwrap_err().code(), Code::Unavailable);
    assert_eq!(mock.streams(), 4, "one attempt plus three retries");
    assert_eq!(writer.append_unconfirmed(batch(&[3])).await.unwrap_err().code(), Code::Unavailable);
}

#[tokio::test]
async fn given_writer_resumed_with_same_id_when_resending_should_get_original_offsets() {
    let mock = Mock::default();
    let client = StromClient::connect(&start(mock.clone()).await.to_string()).await.unwrap();
    let options = AppendWriterOptions { writer_id: Some(42), ..Default::default() };
    let mut first = client.append_writer("d", "t", options.clone());
    let a = first.append(batch(&[1, 2])).await.unwrap();
    let b = first.append(batch(&[3])).await.unwrap();
    first.close().await.unwrap();
    let mut again = client.append_writer("d", "t", options);
    let a2 = again.append(batch(&[1, 2])).await.unwrap();
    let b2 = again.append(batch(&[3])).await.unwrap();
    again.close().await.unwrap();
    assert!(a2.duplicate && b2.duplicate);
    assert_eq!((a2.buckets, b2.buckets), (a.buckets, b.buckets));
    assert_eq!(mock.rows(), vec![1, 2, 3]);
}

#[tokio::test]
async fn given_sequence_gap_when_appending_should_fail_with_failed_precondition() {
    let mock = Mock::default();
    let client = StromClient::connect(&start(mock.clone()).await.to_string()).await.unwrap();
    let options = AppendWriterOptions { writer_id: Some(7), sequence: 5, ..Default::default() };
    let mut writer = client.append_writer("d", "t", options);
    let err = writer.append(batch(&[1])).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
    assert!(mock.rows().is_empty());
}

#[tokio::test]
async fn given_batch_larger_than_message_limit_when_appended_should_split_and_merge_acks() {
    let mock = Mock::default();
    let client = StromClient::connect(&start(mock.clone()).await.to_string()).await.unwrap();
    let options = AppendWriterOptions { max_flight_data_size: 8 * 1024, ..Default::default() };
    let mut writer = client.append_writer("d", "t", options);
    let values: Vec<i64> = (0..10_000).collect();
    let ack = writer.append(batch(&values)).await.unwrap();
    let next = writer.append(batch(&[-0])).await.unwrap();
    writer.close().await.unwrap();
    assert_eq!(ack.rows, 10_000);
    assert!(ack.buckets.len() > 1, "split into {} messages", ack.buckets.len());
    assert_eq!(next.sequence, Some(ack.buckets.len() as i64), "each message used one sequence");
    assert_eq!(mock.rows().len(), 10_001);
}

#[tokio::test]
async fn given_batch_with_other_schema_when_appended_should_be_rejected_locally() {
    let mock = Mock::default();
    let client = StromClient::connect(&start(mock.clone()).await.to_string()).await.unwrap();
    let mut writer = client.append_writer("d", "t", AppendWriterOptions::default());
    writer.append(batch(&[1])).await.unwrap();
    let other: ArrayRef = Arc::new(Int64Array::from(vec![1]));
    let other = RecordBatch::try_from_iter([("w", other)]).unwrap();
    assert!(matches!(writer.append(other).await, Err(crate::Error::InvalidArgument(_))));
    writer.close().await.unwrap();
}

fn key_value(keys: &[i64], values: &[i64], value_column: &str) -> RecordBatch {
    let k: ArrayRef = Arc::new(Int64Array::from(keys.to_vec()));
    let v: ArrayRef = Arc::new(Int64Array::from(values.to_vec()));
    RecordBatch::try_from_iter([("k", k), (value_column, v)]).unwrap()
}

#[tokio::test]
async fn given_partial_upsert_writer_when_writing_should_send_upsert_cmd_with_target_columns() {
    let mock = Mock::default();
    let client = StromClient::connect(&start(mock.clone()).await.to_string()).await.unwrap();
    let options = WriterOptions { writer_id: Some(9), sequence: 0, ..Default::default() };
    let mut writer = client.upsert_writer("d", "t", Some(vec!["a".into()]), options);
    assert_eq!(writer.target_columns(), Some(&["a".to_string()][..]));
    let first = writer.upsert(key_value(&[1, 2], &[10, 20], "a")).await.unwrap();
    let second = writer.upsert(key_value(&[3], &[30], "a")).await.unwrap();
    writer.close().await.unwrap();
    assert_eq!((first.sequence, second.sequence), (Some(0), Some(1)));
    let commands = mock.commands();
    assert_eq!(commands.len(), 1);
    assert_eq!(commands[0].write, WriteKind::Upsert);
    assert_eq!(commands[0].target_columns, Some(vec!["a".to_string()]));
    assert_eq!((commands[0].writer_id, commands[0].sequence), (Some(9), Some(0)));
    assert_eq!((commands[0].database.as_str(), commands[0].table.as_str()), ("d", "t"));
}

#[tokio::test]
async fn given_full_row_upsert_writer_when_writing_should_send_no_target_columns() {
    let mock = Mock::default();
    let client = StromClient::connect(&start(mock.clone()).await.to_string()).await.unwrap();
    let mut writer = client.upsert_writer("d", "t", None, WriterOptions::default());
    writer.upsert(key_value(&[1], &[10], "a")).await.unwrap();
    writer.close().await.unwrap();
    let commands = mock.commands();
    assert_eq!((commands[0].write, commands[0].target_columns.clone()), (WriteKind::Upsert, None));
}

#[tokio::test]
async fn given_delete_stream_broken_after_an_unacked_write_when_retried_should_resume_at_the_same_sequence() {
    let mock = Mock::default();
    // The second write (sequence 1) is stored but its ack is lost.
    mock.state.lock().unwrap().break_after_writes = vec![2];
    let client = StromClient::connect(&start(mock.clone()).await.to_string()).await.unwrap();
    let mut writer = client.delete_writer("d", "t", fast_retries());
    let mut acks = Vec::new();
    for i in 0..4 {
        acks.push(writer.delete_unconfirmed(key_value(&[i], &[0], "ignored")).await.unwrap());
    }
    let acks: Vec<PutAck> = futures::future::try_join_all(acks).await.unwrap();
    writer.close().await.unwrap();
    assert_eq!(acks.iter().map(|a| a.sequence.unwrap()).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
    assert_eq!(acks.iter().filter(|a| a.duplicate).count(), 1, "the stored-but-unacked delete comes back as a duplicate");
    assert_eq!(mock.rows(), vec![0, 1, 2, 3], "each delete reached the node once");
    let commands = mock.commands();
    assert_eq!(commands.len(), 2, "{commands:?}");
    assert!(commands.iter().all(|c| c.write == WriteKind::Delete && c.target_columns.is_none()));
    assert_eq!(commands[0].writer_id, commands[1].writer_id, "a retry keeps the writer id");
    assert_eq!((commands[0].sequence, commands[1].sequence), (Some(0), Some(1)), "the new stream starts at the oldest unacked batch");
}

#[tokio::test]
async fn given_batch_without_a_target_column_when_upserting_should_fail_locally_and_send_nothing() {
    let mock = Mock::default();
    let client = StromClient::connect(&start(mock.clone()).await.to_string()).await.unwrap();
    let mut writer = client.upsert_writer("d", "t", Some(vec!["a".into(), "b".into()]), WriterOptions::default());
    let err = writer.upsert(key_value(&[1], &[10], "a")).await.unwrap_err();
    assert!(matches!(&err, crate::Error::InvalidArgument(m) if m.contains("\"b\"")), "{err}");
    let mut twice = client.upsert_writer("d", "t", Some(vec!["a".into(), "a".into()]), WriterOptions::default());
    assert!(matches!(twice.upsert(key_value(&[1], &[10], "a")).await, Err(crate::Error::InvalidArgument(_))));
    let mut delete = client.table_writer("d", "t", WriteKind::Delete, Some(vec!["a".into()]), WriterOptions::default());
    assert!(matches!(delete.write(key_value(&[1], &[10], "a")).await, Err(crate::Error::InvalidArgument(_))));
    writer.close().await.unwrap();
    assert_eq!(mock.streams(), 0);
}
