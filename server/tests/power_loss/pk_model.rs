//! The model of a primary-key table under power loss: the acknowledged state of every key, the
//! batch each writer has in flight (its keys' states before and after it), the bucket of every
//! key seen, the offsets of acknowledged changelog entries, and for an auto-increment column
//! every id ever seen.
//!
//! The merge rules here are written from docs/primary-keys.md, independently of `kv::merge`:
//! last-row full and partial upserts, `sum`/`max` aggregation, auto-increment ids kept by
//! updates and assigned to new keys (unknown to the model until read back).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Str(String),
    /// An auto-increment id the node assigned and the model has not read back yet.
    Unread,
}

pub type Row = Vec<Value>;

pub fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

/// The tables of the primary-key workload. Columns: `id` BIGINT key first, then two more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PkKind {
    /// `v` BIGINT, `s` STRING; last-row merge; full and partial upserts, deletes.
    LastRow,
    /// `total` BIGINT sum, `hi` BIGINT max; a replayed change counted twice shows in `total`.
    Aggregation,
    /// `uid` BIGINT auto-increment, `v` BIGINT.
    AutoIncrement,
}

impl PkKind {
    pub fn table(self) -> &'static str {
        match self {
            PkKind::LastRow => "last_row",
            PkKind::Aggregation => "sums",
            PkKind::AutoIncrement => "auto_ids",
        }
    }

    pub fn columns(self) -> [&'static str; 3] {
        match self {
            PkKind::LastRow => ["id", "v", "s"],
            PkKind::Aggregation => ["id", "total", "hi"],
            PkKind::AutoIncrement => ["id", "uid", "v"],
        }
    }

    /// The auto-increment column, if any.
    pub fn assigned_column(self) -> Option<usize> {
        (self == PkKind::AutoIncrement).then_some(1)
    }
}

/// What a batch does to its keys.
#[derive(Debug, Clone, PartialEq)]
pub enum PkWrite {
    /// Full rows (an auto-increment column is left out: the node assigns it).
    Upsert,
    /// Only these columns (and the key).
    Partial(Vec<usize>),
    Delete,
}

impl PkWrite {
    /// The table columns a batch of this write carries.
    pub fn columns(&self, kind: PkKind) -> Vec<usize> {
        match self {
            PkWrite::Upsert => (0..3).filter(|&c| Some(c) != kind.assigned_column()).collect(),
            PkWrite::Partial(targets) => std::iter::once(0).chain(targets.iter().copied()).collect(),
            PkWrite::Delete => vec![0],
        }
    }
}

/// Applies one row of a write to the state of its key (the merge rules of the table).
pub fn merge_row(kind: PkKind, old: Option<&Row>, write: &PkWrite, row: &Row) -> Option<Row> {
    match (write, old) {
        (PkWrite::Delete, _) => None,
        (PkWrite::Partial(targets), Some(old)) => {
            Some((0..3).map(|c| if targets.contains(&c) { row[c].clone() } else { old[c].clone() }).collect())
        }
        (PkWrite::Partial(targets), None) => {
            Some((0..3).map(|c| if c == 0 || targets.contains(&c) { row[c].clone() } else { Value::Null }).collect())
        }
        (PkWrite::Upsert, None) => {
            let mut new = row.clone();
            if let Some(c) = kind.assigned_column() {
                new[c] = Value::Unread;
            }
            Some(new)
        }
        (PkWrite::Upsert, Some(old)) => Some(match kind {
            PkKind::LastRow => row.clone(),
            PkKind::Aggregation => {
                let total = match (int(&old[1]), int(&row[1])) {
                    (Some(a), Some(b)) => Value::Int(a + b),
                    (a, b) => a.or(b).map_or(Value::Null, Value::Int),
                };
                let hi = match (int(&old[2]), int(&row[2])) {
                    (Some(a), Some(b)) => Value::Int(a.max(b)),
                    (a, b) => a.or(b).map_or(Value::Null, Value::Int),
                };
                vec![row[0].clone(), total, hi]
            }
            PkKind::AutoIncrement => vec![row[0].clone(), old[1].clone(), row[2].clone()],
        }),
    }
}

