//! The `joins` scenario: join state and speed in Flink against Strom (issue 13, item 4).
//!
//! Two parts, each a Java half (java-connector's test classes on an in-process Flink
//! MiniCluster, the connector calling the Rust client over JNI) driven from here:
//! - `lookup`: the `pk` scenarios' 1M-row users table is loaded, the node's own batched
//!   DoExchange lookups of it are measured (uniform keys, as `pk-batch`), then
//!   `io.strom.flink.bench.LookupJoinBench` runs a `FOR SYSTEM_TIME AS OF` lookup join of a
//!   datagen probe stream against the same table through the async lookup function (default
//!   options, no cache) at each parallelism and each Flink `buffer-capacity` (keys in flight per
//!   subtask: Flink's default 100, and the 1000 and 2000 docs/flink.md recommends), and the node's rate
//!   is measured again. Target:
//!   the join's rows/s ≥ 0.5× the node's batched keys/s.
//! - `state`: `io.strom.flink.bench.JoinStateBench` runs integration/scenarios/attribution.sql's
//!   join as a delta join and as a regular streaming join while the input grows in steps
//!   (checkpoint size after each step), then each alone over the whole input (rows/s to the full
//!   result).
//!
//! The Java halves print one JSON line per measurement; they are echoed as they come, kept in
//! the JSON summary, and summed up at the end.

use crate::bridge::java_command;
use crate::pk::{self, PkConfig};
use crate::pk_data::{self, count_label, Dist};
use crate::procs::Res;
use crate::scenarios::{self, Env, Target, DATABASE};
use crate::stats::{self, ResultRow, Verdict};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use strom_flight_api::LookupKind;
use tokio::io::AsyncBufReadExt;

/// The scenario's flags (flattened into strom-bench's).
#[derive(clap::Args, Debug)]
pub struct JoinsArgs {
    /// Joins: parts to run: lookup (async lookup join vs the node's batched lookups), state
    /// (delta vs regular join: checkpoint size as the input grows, rows/s to the full result).
    #[arg(long, value_delimiter = ',', default_value = "lookup,state")]
    pub joins_parts: Vec<String>,
    /// Joins: keys of the looked-up primary-key table.
    #[arg(long, default_value_t = 1_000_000)]
    pub joins_lookup_keys: u64,
    /// Joins: probe rows of each lookup-join job.
    #[arg(long, default_value_t = 2_000_000)]
    pub joins_probe_rows: u64,
    /// Joins: parallelisms of the lookup-join jobs (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub joins_lookup_parallelism: Vec<usize>,
    /// Joins: Flink's `table.exec.async-lookup.buffer-capacity` (most keys in flight per
    /// subtask) of the lookup-join jobs, one job per value and parallelism (comma-separated;
    /// Flink's default is 100; docs/flink.md recommends 5000 for Strom, where the target is
    /// judged).
    #[arg(long, value_delimiter = ',', default_value = "100,1000,2000,5000")]
    pub joins_lookup_buffer_capacity: Vec<usize>,
    /// Joins: steps of input growth (the input grows to this many times the first step).
    #[arg(long, default_value_t = 10)]
    pub joins_steps: usize,
    /// Joins: orders per growth step (visits: two per five orders, as in attribution.sql).
    #[arg(long, default_value_t = 100_000)]
    pub joins_orders_per_step: u64,
    /// Joins: checkpoint interval of the join jobs (a Flink duration).
    #[arg(long, default_value = "5 s")]
    pub joins_checkpoint_interval: String,
    /// Joins: Flink state backend of the join jobs (hashmap: every checkpoint is full; rocksdb).
    #[arg(long, default_value = "hashmap")]
    pub joins_state_backend: String,
    /// Joins: parallelism of the join jobs.
    #[arg(long, default_value_t = 2)]
    pub joins_parallelism: usize,
}

