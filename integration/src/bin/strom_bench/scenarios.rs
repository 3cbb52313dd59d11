//! The scenarios: pipelined DoPut appends, full and projected scans, follow latency.

use crate::data::{self, TableDef};
use crate::net::{self, PutPlan, Windows};
use crate::procs::{self, Res};
use crate::stats::{self, ResultRow};
use arrow_flight::{FlightData, FlightDescriptor};
use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use strom_flight_api::{CreateTable, LogScan, StartPosition, TicketRequest, WriteCommand, SCAN_MESSAGE_BYTES};
use tonic::transport::Channel;

pub const DATABASE: &str = "bench";

/// One server under test.
pub struct Target {
    /// `strom` or `peer`.
    pub name: &'static str,
    pub url: String,
    pub pid: Option<u32>,
}

impl Target {
    pub fn is_strom(&self) -> bool {
        self.name == "strom"
    }

    pub fn probe(&self) -> procs::CpuProbe {
        procs::CpuProbe::start(self.pid)
    }
}

/// Settings shared by every scenario.
pub struct Env {
    pub windows: Windows,
    pub progress: MultiProgress,
    /// Wait for an idle machine before each timed primary-key scenario (None: never wait).
    pub quiet: Option<Quiet>,
}

/// When the machine counts as idle enough to start a timed scenario.
#[derive(Debug, Clone, Copy)]
pub struct Quiet {
    /// Busy cores (all processes, this one included) over a 3 s sample.
    pub max_busy_cores: f64,
    /// Longest wait; after it the scenario runs anyway (and says so).
    pub max_wait: Duration,
}

/// The state of the machine when a timed scenario started.
#[derive(Debug, Clone, Copy)]
pub struct Settled {
    pub waited_s: f64,
    /// Busy cores of the last sample (None: not measured).
    pub busy_cores: Option<f64>,
    pub loadavg_1m: Option<f64>,
}

impl Settled {
    /// Records the start conditions in a result row.
    pub fn note(&self, row: ResultRow) -> ResultRow {
        let r2 = |x: f64| (x * 100.0).round() / 100.0;
        let mut row = row.with("settle_wait_s", r2(self.waited_s));
        if let Some(b) = self.busy_cores {
            row = row.with("busy_cores_before", r2(b));
        }
        if let Some(l) = self.loadavg_1m {
            row = row.with("loadavg_1m_before", l);
        }
        row
    }
}

impl Env {
    /// Adds the CPU split of a measurement to its row, and warns when other load was present.
    pub fn cpu(&self, row: ResultRow, probe: &procs::CpuProbe, per: f64) -> ResultRow {
        let Some(u) = probe.finish() else { return row };
        let r3 = |x: f64| (x / per * 1000.0).round() / 1000.0;
        let seconds = row.seconds.max(1e-9);
        let row = row
            .with("client_cpu_s", r3(u.client))
            .with("server_cpu_s", r3(u.server))
            .with("kernel_threads_cpu_s", r3(u.kernel))
            .with("other_cpu_s", r3(u.other))
            .with("steal_s", r3(u.steal));
        if u.other / seconds > 0.2 {
            self.say(format!("    note: other processes used {:.2} of the cores during {}", u.other / seconds, row.scenario));
        }
        row
    }

    /// Prints a result line on stdout without tearing the progress bars (on stderr).
    /// Waits until the machine is idle (every process together uses at most `max_busy_cores`
    /// over a 3 s sample, re-sampled every 10 s) or `max_wait` has passed; the servers under
    /// test count too, so a server still compacting after a load is waited for as well.
    pub async fn settle(&self, label: &str) -> Settled {
        let loadavg_1m = procs::loadavg_1m();
        let Some(q) = self.quiet else { return Settled { waited_s: 0.0, busy_cores: None, loadavg_1m } };
        let start = Instant::now();
        let mut said = false;
        loop {
            let a = procs::system_cpu();
            tokio::time::sleep(Duration::from_secs(3)).await;
            let busy = match (a, procs::system_cpu()) {
                (Some((a, _)), Some((b, _))) => (b - a) / 3.0,
                _ => return Settled { waited_s: 0.0, busy_cores: None, loadavg_1m },
            };
            let waited = start.elapsed();
            let done = busy <= q.max_busy_cores || waited >= q.max_wait;
            if done {
                if waited >= q.max_wait && busy > q.max_busy_cores {
                    self.say(format!(
                        "    note: {label} starts on a busy machine ({busy:.2} cores busy after {:.0} s of waiting)",
                        waited.as_secs_f64()
                    ));
                } else if said {
                    self.say(format!("    {label}: machine idle after {:.0} s ({busy:.2} cores busy)", waited.as_secs_f64()));
                }
                return Settled { waited_s: waited.as_secs_f64(), busy_cores: Some(busy), loadavg_1m: procs::loadavg_1m() };
            }
            if !said {
                self.say(format!(
                    "    waiting for an idle machine before {label}: {busy:.2} cores busy, load average {}",
                    procs::loadavg_1m().map(|l| format!("{l:.2}")).unwrap_or_else(|| "?".into())
                ));
                said = true;
            }
            tokio::time::sleep(Duration::from_secs(7)).await;
        }
    }

