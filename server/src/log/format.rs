//! The on-disk form of one record batch in a segment file.
//!
//! ```text
//! header (64 bytes, little-endian)
//!   0  magic "STRB"          4  version u8 (1)       5  compression u8 (0 none, 1 lz4, 2 zstd)
//!   6  column count u16      8  meta length u32      12 body length u32
//!   16 base offset u64       24 record count u32     28 schema id u32
//!   32 max timestamp i64     40 writer id i64        48 batch sequence i64
//!   56 meta CRC32C u32 (header bytes 0..56 + column CRC table + meta)
//!   60 body CRC32C u32 (whole body)
//! column CRC table: one CRC32C u32 per top-level column, over the body range of its buffers
//! Arrow IPC message flatbuffer (the FlightData data_header), zero-padded to 8 bytes
//! Arrow IPC body (the FlightData data_body), buffers 8-byte aligned as encoded
//! ```
//!
//! The body is stored exactly as it is sent to readers. The column CRC table lets a projected
//! scan verify the columns it reads without reading the others; the body CRC covers full
//! scans and recovery.

use crate::error::{Error, Result};

pub const MAGIC: &[u8; 4] = b"STRB";
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 64;

/// The fixed header of a stored batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub compression: u8,
    pub column_count: u16,
    pub meta_len: u32,
    pub body_len: u32,
    pub base_offset: u64,
    pub record_count: u32,
    pub schema_id: u32,
    pub max_timestamp: i64,
    pub writer_id: i64,
    pub sequence: i64,
    pub meta_crc: u32,
    pub body_crc: u32,
}

pub fn pad8(n: usize) -> usize {
    (n + 7) & !7
}

impl BatchHeader {
    /// Bytes between the header and the body: column CRC table + padded meta.
    pub fn prelude_len(&self) -> usize {
        self.column_count as usize * 4 + pad8(self.meta_len as usize)
    }

    /// Total bytes of the entry on disk.
    pub fn entry_len(&self) -> usize {
        HEADER_LEN + self.prelude_len() + self.body_len as usize
    }

    /// Offset of the body from the start of the entry.
    pub fn body_start(&self) -> usize {
        HEADER_LEN + self.prelude_len()
    }

    pub fn next_offset(&self) -> u64 {
        self.base_offset + self.record_count as u64
    }

    fn encode_fixed(&self, out: &mut [u8; HEADER_LEN]) {
        out[0..4].copy_from_slice(MAGIC);
        out[4] = VERSION;
        out[5] = self.compression;
        out[6..8].copy_from_slice(&self.column_count.to_le_bytes());
        out[8..12].copy_from_slice(&self.meta_len.to_le_bytes());
        out[12..16].copy_from_slice(&self.body_len.to_le_bytes());
        out[16..24].copy_from_slice(&self.base_offset.to_le_bytes());
        out[24..28].copy_from_slice(&self.record_count.to_le_bytes());
        out[28..32].copy_from_slice(&self.schema_id.to_le_bytes());
        out[32..40].copy_from_slice(&self.max_timestamp.to_le_bytes());
        out[40..48].copy_from_slice(&self.writer_id.to_le_bytes());
        out[48..56].copy_from_slice(&self.sequence.to_le_bytes());
        out[56..60].copy_from_slice(&self.meta_crc.to_le_bytes());
        out[60..64].copy_from_slice(&self.body_crc.to_le_bytes());
    }

    /// Decodes a header; checks magic and version only (CRCs need the rest of the entry).
    pub fn decode(bytes: &[u8], location: &str) -> Result<Self> {
        if bytes.len() < HEADER_LEN {
            return Err(Error::FileTooSmall { location: location.into(), expected: HEADER_LEN as u64, actual: bytes.len() as u64 });
        }
        if &bytes[0..4] != MAGIC {
            return Err(Error::DataLoss { location: location.into(), detail: format!("bad batch magic {:02x?}", &bytes[0..4]) });
        }
        if bytes[4] != VERSION {
            return Err(Error::DataLoss { location: location.into(), detail: format!("unsupported batch format version {}", bytes[4]) });
        }
        let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        Ok(BatchHeader {
            compression: bytes[5],
            column_count: u16::from_le_bytes([bytes[6], bytes[7]]),
            meta_len: u32_at(8),
            body_len: u32_at(12),
            base_offset: u64_at(16),
            record_count: u32_at(24),
            schema_id: u32_at(28),
            max_timestamp: u64_at(32) as i64,
            writer_id: u64_at(40) as i64,
            sequence: u64_at(48) as i64,
            meta_crc: u32_at(56),
            body_crc: u32_at(60),
        })
    }
}

