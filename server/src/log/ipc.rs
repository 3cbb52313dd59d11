//! Arrow IPC encoding of stored batches and zero-copy column pruning.
//!
//! A stored batch is an Arrow IPC record-batch message plus its body. A projected scan does not
//! decode it: it reads the flatbuffer message, keeps the field nodes and buffers of the wanted
//! columns, rewrites their offsets and reads only their byte ranges from disk. Metadata columns
//! (`_bucket`, `_offset`, `_timestamp`) are appended as extra uncompressed buffers.

use crate::error::{Error, Result};
use arrow_array::RecordBatch;
use arrow_ipc::writer::{CompressionContext, DictionaryTracker, IpcDataGenerator, IpcWriteOptions};
use arrow_ipc::{CompressionType, MetadataVersion};
use arrow_schema::{DataType, SchemaRef};
use flatbuffers::FlatBufferBuilder;

/// Body compression of stored Arrow IPC messages (`table.log.arrow.compression.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Zstd,
    Lz4Frame,
    None,
}

/// One encoded batch ready to be stored.
pub struct EncodedBatch {
    pub meta: Vec<u8>,
    pub body: bytes::Bytes,
    /// Body byte range of each top-level column.
    pub column_ranges: Vec<(usize, usize)>,
    pub compression: u8,
}

/// Encodes batches with the table's body compression. Keeps the zstd context between calls.
pub struct BatchEncoder {
    options: IpcWriteOptions,
    context: CompressionContext,
    compression: u8,
}

pub fn compression_code(c: Compression) -> u8 {
    match c {
        Compression::None => 0,
        Compression::Lz4Frame => 1,
        Compression::Zstd => 2,
    }
}

impl BatchEncoder {
    pub fn new(compression: Compression) -> Result<Self> {
        let codec = match compression {
            Compression::None => None,
            Compression::Lz4Frame => Some(CompressionType::LZ4_FRAME),
            Compression::Zstd => Some(CompressionType::ZSTD),
        };
        let options = IpcWriteOptions::try_new(8, false, MetadataVersion::V5)?.try_with_compression(codec)?;
        Ok(Self { options, context: CompressionContext::default(), compression: compression_code(compression) })
    }

    pub fn encode(&mut self, batch: &RecordBatch) -> Result<EncodedBatch> {
        let mut tracker = DictionaryTracker::new(false);
        let (dicts, encoded) = IpcDataGenerator {}.encode(batch, &mut tracker, &self.options, &mut self.context)?;
        if !dicts.is_empty() {
            return Err(Error::Internal("dictionary-encoded columns must be cast before storage".into()));
        }
        let layout = BatchLayout::parse(&encoded.ipc_message, &batch.schema())?;
        let column_ranges = layout.column_ranges();
        Ok(EncodedBatch { meta: encoded.ipc_message, body: encoded.arrow_data.into(), column_ranges, compression: self.compression })
    }
}

/// The record-batch message a client sent, as it would be stored, when it can be stored as it
/// is instead of being encoded again: a V5 record batch with the table's body compression (or
/// none on both sides), no dictionaries or variadic buffers, every buffer 8-byte aligned inside
/// the body, and a body no longer than its buffers (plus padding). The caller has decoded the
/// same bytes with `schema` (so they are valid Arrow) and checked that the batch needs no
/// conforming and goes to one bucket whole. `None`: encode the decoded batch instead.
///
/// Why: an append otherwise copies every byte once more into a new message (and grows that
/// buffer as it goes), ~10 % of the node's CPU per appended byte in a profile of 64K-row
/// batches, before the copy into the page cache.
pub fn encoded_as_sent(header: &[u8], body: &bytes::Bytes, compression: Compression, schema: &SchemaRef) -> Option<EncodedBatch> {
    let message = arrow_ipc::root_as_message(header).ok()?;
    if message.version() != MetadataVersion::V5 || usize::try_from(message.bodyLength()).ok()? != body.len() {
        return None;
    }
    let rb = message.header_as_record_batch()?;
    if rb.variadicBufferCounts().is_some_and(|counts| !counts.is_empty()) {
        return None;
    }
    let sent = rb.compression().map(|c| c.codec());
    let same_codec = matches!(
        (compression, sent),
        (Compression::None, None)
            | (Compression::Zstd, Some(CompressionType::ZSTD))
            | (Compression::Lz4Frame, Some(CompressionType::LZ4_FRAME))
    );
    if !same_codec {
        return None;
    }
    let layout = BatchLayout::parse(header, schema).ok()?;
    let mut end = 0usize;
    for &(offset, length) in &layout.buffers {
        let (offset, length) = (usize::try_from(offset).ok()?, usize::try_from(length).ok()?);
        if offset % 8 != 0 || offset.checked_add(length)? > body.len() {
            return None;
        }
        end = end.max(offset + length);
    }
    if body.len() > pad8(end) + 64 {
        return None;
    }
    Some(EncodedBatch {
        meta: header.to_vec(),
        body: body.clone(),
        column_ranges: layout.column_ranges(),
        compression: compression_code(compression),
    })
}

