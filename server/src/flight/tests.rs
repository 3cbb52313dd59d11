//! The front door on its own, against a small fake engine: status codes, streaming order,
//! errors in the middle of a stream, limits. A real `FlightServiceServer` (DoGet through the zero-copy wrapper) on 127.0.0.1:0 and
//! arrow-flight's own client, so what is checked is what a Flight client sees.

use crate::engine::{
    BatchIdentity, BucketTotal, IpcMessage, Lookup, LookupAnswer, PendingAck, ScanChunk, ScanStream, SnapshotStream, StorageEngine,
    TableWriter,
};
use crate::error::{Error, Result};
use arrow_array::{Int64Array, RecordBatch};
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::{Action, FlightData, FlightDescriptor, HandshakeRequest, SchemaAsIpc, Ticket};
use arrow_ipc::writer::IpcWriteOptions;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use futures::StreamExt;
use parking_lot::Mutex;
use std::sync::Arc;
use strom_flight_api::*;
use tokio::sync::mpsc;
use tonic::transport::Channel;
use tonic::Code;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]))
}

fn ids(values: &[i64]) -> RecordBatch {
    RecordBatch::try_new(schema(), vec![Arc::new(Int64Array::from(values.to_vec()))]).unwrap()
}

/// What the fake engine does; every other call answers `Internal("not faked")`.
#[derive(Default)]
struct FakeEngine {
    /// `get_table` fails with this (one per call, in order).
    get_table_errors: Mutex<Vec<Error>>,
    /// A scan yields these, then ends.
    scan_items: Mutex<Vec<Result<ScanChunk>>>,
    /// The writer fails the batch with this index (0-based).
    fail_write_at: Option<(usize, fn() -> Error)>,
    /// Batches the writer received, in order.
    written: Arc<Mutex<Vec<RecordBatch>>>,
}

fn not_faked<T>() -> Result<T> {
    Err(Error::Internal("not faked".into()))
}

#[async_trait::async_trait]
impl StorageEngine for FakeEngine {
    fn health(&self) -> Health {
        Health {
            status: "ok".into(),
            version: "test".into(),
            uptime_ms: 0,
            kv_block_cache_bytes: 0,
            tail_cache: Default::default(),
            background_failures: vec![],
        }
    }
    fn create_database(&self, _: &CreateDatabase) -> Result<bool> {
        not_faked()
    }
    fn drop_database(&self, _: &DropDatabase) -> Result<bool> {
        not_faked()
    }
    fn list_databases(&self) -> Vec<String> {
        vec![]
    }
    fn create_table(&self, _: &CreateTable) -> Result<TableInfo> {
        not_faked()
    }
    fn drop_table(&self, _: &DropTable) -> Result<bool> {
        not_faked()
    }
    fn get_table(&self, _: &str, _: &str) -> Result<TableInfo> {
        match self.get_table_errors.lock().pop() {
            Some(e) => Err(e),
            None => not_faked(),
        }
    }
    fn list_tables(&self, _: &str) -> Result<Vec<String>> {
        not_faked()
    }
    fn all_tables(&self) -> Vec<TableInfo> {
        vec![]
    }
    fn alter_table(&self, _: &AlterTable) -> Result<TableInfo> {
        not_faked()
    }
    fn create_partition(&self, _: &CreatePartition) -> Result<bool> {
        not_faked()
    }
    fn drop_partition(&self, _: &DropPartition) -> Result<bool> {
        not_faked()
    }
    fn list_partitions(&self, _: &str, _: &str) -> Result<Vec<PartitionInfo>> {
        not_faked()
    }
    fn list_offsets(&self, _: &ListOffsets) -> Result<Vec<BucketOffset>> {
        not_faked()
    }
    fn table_schema(&self, _: &str, _: &str) -> Result<SchemaRef> {
        Ok(schema())
    }
    fn bucket_totals(&self, _: &str, _: &str) -> Result<Vec<BucketTotal>> {
        not_faked()
    }
    fn open_writer(&self, _: &WriteCommand, _: bool) -> Result<Box<dyn TableWriter>> {
        Ok(Box::new(FakeWriter { fail_at: self.fail_write_at, written: self.written.clone() }))
    }
    fn scan(&self, _: &LogScan) -> Result<ScanStream> {
        let (tx, rx) = mpsc::channel(8);
        for item in self.scan_items.lock().drain(..) {
            tx.try_send(item).unwrap();
        }
        Ok(ScanStream { schema: schema(), chunks: rx })
    }
    fn snapshot_scan(&self, _: &SnapshotScan) -> Result<SnapshotStream> {
        not_faked()
    }
    fn open_lookup(&self, _: &LookupRequest) -> Result<Arc<dyn Lookup>> {
        Ok(Arc::new(FakeLookup))
    }
    async fn count(&self, _: &CountRequest) -> Result<u64> {
        Ok(42)
    }
}

