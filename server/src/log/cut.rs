//! Cutting a stored batch into messages of a few megabytes without decoding it.
//!
//! Writers send (and the log stores) batches of tens of megabytes: a 64K-row batch of a
//! 43-column table is 35 MB. Sent as one message, such a batch makes every client allocate a
//! fresh 35 MB buffer per message — above glibc's threshold for reusing freed memory, so each
//! message's pages are faulted in and zeroed by the kernel again — and read it back from
//! memory rather than from its caches. With 1 MiB messages arrow-rs clients (Strom's own
//! among them) scanned 1.4-1.7x faster than with whole batches, the node's CPU per GB
//! unchanged (docs/benchmarks.md, "Scans, 2026-12-08"). A scan asks for a message size in its
//! ticket (`message_bytes`), else the node's `log.scan_message_bytes` applies (0: whole). So a scan sends a large stored batch as
//! consecutive row ranges of it, each its own record-batch message with its own `base_offset`.
//!
//! A row range of an uncompressed batch is mostly slices of the stored buffers: fixed-width
//! values, and validity bitmaps and booleans cut at multiples of 8 rows. Only the offsets of
//! variable-length columns are rewritten (rebased to start at 0: 4 or 8 bytes per row, the
//! values themselves stay slices). Compressed bodies (compressed per buffer) and nested lists
//! and maps are sent whole.

use super::ipc::{self, BatchLayout, MetadataValues};
use super::read::padding;
use crate::error::{Error, Result};
use arrow_buffer::{ArrowNativeType, Buffer};
use arrow_schema::{DataType, IntervalUnit, SchemaRef};
use bytes::Bytes;
use std::ops::Range;

/// The messages one stored batch is sent as: `rows` row ranges, each starting at a multiple
/// of 8 rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutPlan {
    pub ranges: Vec<Range<usize>>,
}

impl CutPlan {
    /// How a batch of `rows` rows whose sent columns take `body_bytes` is cut into messages of
    /// at most about `message_bytes` (0: never cut). `None` when it goes whole.
    pub fn for_batch(rows: usize, body_bytes: usize, message_bytes: usize) -> Option<CutPlan> {
        if message_bytes == 0 || body_bytes <= message_bytes || rows < 16 {
            return None;
        }
        let pieces = body_bytes.div_ceil(message_bytes);
        // Multiples of 8 rows keep every bitmap cut on a byte boundary.
        let per_message = rows.div_ceil(pieces).next_multiple_of(8);
        if per_message >= rows {
            return None;
        }
        let ranges = (0..rows).step_by(per_message).map(|start| start..(start + per_message).min(rows)).collect();
        Some(CutPlan { ranges })
    }
}

/// Whether a column of this type can be cut by rows without copying its values (see the
/// module comment).
pub fn cuttable(dt: &DataType) -> bool {
    use DataType::*;
    match dt {
        Struct(fields) => fields.iter().all(|f| cuttable(f.data_type())),
        Null | Boolean | Utf8 | Binary | LargeUtf8 | LargeBinary => true,
        other => value_width(other).is_some(),
    }
}

/// Bytes per value of a fixed-width type.
fn value_width(dt: &DataType) -> Option<usize> {
    use DataType::*;
    Some(match dt {
        Int8 | UInt8 => 1,
        Int16 | UInt16 | Float16 => 2,
        Int32 | UInt32 | Float32 | Date32 | Time32(_) | Decimal32(..) | Interval(IntervalUnit::YearMonth) => 4,
        Int64 | UInt64 | Float64 | Date64 | Time64(_) | Timestamp(..) | Duration(_) | Decimal64(..) | Interval(IntervalUnit::DayTime) => 8,
        Decimal128(..) | Interval(IntervalUnit::MonthDayNano) => 16,
        Decimal256(..) => 32,
        FixedSizeBinary(w) => usize::try_from(*w).ok().filter(|&w| w > 0)?,
        _ => return None,
    })
}

/// One cut: the message header and the body as parts sent one after the other.
pub struct CutMessage {
    pub meta: Bytes,
    pub parts: Vec<Bytes>,
    pub body_len: usize,
}

