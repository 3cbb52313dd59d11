//! Crash safety of primary-key tables under load: SIGKILL the node while idempotent writers
//! upsert (and delete) concurrently, restart it on the same data directory, and check the KV
//! state against a client-side ledger of every batch sent and every acknowledgement received.
//! Then resend what was not acknowledged (same writer ids and sequences) and check that every
//! write took effect exactly once. `STROM_CRASH_CYCLES` (default 20) and `STROM_CRASH_SEED` make
//! a failure reproducible; the seed is printed in the summary line.
//!
//! # Each cycle
//! Six idempotent writers with fresh ids run on one connection: three full-row upserters and one
//! deleter on `totals` (aggregation: `total` and `cnt` summed, `last` the last value; FULL
//! changelog image), two partial-update writers on disjoint columns of `profiles` (last row; WAL
//! image), all on small shared key spaces, 4 buckets each. Once a random number (4..=90) of acks
//! arrived the node is SIGKILLed (no sleeps: the kill waits on the ack count), restarted, and
//! both tables are checked; then the unacknowledged batches are resent and both are checked
//! again. After the last cycle a graceful restart must change nothing.
//!
//! # What an acknowledgement promises (and what this test holds the node to)
//! A `PutResult` for a batch of upserts or deletes (see `docs/protocol.md`, "DoPut: upserts and
//! deletes") promises that every change record the batch caused (`+I`, `-U`, `+U`, `-D`) is in
//! its bucket's changelog and durable there (`fdatasync`ed: both tables use
//! `table.log.durability = sync`), and that the new rows were applied to the KV store before the
//! ack was sent. So after a SIGKILL and a restart an acknowledged batch is there, with all of its
//! rows, exactly once: in the changelog at the offsets its ack named, and in the KV state
//! (snapshot scans, lookups, `{"count": "rows"}`).
//!
//! A batch that was sent but not acknowledged promises nothing: each of its bucket parts may or
//! may not have survived (a batch over several buckets can come back partly; within one bucket
//! it is all or nothing, and a bucket's durable log is a prefix of what was written). Resending
//! it with the same `writer_id`/`sequence` completes it: the parts that survived are not applied
//! again, and a batch that survived whole is answered `duplicate: true`.
//!
//! # The oracle
//! Every written row carries a unique write id (`w<writer>-s<seq>-r<row>`) in a column the write
//! sets (`last` of the aggregation table; `a` or `b` of the partial-update table), so every `+I`
//! and `+U` record of the changelog names the write that caused it; deletes are identified per key
//! in send order (the deleter only deletes keys it knows exist, one delete per key in flight, so
//! every delete emits exactly one `-D`). After each restart the test reads the whole changelog and
//! replays it with the writes' values from the ledger (never from the log), in log order, folding
//! them with the table's merge rules (`sum`, `sum`, `last_value`; partial last-row updates). Every
//! record must equal that fold — a sum counted twice by recovery, or a record applied twice, makes
//! it differ — and the KV state must equal the changelog replayed as plain puts and deletes. The
//! ledger then says which writes had to be there (acknowledged ones) and which may be there.
//!
//! # Limits
//! SIGKILL ends the process, not the machine: what the node wrote with `write(2)` survives in
//! the page cache even if it was never `fdatasync`ed. So this test checks the order of the write
//! path (logged, then applied, then acknowledged), recovery and deduplication, but cannot tell an
//! ack sent after `fdatasync` from one sent after `write(2)`. The node is only killed once it
//! listens, so a crash during recovery's own replay is not covered here.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, Int64Array, RecordBatch};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use strom_flight_api::{
    AckFuture, CountKind, CountRequest, DeleteWriter, ListOffsets, LogScan, LookupOptions, OffsetSpec, SnapshotScan, StromClient,
    UpsertWriter, WriterOptions, BUCKET_COLUMN, CHANGE_TYPE_COLUMN, KEY_INDEX_COLUMN, OFFSET_COLUMN,
};
use strom_integration::fixtures::*;
use strom_integration::TestServer;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const BUCKETS: u32 = 4;
/// Every wait on the node is bounded: a hang is a failure, not a slow test.
const WAIT: Duration = Duration::from_secs(30);
/// The node's configuration: the retention task (which flushes RocksDB's memtables before it
/// looks at segments) runs every 20 ms, so a SIGKILL finds RocksDB at ever different applied
/// offsets and recovery replays the changelog from there; segments roll every 300 ms, so kills
/// also land around rolls; snapshot scans send 16 rows per batch, so buckets span batches; the
/// KV store flushes after 100 ms without applies, so some kills find it freshly flushed.
const NODE_CONFIG: &str =
    "[log]\nretention_check_interval_ms = 20\nsegment_ms = 300\n\n[kv]\nsnapshot_batch_rows = 16\nidle_flush_ms = 100\n";