struct FakeWriter {
    fail_at: Option<(usize, fn() -> Error)>,
    written: Arc<Mutex<Vec<RecordBatch>>>,
}

#[async_trait::async_trait]
impl TableWriter for FakeWriter {
    fn table_path(&self) -> &str {
        "db.t"
    }
    fn check_schema(&self, schema: &SchemaRef) -> Result<()> {
        match schema.field_with_name("id") {
            Ok(_) => Ok(()),
            Err(_) => Err(Error::invalid("table db.t: batch is missing column \"id\"")),
        }
    }
    async fn write(&self, batch: RecordBatch, _: Option<BatchIdentity>) -> Result<PendingAck> {
        let index = {
            let mut written = self.written.lock();
            written.push(batch.clone());
            written.len() - 1
        };
        if let Some((at, error)) = self.fail_at {
            if index == at {
                return Err(error());
            }
        }
        let ack = PutAck {
            rows: batch.num_rows() as u64,
            buckets: vec![BucketAppend { bucket: 0, partition: None, base_offset: index as u64 * 10, count: batch.num_rows() as u64 }],
            sequence: None,
            duplicate: false,
        };
        Ok(PendingAck::ready(ack))
    }
}

/// Answers every key with itself (`_key_index`, id).
struct FakeLookup;

#[async_trait::async_trait]
impl Lookup for FakeLookup {
    fn table_path(&self) -> &str {
        "db.t"
    }
    fn result_schema(&self, with_key_index: bool) -> SchemaRef {
        let mut fields = vec![];
        if with_key_index {
            fields.push(Field::new(KEY_INDEX_COLUMN, DataType::Int32, false));
        }
        fields.push(Field::new("id", DataType::Int64, false));
        Arc::new(Schema::new(fields))
    }
    fn check_key_schema(&self, _: &SchemaRef) -> Result<()> {
        Ok(())
    }
    fn keys_from_json(&self, _: &[Vec<serde_json::Value>]) -> Result<RecordBatch> {
        not_faked()
    }
    async fn lookup(&self, keys: RecordBatch, with_key_index: bool) -> Result<LookupAnswer> {
        let n = keys.num_rows();
        let mut columns: Vec<arrow_array::ArrayRef> = vec![];
        if with_key_index {
            columns.push(Arc::new(arrow_array::Int32Array::from_iter_values(0..n as i32)));
        }
        columns.push(keys.column(0).clone());
        let batch = RecordBatch::try_new(self.result_schema(with_key_index), columns)?;
        Ok(LookupAnswer { rows: n, message: IpcMessage::encode(&batch)? })
    }
}

/// The front door over `engine` on 127.0.0.1:0, stopped when dropped.
struct TestFixture {
    client: FlightServiceClient<Channel>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl TestFixture {
    async fn start(engine: FakeEngine, max_message_bytes: usize) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = crate::flight::flight_service(Arc::new(engine), 64 << 20, max_message_bytes, 256 << 20, 1);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let settings =
            crate::flight::transport::Http2Settings { stream_window: 1 << 20, connection_window: 1 << 20, max_frame_size: 1 << 20 };
        tokio::spawn(crate::flight::transport::serve(listener, service, settings, async {
            let _ = stopped.await;
        }));
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
        let client = FlightServiceClient::new(channel);
        Self { client, _stop: stop }
    }
}

