//! Micro-benchmarks of the log's hot paths, through the public API of `strom_server`:
//!
//! * `encode/*`: Arrow IPC encoding of a client batch with the table's compression
//!   (`BatchEncoder`, the CPU half of an append);
//! * `append/*`: `BucketLog::append_encoded` of an already-encoded batch (entry framing,
//!   CRC32C, write(2) into the page cache; `os` durability, no fsync);
//! * `read/segment/*`: `BucketLog::read` of the stored batches of a 43-column table, full (a
//!   zero-copy view of each entry + CRC, served verbatim) vs projected to 13 columns (prelude,
//!   flatbuffer rewrite, copy + CRC of the kept columns): the blocking half of a scan;
//! * `read/engine/*`: the same through `StorageEngine::scan` (bucket tasks, channel).
//!
//! Run with `cargo bench -p strom-server --features bench-internals --bench log_bench`; each
//! bench measures ~3 s.

use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use strom_flight_api::{ColumnSpec, CreateDatabase, CreateTable, LogScan, WriteCommand};
use strom_server::bench_internals::{
    BatchEncoder, BucketLog, Compression, EncodedBatch, LogSettings, ReadProjection, SegmentPolicy, TailCache,
};
use strom_server::config::{Config, Durability};
use strom_server::engine::{Engine, StorageEngine};

const MEASURE: Duration = Duration::from_secs(3);
const WARM_UP: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------------------------- data

/// The 10-column append batch of `strom-bench` (an order event).
fn put_batch(rows: usize) -> RecordBatch {
    let mut rng = StdRng::seed_from_u64(7);
    let words = ["fast", "delivery", "great", "quality", "would", "buy", "again", "ok"];
    let schema = Schema::new(vec![
        Field::new("order_id", DataType::Int64, false),
        Field::new("user_id", DataType::Int64, true),
        Field::new("item_id", DataType::Int64, true),
        Field::new("price", DataType::Float64, true),
        Field::new("quantity", DataType::Int32, true),
        Field::new("discount", DataType::Float64, true),
        Field::new("score", DataType::Float64, true),
        Field::new("category", DataType::Utf8, true),
        Field::new("comment", DataType::Utf8, true),
        Field::new("event_time", DataType::Timestamp(TimeUnit::Millisecond, None), true),
    ]);
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(0..rows as i64)),
        Arc::new(Int64Array::from_iter_values((0..rows).map(|_| rng.gen_range(0..10_000_000)))),
        Arc::new(Int64Array::from_iter_values((0..rows).map(|_| rng.gen_range(0..1_000_000)))),
        Arc::new(Float64Array::from_iter_values((0..rows).map(|_| rng.gen_range(100..100_000) as f64 / 100.0))),
        Arc::new(Int32Array::from_iter_values((0..rows).map(|_| rng.gen_range(1..10)))),
        Arc::new(Float64Array::from_iter_values((0..rows).map(|_| rng.gen_range(0..50) as f64 / 100.0))),
        Arc::new(Float64Array::from_iter_values((0..rows).map(|_| rng.gen::<f64>()))),
        Arc::new(StringArray::from_iter_values((0..rows).map(|_| words[rng.gen_range(0..words.len())]))),
        Arc::new(StringArray::from_iter_values(
            (0..rows).map(|_| format!("{} {} {}", words[rng.gen_range(0..8)], words[rng.gen_range(0..8)], words[rng.gen_range(0..8)])),
        )),
        Arc::new(TimestampMillisecondArray::from_iter_values((0..rows as i64).map(|i| 1_760_000_000_000 + i * 3))),
    ];
    RecordBatch::try_new(Arc::new(schema), cols).expect("valid batch")
}

const WIDE_TYPES: [&str; 6] = ["BIGINT", "DOUBLE", "STRING", "INT", "BOOLEAN", "TIMESTAMP(3)"];
const WIDE_COLUMNS: usize = 43;
/// The 13 projected columns of `strom-bench` (3 BIGINT, 2 DOUBLE, 3 STRING, 2 INT, 1 BOOLEAN, 2 TIMESTAMP).
const PROJECTED: [usize; 13] = [0, 2, 5, 7, 9, 12, 16, 20, 24, 25, 29, 33, 38];

fn wide_type(i: usize) -> &'static str {
    WIDE_TYPES[i % WIDE_TYPES.len()]
}

fn wide_columns() -> Vec<ColumnSpec> {
    (0..WIDE_COLUMNS).map(|i| ColumnSpec::new(format!("c{i:02}"), wide_type(i))).collect()
}

fn wide_schema() -> SchemaRef {
    let fields: Vec<Field> = (0..WIDE_COLUMNS)
        .map(|i| {
            let dt = match wide_type(i) {
                "BIGINT" => DataType::Int64,
                "DOUBLE" => DataType::Float64,
                "STRING" => DataType::Utf8,
                "INT" => DataType::Int32,
                "BOOLEAN" => DataType::Boolean,
                _ => DataType::Timestamp(TimeUnit::Millisecond, None),
            };
            Field::new(format!("c{i:02}"), dt, true)
        })
        .collect();
    Arc::new(Schema::new(fields))
}

