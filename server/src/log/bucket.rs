//! The log of one bucket: a sequence of segments, appends with group commit, the high
//! watermark readers follow, idempotent writer state, recovery and retention.
//!
//! Durability in names: `append_unconfirmed` returns once the batch is in the page cache;
//! `wait_durable` (group commit) returns once an fdatasync covers it; acks need both in `sync` mode.

use super::format::{self, EntryParts};
use super::ipc::{BatchEncoder, EncodedBatch};
use super::read::{self, DecodedEntry, ReadOutcome, ReadProjection};
use super::recovery_point::{self, RecoveryPoint, RecoveryPointFile};
use super::segment::{segment_file_name, CorruptRange, IndexEntry, Segment};
use super::tail_cache::{BucketTail, TailCache};
use crate::clock::Clock;
use crate::config::Durability;
use crate::error::{Error, IoContext, Result};
use crate::fs::{self, FileSystem};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use tokio::sync::watch;

/// How many recent batches per writer a bucket remembers for deduplicating retries.
pub const WRITER_WINDOW: usize = 64;

/// Segment sizing, from the node config.
#[derive(Debug, Clone, Copy)]
pub struct SegmentPolicy {
    pub segment_bytes: u64,
    pub segment_ms: u64,
}

/// What a bucket log is opened with: its sizing, its durability mode and the node's clock
/// (batch timestamps, roll by age).
#[derive(Clone)]
pub struct LogSettings {
    pub policy: SegmentPolicy,
    pub durability: Durability,
    pub clock: Clock,
    /// Where segment and index files live (the real file system, or a fault-injecting one).
    pub fs: Arc<dyn FileSystem>,
    /// The node's cache of recent appends (`TailCache::disabled()` for none).
    pub tail_cache: Arc<TailCache>,
}

/// Where an appended batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: u64,
    pub count: u64,
    /// True when this (writer, sequence) was already stored: nothing was written.
    pub duplicate: bool,
}

impl Appended {
    pub fn end_offset(&self) -> u64 {
        self.base_offset + self.count
    }
}

/// The identity of an idempotent batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchIdentity {
    pub writer_id: i64,
    pub sequence: i64,
}

/// Writer id stored for batches written without idempotence.
pub const NO_WRITER: i64 = -1;

struct AppendState {
    active: Arc<Segment>,
    next_offset: u64,
    last_timestamp: i64,
    writers: HashMap<i64, VecDeque<(i64, u64, u64)>>,
}

pub struct BucketLog {
    pub bucket: u32,
    dir: PathBuf,
    location: String,
    policy: SegmentPolicy,
    clock: Clock,
    fs: Arc<dyn FileSystem>,
    append: Mutex<AppendState>,
    segments: RwLock<Vec<Arc<Segment>>>,
    corrupt: RwLock<Vec<CorruptRange>>,
    /// Serializes fdatasyncs: while one runs, new appends queue and share the next one.
    sync_lock: tokio::sync::Mutex<()>,
    durable: AtomicU64,
    written: AtomicU64,
    durability: AtomicU8,
    high_watermark: watch::Sender<u64>,
    stopped: Mutex<Option<String>>,
    /// Segments rolled in `os` mode whose fsync and index wait for the next flush.
    pending_seal: Mutex<Vec<Arc<Segment>>>,
    /// Rewritten after every sync: how far the active segment is known to be durable.
    recovery_point: Arc<RecoveryPointFile>,
    /// Set when the table is dropped or the node stops: tailing readers end with this error.
    readers_closed: Mutex<Option<ReadersClosed>>,
    /// This bucket's recent appends, served to readers from memory.
    tail: BucketTail,
}

/// Why tailing readers of a bucket were told to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadersClosed {
    TableDropped,
    ShuttingDown,
}

fn durability_code(d: Durability) -> u8 {
    match d {
        Durability::Sync => 0,
        Durability::Os => 1,
    }
}

