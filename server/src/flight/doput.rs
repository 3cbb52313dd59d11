//! DoPut: a peekable stream of FlightData whose first message names the table; each record
//! batch is written as it arrives and acknowledged (in order) once durable.
//!
//! Writing batch i+1 while batch i waits for its fdatasync lets one stream share group commits
//! with itself; memory permits bound what is decoded but not yet written.

use super::decode::{declared_schema, decode_batch_as_sent};
use crate::engine::{BatchIdentity, IpcMessage, PendingAck, StorageEngine, TableWriter};
use crate::error::{Error, Result};
use arrow_array::RecordBatch;
use arrow_flight::{flight_descriptor::DescriptorType, FlightData, FlightDescriptor, PutResult};
use arrow_ipc::MessageHeader;
use arrow_schema::SchemaRef;
use futures::{Stream, StreamExt};
use std::pin::Pin;
use std::sync::Arc;
use strom_flight_api::WriteCommand;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tonic::{Status, Streaming};

/// Acks (or the error that ended the stream) waiting to be sent in order.
type AckQueue = mpsc::Sender<Result<PendingAck>>;

/// Parses the descriptor of the first message into a write command; true when it is a PATH
/// descriptor (append to a log table, upsert full rows into a primary-key table).
pub fn parse_descriptor(d: &FlightDescriptor) -> Result<(WriteCommand, bool)> {
    if d.r#type == DescriptorType::Path as i32 {
        return match d.path.as_slice() {
            [db, table] => Ok((WriteCommand::append(db, table), true)),
            other => Err(Error::invalid(format!("DoPut PATH descriptor must be [database, table], got {other:?}"))),
        };
    }
    if d.r#type == DescriptorType::Cmd as i32 {
        let command = serde_json::from_slice(&d.cmd)
            .map_err(|e| Error::invalid(format!("DoPut CMD descriptor is not a valid write command: {e}")))?;
        return Ok((command, false));
    }
    Err(Error::invalid("DoPut needs a PATH [database, table] or a CMD {\"write\": ...} descriptor"))
}

/// Maps a stream error: tonic's "message too large" becomes RESOURCE_EXHAUSTED per the contract.
fn stream_error(status: Status) -> Status {
    if status.code() == tonic::Code::OutOfRange && status.message().contains("too large") {
        Status::resource_exhausted(format!("DoPut message rejected: {}", status.message()))
    } else {
        status
    }
}

pub struct PutContext {
    pub engine: Arc<dyn StorageEngine>,
    pub permits: Arc<Semaphore>,
    pub max_message_bytes: usize,
}

/// Runs a DoPut: returns the stream of PutResults.
pub async fn do_put(
    ctx: PutContext,
    input: Streaming<FlightData>,
) -> Result<Pin<Box<dyn Stream<Item = Result<PutResult, Status>> + Send>>, Status> {
    let mut input = input.peekable();
    let first = match Pin::new(&mut input).peek().await {
        Some(Ok(first)) => first,
        Some(Err(status)) => return Err(stream_error(status.clone())),
        None => return Err(Status::invalid_argument("DoPut stream is empty: the first message must carry the descriptor")),
    };
    let descriptor = first
        .flight_descriptor
        .clone()
        .ok_or_else(|| Status::invalid_argument("the first DoPut message must carry a flight descriptor naming the table"))?;
    let (command, from_path) = parse_descriptor(&descriptor)?;
    let writer: Arc<dyn TableWriter> = ctx.engine.open_writer(&command, from_path)?.into();
    // Two stages so one stream uses two cores: the decode stage reads and decodes message N+1
    // while the write stage conforms, encodes and writes batch N. Order is kept end to end.
    let (ack_tx, rx) = mpsc::channel::<Result<PendingAck>>(64);
    let (decoded_tx, decoded_rx) = mpsc::channel::<Result<DecodedBatch>>(2);
    let decode_writer = writer.clone();
    tokio::spawn(async move {
        if let Err(e) = decode_loop(&ctx, decode_writer.as_ref(), &command, input, &decoded_tx).await {
            let _ = decoded_tx.send(Err(e)).await;
        }
    });
    tokio::spawn(write_stage(writer, decoded_rx, ack_tx));
    Ok(Box::pin(ack_stream(rx)))
}

