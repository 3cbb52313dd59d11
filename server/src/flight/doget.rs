//! DoGet and the flight-info verbs: tickets parsed into typed requests, scans streamed as the
//! stored IPC messages they are.

use crate::engine::StorageEngine;
use crate::error::{Error, Result};
use arrow_array::{Int64Array, RecordBatch};
use arrow_flight::{flight_descriptor::DescriptorType, FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, SchemaAsIpc, Ticket};
use arrow_ipc::writer::IpcWriteOptions;
use arrow_schema::{DataType, Field, Schema};
use futures::{Stream, StreamExt};
use std::pin::Pin;
use std::sync::Arc;
use strom_flight_api::{BatchMetadata, LogScan, SnapshotMetadata, SnapshotScan, TableRef, TicketRequest};
use tonic::Status;

pub type FlightDataStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send>>;

pub async fn do_get(engine: &dyn StorageEngine, ticket: &Ticket) -> Result<FlightDataStream> {
    let request = TicketRequest::parse(&ticket.ticket).map_err(Error::invalid)?;
    match request {
        TicketRequest::LogScan(scan) => log_scan(engine, &scan),
        TicketRequest::SnapshotScan(scan) => snapshot_scan(engine, &scan),
        TicketRequest::Count(count) => {
            let n = engine.count(&count).await?;
            let schema = Arc::new(Schema::new(vec![Field::new("count", DataType::Int64, false)]));
            let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![n as i64]))])?;
            let data = arrow_flight::utils::batches_to_flight_data(&schema, vec![batch])?;
            Ok(Box::pin(futures::stream::iter(data.into_iter().map(Ok))))
        }
        TicketRequest::Lookup(lookup) => {
            let plan = engine.lookup_plan(&lookup)?;
            let key_batch = plan.keys_from_json(&lookup.keys)?;
            let result = plan.run(key_batch, false).await?;
            let data = arrow_flight::utils::batches_to_flight_data(&result.schema(), vec![result])?;
            Ok(Box::pin(futures::stream::iter(data.into_iter().map(Ok))))
        }
    }
}

/// Encodes one record batch as a FlightData message (no dictionaries: Strom never sends them).
pub fn batch_message(batch: &RecordBatch, app_metadata: Vec<u8>) -> Result<FlightData> {
    let generator = arrow_ipc::writer::IpcDataGenerator::default();
    let mut tracker = arrow_ipc::writer::DictionaryTracker::new(false);
    let mut compression = arrow_ipc::writer::CompressionContext::default();
    let (_, encoded) = generator.encode(batch, &mut tracker, &IpcWriteOptions::default(), &mut compression)?;
    Ok(FlightData::from(encoded).with_app_metadata(app_metadata))
}

fn snapshot_scan(engine: &dyn StorageEngine, scan: &SnapshotScan) -> Result<FlightDataStream> {
    let stream = engine.snapshot_scan(scan)?;
    let schema_message = FlightData::from(SchemaAsIpc::new(&stream.schema, &IpcWriteOptions::default()));
    let chunks = tokio_stream::wrappers::ReceiverStream::new(stream.chunks).map(|chunk| {
        let chunk = chunk.map_err(Status::from)?;
        let metadata = SnapshotMetadata { bucket: chunk.bucket, partition: chunk.partition.clone(), log_offset: chunk.log_offset };
        Ok(batch_message(&chunk.batch, serde_json::to_vec(&metadata).expect("metadata serializes"))?)
    });
    Ok(Box::pin(futures::stream::once(async { Ok(schema_message) }).chain(chunks)))
}

fn log_scan(engine: &dyn StorageEngine, scan: &LogScan) -> Result<FlightDataStream> {
    let stream = engine.scan(scan)?;
    let schema_message = FlightData::from(SchemaAsIpc::new(&stream.schema, &IpcWriteOptions::default()));
    let chunks = tokio_stream::wrappers::ReceiverStream::new(stream.chunks).map(|chunk| {
        let chunk = chunk.map_err(Status::from)?;
        let metadata = BatchMetadata {
            bucket: chunk.bucket,
            partition: chunk.partition.clone(),
            base_offset: chunk.base_offset,
            high_watermark: chunk.high_watermark,
        };
        Ok(FlightData {
            flight_descriptor: None,
            data_header: chunk.meta,
            data_body: chunk.body,
            app_metadata: serde_json::to_vec(&metadata).expect("metadata serializes").into(),
        })
    });
    Ok(Box::pin(futures::stream::once(async { Ok(schema_message) }).chain(chunks)))
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