pub struct JoinsConfig<'a> {
    pub args: &'a JoinsArgs,
    pub java: PathBuf,
    pub classpath: String,
    pub jni_lib: PathBuf,
    /// The attribution scenario's SQL file.
    pub script: PathBuf,
    /// Parent of the checkpoint directory.
    pub tmp: PathBuf,
}

/// The database the state part's tables live in.
const STATE_DATABASE: &str = "joins";

pub async fn run_joins(target: &Target, cfg: &JoinsConfig<'_>, pk_cfg: &PkConfig, env: &Env, out: &mut Vec<ResultRow>) -> Res<()> {
    for part in &cfg.args.joins_parts {
        match part.as_str() {
            "lookup" => lookup_part(target, cfg, pk_cfg, env, out).await?,
            "state" => state_part(target, cfg, env, out).await?,
            other => return Err(format!("unknown joins part {other:?} (lookup, state)").into()),
        }
    }
    Ok(())
}

/// Runs a Java half to its end, echoing and returning its JSON lines as they come.
async fn java_half(cfg: &JoinsConfig<'_>, env: &Env, main: &str, args: &[String]) -> Res<Vec<serde_json::Value>> {
    let mut child = java_command(&cfg.java, &cfg.classpath, &cfg.jni_lib)
        .arg(main)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
    let mut out = Vec::new();
    while let Some(line) = lines.next_line().await? {
        if line.starts_with('{') {
            env.say(format!("  {line}"));
            out.push(serde_json::from_str(&line)?);
        }
    }
    let status = child.wait().await?;
    if !status.success() {
        return Err(format!("{main} failed ({status})").into());
    }
    Ok(out)
}

/// The node's batched lookups of the table (uniform keys, as `pk-batch`): one result row.
async fn node_batched(target: &Target, env: &Env, pk_cfg: &PkConfig, table: &str, n: u64, when: &str) -> Res<ResultRow> {
    let label = format!("joins/node-batch{}/s{}/uniform/{}/{when}", count_label(pk_cfg.batch_keys as u64), pk_cfg.streams, count_label(n));
    let pools = pk::request_pools(n, Dist::Uniform, pk_cfg, "id", pk_cfg.batch_keys, 1, pk_cfg.streams)?;
    let (row, _) = pk::lookup_streams(
        target,
        env,
        &label,
        LookupKind::PrimaryKey,
        table,
        pk_data::USERS_KEY,
        pools,
        pk_cfg.batch_inflight,
        pk_cfg.batch_duration,
    )
    .await?;
    let row = row.with("table_keys", n).with("batch_keys", pk_cfg.batch_keys);
    env.say(stats::line(&row));
    Ok(row)
}

