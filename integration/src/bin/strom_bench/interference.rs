//! The interference scenario: what background work on one Strom node does to the latency of the
//! two clients that feel it first, a single-key lookup client and a follow reader.
//!
//! Every phase runs both latency clients for one window, each on its own OS thread with its own
//! current-thread runtime, so the bench's background writers (on the main runtime) never delay
//! them inside the client process:
//! * `baseline`: nothing else runs;
//! * `upsert`: another client bulk-upserts random keys into a primary-key table as fast as the
//!   node acknowledges them;
//! * `append`: another client appends 64K-row batches to a log table as fast as it can;
//! * `drop`: a preloaded partition of a partitioned primary-key table is dropped (a RocksDB range
//!   delete, then a compaction of the range), and re-created, reloaded and dropped again while
//!   the window leaves room for a whole cycle.
//!
//! Blocking work a node runs on its async workers (RocksDB writes, fsyncs, compactions, IPC
//! encode/decode) shows here as lookup and follow latency under load. The `drop` phase also
//! reports, on their own, the samples that overlapped a `drop_partition` action.

use crate::data;
use crate::interference_load::{self as load, Background};
use crate::net::{self, Exchange, Windows};
use crate::pk;
use crate::pk_data::{self, count_label, Dist, KeyPicker};
use crate::procs::{CpuProbe, Res};
use crate::scenarios::{self, now_us, Env, FollowPlan, FollowWriter, Settled, Target, DATABASE};
use crate::stats::{self, ResultRow};
use futures::StreamExt;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use strom_flight_api::{LogScan, LookupKind, StartPosition, TicketRequest};

pub const LOOKUP_TABLE: &str = "interference_lookup";
/// Longer than the node's default `[kv] idle_flush_ms` (5 s): a phase starts after the memtables
/// written before it were flushed, not during that flush.
const COOLDOWN: Duration = Duration::from_secs(6);
/// From scheduling a window to its start: the latency clients connect, create their table and
/// warm up in it.
const SETUP_GRACE: Duration = Duration::from_secs(2);
/// Lookups before the window (connection, server plan, caches), not measured.
const WARMUP_LOOKUPS: u64 = 300;
/// How long after its window a follow reader may wait for the last rows written in it.
const FOLLOW_DRAIN: Duration = Duration::from_secs(30);

/// What runs next to the latency clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    Baseline,
    Upsert,
    Append,
    Drop,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Baseline => "baseline",
            Phase::Upsert => "upsert",
            Phase::Append => "append",
            Phase::Drop => "drop",
        }
    }
}

/// The sizes that decide how long the scenario takes; `--interference-quick` picks [`QUICK`].
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub window_seconds: f64,
    pub lookup_keys: u64,
    pub upsert_keys: u64,
    pub upsert_batch_rows: usize,
    pub drop_rows: u64,
}

/// ~3 minutes on a quiet 2-core machine (release build).
pub const FULL: Sizes =
    Sizes { window_seconds: 30.0, lookup_keys: 1_000_000, upsert_keys: 1_000_000, upsert_batch_rows: 32_768, drop_rows: 2_000_000 };
/// A smoke run: proves every phase works, measures nothing worth quoting.
pub const QUICK: Sizes =
    Sizes { window_seconds: 10.0, lookup_keys: 50_000, upsert_keys: 50_000, upsert_batch_rows: 10_000, drop_rows: 100_000 };

pub struct InterferenceConfig {
    pub phases: Vec<Phase>,
    pub window: Duration,
    pub lookup_keys: u64,
    pub miss_ratio: f64,
    pub upsert_keys: u64,
    pub upsert_batch_rows: usize,
    pub append_batch_rows: usize,
    pub drop_rows: u64,
    /// Rows per DoPut batch of the lookup table's and the partition's loads.
    pub load_batch_rows: usize,
    pub follow_rate: u64,
    pub follow_batch_rows: usize,
    pub follow_compression: String,
    pub buckets: u32,
    /// `table.log.durability` of the tables the background writes go to.
    pub durability: String,
    /// `table.log.durability` of the lookup table (written once, before any window).
    pub lookup_durability: String,
    /// Unacknowledged batches of the bulk upsert writer (as for the `pk` loads).
    pub upsert_inflight: usize,
    /// Unacknowledged batches of the append writer, capped by `inflight_bytes` (as for `put`).
    pub inflight: usize,
    pub inflight_bytes: u64,
}