/// How many field nodes and buffers one field occupies in an IPC record batch.
fn field_shape(dt: &DataType) -> Result<(usize, usize)> {
    use DataType::*;
    Ok(match dt {
        Null => (1, 0),
        Boolean | Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 | Float16 | Float32 | Float64 | Decimal32(..)
        | Decimal64(..) | Decimal128(..) | Decimal256(..) | Date32 | Date64 | Time32(_) | Time64(_) | Timestamp(..) | Duration(_)
        | Interval(_) | FixedSizeBinary(_) => (1, 2),
        Utf8 | Binary | LargeUtf8 | LargeBinary => (1, 3),
        List(f) | LargeList(f) | Map(f, _) => {
            let (n, b) = field_shape(f.data_type())?;
            (1 + n, 2 + b)
        }
        FixedSizeList(f, _) => {
            let (n, b) = field_shape(f.data_type())?;
            (1 + n, 1 + b)
        }
        Struct(fields) => {
            let mut shape = (1, 1);
            for f in fields {
                let (n, b) = field_shape(f.data_type())?;
                shape.0 += n;
                shape.1 += b;
            }
            shape
        }
        other => return Err(Error::Internal(format!("type {other} is not stored by Strom"))),
    })
}

/// The nodes and buffers of a parsed record-batch message, grouped per top-level column.
pub struct BatchLayout {
    pub length: i64,
    pub nodes: Vec<(i64, i64)>,
    pub buffers: Vec<(i64, i64)>,
    pub compression: Option<CompressionType>,
    /// Per top-level column: (first node, node count, first buffer, buffer count).
    pub columns: Vec<(usize, usize, usize, usize)>,
}

impl BatchLayout {
    pub fn parse(meta: &[u8], schema: &SchemaRef) -> Result<Self> {
        let message = arrow_ipc::root_as_message(meta).map_err(|e| Error::Internal(format!("stored IPC message does not parse: {e}")))?;
        let rb = message.header_as_record_batch().ok_or_else(|| Error::Internal("stored IPC message is not a record batch".into()))?;
        let nodes: Vec<(i64, i64)> = rb.nodes().map(|v| v.iter().map(|n| (n.length(), n.null_count())).collect()).unwrap_or_default();
        let buffers: Vec<(i64, i64)> = rb.buffers().map(|v| v.iter().map(|b| (b.offset(), b.length())).collect()).unwrap_or_default();
        let mut columns = Vec::with_capacity(schema.fields().len());
        let (mut n, mut b) = (0, 0);
        for f in schema.fields() {
            let (nn, nb) = field_shape(f.data_type())?;
            columns.push((n, nn, b, nb));
            n += nn;
            b += nb;
        }
        if n != nodes.len() || b != buffers.len() {
            return Err(Error::Internal(format!(
                "stored batch has {} nodes/{} buffers, schema expects {n}/{b}",
                nodes.len(),
                buffers.len()
            )));
        }
        Ok(Self { length: rb.length(), nodes, buffers, compression: rb.compression().map(|c| c.codec()), columns })
    }

    /// Body range of each top-level column (empty range for buffer-less columns).
    pub fn column_ranges(&self) -> Vec<(usize, usize)> {
        self.columns.iter().map(|&(_, _, b0, nb)| self.range_of(b0, nb)).collect()
    }

    fn range_of(&self, b0: usize, nb: usize) -> (usize, usize) {
        let bufs = &self.buffers[b0..b0 + nb];
        let start = bufs.iter().map(|b| b.0).min().unwrap_or(0) as usize;
        let end = bufs.iter().map(|b| b.0 + b.1).max().unwrap_or(0) as usize;
        (start, end.max(start))
    }
}