    pub fn say(&self, line: impl AsRef<str>) {
        self.progress.suspend(|| println!("{}", line.as_ref()));
    }

    pub fn bar(&self, label: &str, budget: Duration) -> ProgressBar {
        let pb = self.progress.add(ProgressBar::new(budget.as_millis().max(1) as u64));
        pb.set_style(
            ProgressStyle::with_template("{prefix:<44} [{bar:30}] {elapsed:>4} {msg}").expect("valid template").progress_chars("=> "),
        );
        pb.set_prefix(label.to_string());
        pb
    }
}

pub async fn control(target: &Target, env: &Env) -> Res<Channel> {
    net::connect(&target.url, env.windows).await
}

pub async fn create_table(ch: &Channel, table: &str, def: &TableDef, buckets: u32, options: &[(&str, &str)]) -> Res<()> {
    net::action(ch, "create_database", &json!({"name": DATABASE, "if_not_exists": true})).await?;
    net::action(ch, "drop_table", &json!({"database": DATABASE, "table": table, "if_exists": true})).await?;
    let req = CreateTable {
        database: DATABASE.into(),
        table: table.into(),
        columns: def.columns.clone(),
        bucket_num: Some(buckets),
        options: options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        ..Default::default()
    };
    net::action(ch, "create_table", &serde_json::to_value(&req)?).await?;
    Ok(())
}

pub async fn drop_table(ch: &Channel, table: &str) -> Res<()> {
    net::action(ch, "drop_table", &json!({"database": DATABASE, "table": table, "if_exists": true})).await?;
    Ok(())
}

pub fn append_descriptor(table: &str) -> Res<FlightDescriptor> {
    Ok(FlightDescriptor::new_cmd(serde_json::to_vec(&WriteCommand::append(DATABASE, table))?))
}

// ------------------------------------------------------------------------------- DoPut

/// Settings of the append scenario.
pub struct PutConfig {
    pub shapes: Vec<usize>,
    pub writers: Vec<usize>,
    pub durabilities: Vec<String>,
    pub compressions: Vec<String>,
    /// Extra run: the first shape, one writer, `os`, with this compression (the default ZSTD).
    pub extra_compression: Option<String>,
    pub duration: Duration,
    pub inflight: usize,
    /// Cap on unacknowledged bytes per writer (bounds the queue of large batches).
    pub inflight_bytes: u64,
    pub buckets: u32,
}

fn shape_name(rows: usize) -> String {
    if rows >= 1024 && rows.is_multiple_of(1024) {
        format!("{}K", rows / 1024)
    } else {
        rows.to_string()
    }
}