// ------------------------------------------------------------------------------- timing

/// One measurement window; every client of a phase shares it.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: Instant,
    pub end: Instant,
}

impl Window {
    fn starting_in(delay: Duration, length: Duration) -> Self {
        let start = Instant::now() + delay;
        Self { start, end: start + length }
    }
}

/// When `drop_partition` actions ran, on the clock of [`now_us`], so that a latency sample can
/// tell whether it overlapped one.
#[derive(Default)]
pub struct DropLog {
    /// (start, end) in µs; no end while the action runs.
    spans: Mutex<Vec<(i64, Option<i64>)>>,
}

impl DropLog {
    pub fn begin_at(&self, us: i64) -> usize {
        let mut spans = self.spans.lock();
        spans.push((us, None));
        spans.len() - 1
    }

    pub fn end_at(&self, span: usize, us: i64) {
        self.spans.lock()[span].1 = Some(us);
    }

    /// Whether `[from, to]` (µs) overlaps a drop; one still running overlaps whatever started
    /// before now.
    pub fn overlaps(&self, from: i64, to: i64) -> bool {
        self.spans.lock().iter().rev().any(|&(start, end)| start <= to && end.is_none_or(|end| end >= from))
    }

    fn total(&self) -> Duration {
        let micros: i64 = self.spans.lock().iter().filter_map(|&(start, end)| end.map(|end| end - start)).sum();
        Duration::from_micros(micros.max(0) as u64)
    }
}

/// Latencies of a window, and separately those that overlapped a partition drop.
struct LatencySplit {
    all: Histogram<u64>,
    during_drops: Histogram<u64>,
}

impl LatencySplit {
    fn new() -> Self {
        Self { all: stats::histogram(), during_drops: stats::histogram() }
    }

    fn record(&mut self, micros: u64, during_drop: bool) {
        self.all.saturating_record(micros.max(1));
        if during_drop {
            self.during_drops.saturating_record(micros.max(1));
        }
    }
}

// ------------------------------------------------------------------------------- latency clients

/// Runs `client` on a new OS thread with its own current-thread runtime: the client's connection
/// tasks run on the thread that waits for the answers, and nothing else of the bench does.
fn client_thread<T, F, Fut>(name: &str, client: F) -> Res<std::thread::JoinHandle<Res<T>>>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Res<T>>,
{
    Ok(std::thread::Builder::new().name(name.into()).spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(client())
    })?)
}

async fn join_client<T: Send + 'static>(handle: std::thread::JoinHandle<Res<T>>, name: &str) -> Res<T> {
    tokio::task::spawn_blocking(move || handle.join()).await?.map_err(|_| format!("the {name} client thread panicked"))?
}

struct LookupSetup {
    url: String,
    windows: Windows,
    keys: u64,
    miss_ratio: f64,
}

struct LookupOutcome {
    latency: LatencySplit,
    requests: u64,
    found: u64,
    wrong: u64,
    bytes: u64,
    elapsed: Duration,
}

/// One key per DoExchange request, one request at a time, from the window's start to its end.
async fn lookup_client(setup: LookupSetup, window: Window, drops: Arc<DropLog>, done: Arc<AtomicU64>) -> Res<LookupOutcome> {
    let schema = pk::key_schema(pk_data::USERS_KEY);
    let command = serde_json::to_value(pk::lookup_command(LookupKind::PrimaryKey, LOOKUP_TABLE))?;
    let mut exchange = Exchange::open(net::connect(&setup.url, setup.windows).await?, &command, &schema).await?;
    let mut picker = KeyPicker::new(setup.keys, Dist::Uniform, setup.miss_ratio, 0.99, 11);
    for _ in 0..WARMUP_LOOKUPS {
        exchange.send(&pk::key_batch(&schema, vec![picker.next().0])?).await?;
        exchange.recv().await?;
    }
    tokio::time::sleep_until(window.start.into()).await;
    let mut o = LookupOutcome { latency: LatencySplit::new(), requests: 0, found: 0, wrong: 0, bytes: 0, elapsed: Duration::ZERO };
    let bytes_before = exchange.received_bytes();
    let start = Instant::now();
    while Instant::now() < window.end {
        let (key, hit) = picker.next();
        let from = now_us();
        let t = Instant::now();
        exchange.send(&pk::key_batch(&schema, vec![key])?).await?;
        let answer = exchange.recv().await?;
        let elapsed = t.elapsed();
        o.latency.record(elapsed.as_micros() as u64, drops.overlaps(from, now_us()));
        let rows = answer.num_rows() as u64;
        o.requests += 1;
        o.found += rows;
        o.wrong += u64::from(rows != u64::from(hit));
        done.fetch_add(1, Ordering::Relaxed);
    }
    o.elapsed = start.elapsed();
    o.bytes = exchange.received_bytes() - bytes_before;
    Ok(o)
}

