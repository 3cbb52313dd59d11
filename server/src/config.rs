//! Node configuration: built-in defaults, the TOML file documented in `config/strom.toml`,
//! then environment variables and flags (applied by `main.rs` through clap).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The commented default configuration, shipped as documentation.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../../config/strom.toml");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub log: LogConfig,
    pub kv: KvConfig,
}

/// The RocksDB store of primary-key tables; see `config/strom.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KvConfig {
    pub block_cache_bytes: CacheSize,
    pub snapshot_batch_rows: usize,
    pub idle_flush_ms: u64,
    pub bottommost_compression: KvCompression,
}

impl Default for KvConfig {
    fn default() -> Self {
        Self {
            block_cache_bytes: CacheSize::Auto,
            snapshot_batch_rows: 8192,
            idle_flush_ms: 5_000,
            bottommost_compression: KvCompression::Lz4,
        }
    }
}

/// The size of a cache: `"auto"` (a share of the machine's memory) or a number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheSize {
    Auto,
    Bytes(usize),
}

impl CacheSize {
    /// The smallest cache `"auto"` picks, on machines (or cgroups) with little memory.
    pub const AUTO_MIN_BYTES: usize = 64 * 1024 * 1024;

    /// Ceiling of `"auto"`: a node shares its machine with Flink task managers more often than
    /// not, and 2 GiB of cached blocks hold the hot part of tables many times that size.
    pub const AUTO_MAX_BYTES: usize = 2 * 1024 * 1024 * 1024;

    /// The size in bytes: `"auto"` is an eighth of the memory this process may use (the
    /// cgroup limit when there is one, else the machine's), between 64 MiB and 2 GiB.
    pub fn resolve(self) -> usize {
        match self {
            CacheSize::Bytes(b) => b,
            CacheSize::Auto => match memory_limit_bytes() {
                Some(total) => ((total / 8) as usize).clamp(Self::AUTO_MIN_BYTES, Self::AUTO_MAX_BYTES),
                None => 256 * 1024 * 1024,
            },
        }
    }
}

impl Serialize for CacheSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            CacheSize::Auto => s.serialize_str("auto"),
            CacheSize::Bytes(b) => s.serialize_u64(*b as u64),
        }
    }
}

impl<'de> Deserialize<'de> for CacheSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = CacheSize;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("\"auto\" or a number of bytes")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<CacheSize, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<CacheSize, E> {
                usize::try_from(v).map(CacheSize::Bytes).map_err(|_| E::custom(format!("a cache size must be >= 0 bytes, got {v}")))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<CacheSize, E> {
                usize::try_from(v).map(CacheSize::Bytes).map_err(|_| E::custom(format!("cache size {v} does not fit in memory")))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl std::str::FromStr for CacheSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("auto") {
            return Ok(CacheSize::Auto);
        }
        s.parse::<usize>().map(CacheSize::Bytes).map_err(|_| format!("a cache size is \"auto\" or a number of bytes, got {s:?}"))
    }
}

impl std::fmt::Display for CacheSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheSize::Auto => f.write_str("auto"),
            CacheSize::Bytes(b) => write!(f, "{b}"),
        }
    }
}

/// The memory this process may use: the cgroup v2 limit when one is set, else the machine's
/// total memory (`/proc/meminfo`). None where neither can be read.
pub fn memory_limit_bytes() -> Option<u64> {
    let machine = std::fs::read_to_string("/proc/meminfo").ok().and_then(|text| {
        let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    });
    // "max" (no limit) does not parse and leaves the machine's figure.
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok().and_then(|t| t.trim().parse::<u64>().ok());
    match (machine, cgroup) {
        (Some(m), Some(c)) => Some(m.min(c)),
        (m, c) => m.or(c),
    }
}

/// Compression of the KV store's bottom level (most of its data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KvCompression {
    Lz4,
    Zstd,
    None,
}

/// `server.lookup_pipeline_depth`'s default (config/strom.toml says why 4).
pub const DEFAULT_LOOKUP_PIPELINE_DEPTH: usize = 4;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: String,
    pub max_message_bytes: usize,
    pub max_inflight_write_bytes: usize,
    pub shutdown_grace_ms: u64,
    pub lookup_pipeline_depth: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9123".into(),
            max_message_bytes: 64 * 1024 * 1024,
            max_inflight_write_bytes: 512 * 1024 * 1024,
            shutdown_grace_ms: 5000,
            lookup_pipeline_depth: DEFAULT_LOOKUP_PIPELINE_DEPTH,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self { data_dir: PathBuf::from("strom-data") }
    }
}

/// When an append is acknowledged; see `config/strom.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    #[default]
    Sync,
    Os,
}