pub async fn run_put(target: &Target, cfg: &PutConfig, env: &Env, out: &mut Vec<ResultRow>) -> Res<()> {
    let def = data::put_table();
    let mut runs: Vec<(usize, usize, String, String)> = Vec::new();
    for &rows in &cfg.shapes {
        for &w in &cfg.writers {
            if target.is_strom() {
                for d in &cfg.durabilities {
                    for c in &cfg.compressions {
                        runs.push((rows, w, d.clone(), c.clone()));
                    }
                }
            } else {
                runs.push((rows, w, "mem".into(), "-".into()));
            }
        }
    }
    if let (true, Some(c), Some(&rows)) = (target.is_strom(), &cfg.extra_compression, cfg.shapes.first()) {
        if !cfg.compressions.contains(c) {
            runs.push((rows, 1, "os".into(), c.clone()));
        }
    }
    let ch = control(target, env).await?;
    for (rows, writers, durability, compression) in runs {
        let label = if target.is_strom() {
            format!("put/{}/w{writers}/{durability}/{compression}", shape_name(rows))
        } else {
            format!("put/{}/w{writers}", shape_name(rows))
        };
        let table = format!("put_{rows}_{writers}_{durability}_{compression}").replace('-', "x").to_lowercase();
        let mut options = vec![];
        if target.is_strom() {
            options.push(("table.log.durability", durability.as_str()));
            options.push(("table.log.arrow.compression.type", compression.as_str()));
        }
        create_table(&ch, &table, &def, cfg.buckets, &options).await?;
        let pool_size = if rows >= 10_000 { 4 } else { 16 };
        let batches: Vec<_> = (0..pool_size).map(|i| data::put_batch(&def, rows, (i * rows) as i64, i as u64)).collect();
        let (schema_message, pool) = net::encode(&def.schema, batches)?;
        let batch_bytes = pool.iter().map(|(m, _)| net::ipc_len(m)).max().unwrap_or(1).max(1);
        let inflight = cfg.inflight.min((cfg.inflight_bytes / batch_bytes).max(1) as usize);
        let pool = Arc::new(pool);
        let pb = env.bar(&format!("{label} {}", target.name), cfg.duration);
        let progress = Arc::new(AtomicU64::new(0));
        let ticker = net::ticker(&pb, progress.clone(), cfg.duration);
        let probe = target.probe();
        let mut tasks = Vec::new();
        for _ in 0..writers {
            let channel = net::connect(&target.url, env.windows).await?;
            let plan = PutPlan {
                descriptor: append_descriptor(&table)?,
                schema_message: schema_message.clone(),
                pool: pool.clone(),
                inflight,
                duration: cfg.duration,
                max_batches: u64::MAX,
            };
            tasks.push(tokio::spawn(net::put_stream(channel, plan, progress.clone())));
        }
        let mut latency = stats::histogram();
        let (mut total_rows, mut bytes, mut batches_acked, mut elapsed) = (0u64, 0u64, 0u64, Duration::ZERO);
        for t in tasks {
            let o = t.await??;
            latency.add(&o.latency).map_err(|e| format!("{e:?}"))?;
            total_rows += o.rows;
            bytes += o.bytes;
            batches_acked += o.batches;
            elapsed = elapsed.max(o.elapsed);
        }
        ticker.abort();
        pb.finish_and_clear();
        let row = ResultRow::new(&label, target.name, "batch send → PutResult", total_rows, bytes, elapsed, &latency)
            .with("batch_rows", rows)
            .with("writers", writers)
            .with("inflight_per_writer", inflight)
            .with("batch_ipc_bytes", batch_bytes)
            .with("durability", durability.as_str())
            .with("compression", compression.as_str())
            .with("batches", batches_acked);
        let row = env.cpu(row, &probe, 1.0);
        env.say(stats::line(&row));
        out.push(row);
        drop_table(&ch, &table).await?;
    }
    Ok(())
}

// ------------------------------------------------------------------------------- scans

pub struct ScanConfig {
    pub rows: usize,
    pub load_batch_rows: usize,
    pub compressions: Vec<String>,
    pub min_duration: Duration,
    pub min_iterations: u32,
    pub buckets: u32,
    /// One pass per client kind (`net::ScanClient`).
    pub scan_clients: Vec<net::ScanClient>,
}

/// The wide table's batches, encoded once and loaded into every target.
pub struct WideData {
    schema_message: FlightData,
    pool: Arc<Vec<(FlightData, u64)>>,
}

pub fn wide_data(cfg: &ScanConfig) -> Res<WideData> {
    let def = data::wide_table();
    let mut batches = Vec::new();
    let mut first = 0usize;
    while first < cfg.rows {
        let n = cfg.load_batch_rows.min(cfg.rows - first);
        batches.push(data::wide_batch(&def, n, first as i64, first as u64));
        first += n;
    }
    let (schema_message, pool) = net::encode(&def.schema, batches)?;
    Ok(WideData { schema_message, pool: Arc::new(pool) })
}