struct FollowSetup {
    url: String,
    windows: Windows,
    table: String,
    rate: u64,
    batch_rows: usize,
    buckets: u32,
    compression: String,
}

struct FollowOutcome {
    latency: LatencySplit,
    rows: u64,
    elapsed: Duration,
    acks: Histogram<u64>,
}

/// A follow scan of a fresh log table while one writer appends to it at a fixed rate during the
/// window; latency = decode time at the reader − send time carried by the rows.
async fn follow_client(setup: FollowSetup, window: Window, drops: Arc<DropLog>) -> Res<FollowOutcome> {
    let def = data::follow_table();
    let ch = net::connect(&setup.url, setup.windows).await?;
    // `os`: the follow path itself waits for no fsync, so its baseline is the node's best case.
    let options = [("table.log.durability", "os"), ("table.log.arrow.compression.type", setup.compression.as_str())];
    scenarios::create_table(&ch, &setup.table, &def, setup.buckets, &options).await?;
    let outcome = follow_window(&setup, window, &drops).await;
    scenarios::drop_table(&ch, &setup.table).await?;
    outcome
}

async fn follow_window(setup: &FollowSetup, window: Window, drops: &DropLog) -> Res<FollowOutcome> {
    let scan =
        LogScan { database: DATABASE.into(), table: setup.table.clone(), from: StartPosition::Latest, follow: true, ..Default::default() };
    let mut reader = net::open_scan(net::connect(&setup.url, setup.windows).await?, TicketRequest::LogScan(scan).to_json()).await?;
    let batches_per_s = (setup.rate as f64 / setup.batch_rows as f64).max(1.0);
    let batches = ((window.end - window.start).as_secs_f64() * batches_per_s).round().max(1.0) as u64;
    let expected_rows = batches * setup.batch_rows as u64;
    let plan = FollowPlan {
        table: setup.table.clone(),
        batch_rows: setup.batch_rows,
        period: Duration::from_secs_f64(1.0 / batches_per_s),
        batches,
        first_tick: window.start,
    };
    let writer = FollowWriter::start(&setup.url, setup.windows, plan).await?;
    let mut latency = LatencySplit::new();
    let mut rows = 0u64;
    let deadline = window.end + FOLLOW_DRAIN;
    while rows < expected_rows {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(next) = tokio::time::timeout(left, reader.next()).await else {
            return Err(format!("interference follow: received {rows} of {expected_rows} rows before the deadline").into());
        };
        let Some(batch) = next else {
            return Err(format!("interference follow: the scan ended after {rows} of {expected_rows} rows").into());
        };
        let batch = batch?;
        let now = now_us();
        for sent in scenarios::send_times(&batch)? {
            latency.record((now - sent).max(1) as u64, drops.overlaps(sent, now));
        }
        rows += batch.num_rows() as u64;
    }
    let elapsed = Instant::now().saturating_duration_since(window.start);
    drop(reader);
    let acks = writer.finish().await?;
    Ok(FollowOutcome { latency, rows, elapsed, acks })
}

// ------------------------------------------------------------------------------- phases

struct Measured {
    lookup: LookupOutcome,
    follow: FollowOutcome,
    background: Option<ResultRow>,
    probe: CpuProbe,
    drop_time: Duration,
    /// The machine's state when the phase started.
    settled: Settled,
}

