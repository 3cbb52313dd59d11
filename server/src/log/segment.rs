//! One segment file of a bucket log, its in-memory index, its persisted index file, and the
//! recovery scan that validates it on open.

use super::format::{self, BatchHeader, HEADER_LEN};
use crate::error::{Error, IoContext, Result};
use crate::fs::{self, FileSystem, FsFile, OpenMode};
use parking_lot::RwLock;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

const INDEX_MAGIC: &[u8; 4] = b"STRI";
const INDEX_VERSION: u16 = 1;
const INDEX_ENTRY_LEN: usize = 56;

/// Where one stored batch lives, and what its header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub base_offset: u64,
    pub position: u64,
    pub len: u32,
    pub count: u32,
    pub body_start: u32,
    pub max_timestamp: i64,
    pub writer_id: i64,
    pub sequence: i64,
}

impl IndexEntry {
    pub fn from_header(h: &BatchHeader, position: u64) -> Self {
        Self {
            base_offset: h.base_offset,
            position,
            len: h.entry_len() as u32,
            count: h.record_count,
            body_start: h.body_start() as u32,
            max_timestamp: h.max_timestamp,
            writer_id: h.writer_id,
            sequence: h.sequence,
        }
    }

    pub fn next_offset(&self) -> u64 {
        self.base_offset + self.count as u64
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.base_offset.to_le_bytes());
        out.extend_from_slice(&self.position.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.body_start.to_le_bytes());
        out.extend_from_slice(&[0u8; 4]);
        out.extend_from_slice(&self.max_timestamp.to_le_bytes());
        out.extend_from_slice(&self.writer_id.to_le_bytes());
        out.extend_from_slice(&self.sequence.to_le_bytes());
    }

    fn decode(b: &[u8]) -> Self {
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        Self {
            base_offset: u64_at(0),
            position: u64_at(8),
            len: u32_at(16),
            count: u32_at(20),
            body_start: u32_at(24),
            max_timestamp: u64_at(32) as i64,
            writer_id: u64_at(40) as i64,
            sequence: u64_at(48) as i64,
        }
    }
}

/// A range of offsets whose stored bytes failed validation: served as DataLoss, never skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptRange {
    pub start: u64,
    pub end: u64,
    pub detail: String,
}

pub struct Segment {
    pub base_offset: u64,
    pub path: PathBuf,
    fs: Arc<dyn FileSystem>,
    /// Reads are zero-copy views of the page cache (`FsFile::map_bytes`: a memory map).
    file: Box<dyn FsFile>,
    entries: RwLock<Vec<IndexEntry>>,
    size: AtomicU64,
    sealed: AtomicBool,
    /// Whether the file's directory entry is durable: a new segment's entry is fsynced with
    /// its directory by the first sync that covers data in it, not under the append lock.
    entry_durable: AtomicBool,
    /// Wall-clock time the segment was opened for appends (for roll-by-time).
    pub created_ms: i64,
}

pub fn segment_file_name(base_offset: u64) -> String {
    format!("{base_offset:020}.log")
}

fn index_path(path: &Path) -> PathBuf {
    path.with_extension("index")
}

/// What the recovery scan of a segment found.
pub struct ScanOutcome {
    pub segment: Segment,
    pub corrupt: Vec<CorruptRange>,
    /// Bytes cut from a torn tail (the active segment, or an unsealed one).
    pub truncated_bytes: u64,
    /// A rolled segment without an index file: its seal (fsync, then index) never finished,
    /// so its tail may be torn like the active segment's.
    pub unsealed: bool,
}

/// What a rolled segment's index file offers at recovery.
enum IndexFile {
    Usable(Vec<IndexEntry>),
    /// Never written: the seal did not finish (or the index was lost before its rename).
    Missing,
    /// Present but damaged or describing another size: the segment is scanned instead.
    Unusable,
}