/// Extra columns appended to each batch of a scan.
#[derive(Debug, Clone, Copy)]
pub struct MetadataValues {
    pub bucket: i32,
    pub base_offset: i64,
    pub timestamp_ms: i64,
}

/// A projected message: new flatbuffer header plus where each kept body range goes.
pub struct ProjectedMessage {
    pub meta: Vec<u8>,
    /// (column index, source range in the stored body, destination offset in the new body)
    pub copies: Vec<(usize, (usize, usize), usize)>,
    /// Uncompressed bytes of the metadata columns, at the end of the new body.
    pub tail: Vec<u8>,
    pub tail_offset: usize,
    pub body_len: usize,
}

pub(super) fn pad8(n: usize) -> usize {
    (n + 7) & !7
}

/// Builds the header of a batch that keeps only `keep` columns (in that order) and optionally
/// appends metadata columns.
pub fn project(layout: &BatchLayout, keep: &[usize], metadata: Option<MetadataValues>) -> Result<ProjectedMessage> {
    let mut nodes = Vec::new();
    let mut buffers = Vec::new();
    let mut copies = Vec::with_capacity(keep.len());
    let mut dest = 0usize;
    for &c in keep {
        let (n0, nn, b0, nb) = layout.columns[c];
        nodes.extend_from_slice(&layout.nodes[n0..n0 + nn]);
        let (start, end) = layout.range_of(b0, nb);
        for &(off, len) in &layout.buffers[b0..b0 + nb] {
            let rel = (off as usize).saturating_sub(start);
            buffers.push(((dest + rel) as i64, len));
        }
        if end > start {
            copies.push((c, (start, end), dest));
        }
        dest = pad8(dest + (end - start));
    }
    let tail_offset = dest;
    let tail = match metadata {
        Some(m) => metadata_tail(m, layout.length as usize, tail_offset, layout.compression.is_some(), &mut nodes, &mut buffers),
        None => Vec::new(),
    };
    let body_len = tail_offset + tail.len();
    let meta = record_batch_header(layout.length, &nodes, &buffers, layout.compression, body_len);
    Ok(ProjectedMessage { meta, copies, tail, tail_offset, body_len })
}

/// The bytes of the metadata columns (`_bucket`, `_offset` from `m.base_offset`, `_timestamp`)
/// of `rows` rows placed at `tail_offset` of a body, with their field nodes and buffers
/// appended to `nodes` and `buffers`.
pub(super) fn metadata_tail(
    m: MetadataValues,
    rows: usize,
    tail_offset: usize,
    compressed: bool,
    nodes: &mut Vec<(i64, i64)>,
    buffers: &mut Vec<(i64, i64)>,
) -> Vec<u8> {
    let mut tail = Vec::new();
    // Each metadata column: an empty validity buffer and a values buffer. In a compressed
    // body a buffer starts with its uncompressed length; -1 marks "stored uncompressed".
    let mut push_values = |bytes: Vec<u8>, tail: &mut Vec<u8>| {
        nodes.push((rows as i64, 0));
        buffers.push(((tail_offset + tail.len()) as i64, 0));
        let start = tail.len();
        if compressed {
            tail.extend_from_slice(&(-1i64).to_le_bytes());
        }
        tail.extend_from_slice(&bytes);
        let len = tail.len() - start;
        buffers.push(((tail_offset + start) as i64, len as i64));
        tail.resize(pad8(tail.len()), 0);
    };
    push_values((0..rows).flat_map(|_| m.bucket.to_le_bytes()).collect(), &mut tail);
    push_values((0..rows as i64).flat_map(|i| (m.base_offset + i).to_le_bytes()).collect(), &mut tail);
    push_values((0..rows).flat_map(|_| m.timestamp_ms.to_le_bytes()).collect(), &mut tail);
    tail
}

