//! Recovery of a primary-key table's KV state: replay each bucket's changelog from the offset
//! RocksDB recorded as applied, as plain puts and deletes — never merging again, so sums and
//! bitmap unions are not counted twice.
//!
//! `+I` and `+U` put the row, `-D` deletes the key, `-U` is skipped (its `+U` follows). The rows
//! and the applied offset go to RocksDB in one write batch per log read, so a crash during
//! replay just replays again from wherever it got to.

use super::PkTable;
use crate::error::{Error, Result};
use crate::kv::keys::{bucket_prefix, encode_array_key_value, BUCKET_PREFIX_LEN};
use crate::kv::row_bytes::RowWriter;
use crate::kv::store::KvWrite;
use crate::log::BucketLog;
use arrow_array::cast::AsArray;
use arrow_schema::{Schema, SchemaRef};
use std::time::Instant;

/// Bytes read from the log per replay step.
const REPLAY_READ_BYTES: usize = 8 * 1024 * 1024;

/// What replay did to one bucket.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReplayReport {
    pub to: u64,
    pub records: u64,
}

/// Brings the bucket's KV state up to the end of its log.
pub fn replay(pk: &PkTable, log: &BucketLog) -> Result<ReplayReport> {
    let bucket = log.bucket;
    let end = log.high_watermark();
    let start = log.log_start_offset();
    let applied = pk.kv.applied_offset(pk.table_id, bucket)?.unwrap_or(0);
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
    let fields = pk.row_schema.fields();
    // The stored schema of a schema id: an entry written before columns were added has
    // fewer; it is replayed as written (same schema id, same columns), and reads give the
    // added columns null.
    let schema_of = |schema_id: u32| -> Result<SchemaRef> {
        let width = pk.columns_of(schema_id)?;
        Ok(match width == fields.len() {
            true => pk.changelog_schema.clone(),
            false => super::changelog_schema(&Schema::new(fields.iter().take(width).cloned().collect::<Vec<_>>())),
        })
    };
    let prefix = bucket_prefix(pk.table_id, bucket);
    let mut pos = applied;
    while pos < end {
        let (entries, next) = log.read_decoded(pos, end, REPLAY_READ_BYTES, &schema_of)?;
        let mut writes: Vec<KvWrite> = Vec::new();
        for entry in entries {
            let batch = &entry.batch;
            let width = batch.num_columns() - 1;
            let types = batch.column(width).as_string::<i32>();
            let skip = pos.saturating_sub(entry.base_offset) as usize;
            // Keys and rows are encoded straight from the Arrow columns (the bytes of
            // `encode_key`/`encode_row` for the same values), not through `Value`s.
            for r in skip..batch.num_rows() {
                let mut key = Vec::with_capacity(BUCKET_PREFIX_LEN + 16 * pk.spec.key.len());
                key.extend_from_slice(&prefix);
                for &k in &pk.spec.key {
                    encode_array_key_value(batch.column(k).as_ref(), r, &mut key)?;
                }
                match types.value(r) {
                    "+I" | "+U" => {
                        let mut row = Vec::with_capacity(64);
                        let mut w = RowWriter::begin(&mut row, entry.schema_id, width);
                        for column in &batch.columns()[..width] {
                            w.array(column.as_ref(), r)?;
                        }
                        w.finish()?;
                        writes.push((key, Some(row)));
                    }
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
        pk.kv.apply(pk.table_id, bucket, &writes, next)?;
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
