//! Primary-key benchmark data: the three tables, deterministic batch generators, the key order
//! of a load, and the key distributions of lookups (uniform and Zipf, with a share of misses).
//!
//! Keys of a table of `n` rows are exactly `0..n`; the load writes them in a scrambled order
//! (`scramble`, a bijection of `0..n`), and lookups draw missing keys from `n..2n`. Zipf ranks
//! are scrambled the same way, so the hot keys are spread over the key space and the buckets.

use crate::data::TableDef;
use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;

/// A multiplier coprime with every table size the bench uses (a prime above them).
const SCRAMBLE: u128 = 2_654_435_761;

/// The `i`-th key of a load of `n` keys: a bijection of `0..n` that scatters neighbours.
pub fn scramble(i: u64, n: u64) -> i64 {
    if n <= 1 {
        return i as i64;
    }
    let m = if (n as u128).is_multiple_of(SCRAMBLE) { 1 } else { SCRAMBLE };
    ((i as u128 * m) % n as u128) as i64
}

fn table(cols: &[(&str, &str, bool)]) -> TableDef {
    let owned: Vec<(String, &str, bool)> = cols.iter().map(|(n, t, nl)| (n.to_string(), *t, *nl)).collect();
    TableDef::new(&owned)
}

/// `PRIMARY KEY (id)` + five value columns: a user profile.
pub fn users_table() -> TableDef {
    table(&[
        ("id", "BIGINT", false),
        ("name", "STRING", true),
        ("city", "STRING", true),
        ("balance", "DOUBLE", true),
        ("visits", "BIGINT", true),
        ("updated_at", "TIMESTAMP(3)", true),
    ])
}

pub const USERS_KEY: &[&str] = &["id"];

const CITIES: &[&str] = &["Berlin", "Lisbon", "Osaka", "Toronto", "Nairobi", "Lima", "Oslo", "Pune", "Austin", "Hanoi", "Cork", "Perth"];

/// Rows of the users table for `ids`.
pub fn users_batch(def: &TableDef, ids: &[i64], seed: u64) -> RecordBatch {
    let mut rng = StdRng::seed_from_u64(seed);
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.to_vec())),
        Arc::new(StringArray::from_iter_values(ids.iter().map(|id| format!("user-{id:09}")))),
        Arc::new(StringArray::from_iter_values(ids.iter().map(|_| CITIES[rng.gen_range(0..CITIES.len())]))),
        Arc::new(Float64Array::from_iter_values(ids.iter().map(|_| rng.gen_range(0..10_000_000) as f64 / 100.0))),
        Arc::new(Int64Array::from_iter_values(ids.iter().map(|_| rng.gen_range(0..5_000)))),
        Arc::new(TimestampMillisecondArray::from_iter_values(ids.iter().map(|id| 1_760_000_000_000 + id * 13))),
    ];
    RecordBatch::try_new(def.schema.clone(), cols).expect("users batch matches its schema")
}

/// Bytes a row takes in Strom's stored-row encoding (schema id, null bitmap, fixed widths,
/// strings as length + bytes), averaged over a batch: the value size handed to db_bench.
pub fn stored_row_bytes(batch: &RecordBatch) -> usize {
    use arrow_array::Array;
    let rows = batch.num_rows().max(1);
    let mut total = (4 + batch.num_columns().div_ceil(8)) * rows;
    for col in batch.columns() {
        total += match col.as_any().downcast_ref::<StringArray>() {
            Some(s) => s.len() * 4 + s.value_data().len(),
            None => col.len() * col.data_type().primitive_width().unwrap_or(1),
        };
    }
    total / rows
}

/// Bytes of a stored key: the 12-byte table/bucket prefix and an 8-byte BIGINT.
pub const STORED_KEY_BYTES: usize = 20;

/// The partial-update table: `PRIMARY KEY (id)` + nine nullable value columns.
pub fn wide10_table() -> TableDef {
    table(&[
        ("id", "BIGINT", false),
        ("c1_bigint", "BIGINT", true),
        ("c2_double", "DOUBLE", true),
        ("c3_string", "STRING", true),
        ("c4_int", "INT", true),
        ("c5_double", "DOUBLE", true),
        ("c6_string", "STRING", true),
        ("c7_bigint", "BIGINT", true),
        ("c8_ts", "TIMESTAMP(3)", true),
        ("c9_bool", "BOOLEAN", true),
    ])
}

/// The target columns of a partial update (3 of the 10 columns; the batch adds the key).
pub const PARTIAL_TARGETS: &[&str] = &["c2_double", "c4_int", "c7_bigint"];

