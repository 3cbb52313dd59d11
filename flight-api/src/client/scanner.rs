//! Log scans and snapshot scans (`DoGet` with a JSON ticket) decoded into record batches
//! with their per-batch metadata, and `count`.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::decode::BatchDecoder;
use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, UInt64Type};
use arrow_array::RecordBatch;
use arrow_flight::decode::DecodedPayload;
use arrow_flight::error::FlightError;
use arrow_flight::Ticket;
use arrow_schema::{DataType, SchemaRef};
use futures::{Stream, StreamExt, TryStreamExt};

use super::StromClient;
use crate::contract::{BatchMetadata, CountRequest, LogScan, SnapshotMetadata, SnapshotScan, TicketRequest, SCAN_MESSAGE_BYTES};
use crate::error::{from_flight, from_status, Error, Result};

/// One batch of a log scan with where it came from.
#[derive(Debug, Clone)]
pub struct ScanBatch {
    pub batch: RecordBatch,
    /// `{"bucket", "partition"?, "base_offset", "high_watermark"}` of the message.
    pub metadata: BatchMetadata,
}

/// The batches of a log scan, in the order the node sends them (per bucket in offset order).
/// A bounded scan ends at the high watermark of the call; a `follow` scan never ends on its
/// own: drop the stream to stop it.
pub struct LogScanStream {
    decoder: BatchDecoder,
}

impl LogScanStream {
    fn new(decoder: BatchDecoder) -> Self {
        Self { decoder }
    }

    /// The schema of the scan, once the node has sent it (it is the first message, so after
    /// the first batch, or after the end of an empty scan).
    pub fn schema(&self) -> Option<&SchemaRef> {
        self.decoder.schema()
    }

    /// Reads the whole (bounded) scan.
    pub async fn collect_all(self) -> Result<Vec<ScanBatch>> {
        self.try_collect().await
    }
}

impl std::fmt::Debug for LogScanStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogScanStream").field("schema", &self.decoder.schema()).finish()
    }
}

impl Stream for LogScanStream {
    type Item = Result<ScanBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let next = match self.decoder.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(from_flight(e)))),
                Poll::Ready(Some(Ok(decoded))) => decoded,
            };
            // Schema (and empty) messages carry no rows: skip them.
            let metadata_bytes = next.app_metadata();
            let DecodedPayload::RecordBatch(batch) = next.payload else { continue };
            return Poll::Ready(Some(parse_metadata(&metadata_bytes).map(|metadata| ScanBatch { batch, metadata })));
        }
    }
}

/// The contract puts the metadata on every record-batch message; a batch without it cannot
/// be placed (no offsets), so its absence is a protocol error rather than a silent default.
fn parse_metadata<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    if bytes.is_empty() {
        return Err(Error::Protocol(format!("scan batch without app_metadata (expected {})", std::any::type_name::<T>())));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| Error::Protocol(format!("scan batch app_metadata {:?} does not decode: {e}", String::from_utf8_lossy(bytes))))
}

/// One batch of a snapshot scan with the bucket it holds rows of and the changelog offset
/// the snapshot of that bucket stands at.
#[derive(Debug, Clone)]
pub struct SnapshotBatch {
    pub batch: RecordBatch,
    /// `{"bucket", "partition"?, "log_offset"}` of the message.
    pub metadata: SnapshotMetadata,
}

/// A whole snapshot scan: the rows, and for every bucket the changelog offset the snapshot
/// stands at (it holds exactly the changes before it), so a changelog scan of that bucket
/// from that offset continues it exactly once.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The (projected) schema; `None` only if the node sent no message at all.
    pub schema: Option<SchemaRef>,
    /// Batches in the order sent: buckets one after another, key order within a bucket.
    pub batches: Vec<RecordBatch>,
    /// One entry per bucket (and partition) scanned, in the order the buckets came.
    pub buckets: Vec<SnapshotMetadata>,
}

impl Snapshot {
    /// Rows across all batches.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }

    /// The changelog offset of `bucket` (of an unpartitioned table).
    pub fn log_offset(&self, bucket: u32) -> Option<u64> {
        self.buckets.iter().find(|m| m.bucket == bucket && m.partition.is_none()).map(|m| m.log_offset)
    }

