//! The rig every power-loss workload runs on: one `FaultFs` over a tmpfs directory, the
//! engine's data directory under it, small segments, an injected clock, and a loop of lives.
//!
//! A life: arm the crash point (`crash_after(n)`), boot the engine on a fresh tokio runtime
//! (recovery may itself hit the crash point: counted, and the next life begins), let the
//! workload check what was recovered against its model and then run random operations until an
//! operation fails with "simulated power loss" (or its budget runs out: then the power is cut
//! while idle). Then every engine object is dropped, the runtime is shut down, and
//! `simulate_power_loss(seed)` leaves the disk as a power cut may leave it.
//!
//! The engine calls the workloads share (through the engine's API only) are at the end.
//!
//! Lives are grouped into episodes: each episode starts from an empty directory and a fresh
//! model, so the state a life checks stays small (full scans every life stay cheap) while the
//! number of power losses grows with the number of episodes.

use super::log_model::BucketId;
use arrow_array::RecordBatch;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use strom_flight_api::{CreateDatabase, CreateTable, ListOffsets, LogScan, OffsetSpec, PutAck, WriteCommand};
use strom_server::clock::Clock;
use strom_server::config::{Config, Durability};
use strom_server::engine::{BatchIdentity, Engine, ScanChunk, StorageEngine};
use strom_server::fs::{FaultFs, SIMULATED_POWER_LOSS};

/// Multiplies every test's number of lives (`STROM_POWER_LOSS_LIVES=10` for a ten times longer
/// run; fractions shorten it).
pub const SCALE_VAR: &str = "STROM_POWER_LOSS_LIVES";

/// Mixed into every test's seed: other runs, other crash points (failures print the seed).
pub const SEED_VAR: &str = "STROM_POWER_LOSS_SEED";

pub fn scale() -> f64 {
    match std::env::var(SCALE_VAR) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{SCALE_VAR}={v:?}: expected a number (a multiplier of the default lives)")),
        Err(_) => 1.0,
    }
}

/// A fresh directory on tmpfs when there is one: lives create and remove thousands of files.
pub fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let on_tmpfs = if shm.is_dir() { tempfile::Builder::new().prefix("strom-power-").tempdir_in(shm).ok() } else { None };
    on_tmpfs.unwrap_or_else(|| tempfile::tempdir().unwrap())
}

/// Whether an error is the FaultFs saying the process is dead (directly or as the cause of a
/// stopped bucket).
pub fn is_power_loss(e: &impl fmt::Display) -> bool {
    e.to_string().contains(SIMULATED_POWER_LOSS)
}

/// The node's clock, moved by the workloads (retention and batch timestamps follow it).
#[derive(Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(start_ms: i64) -> Self {
        Self(Arc::new(AtomicI64::new(start_ms)))
    }

    pub fn now(&self) -> i64 {
        self.0.load(Ordering::Acquire)
    }

    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::AcqRel);
    }

    fn as_clock(&self) -> Clock {
        let cell = self.0.clone();
        Arc::new(move || cell.load(Ordering::Acquire))
    }
}

/// Where a failure happened: enough to replay it (`seed`) and to read what the last power loss did.
#[derive(Clone, Debug)]
pub struct LifeContext {
    pub test: &'static str,
    pub seed: u64,
    pub episode: u64,
    pub life: u64,
    pub crash_after: u64,
    /// What the power loss before this life undid and tore (`PowerLossReport`).
    pub previous_loss: Arc<String>,
    /// The episode's closing boot: check and resend, then stop (no new operations, no crash).
    pub check_only: bool,
}

impl fmt::Display for LifeContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{} seed {} episode {} life {}{} crash_after {}]\n  previous {}",
            self.test,
            self.seed,
            self.episode,
            self.life,
            if self.check_only { " (closing check)" } else { "" },
            self.crash_after,
            self.previous_loss
        )
    }
}

/// Named event counters of a run (power losses, crash phases, what the workloads did).
#[derive(Debug, Default, Clone)]
pub struct Tally(BTreeMap<&'static str, u64>);

impl Tally {
    pub fn add(&mut self, name: &'static str, n: u64) {
        *self.0.entry(name).or_default() += n;
    }

    pub fn get(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0)
    }

    pub fn merge(&mut self, other: &Tally) {
        for (k, v) in &other.0 {
            self.add(k, *v);
        }
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        write!(f, "{}", parts.join(" "))
    }
}