/// Rows `rows` (starting at a multiple of 8) of columns `keep` of an uncompressed stored batch
/// whose header is `layout` and body `stored`, as a message of their own; `metadata` appends
/// the metadata columns (`base_offset` is that of the batch's first row: the cut's rows are
/// numbered from `rows.start`). Every range read from `stored` is bounds-checked: a batch whose
/// header does not match its body is an error (the caller reports it as data loss), never a
/// panic.
pub fn cut(
    layout: &BatchLayout,
    schema: &SchemaRef,
    stored: &Bytes,
    keep: &[usize],
    rows: Range<usize>,
    metadata: Option<MetadataValues>,
) -> Result<CutMessage> {
    debug_assert!(layout.compression.is_none(), "compressed bodies are sent whole");
    debug_assert_eq!(rows.start % 8, 0, "cuts start on a bitmap byte");
    if rows.end > layout.length as usize || rows.is_empty() {
        return Err(corrupt(format!("rows {rows:?} of a batch of {} rows", layout.length)));
    }
    let mut body = BodyBuilder { layout, stored, nodes: Vec::new(), buffers: Vec::new(), parts: Vec::new(), len: 0 };
    for &c in keep {
        let (first_node, _, first_buffer, _) = layout.columns[c];
        let (mut node, mut buffer) = (first_node, first_buffer);
        body.column(schema.field(c).data_type(), &mut node, &mut buffer, &rows)?;
    }
    let tail_offset = ipc::pad8(body.len);
    if tail_offset > body.len {
        body.parts.push(padding(tail_offset - body.len));
    }
    let mut body_len = tail_offset;
    if let Some(m) = metadata {
        let m = MetadataValues { base_offset: m.base_offset + rows.start as i64, ..m };
        let tail = ipc::metadata_tail(m, rows.len(), tail_offset, false, &mut body.nodes, &mut body.buffers);
        body_len += tail.len();
        body.parts.push(Bytes::from(tail));
    }
    let meta = ipc::record_batch_header(rows.len() as i64, &body.nodes, &body.buffers, None, body_len);
    Ok(CutMessage { meta: Bytes::from(meta), parts: body.parts, body_len })
}

/// The cut's body as it is assembled: buffers placed at multiples of 8 bytes.
struct BodyBuilder<'a> {
    layout: &'a BatchLayout,
    stored: &'a Bytes,
    nodes: Vec<(i64, i64)>,
    buffers: Vec<(i64, i64)>,
    parts: Vec<Bytes>,
    len: usize,
}

impl BodyBuilder<'_> {
    /// Appends one field (and its children) cut to `rows`, consuming its field nodes and
    /// buffers of the stored header from `node` and `buffer` on.
    fn column(&mut self, dt: &DataType, node: &mut usize, buffer: &mut usize, rows: &Range<usize>) -> Result<()> {
        let (length, null_count) = *self.layout.nodes.get(*node).ok_or_else(|| corrupt("fewer field nodes than the schema".into()))?;
        *node += 1;
        if (length as usize) < rows.end {
            return Err(corrupt(format!("a field node of {length} rows in a batch of {} rows", self.layout.length)));
        }
        if let DataType::Null = dt {
            self.nodes.push((rows.len() as i64, rows.len() as i64));
            return Ok(());
        }
        let validity = self.stored_buffer(*buffer)?;
        *buffer += 1;
        let nulls = match (null_count, validity.is_empty()) {
            (0, _) | (_, true) => 0,
            (n, _) if n == length => rows.len(),
            _ => rows.len() - count_set_bits(&validity, rows)?,
        };
        self.nodes.push((rows.len() as i64, nulls as i64));
        match validity.is_empty() || nulls == 0 {
            true => self.push(Bytes::new()),
            false => self.push(bits(&validity, rows)?),
        }
        match dt {
            DataType::Struct(fields) => {
                for f in fields {
                    self.column(f.data_type(), node, buffer, rows)?;
                }
            }
            DataType::Boolean => {
                let values = self.stored_buffer(*buffer)?;
                *buffer += 1;
                self.push(bits(&values, rows)?);
            }
            DataType::Utf8 | DataType::Binary => self.variable_width::<4>(buffer, rows)?,
            DataType::LargeUtf8 | DataType::LargeBinary => self.variable_width::<8>(buffer, rows)?,
            other => {
                let width = value_width(other).ok_or_else(|| Error::Internal(format!("type {other} cannot be cut into messages")))?;
                let values = self.stored_buffer(*buffer)?;
                *buffer += 1;
                self.push(slice(&values, rows.start * width..rows.end * width)?);
            }
        }
        Ok(())
    }

    /// Offsets (of `WIDTH` bytes) rebased to start at 0, and the slice of values they cover.
    /// The offsets in between are not checked one by one: they were validated when the batch
    /// was written and CRC-checked when read, and the slice of values sent is bounds-checked
    /// here (a profile showed a per-offset check at a tenth of the node's CPU).
    fn variable_width<const WIDTH: usize>(&mut self, buffer: &mut usize, rows: &Range<usize>) -> Result<()> {
        let offsets = self.stored_buffer(*buffer)?;
        let values = self.stored_buffer(*buffer + 1)?;
        *buffer += 2;
        let stored = slice(&offsets, rows.start * WIDTH..(rows.end + 1) * WIDTH)?;
        let (first, last) = (read_offset::<WIDTH>(&stored[..WIDTH]), read_offset::<WIDTH>(&stored[stored.len() - WIDTH..]));
        if first < 0 || last < first {
            return Err(corrupt(format!("offsets run from {first} to {last}")));
        }
        self.push(rebased::<WIDTH>(&stored, first));
        self.push(slice(&values, first as usize..last as usize)?);
        Ok(())
    }

    /// Buffer `i` of the stored body.
    fn stored_buffer(&self, i: usize) -> Result<Bytes> {
        let &(offset, length) = self.layout.buffers.get(i).ok_or_else(|| corrupt("fewer buffers than the schema".into()))?;
        let (offset, length) = (usize::try_from(offset), usize::try_from(length));
        let (Ok(offset), Ok(length)) = (offset, length) else { return Err(corrupt("a negative buffer offset or length".into())) };
        slice(self.stored, offset..offset.saturating_add(length))
    }

    /// Places `bytes` as the next buffer, at a multiple of 8 bytes of the body.
    fn push(&mut self, bytes: Bytes) {
        let at = ipc::pad8(self.len);
        if at > self.len {
            self.parts.push(padding(at - self.len));
        }
        self.buffers.push((at as i64, bytes.len() as i64));
        self.len = at + bytes.len();
        if !bytes.is_empty() {
            self.parts.push(bytes);
        }
    }
}

