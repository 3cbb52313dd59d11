//! Crash safety under load: SIGKILL the node while three idempotent writers append
//! concurrently, restart it, and check the log against a client-side ledger of what was
//! acknowledged. Then resend what was not acknowledged (same writer ids and sequences) and
//! check that every batch is there exactly once.
//!
//! `STROM_CRASH_CYCLES` (default 20) and `STROM_CRASH_SEED` make a failure reproducible; the
//! seed is printed in the summary line.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strom_flight_api::client::AppendWriterOptions;
use strom_flight_api::{LogScan, OffsetSpec, StromClient};
use strom_integration::fixtures::*;
use strom_integration::TestServer;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const WRITERS: i64 = 3;
const BUCKETS: u32 = 4;
const TABLE: &str = "ledger";

/// What the writers were told. A batch is `sent` before it is handed to the writer, and
/// `acked` once its PutAck arrived (so it is durable).
#[derive(Default)]
struct Ledger {
    sent: BTreeMap<(i64, i64), usize>,
    acked: BTreeSet<(i64, i64)>,
    errors: Vec<String>,
}

type Shared = Arc<Mutex<Ledger>>;

fn rows_for(writer: i64, seq: i64) -> usize {
    4 + ((writer * 7 + seq * 13) % 29) as usize
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))).unwrap_or(default)
}

/// Appends batches `(writer, 0..)` until aborted; ack watchers record into the ledger.
async fn run_writer(
    client: StromClient,
    database: String,
    writer: i64,
    ledger: Shared,
    acks: watch::Sender<usize>,
    watchers: Arc<Mutex<Vec<JoinHandle<()>>>>,
) {
    let options = AppendWriterOptions {
        writer_id: Some(writer),
        max_in_flight: 8,
        max_retries: 2,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        ..Default::default()
    };
    let mut w = client.append_writer(&database, TABLE, options);
    for seq in 0.. {
        let rows = rows_for(writer, seq);
        ledger.lock().unwrap().sent.insert((writer, seq), rows);
        let Ok(ack) = w.append_unconfirmed(ledger_batch(writer, seq, rows)).await else { return };
        let ledger = ledger.clone();
        let acks = acks.clone();
        let watcher = tokio::spawn(async move {
            if let Ok(ack) = ack.await {
                let mut l = ledger.lock().unwrap();
                if ack.sequence != Some(seq) || ack.rows as usize != rows {
                    l.errors.push(format!("writer {writer} seq {seq}: ack {ack:?} does not match the batch"));
                }
                l.acked.insert((writer, seq));
                acks.send_modify(|n| *n += 1);
            }
        });
        watchers.lock().unwrap().push(watcher);
    }
}

/// Occurrences of every `(writer, seq, row_no)` in the table, after checking offsets.
async fn scan_table(client: &StromClient, database: &str) -> HashMap<(i64, i64, i64), usize> {
    let scan = LogScan { metadata_columns: true, ..full_scan(database, TABLE) };
    let result = client.collect_log(scan).await.expect("scan after restart");
    let batches = batches_of(&result);
    let request =
        |spec| strom_flight_api::ListOffsets { database: database.into(), table: TABLE.into(), partition: None, buckets: None, spec };
    let earliest: BTreeMap<u32, u64> =
        client.list_offsets(request(OffsetSpec::Earliest)).await.unwrap().into_iter().map(|o| (o.bucket, o.offset)).collect();
    let latest: BTreeMap<u32, u64> =
        client.list_offsets(request(OffsetSpec::Latest)).await.unwrap().into_iter().map(|o| (o.bucket, o.offset)).collect();
    let per_bucket = assert_offsets_gap_free(&batches, &earliest);
    for (bucket, high) in &latest {
        let n = per_bucket.get(bucket).copied().unwrap_or(0) as u64;
        assert_eq!(high - earliest[bucket], n, "bucket {bucket}: latest - earliest must equal the rows scanned");
    }
    assert_eq!(count(client, database, TABLE).await, total_rows(&result) as u64, "count agrees with the scan");
    let mut seen: HashMap<(i64, i64, i64), usize> = HashMap::new();
    for b in &batches {
        let w = int_column(b, "writer");
        let s = int_column(b, "seq");
        let r = int_column(b, "row_no");
        for i in 0..b.num_rows() {
            *seen.entry((w[i], s[i], r[i])).or_default() += 1;
        }
    }
    seen
}

/// The crash invariants: no row twice, nothing unknown, every acked row present.
fn check_after_crash(seen: &HashMap<(i64, i64, i64), usize>, ledger: &Ledger, cycle: usize) -> usize {
    assert!(ledger.errors.is_empty(), "cycle {cycle}: {:?}", ledger.errors);
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(twice.is_empty(), "cycle {cycle}: rows stored more than once: {twice:?}");
    for &(w, s, r) in seen.keys() {
        let rows = ledger.sent.get(&(w, s)).unwrap_or_else(|| panic!("cycle {cycle}: row of unknown batch ({w}, {s})"));
        assert!((r as usize) < *rows, "cycle {cycle}: row {r} beyond batch ({w}, {s}) of {rows} rows");
    }
    let mut acked_rows = 0;
    for &(w, s) in &ledger.acked {
        for r in 0..ledger.sent[&(w, s)] {
            assert_eq!(seen.get(&(w, s, r as i64)), Some(&1), "cycle {cycle}: acked row ({w}, {s}, {r}) lost after SIGKILL");
            acked_rows += 1;
        }
    }
    acked_rows
}