/// The deleter sends its next batch once this many more acks (of any writer) arrived.
const DELETE_EVERY_ACKS: usize = 4;

#[path = "pk_crash/model.rs"]
mod model;
use model::*;

// ---------------------------------------------------------------------------------------------
// Writers
// ---------------------------------------------------------------------------------------------

enum Writer {
    Upsert(UpsertWriter),
    Delete(DeleteWriter),
}

impl Writer {
    fn open(client: &StromClient, database: &str, role: Role, options: WriterOptions) -> Writer {
        let table = role.table().name();
        match role {
            Role::Deleter => Writer::Delete(client.delete_writer(database, table, options)),
            _ => Writer::Upsert(client.upsert_writer(database, table, role.target_columns(), options)),
        }
    }

    async fn send(&mut self, batch: RecordBatch) -> strom_flight_api::Result<AckFuture> {
        match self {
            Writer::Upsert(w) => w.upsert_unconfirmed(batch).await,
            Writer::Delete(w) => w.delete_unconfirmed(batch).await,
        }
    }

    async fn close(self) -> strom_flight_api::Result<()> {
        match self {
            Writer::Upsert(w) => w.close().await,
            Writer::Delete(w) => w.close().await,
        }
    }
}

/// What the writers of one cycle share.
#[derive(Clone)]
struct Run {
    client: StromClient,
    database: String,
    seed: u64,
    ledger: Shared,
    /// Acks received so far in this cycle.
    acks: watch::Sender<usize>,
    watchers: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

/// Writes batches `(writer, 0..)` until aborted; ack watchers record into the ledger and count
/// acks in `run.acks`.
async fn run_writer(run: Run, writer: i64, role: Role) {
    let Run { client, database, seed, ledger, acks, watchers } = run;
    let options = WriterOptions {
        writer_id: Some(writer),
        max_in_flight: 8,
        max_retries: 2,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        ..Default::default()
    };
    let mut rng = StdRng::seed_from_u64(seed ^ (writer as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut w = Writer::open(&client, &database, role, options);
    let mut acks_seen = acks.subscribe();
    for seq in 0.. {
        let rows = if role == Role::Deleter {
            // Wait (for acks, not for time) until some key is known to exist.
            loop {
                acks_seen.borrow_and_update();
                let picked = {
                    let mut l = ledger.lock().unwrap();
                    let keys = l.pick_deletes(&mut rng, role.max_rows());
                    let rows: Vec<Row> = keys.iter().map(|k| vec![Val::Int(*k), Val::Null, Val::Null, Val::Null]).collect();
                    if !rows.is_empty() {
                        l.record_sent(writer, seq, role, rows.clone());
                    }
                    rows
                };
                if !picked.is_empty() {
                    break picked;
                }
                if acks_seen.changed().await.is_err() {
                    return;
                }
            }
        } else {
            let rows = random_rows(role, writer, seq, &mut rng);
            ledger.lock().unwrap().record_sent(writer, seq, role, rows.clone());
            rows
        };
        let Ok(ack) = w.send(to_record_batch(role, &rows)).await else { return };
        let ledger = ledger.clone();
        let acks_tx = acks.clone();
        let watcher = tokio::spawn(async move {
            if let Ok(ack) = ack.await {
                ledger.lock().unwrap().record_ack(writer, seq, ack);
                acks_tx.send_modify(|n| *n += 1);
            }
        });
        watchers.lock().unwrap().push(watcher);
        if role == Role::Deleter {
            // Pace the deleter by the others' progress, so the keys mostly accumulate.
            let at = *acks_seen.borrow_and_update();
            if acks_seen.wait_for(|n| *n >= at + DELETE_EVERY_ACKS).await.is_err() {
                return;
            }
        }
    }
}

/// Resends every unacknowledged batch of `writers` with its original sequence, checking that a
/// batch found whole in the changelog is answered `duplicate` and any other is not.
async fn resend_unacked(
    client: &StromClient,
    database: &str,
    writers: &[i64],
    ledger: &Shared,
    presence: &HashMap<(i64, i64), (usize, usize)>,
    cycle: usize,
) -> (usize, usize) {
    let (mut resent, mut duplicates) = (0, 0);
    for &writer in writers {
        let (role, pending): (Role, Vec<(i64, Vec<Row>)>) = {
            let l = ledger.lock().unwrap();
            let pending = l
                .batches
                .range((writer, 0)..(writer + 1, 0))
                .filter(|(_, b)| b.ack.is_none())
                .map(|(k, b)| (k.1, b.rows.clone()))
                .collect();
            (l.roles[&writer], pending)
        };
        let Some(&(first, _)) = pending.first() else { continue };
        let options = WriterOptions { writer_id: Some(writer), sequence: first, ..Default::default() };
        let mut w = Writer::open(client, database, role, options);
        for (i, (seq, rows)) in pending.iter().enumerate() {
            assert_eq!(*seq, first + i as i64, "cycle {cycle}: unacked batches of writer {writer} are the tail of its sequence");
            let ack = tokio::time::timeout(WAIT, async { w.send(to_record_batch(role, rows)).await?.await })
                .await
                .unwrap_or_else(|_| panic!("cycle {cycle}: resent batch ({writer}, {seq}) not acknowledged within {WAIT:?}"))
                .unwrap_or_else(|e| panic!("cycle {cycle}: resending unacked batch ({writer}, {seq}) of {role:?}: {e}"));
            let (seen, total) = presence[&(writer, *seq)];
            assert_eq!(
                ack.duplicate,
                seen == total,
                "cycle {cycle}: resent batch ({writer}, {seq}) of {role:?} had {seen} of {total} writes in the changelog, \
                 so it must be answered duplicate exactly when all were: {ack:?}"
            );
            duplicates += ack.duplicate as usize;
            ledger.lock().unwrap().record_ack(writer, *seq, ack);
            resent += 1;
        }
        tokio::time::timeout(WAIT, w.close()).await.expect("close in time").expect("close the resending writer");
    }
    (resent, duplicates)
}

// ---------------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------------

/// What one table looked like after a check.
struct Verified {
    /// The KV state (= the model = the changelog replayed), by key.
    state: BTreeMap<i64, Row>,
    /// Per batch of this table: (writes found in the changelog, writes in the batch).
    presence: HashMap<(i64, i64), (usize, usize)>,
    records: usize,
}

async fn offsets(client: &StromClient, database: &str, table: &str, spec: OffsetSpec) -> BTreeMap<u32, u64> {
    let request = ListOffsets { database: database.into(), table: table.into(), partition: None, buckets: None, spec };
    let offsets = client.list_offsets(request).await.unwrap_or_else(|e| panic!("list_offsets {table}: {e}"));
    offsets.into_iter().map(|o| (o.bucket, o.offset)).collect()
}

async fn count_kind(client: &StromClient, database: &str, table: &str, kind: CountKind) -> u64 {
    let request = CountRequest { kind, database: database.into(), table: table.into(), ..Default::default() };
    client.count(request).await.unwrap_or_else(|e| panic!("count {kind:?} of {table}: {e}"))
}

fn assert_same_state(what: &str, expected: &BTreeMap<i64, Row>, actual: &BTreeMap<i64, Row>) {
    if expected == actual {
        return;
    }
    let mut diffs = Vec::new();
    for key in expected.keys().chain(actual.keys()) {
        if expected.get(key) != actual.get(key) && diffs.len() < 8 {
            diffs.push(format!("key {key}: expected {:?}, got {:?}", expected.get(key), actual.get(key)));
        }
    }
    diffs.dedup();
    panic!("{what}: {} rows expected, {} found; first differences:\n{}", expected.len(), actual.len(), diffs.join("\n"));
}

/// Reads the whole changelog of `tbl`, replays it against the ledger, and checks the KV state
/// (snapshot scan, row count, point lookups) against the replay. Panics on any violation.
async fn verify(client: &StromClient, database: &str, tbl: Tbl, ledger: &Ledger, what: &str, rng: &mut StdRng) -> Verified {
    let table = tbl.name();
    let what = format!("{what}, table {table}");
    let columns = tbl.columns();

    // 1. The changelog: gap-free offsets, consistent with list_offsets and count.
    let scan = LogScan { metadata_columns: true, ..full_scan(database, table) };
    let scanned = tokio::time::timeout(WAIT, client.collect_log(scan))
        .await
        .unwrap_or_else(|_| panic!("{what}: changelog scan hangs"))
        .unwrap_or_else(|e| panic!("{what}: changelog scan: {e}"));
    let batches = batches_of(&scanned);
    let earliest = offsets(client, database, table, OffsetSpec::Earliest).await;
    let latest = offsets(client, database, table, OffsetSpec::Latest).await;
    let per_bucket = assert_offsets_gap_free(&batches, &earliest);
    for (bucket, high) in &latest {
        let n = per_bucket.get(bucket).copied().unwrap_or(0) as u64;
        assert_eq!(high - earliest[bucket], n, "{what}: bucket {bucket}: latest - earliest must equal the change records scanned");
    }
    let total_records = total_rows(&scanned);
    assert_eq!(count_kind(client, database, table, CountKind::Log).await, total_records as u64, "{what}: count log = records");

    let mut records: Vec<(u32, u64, String, Row)> = Vec::with_capacity(total_records);
    for b in &batches {
        let buckets = int_column(b, BUCKET_COLUMN);
        let offsets = int_column(b, OFFSET_COLUMN);
        let types = b.column_by_name(CHANGE_TYPE_COLUMN).expect("changelog has _change_type").as_string::<i32>().clone();
        for (i, row) in val_rows(b, columns).into_iter().enumerate() {
            records.push((buckets[i] as u32, offsets[i] as u64, types.value(i).to_string(), row));
        }
    }
    records.sort_by_key(|r| (r.0, r.1));

    // 2. Replay: every record must be what the ledger's writes, folded in log order, produce.
    let mut state: BTreeMap<i64, Row> = BTreeMap::new();
    let mut key_bucket: HashMap<i64, u32> = HashMap::new();
    let mut seen: HashMap<WriteKey, (u32, u64)> = HashMap::new();
    let mut deletes_seen: HashMap<i64, usize> = HashMap::new();
    for (i, (bucket, offset, change, row)) in records.iter().enumerate() {
        let at = || format!("{what}: bucket {bucket} offset {offset}: {change} {row:?}");
        let key = row[0].int();
        if let Some(b) = key_bucket.insert(key, *bucket) {
            assert_eq!(b, *bucket, "{}: key {key} is in two buckets", at());
        }
        let old = state.get(&key);
        match change.as_str() {
            "-U" => {
                assert!(tbl.full_image(), "{}: a WAL-image changelog has no -U", at());
                assert_eq!(old, Some(row), "{}: -U must carry the current row", at());
            }
            "+I" | "+U" => {
                if change == "+I" {
                    assert!(old.is_none(), "{}: +I of a key that exists ({old:?})", at());
                } else {
                    assert!(old.is_some(), "{}: +U of a key that does not exist", at());
                    if tbl.full_image() {
                        let prev = i.checked_sub(1).map(|p| &records[p]);
                        assert!(
                            prev.is_some_and(|p| p.0 == *bucket && p.2 == "-U" && p.3[0] == row[0]),
                            "{}: a FULL-image +U follows the -U of its key",
                            at()
                        );
                    }
                }
                // The write that caused it: the one id column it changed.
                let changed: Vec<&Val> = tbl
                    .id_columns()
                    .iter()
                    .map(|&c| &row[c])
                    .zip(tbl.id_columns().iter().map(|&c| old.map_or(&Val::Null, |o| &o[c])))
                    .filter(|(new, old)| new != old && **new != Val::Null)
                    .map(|(new, _)| new)
                    .collect();
                let [Val::Str(id)] = changed.as_slice() else {
                    panic!("{}: cannot tell which write caused this record (changed id columns {changed:?}, old {old:?})", at())
                };
                let (w, s, r) = parse_write_id(id).unwrap_or_else(|| panic!("{}: {id:?} is not a write id", at()));
                let batch = ledger.batches.get(&(w, s)).unwrap_or_else(|| panic!("{}: batch ({w}, {s}) was never sent", at()));
                assert!(batch.role.table() == tbl && batch.role != Role::Deleter, "{}: written by a {:?} batch", at(), batch.role);
                let write = batch.rows.get(r).unwrap_or_else(|| panic!("{}: batch ({w}, {s}) has no row {r}", at()));
                assert_eq!(write[0], row[0], "{}: the write was for another key", at());
                if let Some(first) = seen.insert((w, s, r), (*bucket, *offset)) {
                    panic!("{}: write ({w}, {s}, {r}) applied twice (first at {first:?})", at());
                }
                let expected = merge(batch.role, old, write);
                assert_eq!(
                    &expected,
                    row,
                    "{}: the record is not the merge of write ({w}, {s}, {r}) {write:?} into {old:?} (double-counted or lost change?)",
                    at()
                );
                state.insert(key, row.clone());
            }
            "-D" => {
                assert_eq!(old, Some(row), "{}: -D must carry the current row", at());
                let n = deletes_seen.entry(key).or_default();
                let (w, s) = ledger
                    .deletes
                    .get(&key)
                    .and_then(|d| d.get(*n).copied())
                    .unwrap_or_else(|| panic!("{}: delete #{n} of key {key}, but only {:?} were sent", at(), ledger.deletes.get(&key)));
                *n += 1;
                let r = ledger.batches[&(w, s)].rows.iter().position(|x| x[0] == row[0]).expect("the delete batch holds the key");
                seen.insert((w, s, r), (*bucket, *offset));
                state.remove(&key);
            }
            other => panic!("{}: unknown change type {other:?}", at()),
        }
    }

    // 3. Against the ledger: every acknowledged write is there; a writer's writes of a key are
    //    durable in order (a prefix); a batch's writes in one bucket all or none; acks name the
    //    offsets their records have.
    let mut gaps: HashMap<(i64, i64), WriteKey> = HashMap::new();
    let mut last_at: HashMap<(i64, i64), (u32, u64)> = HashMap::new();
    let mut presence = HashMap::new();
    for (&(w, s), batch) in ledger.batches.iter().filter(|(_, b)| b.role.table() == tbl) {
        let mut by_bucket: BTreeMap<u32, (usize, usize)> = BTreeMap::new();
        let mut found = 0;
        for (r, write) in batch.rows.iter().enumerate() {
            let key = write[0].int();
            let at = seen.get(&(w, s, r)).copied();
            if let Some(bucket) = key_bucket.get(&key) {
                let e = by_bucket.entry(*bucket).or_default();
                e.0 += at.is_some() as usize;
                e.1 += 1;
            }
            let Some(pos) = at else {
                assert!(
                    batch.ack.is_none(),
                    "{what}: ACKNOWLEDGED write ({w}, {s}, {r}) of key {key} ({:?}) is missing after the restart; ack {:?}",
                    batch.role,
                    batch.ack
                );
                gaps.entry((w, key)).or_insert((w, s, r));
                continue;
            };
            found += 1;
            if let Some(gap) = gaps.get(&(w, key)) {
                panic!("{what}: write ({w}, {s}, {r}) of key {key} survived but the writer's earlier write {gap:?} of that key did not");
            }
            if let Some(prev) = last_at.insert((w, key), pos) {
                assert!(prev < pos, "{what}: writes of writer {w} to key {key} are logged out of order ({prev:?} then {pos:?})");
            }
            if let Some(ack) = &batch.ack {
                assert!(
                    ack.buckets.iter().any(|b| b.bucket == pos.0 && b.base_offset <= pos.1 && pos.1 < b.base_offset + b.count),
                    "{what}: write ({w}, {s}, {r}) is at {pos:?}, outside the ranges its ack named: {ack:?}"
                );
            }
        }
        for (bucket, (f, n)) in by_bucket {
            assert!(
                f == 0 || f == n,
                "{what}: batch ({w}, {s}) has {f} of its {n} writes in bucket {bucket}: a bucket part is all or none"
            );
        }
        presence.insert((w, s), (found, batch.rows.len()));
    }

    // 4. The KV state: snapshot scan == replayed changelog, at the high watermarks.
    let snapshot = tokio::time::timeout(
        WAIT,
        client.collect_snapshot(SnapshotScan { database: database.into(), table: table.into(), ..Default::default() }),
    )
    .await
    .unwrap_or_else(|_| panic!("{what}: snapshot scan hangs"))
    .unwrap_or_else(|e| panic!("{what}: snapshot scan: {e}"));
    let mut kv: BTreeMap<i64, Row> = BTreeMap::new();
    for b in &snapshot.batches {
        for row in val_rows(b, columns) {
            let key = row[0].int();
            assert!(kv.insert(key, row).is_none(), "{what}: key {key} twice in the snapshot");
        }
    }
    assert_same_state(&format!("{what}: snapshot scan vs changelog replayed as puts/deletes (= the model)"), &state, &kv);
    assert_eq!(snapshot.log_offsets(), latest, "{what}: with no write running, the snapshot stands at the high watermarks");
    assert_eq!(count_kind(client, database, table, CountKind::Rows).await, state.len() as u64, "{what}: count rows");

    // 5. Point lookups (RocksDB multi_get, not the iterator) agree, for present and absent keys.
    let mut sample: Vec<i64> = (0..tbl.key_space() + 10).collect();
    sample.shuffle(rng);
    sample.truncate(40);
    let mut lookuper = client.lookuper(database, table, LookupOptions::default());
    let keys = RecordBatch::try_from_iter([("id", Arc::new(Int64Array::from(sample.clone())) as ArrayRef)]).expect("keys");
    let answer = tokio::time::timeout(WAIT, lookuper.lookup(keys))
        .await
        .unwrap_or_else(|_| panic!("{what}: lookup hangs"))
        .unwrap_or_else(|e| panic!("{what}: lookup: {e}"));
    tokio::time::timeout(WAIT, lookuper.close()).await.expect("lookuper closes in time").expect("close lookuper");
    let mut looked_up: BTreeMap<i64, Row> = BTreeMap::new();
    for (index, row) in int_column(&answer, KEY_INDEX_COLUMN).into_iter().zip(val_rows(&answer, columns)) {
        let key = sample[index as usize];
        assert_eq!(row[0], Val::Int(key), "{what}: lookup answer for index {index} is another key");
        assert!(looked_up.insert(key, row).is_none(), "{what}: key {key} answered twice");
    }
    let expected: BTreeMap<i64, Row> = sample.iter().filter_map(|k| state.get(k).map(|r| (*k, r.clone()))).collect();
    assert_same_state(&format!("{what}: point lookups vs snapshot"), &expected, &looked_up);

    Verified { state, presence, records: total_records }
}

/// What the node logged about replaying changelogs into RocksDB at its last start: bucket
/// replays, records replayed, and replays that started from a non-zero applied offset. Only for
/// the summary line (it shows that recovery had work to do); nothing is asserted on logs.
fn replay_stats(server: &TestServer) -> (usize, u64, usize) {
    let text = std::fs::read_to_string(server.stderr_path()).unwrap_or_default();
    let (mut replays, mut records, mut from_nonzero) = (0, 0, 0);
    for line in text.lines().filter(|l| l.contains("KV state recovered from the changelog")) {
        let field = |name: &str| line.split_whitespace().find_map(|t| t.strip_prefix(name)).and_then(|v| v.parse::<u64>().ok());
        replays += 1;
        records += field("records=").unwrap_or(0);
        from_nonzero += (field("from=").unwrap_or(0) > 0) as usize;
    }
    (replays, records, from_nonzero)
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))).unwrap_or(default)
}