/// Full rows of the wide table for `ids`.
pub fn wide10_batch(def: &TableDef, ids: &[i64], seed: u64) -> RecordBatch {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = ids.len();
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.to_vec())),
        Arc::new(Int64Array::from_iter_values((0..n).map(|_| rng.gen_range(0..1_000_000_000)))),
        Arc::new(Float64Array::from_iter_values((0..n).map(|_| rng.gen::<f64>() * 1000.0))),
        Arc::new(StringArray::from_iter_values((0..n).map(|_| format!("sku-{:07}", rng.gen_range(0..10_000_000))))),
        Arc::new(Int32Array::from_iter_values((0..n).map(|_| rng.gen_range(0..100)))),
        Arc::new(Float64Array::from_iter_values((0..n).map(|_| rng.gen::<f64>()))),
        Arc::new(StringArray::from_iter_values((0..n).map(|_| CITIES[rng.gen_range(0..CITIES.len())]))),
        Arc::new(Int64Array::from_iter_values((0..n).map(|_| rng.gen_range(0..1_000_000)))),
        Arc::new(TimestampMillisecondArray::from_iter_values((0..n).map(|i| 1_760_000_000_000 + i as i64))),
        Arc::new(BooleanArray::from_iter((0..n).map(|_| Some(rng.gen_bool(0.5))))),
    ];
    RecordBatch::try_new(def.schema.clone(), cols).expect("wide10 batch matches its schema")
}

/// A partial update of the wide table: the key and the [`PARTIAL_TARGETS`] columns.
pub fn partial_batch(def: &TableDef, ids: &[i64], seed: u64) -> RecordBatch {
    let full = wide10_batch(def, ids, seed);
    let mut names = vec!["id"];
    names.extend_from_slice(PARTIAL_TARGETS);
    let idx: Vec<usize> = names.iter().map(|n| def.schema.index_of(n).expect("partial column exists")).collect();
    full.project(&idx).expect("projection of existing columns")
}

/// The prefix-lookup table: `PRIMARY KEY (user_id, ds, order_id)`, bucket key `user_id`.
pub fn orders_table() -> TableDef {
    table(&[
        ("user_id", "BIGINT", false),
        ("ds", "STRING", false),
        ("order_id", "BIGINT", false),
        ("amount", "DOUBLE", true),
        ("status", "STRING", true),
        ("item_id", "BIGINT", true),
    ])
}

pub const ORDERS_KEY: &[&str] = &["user_id", "ds", "order_id"];
pub const ORDERS_PREFIX: &[&str] = &["user_id"];
const STATUSES: &[&str] = &["placed", "paid", "shipped", "delivered", "returned"];

/// Every order of the users `users` (`per_user` rows each, spread over days).
pub fn orders_batch(def: &TableDef, users: &[i64], per_user: usize, seed: u64) -> RecordBatch {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = users.len() * per_user;
    let user_ids: Vec<i64> = users.iter().flat_map(|u| std::iter::repeat_n(*u, per_user)).collect();
    let j = |i: usize| (i % per_user) as i64;
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(user_ids)),
        Arc::new(StringArray::from_iter_values((0..n).map(|i| format!("2026-{:02}-{:02}", 1 + j(i) / 28 % 12, 1 + j(i) % 28)))),
        Arc::new(Int64Array::from_iter_values((0..n).map(|i| users[i / per_user] * 1000 + j(i)))),
        Arc::new(Float64Array::from_iter_values((0..n).map(|_| rng.gen_range(100..100_000) as f64 / 100.0))),
        Arc::new(StringArray::from_iter_values((0..n).map(|_| STATUSES[rng.gen_range(0..STATUSES.len())]))),
        Arc::new(Int64Array::from_iter_values((0..n).map(|_| rng.gen_range(0..1_000_000)))),
    ];
    RecordBatch::try_new(def.schema.clone(), cols).expect("orders batch matches its schema")
}

/// Zipf-distributed ranks in `0..n` (rank 0 most frequent), with the rejection-free method of
/// Gray et al. ("Quickly generating billion-record synthetic databases", SIGMOD 1994).
#[derive(Debug, Clone)]
pub struct Zipf {
    n: f64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
}

impl Zipf {
    pub fn new(n: u64, theta: f64) -> Self {
        assert!(n >= 2 && theta > 0.0 && theta < 1.0, "Zipf needs n >= 2 and 0 < theta < 1");
        let zeta = |k: u64| (1..=k).map(|i| 1.0 / (i as f64).powf(theta)).sum::<f64>();
        let zetan = zeta(n);
        let zeta2 = zeta(2);
        let nf = n as f64;
        let eta = (1.0 - (2.0 / nf).powf(1.0 - theta)) / (1.0 - zeta2 / zetan);
        Self { n: nf, theta, alpha: 1.0 / (1.0 - theta), zetan, eta }
    }