#[derive(Clone, Copy, PartialEq)]
enum Fanout {
    /// One DoGet for all buckets.
    Single,
    /// GetFlightInfo, then one DoGet per endpoint in parallel.
    Endpoints,
}

/// One measured scan (all its streams).
struct Pass {
    rows: u64,
    ipc: u64,
    body: u64,
    messages: u64,
    wall: Duration,
    gaps: hdrhistogram::Histogram<u64>,
}

async fn scan_once(target: &Target, env: &Env, tickets: &[Vec<u8>], progress: &Arc<AtomicU64>, kind: net::ScanClient) -> Res<Pass> {
    let mut channels = Vec::with_capacity(tickets.len());
    for _ in tickets {
        channels.push(net::connect(&target.url, env.windows).await?);
    }
    let start = Instant::now();
    let tasks: Vec<_> =
        tickets.iter().zip(channels).map(|(t, ch)| tokio::spawn(net::scan(ch, t.clone(), progress.clone(), kind))).collect();
    let mut pass = Pass { rows: 0, ipc: 0, body: 0, messages: 0, wall: Duration::ZERO, gaps: stats::histogram() };
    for t in tasks {
        let o = t.await??;
        pass.rows += o.rows;
        pass.ipc += o.ipc_bytes;
        pass.body += o.body_bytes;
        pass.messages += o.messages;
        pass.gaps.add(&o.gaps).map_err(|e| format!("{e:?}"))?;
    }
    pass.wall = start.elapsed();
    Ok(pass)
}

fn ticket_with(ticket: &[u8], columns: &Option<Vec<String>>, message_bytes: Option<u64>) -> Res<Vec<u8>> {
    if columns.is_none() && message_bytes.is_none() {
        return Ok(ticket.to_vec());
    }
    let mut v: serde_json::Value = serde_json::from_slice(ticket)?;
    let fields = v.as_object_mut().ok_or("endpoint ticket is not a JSON object")?;
    if let Some(cols) = columns {
        fields.insert("columns".into(), json!(cols));
    }
    if let Some(n) = message_bytes {
        fields.insert("message_bytes".into(), json!(n));
    }
    Ok(serde_json::to_vec(&v)?)
}

