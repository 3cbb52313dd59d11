//! The model of a log table (plain or partitioned) under power loss: every batch ever sent,
//! which were acknowledged and where, and every entry ever seen at an offset.
//!
//! Rows carry unique ids and a payload derived from the id, so a scan tells which batch every
//! stored row belongs to and whether its bytes are intact. After a recovery the model checks:
//! - every acknowledged bucket part is stored at the offsets its ack named, whole, once;
//! - a batch that was in flight (sent, not acknowledged) is stored, per bucket part, wholly or
//!   not at all: its rows in one bucket form exactly one stored entry (the resend's ack later
//!   proves that entry is the whole part);
//! - no row is stored twice and no row comes from nowhere;
//! - offsets are gap-free from the log start to the high watermark and never reused: an entry
//!   once seen at an offset is the same entry at every later recovery.

use std::collections::{BTreeMap, HashMap, HashSet};
use strom_flight_api::PutAck;

/// A bucket of a log table: its partition (partitioned tables) and number.
pub type BucketId = (Option<String>, u32);

/// One bucket part of a batch as stored: where it starts and how many rows it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub base: u64,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BatchState {
    /// Sent; its ack never arrived (the write or its ack failed with the power loss).
    InFlight,
    Acked(BTreeMap<BucketId, Placement>),
}

#[derive(Debug, Clone)]
pub struct SentBatch {
    pub sequence: i64,
    /// Row ids in batch order (strictly increasing).
    pub rows: Vec<i64>,
    pub state: BatchState,
}

/// One stored entry as a scan returned it.
#[derive(Debug, Clone)]
pub struct ObservedEntry {
    pub bucket: BucketId,
    pub base: u64,
    pub rows: Vec<i64>,
}

/// A whole-table scan after recovery, with every bucket's log start and high watermark.
#[derive(Debug, Default)]
pub struct Observed {
    pub entries: Vec<ObservedEntry>,
    pub start: BTreeMap<BucketId, u64>,
    pub end: BTreeMap<BucketId, u64>,
}

/// What a check found of the batches in flight: per batch index, its stored bucket parts.
pub type InFlightFound = HashMap<usize, BTreeMap<BucketId, Placement>>;

#[derive(Debug, Default)]
pub struct LogModel {
    pub table: String,
    batches: Vec<SentBatch>,
    /// Row id → the batch that holds it.
    row_batch: HashMap<i64, usize>,
    /// Every entry ever acknowledged or seen, per bucket: base → (batch, rows).
    known: BTreeMap<BucketId, BTreeMap<u64, (usize, u64)>>,
    next_row: i64,
}

impl LogModel {
    pub fn new(table: &str) -> Self {
        Self { table: table.into(), next_row: 1, ..Default::default() }
    }

    /// Registers a new batch of `rows` fresh row ids; returns its index and ids.
    pub fn send(&mut self, sequence: i64, rows: usize) -> (usize, Vec<i64>) {
        let ids: Vec<i64> = (self.next_row..self.next_row + rows as i64).collect();
        self.next_row += rows as i64;
        let index = self.batches.len();
        for &id in &ids {
            self.row_batch.insert(id, index);
        }
        self.batches.push(SentBatch { sequence, rows: ids.clone(), state: BatchState::InFlight });
        (index, ids)
    }

    pub fn batch(&self, index: usize) -> &SentBatch {
        &self.batches[index]
    }

    /// Records the ack of batch `index`: the parts must hold every row once, at offsets no
    /// other entry ever had.
    pub fn ack(&mut self, index: usize, ack: &PutAck) -> Result<(), String> {
        let batch = &self.batches[index];
        let rows = batch.rows.len() as u64;
        let counted: u64 = ack.buckets.iter().map(|b| b.count).sum();
        if ack.rows != rows || counted != rows {
            return Err(format!(
                "{}: batch {index} of {rows} rows acked as rows={} with bucket counts summing to {counted}: {ack:?}",
                self.table, ack.rows
            ));
        }
        if ack.sequence != Some(batch.sequence) {
            return Err(format!("{}: batch {index} (sequence {}) acked with sequence {:?}", self.table, batch.sequence, ack.sequence));
        }
        let mut parts = BTreeMap::new();
        for b in &ack.buckets {
            let bucket = (b.partition.clone(), b.bucket);
            if parts.insert(bucket.clone(), Placement { base: b.base_offset, count: b.count }).is_some() {
                return Err(format!("{}: batch {index} acked with bucket {bucket:?} twice: {ack:?}", self.table));
            }
        }
        for (bucket, p) in &parts {
            self.learn(bucket, p.base, index, p.count)?;
        }
        self.batches[index].state = BatchState::Acked(parts);
        Ok(())
    }