    pub fn sample(&self, rng: &mut StdRng) -> u64 {
        let u: f64 = rng.gen();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1;
        }
        let r = (self.n * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        r.min(self.n as u64 - 1)
    }
}

/// How lookup keys are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Dist {
    Uniform,
    Zipf,
}

impl Dist {
    pub fn name(self) -> &'static str {
        match self {
            Dist::Uniform => "uniform",
            Dist::Zipf => "zipf",
        }
    }
}

/// Draws lookup keys of a table holding keys `0..n`: a `miss_ratio` share from `n..2n`
/// (absent), the rest uniform or Zipf over the present keys.
pub struct KeyPicker {
    n: u64,
    miss_ratio: f64,
    zipf: Option<Zipf>,
    rng: StdRng,
}

impl KeyPicker {
    pub fn new(n: u64, dist: Dist, miss_ratio: f64, theta: f64, seed: u64) -> Self {
        let zipf = (dist == Dist::Zipf && n >= 2).then(|| Zipf::new(n, theta));
        Self { n: n.max(1), miss_ratio, zipf, rng: StdRng::seed_from_u64(seed) }
    }

    /// A key and whether the table holds it.
    pub fn next(&mut self) -> (i64, bool) {
        if self.rng.gen_bool(self.miss_ratio.clamp(0.0, 1.0)) {
            return ((self.n + self.rng.gen_range(0..self.n)) as i64, false);
        }
        let rank = match &self.zipf {
            Some(z) => z.sample(&mut self.rng),
            None => self.rng.gen_range(0..self.n),
        };
        (scramble(rank, self.n), true)
    }
}

/// `n` as a short label: 1M, 10M, 500K, 1000.
pub fn count_label(n: u64) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1_000 && n.is_multiple_of(1_000) {
        format!("{}K", n / 1_000)
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn given_scramble_when_applied_to_a_range_should_be_a_permutation() {
        for n in [1u64, 2, 7, 1000, 1_000_000] {
            let seen: HashSet<i64> = (0..n).map(|i| scramble(i, n)).collect();
            assert_eq!(seen.len() as u64, n);
            assert!(seen.iter().all(|k| (0..n as i64).contains(k)));
        }
        assert_ne!(scramble(1, 1000), 1, "neighbours are scattered");
    }

    #[test]
    fn given_zipf_when_sampled_should_favour_low_ranks_and_stay_in_range() {
        let z = Zipf::new(100_000, 0.99);
        let mut rng = StdRng::seed_from_u64(7);
        let samples: Vec<u64> = (0..200_000).map(|_| z.sample(&mut rng)).collect();
        assert!(samples.iter().all(|&r| r < 100_000));
        let top = samples.iter().filter(|&&r| r == 0).count() as f64 / samples.len() as f64;
        // P(rank 0) = 1 / zeta(n) ≈ 0.08 for n = 1e5, theta = 0.99.
        assert!((0.05..0.12).contains(&top), "share of rank 0 {top}");
        let tail = samples.iter().filter(|&&r| r >= 50_000).count() as f64 / samples.len() as f64;
        assert!(tail < 0.1, "half the ranks get few samples, got {tail}");
    }

    #[test]
    fn given_key_picker_when_drawing_should_miss_at_the_ratio_and_hit_present_keys() {
        for dist in [Dist::Uniform, Dist::Zipf] {
            let mut p = KeyPicker::new(10_000, dist, 0.1, 0.99, 3);
            let draws: Vec<(i64, bool)> = (0..50_000).map(|_| p.next()).collect();
            let misses = draws.iter().filter(|(_, hit)| !hit).count() as f64 / draws.len() as f64;
            assert!((0.09..0.11).contains(&misses), "{dist:?}: miss share {misses}");
            assert!(draws.iter().all(|(k, hit)| *hit == (*k < 10_000) && *k >= 0 && *k < 20_000));
        }
    }

    #[test]
    fn given_generators_when_called_should_match_schemas_and_sizes() {
        let u = users_table();
        let b = users_batch(&u, &[3, 1, 2], 1);
        assert_eq!(b.num_rows(), 3);
        let size = stored_row_bytes(&b);
        assert!((60..90).contains(&size), "stored row bytes {size}");
        let w = wide10_table();
        assert_eq!(w.columns.len(), 10);
        let p = partial_batch(&w, &[1, 2], 5);
        assert_eq!(p.num_columns(), 1 + PARTIAL_TARGETS.len());
        assert_eq!(p.schema().field(0).name(), "id");
        let o = orders_table();
        let ob = orders_batch(&o, &[5, 9], 10, 1);
        assert_eq!(ob.num_rows(), 20);
        assert_eq!(count_label(10_000_000), "10M");
        assert_eq!(count_label(500_000), "500K");
        assert_eq!(count_label(1234), "1234");
    }
}
