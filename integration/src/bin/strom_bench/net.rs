//! Raw Arrow Flight traffic: connections, JSON actions, pipelined DoPut writers and decoding
//! DoGet readers. No Strom client: the same code drives Strom and the pyarrow peer.

use crate::procs::Res;
use crate::stats;
use arrow_array::RecordBatch;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::{Action, FlightData, FlightDescriptor, FlightInfo, Ticket};
use arrow_schema::SchemaRef;
use futures::{Stream, StreamExt};
use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use strom_flight_api::PutAck;
use tokio::sync::Semaphore;
use tonic::transport::{Channel, Endpoint};

/// How long one RPC may go without progress before the bench gives up.
pub const STALL: Duration = Duration::from_secs(60);

/// HTTP/2 flow-control windows of the bench's client connections (both sides get the same).
#[derive(Debug, Clone, Copy)]
pub struct Windows {
    pub stream: u32,
    pub connection: u32,
    /// SETTINGS_MAX_FRAME_SIZE of the client (None: h2's 16 KiB).
    pub max_frame: Option<u32>,
}

/// A new HTTP/2 connection (each writer / reader gets its own, like separate clients).
pub async fn connect(url: &str, w: Windows) -> Res<Channel> {
    let endpoint = Endpoint::from_shared(url.to_string())?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .initial_stream_window_size(w.stream)
        .initial_connection_window_size(w.connection)
        .max_frame_size(w.max_frame);
    Ok(tokio::time::timeout(Duration::from_secs(15), endpoint.connect()).await.map_err(|_| format!("connecting to {url} timed out"))??)
}

pub fn client(channel: Channel) -> FlightServiceClient<Channel> {
    FlightServiceClient::new(channel).max_decoding_message_size(usize::MAX).max_encoding_message_size(usize::MAX)
}