/// What a life's workload sees: the engine of this life and what it may move.
pub struct Node {
    pub engine: Arc<Engine>,
    pub clock: ManualClock,
}

/// A workload: a model of the tables it writes, checked after every recovery.
pub trait Workload {
    /// Crash points are drawn from `0..=crash_points()` mutating file-system operations: a
    /// little more than a life's recovery plus its operations, so some lives end idle.
    fn crash_points(&self) -> u64;

    /// The node's configuration for a data directory.
    fn config(&self, data_dir: &Path) -> Config {
        small_segments_config(data_dir)
    }

    /// Runs before the engine boots (e.g. deletes the KV store so recovery replays it all).
    fn before_boot(&mut self, _data_dir: &Path, _rng: &mut StdRng, _tally: &mut Tally) {}

    /// One life on a recovered engine: check the recovered state against the model, resend
    /// what was in flight, then random operations until one fails with a simulated power loss
    /// or the budget is spent. Panics (with `ctx`) when a promise is broken.
    fn life(&mut self, node: &Node, rng: &mut StdRng, ctx: &LifeContext, tally: &mut Tally) -> impl Future<Output = ()>;
}

/// The engine settings every workload starts from: sync durability, segments of a few KiB so
/// they roll every few batches, background tasks off (the workloads run them at chosen points).
pub fn small_segments_config(data_dir: &Path) -> Config {
    let mut config = Config::default();
    config.storage.data_dir = data_dir.to_path_buf();
    config.log.durability = Durability::Sync;
    config.log.segment_bytes = 3 * 1024;
    // A small block cache: RocksDB allocates it at every boot.
    config.kv.block_cache_bytes = strom_server::config::CacheSize::Bytes(1 << 20);
    config
}

/// How many lives a test runs, in episodes of `lives_per_episode`.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub test: &'static str,
    pub seed: u64,
    pub lives: u64,
    pub lives_per_episode: u64,
}

impl Plan {
    /// `default_lives` scaled by `STROM_POWER_LOSS_LIVES`; `seed` mixed with
    /// `STROM_POWER_LOSS_SEED` when set (another run explores other crash points).
    pub fn new(test: &'static str, seed: u64, default_lives: u64, lives_per_episode: u64) -> Self {
        let lives = ((default_lives as f64 * scale()).round() as u64).max(1);
        let seed = match std::env::var(SEED_VAR) {
            Ok(v) => seed ^ v.parse::<u64>().unwrap_or_else(|_| panic!("{SEED_VAR}={v:?}: expected an unsigned integer")),
            Err(_) => seed,
        };
        Self { test, seed, lives, lives_per_episode }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime")
}

/// Runs `plan.lives` lives of workloads made by `new_workload` (one per episode); returns the
/// tally, with `power_losses` the number of simulated power losses.
pub fn run_lives<W: Workload>(plan: Plan, mut new_workload: impl FnMut(&mut StdRng) -> W) -> Tally {
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut episode = 0;
    while tally.get("power_losses") < plan.lives {
        let lives = plan.lives_per_episode.min(plan.lives - tally.get("power_losses"));
        run_episode(plan, episode, lives, &mut new_workload, &mut tally);
        episode += 1;
    }
    tally.add("episodes", episode);
    eprintln!(
        "{}: {} power losses in {:.1} s (seed {}): {tally}",
        plan.test,
        tally.get("power_losses"),
        started.elapsed().as_secs_f64(),
        plan.seed
    );
    tally
}

fn run_episode<W: Workload>(plan: Plan, episode: u64, lives: u64, new_workload: &mut impl FnMut(&mut StdRng) -> W, tally: &mut Tally) {
    let dir = scratch_dir();
    let fs = FaultFs::new(dir.path()).expect("a FaultFs over the scratch directory");
    let data_dir = dir.path().join("data");
    let clock = ManualClock::new(1_700_000_000_000);
    let episode_seed = plan.seed ^ episode.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut rng = StdRng::seed_from_u64(episode_seed);
    let mut workload = new_workload(&mut rng);
    let config = workload.config(&data_dir);
    let mut previous_loss = Arc::new("none: the first life of the episode".to_string());
    // Every life but the closing one ends in a power loss; the closing boot checks the last.
    for life in 0..=lives {
        let check_only = life == lives;
        let crash_after = if check_only { u64::MAX / 2 } else { rng.gen_range(0..=workload.crash_points()) };
        let ctx =
            LifeContext { test: plan.test, seed: plan.seed, episode, life, crash_after, previous_loss: previous_loss.clone(), check_only };
        if !check_only {
            workload.before_boot(&data_dir, &mut rng, tally);
        }
        fs.crash_after(crash_after);
        let rt = runtime();
        let booted = {
            let (config, clock, fs) = (config.clone(), clock.as_clock(), fs.clone());
            rt.block_on(async move {
                tokio::task::spawn_blocking(move || Engine::open_on(config, clock, Arc::new(fs))).await.expect("the boot task")
            })
        };
        match booted {
            Ok(engine) => {
                let node = Node { engine, clock: clock.clone() };
                rt.block_on(workload.life(&node, &mut rng, &ctx, tally));
                rt.shutdown_timeout(Duration::from_secs(60));
                // Every handle and mapped view must be gone before the disk is rewritten.
                let engine =
                    Arc::try_unwrap(node.engine).unwrap_or_else(|_| panic!("{ctx}\nthe engine is still referenced after its life"));
                drop(engine);
            }
            Err(e) if is_power_loss(&e) => {
                tally.add("crashed_in_recovery", 1);
                rt.shutdown_timeout(Duration::from_secs(60));
            }
            Err(e) => panic!("{ctx}\nrecovery failed: {e}"),
        }
        if check_only {
            break;
        }
        if !fs.is_dead() {
            tally.add("crashed_idle", 1);
            tally.add("idle_life_mutating_ops", fs.mutating_ops());
        }
        let report = fs.simulate_power_loss(episode_seed ^ life.wrapping_mul(0xA24B_AED4_963E_E407)).expect("simulate_power_loss");
        tally.add("lost_file_tails", report.files.len() as u64);
        tally.add("undone_dir_ops", report.undone.len() as u64);
        fs.reset();
        tally.add("power_losses", 1);
        previous_loss = Arc::new(report.to_string());
    }
}

// ---- engine calls the workloads share ----

pub const DB: &str = "power";

/// Runs a blocking engine call (catalog changes, retention) on the blocking pool.
pub async fn blocking<T: Send + 'static>(engine: &Arc<Engine>, call: impl FnOnce(&Engine) -> T + Send + 'static) -> T {
    let engine = engine.clone();
    tokio::task::spawn_blocking(move || call(&engine)).await.expect("a blocking engine call panicked")
}

