//! Reading a bucket log: committed entries served as the bytes they are stored as, pruned to
//! the requested columns without decoding, or decoded into record batches (changelog replay,
//! and batches cut by a scan's start, end or row limit).
//!
//! Every byte served from a segment is checked against its CRC exactly once per read: a
//! verbatim entry by its body CRC, a projected one by the CRCs of the columns it keeps (the
//! pruned columns are never read), a decoded one by its body CRC. Entries still in the tail
//! cache are served from the buffers the append computed those CRCs from, unchecked
//! (`tail_cache.rs` says why). Only this module and the modules beside it know the layout of an
//! entry.

use super::cut::{self, CutPlan};
use super::format::{self, BatchHeader, HEADER_LEN};
use super::ipc::{self, BatchLayout, MetadataValues};
use super::segment::{read_prelude, IndexEntry, Segment};
use super::tail_cache::CachedEntry;
use crate::error::{Error, Result};
use arrow_array::{ArrayRef, Int32Array, Int64Array, RecordBatch, TimestampMillisecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Names of the metadata columns a scan may append (`_bucket`, `_offset`, `_timestamp`).
pub fn metadata_fields() -> Vec<Field> {
    vec![
        Field::new(strom_flight_api::BUCKET_COLUMN, DataType::Int32, false),
        Field::new(strom_flight_api::OFFSET_COLUMN, DataType::Int64, false),
        Field::new(strom_flight_api::TIMESTAMP_COLUMN, DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
    ]
}

/// What a scan reads of every stored batch: which columns, in which order, with or without the
/// metadata columns, and how batches written before columns were added are widened.
pub struct ReadProjection {
    /// What the log holds at the current schema version.
    stored_schema: SchemaRef,
    schema_id: u32,
    /// The stored schema of every older schema version.
    older_schemas: BTreeMap<u32, SchemaRef>,
    keep: Vec<usize>,
    output_schema: SchemaRef,
    /// True when batches are served byte for byte as stored.
    verbatim: bool,
    metadata_columns: bool,
    /// Stored batches whose sent bytes exceed this are sent as row ranges of about this size
    /// (`cut.rs`); 0 sends every batch whole.
    message_bytes: usize,
    /// Every kept column's type can be cut by rows.
    cuttable: bool,
}

impl ReadProjection {
    /// `columns`: positions in `stored_schema` in output order (None = all); `schema_columns`:
    /// the row-column count of every schema version (a changelog's `_change_type` is stored
    /// last in every version when `changelog`).
    pub fn new(
        stored_schema: SchemaRef,
        schema_id: u32,
        schema_columns: &BTreeMap<u32, usize>,
        changelog: bool,
        columns: Option<Vec<usize>>,
        metadata_columns: bool,
    ) -> Self {
        let all = stored_schema.fields().len();
        let keep: Vec<usize> = columns.unwrap_or_else(|| (0..all).collect());
        let verbatim = !metadata_columns && keep.iter().copied().eq(0..all);
        let output_schema = Self::output_schema_of(&stored_schema, &keep, metadata_columns);
        let older_schemas = schema_columns
            .iter()
            .filter(|(&id, _)| id != schema_id)
            .map(|(&id, &n)| (id, stored_schema_prefix(&stored_schema, n, changelog)))
            .collect();
        let cuttable = keep.iter().all(|&i| cut::cuttable(stored_schema.field(i).data_type()));
        Self { stored_schema, schema_id, older_schemas, keep, output_schema, verbatim, metadata_columns, message_bytes: 0, cuttable }
    }

    /// Sends stored batches whose sent bytes exceed `message_bytes` as consecutive row ranges
    /// of about that size, each its own message (0: every batch whole; `log.scan_message_bytes`).
    pub fn with_message_bytes(mut self, message_bytes: usize) -> Self {
        self.message_bytes = message_bytes;
        self
    }

    /// The schema a scan of `keep` (positions in `stored_schema`) sends.
    pub fn output_schema_of(stored_schema: &SchemaRef, keep: &[usize], metadata_columns: bool) -> SchemaRef {
        let mut fields: Vec<Field> = keep.iter().map(|&i| stored_schema.field(i).clone()).collect();
        if metadata_columns {
            fields.extend(metadata_fields());
        }
        Arc::new(Schema::new(fields))
    }

    pub fn output_schema(&self) -> &SchemaRef {
        &self.output_schema
    }

    /// The stored schema of `schema_id` (the current one for unknown ids).
    fn stored_schema_of(&self, schema_id: u32) -> &SchemaRef {
        self.older_schemas.get(&schema_id).unwrap_or(&self.stored_schema)
    }
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

/// One batch of a read, as an encoded Arrow IPC record-batch message.
#[derive(Debug, Clone)]
pub struct ReadBatch {
    pub base_offset: u64,
    pub rows: u64,
    pub meta: Bytes,
    pub body: MessageBody,
}

/// An IPC message body as byte ranges sent one after the other. A projected stored batch is its
/// kept columns, each a slice of the mapped segment, with the alignment padding between them:
/// they reach the socket without being copied into one buffer first (a profile of projected
/// scans showed that copy, and the fresh pages it faulted in, at a quarter of the node's CPU).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageBody {
    parts: Vec<Bytes>,
    len: usize,
}

impl MessageBody {
    /// The body from its parts, in order (empty parts are left out).
    pub fn from_parts(parts: impl IntoIterator<Item = Bytes>) -> Self {
        let parts: Vec<Bytes> = parts.into_iter().filter(|p| !p.is_empty()).collect();
        let len = parts.iter().map(Bytes::len).sum();
        Self { parts, len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn parts(&self) -> &[Bytes] {
        &self.parts
    }

    /// The parts, in order, without the body.
    pub fn into_parts(self) -> Vec<Bytes> {
        self.parts
    }

    /// The body in one buffer: its only part as it is, or the parts copied together (for
    /// consumers that need contiguous bytes: decoding, tonic's FlightData).
    pub fn into_contiguous(self) -> Bytes {
        match self.parts.len() {
            0 => Bytes::new(),
            1 => self.parts.into_iter().next().expect("one part"),
            _ => {
                let mut whole = Vec::with_capacity(self.len);
                for part in &self.parts {
                    whole.extend_from_slice(part);
                }
                Bytes::from(whole)
            }
        }
    }
}

impl From<Bytes> for MessageBody {
    fn from(bytes: Bytes) -> Self {
        Self::from_parts([bytes])
    }
}

impl From<Vec<u8>> for MessageBody {
    fn from(bytes: Vec<u8>) -> Self {
        Bytes::from(bytes).into()
    }
}

/// `len` zero bytes of alignment padding between buffers or columns of a body: `ipc::project`
/// and `cut.rs` align each to 8 bytes, so `len` is below 8.
pub(super) fn padding(len: usize) -> Bytes {
    static ZEROS: [u8; 8] = [0; 8];
    Bytes::from_static(&ZEROS[..len])
}

/// What one read step returned.
pub struct ReadOutcome {
    pub batches: Vec<ReadBatch>,
    /// Where the next read starts.
    pub next: u64,
    /// The row budget ran out: the scan is complete.
    pub exhausted: bool,
}

/// One stored batch decoded (changelog replay, lake tiering).
pub struct DecodedEntry {
    pub base_offset: u64,
    pub schema_id: u32,
    pub batch: RecordBatch,
}

/// Serves `entries` of `segment` (the entries a read from `from` below `until` covers, whose
/// next read starts at `next`), projected as `projection` says. `cached[i]` is entry `i` from
/// the tail cache when it is there: served from those buffers, with no segment read and no
/// CRC pass (see `tail_cache.rs`). `budget(n)` is asked before each batch of `n` rows and
/// answers how many of them may be sent (a scan's `limit`). Blocking.
pub(super) fn read_entries(
    segment: &Segment,
    entries: &[IndexEntry],
    cached: &[Option<CachedEntry>],
    bucket: u32,
    (from, until, next): (u64, u64, u64),
    projection: &ReadProjection,
    budget: &mut dyn FnMut(u64) -> u64,
) -> Result<ReadOutcome> {
    debug_assert_eq!(entries.len(), cached.len());
    if entries.is_empty() {
        return Ok(ReadOutcome { batches: vec![], next, exhausted: false });
    }
    let location = segment.location();
    let mut batches = Vec::with_capacity(entries.len());
    // One mapping of the whole run of a verbatim read (of its entries not in the tail cache);
    // every batch is a zero-copy slice of it.
    let missing = || entries.iter().zip(cached).filter(|(_, c)| c.is_none()).map(|(e, _)| e);
    let run = match (projection.verbatim, missing().next(), missing().last()) {
        (true, Some(first), Some(last)) => {
            let first = first.position;
            Some((first, segment.bytes_at(first, (last.position + last.len as u64 - first) as usize)?))
        }
        _ => None,
    };
    for (e, cached) in entries.iter().zip(cached) {
        let start = from.saturating_sub(e.base_offset);
        let wanted = until.min(e.next_offset()) - e.base_offset - start;
        let allowed = budget(wanted).min(wanted);
        if allowed == 0 {
            return Ok(ReadOutcome { batches, next, exhausted: true });
        }
        let end = start + allowed;
        let whole = start == 0 && end == e.count as u64;
        let before = batches.len();
        match (cached, &run) {
            (Some(c), _) => {
                if whole && c.header.schema_id == projection.schema_id {
                    let stored = StoredBatch {
                        meta: &c.meta,
                        body: &c.body,
                        check: None,
                        max_timestamp: c.header.max_timestamp,
                        compression: c.header.compression,
                    };
                    whole_batch(stored, e, bucket, projection, &mut batches).map_err(|err| data_loss(&location, e, err))?
                } else {
                    decoded_batch(&c.meta, c.body.clone(), &c.header, e, (start, end), bucket, projection, &location, &mut batches)?
                }
            }
            (None, Some((first, run))) => {
                let at = (e.position - first) as usize;
                let entry = run.slice(at..at + e.len as usize);
                let header = format::verify_entry(&entry, &location).map_err(|err| data_loss(&location, e, err))?;
                let (meta, body) = meta_and_body(&entry, &header);
                if whole && header.schema_id == projection.schema_id {
                    let meta = entry.slice_ref(meta);
                    let stored = StoredBatch {
                        meta: &meta,
                        body: &body,
                        check: None,
                        max_timestamp: header.max_timestamp,
                        compression: header.compression,
                    };
                    whole_batch(stored, e, bucket, projection, &mut batches).map_err(|err| data_loss(&location, e, err))?
                } else {
                    decoded_batch(meta, body, &header, e, (start, end), bucket, projection, &location, &mut batches)?
                }
            }
            (None, None) => {
                let mut prelude = read_prelude(segment, e).map_err(|err| data_loss(&location, e, err))?;
                if whole && prelude.header.schema_id == projection.schema_id {
                    let body = segment.bytes_at(e.position + prelude.header.body_start() as u64, prelude.header.body_len as usize)?;
                    let meta = Bytes::from(std::mem::take(&mut prelude.meta));
                    let check = ColumnCheck { crcs: &prelude.column_crcs, segment: &location };
                    let stored = StoredBatch {
                        meta: &meta,
                        body: &body,
                        check: Some(check),
                        max_timestamp: prelude.header.max_timestamp,
                        compression: prelude.header.compression,
                    };
                    whole_batch(stored, e, bucket, projection, &mut batches).map_err(|err| data_loss(&location, e, err))?
                } else {
                    let entry = segment.bytes_at(e.position, e.len as usize)?;
                    let header = format::verify_entry(&entry, &location).map_err(|err| data_loss(&location, e, err))?;
                    let (meta, body) = meta_and_body(&entry, &header);
                    decoded_batch(meta, body, &header, e, (start, end), bucket, projection, &location, &mut batches)?
                }
            }
        }
        debug_assert!(batches.len() > before, "every entry read sends at least one message");
        if allowed < wanted {
            return Ok(ReadOutcome { batches, next, exhausted: true });
        }
    }
    Ok(ReadOutcome { batches, next, exhausted: false })
}

/// The IPC message header and the body of a verified stored entry.
fn meta_and_body<'a>(entry: &'a Bytes, header: &BatchHeader) -> (&'a [u8], Bytes) {
    (format::meta_of(header, &entry[HEADER_LEN..]), entry.slice(header.body_start()..header.entry_len()))
}

/// Decodes `entries` of `segment`, each with the stored schema `schema_of` gives for its
/// schema id; `cached[i]` is entry `i` from the tail cache when it is there. Blocking.
pub(super) fn decode_entries(
    segment: &Segment,
    entries: &[IndexEntry],
    cached: &[Option<CachedEntry>],
    schema_of: &dyn Fn(u32) -> Result<SchemaRef>,
) -> Result<Vec<DecodedEntry>> {
    let location = segment.location();
    let mut out = Vec::with_capacity(entries.len());
    for (e, cached) in entries.iter().zip(cached) {
        let decoded = match cached {
            Some(c) => ipc::decode(&c.meta, c.body.clone(), &schema_of(c.header.schema_id)?).map(|b| (c.header.schema_id, b)),
            None => {
                let entry = segment.bytes_at(e.position, e.len as usize)?;
                let header = format::verify_entry(&entry, &location).map_err(|err| data_loss(&location, e, err))?;
                let (meta, body) = meta_and_body(&entry, &header);
                ipc::decode(meta, body, &schema_of(header.schema_id)?).map(|b| (header.schema_id, b))
            }
        };
        let (schema_id, batch) =
            decoded.map_err(|err| Error::DataLoss { location: batch_location(&location, e), detail: err.to_string() })?;
        out.push(DecodedEntry { base_offset: e.base_offset, schema_id, batch });
    }
    Ok(out)
}

/// Names the offsets of a batch that failed validation: stored data that does not check out is
/// DATA_LOSS, whatever layer noticed.
fn data_loss(location: &str, e: &IndexEntry, err: Error) -> Error {
    match err {
        Error::CrcMismatch { .. } | Error::DataLoss { .. } | Error::FileTooSmall { .. } | Error::Arrow(_) => {
            Error::DataLoss { location: batch_location(location, e), detail: err.to_string() }
        }
        other => other,
    }
}

fn batch_location(location: &str, e: &IndexEntry) -> String {
    format!("{location} offsets {}..{}", e.base_offset, e.next_offset())
}

/// A whole stored batch of the current schema: its IPC header, its body (a slice of the
/// mapped segment or the tail cache's buffers), the column CRCs its kept columns are checked
/// against when it was read from a segment without a whole-entry check, and its commit time.
struct StoredBatch<'a> {
    meta: &'a Bytes,
    body: &'a Bytes,
    check: Option<ColumnCheck<'a>>,
    max_timestamp: i64,
    /// The entry header's body compression (0: none): compressed batches are never cut.
    compression: u8,
}

/// A whole stored batch of the current schema as the messages a scan sends: the stored bytes as
/// they are when every column is read, the kept columns' bytes otherwise (`projected_batch`) —
/// and, when what is sent exceeds the projection's message size, consecutive row ranges of it
/// (`cut.rs`), its columns checked once before it is cut.
fn whole_batch(stored: StoredBatch<'_>, e: &IndexEntry, bucket: u32, projection: &ReadProjection, out: &mut Vec<ReadBatch>) -> Result<()> {
    if let Some((layout, plan)) = cut_plan(&stored, e, projection)? {
        if let Some(check) = &stored.check {
            for (col, (start, end)) in layout.column_ranges().into_iter().enumerate() {
                if end > start && projection.keep.contains(&col) {
                    let bytes = stored.body.get(start..end).ok_or_else(|| Error::FileTooSmall {
                        location: format!("{} body of the batch", check.segment),
                        expected: end as u64,
                        actual: stored.body.len() as u64,
                    })?;
                    check_column(check, col, bytes, projection)?;
                }
            }
        }
        let metadata = metadata_values(e, stored.max_timestamp, bucket, projection);
        for rows in plan.ranges {
            let cut = cut::cut(&layout, &projection.stored_schema, stored.body, &projection.keep, rows.clone(), metadata)?;
            debug_assert_eq!(cut.parts.iter().map(Bytes::len).sum::<usize>(), cut.body_len);
            out.push(ReadBatch {
                base_offset: e.base_offset + rows.start as u64,
                rows: rows.len() as u64,
                meta: cut.meta,
                body: MessageBody::from_parts(cut.parts),
            });
        }
        return Ok(());
    }
    out.push(match (projection.verbatim, stored.check) {
        (true, None) => {
            ReadBatch { base_offset: e.base_offset, rows: e.count as u64, meta: stored.meta.clone(), body: stored.body.clone().into() }
        }
        (_, check) => projected_batch(stored.meta, stored.body, check, e, stored.max_timestamp, bucket, projection)?,
    });
    Ok(())
}

/// How a whole stored batch is cut into messages, with its parsed header; `None` when it is sent
/// as one: cutting is off, the batch is small enough, compressed (its buffers are compressed
/// whole), or has a column a cut cannot slice (nested lists and maps).
fn cut_plan(stored: &StoredBatch<'_>, e: &IndexEntry, projection: &ReadProjection) -> Result<Option<(BatchLayout, CutPlan)>> {
    // Decided from the entry header before parsing the IPC header, which `projected_batch`
    // parses again when the batch is not cut (every large ZSTD batch of a scan that asks).
    if projection.message_bytes == 0 || !projection.cuttable || stored.compression != 0 || stored.body.len() <= projection.message_bytes {
        return Ok(None);
    }
    let layout = BatchLayout::parse(stored.meta, &projection.stored_schema)?;
    if layout.compression.is_some() {
        return Ok(None);
    }
    let ranges = layout.column_ranges();
    let columns: usize = projection.keep.iter().map(|&c| ranges[c].1 - ranges[c].0).sum();
    let metadata = if projection.metadata_columns { METADATA_BYTES_PER_ROW * e.count as usize } else { 0 };
    Ok(CutPlan::for_batch(e.count as usize, columns + metadata, projection.message_bytes).map(|plan| (layout, plan)))
}

/// Bytes per row of the metadata columns (`_bucket` int32, `_offset` int64, `_timestamp` int64).
const METADATA_BYTES_PER_ROW: usize = 20;

/// The metadata column values of a batch, when the projection asks for them.
fn metadata_values(e: &IndexEntry, max_timestamp: i64, bucket: u32, projection: &ReadProjection) -> Option<MetadataValues> {
    projection.metadata_columns.then_some(MetadataValues {
        bucket: bucket as i32,
        base_offset: e.base_offset as i64,
        timestamp_ms: max_timestamp,
    })
}

/// The column CRCs a projected read checks its kept columns against (a read from a segment;
/// a read from the tail cache has none to check).
struct ColumnCheck<'a> {
    crcs: &'a [u32],
    segment: &'a str,
}

/// Checks the stored bytes of column `col` against its CRC.
fn check_column(check: &ColumnCheck<'_>, col: usize, bytes: &[u8], projection: &ReadProjection) -> Result<()> {
    let computed = crc32c::crc32c(bytes);
    if computed != check.crcs[col] {
        let location = format!("{} column {:?}", check.segment, projection.stored_schema.field(col).name());
        return Err(Error::CrcMismatch { location, stored: check.crcs[col], computed });
    }
    Ok(())
}

/// Keeps only the kept columns' bytes of one batch whose IPC header is `meta` and body is
/// `stored` (each checked against its column CRC when `check` says) and rebuilds its message
/// header, appending the metadata columns when asked. The body is the kept columns as slices
/// of `stored` (the mapped segment or the cached body, not copied), padding and the metadata
/// tail.
fn projected_batch(
    meta: &[u8],
    stored: &Bytes,
    check: Option<ColumnCheck<'_>>,
    e: &IndexEntry,
    max_timestamp: i64,
    bucket: u32,
    projection: &ReadProjection,
) -> Result<ReadBatch> {
    let layout = BatchLayout::parse(meta, &projection.stored_schema)?;
    let metadata = metadata_values(e, max_timestamp, bucket, projection);
    let projected = ipc::project(&layout, &projection.keep, metadata)?;
    let mut parts = Vec::with_capacity(projected.copies.len() * 2 + 2);
    let mut len = 0usize;
    for &(col, (start, end), dest) in &projected.copies {
        let bytes = stored.slice(start..end);
        if let Some(check) = &check {
            check_column(check, col, &bytes, projection)?;
        }
        parts.push(padding(dest - len));
        len = dest + bytes.len();
        parts.push(bytes);
    }
    parts.push(padding(projected.tail_offset - len));
    parts.push(Bytes::from(projected.tail));
    let body = MessageBody::from_parts(parts);
    debug_assert_eq!(body.len(), projected.body_len, "the projected body has the length its header declares");
    Ok(ReadBatch { base_offset: e.base_offset, rows: e.count as u64, meta: Bytes::from(projected.meta), body })
}

/// Rows `[start, end)` of a batch (cut by a scan's range or limit, or of an older schema
/// version): decoded, widened to the current columns, sliced and re-encoded uncompressed —
/// in row ranges of about the projection's message size when larger.
#[allow(clippy::too_many_arguments)] // the entry's parts, its place in the read and the projection: one call site per source
fn decoded_batch(
    meta: &[u8],
    body: Bytes,
    header: &BatchHeader,
    e: &IndexEntry,
    (start, end): (u64, u64),
    bucket: u32,
    projection: &ReadProjection,
    location: &str,
    out: &mut Vec<ReadBatch>,
) -> Result<()> {
    let stored_len = body.len();
    let stored = projection.stored_schema_of(header.schema_id);
    let batch = ipc::decode(meta, body, stored)
        .map_err(|err| Error::DataLoss { location: batch_location(location, e), detail: err.to_string() })?;
    let batch = widen(batch, &projection.stored_schema)?;
    let sliced = batch.slice(start as usize, (end - start) as usize);
    let mut columns: Vec<ArrayRef> = projection.keep.iter().map(|&i| sliced.column(i).clone()).collect();
    if projection.metadata_columns {
        let n = sliced.num_rows();
        let first = e.base_offset as i64 + start as i64;
        columns.push(Arc::new(Int32Array::from(vec![bucket as i32; n])));
        columns.push(Arc::new(Int64Array::from_iter_values(first..first + n as i64)));
        columns.push(Arc::new(TimestampMillisecondArray::from(vec![header.max_timestamp; n]).with_timezone("UTC")));
    }
    let rows = RecordBatch::try_new(projection.output_schema.clone(), columns)?;
    // The stored body's share of these rows stands in for what they encode to.
    let estimate = stored_len * rows.num_rows() / (e.count as usize).max(1);
    let ranges = match CutPlan::for_batch(rows.num_rows(), estimate, projection.message_bytes) {
        Some(plan) => plan.ranges,
        None => std::iter::once(0..rows.num_rows()).collect(),
    };
    let mut encoder = ipc::BatchEncoder::new(ipc::Compression::None)?;
    for range in ranges {
        let encoded = encoder.encode(&rows.slice(range.start, range.len()))?;
        out.push(ReadBatch {
            base_offset: e.base_offset + start + range.start as u64,
            rows: range.len() as u64,
            meta: Bytes::from(encoded.meta),
            body: encoded.body.into(),
        });
    }
    Ok(())
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
