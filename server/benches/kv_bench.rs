//! Micro-benchmarks of the KV store's read path (`KvStore`, RocksDB with Strom's options), in
//! process, hot loop: what one lookup costs RocksDB before any Flight, Arrow or network work.
//!
//! * `kv/point/*`: one key per call, `get` (copying the value) vs `multi_get_each` (the
//!   lookup path: `batched_multi_get`, values pinned in the block cache);
//! * `kv/batch1000/*`: 1,000 random keys per `multi_get_each` call.
//!
//! The store holds 1M rows of 100 value bytes in SST files (flushed; RocksDB compacts in the background as it would in the node), keys hit
//! 90 % of the time (10 % misses, like strom-bench), the block cache is warmed by one pass.
//! Run with `cargo bench -p strom-server --features bench-internals --bench kv_bench`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::hint::black_box;
use strom_server::bench_internals::{bucket_prefix, KvStore, KvWrite, BUCKET_PREFIX_LEN};
use strom_server::config::KvConfig;

const ROWS: u64 = 1_000_000;
const VALUE_BYTES: usize = 100;
const TABLE: u64 = 7;

fn key(id: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(BUCKET_PREFIX_LEN + 8);
    k.extend_from_slice(&bucket_prefix(TABLE, 0));
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// A store of `ROWS` rows with ids 0, 2, 4, ... (odd ids miss), flushed, cache warmed.
fn loaded_store(dir: &std::path::Path) -> KvStore {
    let kv = KvStore::open_with(dir, &KvConfig::default()).expect("open");
    let value = vec![0x5au8; VALUE_BYTES];
    let mut writes: Vec<KvWrite> = Vec::with_capacity(10_000);
    for i in 0..ROWS {
        writes.push((key(i * 2), Some(value.clone())));
        if writes.len() == 10_000 {
            kv.apply(TABLE, 0, &writes, i).expect("apply");
            writes.clear();
        }
    }
    kv.apply(TABLE, 0, &writes, ROWS).expect("apply");
    kv.flush().expect("flush");
    let all: Vec<Vec<u8>> = (0..ROWS).map(|i| key(i * 2)).collect();
    for chunk in all.chunks(10_000) {
        kv.multi_get_each(chunk, |_, v| {
            black_box(v);
            Ok(())
        })
        .expect("warm");
    }
    kv
}

fn random_keys(rng: &mut StdRng, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|_| {
            let id = rng.gen_range(0..ROWS) * 2;
            // 10 % misses: odd ids are never stored.
            key(if rng.gen_bool(0.1) { id + 1 } else { id })
        })
        .collect()
}

fn bench_kv(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let kv = loaded_store(dir.path());
    let mut rng = StdRng::seed_from_u64(42);
    let pool = random_keys(&mut rng, 100_000);

    let mut g = c.benchmark_group("kv/point");
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function("get", |b| {
        b.iter(|| {
            i = (i + 1) % pool.len();
            black_box(kv.get(&pool[i]).expect("get"))
        })
    });
    g.bench_function("multi_get_each", |b| {
        b.iter(|| {
            i = (i + 1) % pool.len();
            kv.multi_get_each(std::slice::from_ref(&pool[i]), |_, v| {
                black_box(v);
                Ok(())
            })
            .expect("multi_get")
        })
    });
    g.finish();

    let mut g = c.benchmark_group("kv/batch1000");
    g.throughput(Throughput::Elements(1000));
    let batches: Vec<Vec<Vec<u8>>> = (0..100).map(|_| random_keys(&mut rng, 1000)).collect();
    let mut j = 0usize;
    g.bench_function(BenchmarkId::new("multi_get_each", "uniform"), |b| {
        b.iter(|| {
            j = (j + 1) % batches.len();
            kv.multi_get_each(&batches[j], |_, v| {
                black_box(v);
                Ok(())
            })
            .expect("multi_get")
        })
    });
    g.finish();
}

criterion_group!(benches, bench_kv);
criterion_main!(benches);
