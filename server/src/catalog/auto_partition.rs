//! Auto-partitioning (`table.auto-partition.*`): a background check pre-creates the current and
//! upcoming time partitions and drops the ones older than the retention, with partition names
//! in Fluss's formats (`yyyyMMddHH`, `yyyyMMdd`, `yyyyMM`, `yyyyQ`, `yyyy`) in the table's time
//! zone. Every decision is a pure function of "now", so tests inject the time.

use crate::error::{Error, Result};
use chrono::{Datelike, NaiveDate, TimeZone, Timelike};
use std::collections::BTreeMap;

pub const ENABLED: &str = "table.auto-partition.enabled";
pub const KEY: &str = "table.auto-partition.key";
pub const TIME_UNIT: &str = "table.auto-partition.time-unit";
pub const NUM_PRECREATE: &str = "table.auto-partition.num-precreate";
pub const NUM_RETENTION: &str = "table.auto-partition.num-retention";
pub const TIME_ZONE: &str = "table.auto-partition.time-zone";

/// Every auto-partition option.
pub const OPTIONS: &[&str] = &[ENABLED, KEY, TIME_UNIT, NUM_PRECREATE, NUM_RETENTION, TIME_ZONE];

/// Fluss's defaults.
const DEFAULT_PRECREATE: u32 = 2;
const DEFAULT_RETENTION: u32 = 7;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    Hour,
    Day,
    Month,
    Quarter,
    Year,
}

impl TimeUnit {
    fn parse(v: &str) -> std::result::Result<Self, String> {
        match v.trim().to_ascii_uppercase().as_str() {
            "HOUR" => Ok(Self::Hour),
            "DAY" => Ok(Self::Day),
            "MONTH" => Ok(Self::Month),
            "QUARTER" => Ok(Self::Quarter),
            "YEAR" => Ok(Self::Year),
            _ => Err("must be HOUR, DAY, MONTH, QUARTER or YEAR".into()),
        }
    }

    /// The length of a partition name in this unit.
    fn name_len(self) -> usize {
        match self {
            Self::Hour => 10,
            Self::Day => 8,
            Self::Month => 6,
            Self::Quarter => 5,
            Self::Year => 4,
        }
    }
}

/// A table's auto-partitioning, parsed.
#[derive(Debug, Clone)]
pub struct AutoPartition {
    /// Position of the time key among the partition keys.
    pub key_index: usize,
    pub unit: TimeUnit,
    pub num_precreate: u32,
    pub num_retention: u32,
    pub time_zone: chrono_tz::Tz,
}

fn invalid(key: &str, value: &str, why: &str) -> Error {
    Error::invalid(format!("option {key:?} = {value:?}: {why}"))
}

fn parse_count(key: &str, value: &str) -> Result<u32> {
    value.trim().parse::<u32>().map_err(|_| invalid(key, value, "must be an integer >= 0"))
}

fn parse_time_zone(value: &str) -> Result<chrono_tz::Tz> {
    value
        .trim()
        .parse::<chrono_tz::Tz>()
        .map_err(|_| invalid(TIME_ZONE, value, "is not a time zone name such as \"UTC\" or \"Asia/Shanghai\""))
}

/// Checks one auto-partition option's value (names and values that need the table are checked
/// by `from_options`).
pub fn validate_value(key: &str, value: &str) -> Result<()> {
    match key {
        ENABLED if !matches!(value.trim().to_ascii_lowercase().as_str(), "true" | "false") => {
            return Err(invalid(key, value, "must be true or false"));
        }
        TIME_UNIT => {
            TimeUnit::parse(value).map_err(|why| invalid(key, value, &why))?;
        }
        NUM_PRECREATE | NUM_RETENTION => {
            parse_count(key, value)?;
        }
        TIME_ZONE => {
            parse_time_zone(value)?;
        }
        _ => {}
    }
    Ok(())
}

/// Validates the auto-partition options of a table with `partition_keys` and fills in their
/// defaults (when enabled); returns the parsed settings.
pub fn fill(options: &mut BTreeMap<String, String>, partition_keys: &[String]) -> Result<Option<AutoPartition>> {
    let enabled = options.get(ENABLED).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    if !enabled {
        if let Some(k) = OPTIONS.iter().find(|k| **k != ENABLED && options.contains_key(**k)) {
            return Err(Error::invalid(format!("option {k:?} needs {ENABLED:?} = \"true\"")));
        }
        return Ok(None);
    }
    if partition_keys.is_empty() {
        return Err(Error::invalid(format!("option {ENABLED:?} needs a partitioned table (\"partition_keys\")")));
    }
    let key = match options.get(KEY) {
        Some(k) => k.trim().to_string(),
        None if partition_keys.len() == 1 => partition_keys[0].clone(),
        None => {
            return Err(Error::invalid(format!(
                "option {KEY:?} is needed: the table has several partition keys ({})",
                partition_keys.join(", ")
            )))
        }
    };
    if !partition_keys.contains(&key) {
        return Err(invalid(KEY, &key, &format!("is not a partition key ({})", partition_keys.join(", "))));
    }
    options.insert(ENABLED.into(), "true".into());
    options.insert(KEY.into(), key);
    options.entry(TIME_UNIT.into()).or_insert_with(|| "DAY".into());
    options.entry(NUM_PRECREATE.into()).or_insert_with(|| DEFAULT_PRECREATE.to_string());
    options.entry(NUM_RETENTION.into()).or_insert_with(|| DEFAULT_RETENTION.to_string());
    options.entry(TIME_ZONE.into()).or_insert_with(|| "UTC".into());
    from_options(options, partition_keys)
}

