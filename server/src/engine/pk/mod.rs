//! Primary-key tables: the KV side of a table runtime.
//!
//! A write is merged with the current row of its key (`kv::merge`) under the bucket's KV lock;
//! the change records it emits are appended to the bucket's log (the write-ahead log); once
//! they are durable the new rows are applied to RocksDB together with the log offset they are
//! applied up to, and only then is the write acknowledged (read-your-writes for lookups).
//!
//! Between append and apply, the merged rows wait in the bucket's *overlay*, so the next write
//! of the same key merges with them rather than with the older stored row. Applies happen in
//! log order (a queue per bucket) whoever triggers them: the acknowledging request, or the
//! background flusher for writes whose client went away.

pub(crate) mod auto_increment;
mod json;
mod merge_rows;
pub(crate) mod read;
pub(crate) mod recover;
pub(crate) mod write;

use crate::catalog::pk::PkSpec;
use crate::error::Result;
use crate::kv::store::{KvStore, KvWrite};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use auto_increment::AutoIncrement;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use strom_flight_api::CHANGE_TYPE_COLUMN;

/// A primary-key write operation (per DoPut stream or lookup).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PkOp {
    /// Full rows (`targets` None) or a partial update of the listed column positions.
    Upsert { targets: Option<Vec<usize>> },
    /// Keys to delete.
    Delete,
    /// Keys to insert when absent (key, auto-increment id, nulls elsewhere).
    InsertIfAbsent,
}

/// Changes merged and appended but not yet applied to RocksDB.
struct Unapplied {
    end_offset: u64,
    writes: Vec<KvWrite>,
}

/// The KV side of one bucket: the state merges read and change (`state`), and a lock that
/// puts RocksDB applies in log order (`applying`). An apply holds `state` only to take its
/// queued writes and, afterwards, to retire their overlay entries: the next batch merges while
/// RocksDB takes the previous one (they ran one after the other on one core before).
#[derive(Default)]
struct BucketKv {
    state: Mutex<KvBucketState>,
    applying: Mutex<()>,
}

impl BucketKv {
    /// See [`PkTable::has_unapplied`].
    fn has_unapplied(&self) -> bool {
        // The queue first, then the apply lock. An apply takes `applying` before it pops and
        // keeps it until RocksDB has the rows, so once this sees the queue without an entry
        // (under `state`, after the pop), `applying` is still held or the write is done. The
        // other order misses an apply that locks and pops between the two reads.
        let queued = !self.state.lock().unapplied.is_empty();
        queued || self.applying.is_locked()
    }
}

#[derive(Default)]
struct KvBucketState {
    /// Key → (end offset of the log entry that wrote it, encoded row or None for deleted).
    overlay: HashMap<Vec<u8>, (u64, Option<Vec<u8>>)>,
    /// In log order.
    unapplied: VecDeque<Unapplied>,
}

/// The primary-key part of a table runtime.
pub(crate) struct PkTable {
    pub spec: PkSpec,
    pub table_id: u64,
    /// The table's columns (what upserts write and lookups return).
    pub row_schema: SchemaRef,
    /// The row columns plus `_change_type`: what the bucket logs store.
    pub changelog_schema: SchemaRef,
    pub kv: Arc<KvStore>,
    key_types: Vec<DataType>,
    /// Column count per schema id (how many columns a stored row of that id encodes).
    pub schema_columns: crate::kv::value::SchemaColumns,
    /// Shared with the `PkTable` of the next schema version (`evolve`): one lock, overlay and
    /// apply queue per bucket whatever schema a write started with.
    buckets: Arc<Vec<BucketKv>>,
    auto_increment: Option<Arc<AutoIncrement>>,
}

/// The schema of a primary-key table's changelog.
pub(crate) fn changelog_schema(row_schema: &Schema) -> SchemaRef {
    let mut fields: Vec<Field> = row_schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(CHANGE_TYPE_COLUMN, DataType::Utf8, false));
    Arc::new(Schema::new(fields))
}

impl PkTable {
    /// The KV side of `meta`'s table (its current schema version), whose files (the
    /// auto-increment reservation) live in `table_dir` on `fs`.
    pub fn new(
        spec: PkSpec,
        meta: &crate::catalog::TableMeta,
        row_schema: SchemaRef,
        kv: Arc<KvStore>,
        table_dir: &Path,
        fs: Arc<dyn crate::fs::FileSystem>,
    ) -> Result<Self> {
        let (table_id, schema_columns, bucket_num) = (meta.table_id, meta.schema_columns.clone(), meta.bucket_num);
        let key_types = spec.key.iter().map(|&k| row_schema.field(k).data_type().clone()).collect();
        let auto_increment = match spec.auto_increment {
            Some(column) => Some(Arc::new(AutoIncrement::open(fs, table_dir, column, row_schema.field(column).data_type())?)),
            None => None,
        };
        Ok(Self {
            changelog_schema: changelog_schema(&row_schema),
            spec,
            table_id,
            row_schema,
            kv,
            key_types,
            schema_columns: Arc::new(schema_columns),
            buckets: Arc::new((0..bucket_num).map(|_| BucketKv::default()).collect()),
            auto_increment,
        })
    }

