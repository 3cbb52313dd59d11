//! The primary-key workload: three tables in one engine (one RocksDB) — last-row with full and
//! partial upserts and deletes (two writers on disjoint keys), a `sum`/`max` aggregation, and
//! an auto-increment id — written by idempotent writers, with KV flushes at random points,
//! retention passes in some episodes and a deleted KV store before some boots in the others.
//!
//! Each life checks, per table: the snapshot against [`PkModel`] (every acknowledged write,
//! and each bucket part of a batch in flight all or nothing); the changelog (offsets gap-free
//! and stable, every acknowledged entry still where its ack put it, and — while the log still
//! starts at 0 — that replaying it from scratch gives exactly the snapshot); then the resend
//! of each batch in flight (the buckets found applied are answered as stored, the others are
//! written fresh, so nothing is counted twice) and point lookups of its keys.

use super::harness::{self, blocking, ensure_table, is_power_loss, LifeContext, ManualClock, Node, Tally, Workload, DB};
use super::pk_model::{int, PkInFlight, PkKind, PkModel, PkWrite, Row, Value};
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use strom_flight_api::{
    ColumnSpec, CreateTable, LookupKind, LookupRequest, OffsetSpec, PutAck, SnapshotScan, WriteCommand, WriteKind, CHANGE_TYPE_COLUMN,
};
use strom_server::engine::{BatchIdentity, Engine, StorageEngine};

const KINDS: [PkKind; 3] = [PkKind::LastRow, PkKind::Aggregation, PkKind::AutoIncrement];
/// Every table's keys are below this (the writers' key ranges).
const KEYS_PER_TABLE: i64 = 24;
const BUCKETS: u32 = 4;
const TTL: &str = "20 s";
const CLOCK_STEP_MS: i64 = 900;

#[derive(Debug, Clone)]
struct PkWriterState {
    table: usize,
    id: i64,
    keys: Range<i64>,
    next_sequence: i64,
    in_flight: Option<PkInFlight>,
}

pub struct PkWorkload {
    models: Vec<Arc<Mutex<PkModel>>>,
    writers: Vec<PkWriterState>,
    /// `create_table` of every table was acknowledged.
    tables_acked: bool,
    /// This episode's last-row table has a TTL and retention runs (so its changelog no longer
    /// starts at 0 and the KV store is never deleted: recovery would rightly refuse).
    retention: bool,
    ops_per_writer: usize,
}

impl PkWorkload {
    pub fn new(rng: &mut StdRng, ops_per_writer: usize) -> Self {
        let writer = |table: usize, id: i64, keys: Range<i64>| PkWriterState { table, id, keys, next_sequence: 0, in_flight: None };
        Self {
            models: KINDS.iter().map(|&k| Arc::new(Mutex::new(PkModel::new(k)))).collect(),
            writers: vec![writer(0, 1, 0..12), writer(0, 2, 12..24), writer(1, 3, 0..10), writer(2, 4, 0..14)],
            tables_acked: false,
            retention: rng.gen_bool(0.3),
            ops_per_writer,
        }
    }

    fn create_request(&self, kind: PkKind) -> CreateTable {
        let types = match kind {
            PkKind::LastRow => ["BIGINT", "BIGINT", "STRING"],
            _ => ["BIGINT", "BIGINT", "BIGINT"],
        };
        let mut options: BTreeMap<String, String> = BTreeMap::new();
        match kind {
            PkKind::LastRow if self.retention => {
                options.insert("table.log.ttl".into(), TTL.into());
            }
            PkKind::LastRow => {}
            PkKind::Aggregation => {
                options.insert("table.merge-engine".into(), "aggregation".into());
                options.insert("fields.total.agg".into(), "sum".into());
                options.insert("fields.hi.agg".into(), "max".into());
            }
            PkKind::AutoIncrement => {
                options.insert("auto-increment.fields".into(), "uid".into());
            }
        }
        CreateTable {
            database: DB.into(),
            table: kind.table().into(),
            columns: kind.columns().iter().zip(types).map(|(name, t)| ColumnSpec::new(*name, t)).collect(),
            primary_key: vec!["id".into()],
            bucket_num: Some(BUCKETS),
            options,
            ..Default::default()
        }
    }
}