pub async fn run_scans(target: &Target, cfg: &ScanConfig, wide: &WideData, env: &Env, out: &mut Vec<ResultRow>) -> Res<()> {
    let def = data::wide_table();
    let compressions: Vec<String> = if target.is_strom() { cfg.compressions.clone() } else { vec!["mem".into()] };
    let ch = control(target, env).await?;
    for compression in compressions {
        let table = format!("scan_{}", compression.to_lowercase());
        let mut options = vec![("table.log.durability", "os")];
        if target.is_strom() {
            options.push(("table.log.arrow.compression.type", compression.as_str()));
        }
        create_table(&ch, &table, &def, cfg.buckets, &options).await?;
        // Load (not measured).
        let pb = env.bar(&format!("scan load {table} {}", target.name), Duration::from_secs(10));
        let progress = Arc::new(AtomicU64::new(0));
        let ticker = net::ticker(&pb, progress.clone(), Duration::from_secs(10));
        let load_start = Instant::now();
        let plan = PutPlan {
            descriptor: append_descriptor(&table)?,
            schema_message: wide.schema_message.clone(),
            pool: wide.pool.clone(),
            inflight: 8,
            duration: Duration::from_secs(600),
            max_batches: wide.pool.len() as u64,
        };
        let loaded = net::put_stream(net::connect(&target.url, env.windows).await?, plan, progress).await?;
        ticker.abort();
        pb.finish_and_clear();
        let load_secs = load_start.elapsed().as_secs_f64();
        if loaded.rows != cfg.rows as u64 {
            return Err(format!("{}: loaded {} rows, expected {}", target.name, loaded.rows, cfg.rows).into());
        }
        let label_c = if target.is_strom() { format!("/{compression}") } else { String::new() };
        let mut full_body_per_iter = 0u64;
        let mut full_rate = 0f64;
        let variants = cfg.scan_clients.iter().flat_map(|&kind| {
            [(Fanout::Single, false), (Fanout::Single, true), (Fanout::Endpoints, false), (Fanout::Endpoints, true)]
                .map(|(fanout, projected)| (fanout, projected, kind))
        });
        for (fanout, projected, kind) in variants {
            let columns = projected.then(data::projected_names);
            // Messages of the size Strom's own client asks for (the peer has no such option).
            let message_bytes = target.is_strom().then_some(SCAN_MESSAGE_BYTES);
            let tickets: Vec<Vec<u8>> = match fanout {
                Fanout::Single => {
                    let scan = LogScan {
                        database: DATABASE.into(),
                        table: table.clone(),
                        from: StartPosition::Earliest,
                        columns: columns.clone(),
                        message_bytes,
                        ..Default::default()
                    };
                    vec![TicketRequest::LogScan(scan).to_json()]
                }
                Fanout::Endpoints => {
                    let info = net::get_flight_info(&ch, &[DATABASE, &table]).await?;
                    let mut t = Vec::new();
                    for e in &info.endpoint {
                        let ticket = e.ticket.as_ref().ok_or("endpoint without a ticket")?;
                        t.push(ticket_with(&ticket.ticket, &columns, message_bytes)?);
                    }
                    t
                }
            };
            let label = format!(
                "scan/{}/{}{}{label_c}",
                if projected { format!("proj{}", data::PROJECTED.len()) } else { format!("full{}", data::WIDE_COLUMNS) },
                if fanout == Fanout::Single { "1get".to_string() } else { format!("{}ep", tickets.len()) },
                kind.suffix()
            );
            let pb = env.bar(&format!("{label} {}", target.name), cfg.min_duration);
            let progress = Arc::new(AtomicU64::new(0));
            let ticker = net::ticker(&pb, progress.clone(), cfg.min_duration);
            // Warm-up (not measured): connections, page cache, allocator.
            let warm = scan_once(target, env, &tickets, &progress, kind).await?;
            if warm.rows != cfg.rows as u64 {
                return Err(format!("{} {label}: scan returned {} rows, expected {}", target.name, warm.rows, cfg.rows).into());
            }
            let probe = target.probe();
            let mut agg = Pass { rows: 0, ipc: 0, body: 0, messages: 0, wall: Duration::ZERO, gaps: stats::histogram() };
            let mut iterations = 0u32;
            while iterations < cfg.min_iterations || agg.wall < cfg.min_duration {
                let p = scan_once(target, env, &tickets, &progress, kind).await?;
                if p.rows != cfg.rows as u64 {
                    return Err(format!("{} {label}: scan returned {} rows, expected {}", target.name, p.rows, cfg.rows).into());
                }
                agg.rows += p.rows;
                agg.ipc += p.ipc;
                agg.body += p.body;
                agg.messages += p.messages;
                agg.wall += p.wall;
                agg.gaps.add(&p.gaps).map_err(|e| format!("{e:?}"))?;
                iterations += 1;
                if iterations >= 10_000 {
                    break;
                }
            }
            ticker.abort();
            pb.finish_and_clear();
            let mut row = ResultRow::new(
                &label,
                target.name,
                if kind == net::ScanClient::Raw { "gap between batch messages" } else { "gap between decoded batches" },
                agg.rows,
                agg.ipc,
                agg.wall,
                &agg.gaps,
            )
            .with("iterations", iterations)
            .with("streams", tickets.len())
            .with("messages_per_scan", agg.messages / iterations as u64)
            .with("columns", if projected { data::PROJECTED.len() } else { data::WIDE_COLUMNS })
            .with("compression", compression.as_str())
            .with("body_bytes_per_scan", agg.body / iterations as u64)
            .with("table_rows", cfg.rows)
            .with("load_seconds", (load_secs * 100.0).round() / 100.0);
            // CPU figures of scans are per scan.
            row = env.cpu(row, &probe, iterations as f64);
            let body_per_iter = agg.body / iterations as u64;
            if !projected && fanout == Fanout::Single {
                full_body_per_iter = body_per_iter;
                full_rate = row.rows_per_s;
            }
            if projected && fanout == Fanout::Single && full_body_per_iter > 0 {
                let share = body_per_iter as f64 / full_body_per_iter as f64;
                let speedup = row.rows_per_s / full_rate;
                let bytes_ratio = 1.0 / share;
                row = row
                    .with("byte_share", round3(share))
                    .with("bytes_ratio", round3(bytes_ratio))
                    .with("speedup", round3(speedup))
                    .with("speedup_vs_bytes_ratio", round3(speedup / bytes_ratio));
                env.say(format!(
                    "    projection {}/{} columns: byte share {:.1}% (bytes ratio {:.2}x), speedup {:.2}x = {:.2} of the bytes ratio",
                    data::PROJECTED.len(),
                    data::WIDE_COLUMNS,
                    share * 100.0,
                    bytes_ratio,
                    speedup,
                    speedup / bytes_ratio
                ));
            }
            env.say(stats::line(&row));
            out.push(row);
        }
        drop_table(&ch, &table).await?;
    }
    Ok(())
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

// ------------------------------------------------------------------------------- follow

pub struct FollowConfig {
    pub rate: u64,
    pub batch_rows: usize,
    pub duration: Duration,
    pub buckets: u32,
    pub durability: String,
    pub compression: String,
}

/// Microseconds on a clock shared by the writer and the reader (monotonic, anchored once to
/// the wall clock).
pub fn now_us() -> i64 {
    static ANCHOR: OnceLock<(Instant, i64)> = OnceLock::new();
    let (at, wall) = ANCHOR.get_or_init(|| {
        (Instant::now(), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0))
    });
    wall + at.elapsed().as_micros() as i64
}