/// Whether a stored row is the expected one (an unread id matches any id).
pub fn row_matches(expected: Option<&Row>, actual: Option<&Row>) -> bool {
    match (expected, actual) {
        (None, None) => true,
        (Some(e), Some(a)) => e.len() == a.len() && e.iter().zip(a).all(|(e, a)| *e == Value::Unread || e == a),
        _ => false,
    }
}

/// A batch sent and not acknowledged: what its keys were before it and would be after it.
#[derive(Debug, Clone)]
pub struct PkInFlight {
    pub sequence: i64,
    pub write: PkWrite,
    pub rows: Vec<Row>,
    pub before: BTreeMap<i64, Option<Row>>,
    pub after: BTreeMap<i64, Option<Row>>,
}

/// One primary-key table's model.
#[derive(Debug)]
pub struct PkModel {
    pub kind: PkKind,
    /// The acknowledged state (ids of keys inserted by the last batch may be `Unread`).
    pub state: BTreeMap<i64, Row>,
    /// The bucket of every key seen in a snapshot or a changelog.
    bucket_of: HashMap<i64, u32>,
    /// Every changelog entry acknowledged or seen: (bucket, base) → records.
    known_entries: BTreeMap<(u32, u64), u64>,
    /// Auto-increment ids ever read back, and the largest.
    ids_seen: HashSet<i64>,
    max_id: i64,
}

impl PkModel {
    pub fn new(kind: PkKind) -> Self {
        Self {
            kind,
            state: BTreeMap::new(),
            bucket_of: HashMap::new(),
            known_entries: BTreeMap::new(),
            ids_seen: HashSet::new(),
            max_id: 0,
        }
    }

    /// The batch's effect on its keys, from the acknowledged state.
    pub fn plan(&self, sequence: i64, write: PkWrite, rows: Vec<Row>) -> PkInFlight {
        let mut before = BTreeMap::new();
        let mut after: BTreeMap<i64, Option<Row>> = BTreeMap::new();
        for row in &rows {
            let key = int(&row[0]).expect("an integer key");
            before.entry(key).or_insert_with(|| self.state.get(&key).cloned());
            let old = after.get(&key).cloned().unwrap_or_else(|| self.state.get(&key).cloned());
            after.insert(key, merge_row(self.kind, old.as_ref(), &write, row));
        }
        PkInFlight { sequence, write, rows, before, after }
    }

    /// The batch was acknowledged: its keys take their states after it.
    pub fn commit(&mut self, batch: &PkInFlight) {
        for (key, row) in &batch.after {
            match row {
                Some(row) => self.state.insert(*key, row.clone()),
                None => self.state.remove(key),
            };
        }
    }

    /// Learns the bucket of a key (a key never moves).
    pub fn learn_bucket(&mut self, key: i64, bucket: u32) -> Result<(), String> {
        match self.bucket_of.insert(key, bucket) {
            Some(old) if old != bucket => {
                Err(format!("{}: key {key} was in bucket {old} and is now in bucket {bucket}", self.kind.table()))
            }
            _ => Ok(()),
        }
    }

    pub fn bucket_of(&self, key: i64) -> Option<u32> {
        self.bucket_of.get(&key).copied()
    }

    /// Remembers a changelog entry (acknowledged or seen); an offset never holds two entries.
    /// An entry of no records (an idempotent write that changed nothing) occupies no offset: the
    /// next entry starts at the same one, so it is not remembered.
    pub fn learn_entry(&mut self, bucket: u32, base: u64, records: u64) -> Result<(), String> {
        if records == 0 {
            return Ok(());
        }
        match self.known_entries.insert((bucket, base), records) {
            Some(old) if old != records => Err(format!(
                "{} bucket {bucket}: the changelog entry at {base} held {old} records and now {records}: an offset was reused",
                self.kind.table()
            )),
            _ => Ok(()),
        }
    }