fn wide_batch(schema: &SchemaRef, rows: usize, seed: u64) -> RecordBatch {
    let mut rng = StdRng::seed_from_u64(seed);
    let cols: Vec<ArrayRef> = (0..WIDE_COLUMNS)
        .map(|i| -> ArrayRef {
            match wide_type(i) {
                "BIGINT" => Arc::new(Int64Array::from_iter_values((0..rows).map(|_| rng.gen_range(0..100_000_000i64)))),
                "DOUBLE" => Arc::new(Float64Array::from_iter_values((0..rows).map(|_| rng.gen_range(100..100_000) as f64 / 100.0))),
                "STRING" => Arc::new(StringArray::from_iter_values((0..rows).map(|_| format!("item-{:05}", rng.gen_range(0..100_000))))),
                "INT" => Arc::new(Int32Array::from_iter_values((0..rows).map(|_| rng.gen_range(0..10_000)))),
                "BOOLEAN" => Arc::new(BooleanArray::from_iter((0..rows).map(|_| Some(rng.gen_bool(0.3))))),
                _ => Arc::new(TimestampMillisecondArray::from_iter_values((0..rows as i64).map(|r| 1_760_000_000_000 + r * 7))),
            }
        })
        .collect();
    RecordBatch::try_new(schema.clone(), cols).expect("valid batch")
}

fn policy() -> SegmentPolicy {
    SegmentPolicy { segment_bytes: 256 * 1024 * 1024, segment_ms: 24 * 3600 * 1000 }
}

/// A bucket log with a tail cache of `tail_cache_bytes` (0: every read from the segment).
fn open_log(dir: &std::path::Path, tail_cache_bytes: u64) -> BucketLog {
    let settings = LogSettings {
        policy: policy(),
        durability: Durability::Os,
        clock: strom_server::clock::system_clock(),
        fs: Arc::new(strom_server::fs::RealFs::new()),
        tail_cache: TailCache::new(tail_cache_bytes),
    };
    BucketLog::open(dir, 0, "bench/bucket-0".into(), &settings).expect("open bucket log").0
}

// ---------------------------------------------------------------------------------- write

fn bench_encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    g.measurement_time(MEASURE).warm_up_time(WARM_UP).sample_size(20);
    for rows in [65_536usize, 100] {
        let batch = put_batch(rows);
        g.throughput(Throughput::Elements(rows as u64));
        for (name, compression) in [("NONE", Compression::None), ("ZSTD", Compression::Zstd)] {
            let mut encoder = BatchEncoder::new(compression).expect("encoder");
            g.bench_function(BenchmarkId::new(name, rows), |b| b.iter(|| black_box(encoder.encode(&batch).expect("encode"))));
        }
    }
    g.finish();
}

fn bench_append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append");
    g.measurement_time(MEASURE).warm_up_time(WARM_UP).sample_size(20);
    for rows in [65_536usize, 100] {
        let encoded: EncodedBatch = BatchEncoder::new(Compression::None).expect("encoder").encode(&put_batch(rows)).expect("encode");
        let bytes = (encoded.meta.len() + encoded.body.len()) as u64;
        g.throughput(Throughput::Bytes(bytes));
        let dir = tempfile::tempdir().expect("tempdir");
        let log = open_log(dir.path(), 0);
        g.bench_function(BenchmarkId::new("os/NONE", rows), |b| {
            b.iter_custom(|iters| {
                let mut measured = Duration::ZERO;
                let mut since_cleanup = 0u64;
                for _ in 0..iters {
                    let t = Instant::now();
                    black_box(log.append_encoded(&encoded, rows as u32, 1, None).expect("append"));
                    measured += t.elapsed();
                    since_cleanup += bytes;
                    // Keep the disk footprint bounded: drop sealed segments (not measured).
                    if since_cleanup > 512 * 1024 * 1024 {
                        log.delete_segments_before(i64::MAX, u64::MAX).expect("delete segments");
                        since_cleanup = 0;
                    }
                }
                measured
            })
        });
    }
    g.finish();
}

// ---------------------------------------------------------------------------------- read

/// A bucket log holding `batches` stored batches of the wide table.
struct StoredWide {
    _dir: tempfile::TempDir,
    log: BucketLog,
    schema: SchemaRef,
    rows: u64,
}

fn stored_wide(compression: Compression, batches: usize, rows: usize, tail_cache_bytes: u64) -> StoredWide {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open_log(dir.path(), tail_cache_bytes);
    let schema = wide_schema();
    let mut encoder = BatchEncoder::new(compression).expect("encoder");
    for i in 0..batches {
        log.append_unconfirmed(&wide_batch(&schema, rows, i as u64), 1, None, &mut encoder).expect("append");
    }
    StoredWide { _dir: dir, log, schema, rows: (batches * rows) as u64 }
}

