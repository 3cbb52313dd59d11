//! Decoding a DoGet's FlightData messages into record batches without copying their bodies.
//!
//! arrow-flight's `FlightDataDecoder` (58.x) copies every record-batch body into a new buffer
//! before decoding it (`flight_data_to_arrow_batch` builds its `Buffer` from a `&[u8]`): a
//! profile of a decoding scan client put that copy, and the fresh pages it writes, at a quarter
//! of the client's CPU (docs/benchmarks.md, "Scans, 2026-12-07 23:55 UTC"). This decoder hands the
//! received body — a `bytes::Bytes` slice of tonic's receive buffer — to arrow-ipc as it is, so
//! the arrays point into the received message. arrow-ipc still copies a buffer that is not
//! aligned for its type (`read_record_batch` realigns rather than fails).
//!
//! Same messages, same results, same errors as `FlightDataDecoder`: schema, dictionary and
//! record-batch messages, each `DecodedFlightData` carrying its original message (for its
//! `app_metadata`).

use arrow_array::ArrayRef;
use arrow_buffer::Buffer;
use arrow_flight::decode::DecodedFlightData;
use arrow_flight::error::{FlightError, Result};
use arrow_flight::FlightData;
use arrow_ipc::MessageHeader;
use arrow_schema::{Schema, SchemaRef};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The schema a stream declared and the dictionaries it sent since.
struct StreamState {
    schema: SchemaRef,
    dictionaries_by_id: HashMap<i64, ArrayRef>,
}

/// A stream of FlightData decoded into schema and record-batch payloads, bodies not copied.
pub struct BatchDecoder {
    messages: BoxStream<'static, Result<FlightData>>,
    state: Option<StreamState>,
    done: bool,
}

impl BatchDecoder {
    pub fn new<S>(messages: S) -> Self
    where
        S: Stream<Item = Result<FlightData>> + Send + 'static,
    {
        Self { messages: messages.boxed(), state: None, done: false }
    }

    /// The schema of the stream, once its schema message arrived.
    pub fn schema(&self) -> Option<&SchemaRef> {
        self.state.as_ref().map(|s| &s.schema)
    }

    /// Decodes one message; `None` for a dictionary batch (it only updates the state).
    fn decode(&mut self, data: FlightData) -> Result<Option<DecodedFlightData>> {
        let message = arrow_ipc::root_as_message(&data.data_header[..])
            .map_err(|e| FlightError::DecodeError(format!("Error decoding root message: {e}")))?;
        match message.header_type() {
            MessageHeader::NONE => Ok(Some(DecodedFlightData::new_none(data))),
            MessageHeader::Schema => {
                let schema =
                    Arc::new(Schema::try_from(&data).map_err(|e| FlightError::DecodeError(format!("Error decoding schema: {e}")))?);
                self.state = Some(StreamState { schema: schema.clone(), dictionaries_by_id: HashMap::new() });
                Ok(Some(DecodedFlightData::new_schema(data, schema)))
            }
            MessageHeader::DictionaryBatch => {
                let state = self.state.as_mut().ok_or_else(|| FlightError::protocol("Received DictionaryBatch prior to Schema"))?;
                let dictionary = message
                    .header_as_dictionary_batch()
                    .ok_or_else(|| FlightError::protocol("Could not get dictionary batch from DictionaryBatch message"))?;
                arrow_ipc::reader::read_dictionary(
                    &Buffer::from(data.data_body.clone()),
                    dictionary,
                    &state.schema,
                    &mut state.dictionaries_by_id,
                    &message.version(),
                )
                .map_err(|e| FlightError::DecodeError(format!("Error decoding ipc dictionary: {e}")))?;
                Ok(None)
            }
            MessageHeader::RecordBatch => {
                let state = self.state.as_ref().ok_or_else(|| FlightError::protocol("Received RecordBatch prior to Schema"))?;
                let header = message
                    .header_as_record_batch()
                    .ok_or_else(|| FlightError::protocol("Unable to convert flight data header to a record batch"))?;
                // The received bytes themselves, not a copy (see the module comment).
                let body = Buffer::from(data.data_body.clone());
                let batch = arrow_ipc::reader::read_record_batch(
                    &body,
                    header,
                    state.schema.clone(),
                    &state.dictionaries_by_id,
                    None,
                    &message.version(),
                )
                .map_err(|e| FlightError::DecodeError(format!("Error decoding ipc RecordBatch: {e}")))?;
                Ok(Some(DecodedFlightData::new_record_batch(data, batch)))
            }
            other => Err(FlightError::protocol(format!("Unexpected message: {}", other.variant_name().unwrap_or("UNKNOWN")))),
        }
    }
}