    /// The same table after columns were added: new shape, same KV state.
    pub fn evolve(&self, spec: PkSpec, row_schema: SchemaRef, schema_columns: std::collections::BTreeMap<u32, usize>) -> Self {
        Self {
            changelog_schema: changelog_schema(&row_schema),
            key_types: self.key_types.clone(),
            spec,
            table_id: self.table_id,
            row_schema,
            kv: self.kv.clone(),
            schema_columns: Arc::new(schema_columns),
            buckets: self.buckets.clone(),
            auto_increment: self.auto_increment.clone(),
        }
    }

    /// Decodes a stored row to the current columns (columns added after it was written are
    /// null).
    pub fn decode(&self, bytes: &[u8]) -> Result<Vec<crate::kv::value::Value>> {
        let fields = self.row_schema.fields();
        let stored = crate::kv::value::stored_columns(bytes, fields, &self.schema_columns)?;
        crate::kv::value::decode_row_padded(bytes, fields, stored)
    }

    /// How many columns stored data (a row, a changelog entry) of `schema_id` holds.
    pub fn columns_of(&self, schema_id: u32) -> Result<usize> {
        crate::kv::value::schema_width(&self.schema_columns, schema_id, self.row_schema.fields())
    }

    /// The storage key of `row` (a full-width row) in `bucket`.
    pub fn key_of(&self, bucket: u32, row: &[crate::kv::value::Value]) -> Result<Vec<u8>> {
        let values: Vec<&crate::kv::value::Value> = self.spec.key.iter().map(|&k| &row[k]).collect();
        let types: Vec<&DataType> = self.key_types.iter().collect();
        crate::kv::keys::encode_key(self.table_id, bucket, &values, &types)
    }

    /// Applies, in log order, every queued change of `bucket` whose log entry ends at or below
    /// `upto` (which must be durable), with the applied offset, in one RocksDB write batch.
    pub fn apply_through(&self, bucket: u32, upto: u64) -> Result<()> {
        let kv = &self.buckets[bucket as usize];
        // One apply at a time per bucket, so RocksDB receives the entries in log order. Merges go
        // on meanwhile: the overlay keeps every row being applied until RocksDB has it.
        let _applying = kv.applying.lock();
        let (writes, applied) = {
            let mut state = kv.state.lock();
            let mut writes: Vec<KvWrite> = Vec::new();
            let mut applied = None;
            while state.unapplied.front().is_some_and(|u| u.end_offset <= upto) {
                let u = state.unapplied.pop_front().expect("checked");
                writes.extend(u.writes);
                applied = Some(u.end_offset);
            }
            (writes, applied)
        };
        let Some(applied) = applied else { return Ok(()) };
        self.kv.apply(self.table_id, bucket, &writes, applied)?;
        // Keys written again by a later, still unapplied entry keep their newer overlay value.
        let mut state = kv.state.lock();
        for (key, _) in &writes {
            if state.overlay.get(key).is_some_and(|(end, _)| *end <= applied) {
                state.overlay.remove(key);
            }
        }
        Ok(())
    }

    /// Whether `bucket` has merged changes not yet in RocksDB: queued ones, or ones another
    /// thread has taken off the queue and is writing now. An ack must wait for the latter too
    /// (lookups read RocksDB): `apply_through` holds `applying` from the pop to the end of the
    /// write, so a caller that sees it held and then calls `apply_through` waits for that write.
    pub fn has_unapplied(&self, bucket: u32) -> bool {
        self.buckets[bucket as usize].has_unapplied()
    }

    /// Removes the table's rows from RocksDB (a dropped table).
    pub fn delete_data(&self) -> Result<()> {
        for b in 0..self.buckets.len() as u32 {
            self.kv.delete_bucket(self.table_id, b)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{BucketKv, Unapplied};

    #[test]
    fn given_an_apply_in_flight_with_its_queue_taken_when_asked_should_still_have_unapplied_changes() {
        let kv = BucketKv::default();
        assert!(!kv.has_unapplied(), "a new bucket has nothing to apply");
        kv.state.lock().unapplied.push_back(Unapplied { end_offset: 3, writes: Vec::new() });
        assert!(kv.has_unapplied(), "queued changes");
        // What apply_through does: take `applying`, pop the queue, write RocksDB outside `state`.
        let applying = kv.applying.lock();
        kv.state.lock().unapplied.clear();
        assert!(kv.has_unapplied(), "popped but not yet in RocksDB: an ack must wait for this apply");
        drop(applying);
        assert!(!kv.has_unapplied(), "written and released");
    }
}
