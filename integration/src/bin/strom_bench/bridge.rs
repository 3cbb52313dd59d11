//! The `bridge` scenario: what a Java program gets through the JNI bridge against what the Rust
//! client gets alone, on the same table, in the same run (issue 12, item 9a).
//!
//! A 43-column table (the `scan` scenario's, `data::wide_table`) of `--bridge-rows` rows is
//! written in 64K-row batches by the Rust client (`strom_flight_api`); then, round by round:
//! - **Java**: `io.strom.flink.bench.BridgeBench` (java-connector's test classes) starts, warms
//!   up (scans until the JIT is quiet, one write pass) and waits for commands;
//! - every measurement then alternates the two sides, the first side alternating too:
//!   full-width and 13-column log scans (**Rust** through `StromClient::scan_log`, **Java**
//!   through the connector's client layer — the same Rust client, in-process over JNI, batches
//!   crossing as Arrow C Data), then passes writing the same batches into a fresh table per
//!   side (all in flight, then `flush`), each pass after a `sync`.
//!
//! Both sides count every row; the ratio Java / Rust is the bridge's cost. Nothing runs
//! between the measurements but the node, so the node's share is the same for both, and both
//! meet the machine in the same minutes.

use crate::data;
use crate::scenarios::{self, Env, Target, DATABASE};
use crate::stats::{self, ResultRow};
use crate::{net, procs::Res};
use futures::StreamExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use strom_flight_api::{LogScan, StromClient, WriterOptions};

pub struct BridgeConfig {
    pub rows: usize,
    pub batch_rows: usize,
    pub iterations: usize,
    pub rounds: usize,
    /// Rounds of the Flink end-to-end jobs (0: none).
    pub flink_rounds: usize,
    pub buckets: u32,
    /// `table.log.arrow.compression.type` of the table.
    pub compression: String,
    /// The JVM (`java`), the classpath of java-connector's test classes and dependencies, and
    /// libstrom_jni.so.
    pub java: PathBuf,
    pub classpath: String,
    pub jni_lib: PathBuf,
}

const SOURCE: &str = "bridge_src";
/// Writes of the same batches per side and round: one warm-up, then measured ones.
const WRITE_PASSES: usize = 3;

/// Median of measured seconds.
fn median(mut s: Vec<f64>) -> f64 {
    s.sort_by(|a, b| a.total_cmp(b));
    s[s.len() / 2]
}

