//! DoGet and the flight-info verbs: tickets parsed into typed requests, scans streamed as the
//! stored IPC messages they are.

use crate::engine::{IpcMessage, MessageBody, StorageEngine};
use crate::error::{Error, Result};
use crate::flight::served::ServedStats;
use arrow_array::{Int64Array, RecordBatch};
use arrow_flight::{flight_descriptor::DescriptorType, FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, SchemaAsIpc, Ticket};
use arrow_ipc::writer::IpcWriteOptions;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use futures::{Stream, StreamExt};
use std::pin::Pin;
use std::sync::Arc;
use strom_flight_api::{BatchMetadata, LogScan, SnapshotMetadata, TableRef, TicketRequest};
use tonic::Status;

pub type FlightDataStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send>>;

/// One message of a DoGet answer: the FlightData without its body, and the body as the engine
/// returned it (possibly several byte ranges: see [`MessageBody`]).
pub struct GetMessage {
    pub data: FlightData,
    pub body: MessageBody,
}

impl GetMessage {
    fn new(message: IpcMessage, app_metadata: Vec<u8>) -> Self {
        let data = FlightData {
            flight_descriptor: None,
            data_header: message.header,
            data_body: Default::default(),
            app_metadata: app_metadata.into(),
        };
        Self { data, body: message.body }
    }

    /// Bytes of the header, body and app metadata (what `table_stats` counts).
    pub fn payload_len(&self) -> usize {
        self.data.data_header.len() + self.body.len() + self.data.app_metadata.len()
    }

    /// As one FlightData (its body copied together if it has several ranges).
    pub fn into_flight_data(self) -> FlightData {
        FlightData { data_body: self.body.into_contiguous(), ..self.data }
    }
}

pub type GetStream = Pin<Box<dyn Stream<Item = Result<GetMessage, Status>> + Send>>;

pub async fn do_get(engine: &dyn StorageEngine, served: &ServedStats, ticket: &Ticket) -> Result<GetStream> {
    let request = TicketRequest::parse(&ticket.ticket).map_err(Error::invalid)?;
    match request {
        TicketRequest::LogScan(scan) => {
            let stream = engine.scan(&scan)?;
            let counters = served.table(&scan.database, &scan.table);
            counters.log_scan_started();
            let chunks = tokio_stream::wrappers::ReceiverStream::new(stream.chunks).map(move |chunk| {
                let chunk = chunk?;
                let metadata = BatchMetadata {
                    bucket: chunk.bucket,
                    partition: chunk.partition,
                    base_offset: chunk.base_offset,
                    high_watermark: chunk.high_watermark,
                    end_offset: chunk.end_offset,
                };
                let data = GetMessage::new(chunk.message, serde_json::to_vec(&metadata).expect("metadata serializes"));
                counters.sent(chunk.rows, data.payload_len());
                Ok(data)
            });
            Ok(with_schema(&stream.schema, chunks))
        }
        TicketRequest::SnapshotScan(scan) => {
            let stream = engine.snapshot_scan(&scan)?;
            let counters = served.table(&scan.database, &scan.table);
            counters.snapshot_scan_started();
            let chunks = tokio_stream::wrappers::ReceiverStream::new(stream.chunks).map(move |chunk| {
                let chunk = chunk?;
                let metadata = SnapshotMetadata { bucket: chunk.bucket, partition: chunk.partition, log_offset: chunk.log_offset };
                let data = GetMessage::new(chunk.message, serde_json::to_vec(&metadata).expect("metadata serializes"));
                counters.sent(chunk.rows, data.payload_len());
                Ok(data)
            });
            Ok(with_schema(&stream.schema, chunks))
        }
        TicketRequest::Count(count) => {
            let n = engine.count(&count).await?;
            let schema = Arc::new(Schema::new(vec![Field::new("count", DataType::Int64, false)]));
            let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![n as i64]))])?;
            let message = IpcMessage::encode(&batch)?;
            Ok(with_schema(&schema, futures::stream::once(async move { Ok(GetMessage::new(message, Vec::new())) })))
        }
        TicketRequest::Lookup(request) => {
            let lookup = engine.open_lookup(&request)?;
            let keys = lookup.keys_from_json(&request.keys)?;
            let answer = lookup.lookup(keys, false).await?;
            let message = GetMessage::new(answer.message, Vec::new());
            Ok(with_schema(&lookup.result_schema(false), futures::stream::once(async move { Ok(message) })))
        }
    }
}

/// Frames one encoded record-batch message as FlightData.
pub fn message_data(message: IpcMessage, app_metadata: Vec<u8>) -> FlightData {
    GetMessage::new(message, app_metadata).into_flight_data()
}

/// A DoGet answer as FlightData messages (tonic's generated DoGet; the node serves DoGet with
/// `zero_copy`, which sends the bodies' ranges as they are).
pub fn flight_data(stream: GetStream) -> FlightDataStream {
    Box::pin(stream.map(|item| item.map(GetMessage::into_flight_data)))
}

/// The schema message, then the batches (the first error ends the stream with its status).
fn with_schema(schema: &SchemaRef, batches: impl Stream<Item = Result<GetMessage>> + Send + 'static) -> GetStream {
    let schema_message =
        GetMessage { data: FlightData::from(SchemaAsIpc::new(schema, &IpcWriteOptions::default())), body: MessageBody::default() };
    Box::pin(futures::stream::once(async { Ok(schema_message) }).chain(batches.map(|item| item.map_err(Status::from))))
}

/// Reads `[database, table]` from a PATH descriptor or `{"database", "table"}` from a CMD one.
pub fn table_of(d: &FlightDescriptor) -> Result<TableRef> {
    if d.r#type == DescriptorType::Path as i32 {
        return match d.path.as_slice() {
            [db, table] => Ok(TableRef { database: db.clone(), table: table.clone() }),
            other => Err(Error::invalid(format!("PATH descriptor must be [database, table], got {other:?}"))),
        };
    }
    #[derive(serde::Deserialize)]
    struct Named {
        database: String,
        table: String,
    }
    let named: Named = serde_json::from_slice(&d.cmd)
        .map_err(|e| Error::invalid(format!("CMD descriptor must be JSON with \"database\" and \"table\": {e}")))?;
    Ok(TableRef { database: named.database, table: named.table })
}

/// One endpoint per bucket, each ticket a bounded log scan of that bucket.
pub fn flight_info(engine: &dyn StorageEngine, table: &TableRef) -> Result<FlightInfo> {
    let schema = engine.table_schema(&table.database, &table.table)?;
    let totals = engine.bucket_totals(&table.database, &table.table)?;
    // (partition, bucket, records, bytes), one endpoint each
    let mut info = FlightInfo::new()
        .try_with_schema(&schema)?
        .with_descriptor(FlightDescriptor::new_path(vec![table.database.clone(), table.table.clone()]))
        .with_total_records(totals.iter().map(|t| t.records as i64).sum())
        .with_total_bytes(totals.iter().map(|t| t.bytes as i64).sum())
        .with_ordered(false);
    for total in totals {
        let ticket = TicketRequest::LogScan(LogScan {
            database: table.database.clone(),
            table: table.table.clone(),
            partition: total.partition,
            buckets: Some(vec![total.bucket]),
            ..Default::default()
        });
        info = info.with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket.to_json())));
    }
    Ok(info)
}