fn value_at(column: &dyn Array, row: usize) -> Value {
    if column.is_null(row) {
        return Value::Null;
    }
    match column.data_type() {
        DataType::Int64 => Value::Int(column.as_primitive::<Int64Type>().value(row)),
        DataType::Utf8 => Value::Str(column.as_string::<i32>().value(row).to_string()),
        other => panic!("the model has no {other} column"),
    }
}

fn rows_of(kind: PkKind, batch: &RecordBatch) -> Vec<Row> {
    let columns: Vec<&ArrayRef> = kind.columns().iter().map(|c| batch.column_by_name(c).expect("every table column")).collect();
    (0..batch.num_rows()).map(|r| columns.iter().map(|c| value_at(c.as_ref(), r)).collect()).collect()
}

/// The batch a write sends: the key and the columns it writes.
fn batch_of(kind: PkKind, write: &PkWrite, rows: &[Row]) -> RecordBatch {
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for c in write.columns(kind) {
        let name = kind.columns()[c];
        if kind == PkKind::LastRow && c == 2 {
            fields.push(Field::new(name, DataType::Utf8, true));
            arrays.push(Arc::new(StringArray::from_iter(rows.iter().map(|r| match &r[c] {
                Value::Str(s) => Some(s.clone()),
                _ => None,
            }))));
        } else {
            fields.push(Field::new(name, DataType::Int64, true));
            arrays.push(Arc::new(Int64Array::from_iter(rows.iter().map(|r| int(&r[c])))));
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("a valid batch")
}

fn command(kind: PkKind, write: &PkWrite) -> WriteCommand {
    let mut command = WriteCommand::append(DB, kind.table());
    command.write = if *write == PkWrite::Delete { WriteKind::Delete } else { WriteKind::Upsert };
    if let PkWrite::Partial(targets) = write {
        command.target_columns = Some(targets.iter().map(|&c| kind.columns()[c].to_string()).collect());
    }
    command
}

/// A random write of one writer: its kind, and rows of keys in its range.
fn random_write(kind: PkKind, keys: &Range<i64>, rng: &mut StdRng) -> (PkWrite, Vec<Row>) {
    let write = match (kind, rng.gen_range(0..100)) {
        (_, 0..=17) => PkWrite::Delete,
        (PkKind::LastRow, 18..=42) => PkWrite::Partial(match rng.gen_range(0..3) {
            0 => vec![1],
            1 => vec![2],
            _ => vec![1, 2],
        }),
        _ => PkWrite::Upsert,
    };
    let rows = (0..rng.gen_range(1..=5))
        .map(|_| {
            let key = Value::Int(rng.gen_range(keys.clone()));
            match kind {
                PkKind::LastRow => vec![
                    key,
                    if rng.gen_bool(0.1) { Value::Null } else { Value::Int(rng.gen_range(0..100)) },
                    if rng.gen_bool(0.2) {
                        Value::Null
                    } else {
                        Value::Str(["a", "bb", "ccc"][rng.gen_range(0..3)].repeat(rng.gen_range(1..4)))
                    },
                ],
                PkKind::Aggregation => vec![key, Value::Int(rng.gen_range(-5..=20)), Value::Int(rng.gen_range(0..1000))],
                PkKind::AutoIncrement => vec![key, Value::Null, Value::Int(rng.gen_range(0..100))],
            }
        })
        .collect();
    (write, rows)
}

/// The current rows of the table by key, with their buckets.
async fn snapshot(engine: &Engine, kind: PkKind) -> Result<BTreeMap<i64, (u32, Row)>, String> {
    let req = SnapshotScan { database: DB.into(), table: kind.table().into(), ..Default::default() };
    let mut stream = engine.snapshot_scan(&req).map_err(|e| format!("{}: snapshot scan failed: {e}", kind.table()))?;
    let mut out = BTreeMap::new();
    while let Some(chunk) = stream.chunks.recv().await {
        let chunk = chunk.map_err(|e| format!("{}: snapshot scan failed: {e}", kind.table()))?;
        let batch = chunk.message.decode(&stream.schema).map_err(|e| e.to_string())?;
        for row in rows_of(kind, &batch) {
            let key = int(&row[0]).expect("a key");
            if out.insert(key, (chunk.bucket, row)).is_some() {
                return Err(format!("{}: key {key} appears twice in a snapshot", kind.table()));
            }
        }
    }
    Ok(out)
}

/// Point lookups of `keys`: the rows found, by key.
async fn lookup(engine: &Engine, kind: PkKind, keys: &[i64]) -> Result<BTreeMap<i64, Row>, String> {
    let req = LookupRequest { lookup: LookupKind::PrimaryKey, database: DB.into(), table: kind.table().into(), ..Default::default() };
    let handle = engine.open_lookup(&req).map_err(|e| e.to_string())?;
    let json: Vec<Vec<serde_json::Value>> = keys.iter().map(|k| vec![serde_json::json!(k)]).collect();
    let answer = handle
        .lookup(handle.keys_from_json(&json).map_err(|e| e.to_string())?, false)
        .await
        .map_err(|e| format!("{}: lookup failed: {e}", kind.table()))?;
    let batch = answer.message.decode(&handle.result_schema(false)).map_err(|e| e.to_string())?;
    Ok(rows_of(kind, &batch).into_iter().map(|r| (int(&r[0]).expect("a key"), r)).collect())
}

/// Checks the changelog of a recovered table: gap-free, every known entry where it was, and —
/// when it still starts at 0 everywhere — that replaying it (as recovery does: `+I`/`+U` put,
/// `-D` delete, `-U` skipped) gives exactly the snapshot. Returns each bucket's end.
async fn check_changelog(
    engine: &Engine,
    model: &Mutex<PkModel>,
    snapshot: &BTreeMap<i64, (u32, Row)>,
) -> Result<BTreeMap<u32, u64>, String> {
    let kind = model.lock().kind;
    let table = kind.table();
    let chunks = harness::scan_all(engine, table, None).await.map_err(|e| format!("{table}: changelog scan after recovery failed: {e}"))?;
    let start = harness::offsets(engine, table, OffsetSpec::Earliest).map_err(|e| e.to_string())?;
    let end: BTreeMap<u32, u64> =
        harness::offsets(engine, table, OffsetSpec::Latest).map_err(|e| e.to_string())?.into_iter().map(|((_, b), o)| (b, o)).collect();
    let mut model = model.lock();
    let mut at: BTreeMap<u32, u64> = start.iter().map(|((_, b), &o)| (*b, o)).collect();
    let mut replayed: BTreeMap<i64, (u32, Row)> = BTreeMap::new();
    let mut seen: BTreeMap<(u32, u64), u64> = BTreeMap::new();
    for (chunk, batch) in &chunks {
        let expected = at[&chunk.bucket];
        if chunk.base_offset != expected {
            return Err(format!(
                "{table} bucket {}: changelog entry at {} where {expected} was expected: a gap",
                chunk.bucket, chunk.base_offset
            ));
        }
        at.insert(chunk.bucket, expected + chunk.rows);
        seen.insert((chunk.bucket, chunk.base_offset), chunk.rows);
        model.learn_entry(chunk.bucket, chunk.base_offset, chunk.rows)?;
        let types = batch.column_by_name(CHANGE_TYPE_COLUMN).ok_or("no change type column")?.as_string::<i32>();
        for (r, row) in rows_of(kind, batch).into_iter().enumerate() {
            let key = int(&row[0]).expect("a key");
            model.learn_bucket(key, chunk.bucket)?;
            match types.value(r) {
                "+I" | "+U" => {
                    replayed.insert(key, (chunk.bucket, row));
                }
                "-D" => {
                    replayed.remove(&key);
                }
                "-U" => {}
                other => return Err(format!("{table}: unknown change type {other:?}")),
            }
        }
    }
    for (bucket, &e) in &end {
        if at[bucket] != e {
            return Err(format!("{table} bucket {bucket}: the changelog ends at {} but the high watermark is {e}", at[bucket]));
        }
        let s = start[&(None, *bucket)];
        for (base, records) in model.known_entries_from(*bucket, s).collect::<Vec<_>>() {
            if seen.get(&(*bucket, base)) != Some(&records) {
                return Err(format!("{table} bucket {bucket}: the changelog entry of {records} records at {base} is gone (log {s}..{e}): an acknowledged write was lost"));
            }
        }
    }
    if start.values().all(|&s| s == 0) && replayed != *snapshot {
        return Err(format!(
            "{table}: replaying the changelog from scratch does not give the snapshot:\n  replayed {replayed:?}\n  snapshot {snapshot:?}"
        ));
    }
    Ok(end)
}

/// What a writer task needs of its life.
struct WriterCtx {
    engine: Arc<Engine>,
    models: Vec<Arc<Mutex<PkModel>>>,
    ctx: LifeContext,
    /// Per table, every bucket's end after recovery.
    recovered_end: Vec<BTreeMap<u32, u64>>,
    retention: bool,
    clock: ManualClock,
}

/// Checks an ack: its rows and sequence, and that each part lies where no other entry was.
fn check_ack(model: &mut PkModel, batch: &PkInFlight, ack: &PutAck) -> Result<(), String> {
    if ack.rows != batch.rows.len() as u64 || ack.sequence != Some(batch.sequence) {
        return Err(format!("{}: batch of {} rows (sequence {}) acked as {ack:?}", model.kind.table(), batch.rows.len(), batch.sequence));
    }
    for part in &ack.buckets {
        model.learn_entry(part.bucket, part.base_offset, part.count)?;
    }
    Ok(())
}

/// The batch is acknowledged: the model takes its after-state, then reads back the ids the
/// node assigned to new keys (and checks lookups agree with the model for its keys).
async fn commit_and_read_back(w: &WriterCtx, table: usize, batch: &PkInFlight) -> Result<(), String> {
    let kind = KINDS[table];
    w.models[table].lock().commit(batch);
    let keys: Vec<i64> = batch.after.keys().copied().collect();
    let found = lookup(&w.engine, kind, &keys).await?;
    let mut model = w.models[table].lock();
    if let Some(column) = kind.assigned_column() {
        let ids = found.iter().map(|(&key, row)| {
            int(&row[column]).map(|id| (key, id)).ok_or_else(|| format!("{}: key {key} has no id: {row:?}", kind.table()))
        });
        model.read_ids(&ids.collect::<Result<Vec<_>, _>>()?)?;
    }
    for key in keys {
        let expected = model.state.get(&key);
        if expected != found.get(&key) {
            return Err(format!(
                "{}: a lookup of key {key} after its ack answers {:?}; the model says {expected:?}",
                kind.table(),
                found.get(&key)
            ));
        }
    }
    Ok(())
}

/// Checks the ack of the resend of a batch in flight against what recovery showed: a bucket
/// part found applied in the snapshot must be answered as stored (below the recovered end), a
/// part found not applied must be written fresh (at or after it): never both, never twice.
fn check_resend(kind: PkKind, applied: &BTreeMap<u32, bool>, end: &BTreeMap<u32, u64>, ack: &PutAck) -> Result<(), String> {
    let mut all_stored = true;
    let mut zero_parts = false;
    for part in &ack.buckets {
        let recovered = end.get(&part.bucket).copied().unwrap_or(0);
        // A part of no records occupies no offset: stored or fresh, it sits at the end.
        if part.count == 0 {
            zero_parts = true;
            continue;
        }
        let stored = part.base_offset < recovered;
        all_stored &= stored;
        if stored && part.base_offset + part.count > recovered {
            return Err(format!("{}: resent part {part:?} straddles the recovered end {recovered}", kind.table()));
        }
        if let Some(&was_applied) = applied.get(&part.bucket) {
            if was_applied != stored {
                return Err(format!(
                    "{} bucket {}: the snapshot showed the batch in flight applied={was_applied}, but its resend was {} (part {part:?}, recovered end {recovered})",
                    kind.table(),
                    part.bucket,
                    if stored { "answered from the log" } else { "written again" }
                ));
            }
        }
    }
    if !zero_parts && ack.duplicate != all_stored {
        return Err(format!(
            "{}: resend acked duplicate={} though its parts were stored={all_stored}: {ack:?}",
            kind.table(),
            ack.duplicate
        ));
    }
    Ok(())
}

/// One writer's life: resend its batch in flight, then random writes, KV flushes and (in
/// retention episodes) retention passes, until a simulated power loss or the budget's end.
async fn writer_life(
    w: Arc<WriterCtx>,
    mut state: PkWriterState,
    applied: BTreeMap<u32, bool>,
    seed: u64,
    ops: usize,
) -> (PkWriterState, Tally) {
    let (ctx, kind, table) = (&w.ctx, KINDS[state.table], state.table);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tally = Tally::default();
    let write_id = |sequence| BatchIdentity { writer_id: state.id, sequence };
    if let Some(batch) = state.in_flight.clone() {
        let cmd = command(kind, &batch.write);
        match harness::write(&w.engine, &cmd, batch_of(kind, &batch.write, &batch.rows), write_id(batch.sequence)).await {
            Ok(ack) => {
                let checked = check_resend(kind, &applied, &w.recovered_end[table], &ack)
                    .and_then(|()| check_ack(&mut w.models[table].lock(), &batch, &ack));
                checked.unwrap_or_else(|e| panic!("{ctx}\nresend of writer {}: {e}", state.id));
                commit_and_read_back(&w, table, &batch)
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}\nafter the resend of writer {}: {e}", state.id));
                tally.add(if ack.duplicate { "resends_duplicate" } else { "resends_written" }, 1);
                state.in_flight = None;
            }
            Err(e) if is_power_loss(&e) => {
                tally.add("crashed_in_resend", 1);
                return (state, tally);
            }
            Err(e) => panic!("{ctx}\nresend of writer {} failed: {e}", state.id),
        }
    }
    for _ in 0..ops {
        let roll = rng.gen_range(0..100);
        if roll < 10 {
            // Makes RocksDB durable up to whatever is applied now, while other writers' batches
            // are between their append and their fsync.
            w.engine.flush_kv().await.unwrap_or_else(|e| panic!("{ctx}\nflush_kv failed: {e}"));
            tally.add("kv_flushes", 1);
            continue;
        }
        if roll < 15 && w.retention && state.id == 1 {
            let now = w.clock.now();
            let deleted = blocking(&w.engine, move |e| e.apply_retention(now)).await;
            tally.add("retention_deleted_segments", deleted as u64);
            let failures = w.engine.health().background_failures;
            if failures.iter().any(|f| is_power_loss(&f.error)) {
                tally.add("crashed_in_retention", 1);
                return (state, tally);
            }
            assert!(failures.is_empty(), "{ctx}\nretention failed: {failures:?}");
            continue;
        }
        let (write, rows) = random_write(kind, &state.keys, &mut rng);
        let batch = w.models[table].lock().plan(state.next_sequence, write, rows);
        state.in_flight = Some(batch.clone());
        state.next_sequence += 1;
        w.clock.advance(CLOCK_STEP_MS);
        match harness::write(&w.engine, &command(kind, &batch.write), batch_of(kind, &batch.write, &batch.rows), write_id(batch.sequence))
            .await
        {
            Ok(ack) => {
                assert!(!ack.duplicate, "{ctx}\nwriter {}: a new sequence was acked as a duplicate: {ack:?}", state.id);
                check_ack(&mut w.models[table].lock(), &batch, &ack).unwrap_or_else(|e| panic!("{ctx}\n{e}"));
                commit_and_read_back(&w, table, &batch).await.unwrap_or_else(|e| panic!("{ctx}\n{e}"));
                state.in_flight = None;
                tally.add("acked_batches", 1);
            }
            Err(e) if is_power_loss(&e) => {
                tally.add("crashed_in_write", 1);
                return (state, tally);
            }
            Err(e) => panic!("{ctx}\nwriter {} ({}) failed: {e}", state.id, kind.table()),
        }
    }
    (state, tally)
}

impl Workload for PkWorkload {
    fn crash_points(&self) -> u64 {
        // Measured: a whole life makes ~9 mutating operations per write, recovery and resends
        // included; a little more leaves some lives idle at the cut.
        (self.writers.len() * self.ops_per_writer) as u64 * 9 + 20
    }

    fn before_boot(&mut self, data_dir: &Path, rng: &mut StdRng, tally: &mut Tally) {
        // Recovery must then rebuild every table from its changelog alone.
        let kv = data_dir.join("kv");
        if !self.retention && kv.exists() && rng.gen_bool(0.15) {
            std::fs::remove_dir_all(&kv).expect("delete the KV store");
            tally.add("kv_store_deleted", 1);
        }
    }

    async fn life(&mut self, node: &Node, rng: &mut StdRng, ctx: &LifeContext, tally: &mut Tally) {
        let engine = &node.engine;
        for kind in KINDS {
            if self.tables_acked && engine.get_table(DB, kind.table()).is_err() {
                panic!("{ctx}\nthe acknowledged table {} is gone after recovery", kind.table());
            }
        }
        for kind in KINDS {
            match ensure_table(engine, self.create_request(kind)).await {
                Ok(()) => {}
                Err(e) if is_power_loss(&e) => {
                    tally.add("crashed_in_create_table", 1);
                    return;
                }
                Err(e) => panic!("{ctx}\ncreate_table {} failed: {e}", kind.table()),
            }
        }
        self.tables_acked = true;
        let mut recovered_end = Vec::new();
        // Per writer: the buckets its batch in flight was found applied in (true) or not.
        let mut applied_of = vec![BTreeMap::new(); self.writers.len()];
        for (table, kind) in KINDS.into_iter().enumerate() {
            let snap = snapshot(engine, kind).await.unwrap_or_else(|e| panic!("{ctx}\n{e}"));
            let end = check_changelog(engine, &self.models[table], &snap).await.unwrap_or_else(|e| panic!("{ctx}\n{e}"));
            let slots: Vec<usize> =
                (0..self.writers.len()).filter(|&i| self.writers[i].table == table && self.writers[i].in_flight.is_some()).collect();
            let in_flight: Vec<&PkInFlight> = slots.iter().filter_map(|&i| self.writers[i].in_flight.as_ref()).collect();
            let sides = self.models[table].lock().check_snapshot(&snap, &in_flight).unwrap_or_else(|e| panic!("{ctx}\n{e}"));
            // Point lookups of every key a writer may write answer what the snapshot holds.
            let keys: Vec<i64> = (0..KEYS_PER_TABLE).collect();
            let found = lookup(engine, kind, &keys).await.unwrap_or_else(|e| panic!("{ctx}\n{e}"));
            let expected: BTreeMap<i64, Row> = snap.iter().map(|(k, (_, row))| (*k, row.clone())).collect();
            assert_eq!(found, expected, "{ctx}\n{}: point lookups after recovery disagree with the snapshot", kind.table());
            for (slot, side) in slots.into_iter().zip(sides) {
                applied_of[slot] = side;
            }
            recovered_end.push(end);
        }
        tally.add("checks", 1);
        let writer_ctx = Arc::new(WriterCtx {
            engine: engine.clone(),
            models: self.models.clone(),
            ctx: ctx.clone(),
            recovered_end,
            retention: self.retention,
            clock: node.clock.clone(),
        });
        let tasks: Vec<_> = self
            .writers
            .iter()
            .zip(applied_of)
            .map(|(state, applied)| {
                let ops = if ctx.check_only { 0 } else { self.ops_per_writer };
                tokio::spawn(writer_life(writer_ctx.clone(), state.clone(), applied, rng.gen(), ops))
            })
            .collect();
        for (slot, task) in tasks.into_iter().enumerate() {
            let (state, writer_tally) = task.await.unwrap_or_else(|e| panic!("{ctx}\na writer task failed: {e}"));
            self.writers[slot] = state;
            tally.merge(&writer_tally);
        }
    }
}
