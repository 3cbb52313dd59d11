//! The tail cache: the most recently appended batches of every bucket, kept in the node's own
//! memory under one node-wide byte budget (`log.tail_cache_bytes`), so that scans and tailing
//! readers of recent data are served without touching the page cache and without a second CRC
//! pass.
//!
//! Why it may skip the check that reads from disk make: a cached entry holds the very buffers
//! whose CRCs the append computed, and they never left this process. The CRCs guard against
//! what happens to bytes on their way to and from the disk (torn writes, bit rot, a file
//! changed behind the node's back), and every read that comes from a segment still verifies
//! them (`read.rs`). A profile of full-width scans put that check at a fifth of the node's CPU
//! per GB served (docs/benchmarks.md, "Scans, 2026-12-07").
//!
//! Eviction is oldest-first across all tables: one FIFO of (bucket, base offset, bytes) in
//! append order. A bucket's own entries are in base-offset order, so evicting a bucket's entry
//! means popping the front of its queue. Entries a bucket drops on its own (retention deleted
//! their segment, the table was dropped) stay counted until their FIFO slot comes up: the
//! budget may be undercounted-used, never exceeded.
//!
//! Lock order: a bucket's queue, then never the FIFO while holding it (and the other way
//! round): an append pushes into its bucket, releases it, then takes the FIFO to count the
//! bytes and pick victims, and evicts them after releasing the FIFO.

use super::format::BatchHeader;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

/// One appended batch as the append encoded it: the IPC message header and body, with the
/// entry header that describes them (schema id, timestamp, compression, column count).
#[derive(Debug, Clone)]
pub struct CachedEntry {
    pub header: BatchHeader,
    pub meta: Bytes,
    pub body: Bytes,
}

/// Bodies shorter than this are copied into the cache rather than shared; a longer one is most
/// of the receive buffer it arrived in. An entry counts its buffers' lengths against the budget.
const COPY_BODIES_BELOW: usize = 64 * 1024;

/// Counters for `health` and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TailCacheStats {
    pub budget_bytes: u64,
    pub held_bytes: u64,
    /// Batches served from the cache / read from segments instead.
    pub hits: u64,
    pub misses: u64,
}

struct Fifo {
    /// Bytes of the entries still in `order` (a bucket may already have dropped some).
    held: u64,
    order: VecDeque<(Weak<BucketTailInner>, u64, u64)>,
}