    /// Bucket → changelog offset, for unpartitioned tables.
    pub fn log_offsets(&self) -> BTreeMap<u32, u64> {
        self.buckets.iter().filter(|m| m.partition.is_none()).map(|m| (m.bucket, m.log_offset)).collect()
    }

    /// Adds one batch, checking that a bucket keeps one offset (the whole scan is one snapshot).
    fn push(&mut self, next: SnapshotBatch) -> Result<()> {
        let metadata = next.metadata;
        match self.buckets.iter().find(|m| m.bucket == metadata.bucket && m.partition == metadata.partition) {
            Some(known) if known.log_offset != metadata.log_offset => {
                return Err(Error::Protocol(format!(
                    "snapshot scan sent bucket {} at log offsets {} and {}: one scan is one snapshot",
                    metadata.bucket, known.log_offset, metadata.log_offset
                )));
            }
            Some(_) => {}
            None => self.buckets.push(metadata),
        }
        self.batches.push(next.batch);
        Ok(())
    }
}

/// The batches of a snapshot scan as the node sends them; every bucket sends at least one
/// (possibly empty) batch, so every bucket's log offset is seen.
pub struct SnapshotScanStream {
    decoder: BatchDecoder,
}

impl SnapshotScanStream {
    /// The schema of the scan, once the node has sent it.
    pub fn schema(&self) -> Option<&SchemaRef> {
        self.decoder.schema()
    }

    /// Reads the whole scan: the batches and each bucket's log offset.
    pub async fn collect_all(mut self) -> Result<Snapshot> {
        let mut snapshot = Snapshot::default();
        while let Some(next) = self.try_next().await? {
            snapshot.push(next)?;
        }
        snapshot.schema = self.decoder.schema().cloned();
        Ok(snapshot)
    }
}

impl std::fmt::Debug for SnapshotScanStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotScanStream").field("schema", &self.decoder.schema()).finish()
    }
}

impl Stream for SnapshotScanStream {
    type Item = Result<SnapshotBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let next = match self.decoder.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(from_flight(e)))),
                Poll::Ready(Some(Ok(decoded))) => decoded,
            };
            let metadata_bytes = next.app_metadata();
            let DecodedPayload::RecordBatch(batch) = next.payload else { continue };
            return Poll::Ready(Some(parse_metadata(&metadata_bytes).map(|metadata| SnapshotBatch { batch, metadata })));
        }
    }
}

impl StromClient {
    /// Starts a log scan; the ticket is the JSON of `{"scan": "log", ...}`. Asks for messages of
    /// [`SCAN_MESSAGE_BYTES`] unless `scan.message_bytes` says otherwise.
    pub async fn scan_log(&self, mut scan: LogScan) -> Result<LogScanStream> {
        scan.message_bytes = scan.message_bytes.or(Some(SCAN_MESSAGE_BYTES));
        self.scan_ticket(Ticket::new(TicketRequest::LogScan(scan).to_json())).await
    }

    /// Runs any log-scan ticket, e.g. one taken from a `GetFlightInfo` endpoint.
    pub async fn scan_ticket(&self, ticket: Ticket) -> Result<LogScanStream> {
        let mut client = self.inner.clone();
        let stream = client.do_get(ticket).await.map_err(from_status)?.into_inner();
        let stream = stream.map_err(|status| FlightError::Tonic(Box::new(status)));
        Ok(LogScanStream::new(BatchDecoder::new(stream)))
    }

    /// Starts a snapshot scan of a primary-key table (`{"scan": "snapshot", ...}`): the
    /// current rows, all from one consistent snapshot across buckets.
    pub async fn scan_snapshot(&self, scan: SnapshotScan) -> Result<SnapshotScanStream> {
        let mut client = self.inner.clone();
        let stream = client.do_get(Ticket::new(TicketRequest::SnapshotScan(scan).to_json())).await.map_err(from_status)?.into_inner();
        let stream = stream.map_err(|status| FlightError::Tonic(Box::new(status)));
        Ok(SnapshotScanStream { decoder: BatchDecoder::new(stream) })
    }

    /// Reads a whole snapshot scan: rows and per-bucket changelog offsets.
    pub async fn collect_snapshot(&self, scan: SnapshotScan) -> Result<Snapshot> {
        self.scan_snapshot(scan).await?.collect_all().await
    }

