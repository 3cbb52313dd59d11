//! Builder fixture for engine tests: a temp data dir, an engine, one log table; and helpers
//! that write and read through the engine's API only.
#![allow(dead_code)] // each test file uses a different subset of the fixture

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::SchemaRef;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use strom_flight_api::{ColumnSpec, CreateDatabase, CreateTable, ListOffsets, LogScan, OffsetSpec, PutAck, WriteCommand};
use strom_server::config::{Config, Durability};
use strom_server::engine::{BatchIdentity, Engine, ScanChunk, SnapshotChunk, StorageEngine};
use strom_server::fs::{FaultFs, PowerLossReport};

pub const DB: &str = "db";
pub const TABLE: &str = "t";

pub struct EngineFixture {
    pub dir: tempfile::TempDir,
    pub engine: Arc<Engine>,
    pub config: Config,
    /// The fault-injecting file system the engine runs on (`FixtureBuilder::fault_fs`).
    pub fault: Option<FaultFs>,
}

pub struct FixtureBuilder {
    segment_bytes: u64,
    durability: Durability,
    buckets: u32,
    options: Vec<(String, String)>,
    fault_fs: bool,
    tail_cache_bytes: Option<u64>,
    scan_message_bytes: Option<usize>,
}

/// Writes one batch with `command` and waits until it is durable.
pub async fn write(
    engine: &dyn StorageEngine,
    command: &WriteCommand,
    batch: RecordBatch,
    id: Option<BatchIdentity>,
) -> strom_server::Result<PutAck> {
    let writer = engine.open_writer(command, false)?;
    writer.write(batch, id).await?.durable().await
}

/// The offset of every bucket of `database.table` (one partition or all) at `spec`.
pub fn offsets(engine: &dyn StorageEngine, database: &str, table: &str, spec: OffsetSpec) -> Vec<u64> {
    let req = ListOffsets { database: database.into(), table: table.into(), partition: None, buckets: None, spec };
    engine.list_offsets(&req).unwrap().into_iter().map(|o| o.offset).collect()
}

/// Runs a log scan to its end; returns the decoded batches with their chunks, or the first error.
pub async fn scan(engine: &dyn StorageEngine, scan: &LogScan) -> strom_server::Result<Vec<(ScanChunk, RecordBatch)>> {
    let mut stream = engine.scan(scan)?;
    let mut out = Vec::new();
    while let Some(chunk) = stream.chunks.recv().await {
        let chunk = chunk?;
        let batch = chunk.message.decode(&stream.schema)?;
        out.push((chunk, batch));
    }
    Ok(out)
}

/// Decodes the batch of a snapshot chunk.
pub fn snapshot_batch(chunk: &SnapshotChunk, schema: &SchemaRef) -> RecordBatch {
    chunk.message.decode(schema).unwrap()
}

impl EngineFixture {
    pub fn builder() -> FixtureBuilder {
        FixtureBuilder {
            segment_bytes: 128 * 1024 * 1024,
            durability: Durability::Sync,
            buckets: 1,
            options: vec![],
            fault_fs: false,
            tail_cache_bytes: None,
            scan_message_bytes: None,
        }
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Appends one batch to the fixture's table and waits until it is durable.
    pub async fn append(&self, batch: RecordBatch, id: Option<BatchIdentity>) -> strom_server::Result<PutAck> {
        let writer = self.engine.open_writer(&WriteCommand::append(DB, TABLE), true)?;
        writer.write(batch, id).await?.durable().await
    }

    /// What scans of the fixture's table return.
    pub fn schema(&self) -> SchemaRef {
        self.engine.table_schema(DB, TABLE).unwrap()
    }

    pub fn high_watermark(&self, bucket: usize) -> u64 {
        offsets(self.engine.as_ref(), DB, TABLE, OffsetSpec::Latest)[bucket]
    }

    pub fn log_start_offset(&self, bucket: usize) -> u64 {
        offsets(self.engine.as_ref(), DB, TABLE, OffsetSpec::Earliest)[bucket]
    }

    /// Drops the engine (no graceful flush beyond what was synced) and opens it again.
    pub fn reopen(&mut self) {
        self.engine = open_engine(&self.config, self.fault.as_ref());
    }

    /// Cuts the power (a fixture built with `fault_fs`): the engine dies, the disk keeps what
    /// was synced and some or none of the rest (as `seed` decides), and the engine boots again.
    /// Every scan stream and writer of the old engine must be gone.
    pub fn power_loss(self, seed: u64) -> (Self, PowerLossReport) {
        let EngineFixture { dir, engine, config, fault } = self;
        let fs = fault.expect("a fixture built with fault_fs()");
        fs.crash_now();
        let engine = Arc::try_unwrap(engine).unwrap_or_else(|_| panic!("the engine is still referenced"));
        drop(engine);
        let report = fs.simulate_power_loss(seed).unwrap();
        fs.reset();
        let engine = open_engine(&config, Some(&fs));
        (EngineFixture { dir, engine, config, fault: Some(fs) }, report)
    }

    pub fn bucket_dir(&self, bucket: u32) -> PathBuf {
        let id = self.engine.get_table(DB, TABLE).unwrap().table_id;
        self.dir.path().join("tables").join(id.to_string()).join(format!("bucket-{bucket}"))
    }

    pub fn segment_files(&self, bucket: u32) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.bucket_dir(bucket))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        files.sort();
        files
    }

    /// Runs a scan to its end; returns the decoded batches with their chunks, or the first error.
    pub async fn scan(&self, scan: LogScan) -> strom_server::Result<Vec<(ScanChunk, RecordBatch)>> {
        self::scan(self.engine.as_ref(), &scan).await
    }

    pub fn full_scan() -> LogScan {
        LogScan { database: DB.into(), table: TABLE.into(), ..Default::default() }
    }
}

