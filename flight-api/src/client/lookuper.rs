//! Lookups on primary-key tables: a pipelined [`Lookuper`] over one long-lived `DoExchange`
//! stream, and one-shot lookups with JSON keys in a `DoGet` ticket.
//!
//! # How the lookuper works
//! * **One stream, many requests**: the first message carries the CMD descriptor (the lookup
//!   JSON without `keys`) and the key schema; then every key batch is one request, answered by
//!   one record batch, in order (`_key_index` first: the row of the request it answers).
//!   [`Lookuper::submit`] returns at once with a [`LookupFuture`]; a background task reads the
//!   answers and resolves the futures FIFO, so up to `max_in_flight` requests overlap.
//! * **Large key batches**: a batch above `max_flight_data_size` is sent as several messages
//!   (row slices). The node answers each message on its own, with `_key_index` relative to
//!   the slice, so the lookuper shifts each answer by its slice's first row and concatenates
//!   them: the caller sees one answer per call with indexes into its own batch.
//! * **Retries**: lookups only read (or, with `insert_if_not_exists`, insert keys that a retry
//!   then finds), so after a broken stream the unanswered messages are simply sent again on a
//!   new stream, with backoff. When the node rejects a message (e.g. a key that does not fit
//!   its column) the stream ends with that status; answers come in order, so the rejected
//!   message is the oldest unanswered one: its request fails with the node's code, and the
//!   requests after it go on over a new stream. After `max_retries` failed reconnects the
//!   waiting requests fail, but the lookuper stays usable: the next call reconnects.
//! * **A node that stops answering**: when the oldest sent message has waited
//!   `answer_timeout`, the stream is treated as broken (`DEADLINE_EXCEEDED`) and retried the
//!   same way, so a stuck node or a silently dead connection fails requests instead of
//!   hanging them.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::decode::BatchDecoder;
use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{Array, ArrayRef, Int32Array, RecordBatch};
use arrow_flight::decode::DecodedPayload;
use arrow_flight::encode::GRPC_TARGET_MAX_FLIGHT_SIZE_BYTES;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::{FlightData, FlightDescriptor, SchemaAsIpc, Ticket};
use arrow_ipc::writer::{CompressionContext, DictionaryTracker, IpcDataGenerator, IpcWriteOptions};
use arrow_schema::{DataType, SchemaRef};
use futures::channel::mpsc as fmpsc;
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::Streaming;

use super::StromClient;
use crate::contract::{LookupKind, LookupRequest, TicketRequest, KEY_INDEX_COLUMN};
use crate::error::{duplicate_error, from_flight, from_status, Code, Error, Result};

/// What a [`Lookuper`] returns and how it pipelines and retries.
#[derive(Debug, Clone)]
pub struct LookupOptions {
    /// Columns to return (the key columns are always returned); all when `None`.
    pub columns: Option<Vec<String>>,
    /// Insert keys not found (key, next auto-increment id, nulls elsewhere) and return them.
    pub insert_if_not_exists: bool,
    /// Partition of a partitioned table.
    pub partition: Option<String>,
    /// Most key messages sent but not yet answered.
    pub max_in_flight: usize,
    /// Reconnect attempts in a row (without any answer in between) before failing the
    /// waiting requests.
    pub max_retries: u32,
    /// Longest time spent retrying in a row.
    pub retry_deadline: Duration,
    /// First backoff; doubles per attempt up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Approximate size at which a key batch is sent as several messages.
    pub max_flight_data_size: usize,
    /// Longest wait for the answer to the oldest key message sent on the stream. Past it the
    /// stream is dropped and its unanswered messages go out again on a new one, like after a
    /// broken stream (so a node that stopped answering fails the requests within about
    /// `answer_timeout + retry_deadline`). `None` waits forever. One timer per stream, not
    /// per key: a caller can turn off timers of its own per lookup (Flink's per-row async
    /// timeout) and rely on this one.
    pub answer_timeout: Option<Duration>,
}

