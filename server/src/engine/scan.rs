//! Log scans: stored batches served as they are stored, or pruned to the requested columns
//! without decoding. One task per bucket feeds a bounded channel, so a slow client slows the
//! readers instead of buffering the table in memory.

use super::table::TableRuntime;
use crate::error::{Error, Result};
use crate::log::bucket::BucketLog;
use crate::log::format::{self, BatchHeader};
use crate::log::ipc::{self, BatchLayout, MetadataValues};
use crate::log::segment::{read_prelude, IndexEntry, Segment};
use arrow_array::{ArrayRef, Int32Array, Int64Array, RecordBatch, TimestampMillisecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use parking_lot::Mutex;
use std::sync::Arc;
use strom_flight_api::{EndPosition, StartPosition, BUCKET_COLUMN, OFFSET_COLUMN, TIMESTAMP_COLUMN};
use tokio::sync::mpsc;

/// A validated scan request.
#[derive(Debug, Clone)]
pub struct ScanSpec {
    pub buckets: Vec<u32>,
    pub from: StartPosition,
    pub to: Option<EndPosition>,
    pub follow: bool,
    /// Indices of the kept table columns, in output order; None = all.
    pub columns: Option<Vec<usize>>,
    pub limit: Option<u64>,
    pub metadata_columns: bool,
}

/// One encoded record batch of a scan, ready to be framed as FlightData.
#[derive(Debug, Clone)]
pub struct ScanChunk {
    pub bucket: u32,
    /// The partition the bucket belongs to (partitioned tables).
    pub partition: Option<String>,
    pub base_offset: u64,
    pub high_watermark: u64,
    pub rows: u64,
    pub meta: Bytes,
    pub body: Bytes,
}

pub struct ScanStream {
    pub schema: SchemaRef,
    pub chunks: mpsc::Receiver<Result<ScanChunk>>,
}

/// Starts scans of the partitions not among the given names (the ones already scanned).
pub type StartNewPartitions = Box<dyn Fn(&[String]) -> Result<Vec<(String, ScanStream)>> + Send>;

/// One scan over the partitions of a partitioned table: each partition's stream is forwarded
/// into one; with `new_partitions` (a follow scan of every partition) partitions created while
/// it runs are scanned too, from their start, as soon as they exist. `limit` caps the rows of
/// all partitions together.
pub fn merge_partition_scans(
    schema: SchemaRef,
    first: Vec<(String, ScanStream)>,
    mut new_partitions: Option<(tokio::sync::watch::Receiver<u64>, StartNewPartitions)>,
    limit: Option<u64>,
) -> ScanStream {
    let (tx, rx) = mpsc::channel(4);
    let out_schema = schema.clone();
    tokio::spawn(async move {
        let mut known: Vec<String> = first.iter().map(|(n, _)| n.clone()).collect();
        let mut streams = futures::stream::SelectAll::new();
        for (_, s) in first {
            streams.push(tokio_stream::wrappers::ReceiverStream::new(s.chunks));
        }
        let mut remaining = limit;
        loop {
            let next = tokio::select! {
                next = futures::StreamExt::next(&mut streams), if !streams.is_empty() => next,
                changed = async {
                    match new_partitions.as_mut() {
                        Some((watch, _)) => watch.changed().await.is_ok(),
                        None => std::future::pending().await,
                    }
                } => {
                    if !changed {
                        new_partitions = None;
                        continue;
                    }
                    let (_, start) = new_partitions.as_ref().expect("set");
                    match start(&known) {
                        Ok(added) => for (name, s) in added {
                            known.push(name);
                            streams.push(tokio_stream::wrappers::ReceiverStream::new(s.chunks));
                        },
                        Err(e) => { let _ = tx.send(Err(e)).await; return; }
                    }
                    continue;
                }
                _ = tx.closed() => return,
            };
            let Some(item) = next else {
                if new_partitions.is_none() {
                    return;
                }
                continue;
            };
            let item = match (item, remaining.as_mut()) {
                (Ok(chunk), Some(left)) => {
                    if *left == 0 {
                        return;
                    }
                    let n = chunk.rows.min(*left);
                    *left -= n;
                    if n < chunk.rows {
                        slice_chunk(&chunk, &schema, n)
                    } else {
                        Ok(chunk)
                    }
                }
                (item, _) => item,
            };
            let stop = item.is_err() || remaining == Some(0);
            if tx.send(item).await.is_err() || stop {
                return;
            }
        }
    });
    ScanStream { schema: out_schema, chunks: rx }
}

struct ScanPlan {
    partition: Option<String>,
    /// The schema id of `table_schema`; entries of other (older) ids are decoded with their
    /// own stored schema and widened, their added columns null.
    schema_id: u32,
    older_schemas: std::collections::BTreeMap<u32, SchemaRef>,
    table_schema: SchemaRef,
    output_schema: SchemaRef,
    keep: Vec<usize>,
    /// True when batches are served byte-for-byte as stored.
    verbatim: bool,
    metadata_columns: bool,
    read_bytes: usize,
}

/// Rows still allowed by `limit`, shared by the bucket tasks.
struct Limit(Mutex<u64>);

impl Limit {
    fn take(&self, want: u64) -> u64 {
        let mut left = self.0.lock();
        let n = want.min(*left);
        *left -= n;
        n
    }
}

pub fn metadata_fields() -> Vec<Field> {
    vec![
        Field::new(BUCKET_COLUMN, DataType::Int32, false),
        Field::new(OFFSET_COLUMN, DataType::Int64, false),
        Field::new(TIMESTAMP_COLUMN, DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
    ]
}

/// Starts a scan; the returned stream ends at the high watermark (or never, with `follow`).
/// The schema a scan of `columns` (all when None) of `table_schema` sends.
pub fn output_schema(table_schema: &SchemaRef, columns: &Option<Vec<usize>>, metadata_columns: bool) -> SchemaRef {
    let keep: Vec<usize> = columns.clone().unwrap_or_else(|| (0..table_schema.fields().len()).collect());
    let mut fields: Vec<Field> = keep.iter().map(|&i| table_schema.field(i).clone()).collect();
    if metadata_columns {
        fields.extend(metadata_fields());
    }
    Arc::new(Schema::new(fields))
}

/// What the logs of an older schema version with `columns` row columns hold: the first columns
/// of `current` (and a changelog's `_change_type`, always last).
fn stored_schema_prefix(current: &SchemaRef, columns: usize, changelog: bool) -> SchemaRef {
    let mut fields: Vec<Field> = current.fields().iter().take(columns).map(|f| f.as_ref().clone()).collect();
    if changelog {
        fields.push(current.fields().last().expect("changelog schema").as_ref().clone());
    }
    Arc::new(Schema::new(fields))
}

pub fn start_scan(table: Arc<TableRuntime>, spec: ScanSpec, read_bytes: usize) -> Result<ScanStream> {
    let table_schema = table.schema();
    let keep: Vec<usize> = spec.columns.clone().unwrap_or_else(|| (0..table_schema.fields().len()).collect());
    let output_schema = output_schema(&table_schema, &spec.columns, spec.metadata_columns);
    let verbatim = !spec.metadata_columns && keep.iter().copied().eq(0..table_schema.fields().len());
    let meta = table.meta();
    let mut older_schemas = std::collections::BTreeMap::new();
    for (&id, &columns) in &meta.schema_columns {
        if id != meta.schema_id {
            older_schemas.insert(id, stored_schema_prefix(&table_schema, columns, !meta.primary_key.is_empty()));
        }
    }
    let plan = Arc::new(ScanPlan {
        partition: meta.partition.clone(),
        schema_id: meta.schema_id,
        older_schemas,
        table_schema,
        output_schema: output_schema.clone(),
        keep,
        verbatim,
        metadata_columns: spec.metadata_columns,
        read_bytes,
    });
    let limit = spec.limit.map(|l| Arc::new(Limit(Mutex::new(l))));
    // Resolve every bucket's range before streaming so bad requests fail the call itself.
    let mut ranges = Vec::with_capacity(spec.buckets.len());
    for &b in &spec.buckets {
        let log = table.bucket(b)?.clone();
        let (start, end) = resolve_range(&log, &spec)?;
        ranges.push((log, start, end));
    }
    let (tx, rx) = mpsc::channel(4);
    if spec.limit == Some(0) {
        return Ok(ScanStream { schema: output_schema, chunks: rx });
    }
    for (log, start, end) in ranges {
        let (plan, tx, limit) = (plan.clone(), tx.clone(), limit.clone());
        tokio::spawn(async move {
            if let Err(e) = scan_bucket(log, plan, start, end, spec.follow, &tx, limit).await {
                let _ = tx.send(Err(e)).await;
            }
        });
    }
    Ok(ScanStream { schema: output_schema, chunks: rx })
}

fn resolve_range(log: &BucketLog, spec: &ScanSpec) -> Result<(u64, Option<u64>)> {
    let hw = log.high_watermark();
    let earliest = log.log_start_offset();
    let start = match spec.from {
        StartPosition::Earliest => earliest,
        StartPosition::Latest => hw,
        StartPosition::Offset { offset } => {
            if offset < earliest {
                return Err(Error::FailedPrecondition(format!("{}: offset {offset} is before the log start offset {earliest} (older data was deleted by retention); start from \"earliest\"", log.location())));
            }
            if offset > hw {
                return Err(Error::invalid(format!("{}: offset {offset} is beyond the high watermark {hw}", log.location())));
            }
            offset
        }
        StartPosition::Timestamp { timestamp } => log.offset_for_timestamp(timestamp).max(earliest),
    };
    let end = match (spec.to, spec.follow) {
        (Some(EndPosition::Offset { offset }), _) => Some(offset),
        (Some(EndPosition::Latest), _) | (None, false) => Some(hw),
        (None, true) => None,
    };
    Ok((start, end))
}

async fn scan_bucket(
    log: Arc<BucketLog>,
    plan: Arc<ScanPlan>,
    mut pos: u64,
    end: Option<u64>,
    follow: bool,
    tx: &mpsc::Sender<Result<ScanChunk>>,
    limit: Option<Arc<Limit>>,
) -> Result<()> {
    let mut hw_changes = log.subscribe();
    loop {
        let hw = *hw_changes.borrow_and_update();
        let until = end.map_or(hw, |e| e.min(hw));
        if pos >= until {
            if end.is_some_and(|e| pos >= e) || !follow {
                return Ok(());
            }
            log.check_readers_open()?;
            tokio::select! {
                changed = hw_changes.changed() => if changed.is_err() { return Ok(()) },
                _ = tx.closed() => return Ok(()),
            }
            continue;
        }
        log.check_range(pos, until)?;
        let (segment, entries) = log.entries_from(pos, until, plan.read_bytes)?;
        let Some(segment) = segment else {
            return Err(Error::Internal(format!("{}: no stored batch covers offset {pos} below the high watermark {hw}", log.location())));
        };
        if entries[0].base_offset > pos {
            return Err(Error::FailedPrecondition(format!(
                "{}: offsets {pos}..{} were deleted by retention while the scan ran",
                log.location(),
                entries[0].base_offset
            )));
        }
        let next = entries.last().map(|e| e.next_offset().min(until)).unwrap_or(until);
        let (plan2, bucket) = (plan.clone(), log.bucket);
        let chunks = tokio::task::spawn_blocking(move || read_chunks(&segment, &entries, pos, until, bucket, hw, &plan2))
            .await
            .map_err(|e| Error::Internal(format!("read task failed: {e}")))??;
        for chunk in chunks {
            let chunk = match &limit {
                Some(limit) => {
                    let n = limit.take(chunk.rows);
                    if n == 0 {
                        return Ok(());
                    }
                    if n < chunk.rows {
                        slice_chunk(&chunk, &plan.output_schema, n)?
                    } else {
                        chunk
                    }
                }
                None => chunk,
            };
            let chunk = ScanChunk { partition: plan.partition.clone(), ..chunk };
            if tx.send(Ok(chunk)).await.is_err() {
                return Ok(()); // the client went away
            }
        }
        pos = next;
    }
}

/// Reads the batches of `entries` (consecutive in `segment`) restricted to `[from, until)`.
fn read_chunks(
    segment: &Segment,
    entries: &[IndexEntry],
    from: u64,
    until: u64,
    bucket: u32,
    hw: u64,
    plan: &ScanPlan,
) -> Result<Vec<ScanChunk>> {
    let location = segment.location();
    let mut out = Vec::with_capacity(entries.len());
    let whole = |e: &IndexEntry| e.base_offset >= from && e.next_offset() <= until;
    // Zero-record entries only record an idempotent primary-key write that changed nothing.
    let entries: Vec<IndexEntry> = entries.iter().filter(|e| e.count > 0).copied().collect();
    if entries.is_empty() {
        return Ok(vec![]);
    }
    let entries = entries.as_slice();
    if plan.verbatim {
        // One read for the whole run; every batch is a zero-copy slice of it.
        let first = entries[0].position;
        let last = entries.last().expect("non-empty");
        let bytes = segment.bytes_at(first, (last.position + last.len as u64 - first) as usize)?;
        for e in entries {
            let at = (e.position - first) as usize;
            let entry = bytes.slice(at..at + e.len as usize);
            let header = format::verify_entry(&entry, &location).map_err(|err| data_loss(&location, e, err))?;
            if whole(e) && header.schema_id == plan.schema_id {
                let prelude_meta = header.column_count as usize * 4 + format::HEADER_LEN;
                out.push(ScanChunk {
                    bucket,
                    partition: None,
                    base_offset: e.base_offset,
                    high_watermark: hw,
                    rows: e.count as u64,
                    meta: entry.slice(prelude_meta..prelude_meta + header.meta_len as usize),
                    body: entry.slice(header.body_start()..header.entry_len()),
                });
            } else {
                out.push(partial_chunk(&entry, &header, e, from, until, bucket, hw, plan, &location)?);
            }
        }
        return Ok(out);
    }
    for e in entries {
        // An entry written before columns were added is decoded and widened.
        let older = !plan.older_schemas.is_empty() && read_prelude(segment, e)?.0.schema_id != plan.schema_id;
        if !whole(e) || older {
            let entry = segment.bytes_at(e.position, e.len as usize)?;
            let header = format::verify_entry(&entry, &location).map_err(|err| data_loss(&location, e, err))?;
            out.push(partial_chunk(&entry, &header, e, from, until, bucket, hw, plan, &location)?);
            continue;
        }
        out.push(projected_chunk(segment, e, bucket, hw, plan).map_err(|err| data_loss(&location, e, err))?);
    }
    Ok(out)
}

/// Names the offsets of a batch that failed validation.
fn data_loss(location: &str, e: &IndexEntry, err: Error) -> Error {
    match err {
        Error::CrcMismatch { .. } | Error::DataLoss { .. } | Error::FileTooSmall { .. } => {
            Error::DataLoss { location: format!("{location} offsets {}..{}", e.base_offset, e.next_offset()), detail: err.to_string() }
        }
        other => other,
    }
}

/// Reads only the kept columns' bytes of one batch and rebuilds its message header.
fn projected_chunk(segment: &Segment, e: &IndexEntry, bucket: u32, hw: u64, plan: &ScanPlan) -> Result<ScanChunk> {
    let metadata_bucket = plan.metadata_columns.then_some(bucket);
    let (meta, body) = read_projected(segment, e, &plan.table_schema, &plan.keep, metadata_bucket)?;
    Ok(ScanChunk {
        bucket,
        partition: None,
        base_offset: e.base_offset,
        high_watermark: hw,
        rows: e.count as u64,
        meta: Bytes::from(meta),
        body: Bytes::from(body),
    })
}

/// Projects one stored batch to the `keep` columns (and metadata columns for `metadata_bucket`)
/// without decoding it: verifies the header CRC, rebuilds the IPC message header, and copies
/// only the kept columns' byte ranges out of the segment's memory map, each checked against its
/// column CRC. Returns the new IPC message and body.
pub fn read_projected(
    segment: &Segment,
    e: &IndexEntry,
    table_schema: &SchemaRef,
    keep: &[usize],
    metadata_bucket: Option<u32>,
) -> Result<(Vec<u8>, Vec<u8>)> {
    let (header, column_crcs, meta) = read_prelude(segment, e)?;
    let layout = BatchLayout::parse(&meta, table_schema)?;
    let metadata = metadata_bucket.map(|bucket| MetadataValues {
        bucket: bucket as i32,
        base_offset: e.base_offset as i64,
        timestamp_ms: header.max_timestamp,
    });
    let projected = ipc::project(&layout, keep, metadata)?;
    let stored = segment.bytes_at(e.position + header.body_start() as u64, header.body_len as usize)?;
    let mut body = Vec::with_capacity(projected.body_len);
    for &(col, (start, end), dest) in &projected.copies {
        let bytes = &stored[start..end];
        let computed = crc32c::crc32c(bytes);
        if computed != column_crcs[col] {
            let location = format!("{} column {:?}", segment.location(), table_schema.field(col).name());
            return Err(Error::CrcMismatch { location, stored: column_crcs[col], computed });
        }
        body.resize(dest, 0); // alignment padding between columns
        body.extend_from_slice(bytes);
    }
    body.resize(projected.tail_offset, 0);
    body.extend_from_slice(&projected.tail);
    Ok((projected.meta, body))
}

/// A batch cut by the scan's start or end offset: decoded, sliced and re-encoded.
#[allow(clippy::too_many_arguments)] // the read context of one batch; a struct would only rename it
fn partial_chunk(
    entry: &Bytes,
    header: &BatchHeader,
    e: &IndexEntry,
    from: u64,
    until: u64,
    bucket: u32,
    hw: u64,
    plan: &ScanPlan,
    location: &str,
) -> Result<ScanChunk> {
    let meta = format::meta_of(header, &entry[format::HEADER_LEN..]);
    let body = entry.slice(header.body_start()..header.entry_len());
    let stored = match plan.older_schemas.get(&header.schema_id) {
        Some(older) => older,
        None => &plan.table_schema,
    };
    let batch = ipc::decode(meta, body, stored).map_err(|err| Error::DataLoss { location: location.into(), detail: err.to_string() })?;
    let batch = widen(batch, &plan.table_schema)?;
    let start = from.saturating_sub(e.base_offset) as usize;
    let end = (until.min(e.next_offset()) - e.base_offset) as usize;
    let sliced = batch.slice(start, end - start);
    let mut columns: Vec<ArrayRef> = plan.keep.iter().map(|&i| sliced.column(i).clone()).collect();
    if plan.metadata_columns {
        let n = sliced.num_rows();
        let first = e.base_offset as i64 + start as i64;
        columns.push(Arc::new(Int32Array::from(vec![bucket as i32; n])));
        columns.push(Arc::new(Int64Array::from_iter_values(first..first + n as i64)));
        columns.push(Arc::new(TimestampMillisecondArray::from(vec![header.max_timestamp; n]).with_timezone("UTC")));
    }
    let out = RecordBatch::try_new(plan.output_schema.clone(), columns)?;
    encode_chunk(&out, bucket, e.base_offset + start as u64, hw)
}

/// A batch of an older schema version as the current schema: columns by name, the ones added
/// since then null.
fn widen(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if batch.num_columns() == schema.fields().len() {
        return Ok(batch);
    }
    let columns = schema
        .fields()
        .iter()
        .map(|f| batch.column_by_name(f.name()).cloned().unwrap_or_else(|| arrow_array::new_null_array(f.data_type(), batch.num_rows())))
        .collect();
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

fn encode_chunk(batch: &RecordBatch, bucket: u32, base_offset: u64, hw: u64) -> Result<ScanChunk> {
    let encoded = ipc::BatchEncoder::new(crate::catalog::options::Compression::None)?.encode(batch)?;
    Ok(ScanChunk {
        bucket,
        partition: None,
        base_offset,
        high_watermark: hw,
        rows: batch.num_rows() as u64,
        meta: Bytes::from(encoded.meta),
        body: Bytes::from(encoded.body),
    })
}

/// Keeps the first `rows` rows of an encoded chunk (for `limit`).
pub(crate) fn slice_chunk(chunk: &ScanChunk, schema: &SchemaRef, rows: u64) -> Result<ScanChunk> {
    let batch = ipc::decode(&chunk.meta, chunk.body.clone(), schema)?;
    let sliced = encode_chunk(&batch.slice(0, rows as usize), chunk.bucket, chunk.base_offset, chunk.high_watermark)?;
    Ok(ScanChunk { partition: chunk.partition.clone(), ..sliced })
}
