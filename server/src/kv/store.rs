//! The node's RocksDB instance for primary-key tables.
//!
//! One keyspace for the node: every table bucket owns the key range under its 12-byte prefix
//! (`keys::bucket_prefix`). RocksDB's own WAL is off: the bucket log is the write-ahead log. Each
//! `apply` writes a bucket's rows together with the log offset they are applied up to in one
//! write batch, so after a crash RocksDB holds a consistent earlier state (rows and offset lost
//! together) and recovery replays the log from the recorded offset as plain puts and deletes.
//! `flush` makes the applied state durable; log retention must flush before it deletes changelog
//! segments that RocksDB may still need.

use super::keys::{bucket_prefix, prefix_end, BUCKET_PREFIX_LEN};
use crate::error::{Error, Result};
use rocksdb::{BlockBasedOptions, DBCompressionType, DataBlockIndexType, Options, ReadOptions, WriteBatch, WriteOptions, DB};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Metadata lives under table id 0, which no table has (ids start at 1).
const META_TABLE: u64 = 0;
const APPLIED_TAG: &[u8] = b"applied";

fn kv_error(e: rocksdb::Error) -> Error {
    Error::Internal(format!("RocksDB: {e}"))
}

fn applied_key(table_id: u64, bucket: u32) -> Vec<u8> {
    let mut key = bucket_prefix(META_TABLE, 0).to_vec();
    key.extend_from_slice(APPLIED_TAG);
    key.extend_from_slice(&bucket_prefix(table_id, bucket));
    key
}

/// One change to apply: a put (`Some(value)`) or a delete (`None`).
pub type KvWrite = (Vec<u8>, Option<Vec<u8>>);

pub struct KvStore {
    db: DB,
    /// Applies since the last flush, and when the latest one happened (ms since `opened`):
    /// what `flush_if_idle` decides on.
    unflushed_applies: AtomicU64,
    last_apply_ms: AtomicU64,
    opened: Instant,
}

