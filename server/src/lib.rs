//! Strom storage node: catalog, bucket logs, the KV store of primary-key tables, and the Arrow
//! Flight service.
//!
//! Module map (see `docs/architecture.md`), calls pointing down only:
//!
//! ```text
//! server / main   wire the transport: bind, serve Flight, stop gracefully
//! flight          the front door: parses and validates requests, status codes, framing
//! engine          the storage engine; its `api` is all that `flight` sees
//! kv              RocksDB store, memcomparable keys, row format, merge engines
//! log             bucket logs: segments, format, group commit, reads, recovery, retention
//! catalog         databases, tables, options, partitions (one durable envelope file)
//! fs              the file-system seam (real, or fault-injecting for power-loss tests)
//! config, clock, error   leaves
//! ```

pub(crate) mod catalog;
pub mod clock;
pub mod config;
pub mod engine;
pub mod error;
pub mod flight;
pub mod fs;
pub(crate) mod kv;
pub(crate) mod log;
pub mod server;

/// Internals for the criterion micro-benchmarks (`--features bench-internals`); not an API.
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub mod bench_internals {
    pub use crate::kv::keys::{bucket_prefix, BUCKET_PREFIX_LEN};
    pub use crate::kv::store::{KvStore, KvWrite};
    pub use crate::log::{BatchEncoder, BucketLog, Compression, EncodedBatch, LogSettings, ReadProjection, SegmentPolicy, TailCache};
}

pub use config::Config;
pub use error::{Error, Result};
pub use server::RunningServer;