/// Everything needed to write one batch entry.
pub struct EntryParts<'a> {
    pub compression: u8,
    pub base_offset: u64,
    pub record_count: u32,
    pub schema_id: u32,
    pub max_timestamp: i64,
    pub writer_id: i64,
    pub sequence: i64,
    pub meta: &'a [u8],
    pub body: &'a [u8],
    /// Body byte range of each top-level column.
    pub column_ranges: &'a [(usize, usize)],
}

/// Serializes an entry; returns its header and bytes.
#[cfg(test)]
pub fn encode_entry(p: &EntryParts<'_>) -> Result<(BatchHeader, Vec<u8>)> {
    let (header, mut out) = encode_entry_head(p)?;
    out.extend_from_slice(p.body);
    Ok((header, out))
}

/// Serializes everything of an entry but its body (header, column CRCs, padded meta), so a
/// large body can be written from where it already is instead of being copied behind it.
pub fn encode_entry_head(p: &EntryParts<'_>) -> Result<(BatchHeader, Vec<u8>)> {
    let column_count = u16::try_from(p.column_ranges.len()).map_err(|_| Error::invalid("more than 65535 columns"))?;
    let meta_len = u32::try_from(p.meta.len()).map_err(|_| Error::invalid("IPC metadata too large"))?;
    let body_len = u32::try_from(p.body.len()).map_err(|_| Error::ResourceExhausted("a single batch body must stay below 4 GiB".into()))?;
    let column_crcs: Vec<u32> = p.column_ranges.iter().map(|&(s, e)| crc32c::crc32c(&p.body[s..e])).collect();
    let crc_table: Vec<u8> = column_crcs.iter().flat_map(|c| c.to_le_bytes()).collect();
    let mut header = BatchHeader {
        compression: p.compression,
        column_count,
        meta_len,
        body_len,
        base_offset: p.base_offset,
        record_count: p.record_count,
        schema_id: p.schema_id,
        max_timestamp: p.max_timestamp,
        writer_id: p.writer_id,
        sequence: p.sequence,
        meta_crc: 0,
        body_crc: body_crc(p.body, p.column_ranges, &column_crcs),
    };
    let mut fixed = [0u8; HEADER_LEN];
    header.encode_fixed(&mut fixed);
    let padded_meta = pad8(p.meta.len());
    let mut prelude = Vec::with_capacity(crc_table.len() + padded_meta);
    prelude.extend_from_slice(&crc_table);
    prelude.extend_from_slice(p.meta);
    prelude.resize(crc_table.len() + padded_meta, 0);
    header.meta_crc = crc32c::crc32c_append(crc32c::crc32c(&fixed[..56]), &prelude);
    header.encode_fixed(&mut fixed);
    let mut out = Vec::with_capacity(header.entry_len());
    out.extend_from_slice(&fixed);
    out.extend_from_slice(&prelude);
    Ok((header, out))
}

/// The body's CRC from its columns' CRCs and the bytes between them (alignment padding), so an
/// append reads its body once for both kinds of CRC instead of twice (the second pass was half
/// of the CRC work in a profile of appends of 64K-row batches). Column ranges out of order or
/// overlapping (a client's unusual buffer layout, stored as sent) fall back to a pass over the
/// whole body.
fn body_crc(body: &[u8], column_ranges: &[(usize, usize)], column_crcs: &[u32]) -> u32 {
    let mut crc = 0u32;
    let mut at = 0usize;
    for (&(start, end), &column_crc) in column_ranges.iter().zip(column_crcs) {
        if start == end {
            continue;
        }
        if start < at || end > body.len() {
            return crc32c::crc32c(body);
        }
        crc = crc32c::crc32c_append(crc, &body[at..start]);
        crc = crc32c::crc32c_combine(crc, column_crc, end - start);
        at = end;
    }
    crc32c::crc32c_append(crc, &body[at..])
}

