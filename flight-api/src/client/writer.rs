//! Pipelined, idempotent writes over one long-lived `DoPut` stream: [`TableWriter`] serves
//! every write kind of the contract (appends to log tables; upserts, partial updates and
//! deletes on primary-key tables), and the typed writers of `writers.rs` wrap it.
//!
//! # Why it is built this way
//! * **Pipelining**: waiting for each ack before sending the next batch would cost one fsync
//!   round trip per batch; the node group-commits, so many batches in flight share one sync.
//!   [`TableWriter::write_unconfirmed`] returns at once with an [`AckFuture`]; a background
//!   task reads the PutResults (one per batch, in order) and resolves the acks FIFO.
//! * **Bounded memory**: at most `max_in_flight` wire batches are unacknowledged; the next
//!   write waits for a slot.
//! * **Exactly-once on retry**: every stream carries `writer_id` and the sequence of its first
//!   batch; batch `i` of a stream has sequence `sequence + i`. After a broken stream the
//!   writer opens a new one whose first sequence is the oldest unacknowledged batch and sends
//!   every unacknowledged batch again, unchanged. The node answers batches it already has
//!   with their original offsets (`duplicate: true`) instead of writing them twice.
//! * **One FlightData = one sequence**: the encoder may split a large batch into several
//!   messages (about 2 MiB each, below gRPC limits); the node numbers messages, not caller
//!   batches, so each message gets its own sequence and the caller's ack merges the acks of
//!   its messages.
//! * **Rejections do not poison the stream**: when the node rejects a batch (schema mismatch,
//!   null in a NOT NULL column, ...) the stream ends with that status. Several batches may be
//!   in flight and a pipelined node may not have acked the earlier ones yet, so the writer
//!   cannot tell which one was rejected: it resends the unacknowledged batches one at a time
//!   ("probing") until the rejected one fails again on its own. That batch's ack fails with
//!   the node's code, nothing of it was written, and the batches after it take over its
//!   sequence numbers (the node consumed none for it), so the writer carries on.
//! * **Every kind alike**: upserts and deletes carry `writer_id`/`sequence` exactly as appends
//!   and are deduplicated by the node the same way, so the rules above hold for all of them;
//!   only the CMD descriptor (`"write"`, `"target_columns"`) differs.

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow_array::RecordBatch;
use arrow_flight::encode::{FlightDataEncoderBuilder, GRPC_TARGET_MAX_FLIGHT_SIZE_BYTES};
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::{FlightData, FlightDescriptor, PutResult};
use arrow_ipc::MessageHeader;
use arrow_schema::SchemaRef;
use futures::channel::mpsc as fmpsc;
use futures::future::BoxFuture;
use futures::TryStreamExt;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::{Status, Streaming};

use super::StromClient;
use crate::contract::{PutAck, WriteCommand, WriteKind};
use crate::error::{duplicate_error, from_flight, from_status, Code, Error, Result};

/// How a writer ([`TableWriter`] and the typed writers around it) numbers, bounds and
/// retries its batches.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Identity for idempotent retries; a random positive id when `None`. Reuse an id (with
    /// the right `sequence`) only to resume a writer whose batches you know.
    pub writer_id: Option<i64>,
    /// Sequence of the first batch (default 0).
    pub sequence: i64,
    /// Target partition of a partitioned table.
    pub partition: Option<String>,
    /// Most wire batches (FlightData messages) sent but not yet acknowledged.
    pub max_in_flight: usize,
    /// Reconnect attempts in a row (without any ack in between) before giving up.
    pub max_retries: u32,
    /// Longest time spent retrying in a row before giving up.
    pub retry_deadline: Duration,
    /// First backoff; doubles per attempt up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Approximate size at which a batch is split into several messages.
    pub max_flight_data_size: usize,
}

/// The name the append writer's options had first; the same options serve every writer.
pub type AppendWriterOptions = WriterOptions;

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            writer_id: None,
            sequence: 0,
            partition: None,
            max_in_flight: 32,
            max_retries: 10,
            retry_deadline: Duration::from_secs(60),
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            max_flight_data_size: GRPC_TARGET_MAX_FLIGHT_SIZE_BYTES,
        }
    }
}

