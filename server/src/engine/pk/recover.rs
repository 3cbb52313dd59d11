//! Recovery of a primary-key table's KV state: replay each bucket's changelog from the offset
//! RocksDB recorded as applied, as plain puts and deletes — never merging again, so sums and
//! bitmap unions are not counted twice.
//!
//! `+I` and `+U` put the row, `-D` deletes the key, `-U` is skipped (its `+U` follows). The rows
//! and the applied offset go to RocksDB in one write batch per log read, so a crash during
//! replay just replays again from wherever it got to.

use super::PkTable;
use crate::error::{Error, Result};
use crate::kv::store::KvWrite;
use crate::kv::value::{encode_row, value_at, Value};
use crate::log::BucketLog;
use arrow_array::cast::AsArray;
use arrow_schema::{Fields, Schema, SchemaRef};
use std::time::Instant;

/// Bytes read from the log per replay step.
const REPLAY_READ_BYTES: usize = 8 * 1024 * 1024;

/// What replay did to one bucket.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReplayReport {
    pub to: u64,
    pub records: u64,
}

impl PkTable {
    /// Brings the bucket's KV state up to the end of its log.
    pub fn replay(&self, log: &BucketLog) -> Result<ReplayReport> {
        let bucket = log.bucket;
        let end = log.high_watermark();
        let start = log.log_start_offset();
        let applied = self.kv.applied_offset(self.table_id, bucket)?.unwrap_or(0);
        if applied < start {
            return Err(Error::DataLoss {
                location: log.location().to_string(),
                detail: format!(
                    "the KV store is applied up to offset {applied} but the changelog starts at {start}: the changes in between are gone"
                ),
            });
        }
        let mut report = ReplayReport { to: applied, records: 0 };
        if applied >= end {
            return Ok(report);
        }
        let started = Instant::now();
        let mut last_log = Instant::now();
        let fields = self.row_schema.fields();
        // The stored schema of a schema id: an entry written before columns were added has
        // fewer; it is replayed as written (same schema id, same columns), and reads give the
        // added columns null.
        let schema_of = |schema_id: u32| -> Result<SchemaRef> {
            let width = self.columns_of(schema_id)?;
            Ok(match width == fields.len() {
                true => self.changelog_schema.clone(),
                false => super::changelog_schema(&Schema::new(fields.iter().take(width).cloned().collect::<Vec<_>>())),
            })
        };
        let mut pos = applied;
        while pos < end {
            let (entries, next) = log.read_decoded(pos, end, REPLAY_READ_BYTES, &schema_of)?;
            let mut writes: Vec<KvWrite> = Vec::new();
            for entry in entries {
                let batch = &entry.batch;
                let width = batch.num_columns() - 1;
                let stored_fields: Fields = fields.iter().take(width).cloned().collect();
                let types = batch.column(width).as_string::<i32>();
                let skip = pos.saturating_sub(entry.base_offset) as usize;
                for r in skip..batch.num_rows() {
                    let row: Vec<Value> = (0..width).map(|c| value_at(batch.column(c).as_ref(), r)).collect::<Result<_>>()?;
                    let key = self.key_of(bucket, &row)?;
                    match types.value(r) {
                        "+I" | "+U" => writes.push((key, Some(encode_row(entry.schema_id, &row, &stored_fields)?))),
                        "-D" => writes.push((key, None)),
                        "-U" => {}
                        other => {
                            return Err(Error::DataLoss {
                                location: format!("{} offset {}", log.location(), entry.base_offset + r as u64),
                                detail: format!("unknown change type {other:?}"),
                            })
                        }
                    }
                    report.records += 1;
                }
            }
            self.kv.apply(self.table_id, bucket, &writes, next)?;
            pos = next;
            report.to = pos;
            if last_log.elapsed().as_secs() >= 2 {
                tracing::info!(bucket = %log.location(), progress = format!("{}/{}", pos - applied, end - applied), "replaying changelog into the KV store");
                last_log = Instant::now();
            }
        }
        tracing::info!(bucket = %log.location(), from = applied, to = end, records = report.records,
            elapsed_ms = started.elapsed().as_millis() as u64, "KV state recovered from the changelog");
        Ok(report)
    }
}