impl std::fmt::Debug for BatchDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchDecoder").field("schema", &self.schema()).field("done", &self.done).finish()
    }
}

impl Stream for BatchDecoder {
    type Item = Result<DecodedFlightData>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        loop {
            let data = match self.messages.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    self.done = true;
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Err(e))) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(data))) => data,
            };
            match self.decode(data) {
                Ok(Some(decoded)) => return Poll::Ready(Some(Ok(decoded))),
                Ok(None) => continue,
                Err(e) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::types::Int32Type;
    use arrow_array::{DictionaryArray, Int64Array, RecordBatch, StringArray};
    use arrow_flight::encode::FlightDataEncoderBuilder;
    use arrow_schema::{DataType, Field};
    use futures::TryStreamExt;

    fn batches() -> Vec<RecordBatch> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("tag", DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)), true),
        ]));
        (0..3)
            .map(|i| {
                let ids = Int64Array::from_iter_values(i * 100..i * 100 + 100);
                let names = StringArray::from_iter((0..100).map(|n| (n % 7 != 0).then(|| format!("name-{i}-{n}"))));
                let tags: DictionaryArray<Int32Type> = (0..100).map(|n| if n % 2 == 0 { "even" } else { "odd" }).collect();
                RecordBatch::try_new(schema.clone(), vec![Arc::new(ids), Arc::new(names), Arc::new(tags)]).unwrap()
            })
            .collect()
    }

    async fn decode_all(data: Vec<FlightData>) -> Result<Vec<RecordBatch>> {
        let decoder = BatchDecoder::new(futures::stream::iter(data.into_iter().map(Ok)));
        decoder
            .try_filter_map(|d| async move {
                Ok(match d.payload {
                    arrow_flight::decode::DecodedPayload::RecordBatch(b) => Some(b),
                    _ => None,
                })
            })
            .try_collect()
            .await
    }

    #[tokio::test]
    async fn given_encoded_batches_with_dictionaries_when_decoded_should_equal_what_was_sent() {
        let sent = batches();
        let encoded: Vec<FlightData> = FlightDataEncoderBuilder::new()
            .with_dictionary_handling(arrow_flight::encode::DictionaryHandling::Resend)
            .build(futures::stream::iter(sent.clone().into_iter().map(Ok)))
            .try_collect()
            .await
            .unwrap();
        assert_eq!(decode_all(encoded).await.unwrap(), sent);
    }

    #[tokio::test]
    async fn given_a_batch_before_its_schema_when_decoded_should_fail_naming_the_order() {
        let encoded: Vec<FlightData> =
            FlightDataEncoderBuilder::new().build(futures::stream::iter(batches().into_iter().map(Ok))).try_collect().await.unwrap();
        let without_schema: Vec<FlightData> = encoded.into_iter().skip(1).collect();
        let err = decode_all(without_schema).await.unwrap_err().to_string();
        assert!(err.contains("prior to Schema"), "{err}");
    }

    #[tokio::test]
    async fn given_a_received_body_when_decoded_should_point_into_it_not_copy_it() {
        let sent = batches();
        let mut encoded: Vec<FlightData> =
            FlightDataEncoderBuilder::new().build(futures::stream::iter(sent.into_iter().take(1).map(Ok))).try_collect().await.unwrap();
        let body = encoded.last().unwrap().data_body.clone();
        let range = body.as_ptr() as usize..body.as_ptr() as usize + body.len();
        let decoded = decode_all(std::mem::take(&mut encoded)).await.unwrap();
        let ids = decoded[0].column(0).to_data();
        let at = ids.buffers()[0].as_ptr() as usize;
        assert!(range.contains(&at), "the id values are read in place from the received body");
    }
}