/// Both latency clients and the phase's background load over one window.
async fn measure(
    target: &Target,
    env: &Env,
    cfg: &InterferenceConfig,
    phase: Phase,
    background: &mut Background,
    settled: Settled,
) -> Res<Measured> {
    let drops = Arc::new(DropLog::default());
    let window = Window::starting_in(SETUP_GRACE, cfg.window);
    let done = Arc::new(AtomicU64::new(0));
    let lookup = {
        let setup = LookupSetup { url: target.url.clone(), windows: env.windows, keys: cfg.lookup_keys, miss_ratio: cfg.miss_ratio };
        let (drops, done) = (drops.clone(), done.clone());
        client_thread("interference-lookup", move || lookup_client(setup, window, drops, done))?
    };
    let follow = {
        let setup = FollowSetup {
            url: target.url.clone(),
            windows: env.windows,
            table: format!("interference_follow_{}", phase.name()),
            rate: cfg.follow_rate,
            batch_rows: cfg.follow_batch_rows,
            buckets: cfg.buckets,
            compression: cfg.follow_compression.clone(),
        };
        let drops = drops.clone();
        client_thread("interference-follow", move || follow_client(setup, window, drops))?
    };
    let budget = SETUP_GRACE + cfg.window;
    let pb = env.bar(&format!("interference/{} {}", phase.name(), target.name), budget);
    let ticker = net::ticker(&pb, done, budget);
    let probe_at_start = async {
        tokio::time::sleep_until(window.start.into()).await;
        target.probe()
    };
    let (background, probe) = tokio::join!(load::run_background(target, env, cfg, background, window, &drops), probe_at_start);
    // Join both clients before reporting any error, so no client outlives the phase.
    let lookup = join_client(lookup, "lookup").await;
    let follow = join_client(follow, "follow").await;
    ticker.abort();
    pb.finish_and_clear();
    Ok(Measured { lookup: lookup?, follow: follow?, background: background?, probe, drop_time: drops.total(), settled })
}

/// The figures of a phase that the summary compares.
struct PhaseSummary {
    phase: String,
    lookup: [u64; 4],
    follow: [u64; 4],
    background: String,
}

fn quantiles(h: &Histogram<u64>) -> [u64; 4] {
    [h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.value_at_quantile(0.999), h.max()]
}

fn fmt_quantiles(q: &[u64; 4]) -> String {
    q.iter().map(|&us| stats::fmt_us(us)).collect::<Vec<_>>().join(" / ")
}

/// The result rows of one phase (printed and added to `out`) and its summary line.
fn report(
    target: &Target,
    env: &Env,
    cfg: &InterferenceConfig,
    phase: Phase,
    m: Measured,
    baseline: Option<&PhaseSummary>,
    out: &mut Vec<ResultRow>,
) -> Vec<PhaseSummary> {
    let name = phase.name();
    let vs_baseline = |row: ResultRow, base: Option<u64>| match base {
        Some(b) if b > 0 => {
            let ratio = (row.p99_us as f64 / b as f64 * 100.0).round() / 100.0;
            row.with("p99_vs_baseline", ratio)
        }
        _ => row,
    };
    let l = &m.lookup;
    let lookup = ResultRow::new(
        format!("interference/lookup/{name}"),
        target.name,
        "request → answer (1 key)",
        l.requests,
        l.bytes,
        l.elapsed,
        &l.latency.all,
    )
    .with("phase", name)
    .with("table_keys", cfg.lookup_keys)
    .with("found", l.found)
    .with("wrong_answers", l.wrong)
    .with("miss_ratio", cfg.miss_ratio)
    .with("client_runtime", "current-thread");
    let lookup = vs_baseline(m.settled.note(env.cpu(lookup, &m.probe, 1.0)), baseline.map(|b| b.lookup[1]));
    if l.wrong > 0 {
        env.say(format!("    WARNING: {} of {} lookups had the wrong number of rows", l.wrong, l.requests));
    }
    let f = &m.follow;
    let follow = ResultRow::new(
        format!("interference/follow/{name}"),
        target.name,
        "row send → follow reader decoded it",
        f.rows,
        0,
        f.elapsed,
        &f.latency.all,
    )
    .with("phase", name)
    .with("rate_rows_per_s", cfg.follow_rate)
    .with("batch_rows", cfg.follow_batch_rows)
    .with("ack_p50_us", f.acks.value_at_quantile(0.5))
    .with("ack_p99_us", f.acks.value_at_quantile(0.99))
    .with("ack_p999_us", f.acks.value_at_quantile(0.999));
    let follow = vs_baseline(follow, baseline.map(|b| b.follow[1]));
    let background = m.background.as_ref().map(|bg| match phase {
        Phase::Drop => format!(
            "{} drops of {} rows, {} p50 / {} max each",
            bg.samples,
            count_label(cfg.drop_rows),
            stats::fmt_us(bg.p50_us),
            stats::fmt_us(bg.max_us)
        ),
        _ => format!("{} {} rows/s, {:.1} MB/s", name, stats::fmt_rate(bg.rows_per_s), bg.mb_per_s),
    });
    let mut summaries = vec![PhaseSummary {
        phase: name.to_string(),
        lookup: quantiles(&l.latency.all),
        follow: quantiles(&f.latency.all),
        background: background.clone().unwrap_or_else(|| "-".into()),
    }];
    let mut rows = vec![lookup, follow];
    if phase == Phase::Drop {
        // Only the samples whose request (or row's trip) overlapped a drop_partition action.
        let label = "request → answer, overlapping a drop";
        let l_drop = ResultRow::new(
            "interference/lookup/drop-inflight",
            target.name,
            label,
            l.latency.during_drops.len(),
            0,
            m.drop_time,
            &l.latency.during_drops,
        )
        .with("phase", "drop-inflight");
        let label = "row send → decoded, overlapping a drop";
        let f_drop = ResultRow::new(
            "interference/follow/drop-inflight",
            target.name,
            label,
            f.latency.during_drops.len() * cfg.follow_batch_rows as u64,
            0,
            m.drop_time,
            &f.latency.during_drops,
        )
        .with("phase", "drop-inflight");
        rows.push(vs_baseline(l_drop, baseline.map(|b| b.lookup[1])));
        rows.push(vs_baseline(f_drop, baseline.map(|b| b.follow[1])));
        summaries.push(PhaseSummary {
            phase: "drop-inflight".into(),
            lookup: quantiles(&l.latency.during_drops),
            follow: quantiles(&f.latency.during_drops),
            background: format!("{:.1} s of drop actions", m.drop_time.as_secs_f64()),
        });
    }
    rows.extend(m.background.map(|bg| bg.with("phase", name)));
    for row in rows {
        env.say(stats::line(&row));
        out.push(row);
    }
    summaries
}