    /// Remembers that `bucket` holds batch `index`'s part of `count` rows at `base`; fails if
    /// another entry was ever there or overlaps it (an offset reused).
    fn learn(&mut self, bucket: &BucketId, base: u64, index: usize, count: u64) -> Result<(), String> {
        let known = self.known.entry(bucket.clone()).or_default();
        if let Some(&(other, other_count)) = known.get(&base) {
            if (other, other_count) != (index, count) {
                return Err(format!(
                    "{} {bucket:?}: offset {base} now holds batch {index} ({count} rows) but held batch {other} ({other_count} rows): an offset was reused",
                    self.table
                ));
            }
            return Ok(());
        }
        let before = known.range(..base).next_back().map(|(&b, &(i, c))| (b, i, c));
        let after = known.range(base..).next().map(|(&b, &(i, c))| (b, i, c));
        if let Some((b, i, c)) = before.filter(|&(b, _, c)| b + c > base) {
            return Err(format!(
                "{} {bucket:?}: batch {index} at {base}..{} overlaps batch {i} at {b}..{}",
                self.table,
                base + count,
                b + c
            ));
        }
        if let Some((b, i, c)) = after.filter(|&(b, _, _)| b < base + count) {
            return Err(format!(
                "{} {bucket:?}: batch {index} at {base}..{} overlaps batch {i} at {b}..{}",
                self.table,
                base + count,
                b + c
            ));
        }
        known.insert(base, (index, count));
        Ok(())
    }