fn put_stream(descriptor: FlightDescriptor, batches: Vec<RecordBatch>) -> impl futures::Stream<Item = FlightData> {
    let schema = batches.first().map(|b| b.schema()).unwrap_or_else(schema);
    let mut messages = vec![FlightData::from(SchemaAsIpc::new(&schema, &IpcWriteOptions::default())).with_descriptor(descriptor)];
    for b in &batches {
        let message = IpcMessage::encode(b).unwrap();
        messages.push(FlightData {
            flight_descriptor: None,
            data_header: message.header,
            data_body: message.body.into_contiguous(),
            app_metadata: vec![].into(),
        });
    }
    futures::stream::iter(messages)
}

#[tokio::test]
async fn given_engine_errors_when_an_action_fails_should_answer_each_contract_code_with_its_message() {
    let kinds = vec![
        (Error::invalid("bad option \"x\""), Code::InvalidArgument),
        (Error::NotFound("table db.t does not exist".into()), Code::NotFound),
        (Error::AlreadyExists("table db.t exists".into()), Code::AlreadyExists),
        (Error::FailedPrecondition("sequence gap".into()), Code::FailedPrecondition),
        (Error::ResourceExhausted("too big".into()), Code::ResourceExhausted),
        (Error::Unimplemented("lake".into()), Code::Unimplemented),
        (Error::DataLoss { location: "bucket-0 offsets 0..10".into(), detail: "crc".into() }, Code::DataLoss),
        (Error::WritesStopped { location: "bucket-0".into(), detail: "fsync failed".into() }, Code::Unavailable),
        (Error::Arrow(arrow_schema::ArrowError::IpcError("stored bytes".into())), Code::Internal),
    ];
    let expected: Vec<(Code, String)> = kinds.iter().map(|(e, c)| (*c, e.to_string())).collect();
    let engine = FakeEngine { get_table_errors: Mutex::new(kinds.into_iter().rev().map(|(e, _)| e).collect()), ..Default::default() };
    let mut f = TestFixture::start(engine, 1 << 20).await;
    for (code, message) in expected {
        let action = Action::new("get_table", r#"{"database": "db", "table": "t"}"#);
        let status = f.client.do_action(action).await.unwrap_err();
        assert_eq!((status.code(), status.message()), (code, message.as_str()));
    }
    let status = f.client.do_action(Action::new("get_tabel", "{}")).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "an unknown action is the client's mistake");
}

#[tokio::test]
async fn given_scan_that_fails_midway_when_read_should_deliver_the_batches_before_the_error_in_order() {
    let chunk = |bucket: u32, base_offset: u64, values: &[i64]| {
        Ok(ScanChunk {
            bucket,
            partition: None,
            base_offset,
            high_watermark: 99,
            rows: values.len() as u64,
            message: IpcMessage::encode(&ids(values)).unwrap(),
            end_offset: None,
        })
    };
    let engine = FakeEngine {
        scan_items: Mutex::new(vec![
            chunk(0, 0, &[1, 2]),
            chunk(1, 5, &[3]),
            Err(Error::DataLoss { location: "db.t/bucket-1 offsets 6..9".into(), detail: "CRC mismatch".into() }),
        ]),
        ..Default::default()
    };
    let mut f = TestFixture::start(engine, 1 << 20).await;
    let ticket = Ticket::new(r#"{"scan": "log", "database": "db", "table": "t"}"#);
    let mut stream = f.client.do_get(ticket).await.unwrap().into_inner();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(Schema::try_from(&first).unwrap(), *schema(), "the schema comes first");
    let mut seen = vec![];
    let error = loop {
        match stream.next().await.unwrap() {
            Ok(data) => {
                let metadata: BatchMetadata = serde_json::from_slice(&data.app_metadata).unwrap();
                let batch = IpcMessage { header: data.data_header, body: data.data_body.into() }.decode(&schema()).unwrap();
                seen.push((
                    metadata.bucket,
                    metadata.base_offset,
                    batch.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec(),
                ));
            }
            Err(status) => break status,
        }
    };
    assert_eq!(seen, vec![(0, 0, vec![1, 2]), (1, 5, vec![3])]);
    assert_eq!(error.code(), Code::DataLoss);
    assert!(error.message().contains("offsets 6..9"), "{}", error.message());
    assert!(stream.next().await.is_none(), "the error ends the stream");
}

#[tokio::test]
async fn given_write_failing_on_the_third_batch_when_put_should_ack_the_first_two_in_order_then_fail() {
    let engine =
        FakeEngine { fail_write_at: Some((2, || Error::FailedPrecondition("sequence gap for writer 7".into()))), ..Default::default() };
    let written = engine.written.clone();
    let mut f = TestFixture::start(engine, 1 << 20).await;
    let batches: Vec<RecordBatch> = (0..5).map(|i| ids(&[i, i + 100])).collect();
    let mut acks =
        f.client.do_put(put_stream(FlightDescriptor::new_path(vec!["db".into(), "t".into()]), batches)).await.unwrap().into_inner();
    let mut offsets = vec![];
    let error = loop {
        match acks.next().await.expect("the stream ends with the error") {
            Ok(result) => offsets.push(serde_json::from_slice::<PutAck>(&result.app_metadata).unwrap().buckets[0].base_offset),
            Err(status) => break status,
        }
    };
    assert_eq!(offsets, vec![0, 10], "acks in batch order, up to the failure");
    assert_eq!(error.code(), Code::FailedPrecondition);
    assert!(acks.next().await.is_none());
    assert_eq!(written.lock().len(), 3, "nothing is written after the failing batch");
}

#[tokio::test]
async fn given_schema_the_writer_refuses_when_put_should_fail_before_any_data_is_written() {
    let engine = FakeEngine::default();
    let written = engine.written.clone();
    let mut f = TestFixture::start(engine, 1 << 20).await;
    let other = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)])),
        vec![Arc::new(Int64Array::from(vec![1]))],
    )
    .unwrap();
    let outcome = f.client.do_put(put_stream(FlightDescriptor::new_path(vec!["db".into(), "t".into()]), vec![other])).await;
    let status = match outcome {
        Err(status) => status,
        Ok(response) => response.into_inner().next().await.unwrap().unwrap_err(),
    };
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("\"id\""), "{}", status.message());
    assert!(written.lock().is_empty());
}

