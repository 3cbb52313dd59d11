//! DoExchange: batched lookups for high-throughput clients.
//!
//! The first message carries a CMD descriptor with the lookup JSON (without `keys`) and the
//! Arrow schema of the keys; every key record batch that follows is answered, in order, by one
//! record batch whose first column `_key_index` names the request row each result row answers.
//! The first failing batch ends the stream with its error status.

use super::decode::{declared_schema, decode_batch};
use super::doget::message_data;
use crate::engine::{Lookup, StorageEngine};
use crate::error::{Error, Result};
use arrow_flight::{flight_descriptor::DescriptorType, FlightData, SchemaAsIpc};
use arrow_ipc::writer::IpcWriteOptions;
use arrow_ipc::MessageHeader;
use arrow_schema::SchemaRef;
use futures::stream::BoxStream;
use futures::StreamExt;
use std::pin::Pin;
use std::sync::Arc;
use strom_flight_api::LookupRequest;
use tonic::{Status, Streaming};

pub async fn do_exchange(
    engine: Arc<dyn StorageEngine>,
    input: Streaming<FlightData>,
    max_message_bytes: usize,
) -> Result<BoxStream<'static, Result<FlightData, Status>>, Status> {
    let mut input = input.peekable();
    let first = match Pin::new(&mut input).peek().await {
        Some(Ok(first)) => first,
        Some(Err(status)) => return Err(status.clone()),
        None => return Err(Status::invalid_argument("DoExchange stream is empty: the first message must carry the lookup descriptor")),
    };
    let descriptor = first.flight_descriptor.clone().ok_or_else(|| {
        Status::invalid_argument("the first DoExchange message must carry a CMD descriptor {\"lookup\": \"primary_key\" | \"prefix\", ...}")
    })?;
    if descriptor.r#type != DescriptorType::Cmd as i32 {
        return Err(Status::invalid_argument("DoExchange needs a CMD descriptor {\"lookup\": ...}; PATH descriptors are not accepted"));
    }
    let request: LookupRequest = serde_json::from_slice(&descriptor.cmd)
        .map_err(|e| Error::invalid(format!("DoExchange descriptor is not a valid lookup command: {e}")))?;
    if !request.keys.is_empty() {
        return Err(Error::invalid("DoExchange lookups take their keys as Arrow record batches, not in the descriptor's \"keys\"").into());
    }
    let lookup = engine.open_lookup(&request)?;
    let schema_message = FlightData::from(SchemaAsIpc::new(&lookup.result_schema(true), &IpcWriteOptions::default()));
    // Answers are produced as the response stream is polled: no task or channel hop between a
    // key batch and its answer (single-key latency is what interactive lookups feel).
    let state = ExchangeState { lookup, input, schema: None, max_message_bytes, done: false };
    let answers = futures::stream::unfold(state, |mut state| async move {
        if state.done {
            return None;
        }
        match next_answer(&mut state).await {
            Ok(Some(answer)) => Some((Ok(answer), state)),
            Ok(None) => None,
            Err(e) => {
                state.done = true;
                Some((Err(Status::from(e)), state))
            }
        }
    });
    Ok(futures::stream::once(async { Ok(schema_message) }).chain(answers).boxed())
}

struct ExchangeState {
    lookup: Arc<dyn Lookup>,
    input: futures::stream::Peekable<Streaming<FlightData>>,
    schema: Option<SchemaRef>,
    max_message_bytes: usize,
    done: bool,
}

/// Reads messages until a key batch arrives and answers it; None at the end of the input.
async fn next_answer(state: &mut ExchangeState) -> Result<Option<FlightData>> {
    let lookup = state.lookup.clone();
    while let Some(message) = state.input.next().await {
        let data = match message {
            Ok(d) => d,
            Err(status) => {
                tracing::debug!(table = %lookup.table_path(), %status, "DoExchange stream ended by the client");
                return Ok(None);
            }
        };
        let size = data.data_header.len() + data.data_body.len();
        if size > state.max_message_bytes {
            return Err(Error::ResourceExhausted(format!(
                "DoExchange message of {size} bytes exceeds server.max_message_bytes {}",
                state.max_message_bytes
            )));
        }
        if data.data_header.is_empty() {
            continue;
        }
        let message = arrow_ipc::root_as_message(&data.data_header)
            .map_err(|e| Error::invalid(format!("DoExchange message is not an Arrow IPC message: {e}")))?;
        match message.header_type() {
            MessageHeader::Schema => {
                let declared = declared_schema(&data, "DoExchange")?;
                lookup.check_key_schema(&declared)?;
                state.schema = Some(declared);
            }
            MessageHeader::RecordBatch => {
                let s = state.schema.clone().ok_or_else(|| Error::invalid("DoExchange sent a key batch before its schema"))?;
                let keys = decode_batch(data, s, "DoExchange").await?;
                let answer = lookup.lookup(keys, true).await?;
                return Ok(Some(message_data(answer.message, Vec::new())));
            }
            MessageHeader::DictionaryBatch => {
                return Err(Error::invalid("dictionary-encoded key columns are not accepted: send plain values"));
            }
            other => return Err(Error::invalid(format!("unexpected IPC message type {other:?} in DoExchange"))),
        }
    }
    Ok(None)
}