/// One DoPut stream appending a follow batch every `period`, each row stamped with its send
/// time (`now_us`), and the task reading its acknowledgements.
pub struct FollowWriter {
    writer: tokio::task::JoinHandle<Res<u64>>,
    acks: tokio::task::JoinHandle<Res<hdrhistogram::Histogram<u64>>>,
}

/// What a [`FollowWriter`] writes, and when.
pub struct FollowPlan {
    pub table: String,
    pub batch_rows: usize,
    pub period: Duration,
    pub batches: u64,
    /// When the first batch goes out.
    pub first_tick: Instant,
}

impl FollowWriter {
    /// Opens the DoPut stream on the caller's runtime and starts writing at `plan.first_tick`.
    pub async fn start(url: &str, windows: Windows, plan: FollowPlan) -> Res<Self> {
        let def = data::follow_table();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<FlightData>(1024);
        let sent_at: Arc<parking_lot::Mutex<std::collections::VecDeque<Instant>>> = Default::default();
        let (schema_message, _) = net::encode(&def.schema, vec![data::follow_batch(&def, 1, 0, 0)])?;
        let mut first = schema_message;
        first.flight_descriptor = Some(append_descriptor(&plan.table)?);
        tx.send(first).await.map_err(|_| "request stream closed")?;
        let writer = {
            let sent_at = sent_at.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval_at(plan.first_tick.into(), plan.period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                let rows = plan.batch_rows as u64;
                for i in 0..plan.batches {
                    tick.tick().await;
                    let batch = data::follow_batch(&def, plan.batch_rows, (i * rows) as i64, now_us());
                    let (_, mut messages) = net::encode(&def.schema, vec![batch])?;
                    let (message, _) = messages.pop().ok_or("no record batch message")?;
                    sent_at.lock().push_back(Instant::now());
                    if tx.send(message).await.is_err() {
                        return Err::<u64, Box<dyn std::error::Error + Send + Sync>>("DoPut request stream closed early".into());
                    }
                }
                Ok(plan.batches)
            })
        };
        let mut put_client = net::client(net::connect(url, windows).await?);
        let request = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let acks = tokio::spawn(async move {
            let mut h = stats::histogram();
            let mut acks = put_client.do_put(request).await?.into_inner();
            while let Some(_ack) = tokio::time::timeout(net::STALL, acks.message()).await.map_err(|_| "no PutResult for 60 s")?? {
                if let Some(t) = sent_at.lock().pop_front() {
                    stats::record(&mut h, t.elapsed());
                }
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(h)
        });
        Ok(Self { writer, acks })
    }

    /// Waits until every batch was sent and acknowledged; the acknowledgement latencies.
    pub async fn finish(self) -> Res<hdrhistogram::Histogram<u64>> {
        self.writer.await??;
        self.acks.await?
    }
}

