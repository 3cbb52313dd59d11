//! DoExchange: batched lookups for high-throughput clients.
//!
//! The first message carries a CMD descriptor with the lookup JSON (without `keys`) and the
//! Arrow schema of the keys; every key record batch that follows is answered, in order, by one
//! record batch whose first column `_key_index` names the request row each result row answers.
//! The first failing batch ends the stream with its error status.
//!
//! Key batches of one stream are answered in order, up to `server.lookup_pipeline_depth` of
//! them looked up at once (each batch of more than one key runs on the blocking pool), so a
//! single client stream with several requests in flight can use more than one core. One at a
//! time, one stream of 500-key batches with 2 in flight peaked at 141–165K keys/s on 2 cores
//! where 4 streams reached 263–343K; at depth 4 it reached 203–225K, and a Flink async lookup
//! join (one subtask, one stream) was bound by the node's one busy core until the depth went
//! up (docs/benchmarks.md, config/strom.toml: why 4 is the default).
//! Lookups that insert missing keys (`insert_if_not_exists`) stay one at a time: a key new to
//! two batches must be inserted by the first and found by the second, as the client sent them.

use super::decode::{declared_schema, decode_batch};
use super::doget::message_data;
use crate::engine::{Lookup, StorageEngine};
use crate::error::{Error, Result};
use arrow_flight::{flight_descriptor::DescriptorType, FlightData, SchemaAsIpc};
use arrow_ipc::writer::IpcWriteOptions;
use arrow_ipc::MessageHeader;
use arrow_schema::SchemaRef;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use std::pin::Pin;
use std::sync::Arc;
use strom_flight_api::LookupRequest;
use tonic::{Status, Streaming};

pub async fn do_exchange(
    engine: Arc<dyn StorageEngine>,
    input: Streaming<FlightData>,
    max_message_bytes: usize,
    pipeline_depth: usize,
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
    let depth = if request.insert_if_not_exists { 1 } else { pipeline_depth.max(1) };
    let lookup = engine.open_lookup(&request)?;
    let schema_message = FlightData::from(SchemaAsIpc::new(&lookup.result_schema(true), &IpcWriteOptions::default()));
    let answers = answers(lookup, input, depth, max_message_bytes);
    Ok(futures::stream::once(async { Ok(schema_message) }).chain(answers).boxed())
}

/// The answers to the key batches of `input` (after its descriptor message), in order, up to
/// `depth` computed at once; the first error ends them.
fn answers<S>(
    lookup: Arc<dyn Lookup>,
    input: futures::stream::Peekable<S>,
    depth: usize,
    max_message_bytes: usize,
) -> impl futures::Stream<Item = Result<FlightData, Status>> + Send + 'static
where
    S: futures::Stream<Item = Result<FlightData, Status>> + Send + Unpin + 'static,
{
    // Answers are produced as the response stream is polled: no task or channel hop between a
    // key batch and its answer (single-key latency is what interactive lookups feel). The
    // reading side is sequential (a schema message changes how the batches after it decode);
    // `buffered` then runs up to `depth` answers at once and yields them in input order.
    let state = ExchangeState { lookup, input, schema: None, max_message_bytes, done: false };
    let work = futures::stream::unfold(state, |mut state| async move {
        if state.done {
            return None;
        }
        match next_key_batch(&mut state).await {
            Ok(Some(answer)) => Some((answer, state)),
            Ok(None) => None,
            Err(e) => {
                state.done = true;
                Some((futures::future::ready(Err(e)).boxed(), state))
            }
        }
    });
    // The first error ends the stream: answers after it are not sent (lookups already running
    // after it only read).
    work.buffered(depth).scan(false, |failed, answer| {
        let item = match (*failed, answer) {
            (true, _) => None,
            (false, Ok(data)) => Some(Ok(data)),
            (false, Err(e)) => {
                *failed = true;
                Some(Err(Status::from(e)))
            }
        };
        futures::future::ready(item)
    })
}

struct ExchangeState<S: futures::Stream> {
    lookup: Arc<dyn Lookup>,
    input: futures::stream::Peekable<S>,
    schema: Option<SchemaRef>,
    max_message_bytes: usize,
    done: bool,
}

/// An answer being computed.
type PendingAnswer = futures::future::BoxFuture<'static, Result<FlightData>>;