impl Segment {
    /// Creates an empty segment file for appends; `now_ms` is its creation time (roll by age).
    /// Its directory entry becomes durable with the first `sync_data` (no fsync here: a roll
    /// happens under the bucket's append lock).
    pub fn create(fs: &Arc<dyn FileSystem>, dir: &Path, base_offset: u64, now_ms: i64) -> Result<Self> {
        let path = dir.join(segment_file_name(base_offset));
        let file = fs.open(&path, OpenMode::CreateNew).at(path.display())?;
        Ok(Self {
            base_offset,
            path,
            fs: fs.clone(),
            file,
            entries: RwLock::new(Vec::new()),
            size: AtomicU64::new(0),
            sealed: AtomicBool::new(false),
            entry_durable: AtomicBool::new(false),
            created_ms: now_ms,
        })
    }

    pub fn location(&self) -> String {
        self.path.display().to_string()
    }

    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    pub fn is_sealed(&self) -> bool {
        self.sealed.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.read().is_empty()
    }

    pub fn last_entry(&self) -> Option<IndexEntry> {
        self.entries.read().last().copied()
    }

    /// Offset after the last batch of this segment.
    pub fn next_offset(&self) -> u64 {
        self.last_entry().map(|e| e.next_offset()).unwrap_or(self.base_offset)
    }

    /// Appends an encoded entry, given as consecutive pieces, at the end of the file
    /// (pwrite(2), no fsync).
    pub fn append(&self, header: &BatchHeader, pieces: &[&[u8]]) -> Result<IndexEntry> {
        let position = self.size();
        let mut at = position;
        for piece in pieces {
            self.file.write_all_at(piece, at).at(self.location())?;
            at += piece.len() as u64;
        }
        debug_assert_eq!(at - position, header.entry_len() as u64);
        let entry = IndexEntry::from_header(header, position);
        self.entries.write().push(entry);
        self.size.store(at, Ordering::Release);
        Ok(entry)
    }

    /// fdatasyncs the segment (and, the first time, its directory entry).
    pub fn sync_data(&self) -> std::io::Result<()> {
        self.sync_entry()?;
        self.file.sync_data()
    }