    /// Entries known in `bucket` from `start` on (to check they are all still there).
    pub fn known_entries_from(&self, bucket: u32, start: u64) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.known_entries.range((bucket, start)..(bucket + 1, 0)).map(|(&(_, base), &n)| (base, n))
    }

    /// Reads back the ids the node assigned to the new keys of one batch (key, id): each is
    /// above every id seen before the batch — ids are reserved durably before use, so none is
    /// handed out twice, even across power losses — and none repeats. (Within a batch ids go
    /// out bucket by bucket, so they need not grow with the keys.)
    pub fn read_ids(&mut self, read: &[(i64, i64)]) -> Result<(), String> {
        let Some(column) = self.kind.assigned_column() else { return Ok(()) };
        let floor = self.max_id;
        for &(key, id) in read {
            let Some(row) = self.state.get_mut(&key) else { continue };
            if row[column] != Value::Unread {
                continue;
            }
            if id <= floor || !self.ids_seen.insert(id) {
                return Err(format!(
                    "{}: key {key} got auto-increment id {id}, but ids up to {floor} were handed out before (or {id} was)",
                    self.kind.table()
                ));
            }
            self.max_id = self.max_id.max(id);
            row[column] = Value::Int(id);
        }
        Ok(())
    }

    /// Checks a recovered snapshot (key → (bucket, row)) against the state, given the
    /// writers' batches in flight: a key of such a batch is as before it or as after it, and
    /// all keys of one batch in one bucket are on the same side (a bucket part is all or
    /// nothing). Returns, per batch, the buckets found applied (true) or not (false).
    pub fn check_snapshot(
        &mut self,
        snapshot: &BTreeMap<i64, (u32, Row)>,
        in_flight: &[&PkInFlight],
    ) -> Result<Vec<BTreeMap<u32, bool>>, String> {
        let table = self.kind.table();
        let mut sides = vec![BTreeMap::new(); in_flight.len()];
        let mut touched = HashSet::new();
        for (i, batch) in in_flight.iter().enumerate() {
            for (key, after) in &batch.after {
                touched.insert(*key);
                let (before, actual) = (batch.before[key].as_ref(), snapshot.get(key).map(|(_, r)| r));
                let (is_before, is_after) = (row_matches(before, actual), row_matches(after.as_ref(), actual));
                if !is_before && !is_after {
                    return Err(format!(
                        "{table}: key {key} of a batch in flight is {actual:?}: neither {before:?} (before it) nor {after:?} (after it)"
                    ));
                }
                let Some(bucket) = snapshot.get(key).map(|(b, _)| *b).or(self.bucket_of(*key)) else { continue };
                if is_before != is_after {
                    if let Some(other) = sides[i].insert(bucket, is_after).filter(|&other| other != is_after) {
                        return Err(format!(
                            "{table} bucket {bucket}: the batch in flight (sequence {}) is applied for some keys and not for others (key {key} applied={is_after}, another applied={other}): a torn bucket part",
                            batch.sequence
                        ));
                    }
                }
            }
        }
        for key in self.state.keys().chain(snapshot.keys()).copied().collect::<BTreeSet<_>>() {
            if touched.contains(&key) {
                continue;
            }
            let (expected, actual) = (self.state.get(&key), snapshot.get(&key).map(|(_, r)| r));
            if !row_matches(expected, actual) {
                return Err(format!("{table}: key {key} is {actual:?} after recovery; acknowledged state {expected:?}"));
            }
        }
        for (key, (bucket, _)) in snapshot {
            self.learn_bucket(*key, *bucket)?;
        }
        Ok(sides)
    }
}