impl StromClient {
    /// Opens an idempotent writer of any kind. `target_columns` (a partial update) is only
    /// valid with [`WriteKind::Upsert`]; a wrong combination fails the first write with
    /// `InvalidArgument`, before anything is sent. Nothing is sent until the first batch
    /// (whose schema becomes the writer's schema). The typed writers
    /// ([`StromClient::append_writer`], [`StromClient::upsert_writer`],
    /// [`StromClient::delete_writer`]) are the usual way in.
    pub fn table_writer(
        &self,
        database: &str,
        table: &str,
        kind: WriteKind,
        target_columns: Option<Vec<String>>,
        options: WriterOptions,
    ) -> TableWriter {
        let command = WriteCommand {
            write: kind,
            database: database.into(),
            table: table.into(),
            partition: options.partition.clone(),
            target_columns,
            writer_id: None,
            sequence: None,
        };
        TableWriter::new(self.inner.clone(), &self.runtime, command, options)
    }
}

/// Resolves to the [`PutAck`] of one written batch once it is durable on the node.
#[derive(Debug)]
pub struct AckFuture {
    state: AckState,
}

#[derive(Debug)]
enum AckState {
    Ready(Option<Result<PutAck>>),
    Waiting(oneshot::Receiver<Result<PutAck>>),
}

impl Future for AckFuture {
    type Output = Result<PutAck>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            AckState::Ready(result) => Poll::Ready(result.take().expect("AckFuture polled after completion")),
            AckState::Waiting(rx) => Pin::new(rx).poll(cx).map(|r| {
                r.unwrap_or_else(|_| {
                    Err(Error::Transport("writer stopped before the batch was acknowledged; it may or may not be written".into()))
                })
            }),
        }
    }
}

/// Writes record batches of one kind (append, upsert, delete) to one table through a
/// pipelined, idempotent `DoPut` stream. See the module documentation for the retry rules.
/// Call [`TableWriter::close`] at the end: dropping the writer abandons unacknowledged
/// batches (they may or may not be written).
pub struct TableWriter {
    kind: WriteKind,
    target_columns: Option<Vec<String>>,
    commands: mpsc::Sender<Command>,
    slots: Arc<Semaphore>,
    max_in_flight: usize,
    max_flight_data_size: usize,
    writer_id: i64,
    schema: Option<SchemaRef>,
    schema_sent: bool,
    fatal: Arc<Mutex<Option<Error>>>,
    /// The background task; `None` once `close` has awaited it.
    driver: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for TableWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableWriter")
            .field("kind", &self.kind)
            .field("target_columns", &self.target_columns)
            .field("writer_id", &self.writer_id)
            .field("schema", &self.schema)
            .finish()
    }
}

enum Command {
    Write {
        schema_message: Option<FlightData>,
        wires: Vec<FlightData>,
        done: oneshot::Sender<Result<PutAck>>,
        permit: OwnedSemaphorePermit,
    },
    Flush(oneshot::Sender<Result<()>>),
    Close(oneshot::Sender<Result<()>>),
}

impl TableWriter {
    /// Spawns the driver onto `runtime` (the client's), never onto the caller's runtime, so a
    /// writer can be opened from any thread.
    fn new(client: FlightServiceClient<Channel>, runtime: &Handle, mut command: WriteCommand, options: WriterOptions) -> Self {
        let writer_id = options.writer_id.unwrap_or_else(random_writer_id);
        let max_in_flight = options.max_in_flight.max(1);
        let (commands, receiver) = mpsc::channel(max_in_flight);
        let fatal = Arc::new(Mutex::new(None));
        command.writer_id = Some(writer_id);
        let (kind, target_columns) = (command.write, command.target_columns.clone());
        let driver = Driver {
            client,
            command,
            next_sequence: options.sequence,
            schema_message: None,
            wires: VecDeque::new(),
            batches: VecDeque::new(),
            next_batch_id: 0,
            sent: 0,
            conn: None,
            probe_until: None,
            streak: None,
            first_error: None,
            flush_waiters: Vec::new(),
            closing: None,
            fatal: fatal.clone(),
            options: options.clone(),
        };
        let driver = Some(runtime.spawn(driver.run(receiver)));
        TableWriter {
            kind,
            target_columns,
            commands,
            slots: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            max_flight_data_size: options.max_flight_data_size,
            writer_id,
            schema: None,
            schema_sent: false,
            fatal,
            driver,
        }
    }