    /// Checks a recovered table against the model; returns the stored parts of the batches in
    /// flight (for the resend check) or what is wrong.
    pub fn check(&mut self, observed: &Observed) -> Result<InFlightFound, String> {
        let table = self.table.clone();
        let mut by_bucket: BTreeMap<BucketId, Vec<&ObservedEntry>> = BTreeMap::new();
        for e in &observed.entries {
            by_bucket.entry(e.bucket.clone()).or_default().push(e);
        }
        let mut seen_rows: HashSet<i64> = HashSet::new();
        let mut found: HashMap<usize, BTreeMap<BucketId, Placement>> = HashMap::new();
        for (bucket, end) in &observed.end {
            let start = observed.start[bucket];
            let mut entries = by_bucket.remove(bucket).unwrap_or_default();
            entries.sort_by_key(|e| e.base);
            let mut at = start;
            for e in entries {
                if e.base != at {
                    return Err(format!(
                        "{table} {bucket:?}: entry at offset {} where {at} was expected (log start {start}): a gap or overlap",
                        e.base
                    ));
                }
                let Some(&first) = e.rows.first() else { continue };
                let index =
                    *self.row_batch.get(&first).ok_or_else(|| format!("{table} {bucket:?}: row {first} at offset {at} was never sent"))?;
                for (i, &row) in e.rows.iter().enumerate() {
                    if self.row_batch.get(&row) != Some(&index) {
                        return Err(format!(
                            "{table} {bucket:?}: the entry at {at} mixes rows of batch {index} and of {:?} (row {row})",
                            self.row_batch.get(&row)
                        ));
                    }
                    if i > 0 && row <= e.rows[i - 1] {
                        return Err(format!("{table} {bucket:?}: the entry at {at} has its rows out of batch order: {:?}", e.rows));
                    }
                    if !seen_rows.insert(row) {
                        return Err(format!("{table} {bucket:?}: row {row} (batch {index}) is stored twice"));
                    }
                }
                let count = e.rows.len() as u64;
                if found.entry(index).or_default().insert(bucket.clone(), Placement { base: e.base, count }).is_some() {
                    return Err(format!("{table} {bucket:?}: batch {index} has two entries in one bucket (at {at})"));
                }
                at += count;
            }
            if at != *end {
                return Err(format!("{table} {bucket:?}: entries end at {at} but the high watermark is {end}"));
            }
            // An entry seen or acknowledged at an offset still in the log is still there.
            for (&base, &(index, count)) in self.known.get(bucket).into_iter().flatten() {
                let stored = found.get(&index).and_then(|parts| parts.get(bucket));
                if base >= start && base < *end && stored != Some(&Placement { base, count }) {
                    return Err(format!(
                        "{table} {bucket:?}: batch {index} ({count} rows at {base}) is no longer where it was: now {stored:?}"
                    ));
                }
            }
        }
        if let Some((bucket, _)) = by_bucket.into_iter().next() {
            return Err(format!("{table}: a scan returned bucket {bucket:?} that list_offsets does not know"));
        }
        let mut in_flight = InFlightFound::new();
        for (index, batch) in self.batches.iter().enumerate() {
            let stored = found.remove(&index).unwrap_or_default();
            match &batch.state {
                BatchState::Acked(parts) => {
                    for (bucket, p) in parts {
                        let (Some(&start), Some(&end)) = (observed.start.get(bucket), observed.end.get(bucket)) else {
                            return Err(format!("{table}: acked batch {index} has rows in {bucket:?}, which recovery lost"));
                        };
                        if p.base + p.count > end {
                            return Err(format!(
                                "{table} {bucket:?}: acked batch {index} ends at {} but the log ends at {end}",
                                p.base + p.count
                            ));
                        }
                        // Retention deletes whole segments: a part is gone only below the log start.
                        if p.base >= start && stored.get(bucket) != Some(p) {
                            return Err(format!("{table} {bucket:?}: acked batch {index} ({p:?}) is stored as {:?}", stored.get(bucket)));
                        }
                    }
                    if let Some((bucket, p)) = stored.iter().find(|(bucket, _)| !parts.contains_key(*bucket)) {
                        return Err(format!("{table} {bucket:?}: acked batch {index} also has rows at {p:?}, outside its ack {parts:?}"));
                    }
                }
                BatchState::InFlight => {
                    in_flight.insert(index, stored);
                }
            }
        }
        for (index, parts) in &in_flight {
            for (bucket, p) in parts {
                self.learn(bucket, p.base, *index, p.count)?;
            }
        }
        Ok(in_flight)
    }

    /// Checks the ack of the resend of in-flight batch `index`: every part stored before the
    /// resend is answered as a duplicate at its original offsets with the same row count (so
    /// it was whole), every other part is appended fresh at or after the recovered end.
    pub fn check_resend(
        &mut self,
        index: usize,
        stored: &BTreeMap<BucketId, Placement>,
        recovered_end: &BTreeMap<BucketId, u64>,
        ack: &PutAck,
    ) -> Result<(), String> {
        let table = self.table.clone();
        let mut all_stored = true;
        for b in &ack.buckets {
            let bucket = (b.partition.clone(), b.bucket);
            let acked = Placement { base: b.base_offset, count: b.count };
            match stored.get(&bucket) {
                Some(p) if *p == acked => {}
                Some(p) => {
                    return Err(format!("{table} {bucket:?}: resent batch {index} acked at {acked:?}, but its part was stored at {p:?}"))
                }
                None => {
                    all_stored = false;
                    let end = recovered_end.get(&bucket).copied().unwrap_or(0);
                    if acked.base < end {
                        return Err(format!("{table} {bucket:?}: resent batch {index} acked at {acked:?}, below the recovered end {end}, though it was not stored"));
                    }
                }
            }
        }
        if let Some(bucket) = stored.keys().find(|bucket| !ack.buckets.iter().any(|b| (b.partition.clone(), b.bucket) == **bucket)) {
            return Err(format!("{table} {bucket:?}: resent batch {index} had a stored part the resend's ack does not name: {ack:?}"));
        }
        if ack.duplicate != all_stored {
            return Err(format!("{table}: resent batch {index} acked duplicate={} but stored parts {stored:?}: {ack:?}", ack.duplicate));
        }
        self.ack(index, ack)
    }
}