impl Default for LookupOptions {
    fn default() -> Self {
        Self {
            columns: None,
            insert_if_not_exists: false,
            partition: None,
            max_in_flight: 16,
            max_retries: 10,
            retry_deadline: Duration::from_secs(30),
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            max_flight_data_size: GRPC_TARGET_MAX_FLIGHT_SIZE_BYTES,
            answer_timeout: Some(Duration::from_secs(30)),
        }
    }
}

impl StromClient {
    /// Opens a point lookuper: key batches hold the primary-key columns (by name); each answer
    /// holds `_key_index` and the row of every key found. Nothing is sent until the first
    /// lookup, whose schema becomes the key schema.
    pub fn lookuper(&self, database: &str, table: &str, options: LookupOptions) -> Lookuper {
        Lookuper::new(self.inner.clone(), &self.runtime, LookupKind::PrimaryKey, database, table, options)
    }

    /// Opens a prefix lookuper: key batches hold the bucket-key columns (a strict prefix of
    /// the primary key); each answer holds `_key_index` and every row with that prefix, in
    /// key order, keys in request order.
    pub fn prefix_lookuper(&self, database: &str, table: &str, options: LookupOptions) -> Lookuper {
        Lookuper::new(self.inner.clone(), &self.runtime, LookupKind::Prefix, database, table, options)
    }

    /// A one-shot lookup with JSON keys (`{"lookup": ..., "keys": [[..], ..]}` as a `DoGet`
    /// ticket): the rows found, in the order of the keys (missing keys left out).
    pub async fn lookup_json(&self, request: LookupRequest) -> Result<Vec<RecordBatch>> {
        if request.keys.is_empty() {
            return Err(Error::InvalidArgument("lookup_json needs at least one key".into()));
        }
        let mut client = self.inner.clone();
        let stream = client.do_get(Ticket::new(TicketRequest::Lookup(request).to_json())).await.map_err(from_status)?.into_inner();
        let decoder = BatchDecoder::new(stream.map_err(|status| FlightError::Tonic(Box::new(status))));
        let batches: Vec<RecordBatch> = decoder
            .try_filter_map(|decoded| async move {
                Ok(match decoded.payload {
                    DecodedPayload::RecordBatch(batch) => Some(batch),
                    _ => None,
                })
            })
            .try_collect()
            .await
            .map_err(from_flight)?;
        Ok(batches)
    }
}

/// Resolves to the answer of one submitted key batch.
#[derive(Debug)]
pub struct LookupFuture {
    receiver: oneshot::Receiver<Result<RecordBatch>>,
}

impl Future for LookupFuture {
    type Output = Result<RecordBatch>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.receiver)
            .poll(cx)
            .map(|r| r.unwrap_or_else(|_| Err(Error::Transport("lookuper stopped before the keys were answered".into()))))
    }
}

/// Looks up key batches in one primary-key table over a pipelined `DoExchange` stream. See
/// the module documentation for the retry rules.
pub struct Lookuper {
    kind: LookupKind,
    commands: mpsc::Sender<Command>,
    slots: Arc<Semaphore>,
    max_in_flight: usize,
    max_flight_data_size: usize,
    key_schema: Option<SchemaRef>,
    schema_sent: bool,
    driver: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Lookuper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lookuper").field("kind", &self.kind).field("key_schema", &self.key_schema).finish()
    }
}

enum Command {
    Submit {
        schema_message: Option<FlightData>,
        messages: Vec<KeyMessage>,
        done: oneshot::Sender<Result<RecordBatch>>,
        permit: OwnedSemaphorePermit,
    },
    Close(oneshot::Sender<Result<()>>),
}