    /// The writer id sent with every stream (for resuming or for inspecting the log).
    pub fn writer_id(&self) -> i64 {
        self.writer_id
    }

    /// The schema of the first batch, which every later batch must have.
    pub fn schema(&self) -> Option<&SchemaRef> {
        self.schema.as_ref()
    }

    /// What this writer sends: `append`, `upsert` or `delete`.
    pub fn kind(&self) -> WriteKind {
        self.kind
    }

    /// The columns a partial update changes (`None`: full rows, or not an upsert writer).
    pub fn target_columns(&self) -> Option<&[String]> {
        self.target_columns.as_deref()
    }

    /// Sends a batch and waits until it is durable.
    pub async fn write(&mut self, batch: RecordBatch) -> Result<PutAck> {
        self.write_unconfirmed(batch).await?.await
    }

    /// Sends a batch without waiting for its ack (waits only for an in-flight slot). The
    /// returned future resolves once the node acknowledged it; dropping the future does not
    /// cancel the write.
    pub async fn write_unconfirmed(&mut self, batch: RecordBatch) -> Result<AckFuture> {
        if let Some(e) = self.fatal_error() {
            return Err(e);
        }
        self.check_target_columns(&batch)?;
        // An empty batch writes nothing; sending it would only cost a sequence number.
        if batch.num_rows() == 0 {
            return Ok(AckFuture { state: AckState::Ready(Some(Ok(PutAck::default()))) });
        }
        match &self.schema {
            None => self.schema = Some(batch.schema()),
            Some(schema) if schema.fields() != batch.schema().fields() => {
                return Err(Error::InvalidArgument(format!(
                    "batch schema {:?} differs from the writer's schema {:?}; use one writer per schema",
                    batch.schema().fields(),
                    schema.fields()
                )));
            }
            Some(_) => {}
        }
        let (schema_message, wires) = encode(batch, self.max_flight_data_size).await?;
        let permits = u32::try_from(wires.len().min(self.max_in_flight)).unwrap_or(u32::MAX);
        let permit = self.slots.clone().acquire_many_owned(permits).await.map_err(|_| Error::Closed("writer is closed".into()))?;
        let (done, receiver) = oneshot::channel();
        let schema_message = if self.schema_sent { None } else { Some(schema_message) };
        let command = Command::Write { schema_message, wires, done, permit };
        if self.commands.send(command).await.is_err() {
            return Err(self.stopped_error());
        }
        self.schema_sent = true;
        Ok(AckFuture { state: AckState::Waiting(receiver) })
    }

    /// Waits until every batch sent so far is acknowledged or failed. Returns the first
    /// failure since the previous flush, so fire-and-forget callers still learn about it.
    pub async fn flush(&mut self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Flush(tx)).await.is_err() {
            return Err(self.stopped_error());
        }
        rx.await.unwrap_or_else(|_| Err(self.stopped_error()))
    }

    /// Flushes, ends the stream and waits for the node to close it.
    pub async fn close(mut self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Close(tx)).await.is_err() {
            return Err(self.stopped_error());
        }
        let result = rx.await.unwrap_or_else(|_| Err(self.stopped_error()));
        // The driver ends by itself after answering Close.
        if let Some(driver) = self.driver.take() {
            let _ = driver.await;
        }
        result
    }

    /// A partial update must carry every target column, named once (the node checks the
    /// rest: the key columns, and that nothing else is there). Refused before anything is
    /// sent, so a typo does not cost a round trip and a rejected stream.
    fn check_target_columns(&self, batch: &RecordBatch) -> Result<()> {
        let Some(targets) = &self.target_columns else { return Ok(()) };
        if self.kind != WriteKind::Upsert {
            return Err(Error::InvalidArgument(format!("target_columns {targets:?} apply to upserts only, not to {:?} writes", self.kind)));
        }
        for (i, column) in targets.iter().enumerate() {
            if targets[..i].contains(column) {
                return Err(Error::InvalidArgument(format!("target column {column:?} is listed twice in {targets:?}")));
            }
            if batch.schema().column_with_name(column).is_none() {
                return Err(Error::InvalidArgument(format!(
                    "partial update batch lacks target column {column:?} (target_columns {targets:?}, batch columns {:?})",
                    batch.schema().fields().iter().map(|f| f.name()).collect::<Vec<_>>()
                )));
            }
        }
        Ok(())
    }

    fn fatal_error(&self) -> Option<Error> {
        self.fatal.lock().expect("not poisoned").as_ref().map(duplicate_error)
    }

    fn stopped_error(&self) -> Error {
        self.fatal_error()
            .unwrap_or_else(|| Error::Closed("the writer's task stopped (the writer was closed or its runtime shut down)".into()))
    }
}