/// The ledger, taken out of its mutex while nothing else uses it (no guard held across awaits).
fn take_ledger(shared: &Shared) -> Ledger {
    std::mem::take(&mut *shared.lock().unwrap())
}

fn put_ledger(shared: &Shared, ledger: Ledger) {
    *shared.lock().unwrap() = ledger;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_concurrent_upserts_and_deletes_when_node_is_sigkilled_repeatedly_should_keep_kv_equal_to_the_model_with_acked_writes_once() {
    let cycles = env_u64("STROM_CRASH_CYCLES", 20) as usize;
    let seed = env_u64("STROM_CRASH_SEED", 0x9C3A_2025);
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();

    let config = tempfile::Builder::new().prefix("pk-crash-").suffix(".toml").tempfile().expect("config file");
    std::fs::write(config.path(), NODE_CONFIG).expect("write config");
    let mut server = TestServer::builder().args([std::ffi::OsStr::new("--config"), config.path().as_os_str()]).start().await;
    let mut client = server.client().await;
    let database = unique("pkcrash");
    create_database(&client, &database).await;
    for tbl in TABLES {
        let info = client.create_table(tbl.create(&database)).await.unwrap_or_else(|e| panic!("create {}: {e}", tbl.name()));
        assert_eq!(info.kind, "primary_key");
    }

    let ledger: Shared = Arc::default();
    let mut stats = BTreeMap::<&str, usize>::new();
    for cycle in 0..cycles {
        let (acks, mut acks_rx) = watch::channel(0usize);
        let run = Run {
            client: client.clone(),
            database: database.clone(),
            seed,
            ledger: ledger.clone(),
            acks,
            watchers: Arc::new(Mutex::new(Vec::new())),
        };
        let writer_ids: Vec<i64> = (0..ROLES.len() as i64).map(|i| (cycle as i64 + 1) * 100 + i).collect();
        {
            let mut l = ledger.lock().unwrap();
            for (&w, &role) in writer_ids.iter().zip(&ROLES) {
                l.roles.insert(w, role);
            }
        }
        let tasks: Vec<JoinHandle<()>> =
            writer_ids.iter().zip(ROLES).map(|(&w, role)| tokio::spawn(run_writer(run.clone(), w, role))).collect();
        // Kill after a random number of acks: other batches are then in every phase of the
        // write path (being merged, appended, fsynced, applied, acknowledged).
        let target = rng.gen_range(4..=90usize);
        tokio::time::timeout(WAIT, acks_rx.wait_for(|n| *n >= target))
            .await
            .unwrap_or_else(|_| panic!("cycle {cycle}: {target} acks did not arrive within {WAIT:?}\n{}", server.stderr_tail(30)))
            .expect("ack counter alive");
        server.kill9().await;
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
        let watchers: Vec<_> = std::mem::take(&mut *run.watchers.lock().unwrap());
        for w in watchers {
            let _ = w.await;
        }

        server.restart().await;
        client = server.client().await;
        let (replays, records, from_nonzero) = replay_stats(&server);
        *stats.entry("bucket_replays").or_default() += replays;
        *stats.entry("replayed_records").or_default() += records as usize;
        *stats.entry("replays_from_nonzero_offset").or_default() += from_nonzero;
        let l = take_ledger(&ledger);
        assert!(l.errors.is_empty(), "cycle {cycle}: {:?}", l.errors);
        *stats.entry("acked_before_kill").or_default() +=
            l.batches.iter().filter(|((w, _), b)| writer_ids.contains(w) && b.ack.is_some()).count();
        let mut presence = HashMap::new();
        for tbl in TABLES {
            let v = verify(&client, &database, tbl, &l, &format!("cycle {cycle} after SIGKILL and restart"), &mut rng).await;
            for (key, &(found, total)) in &v.presence {
                if l.batches[key].ack.is_none() {
                    let kind = match found {
                        0 => "unacked_absent",
                        f if f == total => "unacked_whole",
                        _ => "unacked_partial",
                    };
                    *stats.entry(kind).or_default() += 1;
                }
            }
            presence.extend(v.presence);
        }
        put_ledger(&ledger, l);
        // Exactly once: resending what was not acknowledged completes it and applies nothing twice.
        let (resent, duplicates) = resend_unacked(&client, &database, &writer_ids, &ledger, &presence, cycle).await;
        *stats.entry("resent").or_default() += resent;
        *stats.entry("resent_duplicate").or_default() += duplicates;
        let mut l = take_ledger(&ledger);
        assert!(l.errors.is_empty(), "cycle {cycle}: {:?}", l.errors);
        assert!(l.batches.values().all(|b| b.ack.is_some()), "cycle {cycle}: every batch is acknowledged after resending");
        let mut live = Vec::new();
        for tbl in TABLES {
            let v = verify(&client, &database, tbl, &l, &format!("cycle {cycle} after resending"), &mut rng).await;
            if tbl == Tbl::Totals {
                live = v.state.keys().copied().collect();
            }
        }
        l.reset_keys(live.into_iter());
        put_ledger(&ledger, l);
    }

    // A final graceful restart changes nothing.
    let status = server.terminate().await;
    assert!(status.success(), "{status}");
    server.restart().await;
    let client = server.client().await;
    let l = take_ledger(&ledger);
    let mut summary = Vec::new();
    for tbl in TABLES {
        let v = verify(&client, &database, tbl, &l, "after the final graceful restart", &mut rng).await;
        summary.push(format!("{}: rows={} records={}", tbl.name(), v.state.len(), v.records));
    }
    let writes: usize = l.batches.values().map(|b| b.rows.len()).sum();
    let deletes: usize = l.deletes.values().map(Vec::len).sum();
    println!(
        "pk_crash_test: seed={seed:#x} cycles={cycles} batches={} writes={writes} (deletes={deletes}) {} {stats:?} elapsed={:.1}s",
        l.batches.len(),
        summary.join(" "),
        started.elapsed().as_secs_f64()
    );
}