/// Runs a DoAction with a JSON body; returns the first result body as JSON.
pub async fn action(channel: &Channel, kind: &str, body: &serde_json::Value) -> Res<serde_json::Value> {
    let mut c = client(channel.clone());
    let request = Action { r#type: kind.into(), body: serde_json::to_vec(body)?.into() };
    let fut = async move {
        let mut results = c.do_action(request).await?.into_inner();
        let mut first = None;
        while let Some(r) = results.message().await? {
            if first.is_none() {
                first = Some(r.body);
            }
        }
        Ok::<_, tonic::Status>(first)
    };
    let body = tokio::time::timeout(STALL, fut)
        .await
        .map_err(|_| format!("action {kind} timed out"))?
        .map_err(|s| format!("action {kind}: {} {}", s.code(), s.message()))?;
    match body {
        Some(b) if !b.is_empty() => Ok(serde_json::from_slice(&b)?),
        _ => Ok(serde_json::Value::Null),
    }
}

pub async fn get_flight_info(channel: &Channel, path: &[&str]) -> Res<FlightInfo> {
    let mut c = client(channel.clone());
    let d = FlightDescriptor::new_path(path.iter().map(|s| s.to_string()).collect());
    Ok(tokio::time::timeout(STALL, c.get_flight_info(d)).await.map_err(|_| "GetFlightInfo timed out")??.into_inner())
}

/// The Flight messages of a batch list: one schema message, then exactly one record-batch
/// message per batch (`batches_to_flight_data` never splits a batch, unlike the streaming
/// encoder's 2 MiB default, so every batch gets exactly one PutResult).
pub fn encode(schema: &SchemaRef, batches: Vec<RecordBatch>) -> Res<(FlightData, Vec<(FlightData, u64)>)> {
    let rows: Vec<u64> = batches.iter().map(|b| b.num_rows() as u64).collect();
    let mut messages = arrow_flight::utils::batches_to_flight_data(schema, batches)?;
    if messages.len() != rows.len() + 1 {
        return Err(format!("expected {} Flight messages, got {}", rows.len() + 1, messages.len()).into());
    }
    let schema_message = messages.remove(0);
    Ok((schema_message, messages.into_iter().zip(rows).collect()))
}

pub fn ipc_len(d: &FlightData) -> u64 {
    (d.data_header.len() + d.data_body.len()) as u64
}

/// What one DoPut writer achieved.
pub struct PutOutcome {
    pub latency: Histogram<u64>,
    pub rows: u64,
    pub bytes: u64,
    pub batches: u64,
    /// First batch sent → last PutResult received.
    pub elapsed: Duration,
}

/// Parameters of one pipelined DoPut stream.
pub struct PutPlan {
    pub descriptor: FlightDescriptor,
    pub schema_message: FlightData,
    /// Pre-encoded batches, sent round-robin.
    pub pool: Arc<Vec<(FlightData, u64)>>,
    pub inflight: usize,
    pub duration: Duration,
    pub max_batches: u64,
}

/// One DoPut stream keeping up to `inflight` batches unacknowledged. Latency of a batch =
/// sending it → receiving its PutResult (the server acks in order, one per batch).
pub async fn put_stream(channel: Channel, plan: PutPlan, progress: Arc<AtomicU64>) -> Res<PutOutcome> {
    let mut c = client(channel);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<FlightData>(plan.inflight.max(1) + 1);
    let permits = Arc::new(Semaphore::new(plan.inflight.max(1)));
    let pending: Arc<Mutex<VecDeque<(Instant, u64)>>> = Arc::new(Mutex::new(VecDeque::new()));
    let mut first = plan.schema_message.clone();
    first.flight_descriptor = Some(plan.descriptor.clone());
    tx.send(first).await.map_err(|_| "request stream closed")?;
    let start = Instant::now();
    let sender = {
        let (permits, pending, pool) = (permits.clone(), pending.clone(), plan.pool.clone());
        let (duration, max_batches) = (plan.duration, plan.max_batches);
        tokio::spawn(async move {
            let (mut sent, mut bytes) = (0u64, 0u64);
            while sent < max_batches && start.elapsed() < duration {
                let Ok(permit) = permits.acquire().await else { break };
                permit.forget();
                let (message, rows) = &pool[(sent % pool.len() as u64) as usize];
                pending.lock().push_back((Instant::now(), *rows));
                bytes += ipc_len(message);
                if tx.send(message.clone()).await.is_err() {
                    break;
                }
                sent += 1;
            }
            (sent, bytes)
        })
    };
    let request = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let acked = async {
        let mut acks = c.do_put(request).await?.into_inner();
        let mut latency = stats::histogram();
        let (mut rows, mut batches) = (0u64, 0u64);
        while let Some(result) = tokio::time::timeout(STALL, acks.message()).await.map_err(|_| "no PutResult for 60 s")?? {
            let (sent_at, expected) = pending.lock().pop_front().ok_or("a PutResult arrived for a batch that was not sent")?;
            stats::record(&mut latency, sent_at.elapsed());
            permits.add_permits(1);
            let ack: PutAck =
                serde_json::from_slice(&result.app_metadata).map_err(|e| format!("PutResult app_metadata is not a put ack: {e}"))?;
            if ack.rows != expected {
                return Err(format!("ack for {} rows, batch had {expected}", ack.rows).into());
            }
            rows += ack.rows;
            batches += 1;
            progress.fetch_add(ack.rows, Ordering::Relaxed);
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((latency, rows, batches))
    };
    let result = acked.await;
    let elapsed = start.elapsed();
    permits.close();
    let (sent, bytes) = sender.await?;
    let (latency, rows, batches) = result.map_err(|e| format!("DoPut: {e}"))?;
    if batches != sent {
        return Err(format!("DoPut: {sent} batches sent, {batches} acknowledged").into());
    }
    Ok(PutOutcome { latency, rows, bytes, batches, elapsed })
}

/// What one DoGet returned.
pub struct ScanOutcome {
    /// Time between consecutive decoded batches (the first from the request).
    pub gaps: Histogram<u64>,
    pub rows: u64,
    pub ipc_bytes: u64,
    pub body_bytes: u64,
    pub messages: u64,
}

#[derive(Default)]
struct WireCounters {
    ipc: AtomicU64,
    body: AtomicU64,
    messages: AtomicU64,
}

/// How a scan client reads a DoGet answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanClient {
    /// arrow-flight's `FlightRecordBatchStream`, as a third-party arrow-rs client decodes (it
    /// copies every message body before decoding it).
    Decoding,
    /// flight-api's `BatchDecoder` (Strom's own client, under the JNI bridge): decodes each
    /// body where it was received. Scenario `…-zc`.
    ZeroCopy,
    /// Reads every message and counts the rows its header declares, body not decoded: the
    /// server's own pace, when a decoding client is the bottleneck. Scenario `…-raw`.
    Raw,
}

impl ScanClient {
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "decoding" => Ok(Self::Decoding),
            "zerocopy" => Ok(Self::ZeroCopy),
            "raw" => Ok(Self::Raw),
            other => Err(format!("--scan-clients: unknown client {other:?} (decoding, zerocopy, raw)")),
        }
    }

    /// What its scenario names end with.
    pub fn suffix(self) -> &'static str {
        match self {
            Self::Decoding => "",
            Self::ZeroCopy => "-zc",
            Self::Raw => "-raw",
        }
    }
}