/// The flatbuffer header of a record-batch message of `length` rows with these field nodes
/// `(length, null_count)` and buffers `(offset, length)` in a body of `body_len` bytes.
pub(super) fn record_batch_header(
    length: i64,
    nodes: &[(i64, i64)],
    buffers: &[(i64, i64)],
    compression: Option<CompressionType>,
    body_len: usize,
) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::with_capacity(256 + 32 * (nodes.len() + buffers.len()));
    let fb_nodes: Vec<arrow_ipc::FieldNode> = nodes.iter().map(|&(l, n)| arrow_ipc::FieldNode::new(l, n)).collect();
    let fb_buffers: Vec<arrow_ipc::Buffer> = buffers.iter().map(|&(o, l)| arrow_ipc::Buffer::new(o, l)).collect();
    let compression = compression.map(|codec| {
        let mut c = arrow_ipc::BodyCompressionBuilder::new(&mut fbb);
        c.add_method(arrow_ipc::BodyCompressionMethod::BUFFER);
        c.add_codec(codec);
        c.finish()
    });
    let fb_buffers = fbb.create_vector(&fb_buffers);
    let fb_nodes = fbb.create_vector(&fb_nodes);
    let root = {
        let mut rb = arrow_ipc::RecordBatchBuilder::new(&mut fbb);
        rb.add_length(length);
        rb.add_nodes(fb_nodes);
        rb.add_buffers(fb_buffers);
        if let Some(c) = compression {
            rb.add_compression(c);
        }
        rb.finish().as_union_value()
    };
    let mut message = arrow_ipc::MessageBuilder::new(&mut fbb);
    message.add_version(MetadataVersion::V5);
    message.add_header_type(arrow_ipc::MessageHeader::RecordBatch);
    message.add_bodyLength(body_len as i64);
    message.add_header(root);
    let root = message.finish();
    fbb.finish(root, None);
    fbb.finished_data().to_vec()
}

