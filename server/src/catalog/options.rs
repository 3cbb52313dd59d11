//! Table options: Fluss's names, validated strictly. An unknown or malformed option is an
//! error naming it; options owned by clients (`client.*`, `scan.*`, `lookup.*`, `sink.*`) are
//! stored and returned as given, except the ones this node acts on itself.

use super::auto_partition;
use crate::config::Durability;
use crate::error::{Error, Result};
pub use crate::log::Compression;
use std::collections::BTreeMap;
use std::time::Duration;

pub const BUCKET_NUM: &str = "bucket.num";
pub const BUCKET_KEY: &str = "bucket.key";
pub const COMPRESSION: &str = "table.log.arrow.compression.type";
pub const LOG_TTL: &str = "table.log.ttl";
pub const LOG_FORMAT: &str = "table.log.format";
pub const NO_KEY_ASSIGNER: &str = "client.writer.bucket.no-key-assigner";
pub const DURABILITY: &str = "table.log.durability";
pub const REPLICATION_FACTOR: &str = "table.replication.factor";
/// A write naming a partition that does not exist creates it (default, as in Fluss) instead of
/// failing with NOT_FOUND.
pub const DYNAMIC_PARTITION: &str = "client.writer.dynamic-create-partition.enabled";

/// Fluss's default retention: 7 days.
pub const DEFAULT_TTL: &str = "7 d";

/// Options of the contract that a later node version acts on: accepted names, refused values.
const NOT_YET: &[&str] = &["table.datalake.enabled", "table.datalake.freshness"];

/// Options that `alter_table` may change on a live table.
pub const ONLINE_OPTIONS: &[&str] =
    &[LOG_TTL, NO_KEY_ASSIGNER, DURABILITY, DYNAMIC_PARTITION, auto_partition::NUM_PRECREATE, auto_partition::NUM_RETENTION];

/// How rows of a table without a bucket key are spread over buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoKeyAssigner {
    /// A whole batch goes to one bucket; the next batch picks another.
    Sticky,
    /// Batches rotate over the buckets in order.
    RoundRobin,
}

/// The options the node acts on, parsed once.
#[derive(Debug, Clone, PartialEq)]
pub struct LogOptions {
    pub compression: Compression,
    pub ttl: Duration,
    pub no_key_assigner: NoKeyAssigner,
    pub durability: Durability,
}

fn invalid(key: &str, value: &str, why: &str) -> Error {
    Error::invalid(format!("option {key:?} = {value:?}: {why}"))
}

/// Parses durations as Flink/Fluss write them: `7d`, `7 d`, `168 h`, `30min`, `10 s`, `500ms`.
/// A bare number is milliseconds.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("{text:?} is not a duration such as \"7 d\", \"12 h\" or \"30 min\""))?;
    let unit = unit.trim().to_ascii_lowercase();
    let ms = match unit.as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1000,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        other => return Err(format!("unknown duration unit {other:?} (use ms, s, min, h or d)")),
    };
    n.checked_mul(ms).map(Duration::from_millis).ok_or_else(|| format!("{text:?} overflows"))
}

