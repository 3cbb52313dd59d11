//! Log scans: one reader task per bucket feeds a bounded channel, so a slow client slows the
//! readers instead of buffering the table in memory. Reading — verbatim, pruned to columns,
//! CRC checks, batches cut by the range or the row limit — is the log's job
//! (`BucketLog::read`), run on the blocking pool; this module resolves the request, follows the
//! high watermark, shares the row limit between buckets and merges partitions.

use super::api::{IpcMessage, ScanChunk, ScanStream};
use super::partitions::PartitionedTable;
use super::registry::TableHandle;
use super::table::{stored_schema, TableRuntime};
use crate::catalog::TableMeta;
use crate::error::{Error, Result};
use crate::log::{BucketLog, ReadProjection};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parking_lot::Mutex;
use std::sync::Arc;
use strom_flight_api::{EndPosition, LogScan, StartPosition, CHANGE_TYPE_COLUMN};
use tokio::sync::{mpsc, watch};

/// Messages a scan may have in flight towards the client.
const CHANNEL_DEPTH: usize = 4;

/// A log scan resolved against the table, reused for partitions created while it follows.
#[derive(Clone)]
struct ScanSpec {
    requested_buckets: Option<Vec<u32>>,
    from: StartPosition,
    to: Option<EndPosition>,
    follow: bool,
    /// Positions of the kept stored columns, in output order; None = all.
    columns: Option<Vec<usize>>,
    metadata_columns: bool,
    sizes: ScanSizes,
    limit: Option<Arc<Limit>>,
    /// `keys_upto`: only change records of keys at or before this one.
    key_bound: Option<Arc<KeyBound>>,
}

/// `keys_upto` resolved: the bound as the node orders keys, and where the key columns are in
/// what the log holds.
struct KeyBound {
    /// The key's column encodings in storage order (no bucket prefix).
    upto: Vec<u8>,
    /// Positions of the key columns (storage order) in the stored changelog schema.
    key_columns: Vec<usize>,
}

impl KeyBound {
    fn resolve(meta: &TableMeta, stored: &SchemaRef, req: &LogScan, values: &[serde_json::Value]) -> Result<Self> {
        let path = meta.path();
        let Some(shape) = crate::engine::pk::read::PkShape::of(meta)? else {
            return Err(Error::invalid(format!("\"keys_upto\" applies to primary-key tables; {path} is a log table")));
        };
        let one_bucket = req.buckets.as_ref().is_some_and(|b| b.len() == 1);
        if !one_bucket || (!meta.partition_keys.is_empty() && req.partition.is_none()) {
            return Err(Error::invalid(format!(
                "\"keys_upto\" reads the changelog of one bucket: name exactly one bucket{} of {path}",
                if meta.partition_keys.is_empty() { "" } else { " and the partition" }
            )));
        }
        if req.to.is_none() || req.follow || req.limit.is_some() || req.metadata_columns {
            return Err(Error::invalid(
                "\"keys_upto\" needs a bounded scan (\"to\") without \"follow\", \"limit\" or \"metadata_columns\"",
            ));
        }
        let upto = crate::engine::pk::read::encode_key_suffix(&shape, &path, "\"keys_upto\"", values)?;
        let key_columns = shape
            .spec
            .key
            .iter()
            .map(|&c| stored.index_of(shape.row_schema.field(c).name()).expect("key columns are in the changelog"))
            .collect();
        Ok(Self { upto, key_columns })
    }

    /// The rows of `batch` (read with every stored column) whose key is at or before the bound,
    /// with the `columns` asked for (None: all).
    fn filter(&self, batch: &RecordBatch, columns: &Option<Vec<usize>>) -> Result<RecordBatch> {
        let mut keep = Vec::with_capacity(batch.num_rows());
        let mut key = Vec::new();
        for row in 0..batch.num_rows() {
            key.clear();
            for &c in &self.key_columns {
                crate::kv::keys::encode_array_key_value(batch.column(c).as_ref(), row, &mut key)?;
            }
            keep.push(key.as_slice() <= self.upto.as_slice());
        }
        let kept = arrow_select::filter::filter_record_batch(batch, &arrow_array::BooleanArray::from(keep))?;
        Ok(match columns {
            Some(c) => kept.project(c)?,
            None => kept,
        })
    }
}