/// Summary of what recovery did, for the logs and tests.
#[derive(Debug, Default, Clone)]
pub struct RecoveryReport {
    pub segments: usize,
    pub batches: usize,
    pub next_offset: u64,
    pub truncated_bytes: u64,
    pub corrupt_ranges: usize,
}

/// Removes segments (and their index files) found after a rolled segment's torn tail, then
/// fsyncs the directory so the removal is durable before appends reuse their offsets.
fn remove_unacknowledged_segments(fs: &dyn FileSystem, dir: &Path, bases: &[u64], location: &str) -> Result<()> {
    for &base in bases {
        let path = dir.join(segment_file_name(base));
        tracing::warn!(bucket = %location, segment = %path.display(), "removing a segment written after a torn, unsealed one: none of it was acknowledged");
        for p in [path.with_extension("index"), path] {
            match fs.remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(p.display(), e)),
            }
        }
    }
    fs::sync_dir(fs, dir)
}

impl BucketLog {
    /// Opens (recovering) or creates the log of one bucket in `dir`.
    pub fn open(dir: &Path, bucket: u32, location: String, settings: &LogSettings) -> Result<(Self, RecoveryReport)> {
        let now = (settings.clock)();
        let fs = &settings.fs;
        fs::create_dir_all_durable(fs.as_ref(), dir)?;
        let mut bases: Vec<u64> = fs
            .list_dir(dir)
            .at(dir.display())?
            .iter()
            .filter_map(|n| n.to_str().and_then(|n| n.strip_suffix(".log")).and_then(|n| n.parse::<u64>().ok()))
            .collect();
        bases.sort_unstable();
        let point = recovery_point::read(fs.as_ref(), dir, &location);
        let mut report = RecoveryReport::default();
        let mut segments: Vec<Arc<Segment>> = Vec::with_capacity(bases.len().max(1));
        let mut corrupt: Vec<CorruptRange> = Vec::new();
        let mut i = 0;
        while i < bases.len() {
            let base = bases[i];
            let active = i + 1 == bases.len();
            let synced_bytes = RecoveryPoint::synced_bytes_of(point, base);
            let outcome = Segment::open(fs, &dir.join(segment_file_name(base)), base, active, synced_bytes, now)?;
            report.truncated_bytes += outcome.truncated_bytes;
            if outcome.unsealed && (outcome.truncated_bytes > 0 || outcome.segment.next_offset() != bases[i + 1]) {
                // A rolled segment lost bytes its seal never fsynced. Every ack waits for the
                // group commit that seals the rolled segments before anything after them, so
                // nothing from here on was acknowledged: the later segments are there only
                // because another fsync of the directory made their entries durable. The log
                // ends here, and this segment is the active one again.
                remove_unacknowledged_segments(fs.as_ref(), dir, &bases[i + 1..], &location)?;
                bases.truncate(i + 1);
                continue;
            }
            i += 1;
            for mut range in outcome.corrupt {
                if range.end == u64::MAX {
                    range.end = bases.get(i + 1).copied().unwrap_or(outcome.segment.next_offset());
                }
                tracing::error!(bucket = %location, start = range.start, end = range.end, detail = %range.detail, "corrupt batches: reads of this range answer DataLoss");
                corrupt.push(range);
            }
            report.batches += outcome.segment.all_entries().len();
            segments.push(Arc::new(outcome.segment));
        }
        report.segments = bases.len();
        if segments.is_empty() {
            segments.push(Arc::new(Segment::create(fs, dir, 0, now)?));
        }
        let active = segments.last().expect("at least one segment").clone();
        let next_offset = active.next_offset().max(corrupt.iter().map(|c| c.end).max().unwrap_or(0));
        let last_timestamp = segments.iter().rev().find_map(|s| s.last_entry()).map(|e| e.max_timestamp).unwrap_or(0);
        let mut writers: HashMap<i64, VecDeque<(i64, u64, u64)>> = HashMap::new();
        for seg in &segments {
            for e in seg.all_entries() {
                if e.writer_id != NO_WRITER {
                    let w = writers.entry(e.writer_id).or_default();
                    w.push_back((e.sequence, e.base_offset, e.count as u64));
                    if w.len() > WRITER_WINDOW {
                        w.pop_front();
                    }
                }
            }
        }
        report.next_offset = next_offset;
        report.corrupt_ranges = corrupt.len();
        let recovery_point = Arc::new(RecoveryPointFile::open(fs.as_ref(), dir)?);
        let (high_watermark, _) = watch::channel(next_offset);
        let log = Self {
            bucket,
            dir: dir.to_path_buf(),
            location,
            policy: settings.policy,
            clock: settings.clock.clone(),
            fs: settings.fs.clone(),
            append: Mutex::new(AppendState { active, next_offset, last_timestamp, writers }),
            segments: RwLock::new(segments),
            corrupt: RwLock::new(corrupt),
            sync_lock: tokio::sync::Mutex::new(()),
            durable: AtomicU64::new(next_offset),
            written: AtomicU64::new(next_offset),
            durability: AtomicU8::new(durability_code(settings.durability)),
            high_watermark,
            stopped: Mutex::new(None),
            readers_closed: Mutex::new(None),
            pending_seal: Mutex::new(Vec::new()),
            recovery_point,
            tail: settings.tail_cache.bucket(),
        };
        Ok((log, report))
    }

