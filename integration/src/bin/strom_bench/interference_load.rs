//! The background load of the interference scenario: a bulk upsert writer, a 64K-row append
//! writer, and the create + load + drop cycle of a large partition; also the load of the
//! looked-up table. Everything is prepared (tables created, batches encoded, the partition
//! preloaded) before a phase's window, so the window sees only the load itself.

use crate::data::{self, TableDef};
use crate::interference::{DropLog, InterferenceConfig, Window, LOOKUP_TABLE};
use crate::net::{self, PutPlan};
use crate::pk;
use crate::pk_data::{self, count_label, Dist, KeyPicker};
use crate::procs::Res;
use crate::scenarios::{self, now_us, Env, Target, DATABASE};
use crate::stats::{self, ResultRow};
use arrow_array::{RecordBatch, StringArray};
use arrow_flight::{FlightData, FlightDescriptor};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};
use strom_flight_api::CreateTable;
use tonic::transport::Channel;

const UPSERT_TABLE: &str = "interference_upsert";
const APPEND_TABLE: &str = "interference_append";
const PARTITIONED_TABLE: &str = "interference_partitioned";
/// The partition that is loaded and dropped, under the same name every cycle (each creation
/// gets a new partition id, so a re-created partition starts empty).
const DROPPED_PARTITION: &str = "cold";
/// Background writers start this long before the window, so it sees them at full speed.
const RAMP: Duration = Duration::from_secs(1);
/// Pre-encoded batches each background writer cycles through.
const POOL_BATCHES: usize = 8;

/// A background writer's table and its pre-encoded batches.
pub struct WriteLoad {
    kind: &'static str,
    table: &'static str,
    descriptor: FlightDescriptor,
    schema_message: FlightData,
    pool: Arc<Vec<(FlightData, u64)>>,
    batch_rows: usize,
    batch_ipc_bytes: u64,
    inflight: usize,
}

/// The partitioned table whose partition is dropped, and the pre-encoded load of that partition.
pub struct PartitionCycle {
    descriptor: FlightDescriptor,
    schema_message: FlightData,
    pool: Arc<Vec<(FlightData, u64)>>,
    rows: u64,
    /// The last load's duration: a reload is started only when one fits in the window.
    load_time: Duration,
    loaded: bool,
}

pub enum Background {
    Idle,
    Writes(WriteLoad),
    Drops(PartitionCycle),
}

impl Background {
    /// The table the load writes to, dropped after the phase.
    pub fn table(&self) -> Option<&'static str> {
        match self {
            Background::Idle => None,
            Background::Writes(w) => Some(w.table),
            Background::Drops(_) => Some(PARTITIONED_TABLE),
        }
    }
}

fn durability_options(durability: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("table.log.durability".to_string(), durability.to_string())])
}

pub async fn create_pk_table(
    ch: &Channel,
    cfg: &InterferenceConfig,
    table: &str,
    def: &TableDef,
    primary_key: &[&str],
    partition_keys: &[&str],
    durability: &str,
) -> Res<()> {
    net::action(ch, "create_database", &json!({"name": DATABASE, "if_not_exists": true})).await?;
    scenarios::drop_table(ch, table).await?;
    let req = CreateTable {
        database: DATABASE.into(),
        table: table.into(),
        columns: def.columns.clone(),
        primary_key: primary_key.iter().map(|s| s.to_string()).collect(),
        partition_keys: partition_keys.iter().map(|s| s.to_string()).collect(),
        bucket_num: Some(cfg.buckets),
        options: durability_options(durability),
        ..Default::default()
    };
    net::action(ch, "create_table", &serde_json::to_value(&req)?).await?;
    Ok(())
}

/// Unacknowledged batches of the append writer: the `put` scenario's rule (at most
/// `inflight_bytes` queued); and the largest batch's IPC bytes.
fn append_inflight(cfg: &InterferenceConfig, pool: &[(FlightData, u64)]) -> (usize, u64) {
    let batch_bytes = largest_batch(pool);
    (cfg.inflight.min((cfg.inflight_bytes / batch_bytes).max(1) as usize).max(1), batch_bytes)
}