impl FixtureBuilder {
    pub fn segment_bytes(mut self, n: u64) -> Self {
        self.segment_bytes = n;
        self
    }

    pub fn durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }

    pub fn buckets(mut self, n: u32) -> Self {
        self.buckets = n;
        self
    }

    pub fn option(mut self, k: &str, v: &str) -> Self {
        self.options.push((k.into(), v.into()));
        self
    }

    /// The node's `log.tail_cache_bytes` (default: the shipped default).
    pub fn tail_cache_bytes(mut self, n: u64) -> Self {
        self.tail_cache_bytes = Some(n);
        self
    }

    /// The node's `log.scan_message_bytes` (default: the shipped default).
    pub fn scan_message_bytes(mut self, n: usize) -> Self {
        self.scan_message_bytes = Some(n);
        self
    }

    /// Runs the engine on a `FaultFs`, so the test can cut the power (`power_loss`).
    pub fn fault_fs(mut self) -> Self {
        self.fault_fs = true;
        self
    }

    pub fn open(self) -> EngineFixture {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.storage.data_dir = dir.path().to_path_buf();
        config.log.segment_bytes = self.segment_bytes;
        config.log.durability = self.durability;
        if let Some(n) = self.tail_cache_bytes {
            config.log.tail_cache_bytes = n;
        }
        if let Some(n) = self.scan_message_bytes {
            config.log.scan_message_bytes = n;
        }
        let fault = self.fault_fs.then(|| FaultFs::new(dir.path()).unwrap());
        let engine = open_engine(&config, fault.as_ref());
        engine.create_database(&CreateDatabase { name: DB.into(), ..Default::default() }).unwrap();
        engine
            .create_table(&CreateTable {
                database: DB.into(),
                table: TABLE.into(),
                columns: vec![
                    ColumnSpec::new("id", "BIGINT").not_null(),
                    ColumnSpec::new("name", "STRING"),
                    ColumnSpec::new("score", "BIGINT"),
                ],
                bucket_num: Some(self.buckets),
                bucket_key: if self.buckets > 1 { vec!["id".into()] } else { vec![] },
                options: self.options.into_iter().collect(),
                ..Default::default()
            })
            .unwrap();
        EngineFixture { dir, engine, config, fault }
    }
}

/// Opens the engine on the real file system, or on `fault`.
fn open_engine(config: &Config, fault: Option<&FaultFs>) -> Arc<Engine> {
    match fault {
        None => Engine::open(config.clone()).unwrap(),
        Some(fs) => Engine::open_on(config.clone(), strom_server::clock::system_clock(), Arc::new(fs.clone())).unwrap(),
    }
}

/// Rows `start..start+n` with id = i, name = "name-i", score = i * 10.
pub fn rows(start: i64, n: usize) -> RecordBatch {
    let ids: Vec<i64> = (start..start + n as i64).collect();
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.clone())),
        Arc::new(StringArray::from(ids.iter().map(|i| format!("name-{i}")).collect::<Vec<_>>())),
        Arc::new(Int64Array::from(ids.iter().map(|i| i * 10).collect::<Vec<_>>())),
    ];
    let schema = arrow_schema::Schema::new(vec![
        arrow_schema::Field::new("id", arrow_schema::DataType::Int64, false),
        arrow_schema::Field::new("name", arrow_schema::DataType::Utf8, true),
        arrow_schema::Field::new("score", arrow_schema::DataType::Int64, true),
    ]);
    RecordBatch::try_new(Arc::new(schema), cols).unwrap()
}

/// All ids in scan output, sorted.
pub fn ids(batches: &[(ScanChunk, RecordBatch)]) -> Vec<i64> {
    let mut out: Vec<i64> = batches
        .iter()
        .flat_map(|(_, b)| b.column_by_name("id").unwrap().as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec())
        .collect();
    out.sort_unstable();
    out
}