/// Validates one option (name and value); `Ok(false)` means "stored, not interpreted".
fn validate_option(key: &str, value: &str) -> Result<()> {
    match key {
        BUCKET_NUM => {
            let n: u32 = value.trim().parse().map_err(|_| invalid(key, value, "must be an integer >= 1"))?;
            if n == 0 || n > 1024 {
                return Err(invalid(key, value, "must be between 1 and 1024"));
            }
        }
        BUCKET_KEY => {
            if value.split(',').any(|c| c.trim().is_empty()) {
                return Err(invalid(key, value, "must be a comma-separated list of column names"));
            }
        }
        COMPRESSION => {
            parse_compression(value).map_err(|why| invalid(key, value, &why))?;
        }
        LOG_TTL => {
            let d = parse_duration(value).map_err(|why| invalid(key, value, &why))?;
            if d.is_zero() {
                return Err(invalid(key, value, "must be a positive duration"));
            }
        }
        LOG_FORMAT => {
            if !value.eq_ignore_ascii_case("ARROW") {
                return Err(invalid(key, value, "only ARROW is supported"));
            }
        }
        NO_KEY_ASSIGNER => {
            parse_assigner(value).map_err(|why| invalid(key, value, &why))?;
        }
        DURABILITY => {
            value.parse::<Durability>().map_err(|why| invalid(key, value, &why))?;
        }
        REPLICATION_FACTOR => {
            if value.trim() != "1" {
                return Err(invalid(key, value, "a single Strom node stores one copy; only 1 is accepted"));
            }
        }
        k if auto_partition::OPTIONS.contains(&k) => auto_partition::validate_value(k, value)?,
        DYNAMIC_PARTITION => {
            parse_bool(value).map_err(|why| invalid(key, value, &why))?;
        }
        k if NOT_YET.contains(&k) => {
            return Err(Error::Unimplemented(format!("option {k:?} is part of the contract but not served by this node version yet")));
        }
        k if k.starts_with("client.") || k.starts_with("scan.") || k.starts_with("lookup.") || k.starts_with("sink.") => {}
        k if super::pk::PK_ONLY.contains(&k) || k.starts_with("fields.") => {
            return Err(Error::invalid(format!("option {k:?} applies to primary-key tables; this table has no primary key")));
        }
        k => return Err(Error::invalid(format!("unknown table option {k:?}"))),
    }
    Ok(())
}

fn parse_bool(value: &str) -> std::result::Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("must be true or false".into()),
    }
}

/// Whether writes create missing partitions (`client.writer.dynamic-create-partition.enabled`).
pub fn dynamic_partition_creation(options: &BTreeMap<String, String>) -> bool {
    options.get(DYNAMIC_PARTITION).is_none_or(|v| parse_bool(v).unwrap_or(true))
}

fn parse_compression(value: &str) -> std::result::Result<Compression, String> {
    match value.trim().to_ascii_uppercase().as_str() {
        "ZSTD" => Ok(Compression::Zstd),
        "LZ4_FRAME" | "LZ4" => Ok(Compression::Lz4Frame),
        "NONE" => Ok(Compression::None),
        _ => Err("must be ZSTD, LZ4_FRAME or NONE".into()),
    }
}

fn parse_assigner(value: &str) -> std::result::Result<NoKeyAssigner, String> {
    match value.trim().to_ascii_uppercase().as_str() {
        "STICKY" => Ok(NoKeyAssigner::Sticky),
        "ROUND_ROBIN" => Ok(NoKeyAssigner::RoundRobin),
        _ => Err("must be STICKY or ROUND_ROBIN".into()),
    }
}

/// Validates every option of a new table; returns the map with defaults filled in.
/// Primary-key options (`table.merge-engine`, `fields.*`, ...) are validated by `catalog::pk`.
pub fn validate_and_fill(
    options: &BTreeMap<String, String>,
    bucket_num: u32,
    node_durability: Durability,
    primary_key_table: bool,
) -> Result<BTreeMap<String, String>> {
    for (k, v) in options {
        if primary_key_table && (super::pk::PK_ONLY.contains(&k.as_str()) || k.starts_with("fields.")) {
            continue;
        }
        validate_option(k, v)?;
    }
    let mut full = options.clone();
    full.insert(BUCKET_NUM.into(), bucket_num.to_string());
    full.entry(COMPRESSION.into()).or_insert_with(|| "ZSTD".into());
    full.entry(LOG_TTL.into()).or_insert_with(|| DEFAULT_TTL.into());
    full.entry(NO_KEY_ASSIGNER.into()).or_insert_with(|| "STICKY".into());
    full.entry(DURABILITY.into()).or_insert_with(|| node_durability.to_string());
    full.entry(LOG_FORMAT.into()).or_insert_with(|| "ARROW".into());
    Ok(full)
}