pub async fn run_bridge(target: &Target, cfg: &BridgeConfig, env: &Env, out: &mut Vec<ResultRow>) -> Res<()> {
    let def = data::wide_table();
    let ch = net::connect(&target.url, env.windows).await?;
    let options = [("table.log.arrow.compression.type", cfg.compression.as_str())];
    scenarios::create_table(&ch, SOURCE, &def, cfg.buckets, &options).await?;
    let mut batches = Vec::new();
    let mut first = 0;
    while first < cfg.rows {
        let n = cfg.batch_rows.min(cfg.rows - first);
        batches.push(data::wide_batch(&def, n, first as i64, first as u64));
        first += n;
    }
    // Arrow bytes of the table (buffers as generated): the MB/s of both sides use it.
    let bytes: u64 =
        batches.iter().map(|b| b.columns().iter().map(|c| c.to_data().get_slice_memory_size().unwrap_or(0) as u64).sum::<u64>()).sum();
    let client = StromClient::connect(&target.url).await?;
    rust_write(&client, SOURCE, &batches).await?;
    env.say(format!(
        "  bridge: {} rows, 43 columns, {:.0} MB of Arrow data, {} compression",
        cfg.rows,
        bytes as f64 / 1e6,
        cfg.compression
    ));
    let projected = data::projected_names();

    let mut medians: Vec<(String, &'static str, f64)> = Vec::new(); // (op, side, rows/s)
    for round in 0..cfg.rounds {
        let java_table = format!("bridge_w_java_{round}");
        let rust_table = format!("bridge_w_rust_{round}");
        scenarios::create_table(&ch, &java_table, &def, cfg.buckets, &options).await?;
        scenarios::create_table(&ch, &rust_table, &def, cfg.buckets, &options).await?;
        // Both sides are measured in the same minutes: the Java half waits (warmed up) for
        // commands, and every measurement alternates Rust and Java, the first side alternating
        // too. Measured back to back per side (the earlier design), the machine's drift
        // between the halves moved the ratios by ±0.2 between rounds.
        tokio::task::spawn_blocking(|| {
            // SAFETY: sync(2) has no preconditions.
            unsafe { libc::sync() }
        })
        .await?;
        let _ = env.settle(&format!("bridge round {}", round + 1)).await;
        let mut java = JavaHalf::start(target, cfg, &java_table, &projected).await?;
        let (rust_measured, java_measured) = interleaved(&client, cfg, &batches, &rust_table, &projected, target.pid, &mut java).await?;
        java.quit().await?;
        for (side, measured) in [("rust", rust_measured), ("java", java_measured)] {
            for (op, rows, seconds, cpu, node) in measured {
                if rows != cfg.rows as u64 {
                    return Err(format!("bridge: {side} {op} handled {rows} rows, expected {}", cfg.rows).into());
                }
                let m = median(seconds.clone());
                let h = stats::histogram();
                let row = ResultRow::new(format!("bridge/{op}"), side, "none", rows, bytes, Duration::from_secs_f64(m), &h)
                    .with("round", round + 1)
                    .with("seconds", seconds.clone())
                    .with("client_cpu_seconds", cpu.clone())
                    .with("node_cpu_seconds", node.clone());
                // The client's CPU (the Rust bench process, or the whole JVM) per million rows.
                let per_mrow = |v: Vec<f64>| if v.is_empty() { 0.0 } else { median(v) / rows as f64 * 1e9 };
                env.say(format!(
                    "  bridge round {} {side:<4} {op:<15} {:>8.2}M rows/s {:>7.0} MB/s  CPU per M rows: client {:>4.0} ms, node {:>4.0} ms",
                    round + 1,
                    row.rows_per_s / 1e6,
                    row.mb_per_s,
                    per_mrow(cpu),
                    per_mrow(node)
                ));
                medians.push((op.clone(), if side == "rust" { "rust" } else { "java" }, row.rows_per_s));
                out.push(row);
            }
        }
        scenarios::drop_table(&ch, &java_table).await?;
        scenarios::drop_table(&ch, &rust_table).await?;
    }
    for op in ["scan-full", "scan-projected", "write"] {
        let rate = |side: &str| -> Vec<f64> { medians.iter().filter(|(o, s, _)| o == op && *s == side).map(|(_, _, r)| *r).collect() };
        let (java, rust) = (rate("java"), rate("rust"));
        let ratios: Vec<f64> = java.iter().zip(&rust).map(|(j, r)| (j / r * 100.0).round() / 100.0).collect();
        env.say(format!("  bridge {op:<15} java / rust per round: {ratios:?}"));
        let h = stats::histogram();
        out.push(ResultRow::new(format!("bridge/{op}/ratio"), "java/rust", "none", 0, 0, Duration::ZERO, &h).with("ratios", ratios));
    }
    for round in 0..cfg.flink_rounds {
        flink_side(target, cfg, env, &ch, round, out).await?;
    }
    scenarios::drop_table(&ch, SOURCE).await?;
    Ok(())
}

/// Flink SQL jobs on an in-process MiniCluster (`io.strom.flink.bench.FlinkBench`): the Strom
/// source and sink against `datagen → blackhole` on the same schema, rates from Flink's net
/// runtime of each job.
async fn flink_side(
    target: &Target,
    cfg: &BridgeConfig,
    env: &Env,
    ch: &tonic::transport::Channel,
    round: usize,
    out: &mut Vec<ResultRow>,
) -> Res<()> {
    let def = data::wide_table();
    let sink = "bridge_flink_sink";
    scenarios::create_table(ch, sink, &def, cfg.buckets, &[("table.log.arrow.compression.type", cfg.compression.as_str())]).await?;
    let _ = env.settle(&format!("bridge flink round {}", round + 1)).await;
    let output = java(cfg)
        .arg("io.strom.flink.bench.FlinkBench")
        .args(["--endpoint", &target.url, "--database", DATABASE, "--source", SOURCE, "--sink-table", sink])
        .args(["--rows", &cfg.rows.to_string(), "--source-rows", &cfg.rows.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .await?;
    if !output.status.success() {
        return Err(format!("FlinkBench failed ({}): {}", output.status, String::from_utf8_lossy(&output.stdout)).into());
    }
    let mut rates = std::collections::BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines().filter(|l| l.starts_with('{')) {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let op = v["op"].as_str().ok_or("FlinkBench: no op")?.to_string();
        let rows = v["rows"].as_u64().unwrap_or(0);
        let net = v["net_seconds"].as_f64().unwrap_or(0.0);
        let h = stats::histogram();
        let row = ResultRow::new(format!("bridge/flink/{op}"), "flink", "none", rows, 0, Duration::from_secs_f64(net), &h)
            .with("round", round + 1)
            .with("wall_seconds", v["wall_seconds"].clone());
        env.say(format!(
            "  flink round {} {op:<32} {:>8.0}K rows/s (net runtime {net:.2} s, wall {:.2} s)",
            round + 1,
            row.rows_per_s / 1e3,
            v["wall_seconds"].as_f64().unwrap_or(0.0)
        ));
        rates.insert(op, row.rows_per_s);
        out.push(row);
    }
    let ratio = |a: &str, b: &str| -> Res<f64> {
        let (x, y) =
            (rates.get(a).ok_or(format!("FlinkBench did not report {a}"))?, rates.get(b).ok_or(format!("FlinkBench did not report {b}"))?);
        Ok((x / y * 100.0).round() / 100.0)
    };
    let pairs = [
        ("strom-projected-to-blackhole", "datagen-projected-to-blackhole"),
        ("strom-full-to-blackhole", "datagen-full-to-blackhole"),
        ("datagen-full-to-strom", "datagen-full-to-blackhole"),
    ];
    for (a, b) in pairs {
        let r = ratio(a, b)?;
        env.say(format!("  flink round {} {a} / {b}: {r}", round + 1));
        let h = stats::histogram();
        out.push(
            ResultRow::new(format!("bridge/flink/{a}/ratio"), b, "none", 0, 0, Duration::ZERO, &h)
                .with("ratio", r)
                .with("round", round + 1),
        );
    }
    scenarios::drop_table(ch, sink).await?;
    Ok(())
}

fn java(cfg: &BridgeConfig) -> tokio::process::Command {
    java_command(&cfg.java, &cfg.classpath, &cfg.jni_lib)
}

/// `java` with the flags every Java half needs, up to the main class.
pub fn java_command(java: &std::path::Path, classpath: &str, jni_lib: &std::path::Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(java);
    // Extra JVM flags for a look inside (e.g. a JFR recording), whitespace-separated.
    if let Ok(extra) = std::env::var("STROM_BENCH_JAVA_OPTS") {
        command.args(extra.split_whitespace());
    }
    command
        .arg("--add-opens=java.base/java.nio=ALL-UNNAMED")
        .arg(format!("-Dstrom.jni.library={}", jni_lib.display()))
        .arg("-cp")
        .arg(classpath);
    command
}

/// Writes `batches` into `table` through one idempotent append writer: every batch in
/// flight, then a flush (every ack durable).
async fn rust_write(client: &StromClient, table: &str, batches: &[arrow_array::RecordBatch]) -> Res<u64> {
    let mut writer = client.append_writer(DATABASE, table, WriterOptions::default());
    let mut rows = 0;
    for b in batches {
        let _ack = writer.append_unconfirmed(b.clone()).await?;
        rows += b.num_rows() as u64;
    }
    writer.flush().await?;
    writer.close().await?;
    Ok(rows)
}

async fn rust_scan(client: &StromClient, columns: Option<Vec<String>>) -> Res<u64> {
    let scan = LogScan { database: DATABASE.into(), table: SOURCE.into(), columns, ..Default::default() };
    let mut stream = client.scan_log(scan).await?;
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        rows += batch?.batch.num_rows() as u64;
    }
    Ok(rows)
}

/// (op, rows, wall seconds, client CPU seconds, node CPU seconds; one per measured iteration).
type Measured = Vec<(String, u64, Vec<f64>, Vec<f64>, Vec<f64>)>;

/// CPU seconds this process has used (all threads): the Rust client's cost, as the Java
/// side's `getProcessCpuTime` is the bridge's.
fn own_cpu_seconds() -> f64 {
    crate::procs::cpu_seconds(std::process::id()).unwrap_or(0.0)
}

/// Every measurement of a round, Rust and Java alternating (the first side alternating too):
/// `--bridge-iterations` scans of each kind, then `WRITE_PASSES - 1` write passes (each side
/// wrote one unmeasured pass while warming up), each after a `sync` so that neither side
/// writes into the other's dirty pages.
async fn interleaved(
    client: &StromClient,
    cfg: &BridgeConfig,
    batches: &[arrow_array::RecordBatch],
    table: &str,
    projected: &[String],
    node_pid: Option<u32>,
    java: &mut JavaHalf,
) -> Res<(Measured, Measured)> {
    rust_scan(client, None).await?; // unmeasured, as the Java half's warm-up
    rust_scan(client, Some(projected.to_vec())).await?;
    rust_write(client, table, batches).await?;
    let node_cpu = || node_pid.and_then(crate::procs::cpu_seconds).unwrap_or(0.0);
    let (mut rust, mut java_out): (Measured, Measured) = (Vec::new(), Vec::new());
    let passes = std::env::var("STROM_BENCH_WRITE_PASSES").ok().and_then(|p| p.parse().ok()).unwrap_or(WRITE_PASSES);
    let plan = [("scan-full", cfg.iterations), ("scan-projected", cfg.iterations), ("write", passes.saturating_sub(1).max(1))];
    for (op, times) in plan {
        let (mut r, mut j) = ((op.to_string(), 0, vec![], vec![], vec![]), (op.to_string(), 0, vec![], vec![], vec![]));
        for i in 0..times {
            if op == "write" {
                tokio::task::spawn_blocking(|| {
                    // SAFETY: sync(2) has no preconditions.
                    unsafe { libc::sync() }
                })
                .await?;
            }
            for side in if i % 2 == 0 { ["rust", "java"] } else { ["java", "rust"] } {
                if side == "java" {
                    let m = java.call(op).await?;
                    j.1 = m.0;
                    j.2.push(m.1);
                    j.3.push(m.2);
                    j.4.push(m.3);
                    continue;
                }
                let (start, cpu_start, node_start) = (Instant::now(), own_cpu_seconds(), node_cpu());
                r.1 = match op {
                    "scan-full" => rust_scan(client, None).await?,
                    "scan-projected" => rust_scan(client, Some(projected.to_vec())).await?,
                    _ => rust_write(client, table, batches).await?,
                };
                r.2.push(start.elapsed().as_secs_f64());
                r.3.push(own_cpu_seconds() - cpu_start);
                r.4.push(node_cpu() - node_start);
            }
        }
        rust.push(r);
        java_out.push(j);
    }
    Ok((rust, java_out))
}

/// The Java half of a round: `io.strom.flink.bench.BridgeBench` started once, warmed up, then
/// driven one command per line.
struct JavaHalf {
    child: tokio::process::Child,
    commands: tokio::process::ChildStdin,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl JavaHalf {
    async fn start(target: &Target, cfg: &BridgeConfig, table: &str, projected: &[String]) -> Res<Self> {
        let mut child = java(cfg)
            .arg("io.strom.flink.bench.BridgeBench")
            .args(["--endpoint", &target.url, "--database", DATABASE, "--source", SOURCE, "--write-table", table])
            .args(["--columns", &projected.join(",")])
            .args(["--batch-rows", &cfg.batch_rows.to_string()])
            .args(["--node-pid", &target.pid.map(|p| p.to_string()).unwrap_or_else(|| "0".into())])
            .args(if std::env::var("STROM_BENCH_FFI_PROBE").is_ok() { vec!["--ffi-probe", "1"] } else { vec![] })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let commands = child.stdin.take().ok_or("BridgeBench: no stdin")?;
        let stdout = child.stdout.take().ok_or("BridgeBench: no stdout")?;
        let mut half = JavaHalf { child, commands, lines: tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout)) };
        half.reply("ready").await?;
        Ok(half)
    }

    /// The next line of `op`; diagnostics printed meanwhile are echoed.
    async fn reply(&mut self, op: &str) -> Res<serde_json::Value> {
        loop {
            let Some(line) = self.lines.next_line().await? else {
                let status = self.child.wait().await?;
                return Err(format!("BridgeBench ended ({status}) while strom-bench waited for {op:?}").into());
            };
            if !line.starts_with('{') {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(&line)?;
            if v["op"] == op {
                return Ok(v);
            }
            eprintln!("  bridge java: {line}");
        }
    }

    /// Runs one measured command: (rows, seconds, JVM CPU seconds, node CPU seconds).
    async fn call(&mut self, op: &str) -> Res<(u64, f64, f64, f64)> {
        use tokio::io::AsyncWriteExt;
        self.commands.write_all(format!("{op}\n").as_bytes()).await?;
        self.commands.flush().await?;
        let v = self.reply(op).await?;
        let f = |key: &str| v[key].as_f64().unwrap_or(0.0);
        Ok((v["rows"].as_u64().unwrap_or(0), f("seconds"), f("cpu_seconds"), f("node_cpu_seconds")))
    }

    async fn quit(mut self) -> Res<()> {
        use tokio::io::AsyncWriteExt;
        self.commands.write_all(b"quit\n").await?;
        self.commands.flush().await?;
        let status = self.child.wait().await?;
        if !status.success() {
            return Err(format!("BridgeBench failed ({status})").into());
        }
        Ok(())
    }
}