/// Rows still allowed by `limit`, shared by every bucket reader of one scan (of every
/// partition). Readers waiting for new data end when another reader used the last row.
struct Limit {
    left: Mutex<u64>,
    exhausted: watch::Sender<bool>,
}

impl Limit {
    fn new(rows: u64) -> Arc<Self> {
        Arc::new(Self { left: Mutex::new(rows), exhausted: watch::channel(rows == 0).0 })
    }

    fn take(&self, want: u64) -> u64 {
        let mut left = self.left.lock();
        let n = want.min(*left);
        *left -= n;
        if *left == 0 {
            self.exhausted.send_replace(true);
        }
        n
    }
}

/// The smallest message size a scan may ask for (`message_bytes`), as `log.scan_message_bytes`.
pub(crate) const MIN_MESSAGE_BYTES: u64 = 64 * 1024;

/// How much a scan's bucket reader reads per step and how large the messages it sends are
/// (`log.scan_read_bytes`; the ticket's `message_bytes`, else `log.scan_message_bytes`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScanSizes {
    pub read_bytes: usize,
    pub message_bytes: usize,
}

/// Starts a log scan of `handle` (a table, one partition, or every partition: those that exist
/// now and, when following, those created later, read from their start).
pub(crate) fn start(handle: TableHandle, req: &LogScan, sizes: ScanSizes) -> Result<ScanStream> {
    if req.filter.is_some() {
        return Err(Error::Unimplemented(
            "\"filter\" on log scans is not served by this node version; project columns and filter on the client".into(),
        ));
    }
    let sizes = match req.message_bytes {
        Some(n) if n != 0 && n < MIN_MESSAGE_BYTES => {
            return Err(Error::invalid(format!(
                "\"message_bytes\" must be 0 (stored batches whole) or at least {MIN_MESSAGE_BYTES}, got {n}"
            )))
        }
        Some(n) => ScanSizes { message_bytes: usize::try_from(n).unwrap_or(usize::MAX), ..sizes },
        None => sizes,
    };
    let meta = handle.meta();
    let stored = stored_schema(&meta)?;
    let spec = ScanSpec {
        requested_buckets: req.buckets.clone(),
        from: req.from,
        to: req.to,
        follow: req.follow,
        columns: scan_columns(&stored, &meta, &req.columns)?,
        metadata_columns: req.metadata_columns,
        sizes,
        limit: req.limit.map(Limit::new),
        key_bound: match &req.keys_upto {
            Some(values) => Some(Arc::new(KeyBound::resolve(&meta, &stored, req, values)?)),
            None => None,
        },
    };
    match handle {
        TableHandle::Plain(table) => {
            if req.partition.is_some() {
                return Err(Error::invalid(format!("table {} is not partitioned", meta.path())));
            }
            start_table(table, &spec)
        }
        TableHandle::Partitioned(pt) => match &req.partition {
            Some(_) => {
                let (_, table) = pt.resolve(&req.partition)?.pop().expect("one partition");
                start_table(table, &spec)
            }
            None => start_partitions(pt, &stored, spec),
        },
    }
}

/// Positions of the requested columns in what the logs hold (a changelog keeps its change
/// type: it cannot be read correctly without it).
fn scan_columns(schema: &SchemaRef, meta: &TableMeta, columns: &Option<Vec<String>>) -> Result<Option<Vec<usize>>> {
    let Some(names) = columns else { return Ok(None) };
    if names.is_empty() {
        return Err(Error::invalid("\"columns\" must name at least one column"));
    }
    let mut idx = Vec::with_capacity(names.len());
    for n in names {
        let i = schema.index_of(n).map_err(|_| Error::invalid(format!("table {} has no column {n:?}", meta.path())))?;
        if idx.contains(&i) {
            return Err(Error::invalid(format!("column {n:?} is requested twice")));
        }
        idx.push(i);
    }
    if !meta.primary_key.is_empty() {
        let ct = schema.index_of(CHANGE_TYPE_COLUMN).expect("changelog schema");
        if !idx.contains(&ct) {
            idx.push(ct);
        }
    }
    Ok(Some(idx))
}