impl Lookuper {
    /// Spawns the driver onto `runtime` (the client's), so a lookuper can be opened from any
    /// thread.
    fn new(
        client: FlightServiceClient<Channel>,
        runtime: &Handle,
        kind: LookupKind,
        database: &str,
        table: &str,
        options: LookupOptions,
    ) -> Self {
        let request = LookupRequest {
            lookup: kind,
            database: database.into(),
            table: table.into(),
            partition: options.partition.clone(),
            keys: Vec::new(),
            columns: options.columns.clone(),
            insert_if_not_exists: options.insert_if_not_exists,
        };
        let max_in_flight = options.max_in_flight.max(1);
        let (commands, receiver) = mpsc::channel(max_in_flight);
        let driver = Driver {
            client,
            descriptor: serde_json::to_vec(&request).expect("serializable"),
            options: options.clone(),
            schema_message: None,
            wires: VecDeque::new(),
            requests: VecDeque::new(),
            next_request: 0,
            sent: 0,
            conn: None,
            streak: None,
            closing: None,
        };
        Lookuper {
            kind,
            commands,
            slots: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            max_flight_data_size: options.max_flight_data_size,
            key_schema: None,
            schema_sent: false,
            driver: Some(runtime.spawn(driver.run(receiver))),
        }
    }

    /// `PrimaryKey` (point lookups) or `Prefix`.
    pub fn kind(&self) -> LookupKind {
        self.kind
    }

    /// The schema of the first key batch, which every later one must have.
    pub fn key_schema(&self) -> Option<&SchemaRef> {
        self.key_schema.as_ref()
    }

    /// Looks up a batch of keys and waits for the answer: `_key_index` (int32, the row of
    /// `keys` a result row answers) first, then the returned columns.
    pub async fn lookup(&mut self, keys: RecordBatch) -> Result<RecordBatch> {
        self.submit(keys).await?.await
    }

    /// Sends a batch of keys without waiting for the answer (waits only for an in-flight
    /// slot); answers resolve in submission order.
    pub async fn submit(&mut self, keys: RecordBatch) -> Result<LookupFuture> {
        match &self.key_schema {
            None => {
                if let Some(field) = keys.schema().fields().iter().find(|f| matches!(f.data_type(), DataType::Dictionary(..))) {
                    return Err(Error::InvalidArgument(format!("key column {:?} is dictionary-encoded; decode it first", field.name())));
                }
                self.key_schema = Some(keys.schema());
            }
            Some(schema) if schema.fields() != keys.schema().fields() => {
                return Err(Error::InvalidArgument(format!(
                    "key batch schema {:?} differs from the lookuper's key schema {:?}; use one lookuper per key schema",
                    keys.schema().fields(),
                    schema.fields()
                )));
            }
            Some(_) => {}
        }
        let (schema_message, messages) = encode_keys(&keys, self.max_flight_data_size)?;
        let permits = u32::try_from(messages.len().min(self.max_in_flight)).unwrap_or(u32::MAX);
        let permit = self.slots.clone().acquire_many_owned(permits).await.map_err(|_| Error::Closed("lookuper is closed".into()))?;
        let (done, receiver) = oneshot::channel();
        let schema_message = if self.schema_sent { None } else { Some(schema_message) };
        if self.commands.send(Command::Submit { schema_message, messages, done, permit }).await.is_err() {
            return Err(lookuper_stopped());
        }
        self.schema_sent = true;
        Ok(LookupFuture { receiver })
    }

    /// Waits for every submitted lookup to be answered or failed, then ends the stream.
    pub async fn close(mut self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Close(tx)).await.is_err() {
            return Err(lookuper_stopped());
        }
        let result = rx.await.unwrap_or_else(|_| Err(lookuper_stopped()));
        if let Some(driver) = self.driver.take() {
            let _ = driver.await;
        }
        result
    }
}

impl Drop for Lookuper {
    fn drop(&mut self) {
        if let Some(driver) = &self.driver {
            driver.abort();
        }
    }
}

/// The lookuper's driver task is gone: closed, or its runtime shut down.
fn lookuper_stopped() -> Error {
    Error::Closed("the lookuper's task stopped (the lookuper was closed or its runtime shut down)".into())
}

/// One message of a key batch: rows `row_offset..row_offset + rows` of the caller's batch.
struct KeyMessage {
    data: FlightData,
    row_offset: usize,
    rows: usize,
}