impl KvStore {
    /// Opens (or creates) the store in `dir` with default settings.
    #[cfg(any(test, feature = "bench-internals"))]
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with(dir, &crate::config::KvConfig::default())
    }

    /// Opens the store with the node's `[kv]` settings.
    pub fn open_with(dir: &Path, config: &crate::config::KvConfig) -> Result<Self> {
        let block_cache_bytes = config.block_cache_bytes.resolve();
        tracing::info!(dir = %dir.display(), block_cache_bytes, "opening the KV store");
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
        // Closing the store does not flush it: the node flushes explicitly at a graceful
        // shutdown (after the logs are synced), and a dropped store must leave what a crash
        // leaves (the last flush), which is what recovery and the power-loss tests are built on.
        // (The Rust binding has no setter for this DB option; the options string sets it.)
        let mut options = Options::default().get_options_from_string("avoid_flush_during_shutdown=true").map_err(kv_error)?;
        options.create_if_missing(true);
        options.increase_parallelism(2);
        options.set_compression_type(DBCompressionType::Lz4);
        // LZ4 everywhere by default: a lookup that misses the block cache decompresses a block,
        // and ZSTD's decompression made uncached lookups ~1.5x slower (benchmarks.md, 10M rows)
        // for ~25 % less disk.
        options.set_bottommost_compression_type(match config.bottommost_compression {
            crate::config::KvCompression::Lz4 => DBCompressionType::Lz4,
            crate::config::KvCompression::Zstd => DBCompressionType::Zstd,
            crate::config::KvCompression::None => DBCompressionType::None,
        });
        // Lookups of keys that are not in the memtable (most of them: the memtable holds only the
        // latest writes) skip its skiplist search through a whole-key bloom filter; this also
        // makes the write path's read of the current row cheap for new keys.
        options.set_memtable_prefix_bloom_ratio(0.05);
        options.set_memtable_whole_key_filtering(true);
        let mut table = BlockBasedOptions::default();
        // Point lookups of keys that do not exist skip the data blocks.
        table.set_bloom_filter(10.0, false);
        // A hash index inside each data block answers a point lookup without a binary search
        // over the block's restart points.
        table.set_data_block_index_type(DataBlockIndexType::BinaryAndHash);
        table.set_data_block_hash_ratio(0.75);
        // HyperClockCache (auto-sized entries) scales on concurrent lookups where the LRU cache
        // serializes on its shard mutexes.
        table.set_block_cache(&rocksdb::Cache::new_hyper_clock_cache(block_cache_bytes, 0));
        table.set_cache_index_and_filter_blocks(true);
        // The newest files' filters and indexes are read by every lookup: keep them pinned.
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        options.set_block_based_table_factory(&table);
        // Opened with the default column family named, so batched reads can take its handle.
        // (`open_cf` by name would give the column family default options, not these.)
        let default_cf = rocksdb::ColumnFamilyDescriptor::new(rocksdb::DEFAULT_COLUMN_FAMILY_NAME, options.clone());
        let db = DB::open_cf_descriptors(&options, dir, [default_cf]).map_err(kv_error)?;
        Ok(Self { db, unflushed_applies: AtomicU64::new(0), last_apply_ms: AtomicU64::new(0), opened: Instant::now() })
    }

    fn write_options() -> WriteOptions {
        let mut w = WriteOptions::default();
        // The bucket log is the WAL (see the module documentation).
        w.disable_wal(true);
        w
    }

    /// Applies a bucket's changes and records `applied_offset`, atomically.
    pub fn apply(&self, table_id: u64, bucket: u32, writes: &[KvWrite], applied_offset: u64) -> Result<()> {
        let prefix = bucket_prefix(table_id, bucket);
        // Inserted in key order: the memtable's skiplist keeps a splice from the previous
        // insert, so sorted inserts skip most of a search that random ones pay in full (the
        // largest cost of an upsert in the profile of docs/benchmarks.md). The sort is stable,
        // so writes of one key keep their order and the last one wins.
        let mut order: Vec<usize> = (0..writes.len()).collect();
        order.sort_by(|&a, &b| writes[a].0.cmp(&writes[b].0));
        let mut batch = WriteBatch::default();
        for (key, value) in order.into_iter().map(|i| &writes[i]) {
            if !key.starts_with(&prefix) {
                return Err(Error::Internal(format!("key outside table {table_id} bucket {bucket}")));
            }
            match value {
                Some(v) => batch.put(key, v),
                None => batch.delete(key),
            }
        }
        batch.put(applied_key(table_id, bucket), applied_offset.to_le_bytes());
        self.db.write_opt(batch, &Self::write_options()).map_err(kv_error)?;
        self.last_apply_ms.store(self.opened.elapsed().as_millis() as u64, Ordering::Relaxed);
        self.unflushed_applies.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// The log offset the bucket is applied up to (None: nothing applied yet).
    pub fn applied_offset(&self, table_id: u64, bucket: u32) -> Result<Option<u64>> {
        match self.db.get(applied_key(table_id, bucket)).map_err(kv_error)? {
            None => Ok(None),
            Some(v) => {
                let bytes: [u8; 8] = v.as_slice().try_into().map_err(|_| Error::DataLoss {
                    location: format!("KV applied offset of table {table_id} bucket {bucket}"),
                    detail: format!("{} bytes instead of 8", v.len()),
                })?;
                Ok(Some(u64::from_le_bytes(bytes)))
            }
        }
    }

    #[cfg(any(test, feature = "bench-internals"))]
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.get(key).map_err(kv_error)
    }

    #[cfg(any(test, feature = "bench-internals"))]
    /// Looks up many keys in one call (RocksDB batches the block reads).
    pub fn multi_get(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        let mut out = Vec::with_capacity(keys.len());
        self.multi_get_each(keys, |_, value| {
            out.push(value.map(<[u8]>::to_vec));
            Ok(())
        })?;
        Ok(out)
    }

    /// Looks up many keys in one batched read and calls `f(index, value)` for every key in
    /// order, with the value pinned in RocksDB's block cache (no copy).
    pub fn multi_get_each(&self, keys: &[Vec<u8>], mut f: impl FnMut(usize, Option<&[u8]>) -> Result<()>) -> Result<()> {
        let cf = self
            .db
            .cf_handle(rocksdb::DEFAULT_COLUMN_FAMILY_NAME)
            .ok_or_else(|| Error::Internal("RocksDB has no default column family".into()))?;
        if let [key] = keys {
            // One key (an interactive point lookup): a plain pinned get skips MultiGet's
            // batching set-up, which costs more than it saves for a single key.
            let found = self.db.get_pinned_cf(cf, key).map_err(kv_error)?;
            return f(0, found.as_deref());
        }
        for (i, found) in self.db.batched_multi_get_cf(cf, keys, false).into_iter().enumerate() {
            match found.map_err(kv_error)? {
                Some(pinned) => f(i, Some(pinned.as_ref()))?,
                None => f(i, None)?,
            }
        }
        Ok(())
    }

    /// A consistent view for snapshot scans and lookups across buckets.
    pub fn snapshot(&self) -> KvSnapshot<'_> {
        KvSnapshot { snapshot: self.db.snapshot() }
    }

    /// Removes every row and the applied offset of a bucket (a dropped table).
    pub fn delete_bucket(&self, table_id: u64, bucket: u32) -> Result<()> {
        let prefix = bucket_prefix(table_id, bucket);
        let end = prefix_end(&prefix).ok_or_else(|| Error::Internal("bucket prefix has no end".into()))?;
        let mut batch = WriteBatch::default();
        batch.delete_range(prefix.as_slice(), end.as_slice());
        batch.delete(applied_key(table_id, bucket));
        self.db.write_opt(batch, &Self::write_options()).map_err(kv_error)?;
        // Reclaim the space now rather than whenever compactions reach the range: dropping an
        // expired partition is how a day of rows leaves the disk.
        self.db.compact_range(Some(prefix.as_slice()), Some(end.as_slice()));
        Ok(())
    }

    /// Persists everything applied so far (memtables to SST files).
    pub fn flush(&self) -> Result<()> {
        let applies = self.unflushed_applies.load(Ordering::Relaxed);
        self.db.flush().map_err(kv_error)?;
        self.unflushed_applies.fetch_sub(applies, Ordering::Relaxed);
        Ok(())
    }

    /// Flushes when something was applied since the last flush and nothing for `idle`; returns
    /// whether it flushed. Point lookups in SST files (bloom filter, block hash index, block
    /// cache) cost a fraction of a search in a large memtable skiplist, and a flushed store
    /// replays nothing at the next start: a table that was bulk-loaded and is now only read
    /// should not keep its last hundred megabytes in memtables.
    pub fn flush_if_idle(&self, idle: Duration) -> Result<bool> {
        if self.unflushed_applies.load(Ordering::Relaxed) == 0 {
            return Ok(false);
        }
        let since = self.opened.elapsed().as_millis() as u64 - self.last_apply_ms.load(Ordering::Relaxed);
        if since < idle.as_millis() as u64 {
            return Ok(false);
        }
        self.flush()?;
        Ok(true)
    }
}

