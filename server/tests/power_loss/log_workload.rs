//! Log-table workloads: concurrent idempotent writers appending small batches to a bucketed
//! log table (ZSTD or uncompressed), or to a partitioned one whose partitions the writes
//! create; retention passes at random points. Each life checks the recovered table against
//! [`LogModel`] and resends every writer's unacknowledged batch with its original sequence.

use super::harness::{self, blocking, ensure_table, is_power_loss, LifeContext, ManualClock, Node, Tally, Workload, DB};
use super::log_model::{BucketId, LogModel, Observed, ObservedEntry, Placement};
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use strom_flight_api::{ColumnSpec, CreateTable, OffsetSpec, WriteCommand};
use strom_server::engine::{BatchIdentity, Engine, StorageEngine};

const TABLE: &str = "events";
const BUCKETS: u32 = 4;
/// The retention TTL in the node clock's time; every batch moves the clock by `CLOCK_STEP_MS`.
const TTL: &str = "30 s";
const CLOCK_STEP_MS: i64 = 700;

/// Which log table a workload writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    /// `BUCKETS` buckets by key, this compression, retention passes.
    Bucketed { compression: &'static str },
    /// Partitioned by `ds` (two buckets each), partitions created by the writes.
    Partitioned,
}

/// What the concurrent writers of one life share.
struct Shared {
    model: LogModel,
    /// The partition of every row of a partitioned table.
    partition_of: HashMap<i64, String>,
    partitions: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
struct WriterState {
    id: i64,
    next_sequence: i64,
    /// The batch (model index) whose ack never arrived.
    in_flight: Option<usize>,
}

pub struct LogWorkload {
    kind: LogKind,
    shared: Arc<Mutex<Shared>>,
    writers: Vec<WriterState>,
    /// `create_table` was acknowledged: the table must exist after every later power loss.
    table_acked: bool,
    ops_per_writer: usize,
}

impl LogWorkload {
    pub fn new(kind: LogKind, writers: usize, ops_per_writer: usize) -> Self {
        let shared = Shared { model: LogModel::new(TABLE), partition_of: HashMap::new(), partitions: vec![] };
        Self {
            kind,
            shared: Arc::new(Mutex::new(shared)),
            writers: (0..writers as i64).map(|w| WriterState { id: 100 + w, next_sequence: 0, in_flight: None }).collect(),
            table_acked: false,
            ops_per_writer,
        }
    }

    fn create_request(&self) -> CreateTable {
        let mut columns =
            vec![ColumnSpec::new("id", "BIGINT").not_null(), ColumnSpec::new("k", "BIGINT"), ColumnSpec::new("name", "STRING")];
        let (partition_keys, options, bucket_num) = match self.kind {
            LogKind::Bucketed { compression } => (
                vec![],
                [("table.log.arrow.compression.type".to_string(), compression.to_string()), ("table.log.ttl".into(), TTL.into())].into(),
                BUCKETS,
            ),
            LogKind::Partitioned => {
                columns.push(ColumnSpec::new("ds", "STRING").not_null());
                (vec!["ds".into()], Default::default(), 2)
            }
        };
        CreateTable {
            database: DB.into(),
            table: TABLE.into(),
            columns,
            partition_keys,
            bucket_key: vec!["k".into()],
            bucket_num: Some(bucket_num),
            options,
            ..Default::default()
        }
    }