/// Encodes a key batch as the schema message and one or more record-batch messages, slicing
/// by rows so each message stays near `max_size` and its first row is known. An empty batch
/// is one empty message (it still gets its one, empty, answer).
fn encode_keys(batch: &RecordBatch, max_size: usize) -> Result<(FlightData, Vec<KeyMessage>)> {
    let options = IpcWriteOptions::default();
    let schema_message: FlightData = SchemaAsIpc::new(batch.schema_ref(), &options).into();
    let size: usize = batch.columns().iter().map(|c| c.get_array_memory_size()).sum();
    let pieces = size.div_ceil(max_size.max(1)).max(1);
    let rows_per_message = batch.num_rows().div_ceil(pieces).max(1);
    let generator = IpcDataGenerator::default();
    let mut tracker = DictionaryTracker::new(false);
    let mut compression = CompressionContext::default();
    let mut messages = Vec::with_capacity(pieces);
    let mut row_offset = 0;
    loop {
        let rows = rows_per_message.min(batch.num_rows() - row_offset);
        let (dictionaries, encoded) = generator.encode(&batch.slice(row_offset, rows), &mut tracker, &options, &mut compression)?;
        if !dictionaries.is_empty() {
            return Err(Error::InvalidArgument("key batches must not hold dictionary-encoded columns".into()));
        }
        messages.push(KeyMessage { data: encoded.into(), row_offset, rows });
        row_offset += rows;
        if row_offset >= batch.num_rows() {
            return Ok((schema_message, messages));
        }
    }
}

/// Checks one answer message against the message it answers and moves its `_key_index`
/// from slice rows to rows of the caller's batch.
fn shift_key_index(answer: RecordBatch, row_offset: usize, rows: usize) -> Result<RecordBatch> {
    let schema = answer.schema();
    let first = schema.fields().first();
    if first.is_none_or(|f| f.name() != KEY_INDEX_COLUMN || f.data_type() != &DataType::Int32) {
        return Err(Error::Protocol(format!("lookup answer must start with {KEY_INDEX_COLUMN} (int32); got {:?}", schema.fields())));
    }
    let index = answer.column(0).as_primitive::<Int32Type>();
    if index.null_count() > 0 {
        return Err(Error::Protocol(format!("lookup answer has a null {KEY_INDEX_COLUMN}")));
    }
    if let Some(bad) = index.values().iter().find(|&&i| i < 0 || i as usize >= rows) {
        return Err(Error::Protocol(format!("lookup answer has {KEY_INDEX_COLUMN} {bad}, but its key message has {rows} rows")));
    }
    if row_offset == 0 {
        return Ok(answer);
    }
    let offset = i32::try_from(row_offset).map_err(|_| Error::InvalidArgument(format!("key batch of more than {} rows", i32::MAX)))?;
    let shifted: ArrayRef = Arc::new(index.values().iter().map(|i| i + offset).collect::<Int32Array>());
    let mut columns = answer.columns().to_vec();
    columns[0] = shifted;
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// The answers of the messages of one request, as one batch.
fn assemble(parts: Vec<RecordBatch>) -> Result<RecordBatch> {
    match parts.len() {
        0 => Err(Error::Protocol("a lookup request got no answer".into())),
        1 => Ok(parts.into_iter().next().expect("one")),
        _ => Ok(arrow_select::concat::concat_batches(&parts[0].schema(), &parts)?),
    }
}

/// A key message not answered yet.
struct Wire {
    data: FlightData,
    request: u64,
    row_offset: usize,
    rows: usize,
    /// When it went out on the current stream (`None` until then).
    sent_at: Option<Instant>,
}

/// A caller request waiting for the answers of its messages.
struct PendingRequest {
    id: u64,
    wires_left: usize,
    parts: Vec<RecordBatch>,
    failure: Option<Error>,
    done: oneshot::Sender<Result<RecordBatch>>,
    _permit: OwnedSemaphorePermit,
}

/// The current DoExchange: the request side is fed through `requests`; the answer side is
/// first the pending call, then the decoded answers.
struct Conn {
    requests: Option<fmpsc::UnboundedSender<FlightData>>,
    state: ConnState,
}

type OpeningCall = BoxFuture<'static, std::result::Result<tonic::Response<Streaming<FlightData>>, tonic::Status>>;

enum ConnState {
    Opening(OpeningCall),
    Open(BatchDecoder),
}

impl Conn {
    /// The next answer batch, `None` at the end of the stream; cancel-safe.
    async fn next(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            match &mut self.state {
                ConnState::Opening(call) => {
                    let stream = call.await.map_err(from_status)?.into_inner().map_err(|status| FlightError::Tonic(Box::new(status)));
                    self.state = ConnState::Open(BatchDecoder::new(stream));
                }
                ConnState::Open(decoder) => match decoder.next().await {
                    None => return Ok(None),
                    Some(Err(e)) => return Err(from_flight(e)),
                    Some(Ok(decoded)) => {
                        if let DecodedPayload::RecordBatch(batch) = decoded.payload {
                            return Ok(Some(batch));
                        }
                    }
                },
            }
        }
    }
}

