//! Latency histograms, result rows, the printed table and the JSON summary.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::time::Duration;

/// A latency histogram in microseconds (1 µs .. 1 h, 3 significant digits).
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

pub fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record((d.as_micros() as u64).max(1));
}

/// One measured (scenario, target) pair.
#[derive(Debug, Clone, Serialize)]
pub struct ResultRow {
    pub scenario: String,
    pub target: String,
    /// What the latency figures measure.
    pub latency: String,
    pub rows: u64,
    /// Arrow IPC bytes (message header + body) on the wire.
    pub ipc_bytes: u64,
    pub seconds: f64,
    pub rows_per_s: f64,
    /// 10^6 bytes per second.
    pub mb_per_s: f64,
    pub samples: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    /// Scenario-specific figures (byte share, speedup, parameters).
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl ResultRow {
    pub fn new(
        scenario: impl Into<String>,
        target: impl Into<String>,
        latency: &str,
        rows: u64,
        ipc_bytes: u64,
        elapsed: Duration,
        h: &Histogram<u64>,
    ) -> Self {
        let secs = elapsed.as_secs_f64().max(1e-9);
        Self {
            scenario: scenario.into(),
            target: target.into(),
            latency: latency.into(),
            rows,
            ipc_bytes,
            seconds: secs,
            rows_per_s: rows as f64 / secs,
            mb_per_s: ipc_bytes as f64 / secs / 1e6,
            samples: h.len(),
            p50_us: h.value_at_quantile(0.50),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            extra: Default::default(),
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }
}

pub fn fmt_us(us: u64) -> String {
    if us >= 10_000_000 {
        format!("{:.1}s", us as f64 / 1e6)
    } else if us >= 10_000 {
        format!("{:.1}ms", us as f64 / 1e3)
    } else if us >= 1_000 {
        format!("{:.2}ms", us as f64 / 1e3)
    } else {
        format!("{us}µs")
    }
}

pub fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1}K", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

pub fn header() -> String {
    format!("{:<34} {:<9} {:>9} {:>9} {:>9} {:>9} {:>9}  {}", "scenario", "target", "rows/s", "MB/s", "p50", "p99", "p999", "latency of")
}

pub fn line(r: &ResultRow) -> String {
    format!(
        "{:<34} {:<9} {:>9} {:>9.1} {:>9} {:>9} {:>9}  {}",
        r.scenario,
        r.target,
        fmt_rate(r.rows_per_s),
        r.mb_per_s,
        fmt_us(r.p50_us),
        fmt_us(r.p99_us),
        fmt_us(r.p999_us),
        r.latency
    )
}

/// A target of the brief, checked against the measured rows.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub target: String,
    pub measured: String,
    pub met: bool,
}