/// `stored` offsets (of `WIDTH` bytes) minus `first`. Wrapping: a damaged offset yields a
/// damaged (client-detected) value, never a panic. On a little-endian host (native = IPC byte
/// order) the offsets are collected as typed values, whatever the alignment of the stored bytes
/// (a batch cached as it was received is not aligned), with no zero-filled buffer first. This
/// is the one place a cut reads stored bytes itself: ~3.4 % of the node's samples in a
/// full-width scan, bound by memory (the offsets are their first touch).
fn rebased<const WIDTH: usize>(stored: &Bytes, first: i64) -> Bytes {
    if cfg!(target_endian = "little") {
        match WIDTH {
            4 => {
                let first = first as i32;
                return typed(stored.chunks_exact(4).map(|o| i32::from_le_bytes(o.try_into().expect("4 bytes")).wrapping_sub(first)));
            }
            8 => return typed(stored.chunks_exact(8).map(|o| i64::from_le_bytes(o.try_into().expect("8 bytes")).wrapping_sub(first))),
            _ => {}
        }
    }
    let mut rebased = vec![0u8; stored.len()];
    for (from, to) in stored.chunks_exact(WIDTH).zip(rebased.chunks_exact_mut(WIDTH)) {
        let relative = read_offset::<WIDTH>(from).wrapping_sub(first);
        to.copy_from_slice(&relative.to_le_bytes()[..WIDTH]);
    }
    Bytes::from(rebased)
}

/// `values` as the bytes of a native-endian Arrow buffer, without a copy into `Bytes`.
fn typed<T: ArrowNativeType>(values: impl Iterator<Item = T>) -> Bytes {
    Bytes::from_owner(OwnedBuffer(Buffer::from_vec(values.collect::<Vec<T>>())))
}

/// An Arrow buffer handed to `Bytes` without a copy.
struct OwnedBuffer(Buffer);

impl AsRef<[u8]> for OwnedBuffer {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// One little-endian offset of `WIDTH` (4 or 8) bytes.
fn read_offset<const WIDTH: usize>(bytes: &[u8]) -> i64 {
    match WIDTH {
        4 => i32::from_le_bytes(bytes.try_into().expect("4 bytes")) as i64,
        _ => i64::from_le_bytes(bytes.try_into().expect("8 bytes")),
    }
}

/// The bytes of a bitmap that hold `rows` (whose start is a multiple of 8).
fn bits(bitmap: &Bytes, rows: &Range<usize>) -> Result<Bytes> {
    slice(bitmap, rows.start / 8..rows.end.div_ceil(8))
}

/// Set bits of `bitmap` among `rows` (whose start is a multiple of 8).
fn count_set_bits(bitmap: &Bytes, rows: &Range<usize>) -> Result<usize> {
    let bytes = bits(bitmap, rows)?;
    let full = rows.len() / 8;
    let mut set: usize = bytes[..full].iter().map(|b| b.count_ones() as usize).sum();
    let rest = rows.len() % 8;
    if rest > 0 {
        set += (bytes[full] & ((1u8 << rest) - 1)).count_ones() as usize;
    }
    Ok(set)
}

fn slice(bytes: &Bytes, range: Range<usize>) -> Result<Bytes> {
    if range.start > range.end || range.end > bytes.len() {
        return Err(corrupt(format!("bytes {range:?} of a buffer of {} bytes", bytes.len())));
    }
    Ok(bytes.slice(range))
}

fn corrupt(detail: String) -> Error {
    Error::DataLoss { location: "stored batch".into(), detail: format!("cannot cut the batch into messages: {detail}") }
}

#[cfg(test)]
#[path = "cut_tests.rs"]
mod tests;
