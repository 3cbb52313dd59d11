//! Primary-key table scenarios: bulk upsert load, point lookups (DoExchange and DoGet tickets,
//! one key at a time), batched DoExchange lookups, prefix lookups, partial vs full upserts,
//! changelog and snapshot scans, and RocksDB's own db_bench on the same data size.
//!
//! Strom and the rocksdict peer are driven by the same raw Arrow Flight code; db_bench runs
//! through `integration/peer/db_bench.sh`. Key tables hold exactly the keys `0..n`, loaded in a
//! scrambled order; lookups draw a `miss_ratio` share of absent keys (see `pk_data`).

use crate::data::TableDef;
use crate::net::{self, Exchange, PutPlan};
use crate::pk_data::{self, count_label, Dist, KeyPicker};
use crate::procs::Res;
use crate::scenarios::{self, Env, Target, DATABASE};
use crate::stats::{self, ResultRow, Verdict};
use arrow_array::{Array, Int32Array, Int64Array, RecordBatch};
use arrow_flight::{FlightData, FlightDescriptor};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use strom_flight_api::{
    CountKind, CountRequest, CreateTable, LogScan, LookupKind, LookupRequest, SnapshotScan, StartPosition, TicketRequest, WriteCommand,
    WriteKind,
};
use tonic::transport::Channel;

/// Which primary-key scenarios run.
#[derive(Debug, Clone, Default)]
pub struct PkParts {
    pub point: bool,
    pub batch: bool,
    pub prefix: bool,
    pub partial: bool,
    pub changelog: bool,
    pub db_bench: bool,
    pub load: bool,
}

impl PkParts {
    /// `pk` = all; `pk-load`, `pk-point`, `pk-batch`, `pk-prefix`, `pk-partial`,
    /// `pk-changelog`, `pk-dbbench` select parts (point, batch and changelog load the table).
    pub fn from_scenarios(names: &[String]) -> Self {
        let has = |n: &str| names.iter().any(|s| s == "pk" || s == n);
        let mut p = Self {
            point: has("pk-point"),
            batch: has("pk-batch"),
            prefix: has("pk-prefix"),
            partial: has("pk-partial"),
            changelog: has("pk-changelog"),
            db_bench: has("pk-dbbench"),
            load: has("pk-load"),
        };
        p.load |= p.point || p.batch || p.changelog;
        p
    }

    /// Whether a Flight server is needed (db_bench alone needs none).
    pub fn any_flight(&self) -> bool {
        self.load || self.prefix || self.partial
    }
}

pub struct PkConfig {
    pub parts: PkParts,
    pub keys: Vec<u64>,
    pub buckets: u32,
    pub durability: String,
    /// Table compression on Strom ("" = the node default).
    pub compression: String,
    pub load_batch_rows: usize,
    pub inflight: usize,
    pub point_duration: Duration,
    pub latency_client: LatencyClient,
    pub batch_keys: usize,
    pub streams: usize,
    pub batch_inflight: usize,
    pub batch_duration: Duration,
    pub miss_ratio: f64,
    pub zipf_theta: f64,
    pub prefix_rows: Vec<usize>,
    pub prefix_table_rows: usize,
    pub prefix_batch: usize,
    pub partial_rows: usize,
    pub partial_batch_rows: usize,
    pub partial_duration: Duration,
    pub partial_rounds: usize,
    pub db_bench_script: PathBuf,
    pub db_bench_seconds: u32,
    pub db_bench_threads: u32,
    /// db_bench's block cache, bytes (Strom's, like for like).
    pub db_bench_cache_bytes: u64,
    pub db_bench_dir: PathBuf,
}

/// The runtime a one-request-at-a-time latency client runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LatencyClient {
    /// Its own current-thread runtime on its own OS thread: the connection's tasks (tonic's
    /// buffer, hyper's connection and request-body tasks) run on the thread that waits for the
    /// answer, so a round trip wakes no other thread of the client.
    CurrentThread,
    /// The bench's multi-thread runtime: every round trip hops between its worker threads.
    MultiThread,
}

impl LatencyClient {
    pub fn name(self) -> &'static str {
        match self {
            LatencyClient::CurrentThread => "current-thread",
            LatencyClient::MultiThread => "multi-thread",
        }
    }
}

/// Runs a latency scenario on the client runtime `cfg` asks for. The scenario opens its own
/// connections inside `scenario`, so they belong to that runtime.
async fn on_latency_client<'a, T, F, Fut>(cfg: &PkConfig, scenario: F) -> Res<T>
where
    T: Send,
    F: FnOnce() -> Fut + Send + 'a,
    Fut: std::future::Future<Output = Res<T>>,
{
    if cfg.latency_client == LatencyClient::MultiThread {
        return scenario().await;
    }
    tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let client = std::thread::Builder::new().name("latency-client".into()).spawn_scoped(scope, || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                runtime.block_on(scenario())
            })?;
            client.join().map_err(|_| "the latency client thread panicked")?
        })
    })
}