/// A DoGet read by `kind` of client (decoders decompress buffers), counting IPC bytes as they
/// arrive.
pub async fn scan(channel: Channel, ticket: Vec<u8>, progress: Arc<AtomicU64>, kind: ScanClient) -> Res<ScanOutcome> {
    let mut c = client(channel);
    let start = Instant::now();
    let response =
        tokio::time::timeout(STALL, c.do_get(Ticket { ticket: ticket.into() })).await.map_err(|_| "DoGet timed out")??.into_inner();
    let counters = Arc::new(WireCounters::default());
    let mut batches: std::pin::Pin<Box<dyn Stream<Item = Result<RecordBatch, FlightError>> + Send>> = match kind {
        ScanClient::Raw => return scan_raw(response, start, progress).await,
        ScanClient::Decoding => Box::pin(decode_counted(response, counters.clone())),
        ScanClient::ZeroCopy => {
            let decoder = strom_flight_api::BatchDecoder::new(counted(response, counters.clone()));
            Box::pin(decoder.filter_map(|decoded| async move {
                match decoded {
                    Ok(d) => match d.payload {
                        arrow_flight::decode::DecodedPayload::RecordBatch(batch) => Some(Ok(batch)),
                        _ => None,
                    },
                    Err(e) => Some(Err(e)),
                }
            }))
        }
    };
    let mut gaps = stats::histogram();
    let mut rows = 0u64;
    let mut last = start;
    while let Some(batch) = tokio::time::timeout(STALL, batches.next()).await.map_err(|_| "DoGet stalled for 60 s")? {
        let batch = batch?;
        let now = Instant::now();
        stats::record(&mut gaps, now - last);
        last = now;
        rows += batch.num_rows() as u64;
        progress.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
    }
    Ok(ScanOutcome {
        gaps,
        rows,
        ipc_bytes: counters.ipc.load(Ordering::Relaxed),
        body_bytes: counters.body.load(Ordering::Relaxed),
        messages: counters.messages.load(Ordering::Relaxed),
    })
}

/// Reads every message of a DoGet without decoding its body: rows come from each record-batch
/// header, so what is measured is the server and the wire (and tonic's framing), not the
/// client's decoding.
async fn scan_raw(mut response: tonic::Streaming<FlightData>, start: Instant, progress: Arc<AtomicU64>) -> Res<ScanOutcome> {
    let mut out = ScanOutcome { gaps: stats::histogram(), rows: 0, ipc_bytes: 0, body_bytes: 0, messages: 0 };
    let mut last = start;
    while let Some(data) = tokio::time::timeout(STALL, response.message()).await.map_err(|_| "DoGet stalled for 60 s")?? {
        out.ipc_bytes += ipc_len(&data);
        out.body_bytes += data.data_body.len() as u64;
        out.messages += 1;
        let header = arrow_ipc::root_as_message(&data.data_header).map_err(|e| format!("not an IPC message: {e}"))?;
        if let Some(batch) = header.header_as_record_batch() {
            let now = Instant::now();
            stats::record(&mut out.gaps, now - last);
            last = now;
            out.rows += batch.length() as u64;
            progress.fetch_add(batch.length() as u64, Ordering::Relaxed);
        }
    }
    Ok(out)
}

/// The messages of a DoGet, counted as they arrive.
fn counted(
    response: tonic::Streaming<FlightData>,
    counters: Arc<WireCounters>,
) -> impl Stream<Item = Result<FlightData, FlightError>> + Send + 'static {
    response.map(move |m| {
        if let Ok(d) = &m {
            counters.ipc.fetch_add(ipc_len(d), Ordering::Relaxed);
            counters.body.fetch_add(d.data_body.len() as u64, Ordering::Relaxed);
            counters.messages.fetch_add(1, Ordering::Relaxed);
        }
        m.map_err(FlightError::from)
    })
}

fn decode_counted(response: tonic::Streaming<FlightData>, counters: Arc<WireCounters>) -> FlightRecordBatchStream {
    FlightRecordBatchStream::new_from_flight_data(counted(response, counters))
}

/// A DoGet whose batches are handed out one by one (for follow scans).
pub async fn open_scan(channel: Channel, ticket: Vec<u8>) -> Res<impl Stream<Item = Result<RecordBatch, FlightError>> + Unpin> {
    let mut c = client(channel);
    let response =
        tokio::time::timeout(STALL, c.do_get(Ticket { ticket: ticket.into() })).await.map_err(|_| "DoGet timed out")??.into_inner();
    Ok(decode_counted(response, Arc::new(WireCounters::default())))
}