/// Reads the whole log once through `BucketLog::read` with `columns` (None: verbatim), as a
/// scan's bucket reader does; returns the body bytes produced.
fn read_all(stored: &StoredWide, columns: Option<Vec<usize>>) -> usize {
    let projection = ReadProjection::new(stored.schema.clone(), 1, &BTreeMap::new(), false, columns, false);
    let hw = stored.log.high_watermark();
    let (mut pos, mut bytes) = (0, 0);
    while pos < hw {
        let outcome = stored.log.read(pos, hw, usize::MAX, &projection, &mut |rows| rows).expect("read");
        bytes += outcome.batches.iter().map(|b| b.body.len()).sum::<usize>();
        black_box(&outcome.batches);
        pos = outcome.next;
    }
    bytes
}

/// Reads from the segment files (every byte CRC-checked) and, for `read/tail_cache`, from the
/// tail cache of the same appends (no segment read, no CRC pass).
fn bench_read_segment(c: &mut Criterion) {
    for (group, tail_cache_bytes) in [("read/segment", 0), ("read/tail_cache", 1 << 30)] {
        bench_read_stored(c, group, tail_cache_bytes);
    }
}

fn bench_read_stored(c: &mut Criterion, group: &str, tail_cache_bytes: u64) {
    let mut g = c.benchmark_group(group);
    g.measurement_time(MEASURE).warm_up_time(WARM_UP).sample_size(20);
    for (name, compression) in [("NONE", Compression::None), ("ZSTD", Compression::Zstd)] {
        let stored = stored_wide(compression, 16, 16_384, tail_cache_bytes);
        g.throughput(Throughput::Elements(stored.rows));
        let full_bytes = read_all(&stored, None);
        let proj_bytes = read_all(&stored, Some(PROJECTED.to_vec()));
        println!(
            "{group}/{name}: {} rows, full body {} B, projected body {} B (byte share {:.1}%)",
            stored.rows,
            full_bytes,
            proj_bytes,
            100.0 * proj_bytes as f64 / full_bytes as f64
        );
        g.bench_function(BenchmarkId::new("full43", name), |b| b.iter(|| black_box(read_all(&stored, None))));
        g.bench_function(BenchmarkId::new("proj13", name), |b| b.iter(|| black_box(read_all(&stored, Some(PROJECTED.to_vec())))));
    }
    g.finish();
}

fn bench_read_engine(c: &mut Criterion) {
    let mut g = c.benchmark_group("read/engine");
    g.measurement_time(MEASURE).warm_up_time(WARM_UP).sample_size(20);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::default();
    config.storage.data_dir = dir.path().to_path_buf();
    let engine = Engine::open(config).expect("engine");
    engine.create_database(&CreateDatabase { name: "bench".into(), ..Default::default() }).expect("database");
    let schema = wide_schema();
    let rows_per_batch = 16_384;
    let batches = 16;
    for name in ["NONE", "ZSTD"] {
        let table = format!("wide_{}", name.to_lowercase());
        let options: BTreeMap<String, String> = [("table.log.arrow.compression.type", name), ("table.log.durability", "os")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        engine
            .create_table(&CreateTable {
                database: "bench".into(),
                table: table.clone(),
                columns: wide_columns(),
                bucket_num: Some(4),
                options,
                ..Default::default()
            })
            .expect("table");
        let writer = engine.open_writer(&WriteCommand::append("bench", &table), true).expect("writer");
        runtime.block_on(async {
            for i in 0..batches {
                let pending = writer.write(wide_batch(&schema, rows_per_batch, i), None).await.expect("append");
                pending.durable().await.expect("durable");
            }
        });
        g.throughput(Throughput::Elements((rows_per_batch * batches as usize) as u64));
        let projected: Vec<String> = PROJECTED.iter().map(|i| format!("c{i:02}")).collect();
        for (label, columns) in [("full43", None), ("proj13", Some(projected))] {
            let scan = LogScan { database: "bench".into(), table: table.clone(), columns, ..Default::default() };
            g.bench_function(BenchmarkId::new(label, name), |b| {
                b.iter(|| {
                    runtime.block_on(async {
                        let mut stream = engine.scan(&scan).expect("scan");
                        let (mut rows, mut bytes) = (0u64, 0usize);
                        while let Some(chunk) = stream.chunks.recv().await {
                            let chunk = chunk.expect("chunk");
                            rows += chunk.rows;
                            bytes += chunk.message.body.len();
                        }
                        assert_eq!(rows, (rows_per_batch * batches as usize) as u64);
                        black_box(bytes)
                    })
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench_encode, bench_append, bench_read_segment, bench_read_engine);
criterion_main!(benches);