/// Pre-encoded batches of one table load.
pub struct Load {
    schema_message: FlightData,
    pool: Arc<Vec<(FlightData, u64)>>,
    rows: u64,
}

fn encode_load(schema: &SchemaRef, batches: Vec<RecordBatch>) -> Res<Load> {
    let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
    let (schema_message, pool) = net::encode(schema, batches)?;
    Ok(Load { schema_message, pool: Arc::new(pool), rows })
}

pub fn upsert_descriptor(table: &str, targets: Option<&[&str]>) -> Res<FlightDescriptor> {
    let cmd = WriteCommand {
        write: WriteKind::Upsert,
        target_columns: targets.map(|t| t.iter().map(|s| s.to_string()).collect()),
        ..WriteCommand::append(DATABASE, table)
    };
    Ok(FlightDescriptor::new_cmd(serde_json::to_vec(&cmd)?))
}

pub async fn create_pk_table(
    ch: &Channel,
    target: &Target,
    cfg: &PkConfig,
    table: &str,
    def: &TableDef,
    key: &[&str],
    bucket_key: &[&str],
) -> Res<()> {
    net::action(ch, "create_database", &json!({"name": DATABASE, "if_not_exists": true})).await?;
    net::action(ch, "drop_table", &json!({"database": DATABASE, "table": table, "if_exists": true})).await?;
    let mut options = BTreeMap::new();
    if target.is_strom() {
        options.insert("table.log.durability".to_string(), cfg.durability.clone());
        if !cfg.compression.is_empty() {
            options.insert("table.log.arrow.compression.type".to_string(), cfg.compression.clone());
        }
    }
    let req = CreateTable {
        database: DATABASE.into(),
        table: table.into(),
        columns: def.columns.clone(),
        primary_key: key.iter().map(|s| s.to_string()).collect(),
        bucket_key: bucket_key.iter().map(|s| s.to_string()).collect(),
        bucket_num: Some(cfg.buckets),
        options,
        ..Default::default()
    };
    net::action(ch, "create_table", &serde_json::to_value(&req)?).await?;
    Ok(())
}