/// A point-in-time view of the store.
pub struct KvSnapshot<'a> {
    snapshot: rocksdb::Snapshot<'a>,
}

impl KvSnapshot<'_> {
    #[cfg(any(test, feature = "bench-internals"))]
    pub fn multi_get(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        self.snapshot.multi_get(keys).into_iter().map(|r| r.map_err(kv_error)).collect()
    }

    /// The log offset the bucket was applied up to when the snapshot was taken.
    pub fn applied_offset(&self, table_id: u64, bucket: u32) -> Result<Option<u64>> {
        match self.snapshot.get(applied_key(table_id, bucket)).map_err(kv_error)? {
            None => Ok(None),
            Some(v) => Ok(Some(u64::from_le_bytes(v.as_slice().try_into().map_err(|_| Error::DataLoss {
                location: format!("KV applied offset of table {table_id} bucket {bucket}"),
                detail: format!("{} bytes instead of 8", v.len()),
            })?))),
        }
    }

    /// Calls `f` with every key/value pair under `prefix`, in key order, until it returns false.
    pub fn for_each_prefix(&self, prefix: &[u8], f: impl FnMut(&[u8], &[u8]) -> Result<bool>) -> Result<()> {
        self.for_each_prefix_after(prefix, None, f)
    }

    /// Like `for_each_prefix`, starting after the key `after` (which need not exist) when given.
    pub fn for_each_prefix_after(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        if prefix.len() < BUCKET_PREFIX_LEN {
            return Err(Error::Internal("a scan must stay inside one table bucket".into()));
        }
        let mut read = ReadOptions::default();
        read.set_iterate_lower_bound(prefix.to_vec());
        if let Some(end) = prefix_end(prefix) {
            read.set_iterate_upper_bound(end);
        }
        let mut it = self.snapshot.raw_iterator_opt(read);
        it.seek(after.unwrap_or(prefix));
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else { break };
            if after == Some(k) {
                it.next();
                continue;
            }
            if !f(k, v)? {
                return Ok(());
            }
            it.next();
        }
        it.status().map_err(kv_error)
    }

    #[cfg(any(test, feature = "bench-internals"))]
    /// Key/value pairs whose key starts with `prefix`, in key order, at most `limit`.
    pub fn scan_prefix(&self, prefix: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        self.for_each_prefix(prefix, |k, v| {
            if out.len() >= limit {
                return Ok(false);
            }
            out.push((k.to_vec(), v.to_vec()));
            Ok(true)
        })?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::keys::encode_key;
    use crate::kv::value::Value;
    use arrow_schema::DataType;

    fn key(table: u64, bucket: u32, user: i64, order: i64) -> Vec<u8> {
        encode_key(table, bucket, &[&Value::Int(user), &Value::Int(order)], &[&DataType::Int64, &DataType::Int64]).unwrap()
    }

    #[test]
    fn given_a_new_store_should_run_its_column_family_with_the_point_lookup_options() {
        let dir = tempfile::tempdir().unwrap();
        let _kv = KvStore::open(dir.path()).unwrap();
        // RocksDB writes the options in effect to OPTIONS-<n>; a column family opened without
        // them would show the defaults here.
        let options = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("OPTIONS-"))
            .map(|p| std::fs::read_to_string(p).unwrap())
            .expect("an OPTIONS file");
        for setting in
            ["data_block_index_type=kDataBlockBinaryAndHash", "memtable_whole_key_filtering=true", "cache_index_and_filter_blocks=true"]
        {
            assert!(options.contains(setting), "{setting} missing from the OPTIONS file");
        }
    }

    #[test]
    fn given_applies_when_idle_long_enough_should_flush_once() {
        let dir = tempfile::tempdir().unwrap();
        let kv = KvStore::open(dir.path()).unwrap();
        assert!(!kv.flush_if_idle(Duration::ZERO).unwrap(), "nothing applied yet");
        kv.apply(1, 0, &[(key(1, 0, 5, 1), Some(b"a".to_vec()))], 1).unwrap();
        assert!(!kv.flush_if_idle(Duration::from_secs(3600)).unwrap(), "written just now");
        assert!(kv.flush_if_idle(Duration::ZERO).unwrap());
        assert!(!kv.flush_if_idle(Duration::ZERO).unwrap(), "nothing new since the flush");
        kv.apply(1, 0, &[(key(1, 0, 5, 2), Some(b"b".to_vec()))], 2).unwrap();
        assert!(kv.flush_if_idle(Duration::ZERO).unwrap());
    }

    #[test]
    fn given_applied_batches_when_reopened_after_flush_should_keep_rows_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        {
            let kv = KvStore::open(dir.path()).unwrap();
            assert_eq!(kv.applied_offset(1, 0).unwrap(), None);
            kv.apply(1, 0, &[(key(1, 0, 5, 1), Some(b"a".to_vec())), (key(1, 0, 5, 2), Some(b"b".to_vec()))], 2).unwrap();
            kv.apply(1, 0, &[(key(1, 0, 5, 1), None)], 3).unwrap();
            kv.flush().unwrap();
        }
        let kv = KvStore::open(dir.path()).unwrap();
        assert_eq!(kv.applied_offset(1, 0).unwrap(), Some(3));
        assert_eq!(kv.get(&key(1, 0, 5, 1)).unwrap(), None, "the delete was applied");
        assert_eq!(kv.multi_get(&[key(1, 0, 5, 2), key(1, 0, 6, 1)]).unwrap(), vec![Some(b"b".to_vec()), None]);
        assert!(kv.apply(1, 0, &[(key(2, 0, 1, 1), Some(vec![]))], 4).is_err(), "a bucket writes only its own keys");
    }

    #[test]
    fn given_one_apply_writing_a_key_twice_out_of_key_order_should_keep_the_last_write() {
        let dir = tempfile::tempdir().unwrap();
        let kv = KvStore::open(dir.path()).unwrap();
        let (a, b) = (key(1, 0, 9, 1), key(1, 0, 2, 1));
        kv.apply(1, 0, &[(a.clone(), Some(vec![1])), (b.clone(), Some(vec![2])), (a.clone(), Some(vec![3])), (b.clone(), None)], 4)
            .unwrap();
        assert_eq!(kv.get(&a).unwrap(), Some(vec![3]), "the later put of a key wins over the earlier one");
        assert_eq!(kv.get(&b).unwrap(), None, "the later delete wins");
    }

    #[test]
    fn given_prefix_scan_on_a_snapshot_should_return_only_that_prefix_as_of_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let kv = KvStore::open(dir.path()).unwrap();
        let rows: Vec<KvWrite> =
            [(4, 9), (5, 3), (5, 1), (6, 0)].iter().map(|&(u, o)| (key(1, 0, u, o), Some(vec![u as u8, o as u8]))).collect();
        kv.apply(1, 0, &rows, 4).unwrap();
        let snapshot = kv.snapshot();
        kv.apply(1, 0, &[(key(1, 0, 5, 2), Some(vec![5, 2]))], 5).unwrap();
        let user5 = encode_key(1, 0, &[&Value::Int(5)], &[&DataType::Int64]).unwrap();
        let seen: Vec<Vec<u8>> = snapshot.scan_prefix(&user5, 100).unwrap().into_iter().map(|(_, v)| v).collect();
        assert_eq!(seen, vec![vec![5, 1], vec![5, 3]], "user 5's orders in key order, without the later write");
        assert_eq!(kv.snapshot().scan_prefix(&user5, 100).unwrap().len(), 3);
        assert_eq!(kv.snapshot().scan_prefix(&user5, 1).unwrap().len(), 1, "limit");
    }

    #[test]
    fn given_dropped_bucket_when_deleted_should_leave_other_buckets_alone() {
        let dir = tempfile::tempdir().unwrap();
        let kv = KvStore::open(dir.path()).unwrap();
        kv.apply(1, 0, &[(key(1, 0, 1, 1), Some(vec![1]))], 1).unwrap();
        kv.apply(1, 1, &[(key(1, 1, 1, 1), Some(vec![2]))], 1).unwrap();
        kv.delete_bucket(1, 0).unwrap();
        assert_eq!(kv.get(&key(1, 0, 1, 1)).unwrap(), None);
        assert_eq!(kv.applied_offset(1, 0).unwrap(), None);
        assert_eq!(kv.get(&key(1, 1, 1, 1)).unwrap(), Some(vec![2]));
    }
}