/// The auto-partitioning of a table whose options were filled by `fill`.
pub fn from_options(options: &BTreeMap<String, String>, partition_keys: &[String]) -> Result<Option<AutoPartition>> {
    if !options.get(ENABLED).is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    let get = |k: &str| options.get(k).map(String::as_str).ok_or_else(|| Error::Internal(format!("option {k} missing from catalog")));
    let key = get(KEY)?;
    let key_index = partition_keys.iter().position(|k| k == key).ok_or_else(|| invalid(KEY, key, "is not a partition key"))?;
    Ok(Some(AutoPartition {
        key_index,
        unit: TimeUnit::parse(get(TIME_UNIT)?).map_err(|why| invalid(TIME_UNIT, get(TIME_UNIT).unwrap_or(""), &why))?,
        num_precreate: parse_count(NUM_PRECREATE, get(NUM_PRECREATE)?)?,
        num_retention: parse_count(NUM_RETENTION, get(NUM_RETENTION)?)?,
        time_zone: parse_time_zone(get(TIME_ZONE)?)?,
    }))
}

/// Days from 1970-01-01 to `date`.
fn epoch_day(date: NaiveDate) -> i64 {
    (date - NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid")).num_days()
}

impl AutoPartition {
    /// The period `now_ms` falls in, as a number that grows by one per period.
    pub fn period_of(&self, now_ms: i64) -> i64 {
        let local = self.time_zone.timestamp_millis_opt(now_ms).single().unwrap_or_else(|| {
            // Timestamps are always unambiguous in UTC; only a local wall time can be.
            chrono::Utc.timestamp_millis_opt(now_ms).single().expect("valid").with_timezone(&self.time_zone)
        });
        let date = local.date_naive();
        match self.unit {
            TimeUnit::Hour => epoch_day(date) * 24 + local.hour() as i64,
            TimeUnit::Day => epoch_day(date),
            TimeUnit::Month => date.year() as i64 * 12 + date.month0() as i64,
            TimeUnit::Quarter => date.year() as i64 * 4 + (date.month0() / 3) as i64,
            TimeUnit::Year => date.year() as i64,
        }
    }

    /// The partition value of a period.
    pub fn format(&self, period: i64) -> String {
        let day = |d: i64| NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid") + chrono::Duration::days(d);
        match self.unit {
            TimeUnit::Hour => {
                let d = day(period.div_euclid(24));
                format!("{:04}{:02}{:02}{:02}", d.year(), d.month(), d.day(), period.rem_euclid(24))
            }
            TimeUnit::Day => {
                let d = day(period);
                format!("{:04}{:02}{:02}", d.year(), d.month(), d.day())
            }
            TimeUnit::Month => format!("{:04}{:02}", period.div_euclid(12), period.rem_euclid(12) + 1),
            TimeUnit::Quarter => format!("{:04}{}", period.div_euclid(4), period.rem_euclid(4) + 1),
            TimeUnit::Year => format!("{:04}", period),
        }
    }

    /// The period a partition value names, None when it is not in this unit's format (such
    /// partitions are never dropped automatically).
    pub fn parse(&self, value: &str) -> Option<i64> {
        if value.len() != self.unit.name_len() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n = |r: std::ops::Range<usize>| value[r].parse::<u32>().ok();
        let period = match self.unit {
            TimeUnit::Hour => {
                let hour = n(8..10).filter(|h| *h < 24)?;
                epoch_day(NaiveDate::from_ymd_opt(n(0..4)? as i32, n(4..6)?, n(6..8)?)?) * 24 + hour as i64
            }
            TimeUnit::Day => epoch_day(NaiveDate::from_ymd_opt(n(0..4)? as i32, n(4..6)?, n(6..8)?)?),
            TimeUnit::Month => {
                let month = n(4..6).filter(|m| (1..=12).contains(m))?;
                n(0..4)? as i64 * 12 + month as i64 - 1
            }
            TimeUnit::Quarter => {
                let q = n(4..5).filter(|q| (1..=4).contains(q))?;
                n(0..4)? as i64 * 4 + q as i64 - 1
            }
            TimeUnit::Year => n(0..4)? as i64,
        };
        (self.format(period) == value).then_some(period)
    }

    /// What a check at `now_ms` does: the partition values to create (the current period and
    /// the next `num_precreate - 1`; only for tables with a single partition key, whose
    /// partitions the time value names alone) and, of `existing` (partition values of the time
    /// key, by partition name), the partitions to drop (periods before the last
    /// `num_retention` ones).
    pub fn plan(&self, now_ms: i64, single_key: bool, existing: &[(String, String)]) -> (Vec<String>, Vec<String>) {
        let current = self.period_of(now_ms);
        let create = if single_key { (0..self.num_precreate as i64).map(|i| self.format(current + i)).collect() } else { vec![] };
        let oldest_kept = current - self.num_retention as i64;
        let drop =
            existing.iter().filter(|(_, value)| self.parse(value).is_some_and(|p| p < oldest_kept)).map(|(name, _)| name.clone()).collect();
        (create, drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auto(unit: &str, zone: &str, precreate: u32, retention: u32) -> AutoPartition {
        let mut o: BTreeMap<String, String> = [
            (ENABLED, "true"),
            (TIME_UNIT, unit),
            (TIME_ZONE, zone),
            (NUM_PRECREATE, &precreate.to_string()),
            (NUM_RETENTION, &retention.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        fill(&mut o, &["ds".to_string()]).unwrap().unwrap()
    }

    /// 2026-11-21 23:30:00 UTC.
    const NOW: i64 = 1_795_303_800_000;

    #[test]
    fn given_each_time_unit_should_name_partitions_in_flusss_formats() {
        for (unit, zone, want) in [
            ("HOUR", "UTC", "2026112123"),
            ("DAY", "UTC", "20261121"),
            ("DAY", "Asia/Shanghai", "20261122"),
            ("MONTH", "UTC", "202611"),
            ("QUARTER", "UTC", "20264"),
            ("YEAR", "UTC", "2026"),
        ] {
            let a = auto(unit, zone, 1, 1);
            let p = a.period_of(NOW);
            assert_eq!(a.format(p), want, "{unit} {zone}");
            assert_eq!(a.parse(want), Some(p), "{unit}: names parse back");
        }
        let day = auto("DAY", "UTC", 1, 1);
        for bad in ["2026112", "20261131", "2026-11-21", "x0261121", "202611210"] {
            assert_eq!(day.parse(bad), None, "{bad}");
        }
        assert_eq!(auto("MONTH", "UTC", 1, 1).parse("202613"), None);
        assert_eq!(auto("QUARTER", "UTC", 1, 1).parse("20265"), None);
    }

    #[test]
    fn given_a_check_should_precreate_upcoming_and_drop_expired_partitions() {
        let a = auto("DAY", "UTC", 3, 2);
        let existing: Vec<(String, String)> =
            ["20261117", "20261118", "20261119", "20261120", "20261121", "adhoc"].iter().map(|v| (v.to_string(), v.to_string())).collect();
        let (create, drop) = a.plan(NOW, true, &existing);
        assert_eq!(create, ["20261121", "20261122", "20261123"]);
        assert_eq!(drop, ["20261117", "20261118"], "two past days kept; names in another format are never dropped");
        let (create, _) = a.plan(NOW, false, &existing);
        assert!(create.is_empty(), "with several partition keys only retention applies");
        let month = auto("MONTH", "UTC", 2, 0);
        let (create, drop) = month.plan(NOW, true, &[("202610".into(), "202610".into()), ("202611".into(), "202611".into())]);
        assert_eq!(create, ["202611", "202612"]);
        assert_eq!(drop, ["202610"]);
        let year_end = auto("MONTH", "UTC", 3, 1);
        let dec = year_end.parse("202612").unwrap();
        assert_eq!(year_end.format(dec + 1), "202701", "periods roll over year ends");
    }

    #[test]
    fn given_bad_auto_partition_options_should_name_them() {
        let keys = ["ds".to_string(), "region".to_string()];
        for (pairs, culprit) in [
            (vec![(ENABLED, "true")], "several partition keys"),
            (vec![(ENABLED, "true"), (KEY, "nope")], "nope"),
            (vec![(NUM_RETENTION, "3")], "needs"),
            (vec![(ENABLED, "true"), (KEY, "ds"), (TIME_ZONE, "Mars/Olympus")], "Mars/Olympus"),
        ] {
            let mut o: BTreeMap<String, String> = pairs.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            for (k, v) in &o {
                if validate_value(k, v).is_err() {
                    assert!(validate_value(k, v).unwrap_err().to_string().contains(culprit));
                }
            }
            let err = fill(&mut o, &keys).map(|_| ()).and_then(|_| o.iter().try_for_each(|(k, v)| validate_value(k, v)));
            assert!(err.is_err_and(|e| e.to_string().contains(culprit)), "{culprit}");
        }
        assert!(fill(&mut [(ENABLED.to_string(), "true".to_string())].into(), &[]).is_err(), "needs partition keys");
    }
}