impl std::str::FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "sync" => Ok(Durability::Sync),
            "os" => Ok(Durability::Os),
            other => Err(format!("durability must be \"sync\" or \"os\", got {other:?}")),
        }
    }
}

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Durability::Sync => "sync",
            Durability::Os => "os",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub durability: Durability,
    pub flush_interval_ms: u64,
    pub segment_bytes: u64,
    pub segment_ms: u64,
    pub retention_check_interval_ms: u64,
    pub auto_partition_check_interval_ms: u64,
    pub default_bucket_num: u32,
    pub scan_read_bytes: usize,
    pub scan_message_bytes: usize,
    pub tail_cache_bytes: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            durability: Durability::Sync,
            flush_interval_ms: 1000,
            segment_bytes: 128 * 1024 * 1024,
            segment_ms: 24 * 3600 * 1000,
            retention_check_interval_ms: 60_000,
            auto_partition_check_interval_ms: 60_000,
            default_bucket_num: 1,
            scan_read_bytes: 8 * 1024 * 1024,
            scan_message_bytes: 0,
            tail_cache_bytes: 1024 * 1024 * 1024,
        }
    }
}

impl Config {
    /// Reads a TOML file; unknown keys are an error naming the key.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::invalid(format!("cannot read config file {}: {e}", path.display())))?;
        Self::from_toml(&text).map_err(|e| Error::invalid(format!("config file {}: {e}", path.display())))
    }

    pub fn from_toml(text: &str) -> Result<Self> {
        let config: Config = toml::from_str(text).map_err(|e| Error::invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<()> {
        self.listen_addr()?;
        let checks = [
            (self.server.max_message_bytes >= 64 * 1024, "server.max_message_bytes must be at least 65536"),
            (
                self.server.max_inflight_write_bytes >= self.server.max_message_bytes,
                "server.max_inflight_write_bytes must be >= server.max_message_bytes",
            ),
            ((1..=64).contains(&self.server.lookup_pipeline_depth), "server.lookup_pipeline_depth must be between 1 and 64"),
            (self.log.segment_bytes >= 1024 * 1024, "log.segment_bytes must be at least 1 MiB"),
            (self.log.flush_interval_ms > 0, "log.flush_interval_ms must be > 0"),
            (self.log.default_bucket_num >= 1, "log.default_bucket_num must be >= 1"),
            (self.log.scan_read_bytes >= 64 * 1024, "log.scan_read_bytes must be at least 65536"),
            (
                self.log.scan_message_bytes == 0 || self.log.scan_message_bytes >= 64 * 1024,
                "log.scan_message_bytes must be 0 (send stored batches whole) or at least 65536",
            ),
            (self.log.retention_check_interval_ms > 0, "log.retention_check_interval_ms must be > 0"),
            (self.kv.snapshot_batch_rows >= 1, "kv.snapshot_batch_rows must be >= 1"),
        ];
        for (ok, msg) in checks {
            if !ok {
                return Err(Error::invalid(msg));
            }
        }
        Ok(())
    }

    pub fn listen_addr(&self) -> Result<SocketAddr> {
        self.server
            .listen
            .parse()
            .map_err(|e| Error::invalid(format!("server.listen {:?} is not a host:port address: {e}", self.server.listen)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_shipped_config_file_when_parsed_should_equal_builtin_defaults() {
        assert_eq!(Config::from_toml(DEFAULT_CONFIG_TOML).unwrap(), Config::default());
    }

    #[test]
    fn given_cache_sizes_when_parsed_should_accept_auto_and_bytes_only() {
        let parse = |v: &str| Config::from_toml(&format!("[kv]\nblock_cache_bytes = {v}\n")).map(|c| c.kv.block_cache_bytes);
        assert_eq!(parse("\"auto\"").unwrap(), CacheSize::Auto);
        assert_eq!(parse("1048576").unwrap(), CacheSize::Bytes(1 << 20));
        let err = parse("\"lots\"").unwrap_err().to_string();
        assert!(err.contains("\"lots\""), "{err}");
        let err = parse("-5").unwrap_err().to_string();
        assert!(err.contains("-5"), "{err}");
        assert_eq!(CacheSize::Bytes(12345).resolve(), 12345);
        let auto = CacheSize::Auto.resolve();
        assert!((CacheSize::AUTO_MIN_BYTES..=CacheSize::AUTO_MAX_BYTES).contains(&auto), "{auto}");
        if let Some(limit) = memory_limit_bytes() {
            assert!(auto as u64 <= limit.max(CacheSize::AUTO_MIN_BYTES as u64), "auto {auto} above the memory limit {limit}");
        }
    }

    #[test]
    fn given_unknown_key_when_parsed_should_name_it() {
        let err = Config::from_toml("[log]\nsegment_byte = 5\n").unwrap_err().to_string();
        assert!(err.contains("segment_byte"), "{err}");
    }

    #[test]
    fn given_too_small_segment_when_validated_should_fail() {
        let err = Config::from_toml("[log]\nsegment_bytes = 10\n").unwrap_err().to_string();
        assert!(err.contains("segment_bytes"), "{err}");
    }
}