#[tokio::test]
async fn given_message_over_the_limit_when_put_should_be_resource_exhausted() {
    let mut f = TestFixture::start(FakeEngine::default(), 64 * 1024).await;
    let big = ids(&(0..100_000).collect::<Vec<i64>>());
    let outcome = f.client.do_put(put_stream(FlightDescriptor::new_path(vec!["db".into(), "t".into()]), vec![big])).await;
    let status = match outcome {
        Err(status) => status,
        Ok(response) => response.into_inner().next().await.unwrap().unwrap_err(),
    };
    assert_eq!(status.code(), Code::ResourceExhausted, "{status}");
}

#[tokio::test]
async fn given_key_batches_when_exchanged_should_answer_each_in_order_after_the_schema() {
    let mut f = TestFixture::start(FakeEngine::default(), 1 << 20).await;
    let descriptor = FlightDescriptor::new_cmd(r#"{"lookup": "primary_key", "database": "db", "table": "t"}"#);
    let input = put_stream(descriptor, vec![ids(&[5]), ids(&[7, 8])]);
    let mut answers = f.client.do_exchange(input).await.unwrap().into_inner();
    let schema_message = answers.next().await.unwrap().unwrap();
    let result_schema = Arc::new(Schema::try_from(&schema_message).unwrap());
    assert_eq!(result_schema.field(0).name(), KEY_INDEX_COLUMN);
    let mut answered = vec![];
    while let Some(data) = answers.next().await {
        let data = data.unwrap();
        let batch = IpcMessage { header: data.data_header, body: data.data_body.into() }.decode(&result_schema).unwrap();
        answered.push(batch.column(1).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec());
    }
    assert_eq!(answered, vec![vec![5], vec![7, 8]]);
}

#[tokio::test]
async fn given_handshake_when_asked_should_report_the_contract_version() {
    let mut f = TestFixture::start(FakeEngine::default(), 1 << 20).await;
    let request = futures::stream::once(async { HandshakeRequest { protocol_version: CONTRACT_VERSION, payload: Default::default() } });
    let response = f.client.handshake(request).await.unwrap().into_inner().next().await.unwrap().unwrap();
    assert_eq!(response.protocol_version, CONTRACT_VERSION);
    let newer = futures::stream::once(async { HandshakeRequest { protocol_version: CONTRACT_VERSION + 1, payload: Default::default() } });
    assert_eq!(f.client.handshake(newer).await.unwrap_err().code(), Code::FailedPrecondition);
}