    /// Scans the recovered table; every row's bucket key (and partition) must be the one its
    /// id was written with.
    async fn observe(&self, engine: &Engine) -> Result<Observed, String> {
        // The ids and bucket keys only: the scan still checks the CRC of every column it reads,
        // and a debug build spends most of a life decoding what it scans.
        let columns: &[&str] = if self.kind == LogKind::Partitioned { &["id", "k", "ds"] } else { &["id", "k"] };
        let chunks = harness::scan_all(engine, TABLE, Some(columns)).await.map_err(|e| format!("a scan after recovery failed: {e}"))?;
        let start = harness::offsets(engine, TABLE, OffsetSpec::Earliest).map_err(|e| e.to_string())?;
        let end = harness::offsets(engine, TABLE, OffsetSpec::Latest).map_err(|e| e.to_string())?;
        let shared = self.shared.lock();
        let mut entries = Vec::with_capacity(chunks.len());
        for (chunk, batch) in chunks {
            let bucket: BucketId = (chunk.partition.clone(), chunk.bucket);
            let ids = batch.column_by_name("id").ok_or("no id column")?.as_primitive::<Int64Type>();
            let keys = batch.column_by_name("k").ok_or("no k column")?.as_primitive::<Int64Type>();
            for r in 0..batch.num_rows() {
                let id = ids.value(r);
                if keys.value(r) != key_of(id) {
                    return Err(format!(
                        "{bucket:?} offset {}: row {id} holds k={}: not what was written",
                        chunk.base_offset + r as u64,
                        keys.value(r)
                    ));
                }
                if let Some(ds) = batch.column_by_name("ds") {
                    let (ds, expected) = (ds.as_string::<i32>().value(r), shared.partition_of.get(&id));
                    if Some(ds) != expected.map(String::as_str) || chunk.partition.as_deref() != Some(ds) {
                        return Err(format!("{bucket:?}: row {id} has ds={ds:?}, written as {expected:?}"));
                    }
                }
            }
            entries.push(ObservedEntry { bucket, base: chunk.base_offset, rows: ids.values().to_vec() });
        }
        Ok(Observed { entries, start, end })
    }
}

/// The batch of rows `ids` (with their partitions, for a partitioned table).
fn batch_of(ids: &[i64], partition_of: Option<&HashMap<i64, String>>) -> RecordBatch {
    let mut fields =
        vec![Field::new("id", DataType::Int64, false), Field::new("k", DataType::Int64, true), Field::new("name", DataType::Utf8, true)];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(ids.iter().copied())),
        Arc::new(Int64Array::from_iter_values(ids.iter().map(|&id| key_of(id)))),
        Arc::new(StringArray::from_iter_values(ids.iter().map(|&id| name_of(id)))),
    ];
    if let Some(partition_of) = partition_of {
        fields.push(Field::new("ds", DataType::Utf8, false));
        columns.push(Arc::new(StringArray::from_iter_values(ids.iter().map(|id| partition_of[id].clone()))));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("a valid batch")
}

/// The bucket key of a row: spreads rows over the buckets.
fn key_of(id: i64) -> i64 {
    id.wrapping_mul(2_654_435_761) % 1009
}

/// The payload of a row: its id and a filler of varying length (entries of varying sizes).
fn name_of(id: i64) -> String {
    format!("row-{id}:{}", "x".repeat((id % 41) as usize))
}

fn command() -> WriteCommand {
    WriteCommand::append(DB, TABLE)
}