fn largest_batch(pool: &[(FlightData, u64)]) -> u64 {
    pool.iter().map(|(m, _)| net::ipc_len(m)).max().unwrap_or(1).max(1)
}

pub async fn prepare_upsert(ch: &Channel, cfg: &InterferenceConfig) -> Res<WriteLoad> {
    let def = pk_data::users_table();
    create_pk_table(ch, cfg, UPSERT_TABLE, &def, pk_data::USERS_KEY, &[], &cfg.durability).await?;
    // Random keys, so most upserts of a batch land on different RocksDB blocks and, once the
    // key space is covered, every row merges with a row already there.
    let mut picker = KeyPicker::new(cfg.upsert_keys.max(1), Dist::Uniform, 0.0, 0.99, 29);
    let batches: Vec<RecordBatch> = (0..POOL_BATCHES)
        .map(|i| {
            let ids: Vec<i64> = (0..cfg.upsert_batch_rows).map(|_| picker.next().0).collect();
            pk_data::users_batch(&def, &ids, 700 + i as u64)
        })
        .collect();
    let (schema_message, pool) = net::encode(&def.schema, batches)?;
    let (inflight, batch_ipc_bytes) = (cfg.upsert_inflight.max(1), largest_batch(&pool));
    Ok(WriteLoad {
        kind: "upsert",
        table: UPSERT_TABLE,
        descriptor: pk::upsert_descriptor(UPSERT_TABLE, None)?,
        schema_message,
        pool: Arc::new(pool),
        batch_rows: cfg.upsert_batch_rows,
        batch_ipc_bytes,
        inflight,
    })
}

pub async fn prepare_append(ch: &Channel, cfg: &InterferenceConfig) -> Res<WriteLoad> {
    let def = data::put_table();
    let options = [("table.log.durability", cfg.durability.as_str())];
    scenarios::create_table(ch, APPEND_TABLE, &def, cfg.buckets, &options).await?;
    let rows = cfg.append_batch_rows;
    let batches: Vec<RecordBatch> = (0..POOL_BATCHES.min(4)).map(|i| data::put_batch(&def, rows, (i * rows) as i64, i as u64)).collect();
    let (schema_message, pool) = net::encode(&def.schema, batches)?;
    let (inflight, batch_ipc_bytes) = append_inflight(cfg, &pool);
    Ok(WriteLoad {
        kind: "append",
        table: APPEND_TABLE,
        descriptor: scenarios::append_descriptor(APPEND_TABLE)?,
        schema_message,
        pool: Arc::new(pool),
        batch_rows: rows,
        batch_ipc_bytes,
        inflight,
    })
}

/// The partitioned table: the users table with a partition column `ds` in its primary key.
fn partitioned_table() -> TableDef {
    let cols = [
        ("id", "BIGINT", false),
        ("ds", "STRING", false),
        ("name", "STRING", true),
        ("city", "STRING", true),
        ("balance", "DOUBLE", true),
        ("visits", "BIGINT", true),
        ("updated_at", "TIMESTAMP(3)", true),
    ];
    let owned: Vec<(String, &str, bool)> = cols.iter().map(|(n, t, nullable)| (n.to_string(), *t, *nullable)).collect();
    TableDef::new(&owned)
}

/// Rows of the users table for `ids`, all in `partition`.
fn partition_batch(def: &TableDef, users: &TableDef, ids: &[i64], partition: &str, seed: u64) -> Res<RecordBatch> {
    let rows = pk_data::users_batch(users, ids, seed);
    let mut columns = vec![rows.column(0).clone(), Arc::new(StringArray::from(vec![partition; ids.len()])) as _];
    columns.extend(rows.columns()[1..].iter().cloned());
    Ok(RecordBatch::try_new(def.schema.clone(), columns)?)
}