async fn next_answer(conn: &mut Option<Conn>) -> Result<Option<RecordBatch>> {
    match conn {
        Some(conn) => conn.next().await,
        None => std::future::pending().await,
    }
}

enum Event {
    Command(Option<Command>),
    Answer(Result<Option<RecordBatch>>),
    /// The oldest sent key message waited `answer_timeout` without an answer.
    AnswerOverdue,
}

/// Waits until `deadline`, or forever without one.
async fn overdue(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// Owns the stream, the unanswered messages and the retry state, as one task.
struct Driver {
    client: FlightServiceClient<Channel>,
    descriptor: Vec<u8>,
    options: LookupOptions,
    schema_message: Option<FlightData>,
    /// Unanswered messages in order.
    wires: VecDeque<Wire>,
    /// Unfinished caller requests in order.
    requests: VecDeque<PendingRequest>,
    next_request: u64,
    /// How many wires (from the front) were sent on the current stream.
    sent: usize,
    conn: Option<Conn>,
    /// Retries in a row: attempts and when the first failure happened.
    streak: Option<(u32, Instant)>,
    closing: Option<oneshot::Sender<Result<()>>>,
}

impl Driver {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut commands_open = true;
        loop {
            if !self.wires.is_empty() && self.conn.is_none() {
                self.open();
            }
            self.send_unsent();
            if self.wires.is_empty() {
                if let Some(done) = self.closing.take() {
                    let _ = done.send(self.finish().await);
                    return;
                }
                if !commands_open {
                    return;
                }
            }
            let accept_commands = commands_open && self.closing.is_none();
            let deadline = self.answer_deadline();
            let event = tokio::select! {
                command = commands.recv(), if accept_commands => Event::Command(command),
                answer = next_answer(&mut self.conn), if self.conn.is_some() => Event::Answer(answer),
                () = overdue(deadline), if deadline.is_some() => Event::AnswerOverdue,
            };
            match event {
                Event::Command(None) => commands_open = false,
                Event::Command(Some(Command::Close(done))) => self.closing = Some(done),
                Event::Command(Some(Command::Submit { schema_message, messages, done, permit })) => {
                    if let Some(schema) = schema_message {
                        self.schema_message = Some(schema);
                    }
                    let id = self.next_request;
                    self.next_request += 1;
                    self.requests.push_back(PendingRequest {
                        id,
                        wires_left: messages.len(),
                        parts: Vec::new(),
                        failure: None,
                        done,
                        _permit: permit,
                    });
                    for m in messages {
                        self.wires.push_back(Wire { data: m.data, request: id, row_offset: m.row_offset, rows: m.rows, sent_at: None });
                    }
                }
                Event::Answer(Ok(Some(batch))) => self.on_answer(batch),
                Event::Answer(Ok(None)) => {
                    self.conn = None;
                    if self.sent > 0 {
                        let error = Error::Transport(format!("the node ended the lookup stream with {} key batches unanswered", self.sent));
                        self.retry(error).await;
                    }
                }
                Event::AnswerOverdue => {
                    // The node may be stuck or the connection silently dead: a new stream
                    // (and connection attempt) is the only way to learn which.
                    self.conn = None;
                    let waited = self.options.answer_timeout.unwrap_or_default();
                    let error = Error::Status {
                        code: Code::DeadlineExceeded,
                        message: format!(
                            "the node did not answer a lookup key batch within {waited:?} ({} unanswered on the stream)",
                            self.sent
                        ),
                    };
                    self.retry(error).await;
                }
                Event::Answer(Err(error)) => {
                    self.conn = None;
                    if self.wires.is_empty() {
                        // An idle stream ended (e.g. the node restarted): the next lookup reconnects.
                        tracing::debug!(%error, "idle lookup stream ended");
                    } else if error.is_retriable() {
                        self.retry(error).await;
                    } else {
                        self.on_rejection(error);
                    }
                }
            }
        }
    }

    /// Starts a DoExchange and queues the descriptor + schema message.
    fn open(&mut self) {
        let Some(mut schema) = self.schema_message.clone() else {
            // The first Submit carries the schema message, so this cannot happen.
            self.fail_all(Error::Protocol("lookuper has key batches but no schema message".into()));
            return;
        };
        schema.flight_descriptor = Some(FlightDescriptor::new_cmd(self.descriptor.clone()));
        let (requests, receiver) = fmpsc::unbounded();
        let _ = requests.unbounded_send(schema);
        let mut client = self.client.clone();
        let call = Box::pin(async move { client.do_exchange(receiver).await });
        self.sent = 0;
        self.conn = Some(Conn { requests: Some(requests), state: ConnState::Opening(call) });
    }

    fn send_unsent(&mut self) {
        let Some(requests) = self.conn.as_ref().and_then(|c| c.requests.as_ref()) else { return };
        if self.sent == self.wires.len() {
            return;
        }
        let now = Instant::now();
        while self.sent < self.wires.len() {
            let wire = &mut self.wires[self.sent];
            if requests.unbounded_send(wire.data.clone()).is_err() {
                break;
            }
            wire.sent_at = Some(now);
            self.sent += 1;
        }
    }

    /// When the oldest message sent on the current stream is overdue, if one is out and a
    /// timeout is set.
    fn answer_deadline(&self) -> Option<Instant> {
        let timeout = self.options.answer_timeout?;
        if self.sent == 0 {
            return None;
        }
        self.wires.front()?.sent_at.map(|sent_at| sent_at + timeout)
    }

    fn on_answer(&mut self, batch: RecordBatch) {
        if self.sent == 0 {
            // Nothing is waiting, so nothing can be matched: drop the stream and let the
            // retry path resend whatever comes next on a fresh one.
            tracing::warn!("the node sent a lookup answer with no key batch outstanding; reconnecting");
            self.conn = None;
            return;
        }
        let wire = self.wires.pop_front().expect("sent > 0 implies a wire");
        self.sent -= 1;
        self.streak = None;
        let request = self.requests.front_mut().expect("a wire belongs to a pending request");
        debug_assert_eq!(request.id, wire.request);
        match shift_key_index(batch, wire.row_offset, wire.rows) {
            Ok(part) => request.parts.push(part),
            Err(e) => {
                request.failure.get_or_insert(e);
            }
        }
        request.wires_left -= 1;
        if request.wires_left == 0 {
            let request = self.requests.pop_front().expect("front exists");
            let result = match request.failure {
                Some(e) => Err(e),
                None => assemble(request.parts),
            };
            let _ = request.done.send(result);
        }
    }

    /// A non-retriable status ended the stream: it answers the oldest unanswered message,
    /// whose request fails; the others go out again on a new stream.
    fn on_rejection(&mut self, error: Error) {
        self.sent = 0;
        let culprit = self.wires.front().expect("called with wires").request;
        while self.wires.front().is_some_and(|w| w.request == culprit) {
            self.wires.pop_front();
        }
        let request = self.requests.pop_front().expect("culprit request is pending");
        debug_assert_eq!(request.id, culprit);
        let _ = request.done.send(Err(error));
    }

    /// Waits out the backoff before the loop reopens the stream; out of retries, fails every
    /// waiting request (the next one reconnects).
    async fn retry(&mut self, error: Error) {
        self.sent = 0;
        let (attempts, since) = self.streak.get_or_insert((0, Instant::now()));
        *attempts += 1;
        let attempts = *attempts;
        if attempts > self.options.max_retries || since.elapsed() >= self.options.retry_deadline {
            let retries = attempts - 1;
            self.fail_all(match error {
                Error::Status { code, message } => Error::Status { code, message: format!("giving up after {retries} retries: {message}") },
                other => Error::Transport(format!("giving up after {retries} retries: {other}")),
            });
            return;
        }
        let exponent = attempts.saturating_sub(1).min(16);
        let backoff = self.options.initial_backoff.saturating_mul(1u32 << exponent).min(self.options.max_backoff);
        tracing::debug!(%error, attempts, ?backoff, unanswered = self.wires.len(), "lookup stream broke; resending unanswered keys");
        tokio::time::sleep(backoff).await;
    }

    fn fail_all(&mut self, error: Error) {
        tracing::warn!(%error, unanswered = self.wires.len(), "lookups failed");
        self.conn = None;
        self.sent = 0;
        self.streak = None;
        self.wires.clear();
        for request in self.requests.drain(..) {
            let _ = request.done.send(Err(duplicate_error(&error)));
        }
    }

    /// Ends the request side and waits for the node to end the call.
    async fn finish(&mut self) -> Result<()> {
        let Some(mut conn) = self.conn.take() else { return Ok(()) };
        conn.requests = None;
        let drained = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match conn.next().await {
                    Ok(Some(_)) => continue,
                    Ok(None) => return Ok(()),
                    Err(e) if e.code() == Code::Cancelled => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
        })
        .await;
        drained.unwrap_or_else(|_| {
            tracing::warn!("the node did not end the lookup stream within 30s of close");
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Int64Array;

    fn keys(n: i64) -> RecordBatch {
        let column: ArrayRef = Arc::new(Int64Array::from_iter_values(0..n));
        RecordBatch::try_from_iter([("k", column)]).unwrap()
    }

    #[test]
    fn given_large_key_batch_when_encoded_should_slice_rows_contiguously() {
        let (_, messages) = encode_keys(&keys(10_000), 8 * 1024).unwrap();
        assert!(messages.len() > 1, "{} messages", messages.len());
        let mut next = 0;
        for m in &messages {
            assert_eq!(m.row_offset, next);
            next += m.rows;
        }
        assert_eq!(next, 10_000);
    }

    #[test]
    fn given_empty_key_batch_when_encoded_should_send_one_empty_message() {
        let (_, messages) = encode_keys(&keys(0), 1024).unwrap();
        assert_eq!(messages.len(), 1);
        assert_eq!((messages[0].row_offset, messages[0].rows), (0, 0));
    }

    fn answer(index: Vec<i32>) -> RecordBatch {
        let index: ArrayRef = Arc::new(Int32Array::from(index));
        let v: ArrayRef = Arc::new(Int64Array::from(vec![7; index.len()]));
        RecordBatch::try_from_iter([(KEY_INDEX_COLUMN, index), ("v", v)]).unwrap()
    }

    #[test]
    fn given_answer_of_second_slice_when_shifted_should_index_rows_of_whole_batch() {
        let shifted = shift_key_index(answer(vec![0, 2]), 100, 3).unwrap();
        assert_eq!(shifted.column(0).as_primitive::<Int32Type>().values().to_vec(), vec![100, 102]);
        assert_eq!(shifted.column(1).len(), 2);
    }

    #[test]
    fn given_answer_with_bad_key_index_when_checked_should_be_protocol_error() {
        assert!(matches!(shift_key_index(answer(vec![3]), 0, 3), Err(Error::Protocol(_))));
        assert!(matches!(shift_key_index(answer(vec![-1]), 0, 3), Err(Error::Protocol(_))));
        let v: ArrayRef = Arc::new(Int64Array::from(vec![1]));
        let no_index = RecordBatch::try_from_iter([("v", v)]).unwrap();
        assert!(matches!(shift_key_index(no_index, 0, 1), Err(Error::Protocol(_))));
    }
}