/// Verifies the meta CRC given the header bytes and the prelude; returns the column CRCs.
pub fn verify_prelude(header: &BatchHeader, header_bytes: &[u8], prelude: &[u8], location: &str) -> Result<Vec<u32>> {
    let computed = crc32c::crc32c_append(crc32c::crc32c(&header_bytes[..56]), prelude);
    if computed != header.meta_crc {
        return Err(Error::CrcMismatch { location: location.into(), stored: header.meta_crc, computed });
    }
    Ok(prelude[..header.column_count as usize * 4].chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes"))).collect())
}

/// The IPC message bytes inside a prelude.
pub fn meta_of<'a>(header: &BatchHeader, prelude: &'a [u8]) -> &'a [u8] {
    let start = header.column_count as usize * 4;
    &prelude[start..start + header.meta_len as usize]
}

/// Verifies a complete entry (header + prelude + body) in memory.
pub fn verify_entry(entry: &[u8], location: &str) -> Result<BatchHeader> {
    let header = BatchHeader::decode(entry, location)?;
    if entry.len() < header.entry_len() {
        return Err(Error::FileTooSmall { location: location.into(), expected: header.entry_len() as u64, actual: entry.len() as u64 });
    }
    verify_prelude(&header, entry, &entry[HEADER_LEN..header.body_start()], location)?;
    let body = &entry[header.body_start()..header.entry_len()];
    let computed = crc32c::crc32c(body);
    if computed != header.body_crc {
        return Err(Error::CrcMismatch { location: location.into(), stored: header.body_crc, computed });
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (BatchHeader, Vec<u8>) {
        let body = vec![7u8; 24];
        encode_entry(&EntryParts {
            compression: 2,
            base_offset: 100,
            record_count: 3,
            schema_id: 1,
            max_timestamp: 1234,
            writer_id: 9,
            sequence: 5,
            meta: b"meta-bytes",
            body: &body,
            column_ranges: &[(0, 8), (8, 24)],
        })
        .unwrap()
    }

    #[test]
    fn given_column_ranges_in_any_layout_when_the_body_crc_is_combined_should_equal_a_pass_over_the_body() {
        let body: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let layouts: [&[(usize, usize)]; 6] = [
            &[(0, 1000), (1000, 4096)],               // contiguous
            &[(8, 1000), (1008, 2000), (2048, 4000)], // padding before, between and after
            &[(0, 0), (16, 16), (64, 4096)],          // buffer-less columns
            &[(2048, 4096), (0, 1024)],               // out of order: a full pass
            &[(0, 2048), (1024, 3000)],               // overlapping: a full pass
            &[],                                      // no columns
        ];
        for ranges in layouts {
            let crcs: Vec<u32> = ranges.iter().map(|&(s, e)| crc32c::crc32c(&body[s..e])).collect();
            assert_eq!(body_crc(&body, ranges, &crcs), crc32c::crc32c(&body), "{ranges:?}");
        }
    }

    #[test]
    fn given_encoded_entry_when_verified_should_round_trip_header() {
        let (header, bytes) = sample();
        assert_eq!(bytes.len(), header.entry_len());
        assert_eq!(bytes.len() % 8, 0, "entries keep 8-byte alignment");
        let decoded = verify_entry(&bytes, "t").unwrap();
        assert_eq!(decoded, header);
        assert_eq!(decoded.next_offset(), 103);
        let crcs = verify_prelude(&decoded, &bytes, &bytes[HEADER_LEN..decoded.body_start()], "t").unwrap();
        assert_eq!(crcs, vec![crc32c::crc32c(&[7u8; 8]), crc32c::crc32c(&[7u8; 16])]);
        assert_eq!(meta_of(&decoded, &bytes[HEADER_LEN..]), b"meta-bytes");
    }

    #[test]
    fn given_flipped_body_bit_when_verified_should_be_crc_mismatch() {
        let (_, mut bytes) = sample();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x10;
        assert!(matches!(verify_entry(&bytes, "t"), Err(Error::CrcMismatch { .. })));
    }

    #[test]
    fn given_flipped_header_bit_when_verified_should_be_crc_mismatch() {
        let (_, mut bytes) = sample();
        bytes[17] ^= 1; // base offset
        assert!(matches!(verify_entry(&bytes, "t"), Err(Error::CrcMismatch { .. })));
    }

    #[test]
    fn given_zeroes_or_short_input_when_decoded_should_fail_typed() {
        assert!(matches!(BatchHeader::decode(&[0u8; 64], "t"), Err(Error::DataLoss { .. })));
        assert!(matches!(BatchHeader::decode(&[0u8; 10], "t"), Err(Error::FileTooSmall { expected: 64, actual: 10, .. })));
    }
}