pub async fn prepare_drops(target: &Target, env: &Env, ch: &Channel, cfg: &InterferenceConfig) -> Res<PartitionCycle> {
    let def = partitioned_table();
    create_pk_table(ch, cfg, PARTITIONED_TABLE, &def, &["id", "ds"], &["ds"], &cfg.durability).await?;
    let users = pk_data::users_table();
    let (n, step) = (cfg.drop_rows.max(1), cfg.load_batch_rows.max(1) as u64);
    let mut batches = Vec::new();
    let mut first = 0u64;
    while first < n {
        let ids: Vec<i64> = (first..(first + step).min(n)).map(|i| pk_data::scramble(i, n)).collect();
        batches.push(partition_batch(&def, &users, &ids, DROPPED_PARTITION, first)?);
        first += step;
    }
    let (schema_message, pool) = net::encode(&def.schema, batches)?;
    let mut cycle = PartitionCycle {
        descriptor: pk::upsert_descriptor(PARTITIONED_TABLE, None)?,
        schema_message,
        pool: Arc::new(pool),
        rows: n,
        load_time: Duration::ZERO,
        loaded: false,
    };
    cycle.reload(target, env, ch).await?;
    env.say(format!(
        "    interference: partition {DROPPED_PARTITION:?} preloaded with {} rows in {:.1} s",
        count_label(n),
        cycle.load_time.as_secs_f64()
    ));
    Ok(cycle)
}

impl PartitionCycle {
    /// Creates the partition and loads every row into it.
    async fn reload(&mut self, target: &Target, env: &Env, ch: &Channel) -> Res<()> {
        let partition = json!({"database": DATABASE, "table": PARTITIONED_TABLE, "partition": DROPPED_PARTITION, "if_not_exists": true});
        net::action(ch, "create_partition", &partition).await?;
        let plan = PutPlan {
            descriptor: self.descriptor.clone(),
            schema_message: self.schema_message.clone(),
            pool: self.pool.clone(),
            inflight: 4,
            duration: Duration::from_secs(3600),
            max_batches: self.pool.len() as u64,
        };
        let start = Instant::now();
        let o = net::put_stream(net::connect(&target.url, env.windows).await?, plan, Arc::new(AtomicU64::new(0))).await?;
        if o.rows != self.rows {
            return Err(format!("partition {DROPPED_PARTITION}: {} rows acknowledged, {} sent", o.rows, self.rows).into());
        }
        self.load_time = start.elapsed();
        self.loaded = true;
        Ok(())
    }
}

/// As many batches as the node takes from `RAMP` before the window to its end.
async fn run_writes(target: &Target, env: &Env, cfg: &InterferenceConfig, load: &WriteLoad, window: Window) -> Res<ResultRow> {
    let channel = net::connect(&target.url, env.windows).await?;
    tokio::time::sleep_until(window.start.checked_sub(RAMP).unwrap_or(window.start).into()).await;
    let plan = PutPlan {
        descriptor: load.descriptor.clone(),
        schema_message: load.schema_message.clone(),
        pool: load.pool.clone(),
        inflight: load.inflight,
        duration: window.end.saturating_duration_since(Instant::now()),
        max_batches: u64::MAX,
    };
    let o = net::put_stream(channel, plan, Arc::new(AtomicU64::new(0))).await?;
    Ok(ResultRow::new(
        format!("interference/bg/{}", load.kind),
        target.name,
        "batch send → PutResult",
        o.rows,
        o.bytes,
        o.elapsed,
        &o.latency,
    )
    .with("batch_rows", load.batch_rows)
    .with("batch_ipc_bytes", load.batch_ipc_bytes)
    .with("inflight", load.inflight)
    .with("batches", o.batches)
    .with("durability", cfg.durability.as_str()))
}