    fn sync_entry(&self) -> std::io::Result<()> {
        if !self.entry_durable.load(Ordering::Acquire) {
            self.fs.sync_dir(fs::parent_of(&self.path))?;
            self.entry_durable.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// fsyncs the segment, persists its index and marks it read-only.
    pub fn seal(&self) -> Result<()> {
        let synced = self.sync_entry().and_then(|()| self.file.sync_all());
        synced.map_err(|e| Error::WritesStopped { location: self.location(), detail: e.to_string() })?;
        let entries = self.entries.read();
        let mut body = Vec::with_capacity(16 + entries.len() * INDEX_ENTRY_LEN);
        body.extend_from_slice(&self.size().to_le_bytes());
        body.extend_from_slice(&(entries.len() as u64).to_le_bytes());
        for e in entries.iter() {
            e.encode(&mut body);
        }
        drop(entries);
        fs::write_atomic(self.fs.as_ref(), &index_path(&self.path), &fs::envelope(INDEX_MAGIC, INDEX_VERSION, &body))?;
        self.sealed.store(true, Ordering::Release);
        Ok(())
    }

    /// A zero-copy view of `len` bytes at `position`, backed by a memory map of the file.
    pub fn bytes_at(&self, position: u64, len: usize) -> Result<bytes::Bytes> {
        let end = position + len as u64;
        let size = self.size();
        if end > size {
            return Err(Error::FileTooSmall { location: self.location(), expected: end, actual: size });
        }
        // Segments are append-only: bytes below `size` are never rewritten, truncation happens
        // only in the recovery scan before any reader exists, and deletion unlinks the file (a
        // view stays valid).
        self.file.map_bytes(position, len).at(self.location())
    }

    /// Index entries of batches that overlap `[from, until)`, at most `max_bytes` worth
    /// (always at least one entry if any overlaps).
    pub fn entries_between(&self, from: u64, until: u64, max_bytes: usize) -> Vec<IndexEntry> {
        let entries = self.entries.read();
        let start = entries.partition_point(|e| e.next_offset() <= from);
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for e in &entries[start..] {
            if e.base_offset >= until || (!out.is_empty() && bytes + e.len as usize > max_bytes) {
                break;
            }
            bytes += e.len as usize;
            out.push(*e);
        }
        out
    }

    /// First offset whose batch committed at or after `timestamp`.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Option<u64> {
        let entries = self.entries.read();
        let i = entries.partition_point(|e| e.max_timestamp < timestamp);
        entries.get(i).map(|e| e.base_offset)
    }

    /// Every entry (for rebuilding writer state).
    pub fn all_entries(&self) -> Vec<IndexEntry> {
        self.entries.read().clone()
    }

    /// Opens an existing segment. A sealed segment uses its index file when it matches the
    /// file; otherwise (or for the active segment) the file is scanned and validated.
    /// `synced_bytes` is how much of it the bucket's recovery point says an fdatasync covered
    /// (0 when unknown): damage below it is corruption, damage above it a torn write.
    pub fn open(
        fs: &Arc<dyn FileSystem>,
        path: &Path,
        base_offset: u64,
        active: bool,
        synced_bytes: u64,
        now_ms: i64,
    ) -> Result<ScanOutcome> {
        let file = fs.open(path, OpenMode::Existing).at(path.display())?;
        let file_len = file.len().at(path.display())?;
        let mut segment = Segment {
            base_offset,
            path: path.to_path_buf(),
            fs: fs.clone(),
            file,
            entries: RwLock::new(Vec::new()),
            size: AtomicU64::new(file_len),
            sealed: AtomicBool::new(!active),
            // Found by listing the directory: its entry may be from before a power loss that the
            // directory was never synced for; the next sync makes sure.
            entry_durable: AtomicBool::new(false),
            created_ms: now_ms,
        };
        let mut unsealed = false;
        if !active {
            match segment.load_index(file_len) {
                IndexFile::Usable(entries) => {
                    *segment.entries.get_mut() = entries;
                    return Ok(ScanOutcome { segment, corrupt: vec![], truncated_bytes: 0, unsealed: false });
                }
                // The seal fsyncs the segment before it writes the index; without an index a
                // power loss may have torn the tail even though a later segment exists (its
                // directory entry became durable with another fsync of the directory).
                IndexFile::Missing => unsealed = true,
                IndexFile::Unusable => {}
            }
        }
        let torn_from = if active || unsealed { synced_bytes } else { u64::MAX };
        let mut outcome = segment.scan(file_len, torn_from)?;
        outcome.unsealed = unsealed;
        Ok(outcome)
    }

    fn load_index(&self, file_len: u64) -> IndexFile {
        let ipath = index_path(&self.path);
        let bytes = match self.fs.read(&ipath) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return IndexFile::Missing,
            Err(e) => {
                tracing::warn!(index = %ipath.display(), error = %e, "segment index unreadable; rebuilding it from the segment");
                return IndexFile::Unusable;
            }
        };
        let body = match fs::open_envelope(&ipath, INDEX_MAGIC, INDEX_VERSION, &bytes) {
            Ok((_, body)) => body,
            Err(e) => {
                tracing::warn!(index = %ipath.display(), error = %e, "segment index unusable; rebuilding it from the segment");
                return IndexFile::Unusable;
            }
        };
        let header = |at: usize| body.get(at..at + 8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
        let (Some(size), Some(n)) = (header(0), header(8)) else { return IndexFile::Unusable };
        if size != file_len || body.len() != 16 + n as usize * INDEX_ENTRY_LEN {
            tracing::warn!(index = %ipath.display(), "segment index does not match the segment; rebuilding it");
            return IndexFile::Unusable;
        }
        IndexFile::Usable(body[16..].chunks_exact(INDEX_ENTRY_LEN).map(IndexEntry::decode).collect())
    }

    /// Validates every entry. Where the tail may be torn (the active segment, an unsealed one:
    /// `torn_from` is then the recovery point, else `u64::MAX`) the tail is cut at the first
    /// damaged entry at or above `torn_from` — a power loss may leave garbage anywhere in
    /// never-synced bytes, with intact entries after it — and at a damaged entry below it that
    /// no valid entry follows. Anything else that fails validation becomes a corrupt range.
    fn scan(mut self, file_len: u64, torn_from: u64) -> Result<ScanOutcome> {
        let tail_may_be_torn = torn_from != u64::MAX;
        let location = self.location();
        let data = {
            let mut buf = vec![0u8; file_len as usize];
            self.file.read_exact_at(&mut buf, 0).at(&location)?;
            buf
        };
        let mut entries = Vec::new();
        let mut corrupt = Vec::new();
        let mut pos = 0usize;
        let mut expected = self.base_offset;
        while pos < data.len() {
            match format::verify_entry(&data[pos..], &location) {
                Ok(h) if h.base_offset == expected => {
                    entries.push(IndexEntry::from_header(&h, pos as u64));
                    expected = h.next_offset();
                    pos += h.entry_len();
                }
                outcome => {
                    let detail = match outcome {
                        Ok(h) => format!("batch at byte {pos} has base offset {}, expected {expected}", h.base_offset),
                        Err(e) => e.to_string(),
                    };
                    // Below the recovery point (or in a segment whose tail cannot be torn) a
                    // damaged entry followed by a valid one is corruption; at or above it the
                    // bytes were never synced, so nothing after them was acknowledged either.
                    let resume = BatchHeader::decode(&data[pos..], &location)
                        .ok()
                        .map(|h| pos + h.entry_len())
                        .filter(|_| (pos as u64) < torn_from)
                        .filter(|&next| next < data.len() && format::verify_entry(&data[next..], &location).is_ok());
                    match resume {
                        Some(next) => {
                            let h = format::verify_entry(&data[next..], &location)?;
                            corrupt.push(CorruptRange { start: expected, end: h.base_offset, detail: format!("{location}: {detail}") });
                            expected = h.base_offset;
                            pos = next;
                        }
                        None if tail_may_be_torn => {
                            let cut = data.len() - pos;
                            if (pos as u64) < torn_from {
                                // Synced bytes whose damage hides where the next entry starts:
                                // there is nothing to resume from, so they go with the tail.
                                tracing::error!(segment = %location, at_byte = pos, synced_bytes = torn_from, bytes = cut, reason = %detail, "cutting damaged bytes an fdatasync had covered: acknowledged batches from here on are lost");
                            } else {
                                tracing::warn!(segment = %location, at_byte = pos, bytes = cut, reason = %detail, "truncating the torn tail of a segment");
                            }
                            self.file.set_len(pos as u64).at(&location)?;
                            self.file.sync_all().at(&location)?;
                            *self.entries.get_mut() = entries;
                            self.size.store(pos as u64, Ordering::Release);
                            return Ok(ScanOutcome { segment: self, corrupt, truncated_bytes: cut as u64, unsealed: false });
                        }
                        None => {
                            // The end of this range is fixed by the next segment's base offset.
                            corrupt.push(CorruptRange { start: expected, end: u64::MAX, detail: format!("{location}: {detail}") });
                            break;
                        }
                    }
                }
            }
        }
        *self.entries.get_mut() = entries;
        Ok(ScanOutcome { segment: self, corrupt, truncated_bytes: 0, unsealed: false })
    }

    /// Deletes the segment's files.
    pub fn delete_files(&self) -> Result<()> {
        for p in [self.path.clone(), index_path(&self.path)] {
            match self.fs.remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(p.display(), e)),
            }
        }
        Ok(())
    }
}

/// The verified head of a stored entry: its header, column CRCs and IPC message.
pub struct Prelude {
    pub header: BatchHeader,
    pub column_crcs: Vec<u32>,
    pub meta: Vec<u8>,
}

/// Reads the header and prelude (column CRCs + IPC message) of an entry, verified.
pub fn read_prelude(segment: &Segment, entry: &IndexEntry) -> Result<Prelude> {
    let location = segment.location();
    let bytes = segment.bytes_at(entry.position, entry.body_start as usize)?;
    let header = BatchHeader::decode(&bytes, &location)?;
    let column_crcs = format::verify_prelude(&header, &bytes, &bytes[HEADER_LEN..], &location)?;
    let meta = format::meta_of(&header, &bytes[HEADER_LEN..]).to_vec();
    Ok(Prelude { header, column_crcs, meta })
}