/// Starts one reader task per requested bucket of one table (or partition).
fn start_table(table: Arc<TableRuntime>, spec: &ScanSpec) -> Result<ScanStream> {
    let (meta, stored, _) = table.shape();
    let changelog = !meta.primary_key.is_empty();
    let projection = Arc::new(
        ReadProjection::new(stored.clone(), meta.schema_id, &meta.schema_columns, changelog, spec.columns.clone(), spec.metadata_columns)
            .with_message_bytes(spec.sizes.message_bytes),
    );
    let schema = projection.output_schema().clone();
    // A key-bounded scan reads every column (the key decides), then keeps the asked ones; its
    // messages are whole stored batches (each reports the offset after it: `end_offset`).
    let projection = match &spec.key_bound {
        Some(_) => Arc::new(ReadProjection::new(stored, meta.schema_id, &meta.schema_columns, changelog, None, false)),
        None => projection,
    };
    // Resolve every bucket's range before streaming so bad requests fail the call itself.
    let mut ranges = Vec::new();
    for b in table.requested_buckets(&spec.requested_buckets)? {
        let log = table.bucket(b)?.clone();
        let (start, end) = resolve_range(&log, spec)?;
        ranges.push((log, start, end));
    }
    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    for (log, start, end) in ranges {
        let reader = BucketReader {
            log,
            projection: projection.clone(),
            partition: meta.partition.clone(),
            end,
            follow: spec.follow,
            read_bytes: spec.sizes.read_bytes,
            limit: spec.limit.clone(),
            key_bound: spec.key_bound.clone().map(|bound| (bound, spec.columns.clone())),
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            if let Err(e) = reader.run(start, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
    }
    Ok(ScanStream { schema, chunks: rx })
}

fn resolve_range(log: &BucketLog, spec: &ScanSpec) -> Result<(u64, Option<u64>)> {
    let hw = log.high_watermark();
    let earliest = log.log_start_offset();
    let start = match spec.from {
        StartPosition::Earliest => earliest,
        StartPosition::Latest => hw,
        StartPosition::Offset { offset } => {
            if offset < earliest {
                return Err(Error::FailedPrecondition(format!("{}: offset {offset} is before the log start offset {earliest} (older data was deleted by retention); start from \"earliest\"", log.location())));
            }
            if offset > hw {
                return Err(Error::invalid(format!("{}: offset {offset} is beyond the high watermark {hw}", log.location())));
            }
            offset
        }
        StartPosition::Timestamp { timestamp } => log.offset_for_timestamp(timestamp).max(earliest),
    };
    let end = match (spec.to, spec.follow) {
        (Some(EndPosition::Offset { offset }), _) => Some(offset),
        (Some(EndPosition::Latest), _) | (None, false) => Some(hw),
        (None, true) => None,
    };
    Ok((start, end))
}

/// Reads one bucket from a start offset to its end (or forever, following).
struct BucketReader {
    log: Arc<BucketLog>,
    projection: Arc<ReadProjection>,
    partition: Option<String>,
    end: Option<u64>,
    follow: bool,
    read_bytes: usize,
    limit: Option<Arc<Limit>>,
    /// `keys_upto` and the columns to keep after filtering (the reader reads them all).
    key_bound: Option<(Arc<KeyBound>, Option<Vec<usize>>)>,
}

impl BucketReader {
    async fn run(self, mut pos: u64, tx: &mpsc::Sender<Result<ScanChunk>>) -> Result<()> {
        let mut hw_changes = self.log.subscribe();
        let mut exhausted = self.limit.as_ref().map(|l| l.exhausted.subscribe());
        loop {
            if exhausted.as_ref().is_some_and(|e| *e.borrow()) {
                return Ok(());
            }
            let hw = *hw_changes.borrow_and_update();
            let until = self.end.map_or(hw, |e| e.min(hw));
            if pos >= until {
                if self.end.is_some_and(|e| pos >= e) || !self.follow {
                    return Ok(());
                }
                self.log.check_readers_open()?;
                tokio::select! {
                    changed = hw_changes.changed() => if changed.is_err() { return Ok(()) },
                    _ = async { match exhausted.as_mut() { Some(e) => { let _ = e.changed().await; } None => std::future::pending().await } } => {}
                    _ = tx.closed() => return Ok(()),
                }
                continue;
            }
            let (log, projection, limit, read_bytes) = (self.log.clone(), self.projection.clone(), self.limit.clone(), self.read_bytes);
            let outcome = tokio::task::spawn_blocking(move || {
                let mut budget = |rows: u64| limit.as_ref().map_or(rows, |l| l.take(rows));
                log.read(pos, until, read_bytes, &projection, &mut budget)
            })
            .await
            .map_err(|e| Error::Internal(format!("read task failed: {e}")))??;
            for batch in outcome.batches {
                let mut chunk = ScanChunk {
                    bucket: self.log.bucket,
                    partition: self.partition.clone(),
                    base_offset: batch.base_offset,
                    high_watermark: hw,
                    rows: batch.rows,
                    message: IpcMessage { header: batch.meta, body: batch.body },
                    end_offset: None,
                };
                if let Some((bound, columns)) = &self.key_bound {
                    let all = chunk.message.decode(self.projection.output_schema())?;
                    let kept = bound.filter(&all, columns)?;
                    if kept.num_rows() == 0 {
                        continue; // nothing of this batch; a resumed read finds nothing again
                    }
                    chunk.end_offset = Some(chunk.base_offset + chunk.rows);
                    chunk.rows = kept.num_rows() as u64;
                    chunk.message = IpcMessage::encode(&kept)?;
                }
                if tx.send(Ok(chunk)).await.is_err() {
                    return Ok(()); // the client went away
                }
            }
            if outcome.exhausted {
                return Ok(());
            }
            pos = outcome.next;
        }
    }
}

/// One scan over every partition of a partitioned table: each partition's stream is forwarded
/// into one; a follow scan also starts partitions created while it runs, from their start, as
/// soon as they exist. The row limit is shared by all of them.
fn start_partitions(pt: Arc<PartitionedTable>, stored: &SchemaRef, spec: ScanSpec) -> Result<ScanStream> {
    let mut first = Vec::new();
    for (name, table) in pt.all() {
        first.push((name, start_table(table, &spec)?));
    }
    let schema = match first.first() {
        Some((_, s)) => s.schema.clone(),
        None => ReadProjection::output_schema_of(
            stored,
            &spec.columns.clone().unwrap_or_else(|| (0..stored.fields().len()).collect()),
            spec.metadata_columns,
        ),
    };
    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    let mut watch_partitions = spec.follow.then(|| pt.watch());
    let new_partitions = ScanSpec { from: StartPosition::Earliest, ..spec };
    tokio::spawn(async move {
        let mut known: Vec<String> = first.iter().map(|(n, _)| n.clone()).collect();
        let mut streams = futures::stream::SelectAll::new();
        for (_, s) in first {
            streams.push(tokio_stream::wrappers::ReceiverStream::new(s.chunks));
        }
        let mut exhausted = new_partitions.limit.as_ref().map(|l| l.exhausted.subscribe());
        loop {
            let limit_reached = exhausted.as_ref().is_some_and(|e| *e.borrow());
            if streams.is_empty() && (limit_reached || watch_partitions.is_none()) {
                return;
            }
            let next = tokio::select! {
                next = futures::StreamExt::next(&mut streams), if !streams.is_empty() => next,
                changed = async {
                    match watch_partitions.as_mut() {
                        Some(w) => w.changed().await.is_ok(),
                        None => std::future::pending().await,
                    }
                }, if !limit_reached => {
                    if !changed {
                        watch_partitions = None;
                        continue;
                    }
                    for (name, table) in pt.all() {
                        if known.contains(&name) {
                            continue;
                        }
                        match start_table(table, &new_partitions) {
                            Ok(s) => {
                                known.push(name);
                                streams.push(tokio_stream::wrappers::ReceiverStream::new(s.chunks));
                            }
                            Err(e) => {
                                let _ = tx.send(Err(e)).await;
                                return;
                            }
                        }
                    }
                    continue;
                }
                _ = async { match exhausted.as_mut() { Some(e) => { let _ = e.changed().await; } None => std::future::pending().await } }, if !limit_reached => continue,
                _ = tx.closed() => return,
            };
            let Some(item) = next else {
                if watch_partitions.is_none() || limit_reached {
                    return;
                }
                continue;
            };
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                return;
            }
        }
    });
    Ok(ScanStream { schema, chunks: rx })
}
