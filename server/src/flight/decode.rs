//! Decoding what clients send (DoPut batches, DoExchange key batches): schemas leniently as
//! nullable, record batches over the received bytes without copying, large ones on the
//! blocking pool (decoding validates every value and may decompress).

use crate::engine::IpcMessage;
use crate::error::{Error, Result};
use arrow_array::RecordBatch;
use arrow_flight::FlightData;
use arrow_schema::{Schema, SchemaRef};
use std::sync::Arc;

/// Messages up to this size are decoded on the request's task; larger ones on the blocking
/// pool, so one client's multi-megabyte batches never stall the async workers.
const INLINE_DECODE_BYTES: usize = 256 * 1024;

/// The schema a stream declares, every field nullable: a null where the table forbids one is
/// then reported by the engine with the table, column and row, instead of Arrow's generic
/// validation error.
pub(crate) fn declared_schema(data: &FlightData, verb: &str) -> Result<SchemaRef> {
    let declared = Schema::try_from(data).map_err(|e| Error::invalid(format!("{verb} schema message does not decode: {e}")))?;
    let fields: Vec<_> = declared.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
    Ok(Arc::new(Schema::new_with_metadata(fields, declared.metadata().clone())))
}

/// Decodes a record-batch message with the stream's schema.
pub(crate) async fn decode_batch(data: FlightData, schema: SchemaRef, verb: &'static str) -> Result<RecordBatch> {
    Ok(decode_batch_as_sent(data, schema, verb).await?.0)
}

/// Decodes a record-batch message with the stream's schema, and hands back the message too
/// (its bytes shared, not copied), for a writer that can store it as it is.
pub(crate) async fn decode_batch_as_sent(data: FlightData, schema: SchemaRef, verb: &'static str) -> Result<(RecordBatch, IpcMessage)> {
    let size = data.data_header.len() + data.data_body.len();
    let message = IpcMessage { header: data.data_header, body: data.data_body.into() };
    let decode = move || {
        let batch = message.decode(&schema).map_err(|e| Error::invalid(format!("{verb} record batch does not decode: {e}")))?;
        Ok((batch, message))
    };
    if size <= INLINE_DECODE_BYTES {
        return decode();
    }
    tokio::task::spawn_blocking(decode).await.map_err(|e| Error::Internal(format!("decode task failed: {e}")))?
}
