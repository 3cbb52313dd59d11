//! A scan Java can poll with a timeout and wake up from another thread, the shape a Flink
//! `SplitReader` needs (`fetch()` must return when `wakeUp()` is called).
//!
//! A task on the client's runtime reads the scan's stream into a bounded channel (so a slow
//! Java consumer holds the node back through gRPC flow control instead of buffering without
//! bound); `poll` waits on that channel, a wake-up signal and a timer, whichever comes first.

use std::future::Future;
use std::time::Duration;

use arrow::array::RecordBatch;
use futures::{FutureExt, Stream, StreamExt};
use strom_flight_api::{blocking, Error as ClientError, Result as ClientResult};
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::{mpsc, Mutex, Notify};
use tokio::task::JoinHandle;

use crate::errors::{BridgeError, BridgeResult};

/// One batch of a scan and where it came from.
#[derive(Debug)]
pub struct PolledBatch {
    pub batch: RecordBatch,
    pub origin: BatchOrigin,
}

/// Where a polled batch came from: the fields of Java's `ScanBatch`, -1 where one does not
/// apply (offsets of a snapshot batch, the changelog offset of a log batch). It crosses as a
/// `long[]` plus the partition string, not as JSON: building, sending and parsing a JSON
/// text per batch took a tenth of the Java poller's time in a scan profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOrigin {
    pub bucket: u32,
    pub partition: Option<String>,
    pub base_offset: i64,
    pub high_watermark: i64,
    pub log_offset: i64,
    pub end_offset: i64,
}

impl BatchOrigin {
    /// Length of [`BatchOrigin::longs`] (Java's `StromScanner.ORIGIN_LONGS`).
    pub const LONGS: usize = 5;

    /// `[bucket, base_offset, high_watermark, log_offset, end_offset]`.
    pub fn longs(&self) -> [i64; Self::LONGS] {
        [self.bucket as i64, self.base_offset, self.high_watermark, self.log_offset, self.end_offset]
    }
}

/// What one `poll` found.
#[derive(Debug)]
pub enum Polled {
    Batch(PolledBatch),
    /// Nothing within the timeout, or `wakeup` was called.
    Nothing,
    /// The (bounded) scan is complete.
    End,
}

/// What the reading task sends: a batch, the end marker (`Ok(None)`), or the failure that
/// ended the scan. A channel closed without the end marker means the task died.
type Item = ClientResult<Option<PolledBatch>>;

pub struct PollingScanner {
    /// Only one thread polls at a time; the async mutex lets it wait inside the runtime.
    receiver: Mutex<mpsc::Receiver<Item>>,
    wakeup: Notify,
    pump: JoinHandle<()>,
    runtime: Handle,
    /// Keeps the facade's runtime (and connection) alive while the scan runs.
    _client: Option<blocking::StromClient>,
    /// The schema last exported to Java with a batch. Java keeps the schema it imported and
    /// builds every later batch's vectors from it, so a batch of the same schema crosses
    /// without one: importing 43 fields cost Java more than importing the batch's buffers.
    exported_schema: std::sync::Mutex<Option<arrow::datatypes::SchemaRef>>,
}

impl PollingScanner {
    /// Starts reading `stream` on `runtime`; `client` (the facade that owns the runtime) is
    /// kept alive as long as the scanner.
    pub fn start<S, T>(
        runtime: Handle,
        client: Option<blocking::StromClient>,
        stream: S,
        buffer: usize,
        to_polled: fn(T) -> ClientResult<PolledBatch>,
    ) -> Self
    where
        S: Stream<Item = ClientResult<T>> + Send + Unpin + 'static,
        T: Send + 'static,
    {
        let (sender, receiver) = mpsc::channel::<Item>(buffer.max(1));
        let pump = runtime.spawn(async move {
            let mut stream = stream;
            let reading = async {
                while let Some(item) = stream.next().await {
                    let item = item.and_then(to_polled);
                    let failed = item.is_err();
                    // A closed channel: the scanner was closed; stop reading.
                    if sender.send(item.map(Some)).await.is_err() || failed {
                        return;
                    }
                }
                let _ = sender.send(Ok(None)).await;
            };
            if std::panic::AssertUnwindSafe(reading).catch_unwind().await.is_err() {
                let _ = sender.send(Err(ClientError::TaskFailed("the scan's reading task panicked".into()))).await;
            }
        });
        PollingScanner {
            receiver: Mutex::new(receiver),
            wakeup: Notify::new(),
            pump,
            runtime,
            _client: client,
            exported_schema: std::sync::Mutex::new(None),
        }
    }