/// Decodes a stored batch into a `RecordBatch` (used where rows must be sliced, e.g. `limit`).
pub fn decode(meta: &[u8], body: bytes::Bytes, schema: &SchemaRef) -> Result<RecordBatch> {
    let message = arrow_ipc::root_as_message(meta).map_err(|e| Error::Internal(format!("stored IPC message does not parse: {e}")))?;
    let rb = message.header_as_record_batch().ok_or_else(|| Error::Internal("stored IPC message is not a record batch".into()))?;
    let buffer = arrow_buffer::Buffer::from(body);
    Ok(arrow_ipc::reader::read_record_batch(&buffer, rb, schema.clone(), &Default::default(), None, &message.version())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, Int32Array, Int64Array, ListArray, StringArray, TimestampMillisecondArray};
    use arrow_schema::{Field, Schema, TimeUnit};
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        let list =
            ListArray::from_iter_primitive::<arrow_array::types::Int32Type, _, _>(vec![Some(vec![Some(1), None]), None, Some(vec![])]);
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(StringArray::from(vec![Some("a"), None, Some("ccc")])),
            Arc::new(list),
            Arc::new(Int32Array::from(vec![Some(7), Some(8), None])),
        ];
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
            Field::new("l", cols[2].data_type().clone(), true),
            Field::new("i", DataType::Int32, true),
        ]);
        RecordBatch::try_new(Arc::new(schema), cols).unwrap()
    }

    fn materialize(encoded: &EncodedBatch, p: &ProjectedMessage) -> Vec<u8> {
        let mut body = vec![0u8; p.body_len];
        for &(_, (s, e), d) in &p.copies {
            body[d..d + (e - s)].copy_from_slice(&encoded.body[s..e]);
        }
        body[p.tail_offset..].copy_from_slice(&p.tail);
        body
    }

    fn check_projection(compression: Compression) {
        let b = batch();
        let mut enc = BatchEncoder::new(compression).unwrap();
        let encoded = enc.encode(&b).unwrap();
        let layout = BatchLayout::parse(&encoded.meta, &b.schema()).unwrap();
        let keep = [3usize, 1];
        let meta = MetadataValues { bucket: 2, base_offset: 40, timestamp_ms: 99 };
        let p = project(&layout, &keep, Some(meta)).unwrap();
        let body = materialize(&encoded, &p);
        let mut fields: Vec<Field> = keep.iter().map(|&i| b.schema().field(i).clone()).collect();
        fields.push(Field::new("_bucket", DataType::Int32, false));
        fields.push(Field::new("_offset", DataType::Int64, false));
        fields.push(Field::new("_timestamp", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false));
        let schema = Arc::new(Schema::new(fields));
        let out = decode(&p.meta, bytes::Bytes::from(body), &schema).unwrap();
        assert_eq!(out.column(0).as_ref(), b.column(3).as_ref());
        assert_eq!(out.column(1).as_ref(), b.column(1).as_ref());
        assert_eq!(out.column(2).as_ref(), &Int32Array::from(vec![2, 2, 2]) as &dyn arrow_array::Array);
        assert_eq!(out.column(3).as_ref(), &Int64Array::from(vec![40, 41, 42]) as &dyn arrow_array::Array);
        let ts = TimestampMillisecondArray::from(vec![99, 99, 99]).with_timezone("UTC");
        assert_eq!(out.column(4).as_ref(), &ts as &dyn arrow_array::Array);
        let kept: usize = p.copies.iter().map(|(_, (s, e), _)| e - s).sum();
        assert!(kept < encoded.body.len(), "projection reads fewer bytes than the full body");
    }

    #[test]
    fn given_uncompressed_batch_when_projected_should_keep_exact_columns() {
        check_projection(Compression::None);
    }

    #[test]
    fn given_zstd_batch_when_projected_should_keep_exact_columns() {
        check_projection(Compression::Zstd);
    }

    #[test]
    fn given_lz4_batch_when_projected_should_keep_exact_columns() {
        check_projection(Compression::Lz4Frame);
    }

    /// A record-batch message as a client would send it (`alignment` 64 like pyarrow's).
    fn client_message(b: &RecordBatch, codec: Option<CompressionType>, alignment: usize) -> (Vec<u8>, bytes::Bytes) {
        let options = IpcWriteOptions::try_new(alignment, false, MetadataVersion::V5).unwrap().try_with_compression(codec).unwrap();
        let (_, encoded) =
            IpcDataGenerator {}.encode(b, &mut DictionaryTracker::new(false), &options, &mut CompressionContext::default()).unwrap();
        (encoded.ipc_message, encoded.arrow_data.into())
    }

    #[test]
    fn given_client_message_with_the_tables_compression_when_checked_should_be_stored_as_sent() {
        let b = batch();
        for (table, codec) in [
            (Compression::None, None),
            (Compression::Zstd, Some(CompressionType::ZSTD)),
            (Compression::Lz4Frame, Some(CompressionType::LZ4_FRAME)),
        ] {
            let (header, body) = client_message(&b, codec, 64);
            let stored = encoded_as_sent(&header, &body, table, &b.schema()).expect("storable as sent");
            assert_eq!(stored.body.as_ptr(), body.as_ptr(), "{table:?}: the body is not copied");
            assert_eq!(stored.meta, header);
            assert_eq!(stored.compression, compression_code(table));
            assert_eq!(stored.column_ranges, BatchLayout::parse(&header, &b.schema()).unwrap().column_ranges());
            assert_eq!(decode(&stored.meta, stored.body.clone(), &b.schema()).unwrap(), b, "{table:?}");
        }
    }

    #[test]
    fn given_client_message_that_cannot_be_kept_when_checked_should_be_encoded_again() {
        let b = batch();
        let schema = b.schema();
        let (plain, plain_body) = client_message(&b, None, 64);
        let (zstd, zstd_body) = client_message(&b, Some(CompressionType::ZSTD), 64);
        assert!(encoded_as_sent(&plain, &plain_body, Compression::Zstd, &schema).is_none(), "the table compresses, the client did not");
        assert!(encoded_as_sent(&zstd, &zstd_body, Compression::None, &schema).is_none(), "the client compressed, the table does not");
        assert!(encoded_as_sent(&zstd, &zstd_body, Compression::Lz4Frame, &schema).is_none(), "another codec");
        let mut longer = plain_body.to_vec();
        longer.extend_from_slice(&[0u8; 8]);
        assert!(encoded_as_sent(&plain, &longer.into(), Compression::None, &schema).is_none(), "body length differs from the header's");
        assert!(encoded_as_sent(&plain[..plain.len() / 2], &plain_body, Compression::None, &schema).is_none(), "header does not parse");
        let other = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        assert!(encoded_as_sent(&plain, &plain_body, Compression::None, &other).is_none(), "other schema");
    }

    #[test]
    fn given_full_projection_when_decoded_should_equal_input() {
        let b = batch();
        let encoded = BatchEncoder::new(Compression::Zstd).unwrap().encode(&b).unwrap();
        let out = decode(&encoded.meta, encoded.body.clone(), &b.schema()).unwrap();
        assert_eq!(out, b);
        let ranges = encoded.column_ranges;
        assert_eq!(ranges.len(), 4);
        assert!(ranges.windows(2).all(|w| w[0].1 <= w[1].0), "column ranges are ordered and disjoint");
    }
}