    /// Reads a bounded log scan to the end.
    pub async fn collect_log(&self, scan: LogScan) -> Result<Vec<ScanBatch>> {
        if scan.follow {
            return Err(Error::InvalidArgument("collect_log needs a bounded scan; use scan_log with follow".into()));
        }
        self.scan_log(scan).await?.collect_all().await
    }

    /// Number of records (`{"count": "log", ...}`) or, with [`crate::CountKind::Rows`], of
    /// current rows of a primary-key table (`{"count": "rows", ...}`): one batch with one
    /// `count` column.
    pub async fn count(&self, request: CountRequest) -> Result<u64> {
        let mut client = self.inner.clone();
        let ticket = Ticket::new(TicketRequest::Count(request).to_json());
        let stream = client.do_get(ticket).await.map_err(from_status)?.into_inner();
        let stream = stream.map_err(|status| FlightError::Tonic(Box::new(status)));
        let mut decoder = BatchDecoder::new(stream);
        let mut total: Option<u64> = None;
        while let Some(decoded) = decoder.try_next().await.map_err(from_flight)? {
            let DecodedPayload::RecordBatch(batch) = decoded.payload else { continue };
            if batch.num_rows() == 0 {
                continue;
            }
            if total.is_some() || batch.num_rows() != 1 {
                return Err(Error::Protocol(format!("count answered more than one row ({} in a batch)", batch.num_rows())));
            }
            total = Some(read_count(&batch)?);
        }
        total.ok_or_else(|| Error::Protocol("count answered no row".into()))
    }
}

/// Reads the single `count` value, accepting either integer width the node may choose.
fn read_count(batch: &RecordBatch) -> Result<u64> {
    let column = batch
        .column_by_name("count")
        .ok_or_else(|| Error::Protocol(format!("count answer has no `count` column: {:?}", batch.schema())))?;
    if column.is_null(0) {
        return Err(Error::Protocol("count is null".into()));
    }
    match column.data_type() {
        DataType::Int64 => {
            let v = column.as_primitive::<Int64Type>().value(0);
            u64::try_from(v).map_err(|_| Error::Protocol(format!("negative count {v}")))
        }
        DataType::UInt64 => Ok(column.as_primitive::<UInt64Type>().value(0)),
        other => Err(Error::Protocol(format!("count column has type {other}, expected Int64 or UInt64"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, Int64Array, UInt64Array};
    use std::sync::Arc;

    #[test]
    fn given_metadata_json_when_parsed_should_read_bucket_and_offsets() {
        let m: BatchMetadata = parse_metadata(br#"{"bucket":2,"base_offset":10,"high_watermark":42}"#).unwrap();
        assert_eq!((m.bucket, m.base_offset, m.high_watermark, m.partition), (2, 10, 42, None));
    }

    #[test]
    fn given_missing_or_bad_metadata_when_parsed_should_be_protocol_error() {
        assert!(matches!(parse_metadata::<BatchMetadata>(b""), Err(Error::Protocol(_))));
        assert!(matches!(parse_metadata::<BatchMetadata>(b"{\"bucket\":1}"), Err(Error::Protocol(_))));
        assert!(matches!(
            parse_metadata::<SnapshotMetadata>(br#"{"bucket":1,"base_offset":0,"high_watermark":0}"#),
            Err(Error::Protocol(_))
        ));
    }

    #[test]
    fn given_int64_or_uint64_count_column_when_read_should_return_value() {
        let a: ArrayRef = Arc::new(Int64Array::from(vec![7]));
        let b: ArrayRef = Arc::new(UInt64Array::from(vec![9u64]));
        assert_eq!(read_count(&RecordBatch::try_from_iter([("count", a)]).unwrap()).unwrap(), 7);
        assert_eq!(read_count(&RecordBatch::try_from_iter([("count", b)]).unwrap()).unwrap(), 9);
    }

    #[test]
    fn given_negative_or_missing_count_when_read_should_be_protocol_error() {
        let a: ArrayRef = Arc::new(Int64Array::from(vec![-1]));
        assert!(read_count(&RecordBatch::try_from_iter([("count", a.clone())]).unwrap()).is_err());
        assert!(read_count(&RecordBatch::try_from_iter([("n", a)]).unwrap()).is_err());
    }
}