async fn lookup_part(target: &Target, cfg: &JoinsConfig<'_>, pk_cfg: &PkConfig, env: &Env, out: &mut Vec<ResultRow>) -> Res<()> {
    let n = cfg.args.joins_lookup_keys;
    let table = format!("joins_users_{}", count_label(n).to_lowercase());
    let ch = scenarios::control(target, env).await?;
    pk::create_pk_table(&ch, target, pk_cfg, &table, &pk_data::users_table(), pk_data::USERS_KEY, &[]).await?;
    let (data, _) = pk::users_load(pk_cfg, n)?;
    let row = pk::load(target, env, pk_cfg, &table, &data, &format!("joins/load/{}", count_label(n))).await?;
    drop(data);
    out.push(row.with("table_keys", n));
    pk::check_count(target, env, &table, n).await?;

    let before = node_batched(target, env, pk_cfg, &table, n, "before").await?;
    let node_rate = before.rows_per_s;
    out.push(before);
    let _ = env.settle("joins lookup join").await;
    let parallelism: Vec<String> = cfg.args.joins_lookup_parallelism.iter().map(|p| p.to_string()).collect();
    let args = [
        ("--endpoint", target.url.clone()),
        ("--database", DATABASE.to_string()),
        ("--table", table.clone()),
        ("--keys", n.to_string()),
        ("--probe-rows", cfg.args.joins_probe_rows.to_string()),
        ("--miss-ratio", pk_cfg.miss_ratio.to_string()),
        ("--parallelism", parallelism.join(",")),
        ("--buffer-capacity", cfg.args.joins_lookup_buffer_capacity.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(",")),
    ];
    let lines = java_half(cfg, env, "io.strom.flink.bench.LookupJoinBench", &flatten(&args)).await?;
    let after = node_batched(target, env, pk_cfg, &table, n, "after").await?;
    let node_mean = (node_rate + after.rows_per_s) / 2.0;
    out.push(after);
    for v in lines {
        let op = v["op"].as_str().unwrap_or("?");
        let p = v["parallelism"].as_u64().unwrap_or(0);
        let rows = v["rows"].as_u64().unwrap_or(0);
        let net = v["net_seconds"].as_f64().unwrap_or(0.0);
        // Lookup-join jobs run once per buffer capacity: it names them apart.
        let capacity = v["buffer_capacity"].as_u64().map(|c| format!("/cap{c}")).unwrap_or_default();
        let mut row = ResultRow::new(
            format!("joins/{op}/p{p}{capacity}"),
            "flink",
            "none",
            rows,
            0,
            Duration::from_secs_f64(net),
            &stats::histogram(),
        )
        .with("wall_seconds", v["wall_seconds"].clone());
        for key in
            ["lookup_requests", "keys_per_request", "buffer_capacity", "steady_rows_per_s", "keys_per_second_series", "flink_options"]
        {
            if !v[key].is_null() {
                row = row.with(key, v[key].clone());
            }
        }
        if op == "lookup-join" {
            let ratio = row.rows_per_s / node_mean;
            row = row.with("node_batched_keys_per_s", node_mean.round()).with("ratio_to_node", (ratio * 1000.0).round() / 1000.0);
            // Once warm (the Java half's 40-95 % window of keys sent): the whole job's rate
            // includes compiling the job's generated code, which a long-running job pays once.
            let steady = v["steady_rows_per_s"]
                .as_f64()
                .map_or(String::new(), |s| format!("; once warm {} rows/s = {:.2}x", stats::fmt_rate(s), s / node_mean));
            // The Flink options the job ran with (the buffer capacity is already in the name).
            let flink: Vec<String> = v["flink_options"]
                .as_object()
                .map(|o| {
                    o.iter()
                        .filter(|(k, _)| k.as_str() != "table.exec.async-lookup.buffer-capacity")
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect()
                })
                .unwrap_or_default();
            env.say(format!(
                "  lookup join p{p}{capacity}: {} rows/s = {ratio:.2}x the node's batched lookups ({} keys/s, mean of before and after){steady}; Flink: {}",
                stats::fmt_rate(row.rows_per_s),
                stats::fmt_rate(node_mean),
                if flink.is_empty() { "defaults".to_string() } else { flink.join(", ") }
            ));
        }
        out.push(row);
    }
    scenarios::drop_table(&ch, &table).await?;
    Ok(())
}

fn flatten(args: &[(&str, String)]) -> Vec<String> {
    args.iter().flat_map(|(k, v)| [k.to_string(), v.clone()]).collect()
}