    /// Waits up to `timeout` for the next batch. Returns `Nothing` early when [`wakeup`] is
    /// called (also when it was called before this poll started, so a wake-up is never
    /// lost between two polls).
    ///
    /// [`wakeup`]: PollingScanner::wakeup
    pub fn poll(&self, timeout: Duration) -> BridgeResult<Polled> {
        let polled = block_on(&self.runtime, async {
            let mut receiver = self.receiver.lock().await;
            tokio::select! {
                // Data first: a wake-up racing with a ready batch should not hide it.
                biased;
                item = receiver.recv() => match item {
                    Some(Ok(Some(batch))) => Ok(Polled::Batch(batch)),
                    Some(Ok(None)) => Ok(Polled::End),
                    Some(Err(e)) => Err(e),
                    None => Err(ClientError::TaskFailed("the scan's reading task stopped before the end of the scan".into())),
                },
                _ = self.wakeup.notified() => Ok(Polled::Nothing),
                _ = tokio::time::sleep(timeout) => Ok(Polled::Nothing),
            }
        })?;
        Ok(polled?)
    }

    /// Whether a batch of `schema` must cross with its schema: Java holds none
    /// (`java_has_schema` false: the first batch, or Java failed to import the last one) or
    /// it differs from the one exported last (a column added while the scan runs). Call
    /// [`exported`](Self::exported) once the schema did cross.
    pub fn needs_schema(&self, schema: &arrow::datatypes::SchemaRef, java_has_schema: bool) -> bool {
        let last = self.exported_schema.lock().unwrap_or_else(|e| e.into_inner());
        !java_has_schema || !last.as_ref().is_some_and(|l| std::sync::Arc::ptr_eq(l, schema) || l == schema)
    }

    /// Records that `schema` was exported to Java with a batch.
    pub fn exported(&self, schema: arrow::datatypes::SchemaRef) {
        *self.exported_schema.lock().unwrap_or_else(|e| e.into_inner()) = Some(schema);
    }

    /// Makes the current (or next) `poll` return `Nothing` at once.
    pub fn wakeup(&self) {
        self.wakeup.notify_one();
    }
}

impl Drop for PollingScanner {
    fn drop(&mut self) {
        // Cancels the gRPC call, which is the only way to stop a `follow` scan.
        self.pump.abort();
    }
}

/// Runs `future` to completion on `runtime`, from the calling thread. JVM threads are plain
/// threads (block on the runtime directly); a client worker (Java code running inside a
/// completion callback) first hands its other tasks off with `block_in_place`, so a blocking
/// poll there cannot starve the very tasks it waits for.
pub fn block_on<F: Future>(runtime: &Handle, future: F) -> BridgeResult<F::Output> {
    match Handle::try_current() {
        Err(_) => Ok(runtime.block_on(future)),
        Ok(current) if current.runtime_flavor() == RuntimeFlavor::MultiThread => {
            Ok(tokio::task::block_in_place(|| runtime.block_on(future)))
        }
        Ok(_) => Err(BridgeError::Argument("a blocking Strom call cannot run on a current-thread tokio runtime".into())),
    }
}