    pub fn location(&self) -> &str {
        &self.location
    }

    pub fn set_durability(&self, d: Durability) {
        self.durability.store(durability_code(d), Ordering::Release);
        if d == Durability::Os {
            self.publish(self.written.load(Ordering::Acquire));
        }
    }

    fn durability(&self) -> Durability {
        if self.durability.load(Ordering::Acquire) == 0 {
            Durability::Sync
        } else {
            Durability::Os
        }
    }

    /// The offset the next committed record gets; readers see everything below it.
    pub fn high_watermark(&self) -> u64 {
        *self.high_watermark.borrow()
    }

    /// Ends tailing readers (they wake up and return `reason` as an error).
    pub fn close_readers(&self, reason: ReadersClosed) {
        *self.readers_closed.lock() = Some(reason);
        self.high_watermark.send_modify(|_| {});
    }

    /// Fails if tailing readers were told to stop.
    pub fn check_readers_open(&self) -> Result<()> {
        match *self.readers_closed.lock() {
            None => Ok(()),
            Some(ReadersClosed::TableDropped) => Err(Error::NotFound(format!("{}: the table was dropped", self.location))),
            Some(ReadersClosed::ShuttingDown) => Err(Error::ShuttingDown),
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.high_watermark.subscribe()
    }

    /// The first offset still stored.
    pub fn log_start_offset(&self) -> u64 {
        self.segments.read().first().map(|s| s.base_offset).unwrap_or(0)
    }

    fn publish(&self, offset: u64) {
        self.high_watermark.send_if_modified(|hw| {
            if offset > *hw {
                *hw = offset;
                true
            } else {
                false
            }
        });
    }

    fn check_stopped(&self) -> Result<()> {
        match &*self.stopped.lock() {
            Some(detail) => Err(Error::WritesStopped { location: self.location.clone(), detail: detail.clone() }),
            None => Ok(()),
        }
    }

    fn stop_writes(&self, detail: String) -> Error {
        tracing::error!(bucket = %self.location, %detail, "fsync failed: writes to this bucket are stopped until restart");
        *self.stopped.lock() = Some(detail.clone());
        Error::WritesStopped { location: self.location.clone(), detail }
    }

    /// If this writer's batch is already stored, where it is.
    fn find_duplicate(state: &AppendState, id: BatchIdentity) -> Option<Appended> {
        state.writers.get(&id.writer_id)?.iter().find(|(s, _, _)| *s == id.sequence).map(|&(_, base, count)| Appended {
            base_offset: base,
            count,
            duplicate: true,
        })
    }

    /// Where this writer's batch is stored, if it is (a retry).
    pub fn duplicate_of(&self, id: BatchIdentity) -> Option<Appended> {
        Self::find_duplicate(&self.append.lock(), id)
    }

    /// The offset the next appended record gets (written, maybe not yet durable).
    pub fn next_offset(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// Everything below this offset may be acknowledged: fsynced in `sync` mode, written in `os`.
    pub fn acknowledgeable_offset(&self) -> u64 {
        match self.durability() {
            Durability::Sync => self.durable.load(Ordering::Acquire),
            Durability::Os => self.written.load(Ordering::Acquire),
        }
    }

    /// Encodes `batch` (with `encoder`, the table's compression) and writes it into the page
    /// cache as one entry of `schema_id`; a retry of a stored (writer, sequence) writes nothing
    /// and returns the original offsets. The caller must `wait_durable` before acknowledging.
    pub fn append_unconfirmed(
        &self,
        batch: &RecordBatch,
        schema_id: u32,
        id: Option<BatchIdentity>,
        encoder: &mut BatchEncoder,
    ) -> Result<Appended> {
        self.check_stopped()?;
        let rows = record_count(batch.num_rows())?;
        if let Some(dup) = id.and_then(|id| self.duplicate_of(id)) {
            return Ok(dup);
        }
        // Encoded outside the append lock, so appends of other writers go on meanwhile.
        self.append_encoded(&encoder.encode(batch)?, rows, schema_id, id)
    }

    /// Writes an encoded batch of `rows` rows into the page cache (see `append_unconfirmed`).
    pub fn append_encoded(&self, batch: &EncodedBatch, rows: u32, schema_id: u32, id: Option<BatchIdentity>) -> Result<Appended> {
        self.check_stopped()?;
        let mut state = self.append.lock();
        if let Some(id) = id {
            if let Some(dup) = Self::find_duplicate(&state, id) {
                return Ok(dup);
            }
        }
        let now = (self.clock)().max(state.last_timestamp);
        let (header, head) = format::encode_entry_head(&EntryParts {
            compression: batch.compression,
            base_offset: state.next_offset,
            record_count: rows,
            schema_id,
            max_timestamp: now,
            writer_id: id.map(|i| i.writer_id).unwrap_or(NO_WRITER),
            sequence: id.map(|i| i.sequence).unwrap_or(-1),
            meta: &batch.meta,
            body: &batch.body,
            column_ranges: &batch.column_ranges,
        })?;
        self.maybe_roll(&mut state, header.entry_len() as u64)?;
        // Small bodies: one write. Large ones: written from the encoder's buffer, no copy.
        let result = if batch.body.len() <= 64 * 1024 {
            let mut whole = head;
            whole.extend_from_slice(&batch.body);
            state.active.append(&header, &[&whole])
        } else {
            state.active.append(&header, &[&head, &batch.body])
        };
        if let Err(e) = result {
            // A failed write may have left partial bytes: stop rather than guess.
            return Err(self.stop_writes(format!("write failed: {e}")));
        }
        // Under the append lock: the tail cache takes a bucket's entries in offset order.
        self.tail.insert(header, &batch.meta, &batch.body);
        let appended = Appended { base_offset: state.next_offset, count: rows as u64, duplicate: false };
        state.next_offset += rows as u64;
        state.last_timestamp = now;
        if let Some(id) = id {
            let w = state.writers.entry(id.writer_id).or_default();
            w.push_back((id.sequence, appended.base_offset, appended.count));
            if w.len() > WRITER_WINDOW {
                w.pop_front();
            }
        }
        self.written.store(state.next_offset, Ordering::Release);
        drop(state);
        if self.durability() == Durability::Os {
            self.publish(appended.end_offset());
        }
        Ok(appended)
    }

    /// Seals the active segment and starts a new one when it is full or old.
    fn maybe_roll(&self, state: &mut AppendState, incoming: u64) -> Result<()> {
        let active = &state.active;
        let full = active.size() > 0 && active.size() + incoming > self.policy.segment_bytes;
        let now = (self.clock)();
        let old = !active.is_empty() && now - active.created_ms > self.policy.segment_ms as i64;
        if !(full || old) {
            return Ok(());
        }
        let sealed_end = state.next_offset;
        // The full segment's fsync and index, and the new one's directory entry, are the next
        // sync's job (the group commit in `sync` mode, the flusher in `os` mode): no fsync runs
        // under the append lock, so appends to this bucket never wait for one.
        self.pending_seal.lock().push(active.clone());
        let next = Arc::new(Segment::create(&self.fs, &self.dir, sealed_end, now)?);
        tracing::debug!(bucket = %self.location, base_offset = sealed_end, "rolled to a new segment");
        self.segments.write().push(next.clone());
        state.active = next;
        Ok(())
    }

    fn mark_durable(&self, offset: u64) {
        self.durable.fetch_max(offset, Ordering::AcqRel);
        if self.durability() == Durability::Sync {
            self.publish(self.durable.load(Ordering::Acquire));
        }
    }

    /// Group commit: returns once an fdatasync covers `end_offset`. In `os` mode the caller
    /// does not wait for this (the flusher calls `sync`).
    pub async fn wait_durable(&self, end_offset: u64) -> Result<()> {
        loop {
            if self.durable.load(Ordering::Acquire) >= end_offset {
                return Ok(());
            }
            self.check_stopped()?;
            let _guard = self.sync_lock.lock().await;
            if self.durable.load(Ordering::Acquire) >= end_offset {
                return Ok(());
            }
            self.sync_now().await?;
        }
    }

    /// Group commit for an entry of no records (an idempotent write that changed nothing still
    /// stores one, to keep its sequence): it ends at the offset it starts at, so its offsets
    /// cannot tell whether a sync covered it. Returns once an fdatasync that started after
    /// this call covers everything written before it.
    pub async fn wait_durable_written(&self) -> Result<()> {
        self.check_stopped()?;
        let _guard = self.sync_lock.lock().await;
        self.sync_now().await
    }

    /// fdatasyncs everything written so far (holding `sync_lock` is the caller's job). After a
    /// failed fsync nothing is ever marked durable again until restart: the kernel may have
    /// dropped the dirty pages, so a later fsync that succeeds proves nothing.
    async fn sync_now(&self) -> Result<()> {
        self.check_stopped()?;
        let (segment, target, sealed) = {
            let state = self.append.lock();
            (state.active.clone(), state.next_offset, std::mem::take(&mut *self.pending_seal.lock()))
        };
        // Read under no lock but before the fdatasync: every byte counted here is covered by it.
        let point = RecoveryPoint { segment_base: segment.base_offset, synced_bytes: segment.size() };
        let point_file = self.recovery_point.clone();
        // Rolled segments are fsynced (and get their index) before the active one.
        let result = tokio::task::spawn_blocking(move || -> std::result::Result<(), String> {
            for s in &sealed {
                s.seal().map_err(|e| e.to_string())?;
            }
            segment.sync_data().map_err(|e| format!("fdatasync failed: {e}"))?;
            point_file.record_unsynced(point);
            Ok(())
        })
        .await
        .map_err(|e| Error::Internal(format!("sync task failed: {e}")))?;
        if let Err(detail) = result {
            return Err(self.stop_writes(detail));
        }
        self.mark_durable(target);
        Ok(())
    }

    /// Flushes whatever is written but not yet durable (background flusher, shutdown).
    pub async fn sync(&self) -> Result<()> {
        let written = self.written.load(Ordering::Acquire);
        if self.durable.load(Ordering::Acquire) >= written && self.pending_seal.lock().is_empty() {
            return Ok(());
        }
        let _guard = self.sync_lock.lock().await;
        self.sync_now().await
    }

    /// Whether acks must wait for `wait_durable`.
    pub fn acks_wait_for_sync(&self) -> bool {
        self.durability() == Durability::Sync
    }

    /// Reads committed batches from `from` (below `until`), at most about `max_bytes` (always at
    /// least one batch), projected as `projection` says (`read.rs`: verbatim, pruned or decoded,
    /// CRC-checked). `budget(n)` is asked before each batch of `n` rows and answers how many of
    /// them may be sent (a scan's `limit`). Blocking: call it off the async workers.
    pub fn read(
        &self,
        from: u64,
        until: u64,
        max_bytes: usize,
        projection: &ReadProjection,
        budget: &mut dyn FnMut(u64) -> u64,
    ) -> Result<ReadOutcome> {
        let (segment, entries, next) = self.entries_for_read(from, until, max_bytes)?;
        let cached = self.tail.get_many(entries.iter().map(|e| e.base_offset));
        read::read_entries(&segment, &entries, &cached, self.bucket, (from, until, next), projection, budget)
    }

    /// Reads and decodes committed batches from `from` (below `until`), at most about
    /// `max_bytes`, each with the stored schema `schema_of` gives for its schema id. Rows below
    /// `from` are included (the caller skips them by `base_offset`). Returns the batches and
    /// where the next read starts. Blocking.
    pub fn read_decoded(
        &self,
        from: u64,
        until: u64,
        max_bytes: usize,
        schema_of: &dyn Fn(u32) -> Result<SchemaRef>,
    ) -> Result<(Vec<DecodedEntry>, u64)> {
        let (segment, entries, next) = self.entries_for_read(from, until, max_bytes)?;
        let cached = self.tail.get_many(entries.iter().map(|e| e.base_offset));
        Ok((read::decode_entries(&segment, &entries, &cached, schema_of)?, next))
    }

    /// The index entries (with records) a read from `from` covers, their segment, and where
    /// the read after this one starts. DATA_LOSS for a corrupt range, FAILED_PRECONDITION when
    /// retention deleted `from`.
    fn entries_for_read(&self, from: u64, until: u64, max_bytes: usize) -> Result<(Arc<Segment>, Vec<IndexEntry>, u64)> {
        self.check_range(from, until)?;
        let (segment, entries) = self.entries_from(from, until, max_bytes)?;
        let Some(segment) = segment else {
            return Err(Error::Internal(format!("{}: no stored batch covers offset {from} below {until}", self.location())));
        };
        if entries[0].base_offset > from {
            return Err(Error::FailedPrecondition(format!(
                "{}: offsets {from}..{} were deleted by retention while the scan ran",
                self.location(),
                entries[0].base_offset
            )));
        }
        let next = entries.last().map(|e| e.next_offset().min(until)).unwrap_or(until);
        // Zero-record entries only record an idempotent primary-key write that changed nothing.
        let entries: Vec<IndexEntry> = entries.into_iter().filter(|e| e.count > 0 && e.next_offset() > from).collect();
        Ok((segment, entries, next))
    }

    /// Fails with DataLoss if `[from, until)` touches a corrupt range.
    fn check_range(&self, from: u64, until: u64) -> Result<()> {
        for c in self.corrupt.read().iter() {
            if c.start < until && from < c.end {
                return Err(Error::DataLoss {
                    location: format!("{} offsets {}..{}", self.location, c.start, c.end),
                    detail: c.detail.clone(),
                });
            }
        }
        Ok(())
    }

    /// Entries overlapping `[from, until)` from one segment, up to `max_bytes`.
    fn entries_from(&self, from: u64, until: u64, max_bytes: usize) -> Result<(Option<Arc<Segment>>, Vec<IndexEntry>)> {
        let segments = self.segments.read();
        let start = segments.partition_point(|s| s.base_offset <= from).saturating_sub(1);
        for seg in &segments[start..] {
            if seg.base_offset >= until {
                break;
            }
            let entries = seg.entries_between(from, until, max_bytes);
            if !entries.is_empty() {
                return Ok((Some(seg.clone()), entries));
            }
        }
        Ok((None, vec![]))
    }

    /// The first offset whose batch committed at or after `timestamp` (the high watermark if none).
    pub fn offset_for_timestamp(&self, timestamp: i64) -> u64 {
        let hw = self.high_watermark();
        let segments = self.segments.read();
        for seg in segments.iter() {
            if let Some(off) = seg.offset_for_timestamp(timestamp) {
                return off.min(hw);
            }
        }
        hw
    }

    /// Deletes sealed segments whose newest batch is older than `cutoff_ms` and that end at or
    /// below `keep_from` (a primary-key table keeps what its KV store has not persisted);
    /// returns how many.
    pub fn delete_segments_before(&self, cutoff_ms: i64, keep_from: u64) -> Result<usize> {
        let expired: Vec<Arc<Segment>> = {
            let mut segments = self.segments.write();
            let mut n = 0;
            while n + 1 < segments.len()
                && segments[n].is_sealed()
                && segments[n + 1].base_offset <= keep_from
                && segments[n].last_entry().is_none_or(|e| e.max_timestamp < cutoff_ms)
            {
                n += 1;
            }
            segments.drain(..n).collect()
        };
        for seg in &expired {
            seg.delete_files()?;
            tracing::info!(bucket = %self.location, segment = %seg.location(), "deleted segment past table.log.ttl");
        }
        if !expired.is_empty() {
            let start = self.log_start_offset();
            self.corrupt.write().retain(|c| c.end > start);
            self.tail.forget_below(start);
        }
        Ok(expired.len())
    }

    /// Sizes for GetFlightInfo: (records, bytes).
    pub fn totals(&self) -> (u64, u64) {
        // One read guard for both figures: taking the lock again through `log_start_offset`
        // while holding it deadlocks once a writer (retention) queues between the two reads,
        // since parking_lot's RwLock lets no new reader past a waiting writer.
        let segments = self.segments.read();
        let bytes = segments.iter().map(|s| s.size()).sum();
        let start = segments.first().map(|s| s.base_offset).unwrap_or(0);
        (self.high_watermark().saturating_sub(start), bytes)
    }

    /// The sequences this log holds per writer (for the table's gap check).
    pub fn writer_last_sequences(&self) -> HashMap<i64, i64> {
        self.append.lock().writers.iter().filter_map(|(w, q)| q.iter().map(|e| e.0).max().map(|s| (*w, s))).collect()
    }

    /// Whether `sequence` is older than this bucket's dedup window for the writer.
    pub fn is_before_window(&self, id: BatchIdentity) -> bool {
        let state = self.append.lock();
        match state.writers.get(&id.writer_id) {
            Some(q) if q.len() >= WRITER_WINDOW => q.front().is_some_and(|f| id.sequence < f.0),
            _ => false,
        }
    }

    /// FAILED_PRECONDITION when `id` is too old for this bucket to tell whether it is a retry.
    pub fn check_in_window(&self, id: BatchIdentity) -> Result<()> {
        if self.is_before_window(id) {
            return Err(Error::FailedPrecondition(format!(
                "{}: sequence {} of writer {} is too old to deduplicate",
                self.location(),
                id.sequence,
                id.writer_id
            )));
        }
        Ok(())
    }
}

/// A batch's rows as an entry's record count (entries count records in 32 bits).
pub fn record_count(rows: usize) -> Result<u32> {
    u32::try_from(rows).map_err(|_| Error::ResourceExhausted("a single batch must hold fewer than 2^32 rows".into()))
}