impl Drop for TableWriter {
    fn drop(&mut self) {
        if let Some(driver) = &self.driver {
            driver.abort();
        }
    }
}

/// Encodes one caller batch: the schema message and one or more record-batch messages.
async fn encode(batch: RecordBatch, max_flight_data_size: usize) -> Result<(FlightData, Vec<FlightData>)> {
    let messages: Vec<FlightData> = FlightDataEncoderBuilder::new()
        .with_max_flight_data_size(max_flight_data_size)
        .build(futures::stream::once(async { Ok(batch) }))
        .try_collect()
        .await
        .map_err(from_flight)?;
    let mut schema = None;
    let mut wires = Vec::with_capacity(messages.len());
    for message in messages {
        let header = arrow_ipc::root_as_message(&message.data_header)
            .map_err(|e| Error::Protocol(format!("encoder produced an unreadable message: {e}")))?
            .header_type();
        match header {
            MessageHeader::Schema => schema = Some(message),
            MessageHeader::RecordBatch => wires.push(message),
            // Dictionaries are hydrated by the encoder's default, so none are expected; a
            // message the node would not count as a batch must not get a sequence.
            other => return Err(Error::InvalidArgument(format!("cannot write a batch that encodes a {other:?} message"))),
        }
    }
    let schema = schema.ok_or_else(|| Error::Protocol("encoder produced no schema message".into()))?;
    Ok((schema, wires))
}

/// A positive id that differs between writers, processes and machines without a `rand`
/// dependency: std's `RandomState` is seeded from the OS.
fn random_writer_id() -> i64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    hasher.write_u128(now);
    hasher.write_u32(std::process::id());
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let id = (hasher.finish() >> 1) as i64;
    id.max(1)
}

/// One FlightData message waiting for its ack.
struct Wire {
    sequence: i64,
    data: FlightData,
    batch: u64,
}

/// One caller batch waiting for the acks of its wires.
struct PendingBatch {
    id: u64,
    wires_left: usize,
    acks: Vec<PutAck>,
    done: oneshot::Sender<Result<PutAck>>,
    _permit: OwnedSemaphorePermit,
}

/// The current DoPut call: the request side is fed through `requests`; the response side is
/// first the pending call (headers not yet received), then the PutResult stream. Opening is
/// polled alongside new commands so a node that reads batches before answering headers
/// cannot deadlock the writer.
struct Conn {
    requests: Option<fmpsc::UnboundedSender<FlightData>>,
    state: ConnState,
}