/// A progress bar that shows time against a budget and the rows moved so far.
pub fn ticker(pb: &ProgressBar, rows: Arc<AtomicU64>, budget: Duration) -> tokio::task::JoinHandle<()> {
    let pb = pb.clone();
    tokio::spawn(async move {
        let start = Instant::now();
        loop {
            let elapsed = start.elapsed();
            pb.set_position(elapsed.min(budget).as_millis() as u64);
            pb.set_message(format!("{} rows", stats::fmt_rate(rows.load(Ordering::Relaxed) as f64)));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// Encodes single record batches as Flight messages (for key batches built on the fly).
pub struct BatchEncoder {
    generator: arrow_ipc::writer::IpcDataGenerator,
    tracker: arrow_ipc::writer::DictionaryTracker,
    options: arrow_ipc::writer::IpcWriteOptions,
    context: arrow_ipc::writer::CompressionContext,
}

impl Default for BatchEncoder {
    fn default() -> Self {
        Self {
            generator: Default::default(),
            tracker: arrow_ipc::writer::DictionaryTracker::new(false),
            options: Default::default(),
            context: Default::default(),
        }
    }
}

impl BatchEncoder {
    pub fn schema(&self, schema: &SchemaRef) -> FlightData {
        arrow_flight::SchemaAsIpc::new(schema, &self.options).into()
    }

    /// One record-batch message (the bench's key batches have no dictionaries).
    pub fn batch(&mut self, batch: &RecordBatch) -> Res<FlightData> {
        let (dictionaries, message) = self.generator.encode(batch, &mut self.tracker, &self.options, &mut self.context)?;
        if !dictionaries.is_empty() {
            return Err("dictionary-encoded key batches are not supported by the bench".into());
        }
        Ok(message.into())
    }
}

/// A DoExchange lookup stream: the CMD descriptor and the key schema go first, then each key
/// batch sent is answered by one result batch, in order.
pub struct Exchange {
    tx: tokio::sync::mpsc::Sender<FlightData>,
    call: Option<tokio::task::JoinHandle<Result<tonic::Streaming<FlightData>, tonic::Status>>>,
    answers: Option<FlightRecordBatchStream>,
    counters: Arc<WireCounters>,
    encoder: BatchEncoder,
    /// IPC bytes of the key batches sent.
    pub sent_bytes: u64,
}

impl Exchange {
    pub async fn open(channel: Channel, command: &serde_json::Value, key_schema: &SchemaRef) -> Res<Self> {
        let mut c = client(channel);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<FlightData>(64);
        let encoder = BatchEncoder::default();
        let mut first = encoder.schema(key_schema);
        first.flight_descriptor = Some(FlightDescriptor::new_cmd(serde_json::to_vec(command)?));
        tx.send(first).await.map_err(|_| "DoExchange request stream closed")?;
        let request = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
        // The call resolves with the response headers, which a server may send only with its
        // first answer: keep it running while key batches are sent.
        let call = tokio::spawn(async move { c.do_exchange(request).await.map(|r| r.into_inner()) });
        Ok(Self { tx, call: Some(call), answers: None, counters: Default::default(), encoder, sent_bytes: 0 })
    }

    /// Sends a pre-encoded key batch.
    pub async fn send_encoded(&mut self, message: FlightData) -> Res<()> {
        self.sent_bytes += ipc_len(&message);
        self.tx.send(message).await.map_err(|_| "DoExchange request stream closed early".into())
    }

    pub async fn send(&mut self, batch: &RecordBatch) -> Res<()> {
        let message = self.encoder.batch(batch)?;
        self.send_encoded(message).await
    }

    /// The next answer batch.
    pub async fn recv(&mut self) -> Res<RecordBatch> {
        if self.answers.is_none() {
            let call = self.call.take().ok_or("DoExchange call already failed")?;
            let response = tokio::time::timeout(STALL, call).await.map_err(|_| "DoExchange: no response for 60 s")??;
            let response = response.map_err(|s| format!("DoExchange: {} {}", s.code(), s.message()))?;
            self.answers = Some(decode_counted(response, self.counters.clone()));
        }
        let answers = self.answers.as_mut().expect("set above");
        match tokio::time::timeout(STALL, answers.next()).await.map_err(|_| "DoExchange: no answer for 60 s")? {
            Some(batch) => Ok(batch.map_err(|e| format!("DoExchange: {e}"))?),
            None => Err("DoExchange: the server ended the stream before answering".into()),
        }
    }

    /// IPC bytes of the answers received so far.
    pub fn received_bytes(&self) -> u64 {
        self.counters.ipc.load(Ordering::Relaxed)
    }
}