async fn state_part(target: &Target, cfg: &JoinsConfig<'_>, env: &Env, out: &mut Vec<ResultRow>) -> Res<()> {
    let checkpoints = cfg.tmp.join("join-checkpoints");
    std::fs::create_dir_all(&checkpoints)?;
    let _ = env.settle("joins state").await;
    let a = cfg.args;
    let args = [
        ("--endpoint", target.url.clone()),
        ("--database", STATE_DATABASE.to_string()),
        ("--script", cfg.script.display().to_string()),
        ("--checkpoint-dir", checkpoints.display().to_string()),
        ("--steps", a.joins_steps.to_string()),
        ("--orders-per-step", a.joins_orders_per_step.to_string()),
        ("--checkpoint-interval", a.joins_checkpoint_interval.clone()),
        ("--state-backend", a.joins_state_backend.clone()),
        ("--parallelism", a.joins_parallelism.to_string()),
    ];
    let lines = java_half(cfg, env, "io.strom.flink.bench.JoinStateBench", &flatten(&args)).await?;
    let mut series: Vec<(String, u64, u64, f64)> = Vec::new(); // (join, rows in, state bytes, rows/s)
    for v in lines.iter().filter(|v| v["op"] == "growth" || v["op"] == "catchup") {
        let op = v["op"].as_str().unwrap_or("?");
        let join = v["join"].as_str().unwrap_or("?").to_string();
        let rows_in = v["rows_in"].as_u64().unwrap_or(0);
        let (rows, seconds) = match op {
            "growth" => (v["step_rows_in"].as_u64().unwrap_or(0), v["step_seconds"].as_f64().unwrap_or(0.0)),
            _ => (rows_in, v["seconds"].as_f64().unwrap_or(0.0)),
        };
        let name = match op {
            "growth" => format!("joins/state/{join}/step{}", v["step"].as_u64().unwrap_or(0)),
            _ => format!("joins/catchup/{join}"),
        };
        let mut row = ResultRow::new(name, "flink", "none", rows, 0, Duration::from_secs_f64(seconds), &stats::histogram());
        if let Some(fields) = v.as_object() {
            for (key, value) in fields {
                row = row.with(key, value.clone());
            }
        }
        if op == "growth" {
            series.push((join, rows_in, v["checkpoint_state_bytes"].as_u64().unwrap_or(0), row.rows_per_s));
        }
        out.push(row);
    }
    for join in ["delta", "regular"] {
        let points: Vec<String> = series
            .iter()
            .filter(|(j, ..)| j == join)
            .map(|(_, rows, bytes, _)| format!("{}:{}", stats::fmt_rate(*rows as f64), fmt_bytes(*bytes)))
            .collect();
        env.say(format!("  {join:<7} checkpointed state by rows in: {}", points.join(" ")));
    }
    let catchup = |join: &str| out.iter().find(|r| r.scenario == format!("joins/catchup/{join}")).map(|r| r.rows_per_s);
    if let (Some(d), Some(r)) = (catchup("delta"), catchup("regular")) {
        env.say(format!(
            "  to the full result: delta join {} rows/s, regular join {} rows/s = {:.2}x",
            stats::fmt_rate(d),
            stats::fmt_rate(r),
            d / r
        ));
    }
    Ok(())
}

fn fmt_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.2}GB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1}MB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1}KB", b as f64 / 1024.0),
        b => format!("{b}B"),
    }
}

/// The buffer capacity docs/flink.md recommends for async lookup joins on Strom; the target is
/// judged at it, the other capacities are measured for comparison.
pub const RECOMMENDED_BUFFER_CAPACITY: u64 = 5000;

/// The target for lookup joins: ≥ 0.5× the node's batched lookup rate, with the
/// settings docs/flink.md recommends (buffer capacity 5000; the Java half sets the Flink options).
pub fn verdicts(rows: &[ResultRow]) -> Vec<Verdict> {
    rows.iter()
        .filter(|r| r.scenario.starts_with("joins/lookup-join/"))
        .filter(|r| r.extra.get("buffer_capacity").and_then(|c| c.as_u64()) == Some(RECOMMENDED_BUFFER_CAPACITY))
        .filter_map(|r| {
            let ratio = r.extra.get("ratio_to_node")?.as_f64()?;
            let node = r.extra.get("node_batched_keys_per_s")?.as_f64()?;
            Some(Verdict {
                target: format!("{}: async lookup join >= 0.5x the node's batched lookups", r.scenario),
                measured: format!("{} vs {} keys/s = {ratio:.2}x", stats::fmt_rate(r.rows_per_s), stats::fmt_rate(node)),
                met: ratio >= 0.5,
            })
        })
        .collect()
}