/// A bar over a known number of rows.
fn rows_bar(env: &Env, label: &str, total: u64, done: Arc<AtomicU64>) -> (ProgressBar, tokio::task::JoinHandle<()>) {
    let pb = env.progress.add(ProgressBar::new(total.max(1)));
    pb.set_style(
        ProgressStyle::with_template("{prefix:<44} [{bar:30}] {pos}/{len} rows {per_sec} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_prefix(label.to_string());
    let bar = pb.clone();
    let ticker = tokio::spawn(async move {
        loop {
            bar.set_position(done.load(Ordering::Relaxed));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    (pb, ticker)
}

/// Loads every batch once through one pipelined DoPut upsert stream; one result row.
pub async fn load(target: &Target, env: &Env, cfg: &PkConfig, table: &str, data: &Load, label: &str) -> Res<ResultRow> {
    let done = Arc::new(AtomicU64::new(0));
    let settled = env.settle(&format!("{label} {}", target.name)).await;
    let (pb, ticker) = rows_bar(env, &format!("{label} {}", target.name), data.rows, done.clone());
    let probe = target.probe();
    let plan = PutPlan {
        descriptor: upsert_descriptor(table, None)?,
        schema_message: data.schema_message.clone(),
        pool: data.pool.clone(),
        inflight: cfg.inflight,
        duration: Duration::from_secs(3600),
        max_batches: data.pool.len() as u64,
    };
    let outcome = net::put_stream(net::connect(&target.url, env.windows).await?, plan, done).await;
    ticker.abort();
    pb.finish_and_clear();
    let o = outcome?;
    if o.rows != data.rows {
        return Err(format!("{} {label}: {} rows acknowledged, {} sent", target.name, o.rows, data.rows).into());
    }
    let row = ResultRow::new(label, target.name, "batch send → PutResult", o.rows, o.bytes, o.elapsed, &o.latency)
        .with("batch_rows", cfg.load_batch_rows)
        .with("inflight", cfg.inflight)
        .with("buckets", cfg.buckets);
    let row = settled.note(env.cpu(row, &probe, 1.0));
    env.say(stats::line(&row));
    Ok(row)
}

/// Checks the loaded row count on Strom (`{"count": "rows"}`); the peer would iterate.
pub async fn check_count(target: &Target, env: &Env, table: &str, expected: u64) -> Res<()> {
    if !target.is_strom() {
        return Ok(());
    }
    let ticket =
        TicketRequest::Count(CountRequest { kind: CountKind::Rows, database: DATABASE.into(), table: table.into(), ..Default::default() });
    let ch = scenarios::control(target, env).await?;
    let mut c = net::client(ch);
    let response = c.do_get(arrow_flight::Ticket { ticket: ticket.to_json().into() }).await?.into_inner();
    let mut batches =
        arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(futures::TryStreamExt::map_err(response, Into::into));
    let mut count = None;
    while let Some(b) = futures::StreamExt::next(&mut batches).await {
        let b = b?;
        if let Some(col) = b.column_by_name("count").and_then(|c| c.as_any().downcast_ref::<Int64Array>()) {
            count = col.iter().next().flatten();
        }
    }
    match count {
        Some(c) if c as u64 == expected => Ok(()),
        other => Err(format!("{table}: count rows says {other:?}, {expected} were loaded").into()),
    }
}

pub fn key_schema(names: &[&str]) -> SchemaRef {
    Arc::new(Schema::new(names.iter().map(|n| Field::new(*n, DataType::Int64, false)).collect::<Vec<_>>()))
}

pub fn key_batch(schema: &SchemaRef, keys: Vec<i64>) -> Res<RecordBatch> {
    Ok(RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(keys))])?)
}

pub fn lookup_command(kind: LookupKind, table: &str) -> LookupRequest {
    LookupRequest { lookup: kind, database: DATABASE.into(), table: table.into(), ..Default::default() }
}

#[derive(Clone, Copy, PartialEq)]
enum Api {
    Exchange,
    Get,
}

/// Point lookups one key at a time: send one key, wait for the answer, repeat.
async fn point_lookups(target: &Target, env: &Env, cfg: &PkConfig, table: &str, n: u64, out: &mut Vec<ResultRow>) -> Res<()> {
    let schema = key_schema(pk_data::USERS_KEY);
    for api in [Api::Exchange, Api::Get] {
        for dist in [Dist::Uniform, Dist::Zipf] {
            let label = format!("pk/point/{}/{}/{}", if api == Api::Exchange { "xchg" } else { "get" }, dist.name(), count_label(n));
            let mut picker = KeyPicker::new(n, dist, cfg.miss_ratio, cfg.zipf_theta, 11);
            let settled = env.settle(&format!("{label} {}", target.name)).await;
            let channel = net::connect(&target.url, env.windows).await?;
            let command = serde_json::to_value(lookup_command(LookupKind::PrimaryKey, table))?;
            let mut exchange = if api == Api::Exchange { Some(Exchange::open(channel.clone(), &command, &schema).await?) } else { None };
            let pb = env.bar(&format!("{label} {}", target.name), cfg.point_duration);
            let done = Arc::new(AtomicU64::new(0));
            let ticker = net::ticker(&pb, done.clone(), cfg.point_duration);
            let mut h = stats::histogram();
            let (mut requests, mut found, mut wrong, mut bytes) = (0u64, 0u64, 0u64, 0u64);
            let mut probe = None;
            let mut start = Instant::now();
            let warmup = 300u64;
            let mut i = 0u64;
            loop {
                if i == warmup {
                    start = Instant::now();
                    probe = Some(target.probe());
                }
                if i >= warmup && start.elapsed() >= cfg.point_duration {
                    break;
                }
                let (key, hit) = picker.next();
                let t = Instant::now();
                let (rows, answer_bytes) = match exchange.as_mut() {
                    Some(ex) => {
                        let before = ex.received_bytes();
                        ex.send(&key_batch(&schema, vec![key])?).await?;
                        let answer = ex.recv().await?;
                        (answer.num_rows() as u64, ex.received_bytes() - before)
                    }
                    None => {
                        let ticket = TicketRequest::Lookup(LookupRequest {
                            keys: vec![vec![json!(key)]],
                            ..lookup_command(LookupKind::PrimaryKey, table)
                        });
                        let o = net::scan(channel.clone(), ticket.to_json(), done.clone(), net::ScanClient::Decoding).await?;
                        (o.rows, o.ipc_bytes)
                    }
                };
                let elapsed = t.elapsed();
                if i >= warmup {
                    stats::record(&mut h, elapsed);
                    requests += 1;
                    found += rows;
                    bytes += answer_bytes;
                    wrong += u64::from(rows != u64::from(hit));
                    done.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
            let elapsed = start.elapsed();
            drop(exchange);
            ticker.abort();
            pb.finish_and_clear();
            let row = ResultRow::new(&label, target.name, "request → answer (1 key)", requests, bytes, elapsed, &h)
                .with("api", if api == Api::Exchange { "DoExchange" } else { "DoGet ticket" })
                .with("distribution", dist.name())
                .with("table_keys", n)
                .with("found", found)
                .with("wrong_answers", wrong)
                .with("miss_ratio", cfg.miss_ratio)
                .with("client_runtime", cfg.latency_client.name());
            let row = settled.note(match &probe {
                Some(p) => env.cpu(row, p, 1.0),
                None => row,
            });
            env.say(stats::line(&row));
            if wrong > 0 {
                env.say(format!("    WARNING: {wrong} of {requests} answers had the wrong number of rows"));
            }
            out.push(row);
        }
    }
    Ok(())
}

/// One pre-encoded request of a batched lookup: the message, its keys and the expected rows.
pub struct Request {
    message: FlightData,
    keys: u64,
    expected_rows: u64,
}

/// What one batched-lookup stream measured.
struct StreamOutcome {
    latency: hdrhistogram::Histogram<u64>,
    keys: u64,
    rows: u64,
    bytes: u64,
    mismatches: u64,
    elapsed: Duration,
}

/// One DoExchange stream sending pre-encoded requests round-robin, `inflight` unanswered.
async fn lookup_stream(
    channel: Channel,
    command: serde_json::Value,
    schema: SchemaRef,
    pool: Arc<Vec<Request>>,
    inflight: usize,
    duration: Duration,
    done: Arc<AtomicU64>,
) -> Res<StreamOutcome> {
    let mut ex = Exchange::open(channel, &command, &schema).await?;
    // Warm-up: one request (connection, server plan, caches).
    ex.send_encoded(pool[0].message.clone()).await?;
    ex.recv().await?;
    let bytes_before = ex.received_bytes();
    let mut pending = std::collections::VecDeque::new();
    let mut o = StreamOutcome { latency: stats::histogram(), keys: 0, rows: 0, bytes: 0, mismatches: 0, elapsed: Duration::ZERO };
    let start = Instant::now();
    let mut next = 1usize;
    loop {
        while pending.len() < inflight.max(1) && start.elapsed() < duration {
            let r = &pool[next % pool.len()];
            ex.send_encoded(r.message.clone()).await?;
            pending.push_back((Instant::now(), next % pool.len()));
            next += 1;
        }
        let Some((sent, idx)) = pending.pop_front() else { break };
        let answer = ex.recv().await?;
        stats::record(&mut o.latency, sent.elapsed());
        let r = &pool[idx];
        o.keys += r.keys;
        o.rows += answer.num_rows() as u64;
        o.mismatches += u64::from(answer.num_rows() as u64 != r.expected_rows);
        if answer.column_by_name(strom_flight_api::KEY_INDEX_COLUMN).and_then(|c| c.as_any().downcast_ref::<Int32Array>()).is_none() {
            return Err(format!("answer has no int32 {} column", strom_flight_api::KEY_INDEX_COLUMN).into());
        }
        done.fetch_add(r.keys, Ordering::Relaxed);
    }
    o.elapsed = start.elapsed();
    o.bytes = ex.received_bytes() - bytes_before;
    Ok(o)
}

/// Runs `streams` concurrent lookup streams over request pools; one result row (rows = keys
/// sent), not printed yet, and the rows returned.
#[allow(clippy::too_many_arguments)]
pub async fn lookup_streams(
    target: &Target,
    env: &Env,
    label: &str,
    kind: LookupKind,
    table: &str,
    key_names: &[&str],
    pools: Vec<Arc<Vec<Request>>>,
    inflight: usize,
    duration: Duration,
) -> Res<(ResultRow, u64)> {
    let schema = key_schema(key_names);
    let command = serde_json::to_value(lookup_command(kind, table))?;
    let settled = env.settle(&format!("{label} {}", target.name)).await;
    let pb = env.bar(&format!("{label} {}", target.name), duration);
    let done = Arc::new(AtomicU64::new(0));
    let ticker = net::ticker(&pb, done.clone(), duration);
    let probe = target.probe();
    let mut tasks = Vec::new();
    for pool in pools {
        let channel = net::connect(&target.url, env.windows).await?;
        tasks.push(tokio::spawn(lookup_stream(channel, command.clone(), schema.clone(), pool, inflight, duration, done.clone())));
    }
    let mut latency = stats::histogram();
    let (mut keys, mut rows, mut bytes, mut mismatches, mut elapsed) = (0u64, 0u64, 0u64, 0u64, Duration::ZERO);
    let streams = tasks.len();
    for t in tasks {
        let o = t.await??;
        latency.add(&o.latency).map_err(|e| format!("{e:?}"))?;
        keys += o.keys;
        rows += o.rows;
        bytes += o.bytes;
        mismatches += o.mismatches;
        elapsed = elapsed.max(o.elapsed);
    }
    ticker.abort();
    pb.finish_and_clear();
    let secs = elapsed.as_secs_f64().max(1e-9);
    let row = ResultRow::new(label, target.name, "batch send → answer", keys, bytes, elapsed, &latency)
        .with("streams", streams)
        .with("inflight_per_stream", inflight)
        .with("rows_returned", rows)
        .with("rows_returned_per_s", (rows as f64 / secs).round())
        .with("mismatched_answers", mismatches);
    let row = settled.note(env.cpu(row, &probe, 1.0));
    if mismatches > 0 {
        env.say(format!("    WARNING: {label}: {mismatches} answers had a row count other than expected"));
    }
    Ok((row, rows))
}

/// Pools of pre-encoded key batches (one pool per stream) for point or prefix lookups.
pub fn request_pools(
    n: u64,
    dist: Dist,
    cfg: &PkConfig,
    key_name: &str,
    keys_per_request: usize,
    rows_per_hit: u64,
    streams: usize,
) -> Res<Vec<Arc<Vec<Request>>>> {
    let schema = key_schema(&[key_name]);
    let mut encoder = net::BatchEncoder::default();
    let mut pools = Vec::new();
    for s in 0..streams {
        let mut picker = KeyPicker::new(n, dist, cfg.miss_ratio, cfg.zipf_theta, 1000 + s as u64);
        let mut pool = Vec::new();
        for _ in 0..32 {
            let draws: Vec<(i64, bool)> = (0..keys_per_request).map(|_| picker.next()).collect();
            let hits = draws.iter().filter(|(_, hit)| *hit).count() as u64;
            let batch = key_batch(&schema, draws.iter().map(|(k, _)| *k).collect())?;
            pool.push(Request { message: encoder.batch(&batch)?, keys: keys_per_request as u64, expected_rows: hits * rows_per_hit });
        }
        pools.push(Arc::new(pool));
    }
    Ok(pools)
}

async fn batched_lookups(target: &Target, env: &Env, cfg: &PkConfig, table: &str, n: u64, out: &mut Vec<ResultRow>) -> Res<()> {
    for dist in [Dist::Uniform, Dist::Zipf] {
        let label = format!("pk/batch{}/s{}/{}/{}", count_label(cfg.batch_keys as u64), cfg.streams, dist.name(), count_label(n));
        let pools = request_pools(n, dist, cfg, "id", cfg.batch_keys, 1, cfg.streams)?;
        let (row, _) = lookup_streams(
            target,
            env,
            &label,
            LookupKind::PrimaryKey,
            table,
            pk_data::USERS_KEY,
            pools,
            cfg.batch_inflight,
            cfg.batch_duration,
        )
        .await?;
        let row = row.with("distribution", dist.name()).with("table_keys", n).with("batch_keys", cfg.batch_keys);
        env.say(stats::line(&row));
        out.push(row);
    }
    Ok(())
}

/// Changelog (log scan) and snapshot scan of the loaded table, decoded by the client.
async fn scans(target: &Target, env: &Env, table: &str, n: u64, out: &mut Vec<ResultRow>) -> Res<()> {
    let log = TicketRequest::LogScan(LogScan {
        database: DATABASE.into(),
        table: table.into(),
        from: StartPosition::Earliest,
        ..Default::default()
    });
    let snapshot = TicketRequest::SnapshotScan(SnapshotScan { database: DATABASE.into(), table: table.into(), ..Default::default() });
    for (name, ticket, latency) in
        [("changelog", log, "gap between decoded batches"), ("snapshot", snapshot, "gap between decoded batches")]
    {
        let label = format!("pk/{name}/{}", count_label(n));
        let settled = env.settle(&format!("{label} {}", target.name)).await;
        let done = Arc::new(AtomicU64::new(0));
        let (pb, ticker) = rows_bar(env, &format!("{label} {}", target.name), n, done.clone());
        let probe = target.probe();
        let start = Instant::now();
        let o = net::scan(net::connect(&target.url, env.windows).await?, ticket.to_json(), done, net::ScanClient::Decoding).await;
        let elapsed = start.elapsed();
        ticker.abort();
        pb.finish_and_clear();
        let o = o?;
        if o.rows != n {
            env.say(format!("    WARNING: {label} returned {} rows, the table has {n}", o.rows));
        }
        let row = ResultRow::new(&label, target.name, latency, o.rows, o.ipc_bytes, elapsed, &o.gaps)
            .with("messages", o.messages)
            .with("body_bytes", o.body_bytes);
        let row = settled.note(env.cpu(row, &probe, 1.0));
        env.say(stats::line(&row));
        out.push(row);
    }
    Ok(())
}

/// The users table of `n` keys: load, lookups, scans; the table is dropped at the end.
async fn users_runs(target: &Target, env: &Env, cfg: &PkConfig, n: u64, data: &Load, out: &mut Vec<ResultRow>) -> Res<()> {
    let ch = scenarios::control(target, env).await?;
    let table = format!("pk_users_{}", count_label(n).to_lowercase());
    create_pk_table(&ch, target, cfg, &table, &pk_data::users_table(), pk_data::USERS_KEY, &[]).await?;
    let row = load(target, env, cfg, &table, data, &format!("pk/load/{}", count_label(n))).await?;
    out.push(row.with("table_keys", n));
    check_count(target, env, &table, n).await?;
    if cfg.parts.point {
        on_latency_client(cfg, || point_lookups(target, env, cfg, &table, n, out)).await?;
    }
    if cfg.parts.batch {
        batched_lookups(target, env, cfg, &table, n, out).await?;
    }
    if cfg.parts.changelog && target.is_strom() {
        scans(target, env, &table, n, out).await?;
    }
    scenarios::drop_table(&ch, &table).await?;
    Ok(())
}

pub fn users_load(cfg: &PkConfig, n: u64) -> Res<(Load, usize)> {
    let def = pk_data::users_table();
    let step = cfg.load_batch_rows.max(1) as u64;
    let mut batches = Vec::new();
    let mut first = 0u64;
    while first < n {
        let ids: Vec<i64> = (first..(first + step).min(n)).map(|i| pk_data::scramble(i, n)).collect();
        batches.push(pk_data::users_batch(&def, &ids, first));
        first += step;
    }
    let value_bytes = batches.first().map(pk_data::stored_row_bytes).unwrap_or(64);
    Ok((encode_load(&def.schema, batches)?, value_bytes))
}

/// Prefix lookups on `PRIMARY KEY (user_id, ds, order_id)` with `per` rows per user.
async fn prefix_runs(target: &Target, env: &Env, cfg: &PkConfig, out: &mut Vec<ResultRow>) -> Res<()> {
    let def = pk_data::orders_table();
    let ch = scenarios::control(target, env).await?;
    for &per in &cfg.prefix_rows {
        let per = per.max(1);
        let users = (cfg.prefix_table_rows / per).max(2) as u64;
        let table = format!("pk_orders_{per}");
        create_pk_table(&ch, target, cfg, &table, &def, pk_data::ORDERS_KEY, pk_data::ORDERS_PREFIX).await?;
        let step = (cfg.load_batch_rows / per).max(1) as u64;
        let mut batches = Vec::new();
        let mut first = 0u64;
        while first < users {
            let ids: Vec<i64> = (first..(first + step).min(users)).map(|i| pk_data::scramble(i, users)).collect();
            batches.push(pk_data::orders_batch(&def, &ids, per, first));
            first += step;
        }
        let data = encode_load(&def.schema, batches)?;
        let row = load(target, env, cfg, &table, &data, &format!("pk/prefix{per}/load")).await?;
        out.push(row.with("rows_per_prefix", per).with("prefixes", users));
        for (batch, streams) in [(1usize, 1usize), (cfg.prefix_batch.max(1), cfg.streams)] {
            let label = format!("pk/prefix{per}/b{batch}/s{streams}/uniform");
            let pools = request_pools(users, Dist::Uniform, cfg, "user_id", batch, per as u64, streams)?;
            let inflight = if batch == 1 { 1 } else { cfg.batch_inflight };
            let duration = if batch == 1 { cfg.point_duration } else { cfg.batch_duration };
            let run = || lookup_streams(target, env, &label, LookupKind::Prefix, &table, pk_data::ORDERS_PREFIX, pools, inflight, duration);
            // One prefix per request measures latency: on the latency client's runtime.
            let (row, rows) = if batch == 1 { on_latency_client(cfg, run).await? } else { run().await? };
            let row = if batch == 1 { row.with("client_runtime", cfg.latency_client.name()) } else { row };
            // rows/s of prefix lookups = rows returned; the prefixes looked up are kept aside.
            let (prefixes, seconds) = (row.rows, row.seconds);
            let mut row =
                row.with("prefixes_per_s", (prefixes as f64 / seconds).round()).with("rows_per_prefix", per).with("prefix_batch", batch);
            row.rows = rows;
            row.rows_per_s = rows as f64 / row.seconds;
            env.say(stats::line(&row));
            env.say(format!(
                "    {label}: {} prefixes/s, {} rows/s returned",
                stats::fmt_rate(prefixes as f64 / row.seconds),
                stats::fmt_rate(row.rows_per_s)
            ));
            out.push(row);
        }
        scenarios::drop_table(&ch, &table).await?;
    }
    Ok(())
}

/// Full-row upserts vs partial updates of 3 of the 10 columns, on existing keys, every write
/// changing the row it writes.
async fn partial_runs(target: &Target, env: &Env, cfg: &PkConfig, out: &mut Vec<ResultRow>) -> Res<()> {
    let def = pk_data::wide10_table();
    let table = "pk_wide10";
    let n = cfg.partial_rows.max(1) as u64;
    let ch = scenarios::control(target, env).await?;
    create_pk_table(&ch, target, cfg, table, &def, pk_data::USERS_KEY, &[]).await?;
    let step = cfg.load_batch_rows.max(1) as u64;
    let mut batches = Vec::new();
    let mut first = 0u64;
    while first < n {
        let ids: Vec<i64> = (first..(first + step).min(n)).map(|i| pk_data::scramble(i, n)).collect();
        batches.push(pk_data::wide10_batch(&def, &ids, first));
        first += step;
    }
    let data = encode_load(&def.schema, batches)?;
    let row = load(target, env, cfg, table, &data, "pk/wide10/load").await?;
    out.push(row.with("table_keys", n));
    // The same keys for both: pools of batches of random existing keys.
    let mut picker = KeyPicker::new(n, Dist::Uniform, 0.0, cfg.zipf_theta, 77);
    let id_sets: Vec<Vec<i64>> = (0..16).map(|_| (0..cfg.partial_batch_rows.max(1)).map(|_| picker.next().0).collect()).collect();
    let order: Vec<(usize, bool)> = (0..cfg.partial_rounds)
        .flat_map(|round| if round % 2 == 0 { [(round, false), (round, true)] } else { [(round, true), (round, false)] })
        .collect();
    for (round, partial) in order {
        // The pool is sent round and round: its second half writes other values to the keys of
        // the first, so every pass changes the rows it touches. (A pool of one set of values
        // measured no-op upserts from its second pass on: a write equal to the stored row
        // changes nothing, appends nothing and applies nothing.)
        let batches: Vec<RecordBatch> = [500u64, 700]
            .iter()
            .flat_map(|&seed| id_sets.iter().enumerate().map(move |(i, ids)| (seed + i as u64, ids)))
            .map(|(seed, ids)| if partial { pk_data::partial_batch(&def, ids, seed) } else { pk_data::wide10_batch(&def, ids, seed) })
            .collect();
        let schema = batches[0].schema();
        let (schema_message, pool) = net::encode(&schema, batches)?;
        let label =
            if partial { format!("pk/upsert/partial{}of10", pk_data::PARTIAL_TARGETS.len()) } else { "pk/upsert/full10".to_string() };
        let settled = env.settle(&format!("{label} {}", target.name)).await;
        let pb = env.bar(&format!("{label} {}", target.name), cfg.partial_duration);
        let done = Arc::new(AtomicU64::new(0));
        let ticker = net::ticker(&pb, done.clone(), cfg.partial_duration);
        let probe = target.probe();
        let plan = PutPlan {
            descriptor: upsert_descriptor(table, partial.then_some(pk_data::PARTIAL_TARGETS))?,
            schema_message,
            pool: Arc::new(pool),
            inflight: cfg.inflight,
            duration: cfg.partial_duration,
            max_batches: u64::MAX,
        };
        let o = net::put_stream(net::connect(&target.url, env.windows).await?, plan, done).await;
        ticker.abort();
        pb.finish_and_clear();
        let o = o?;
        let row = ResultRow::new(&label, target.name, "batch send → PutResult", o.rows, o.bytes, o.elapsed, &o.latency)
            .with("batch_rows", cfg.partial_batch_rows)
            .with("columns_written", if partial { 1 + pk_data::PARTIAL_TARGETS.len() } else { 10 })
            .with("table_keys", n)
            .with("round", round + 1);
        let row = settled.note(env.cpu(row, &probe, 1.0));
        env.say(stats::line(&row));
        out.push(row);
    }
    scenarios::drop_table(&ch, table).await?;
    Ok(())
}

/// Runs `db_bench.sh` for `n` keys of `value_bytes`; one row per db_bench benchmark.
async fn db_bench(env: &Env, cfg: &PkConfig, n: u64, value_bytes: usize, out: &mut Vec<ResultRow>) -> Res<()> {
    let dir = tempfile::Builder::new().prefix("db_bench-").tempdir_in(&cfg.db_bench_dir)?;
    let args: Vec<String> = vec![
        cfg.db_bench_script.display().to_string(),
        "--num".into(),
        n.to_string(),
        "--value-size".into(),
        value_bytes.to_string(),
        "--key-size".into(),
        pk_data::STORED_KEY_BYTES.to_string(),
        "--threads".into(),
        cfg.db_bench_threads.to_string(),
        "--cache-bytes".into(),
        cfg.db_bench_cache_bytes.to_string(),
        "--batch".into(),
        cfg.batch_keys.to_string(),
        "--seconds".into(),
        cfg.db_bench_seconds.to_string(),
        "--dir".into(),
        dir.path().display().to_string(),
    ];
    let budget = Duration::from_secs(u64::from(cfg.db_bench_seconds) * 2 + n / 150_000);
    let label = format!("db_bench {}", count_label(n));
    let settled = env.settle(&label).await;
    let pb = env.bar(&label, budget);
    let ticker = net::ticker(&pb, Arc::new(AtomicU64::new(0)), budget);
    let start = Instant::now();
    let output = tokio::task::spawn_blocking(move || std::process::Command::new("bash").args(&args).output()).await??;
    ticker.abort();
    pb.finish_and_clear();
    if !output.status.success() {
        return Err(format!("db_bench.sh failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr).trim()).into());
    }
    let text = String::from_utf8_lossy(&output.stdout);
    for line in text.lines().filter_map(|l| l.strip_prefix("db_bench: ")) {
        let mut words = line.split_whitespace();
        let Some(name) = words.next() else { continue };
        let fields: BTreeMap<&str, &str> = words.filter_map(|w| w.split_once('=')).collect();
        let Some(ops) = fields.get("ops_per_s").and_then(|v| v.parse::<f64>().ok()) else {
            env.say(format!("    db_bench {name}: {line}"));
            continue;
        };
        let us = |k: &str| fields.get(k).and_then(|v| v.parse::<f64>().ok());
        let short = if name == "multireadrandom" { format!("multiread{}", count_label(cfg.batch_keys as u64)) } else { name.to_string() };
        let latency = if name == "multireadrandom" { "one MultiGet batch (in process)" } else { "one operation (in process)" };
        let mut row = ResultRow::new(
            format!("dbbench/{short}/{}", count_label(n)),
            "dbbench",
            latency,
            0,
            0,
            Duration::from_secs(1),
            &stats::histogram(),
        );
        row.rows_per_s = ops;
        row.seconds = 0.0;
        row.p50_us = us("p50_us").unwrap_or(0.0).ceil() as u64;
        row.p99_us = us("p99_us").unwrap_or(0.0).ceil() as u64;
        row.p999_us = us("p999_us").unwrap_or(0.0).ceil() as u64;
        row.mb_per_s = 0.0;
        for (k, v) in &fields {
            row = row.with(k, v.parse::<f64>().map(serde_json::Value::from).unwrap_or_else(|_| json!(v)));
        }
        row = settled
            .note(row)
            .with("value_size", value_bytes)
            .with("key_size", pk_data::STORED_KEY_BYTES)
            .with("threads", cfg.db_bench_threads);
        env.say(stats::line(&row));
        out.push(row);
    }
    env.say(format!("    db_bench {}: {:.0} s in total (fill + reads)", count_label(n), start.elapsed().as_secs_f64()));
    Ok(())
}

/// Every primary-key scenario on every target (Strom and the rocksdict peer), then db_bench.
pub async fn run_pk(targets: &[Target], cfg: &PkConfig, env: &Env, out: &mut Vec<ResultRow>) -> Res<()> {
    for &n in &cfg.keys {
        let (data, value_bytes) = if cfg.parts.load || cfg.parts.db_bench {
            let t = Instant::now();
            let (d, v) = users_load(cfg, n)?;
            env.say(format!(
                "    generated {} rows ({:.0} MB of IPC, {v} B per stored row) in {:.1} s",
                count_label(n),
                d.pool.iter().map(|(m, _)| net::ipc_len(m)).sum::<u64>() as f64 / 1e6,
                t.elapsed().as_secs_f64()
            ));
            (Some(d), v)
        } else {
            (None, 0)
        };
        if let (true, Some(data)) = (cfg.parts.load, &data) {
            for t in targets {
                users_runs(t, env, cfg, n, data, out).await?;
            }
        }
        drop(data);
        if cfg.parts.db_bench {
            db_bench(env, cfg, n, value_bytes, out).await?;
        }
    }
    if cfg.parts.prefix {
        for t in targets {
            prefix_runs(t, env, cfg, out).await?;
        }
    }
    if cfg.parts.partial {
        for t in targets {
            partial_runs(t, env, cfg, out).await?;
        }
    }
    Ok(())
}

fn find<'a>(rows: &'a [ResultRow], scenario: &str, target: &str) -> Option<&'a ResultRow> {
    rows.iter().find(|r| r.scenario == scenario && r.target == target)
}

/// The targets for primary-key tables, from the measured rows.
pub fn verdicts(rows: &[ResultRow]) -> Vec<Verdict> {
    let mut out = Vec::new();
    for r in rows.iter().filter(|r| r.target == "strom" && r.scenario.starts_with("pk/point/")) {
        out.push(Verdict {
            target: format!("{}: point lookup p50 <= 150 µs, p99 <= 500 µs", r.scenario),
            measured: format!("p50 {} p99 {} p999 {}", stats::fmt_us(r.p50_us), stats::fmt_us(r.p99_us), stats::fmt_us(r.p999_us)),
            met: r.p50_us <= 150 && r.p99_us <= 500,
        });
    }
    for r in rows.iter().filter(|r| r.target == "strom" && r.scenario.starts_with("pk/batch")) {
        let n = r.scenario.rsplit('/').next().unwrap_or("");
        // db_bench's readrandom draws keys uniformly: only the uniform run compares like for like.
        let uniform = r.scenario.contains("/uniform/");
        if let (true, Some(db)) = (uniform, find(rows, &format!("dbbench/readrandom/{n}"), "dbbench")) {
            let ratio = r.rows_per_s / db.rows_per_s;
            out.push(Verdict {
                target: format!("{}: batched lookups >= 0.5x db_bench readrandom", r.scenario),
                measured: format!("{} vs {} keys/s = {ratio:.2}x", stats::fmt_rate(r.rows_per_s), stats::fmt_rate(db.rows_per_s)),
                met: ratio >= 0.5,
            });
        }
        if let Some(peer) = find(rows, &r.scenario, "rocksdict") {
            let ratio = r.rows_per_s / peer.rows_per_s;
            out.push(Verdict {
                target: format!("{}: batched lookups >= 2x the rocksdict peer", r.scenario),
                measured: format!("{} vs {} keys/s = {ratio:.2}x", stats::fmt_rate(r.rows_per_s), stats::fmt_rate(peer.rows_per_s)),
                met: ratio >= 2.0,
            });
        }
    }
    let full = find(rows, "pk/upsert/full10", "strom");
    let partial = rows.iter().find(|r| r.target == "strom" && r.scenario.starts_with("pk/upsert/partial"));
    if let (Some(f), Some(p)) = (full, partial) {
        let ratio = p.rows_per_s / f.rows_per_s;
        out.push(Verdict {
            target: format!("{}: partial update >= 0.5x full-row upsert (rows/s)", p.scenario),
            measured: format!("{} vs {} rows/s = {ratio:.2}x", stats::fmt_rate(p.rows_per_s), stats::fmt_rate(f.rows_per_s)),
            met: ratio >= 0.5,
        });
    }
    out
}