/// Turns the queue of pending acks into PutResults, waiting for each one's durability in order.
/// The first error ends the stream.
fn ack_stream(rx: mpsc::Receiver<Result<PendingAck>>) -> impl Stream<Item = Result<PutResult, Status>> + Send {
    futures::stream::unfold((rx, false), |(mut rx, failed)| async move {
        if failed {
            return None;
        }
        let outcome = match rx.recv().await? {
            Ok(pending) => pending.durable().await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(ack) => {
                let body = serde_json::to_vec(&ack).expect("ack serializes");
                Some((Ok(PutResult { app_metadata: body.into() }), (rx, false)))
            }
            Err(e) => Some((Err(Status::from(e)), (rx, true))),
        }
    })
}

/// A decoded batch (and the message it came from) on its way to the write stage, holding its
/// memory permits.
type DecodedBatch = (RecordBatch, IpcMessage, Option<BatchIdentity>, OwnedSemaphorePermit);

/// Writes decoded batches in order; the first error (its own or the decode stage's) is queued
/// after the acks of the batches before it, and ends the stream.
async fn write_stage(writer: Arc<dyn TableWriter>, mut decoded: mpsc::Receiver<Result<DecodedBatch>>, acks: AckQueue) {
    while let Some(item) = decoded.recv().await {
        let outcome = match item {
            Ok((batch, sent, id, permits)) => {
                let pending = writer.write_as_sent(batch, sent, id).await;
                drop(permits); // written (or refused): its decoded form is gone
                pending
            }
            Err(e) => Err(e),
        };
        let failed = outcome.is_err();
        if acks.send(outcome).await.is_err() || failed {
            return; // the response side is gone, or the stream ended with an error
        }
    }
}

/// Reads and decodes the DoPut messages, checking the schema before any data arrives.
async fn decode_loop(
    ctx: &PutContext,
    writer: &dyn TableWriter,
    command: &WriteCommand,
    mut input: futures::stream::Peekable<Streaming<FlightData>>,
    decoded: &mpsc::Sender<Result<DecodedBatch>>,
) -> Result<()> {
    let mut schema: Option<SchemaRef> = None;
    let mut batch_index: i64 = 0;
    while let Some(message) = input.next().await {
        let data = match message {
            Ok(d) => d,
            Err(status) => {
                let status = stream_error(status);
                if status.code() == tonic::Code::ResourceExhausted {
                    return Err(Error::ResourceExhausted(status.message().to_string()));
                }
                // The client went away mid-stream: what was written stays, nothing partial is.
                tracing::debug!(table = %writer.table_path(), %status, "DoPut stream ended by the client");
                return Ok(());
            }
        };
        let size = data.data_header.len() + data.data_body.len();
        if size > ctx.max_message_bytes {
            return Err(Error::ResourceExhausted(format!(
                "DoPut message of {size} bytes exceeds server.max_message_bytes {}",
                ctx.max_message_bytes
            )));
        }
        if data.data_header.is_empty() {
            continue; // descriptor-only or metadata-only message
        }
        let permits = ctx.permits.clone().acquire_many_owned(size.max(1) as u32).await.map_err(|_| Error::ShuttingDown)?;
        let message = arrow_ipc::root_as_message(&data.data_header)
            .map_err(|e| Error::invalid(format!("DoPut message is not an Arrow IPC message: {e}")))?;
        match message.header_type() {
            MessageHeader::Schema => {
                let declared = declared_schema(&data, "DoPut")?;
                // Checked before any data arrives, so a mismatch fails fast.
                writer.check_schema(&declared)?;
                schema = Some(declared);
            }
            MessageHeader::RecordBatch => {
                let s = schema.clone().ok_or_else(|| Error::invalid("DoPut sent a record batch before its schema"))?;
                let (batch, sent) = decode_batch_as_sent(data, s, "DoPut").await?;
                let id = command.writer_id.map(|w| BatchIdentity { writer_id: w, sequence: command.sequence.unwrap_or(0) + batch_index });
                batch_index += 1;
                if decoded.send(Ok((batch, sent, id, permits))).await.is_err() {
                    return Ok(()); // the write stage stopped
                }
            }
            MessageHeader::DictionaryBatch => {
                return Err(Error::invalid(
                    "dictionary-encoded columns are not accepted: send plain values (e.g. pyarrow: column.dictionary_decode())",
                ));
            }
            other => return Err(Error::invalid(format!("unexpected IPC message type {other:?} in DoPut"))),
        }
    }
    Ok(())
}