/// One writer's life: resend its batch in flight, then `ops` random operations. Returns its
/// state for the next life; stops at the first simulated power loss.
async fn writer_life(
    w: Arc<WriterCtx>,
    mut state: WriterState,
    resend: Option<(usize, BTreeMap<BucketId, Placement>)>,
    seed: u64,
    ops: usize,
) -> (WriterState, Tally) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tally = Tally::default();
    let ctx = &w.ctx;
    if let Some((index, stored)) = resend {
        let (sequence, ids) = {
            let shared = w.shared.lock();
            let batch = shared.model.batch(index);
            (batch.sequence, batch.rows.clone())
        };
        let batch = w.batch_of(&ids);
        match harness::write(&w.engine, &command(), batch, BatchIdentity { writer_id: state.id, sequence }).await {
            Ok(ack) => {
                if let Err(e) = w.shared.lock().model.check_resend(index, &stored, &w.recovered_end, &ack) {
                    panic!("{ctx}\nresend of writer {}: {e}", state.id);
                }
                tally.add(
                    if ack.duplicate {
                        "resends_duplicate"
                    } else if stored.is_empty() {
                        "resends_fresh"
                    } else {
                        "resends_partly_stored"
                    },
                    1,
                );
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
        if w.retention && state.id == 100 && rng.gen_bool(0.06) {
            let now = w.clock.now();
            let deleted = blocking(&w.engine, move |e| e.apply_retention(now)).await;
            tally.add("retention_deleted_segments", deleted as u64);
            // Retention reports its failures through `health`, not as an error.
            let failures = w.engine.health().background_failures;
            if failures.iter().any(|f| is_power_loss(&f.error)) {
                tally.add("crashed_in_retention", 1);
                return (state, tally);
            }
            assert!(failures.is_empty(), "{ctx}\nretention failed: {failures:?}");
            continue;
        }
        let rows = rng.gen_range(1..=8);
        let (index, ids) = {
            let mut shared = w.shared.lock();
            let (index, ids) = shared.model.send(state.next_sequence, rows);
            if w.partitioned {
                if shared.partitions.is_empty() || rng.gen_bool(0.08) {
                    let name = format!("d{}", shared.partitions.len());
                    shared.partitions.push(name);
                    tally.add("new_partitions", 1);
                }
                for &id in &ids {
                    // Mostly the newest partitions, sometimes an old one.
                    let n = shared.partitions.len();
                    let p = shared.partitions[n - 1 - rng.gen_range(0..n.min(3))].clone();
                    shared.partition_of.insert(id, p);
                }
            }
            (index, ids)
        };
        state.in_flight = Some(index);
        let id = BatchIdentity { writer_id: state.id, sequence: state.next_sequence };
        state.next_sequence += 1;
        w.clock.advance(CLOCK_STEP_MS);
        match harness::write(&w.engine, &command(), w.batch_of(&ids), id).await {
            Ok(ack) => {
                if ack.duplicate {
                    panic!("{ctx}\nwriter {} batch {index}: a new sequence was acked as a duplicate: {ack:?}", state.id);
                }
                if let Err(e) = w.shared.lock().model.ack(index, &ack) {
                    panic!("{ctx}\n{e}");
                }
                state.in_flight = None;
                tally.add("acked_batches", 1);
            }
            Err(e) if is_power_loss(&e) => {
                tally.add("crashed_in_write", 1);
                return (state, tally);
            }
            Err(e) => panic!("{ctx}\nwriter {} batch {index} failed: {e}", state.id),
        }
    }
    (state, tally)
}

/// What a writer task needs of its life.
struct WriterCtx {
    engine: Arc<Engine>,
    shared: Arc<Mutex<Shared>>,
    ctx: LifeContext,
    recovered_end: BTreeMap<BucketId, u64>,
    partitioned: bool,
    retention: bool,
    clock: ManualClock,
}

impl WriterCtx {
    fn batch_of(&self, ids: &[i64]) -> RecordBatch {
        let shared = self.shared.lock();
        batch_of(ids, self.partitioned.then_some(&shared.partition_of))
    }
}

impl Workload for LogWorkload {
    fn crash_points(&self) -> u64 {
        // Measured: a whole life makes ~9 mutating operations per batch (a partitioned one ~10),
        // recovery and the resends included; a little more leaves ~10 % of lives idle at the cut.
        (self.writers.len() * self.ops_per_writer) as u64 * 9 + 15
    }

    async fn life(&mut self, node: &Node, rng: &mut StdRng, ctx: &LifeContext, tally: &mut Tally) {
        let engine = &node.engine;
        if self.table_acked && engine.get_table(DB, TABLE).is_err() {
            panic!("{ctx}\nthe acknowledged table {DB}.{TABLE} is gone after recovery");
        }
        match ensure_table(engine, self.create_request()).await {
            Ok(()) => self.table_acked = true,
            Err(e) if is_power_loss(&e) => {
                tally.add("crashed_in_create_table", 1);
                return;
            }
            Err(e) => panic!("{ctx}\ncreate_table failed: {e}"),
        }
        let observed = self.observe(engine).await.unwrap_or_else(|e| panic!("{ctx}\n{e}"));
        let mut found = self.shared.lock().model.check(&observed).unwrap_or_else(|e| panic!("{ctx}\n{e}"));
        tally.add("checks", 1);
        let writer_ctx = Arc::new(WriterCtx {
            engine: engine.clone(),
            shared: self.shared.clone(),
            ctx: ctx.clone(),
            recovered_end: observed.end.clone(),
            partitioned: self.kind == LogKind::Partitioned,
            retention: matches!(self.kind, LogKind::Bucketed { .. }),
            clock: node.clock.clone(),
        });
        let tasks: Vec<_> = self
            .writers
            .iter()
            .map(|&state| {
                let resend = state.in_flight.map(|index| (index, found.remove(&index).unwrap_or_default()));
                tokio::spawn(writer_life(
                    writer_ctx.clone(),
                    state,
                    resend,
                    rng.gen(),
                    if ctx.check_only { 0 } else { self.ops_per_writer },
                ))
            })
            .collect();
        for (slot, task) in tasks.into_iter().enumerate() {
            let (state, writer_tally) = task.await.unwrap_or_else(|e| panic!("{ctx}\na writer task failed: {e}"));
            self.writers[slot] = state;
            tally.merge(&writer_tally);
        }
        if let Some(index) = found.keys().next() {
            panic!("{ctx}\nbatch {index} is in flight but no writer holds it");
        }
    }
}