/// Validates options changed by `alter_table`.
pub fn validate_online_change(changes: &BTreeMap<String, String>) -> Result<()> {
    for (k, v) in changes {
        let client_owned = k.starts_with("client.") || k.starts_with("scan.") || k.starts_with("lookup.") || k.starts_with("sink.");
        if !ONLINE_OPTIONS.contains(&k.as_str()) && !client_owned {
            validate_option(k, v)?;
            return Err(Error::invalid(format!("option {k:?} cannot change on an existing table (online: {})", ONLINE_OPTIONS.join(", "))));
        }
        validate_option(k, v)?;
    }
    Ok(())
}

/// Parses the options the node acts on from a filled-in option map.
pub fn log_options(options: &BTreeMap<String, String>) -> Result<LogOptions> {
    let get = |k: &str| options.get(k).map(String::as_str).ok_or_else(|| Error::Internal(format!("option {k} missing from catalog")));
    Ok(LogOptions {
        compression: parse_compression(get(COMPRESSION)?).map_err(Error::Internal)?,
        ttl: parse_duration(get(LOG_TTL)?).map_err(Error::Internal)?,
        no_key_assigner: parse_assigner(get(NO_KEY_ASSIGNER)?).map_err(Error::Internal)?,
        durability: get(DURABILITY)?.parse().map_err(Error::Internal)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn given_durations_when_parsed_should_accept_flink_spellings() {
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(7 * 86400));
        assert_eq!(parse_duration("168 h").unwrap(), Duration::from_secs(168 * 3600));
        assert_eq!(parse_duration("30min").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("250").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("banana").is_err());
        assert!(parse_duration("5 weeks").is_err());
    }

    #[test]
    fn given_no_options_when_filled_should_use_defaults() {
        let full = validate_and_fill(&BTreeMap::new(), 4, Durability::Sync, false).unwrap();
        let parsed = log_options(&full).unwrap();
        assert_eq!(parsed.compression, Compression::Zstd);
        assert_eq!(parsed.ttl, Duration::from_secs(7 * 86400));
        assert_eq!(parsed.no_key_assigner, NoKeyAssigner::Sticky);
        assert_eq!(full[BUCKET_NUM], "4");
    }

    #[test]
    fn given_bad_options_when_validated_should_name_them() {
        for (k, v) in [(COMPRESSION, "GZIP"), (LOG_TTL, "banana"), (NO_KEY_ASSIGNER, "RANDOM"), ("table.unknown", "x"), (BUCKET_NUM, "0")] {
            let err = validate_and_fill(&opts(&[(k, v)]), 1, Durability::Sync, false).unwrap_err().to_string();
            assert!(err.contains(k), "{k}: {err}");
        }
    }

    #[test]
    fn given_primary_key_options_on_a_log_table_when_validated_should_refuse_them() {
        for k in ["table.merge-engine", "fields.x.agg", "auto-increment.fields"] {
            let err = validate_and_fill(&opts(&[(k, "x")]), 1, Durability::Sync, false).unwrap_err().to_string();
            assert!(err.contains(k) && err.contains("primary-key tables"), "{err}");
        }
        assert!(validate_and_fill(&opts(&[("table.merge-engine", "x")]), 1, Durability::Sync, true).is_ok(), "left to catalog::pk");
    }

    #[test]
    fn given_client_options_when_validated_should_be_kept() {
        let full = validate_and_fill(&opts(&[("scan.startup.mode", "earliest")]), 1, Durability::Os, false).unwrap();
        assert_eq!(full["scan.startup.mode"], "earliest");
        assert_eq!(full[DURABILITY], "os");
    }

    #[test]
    fn given_offline_option_when_altered_should_be_refused() {
        assert!(validate_online_change(&opts(&[(LOG_TTL, "1 d")])).is_ok());
        let err = validate_online_change(&opts(&[(BUCKET_NUM, "8")])).unwrap_err().to_string();
        assert!(err.contains("cannot change"), "{err}");
    }
}