/// The send times a follow reader's batch carries, each written batch once: every row of a
/// written batch carries the same send time, and a scan batch may hold several written batches.
pub fn send_times(batch: &arrow_array::RecordBatch) -> Res<Vec<i64>> {
    let sent = batch.column(0).as_any().downcast_ref::<arrow_array::Int64Array>().ok_or("sent_us is not BIGINT")?;
    let mut times: Vec<i64> = sent.values().to_vec();
    times.dedup();
    Ok(times)
}

pub async fn run_follow(target: &Target, cfg: &FollowConfig, env: &Env, out: &mut Vec<ResultRow>) -> Res<()> {
    let def = data::follow_table();
    let table = "follow";
    let ch = control(target, env).await?;
    create_table(
        &ch,
        table,
        &def,
        cfg.buckets,
        &[("table.log.durability", cfg.durability.as_str()), ("table.log.arrow.compression.type", cfg.compression.as_str())],
    )
    .await?;
    // The reader subscribes first, from the end of the (empty) log.
    let scan = LogScan { database: DATABASE.into(), table: table.into(), from: StartPosition::Latest, follow: true, ..Default::default() };
    let mut reader = net::open_scan(net::connect(&target.url, env.windows).await?, TicketRequest::LogScan(scan).to_json()).await?;
    let batches_per_s = (cfg.rate as f64 / cfg.batch_rows as f64).max(1.0);
    let period = Duration::from_secs_f64(1.0 / batches_per_s);
    let total_batches = (cfg.duration.as_secs_f64() * batches_per_s).round().max(1.0) as u64;
    let expected_rows = total_batches * cfg.batch_rows as u64;
    let pb = env.bar(&format!("follow/{}/{}rps {}", cfg.durability, cfg.rate, target.name), cfg.duration);
    let progress = Arc::new(AtomicU64::new(0));
    let ticker = net::ticker(&pb, progress.clone(), cfg.duration);

    // Writer: one DoPut stream, a batch every `period`, the send time in every row.
    let plan = FollowPlan { table: table.into(), batch_rows: cfg.batch_rows, period, batches: total_batches, first_tick: Instant::now() };
    let writer = FollowWriter::start(&target.url, env.windows, plan).await?;

    // Reader: latency = receive time − send time carried by the rows.
    let mut latency = stats::histogram();
    let mut rows = 0u64;
    let probe = target.probe();
    let start = Instant::now();
    let deadline = start + cfg.duration + Duration::from_secs(30);
    while rows < expected_rows {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(next) = tokio::time::timeout(left, reader.next()).await else {
            return Err(format!("follow: received {rows} of {expected_rows} rows before the deadline").into());
        };
        let Some(batch) = next else {
            return Err(format!("follow: the scan ended after {rows} of {expected_rows} rows").into());
        };
        let batch = batch?;
        let now = now_us();
        for sent in send_times(&batch)? {
            latency.saturating_record((now - sent).max(1) as u64);
        }
        rows += batch.num_rows() as u64;
        progress.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
    }
    let elapsed = start.elapsed();
    drop(reader);
    let ack_latency = writer.finish().await?;
    ticker.abort();
    pb.finish_and_clear();
    let row = ResultRow::new(
        format!("follow/{}/{}rps", cfg.durability, cfg.rate),
        target.name,
        "row send → follow reader decoded it",
        rows,
        0,
        elapsed,
        &latency,
    )
    .with("rate_rows_per_s", cfg.rate)
    .with("batch_rows", cfg.batch_rows)
    .with("durability", cfg.durability.as_str())
    .with("compression", cfg.compression.as_str())
    .with("ack_p50_us", ack_latency.value_at_quantile(0.5))
    .with("ack_p99_us", ack_latency.value_at_quantile(0.99))
    .with("ack_p999_us", ack_latency.value_at_quantile(0.999));
    let row = env.cpu(row, &probe, 1.0);
    env.say(stats::line(&row));
    env.say(format!(
        "    writer acks: p50 {} p99 {} p999 {}",
        stats::fmt_us(ack_latency.value_at_quantile(0.5)),
        stats::fmt_us(ack_latency.value_at_quantile(0.99)),
        stats::fmt_us(ack_latency.value_at_quantile(0.999))
    ));
    out.push(row);
    drop_table(&ch, table).await?;
    Ok(())
}
