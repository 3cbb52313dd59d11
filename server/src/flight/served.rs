//! What DoGet scans sent, per table: the `table_stats` action. Counted at the front door, as
//! each message is handed to gRPC, because "bytes sent" is what an operator checks when
//! asking whether a job's column pruning reached the node (the canary scenario reads 30 of
//! 45 columns and proves it with these counters).

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use strom_flight_api::TableStats;

/// Counters of one table (every partition together).
#[derive(Default)]
pub struct TableCounters {
    log_scans: AtomicU64,
    snapshot_scans: AtomicU64,
    messages: AtomicU64,
    rows: AtomicU64,
    bytes: AtomicU64,
}

impl TableCounters {
    pub fn log_scan_started(&self) {
        self.log_scans.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot_scan_started(&self) {
        self.snapshot_scans.fetch_add(1, Ordering::Relaxed);
    }

    /// One record-batch message of `rows` rows is on its way to the client.
    /// One message of `rows` rows went out; `bytes`: its header, body and app metadata.
    pub fn sent(&self, rows: u64, bytes: usize) {
        self.messages.fetch_add(1, Ordering::Relaxed);
        self.rows.fetch_add(rows, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// Every table's counters, by (database, table). Tables nobody scanned have none (they read
/// as zeros); dropping or re-creating a table resets its counters.
#[derive(Default)]
pub struct ServedStats(Mutex<HashMap<(String, String), Arc<TableCounters>>>);

impl ServedStats {
    /// The counters of a table, created on first use. Taken once per scan, not per message.
    pub fn table(&self, database: &str, table: &str) -> Arc<TableCounters> {
        self.0.lock().entry((database.to_string(), table.to_string())).or_default().clone()
    }

    pub fn snapshot(&self, database: &str, table: &str) -> TableStats {
        let counters = self.0.lock().get(&(database.to_string(), table.to_string())).cloned().unwrap_or_default();
        TableStats {
            database: database.to_string(),
            table: table.to_string(),
            log_scans: counters.log_scans.load(Ordering::Relaxed),
            snapshot_scans: counters.snapshot_scans.load(Ordering::Relaxed),
            messages_sent: counters.messages.load(Ordering::Relaxed),
            rows_sent: counters.rows.load(Ordering::Relaxed),
            bytes_sent: counters.bytes.load(Ordering::Relaxed),
        }
    }

    pub fn forget_table(&self, database: &str, table: &str) {
        self.0.lock().remove(&(database.to_string(), table.to_string()));
    }

    pub fn forget_database(&self, database: &str) {
        self.0.lock().retain(|(db, _), _| db != database);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_messages_sent_when_snapshot_should_sum_header_body_and_metadata() {
        let stats = ServedStats::default();
        let counters = stats.table("db", "t");
        counters.log_scan_started();
        counters.sent(7, 115);
        counters.sent(3, 115);
        let got = stats.snapshot("db", "t");
        assert_eq!((got.log_scans, got.messages_sent, got.rows_sent, got.bytes_sent), (1, 2, 10, 230));
        stats.forget_database("db");
        assert_eq!(stats.snapshot("db", "t").bytes_sent, 0);
    }
}