enum ConnState {
    Opening(BoxFuture<'static, std::result::Result<tonic::Response<Streaming<PutResult>>, Status>>),
    Open(Box<Streaming<PutResult>>),
}

impl Conn {
    /// Next PutResult; cancel-safe (the pending call is kept in `state`).
    async fn next(&mut self) -> std::result::Result<Option<PutResult>, Status> {
        loop {
            match &mut self.state {
                ConnState::Opening(call) => {
                    let response = call.await?;
                    self.state = ConnState::Open(Box::new(response.into_inner()));
                }
                ConnState::Open(stream) => return stream.message().await,
            }
        }
    }
}

enum Event {
    Command(Option<Command>),
    Response(std::result::Result<Option<PutResult>, Status>),
}

/// Owns the stream, the unacknowledged wires and the retry state; runs as one task so that
/// sequence bookkeeping needs no locks.
struct Driver {
    client: FlightServiceClient<Channel>,
    command: WriteCommand,
    options: WriterOptions,
    next_sequence: i64,
    schema_message: Option<FlightData>,
    /// Unacknowledged wires in sequence order.
    wires: VecDeque<Wire>,
    /// Unfinished caller batches in order.
    batches: VecDeque<PendingBatch>,
    next_batch_id: u64,
    /// How many wires (from the front) were sent on the current stream.
    sent: usize,
    conn: Option<Conn>,
    /// While set, one wire at a time is sent, until the wire with this sequence is acked or
    /// a wire is rejected on its own.
    probe_until: Option<i64>,
    /// Retries in a row: attempts and when the first failure happened.
    streak: Option<(u32, Instant)>,
    /// First failure since the last flush.
    first_error: Option<Error>,
    flush_waiters: Vec<oneshot::Sender<Result<()>>>,
    closing: Option<oneshot::Sender<Result<()>>>,
    fatal: Arc<Mutex<Option<Error>>>,
}

impl Driver {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut commands_open = true;
        loop {
            if !self.wires.is_empty() && self.conn.is_none() && !self.open() {
                self.give_up(Error::Protocol("writer has batches but no schema message".into()));
                return;
            }
            self.send_unsent();
            if self.wires.is_empty() {
                self.answer_flush_waiters();
                if let Some(done) = self.closing.take() {
                    let result = self.finish().await;
                    let _ = done.send(result);
                    return;
                }
                if !commands_open {
                    return;
                }
            }
            let accept_commands = commands_open && self.closing.is_none();
            let event = tokio::select! {
                command = commands.recv(), if accept_commands => Event::Command(command),
                response = next_response(&mut self.conn), if self.conn.is_some() => Event::Response(response),
            };
            match event {
                Event::Command(None) => commands_open = false,
                Event::Command(Some(command)) => self.handle_command(command),
                Event::Response(response) => {
                    if let Err(fatal) = self.handle_response(response).await {
                        self.give_up(fatal);
                        return;
                    }
                }
            }
        }
    }

    fn handle_command(&mut self, command: Command) {
        match command {
            Command::Write { schema_message, wires, done, permit } => {
                if let Some(schema) = schema_message {
                    self.schema_message = Some(schema);
                }
                let id = self.next_batch_id;
                self.next_batch_id += 1;
                self.batches.push_back(PendingBatch { id, wires_left: wires.len(), acks: Vec::new(), done, _permit: permit });
                for data in wires {
                    self.wires.push_back(Wire { sequence: self.next_sequence, data, batch: id });
                    self.next_sequence += 1;
                }
            }
            Command::Flush(done) => self.flush_waiters.push(done),
            Command::Close(done) => self.closing = Some(done),
        }
    }

    /// Starts a DoPut whose first sequence is the oldest unacknowledged wire.
    /// Returns false if there is nothing to open a stream with (no wire or no schema).
    fn open(&mut self) -> bool {
        let Some(first) = self.wires.front() else { return false };
        // The first Write carries the schema message, so it is known once wires exist.
        let Some(schema) = self.schema_message.clone() else { return false };
        let mut command = self.command.clone();
        command.sequence = Some(first.sequence);
        let descriptor = serde_json::to_vec(&command).expect("serializable");
        let mut schema = schema;
        schema.flight_descriptor = Some(FlightDescriptor::new_cmd(descriptor));
        let (requests, receiver) = fmpsc::unbounded();
        let _ = requests.unbounded_send(schema);
        let mut client = self.client.clone();
        let call = Box::pin(async move { client.do_put(receiver).await });
        self.sent = 0;
        self.conn = Some(Conn { requests: Some(requests), state: ConnState::Opening(call) });
        true
    }