fn offset(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A log scan's batch and its offsets.
pub fn log_batch(batch: strom_flight_api::ScanBatch) -> ClientResult<PolledBatch> {
    let m = batch.metadata;
    let base_offset = offset(m.base_offset);
    let origin = BatchOrigin {
        bucket: m.bucket,
        partition: m.partition,
        base_offset,
        high_watermark: offset(m.high_watermark),
        log_offset: -1,
        // The stored batch ends after this one's rows unless rows were left out of it.
        end_offset: m.end_offset.map_or(base_offset.saturating_add(batch.batch.num_rows() as i64), offset),
    };
    Ok(PolledBatch { origin, batch: batch.batch })
}

/// A snapshot scan's batch and the changelog offset its bucket's snapshot stands at.
pub fn snapshot_batch(batch: strom_flight_api::SnapshotBatch) -> ClientResult<PolledBatch> {
    let m = batch.metadata;
    let origin = BatchOrigin {
        bucket: m.bucket,
        partition: m.partition,
        base_offset: -1,
        high_watermark: -1,
        log_offset: offset(m.log_offset),
        end_offset: -1,
    };
    Ok(PolledBatch { origin, batch: batch.batch })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int32Array;
    use std::sync::Arc;
    use std::time::Instant;

    fn batch(value: i32) -> PolledBatch {
        let batch = RecordBatch::try_from_iter([("v", Arc::new(Int32Array::from(vec![value])) as _)]).unwrap();
        let origin =
            BatchOrigin { bucket: value as u32, partition: None, base_offset: -1, high_watermark: -1, log_offset: -1, end_offset: -1 };
        PolledBatch { batch, origin }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap()
    }

    fn identity(polled: PolledBatch) -> ClientResult<PolledBatch> {
        Ok(polled)
    }

    #[test]
    fn given_exported_schema_when_next_batch_shares_it_should_cross_without_schema() {
        let rt = runtime();
        let scanner = PollingScanner::start(rt.handle().clone(), None, futures::stream::iter(vec![Ok(batch(1))]), 1, identity);
        let first = batch(1).batch.schema();
        assert!(scanner.needs_schema(&first, false), "nothing exported yet");
        scanner.exported(first.clone());
        assert!(!scanner.needs_schema(&first, true), "the same Arc");
        assert!(!scanner.needs_schema(&batch(2).batch.schema(), true), "an equal schema");
        assert!(scanner.needs_schema(&first, false), "Java lost its copy (a failed import)");
        let widened = RecordBatch::try_from_iter([
            ("v", Arc::new(Int32Array::from(vec![1])) as _),
            ("added", Arc::new(Int32Array::from(vec![2])) as _),
        ])
        .unwrap()
        .schema();
        assert!(scanner.needs_schema(&widened, true), "a column was added");
        scanner.exported(widened.clone());
        assert!(!scanner.needs_schema(&widened, true));
        assert!(scanner.needs_schema(&first, true), "back to the narrower schema");
    }

    #[test]
    fn given_bounded_stream_when_polled_should_yield_batches_then_end() {
        let rt = runtime();
        let stream = futures::stream::iter(vec![Ok(batch(1)), Ok(batch(2))]);
        let scanner = PollingScanner::start(rt.handle().clone(), None, stream, 1, identity);
        for expected in [1, 2] {
            match scanner.poll(Duration::from_secs(10)).unwrap() {
                Polled::Batch(b) => assert_eq!(b.origin.bucket, expected),
                other => panic!("expected a batch, got {other:?}"),
            }
        }
        assert!(matches!(scanner.poll(Duration::from_secs(10)).unwrap(), Polled::End));
    }

    #[test]
    fn given_idle_stream_when_polled_should_time_out_and_wake_up_early() {
        let rt = runtime();
        let scanner = Arc::new(PollingScanner::start(
            rt.handle().clone(),
            None,
            futures::stream::pending::<ClientResult<PolledBatch>>(),
            1,
            identity,
        ));
        let started = Instant::now();
        assert!(matches!(scanner.poll(Duration::from_millis(50)).unwrap(), Polled::Nothing));
        assert!(started.elapsed() >= Duration::from_millis(50), "waited for the timeout");

        // A wake-up before the poll is not lost: the next poll returns at once.
        scanner.wakeup();
        let started = Instant::now();
        assert!(matches!(scanner.poll(Duration::from_secs(30)).unwrap(), Polled::Nothing));
        assert!(started.elapsed() < Duration::from_secs(10), "the wake-up cut the 30 s poll short");

        // A wake-up from another thread ends a poll that is already waiting.
        let (polling, waker) = (scanner.clone(), scanner.clone());
        let poller = std::thread::spawn(move || {
            let started = Instant::now();
            let polled = polling.poll(Duration::from_secs(30)).unwrap();
            (polled, started.elapsed())
        });
        // Keep waking until the poller has returned: no sleep-based guess of when it waits.
        while !poller.is_finished() {
            waker.wakeup();
            std::thread::yield_now();
        }
        let (polled, elapsed) = poller.join().unwrap();
        assert!(matches!(polled, Polled::Nothing));
        assert!(elapsed < Duration::from_secs(10));
    }

    #[test]
    fn given_failing_stream_when_polled_should_return_the_error() {
        let rt = runtime();
        let stream = futures::stream::iter(vec![Ok(batch(1)), Err(ClientError::Protocol("bad app_metadata".into()))]);
        let scanner = PollingScanner::start(rt.handle().clone(), None, stream, 4, identity);
        assert!(matches!(scanner.poll(Duration::from_secs(10)).unwrap(), Polled::Batch(_)));
        let err = scanner.poll(Duration::from_secs(10)).unwrap_err();
        assert!(err.to_string().contains("bad app_metadata"), "{err}");
    }
}