/// Drops the loaded partition at the window's start, then re-creates, reloads and drops it
/// again while a whole cycle still fits in the window.
async fn run_drops(
    target: &Target,
    env: &Env,
    cfg: &InterferenceConfig,
    cycle: &mut PartitionCycle,
    window: Window,
    drops: &DropLog,
) -> Res<ResultRow> {
    let ch = scenarios::control(target, env).await?;
    tokio::time::sleep_until(window.start.into()).await;
    let body = json!({"database": DATABASE, "table": PARTITIONED_TABLE, "partition": DROPPED_PARTITION});
    let mut action = stats::histogram();
    let (mut dropped, mut reloaded, mut reload_time) = (0u64, 0u64, Duration::ZERO);
    let start = Instant::now();
    while cycle.loaded && Instant::now() < window.end {
        let span = drops.begin_at(now_us());
        let t = Instant::now();
        let result = net::action(&ch, "drop_partition", &body).await;
        drops.end_at(span, now_us());
        result?;
        stats::record(&mut action, t.elapsed());
        cycle.loaded = false;
        dropped += cycle.rows;
        // A load cut short by the window's end would make the next drop a smaller one.
        if window.end.saturating_duration_since(Instant::now()) > cycle.load_time.mul_f64(1.5) {
            cycle.reload(target, env, &ch).await?;
            reloaded += cycle.rows;
            reload_time += cycle.load_time;
        }
    }
    let drops_done = action.len();
    Ok(ResultRow::new("interference/bg/drop", target.name, "drop_partition action", dropped, 0, start.elapsed(), &action)
        .with("drops", drops_done)
        .with("rows_per_partition", cycle.rows)
        .with("reloaded_rows", reloaded)
        .with("reload_rows_per_s", (reloaded as f64 / reload_time.as_secs_f64().max(1e-9)).round())
        .with("durability", cfg.durability.as_str()))
}

pub async fn run_background(
    target: &Target,
    env: &Env,
    cfg: &InterferenceConfig,
    background: &mut Background,
    window: Window,
    drops: &DropLog,
) -> Res<Option<ResultRow>> {
    match background {
        Background::Idle => Ok(None),
        Background::Writes(load) => Ok(Some(run_writes(target, env, cfg, load, window).await?)),
        Background::Drops(cycle) => Ok(Some(run_drops(target, env, cfg, cycle, window, drops).await?)),
    }
}

/// Creates the looked-up table and loads keys `0..lookup_keys` into it (scrambled order).
pub async fn load_lookup_table(target: &Target, env: &Env, ch: &Channel, cfg: &InterferenceConfig) -> Res<()> {
    let def = pk_data::users_table();
    create_pk_table(ch, cfg, LOOKUP_TABLE, &def, pk_data::USERS_KEY, &[], &cfg.lookup_durability).await?;
    let (n, step) = (cfg.lookup_keys.max(1), cfg.load_batch_rows.max(1) as u64);
    let mut batches = Vec::new();
    let mut first = 0u64;
    while first < n {
        let ids: Vec<i64> = (first..(first + step).min(n)).map(|i| pk_data::scramble(i, n)).collect();
        batches.push(pk_data::users_batch(&def, &ids, first));
        first += step;
    }
    let (schema_message, pool) = net::encode(&def.schema, batches)?;
    let plan = PutPlan {
        descriptor: pk::upsert_descriptor(LOOKUP_TABLE, None)?,
        schema_message,
        max_batches: pool.len() as u64,
        pool: Arc::new(pool),
        inflight: 8,
        duration: Duration::from_secs(3600),
    };
    let budget = Duration::from_secs_f64(n as f64 / 150_000.0 + 1.0);
    let pb = env.bar(&format!("interference load {} {}", count_label(n), target.name), budget);
    let progress = Arc::new(AtomicU64::new(0));
    let ticker = net::ticker(&pb, progress.clone(), budget);
    let o = net::put_stream(net::connect(&target.url, env.windows).await?, plan, progress).await;
    ticker.abort();
    pb.finish_and_clear();
    let o = o?;
    if o.rows != n {
        return Err(format!("{LOOKUP_TABLE}: {} rows acknowledged, {n} sent", o.rows).into());
    }
    env.say(format!(
        "    interference: lookup table loaded with {} rows in {:.1} s ({} rows/s)",
        count_label(n),
        o.elapsed.as_secs_f64(),
        stats::fmt_rate(o.rows as f64 / o.elapsed.as_secs_f64().max(1e-9))
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_partition_rows_when_generated_should_match_the_partitioned_schema() {
        let def = partitioned_table();
        let batch = partition_batch(&def, &pk_data::users_table(), &[4, 2, 9], DROPPED_PARTITION, 1).expect("batch");
        assert_eq!(batch.num_rows(), 3);
        assert_eq!(batch.schema(), def.schema);
        let ds = batch.column(1).as_any().downcast_ref::<StringArray>().expect("ds is a string column");
        assert!(ds.iter().all(|v| v == Some(DROPPED_PARTITION)));
    }
}