    /// Sends the wires not yet on the current stream (one at a time while probing).
    fn send_unsent(&mut self) {
        let Some(requests) = self.conn.as_ref().and_then(|c| c.requests.as_ref()) else { return };
        let limit = if self.probe_until.is_some() { 1 } else { self.wires.len() };
        while self.sent < limit.min(self.wires.len()) {
            if requests.unbounded_send(self.wires[self.sent].data.clone()).is_err() {
                // The call is over; its response side reports why.
                break;
            }
            self.sent += 1;
        }
    }

    /// Handles one PutResult or the end of the stream; `Err` means give up.
    async fn handle_response(&mut self, response: std::result::Result<Option<PutResult>, Status>) -> Result<(), Error> {
        match response {
            Ok(Some(result)) => self.on_ack(result),
            Ok(None) => {
                self.conn = None;
                if self.sent > 0 {
                    let error = Error::Transport(format!("the node ended the stream with {} batches unacknowledged", self.sent));
                    self.sent = 0;
                    self.retry(error).await
                } else {
                    self.sent = 0;
                    Ok(())
                }
            }
            Err(status) => {
                self.conn = None;
                let error = from_status(status);
                if error.is_retriable() {
                    self.sent = 0;
                    self.retry(error).await
                } else {
                    self.on_rejection(error);
                    Ok(())
                }
            }
        }
    }

    fn on_ack(&mut self, result: PutResult) -> Result<(), Error> {
        if self.sent == 0 {
            return Err(Error::Protocol("the node acknowledged a batch that was not sent".into()));
        }
        let ack: PutAck = serde_json::from_slice(&result.app_metadata).map_err(|e| {
            Error::Protocol(format!("PutResult app_metadata {:?} does not decode: {e}", String::from_utf8_lossy(&result.app_metadata)))
        })?;
        let wire = self.wires.pop_front().expect("sent > 0 implies a wire");
        self.sent -= 1;
        if let Some(sequence) = ack.sequence {
            if sequence != wire.sequence {
                return Err(Error::Protocol(format!("the node acknowledged sequence {sequence} where {} was expected", wire.sequence)));
            }
        }
        self.streak = None;
        if self.probe_until.is_some_and(|until| wire.sequence >= until) {
            self.probe_until = None;
        }
        let batch = self.batches.front_mut().expect("a wire belongs to a pending batch");
        debug_assert_eq!(batch.id, wire.batch);
        batch.acks.push(ack);
        batch.wires_left -= 1;
        if batch.wires_left == 0 {
            let batch = self.batches.pop_front().expect("front exists");
            let _ = batch.done.send(Ok(merge_acks(batch.acks)));
        }
        Ok(())
    }

    /// A non-retriable status ended the stream. If exactly one wire was outstanding it is the
    /// culprit; otherwise probe to find it.
    fn on_rejection(&mut self, error: Error) {
        let outstanding = self.sent;
        self.sent = 0;
        if outstanding == 0 || self.wires.is_empty() {
            tracing::warn!(%error, "write stream rejected with nothing outstanding");
            self.record_error(error);
            return;
        }
        if outstanding > 1 {
            let last = self.wires[outstanding - 1].sequence;
            tracing::debug!(%error, outstanding, "write rejected with several batches in flight; probing one at a time");
            self.probe_until = Some(last);
            return;
        }
        // The front wire was rejected on its own: fail its batch and drop the rest of it.
        let culprit = self.wires.front().expect("non-empty").batch;
        let first_sequence = self.wires.front().expect("non-empty").sequence;
        let mut removed = 0i64;
        while self.wires.front().is_some_and(|w| w.batch == culprit) {
            self.wires.pop_front();
            removed += 1;
        }
        // Nothing of a rejected batch is written, so the node did not consume its sequence:
        // the following batches move down to keep the sequence gap-free.
        for (i, wire) in self.wires.iter_mut().enumerate() {
            wire.sequence = first_sequence + i as i64;
        }
        self.next_sequence -= removed;
        if let Some(until) = self.probe_until {
            if until < first_sequence + removed {
                self.probe_until = None;
            } else {
                self.probe_until = Some(until - removed);
            }
        }
        let batch = self.batches.pop_front().expect("culprit batch is pending");
        debug_assert_eq!(batch.id, culprit);
        let _ = batch.done.send(Err(duplicate_error(&error)));
        self.record_error(error);
    }