/// Resends every unacknowledged batch of `writers` with its original sequence.
async fn resend_unacked(client: &StromClient, database: &str, writers: &[i64], ledger: &Shared) -> usize {
    let mut resent = 0;
    for &writer in writers {
        let pending: Vec<(i64, usize)> = {
            let l = ledger.lock().unwrap();
            l.sent.range((writer, 0)..(writer + 1, 0)).filter(|(k, _)| !l.acked.contains(k)).map(|(k, r)| (k.1, *r)).collect()
        };
        let Some(&(first, _)) = pending.first() else { continue };
        let options = AppendWriterOptions { writer_id: Some(writer), sequence: first, ..Default::default() };
        let mut w = client.append_writer(database, TABLE, options);
        for (i, (seq, rows)) in pending.iter().enumerate() {
            assert_eq!(*seq, first + i as i64, "unacked sequences of writer {writer} are contiguous");
            let ack = w.append(ledger_batch(writer, *seq, *rows)).await.expect("resending an unacked batch");
            assert_eq!(ack.sequence, Some(*seq));
            ledger.lock().unwrap().acked.insert((writer, *seq));
            resent += 1;
        }
        w.close().await.unwrap();
    }
    resent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_concurrent_idempotent_writers_when_node_is_sigkilled_repeatedly_should_keep_every_acked_row_exactly_once() {
    let cycles = env_u64("STROM_CRASH_CYCLES", 20) as usize;
    let seed = env_u64("STROM_CRASH_SEED", 0x5743_2024);
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();

    let mut server = TestServer::start().await;
    let mut client = server.client().await;
    let database = unique("crash");
    create_database(&client, &database).await;
    client.create_table(ledger_table(&database, TABLE, BUCKETS)).await.unwrap();

    let ledger: Shared = Arc::default();
    let (mut acked_total, mut resent_total, mut unacked_present, mut unacked_absent) = (0, 0, 0, 0);
    for cycle in 0..cycles {
        let (acks_tx, mut acks_rx) = watch::channel(0usize);
        let watchers = Arc::new(Mutex::new(Vec::new()));
        let writer_ids: Vec<i64> = (0..WRITERS).map(|w| (cycle as i64 + 1) * 100 + w).collect();
        let tasks: Vec<JoinHandle<()>> = writer_ids
            .iter()
            .map(|&w| tokio::spawn(run_writer(client.clone(), database.clone(), w, ledger.clone(), acks_tx.clone(), watchers.clone())))
            .collect();
        let target = rng.gen_range(3..=40usize);
        tokio::time::timeout(Duration::from_secs(30), acks_rx.wait_for(|n| *n >= target))
            .await
            .unwrap_or_else(|_| panic!("cycle {cycle}: {target} acks did not arrive within 30 s\n{}", server.stderr_tail(30)))
            .expect("ack counter alive");
        // A random moment after the acks, so the kill lands in different phases of the write path.
        tokio::time::sleep(Duration::from_micros(rng.gen_range(0..20_000))).await;
        server.kill9().await;
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
        let watchers: Vec<_> = std::mem::take(&mut *watchers.lock().unwrap());
        for w in watchers {
            let _ = w.await;
        }

        server.restart().await;
        client = server.client().await;
        let seen = scan_table(&client, &database).await;
        {
            let l = ledger.lock().unwrap();
            acked_total = check_after_crash(&seen, &l, cycle);
            for (&(w, s), _) in l.sent.range((writer_ids[0], 0)..(writer_ids[WRITERS as usize - 1] + 1, 0)) {
                if !l.acked.contains(&(w, s)) {
                    if seen.contains_key(&(w, s, 0)) {
                        unacked_present += 1;
                    } else {
                        unacked_absent += 1;
                    }
                }
            }
        }
        // Exactly-once: resending what was not acknowledged fills the gaps and adds no duplicate.
        resent_total += resend_unacked(&client, &database, &writer_ids, &ledger).await;
        let seen = scan_table(&client, &database).await;
        let l = ledger.lock().unwrap();
        let expected: usize = l.sent.values().sum();
        assert_eq!(seen.len(), expected, "cycle {cycle}: after resending, every sent row is stored");
        assert!(seen.values().all(|n| *n == 1), "cycle {cycle}: after resending, no row is stored twice");
    }

    // A final graceful restart changes nothing.
    let status = server.terminate().await;
    assert!(status.success(), "{status}");
    server.restart().await;
    let client = server.client().await;
    let seen = scan_table(&client, &database).await;
    let l = ledger.lock().unwrap();
    assert_eq!(seen.len(), l.sent.values().sum::<usize>());
    assert!(seen.values().all(|n| *n == 1));
    println!(
        "crash_test: seed={seed:#x} cycles={cycles} batches={} rows={} acked_rows_checked_last_cycle={acked_total} \
         unacked_batches_present={unacked_present} unacked_batches_absent={unacked_absent} resent={resent_total} elapsed={:.1}s",
        l.sent.len(),
        seen.len(),
        started.elapsed().as_secs_f64()
    );
}