/// Reads messages until a key batch arrives and returns its answer's future (decoding and
/// looking up run when it is polled); None at the end of the input.
async fn next_key_batch<S>(state: &mut ExchangeState<S>) -> Result<Option<PendingAnswer>>
where
    S: futures::Stream<Item = Result<FlightData, Status>> + Unpin,
{
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
                return Ok(Some(
                    async move {
                        let keys = decode_batch(data, s, "DoExchange").await?;
                        let answer = lookup.lookup(keys, true).await?;
                        Ok(message_data(answer.message, Vec::new()))
                    }
                    .boxed(),
                ));
            }
            MessageHeader::DictionaryBatch => {
                return Err(Error::invalid("dictionary-encoded key columns are not accepted: send plain values"));
            }
            other => return Err(Error::invalid(format!("unexpected IPC message type {other:?} in DoExchange"))),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    //! The pipeline's order and concurrency, against a lookup whose batches meet each other:
    //! the real engine's lookups finish too fast to show whether two ran at once.
    use super::*;
    use crate::engine::{IpcMessage, LookupAnswer};
    use arrow_array::{Int32Array, Int64Array, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;
    use tokio::sync::Notify;

    /// Answers each key batch with its keys; batch `[0, ..]` waits until batch `[1, ..]` has
    /// started (it fails after 10 s if that never happens), and it counts how many run at once.
    struct MeetingLookup {
        second_started: Notify,
        running: AtomicUsize,
        most_running: AtomicUsize,
        meet: bool,
    }

    fn key_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]))
    }

    #[async_trait::async_trait]
    impl Lookup for MeetingLookup {
        fn table_path(&self) -> &str {
            "test.meeting"
        }
        fn result_schema(&self, _with_key_index: bool) -> SchemaRef {
            Arc::new(Schema::new(vec![Field::new("_key_index", DataType::Int32, false), Field::new("k", DataType::Int64, false)]))
        }
        fn check_key_schema(&self, _schema: &SchemaRef) -> Result<()> {
            Ok(())
        }
        fn keys_from_json(&self, _keys: &[Vec<serde_json::Value>]) -> Result<RecordBatch> {
            unreachable!("DoExchange sends key batches")
        }
        async fn lookup(&self, keys: RecordBatch, _with_key_index: bool) -> Result<LookupAnswer> {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_running.fetch_max(now, Ordering::SeqCst);
            let values = keys.column(0).as_any().downcast_ref::<Int64Array>().expect("int64 keys").clone();
            match values.value(0) {
                0 if self.meet => {
                    tokio::time::timeout(Duration::from_secs(10), self.second_started.notified())
                        .await
                        .map_err(|_| Error::Internal("key batch 1 never started while batch 0 was looked up".into()))?;
                }
                1 if self.meet => self.second_started.notify_one(),
                // Without the meeting, give another batch the chance to start meanwhile.
                _ => tokio::task::yield_now().await,
            }
            self.running.fetch_sub(1, Ordering::SeqCst);
            let index = Int32Array::from_iter_values(0..values.len() as i32);
            let batch = RecordBatch::try_new(self.result_schema(true), vec![Arc::new(index), Arc::new(values)])?;
            Ok(LookupAnswer { rows: batch.num_rows(), message: IpcMessage::encode(&batch)? })
        }
    }

    /// The FlightData of a stream sending key batches `[first, first + 1]` for each first.
    fn key_messages(firsts: &[i64]) -> Vec<Result<FlightData, Status>> {
        let batches: Vec<RecordBatch> = firsts
            .iter()
            .map(|&f| RecordBatch::try_new(key_schema(), vec![Arc::new(Int64Array::from(vec![f, f + 1]))]).expect("batch"))
            .collect();
        arrow_flight::utils::batches_to_flight_data(&key_schema(), batches).expect("encode").into_iter().map(Ok).collect()
    }

    async fn answered_firsts(lookup: Arc<MeetingLookup>, firsts: &[i64], depth: usize) -> Vec<i64> {
        let input = futures::stream::iter(key_messages(firsts)).peekable();
        let answers: Vec<Result<FlightData, Status>> = answers(lookup.clone(), input, depth, 1 << 20).collect().await;
        let schema = lookup.result_schema(true);
        answers
            .into_iter()
            .map(|answer| {
                let data = answer.expect("answered");
                let batch = arrow_flight::utils::flight_data_to_arrow_batch(&data, schema.clone(), &Default::default()).expect("decode");
                batch.column(1).as_any().downcast_ref::<Int64Array>().expect("int64").value(0)
            })
            .collect()
    }

    #[tokio::test]
    async fn given_key_batches_in_flight_on_one_stream_when_answered_should_look_them_up_at_once_in_order() {
        let lookup = Arc::new(MeetingLookup { second_started: Notify::new(), running: 0.into(), most_running: 0.into(), meet: true });
        // Batch 0 can only finish once batch 1 started: one at a time, it would time out.
        let firsts = answered_firsts(lookup.clone(), &[0, 1, 10, 20], 4).await;
        assert_eq!(firsts, vec![0, 1, 10, 20], "answers keep the order of the key batches");
        assert!(lookup.most_running.load(Ordering::SeqCst) >= 2);
    }

    #[tokio::test]
    async fn given_depth_one_when_answered_should_look_up_one_batch_at_a_time() {
        // Depth 1 is what lookups that insert missing keys get.
        let lookup = Arc::new(MeetingLookup { second_started: Notify::new(), running: 0.into(), most_running: 0.into(), meet: false });
        let firsts = answered_firsts(lookup.clone(), &[5, 6, 7, 8], 1).await;
        assert_eq!(firsts, vec![5, 6, 7, 8]);
        assert_eq!(lookup.most_running.load(Ordering::SeqCst), 1);
    }
}