/// The node-wide budget and eviction order. Shared by every bucket log of the node.
pub struct TailCache {
    budget: u64,
    fifo: Mutex<Fifo>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl TailCache {
    /// A cache of at most `budget` bytes; 0 turns it off (every read comes from segments).
    pub fn new(budget: u64) -> Arc<Self> {
        Arc::new(Self {
            budget,
            fifo: Mutex::new(Fifo { held: 0, order: VecDeque::new() }),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }

    #[cfg(test)]
    pub fn disabled() -> Arc<Self> {
        Self::new(0)
    }

    pub fn stats(&self) -> TailCacheStats {
        TailCacheStats {
            budget_bytes: self.budget,
            held_bytes: self.fifo.lock().held,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    /// The cache of one bucket.
    pub fn bucket(self: &Arc<Self>) -> BucketTail {
        BucketTail { inner: Arc::new(BucketTailInner { cache: self.clone(), entries: Mutex::new(VecDeque::new()) }) }
    }
}

struct BucketTailInner {
    cache: Arc<TailCache>,
    /// In base-offset order.
    entries: Mutex<VecDeque<CachedEntry>>,
}

/// One bucket's part of the tail cache.
pub struct BucketTail {
    inner: Arc<BucketTailInner>,
}

impl BucketTail {
    /// Keeps a just-appended entry (its entry header, IPC message header and body). Call after
    /// the entry's bytes were written to its segment, in append order (under the bucket's
    /// append lock). Entries larger than the whole budget, and entries without records, are not
    /// kept (nothing is copied for them): the kept ones have strictly increasing base offsets.
    pub fn insert(&self, header: BatchHeader, meta: &[u8], body: &Bytes) {
        let cache = &self.inner.cache;
        let bytes = (meta.len() + body.len()) as u64;
        // A zero-record entry (an idempotent primary-key write that changed nothing) shares its
        // base offset with the next entry and is never read: keeping it would answer a lookup
        // of that offset with no rows.
        if bytes > cache.budget || header.record_count == 0 {
            return;
        }
        // A small body stored as sent is a slice of a receive buffer that may hold other
        // messages: copied, so the cache pins no more memory than it counts.
        let body = match body.len() < COPY_BODIES_BELOW {
            true => Bytes::copy_from_slice(body),
            false => body.clone(),
        };
        let entry = CachedEntry { header, meta: Bytes::copy_from_slice(meta), body };
        let base_offset = header.base_offset;
        self.inner.entries.lock().push_back(entry);
        let victims: Vec<(Weak<BucketTailInner>, u64, u64)> = {
            let mut fifo = cache.fifo.lock();
            fifo.order.push_back((Arc::downgrade(&self.inner), base_offset, bytes));
            fifo.held += bytes;
            let mut victims = Vec::new();
            while fifo.held > cache.budget {
                let victim = fifo.order.pop_front().expect("held bytes are in the queue");
                fifo.held -= victim.2;
                victims.push(victim);
            }
            victims
        };
        for (bucket, base_offset, _) in victims {
            if let Some(bucket) = bucket.upgrade() {
                let mut entries = bucket.entries.lock();
                while entries.front().is_some_and(|e| e.header.base_offset <= base_offset) {
                    entries.pop_front();
                }
            }
        }
    }

    /// The cached entries with these base offsets (`None` where not cached), in order.
    pub fn get_many(&self, base_offsets: impl Iterator<Item = u64>) -> Vec<Option<CachedEntry>> {
        let entries = self.inner.entries.lock();
        let found: Vec<Option<CachedEntry>> = base_offsets
            .map(|base| {
                let at = entries.partition_point(|e| e.header.base_offset < base);
                entries.get(at).filter(|e| e.header.base_offset == base).cloned()
            })
            .collect();
        drop(entries);
        let hits = found.iter().filter(|f| f.is_some()).count() as u64;
        self.inner.cache.hits.fetch_add(hits, Ordering::Relaxed);
        self.inner.cache.misses.fetch_add(found.len() as u64 - hits, Ordering::Relaxed);
        found
    }

    /// Drops the entries below `offset` (their segments were deleted by retention).
    pub fn forget_below(&self, offset: u64) {
        let mut entries = self.inner.entries.lock();
        while entries.front().is_some_and(|e| e.header.next_offset() <= offset) {
            entries.pop_front();
        }
    }

    /// Whether this bucket holds no entry (tests).
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.inner.entries.lock().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inserts `e` as an append would.
    fn insert(bucket: &BucketTail, e: CachedEntry) {
        bucket.insert(e.header, &e.meta, &e.body);
    }

    fn entry(base_offset: u64, body_len: usize) -> CachedEntry {
        let header = BatchHeader {
            compression: 0,
            column_count: 1,
            meta_len: 0,
            body_len: body_len as u32,
            base_offset,
            record_count: 10,
            schema_id: 0,
            max_timestamp: 0,
            writer_id: -1,
            sequence: -1,
            meta_crc: 0,
            body_crc: 0,
        };
        CachedEntry { header, meta: Bytes::new(), body: Bytes::from(vec![7u8; body_len]) }
    }

    fn bases(found: &[Option<CachedEntry>]) -> Vec<Option<u64>> {
        found.iter().map(|f| f.as_ref().map(|e| e.header.base_offset)).collect()
    }

    #[test]
    fn given_appends_beyond_the_budget_when_read_should_keep_only_the_newest_across_buckets() {
        let cache = TailCache::new(300);
        let (a, b) = (cache.bucket(), cache.bucket());
        insert(&a, entry(0, 100));
        insert(&b, entry(0, 100));
        insert(&a, entry(10, 100));
        assert_eq!(cache.stats().held_bytes, 300);
        // The fourth entry evicts the oldest one, bucket a's first.
        insert(&b, entry(10, 100));
        assert_eq!(bases(&a.get_many([0, 10].into_iter())), vec![None, Some(10)]);
        assert_eq!(bases(&b.get_many([0, 10, 20].into_iter())), vec![Some(0), Some(10), None]);
        let stats = cache.stats();
        assert_eq!((stats.held_bytes, stats.hits, stats.misses), (300, 3, 2));
    }

    #[test]
    fn given_an_entry_larger_than_the_budget_when_inserted_should_not_be_kept() {
        let cache = TailCache::new(50);
        let a = cache.bucket();
        insert(&a, entry(0, 100));
        assert!(a.is_empty());
        assert_eq!(cache.stats().held_bytes, 0);
        let off = TailCache::disabled().bucket();
        insert(&off, entry(0, 1));
        assert!(off.is_empty());
    }

    #[test]
    fn given_a_dropped_bucket_when_its_slots_come_up_should_evict_nothing_else() {
        let cache = TailCache::new(200);
        let a = cache.bucket();
        insert(&a, entry(0, 100));
        drop(a);
        let b = cache.bucket();
        insert(&b, entry(0, 100));
        insert(&b, entry(10, 100));
        // a's ghost slot went first: both of b's entries are still there.
        assert_eq!(bases(&b.get_many([0, 10].into_iter())), vec![Some(0), Some(10)]);
        assert_eq!(cache.stats().held_bytes, 200);
    }

    /// Regression (seen in CI as a Flink job restored from a savepoint that never saw the rows
    /// written after a no-op idempotent upsert): a zero-record entry and the entry after it
    /// share a base offset, and the cache answered that offset with the empty one.
    #[test]
    fn given_a_zero_record_entry_when_the_next_entry_shares_its_offset_should_answer_with_the_records() {
        let cache = TailCache::new(1000);
        let a = cache.bucket();
        insert(&a, entry(0, 10));
        let mut empty = entry(10, 0);
        empty.header.record_count = 0;
        insert(&a, empty);
        insert(&a, entry(10, 10));
        let found = a.get_many([10].into_iter());
        assert_eq!(found[0].as_ref().map(|e| e.header.record_count), Some(10));
    }

    #[test]
    fn given_retention_when_forgetting_below_an_offset_should_drop_only_older_entries() {
        let cache = TailCache::new(1000);
        let a = cache.bucket();
        for base in [0, 10, 20] {
            insert(&a, entry(base, 10));
        }
        a.forget_below(20);
        assert_eq!(bases(&a.get_many([0, 10, 20].into_iter())), vec![None, None, Some(20)]);
        // Still counted until their slots come up, then evicting them leaves entry 20 alone.
        assert_eq!(cache.stats().held_bytes, 30);
    }
}
