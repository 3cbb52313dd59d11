//! What `health` reports beyond uptime: the background tasks whose latest run failed.

use crate::error::Error;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use strom_flight_api::BackgroundFailure;

pub(crate) const FLUSH: &str = "flush";
pub(crate) const RETENTION: &str = "retention";
pub(crate) const AUTO_PARTITION: &str = "auto_partition";
pub(crate) const KV_FLUSH: &str = "kv_flush";
pub(crate) const DROP_DATA: &str = "drop_data";

/// The latest failure of every (task, table) whose latest run failed.
#[derive(Default)]
pub(crate) struct BackgroundFailures(Mutex<BTreeMap<(String, Option<String>), BackgroundFailure>>);

impl BackgroundFailures {
    pub fn record(&self, task: &str, table: Option<&str>, error: &Error, now_ms: i64) {
        tracing::error!(task, table = table.unwrap_or("-"), error = %error, "background task failed");
        let mut failures = self.0.lock();
        let entry = failures.entry((task.to_string(), table.map(str::to_string))).or_insert_with(|| BackgroundFailure {
            task: task.to_string(),
            table: table.map(str::to_string),
            error: String::new(),
            at_ms: now_ms,
            count: 0,
        });
        entry.error = error.to_string();
        entry.at_ms = now_ms;
        entry.count += 1;
    }

    /// The task ran for `table` without failing.
    pub fn clear(&self, task: &str, table: Option<&str>) {
        self.0.lock().remove(&(task.to_string(), table.map(str::to_string)));
    }

    /// Clears every failure of `task` except those of `failed` tables (a task that ran over
    /// all tables).
    pub fn clear_others(&self, task: &str, failed: &[String]) {
        self.0.lock().retain(|(t, table), _| t != task || table.as_ref().is_some_and(|n| failed.contains(n)));
    }

    pub fn list(&self) -> Vec<BackgroundFailure> {
        self.0.lock().values().cloned().collect()
    }
}