/// Creates the database and `table` unless they exist (idempotent, so a life can repeat it
/// after a power loss that may or may not have kept an earlier creation).
pub async fn ensure_table(engine: &Arc<Engine>, table: CreateTable) -> strom_server::Result<()> {
    blocking(engine, move |e| {
        e.create_database(&CreateDatabase { name: DB.into(), if_not_exists: true, ..Default::default() })?;
        e.create_table(&CreateTable { if_not_exists: true, ..table }).map(|_| ())
    })
    .await
}

/// Writes one batch as an idempotent writer's batch and waits for its ack.
pub async fn write(engine: &Engine, command: &WriteCommand, batch: RecordBatch, id: BatchIdentity) -> strom_server::Result<PutAck> {
    let writer = engine.open_writer(command, false)?;
    writer.write(batch, Some(id)).await?.durable().await
}

/// A full log scan of `table` (every partition and bucket, from the log start to the high
/// watermark), decoded.
pub async fn scan_all(engine: &Engine, table: &str, columns: Option<&[&str]>) -> strom_server::Result<Vec<(ScanChunk, RecordBatch)>> {
    let columns = columns.map(|c| c.iter().map(|c| c.to_string()).collect());
    let mut stream = engine.scan(&LogScan { database: DB.into(), table: table.into(), columns, ..Default::default() })?;
    let mut out = Vec::new();
    while let Some(chunk) = stream.chunks.recv().await {
        let chunk = chunk?;
        let batch = chunk.message.decode(&stream.schema)?;
        out.push((chunk, batch));
    }
    Ok(out)
}

/// Every bucket's offset at `spec` (of every partition).
pub fn offsets(engine: &Engine, table: &str, spec: OffsetSpec) -> strom_server::Result<BTreeMap<BucketId, u64>> {
    let req = ListOffsets { database: DB.into(), table: table.into(), partition: None, buckets: None, spec };
    Ok(engine.list_offsets(&req)?.into_iter().map(|o| ((o.partition, o.bucket), o.offset)).collect())
}