/// Every phase of `cfg` on `target` (Strom); result rows go to `out`.
pub async fn run_interference(target: &Target, cfg: &InterferenceConfig, env: &Env, out: &mut Vec<ResultRow>) -> Res<()> {
    let ch = scenarios::control(target, env).await?;
    load::load_lookup_table(target, env, &ch, cfg).await?;
    let mut summaries: Vec<PhaseSummary> = Vec::new();
    for &phase in &cfg.phases {
        let mut background = match phase {
            Phase::Baseline => Background::Idle,
            Phase::Upsert => Background::Writes(load::prepare_upsert(&ch, cfg).await?),
            Phase::Append => Background::Writes(load::prepare_append(&ch, cfg).await?),
            Phase::Drop => Background::Drops(load::prepare_drops(target, env, &ch, cfg).await?),
        };
        tokio::time::sleep(COOLDOWN).await;
        let settled = env.settle(&format!("interference/{} {}", phase.name(), target.name)).await;
        let measured = measure(target, env, cfg, phase, &mut background, settled).await;
        if let Some(table) = background.table() {
            scenarios::drop_table(&ch, table).await?;
        }
        let baseline = summaries.iter().find(|s| s.phase == "baseline");
        let phase_summaries = report(target, env, cfg, phase, measured?, baseline, out);
        summaries.extend(phase_summaries);
    }
    scenarios::drop_table(&ch, LOOKUP_TABLE).await?;
    env.say(format!("    interference summary (p50 / p99 / p999 / max; {:.0} s windows):", cfg.window.as_secs_f64()));
    env.say(format!("    {:<14} {:<40} {:<40} {}", "phase", "single-key lookup", "follow reader", "background"));
    for s in &summaries {
        env.say(format!("    {:<14} {:<40} {:<40} {}", s.phase, fmt_quantiles(&s.lookup), fmt_quantiles(&s.follow), s.background));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_drop_spans_when_checking_samples_should_tell_which_overlap() {
        let log = DropLog::default();
        let first = log.begin_at(100);
        log.end_at(first, 200);
        assert!(log.overlaps(150, 160), "inside");
        assert!(log.overlaps(50, 100), "ends where the drop starts");
        assert!(log.overlaps(190, 300), "starts before the drop ends");
        assert!(!log.overlaps(10, 99), "before");
        assert!(!log.overlaps(201, 400), "after");
        let running = log.begin_at(1000);
        assert!(log.overlaps(900, 1100), "a running drop overlaps what reaches past its start");
        assert!(!log.overlaps(500, 999), "but not what ended before it");
        log.end_at(running, 1500);
        assert_eq!(log.total(), Duration::from_micros(600));
    }
}