    /// Waits out the backoff before the loop reopens the stream; `Err` once out of retries.
    async fn retry(&mut self, error: Error) -> Result<(), Error> {
        let (attempts, since) = self.streak.get_or_insert((0, Instant::now()));
        *attempts += 1;
        let attempts = *attempts;
        if attempts > self.options.max_retries || since.elapsed() >= self.options.retry_deadline {
            let retries = attempts - 1;
            // Keep the node's code (e.g. Unavailable) so callers can still classify it.
            return Err(match error {
                Error::Status { code, message } => Error::Status { code, message: format!("giving up after {retries} retries: {message}") },
                other => Error::Transport(format!("giving up after {retries} retries: {other}")),
            });
        }
        let exponent = attempts.saturating_sub(1).min(16);
        let backoff = self.options.initial_backoff.saturating_mul(1u32 << exponent).min(self.options.max_backoff);
        tracing::debug!(%error, attempts, ?backoff, unacked = self.wires.len(), "write stream broke; resending unacknowledged batches");
        tokio::time::sleep(backoff).await;
        Ok(())
    }

    fn record_error(&mut self, error: Error) {
        if self.first_error.is_none() {
            self.first_error = Some(error);
        }
    }

    fn answer_flush_waiters(&mut self) {
        if self.flush_waiters.is_empty() {
            return;
        }
        let error = self.first_error.take();
        for waiter in self.flush_waiters.drain(..) {
            let _ = waiter.send(match &error {
                None => Ok(()),
                Some(e) => Err(duplicate_error(e)),
            });
        }
    }

    /// Ends the request side and waits for the node to end the call.
    async fn finish(&mut self) -> Result<()> {
        if let Some(mut conn) = self.conn.take() {
            conn.requests = None;
            let drained = tokio::time::timeout(Duration::from_secs(30), async {
                loop {
                    match conn.next().await {
                        Ok(Some(_)) => continue,
                        Ok(None) => return Ok(()),
                        Err(status) => return Err(from_status(status)),
                    }
                }
            })
            .await;
            match drained {
                // The node may answer the end of a finished stream with CANCELLED; that is no failure.
                Ok(Err(e)) if e.code() != Code::Cancelled => self.record_error(e),
                Ok(_) => {}
                Err(_) => tracing::warn!("the node did not end the write stream within 30s of close"),
            }
        }
        match self.first_error.take() {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// Out of retries (or the node broke the protocol): every waiter gets the error and the
    /// writer refuses further batches.
    fn give_up(&mut self, error: Error) {
        tracing::warn!(%error, unacked = self.wires.len(), "writer gives up");
        self.conn = None;
        self.wires.clear();
        for batch in self.batches.drain(..) {
            let _ = batch.done.send(Err(duplicate_error(&error)));
        }
        for waiter in self.flush_waiters.drain(..) {
            let _ = waiter.send(Err(duplicate_error(&error)));
        }
        if let Some(done) = self.closing.take() {
            let _ = done.send(Err(duplicate_error(&error)));
        }
        *self.fatal.lock().expect("not poisoned") = Some(error);
    }
}

async fn next_response(conn: &mut Option<Conn>) -> std::result::Result<Option<PutResult>, Status> {
    match conn {
        Some(conn) => conn.next().await,
        None => std::future::pending().await,
    }
}

/// The ack of a caller batch split into several messages: rows add up, bucket ranges are
/// listed in message order, and it is a duplicate only if every part was.
fn merge_acks(mut acks: Vec<PutAck>) -> PutAck {
    if acks.len() == 1 {
        return acks.pop().expect("one");
    }
    let sequence = acks.first().and_then(|a| a.sequence);
    let duplicate = !acks.is_empty() && acks.iter().all(|a| a.duplicate);
    let mut merged = PutAck { rows: 0, buckets: Vec::new(), sequence, duplicate };
    for ack in acks {
        merged.rows += ack.rows;
        merged.buckets.extend(ack.buckets);
    }
    merged
}
