//! The node's wall clock, injected as a value so tests can move time by days without waiting
//! (auto-partitioning, TTL retention, segment roll by age, batch timestamps).

use std::sync::Arc;

/// Milliseconds since the Unix epoch.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(system_now_ms)
}

/// The system time in milliseconds since the Unix epoch (0 if the clock is before 1970).
pub fn system_now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
