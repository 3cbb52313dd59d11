//! The blocking writer, lookuper and scan iterators. Each wraps its async counterpart, which
//! keeps running on the facade's runtime; the wrappers only wait.
//!
//! Writers and lookupers take `&self` and lock the async handle inside, so one handle can be
//! shared by several threads (`Arc<Writer>`, a Java object used by a task thread and a
//! checkpoint thread); calls on one handle are served one at a time, in call order.

use std::sync::Arc;

use arrow_array::RecordBatch;
use futures::{Stream, StreamExt};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;

use super::pending::{AckHandle, LookupHandle};
use super::runtime::ClientRuntime;
use crate::client::{panic_message, Lookuper as AsyncLookuper, ScanBatch, SnapshotBatch, TableWriter};
use crate::contract::{LookupKind, PutAck, WriteKind};
use crate::error::{Error, Result};

/// Writes batches of one kind (append, upsert, delete) to one table through a pipelined,
/// idempotent stream (see [`crate::client::TableWriter`] for retries and deduplication).
///
/// Call [`Writer::close`] at the end: dropping a writer abandons unacknowledged batches
/// (they may or may not be written).
#[derive(Debug)]
pub struct Writer {
    /// `None` once closed. Declared before `runtime` so it is dropped first.
    inner: Arc<Mutex<Option<TableWriter>>>,
    runtime: Arc<ClientRuntime>,
    writer_id: i64,
    kind: WriteKind,
    target_columns: Option<Vec<String>>,
}

impl Writer {
    pub(crate) fn new(writer: TableWriter, runtime: Arc<ClientRuntime>) -> Self {
        let (writer_id, kind, target_columns) = (writer.writer_id(), writer.kind(), writer.target_columns().map(<[String]>::to_vec));
        Writer { inner: Arc::new(Mutex::new(Some(writer))), runtime, writer_id, kind, target_columns }
    }

    /// The writer id sent with every stream (to resume a writer, or to find its rows).
    pub fn writer_id(&self) -> i64 {
        self.writer_id
    }

    /// `Append`, `Upsert` or `Delete`.
    pub fn kind(&self) -> WriteKind {
        self.kind
    }

    /// The columns a partial update changes (`None`: full rows, or not an upsert writer).
    pub fn target_columns(&self) -> Option<&[String]> {
        self.target_columns.as_deref()
    }

    /// Sends a batch and blocks until it is durable on the node.
    pub fn write(&self, batch: RecordBatch) -> Result<PutAck> {
        let inner = self.inner.clone();
        self.runtime.call(async move {
            // Only the send happens under the lock; other threads may write while this one
            // waits for its ack.
            let ack = open(&inner).await?.write_unconfirmed(batch).await?;
            ack.await
        })
    }

    /// Sends a batch and returns once it is on its way (it blocks only while `max_in_flight`
    /// batches are unacknowledged). The [`AckHandle`] tells when it is durable; dropping the
    /// handle does not cancel the write, and [`Writer::flush`] still reports its failure.
    pub fn write_unconfirmed(&self, batch: RecordBatch) -> Result<AckHandle> {
        let inner = self.inner.clone();
        let ack = self.runtime.call(async move { open(&inner).await?.write_unconfirmed(batch).await })?;
        Ok(AckHandle::new(ack, self.runtime.clone()))
    }

    /// Blocks until every batch sent so far is acknowledged or failed; returns the first
    /// failure since the previous flush.
    pub fn flush(&self) -> Result<()> {
        let inner = self.inner.clone();
        self.runtime.call(async move { open(&inner).await?.flush().await })
    }

    /// Flushes, ends the stream and waits for the node to close it. Later calls on this
    /// writer fail with [`Error::Closed`]; closing again is a no-op.
    pub fn close(&self) -> Result<()> {
        let inner = self.inner.clone();
        self.runtime.call(async move {
            let writer = inner.lock().await.take();
            match writer {
                Some(writer) => writer.close().await,
                None => Ok(()),
            }
        })
    }
}

/// The open writer under the lock, or [`Error::Closed`].
async fn open(inner: &Arc<Mutex<Option<TableWriter>>>) -> Result<tokio::sync::MappedMutexGuard<'_, TableWriter>> {
    let guard = inner.lock().await;
    tokio::sync::MutexGuard::try_map(guard, Option::as_mut).map_err(|_| Error::Closed("the writer is closed".into()))
}

/// Looks up key batches in one primary-key table over a pipelined stream (see
/// [`crate::client::Lookuper`]). Shareable between threads like [`Writer`].
#[derive(Debug)]
pub struct Lookuper {
    inner: Arc<Mutex<Option<AsyncLookuper>>>,
    runtime: Arc<ClientRuntime>,
    kind: LookupKind,
}

impl Lookuper {
    pub(crate) fn new(lookuper: AsyncLookuper, runtime: Arc<ClientRuntime>) -> Self {
        let kind = lookuper.kind();
        Lookuper { inner: Arc::new(Mutex::new(Some(lookuper))), runtime, kind }
    }

    /// `PrimaryKey` (point lookups) or `Prefix`.
    pub fn kind(&self) -> LookupKind {
        self.kind
    }

    /// Looks up a batch of keys and blocks for the answer: `_key_index` (int32, the row of
    /// `keys` a result row answers) first, then the returned columns.
    pub fn lookup(&self, keys: RecordBatch) -> Result<RecordBatch> {
        let inner = self.inner.clone();
        self.runtime.call(async move {
            let answer = open_lookuper(&inner).await?.submit(keys).await?;
            answer.await
        })
    }

    /// Sends a batch of keys and returns at once (blocking only while `max_in_flight`
    /// requests are unanswered); answers resolve in submission order.
    pub fn submit(&self, keys: RecordBatch) -> Result<LookupHandle> {
        let inner = self.inner.clone();
        let answer = self.runtime.call(async move { open_lookuper(&inner).await?.submit(keys).await })?;
        Ok(LookupHandle::new(answer, self.runtime.clone()))
    }

    /// Waits for every submitted lookup, then ends the stream; closing again is a no-op.
    pub fn close(&self) -> Result<()> {
        let inner = self.inner.clone();
        self.runtime.call(async move {
            let lookuper = inner.lock().await.take();
            match lookuper {
                Some(lookuper) => lookuper.close().await,
                None => Ok(()),
            }
        })
    }
}

async fn open_lookuper(inner: &Arc<Mutex<Option<AsyncLookuper>>>) -> Result<tokio::sync::MappedMutexGuard<'_, AsyncLookuper>> {
    let guard = inner.lock().await;
    tokio::sync::MutexGuard::try_map(guard, Option::as_mut).map_err(|_| Error::Closed("the lookuper is closed".into()))
}

/// The batches of a scan as an iterator. A task of the facade's runtime reads the stream
/// into a bounded channel, so at most `scan_buffer` decoded batches wait for a slow consumer
/// and the node is then held back by gRPC flow control. Dropping the iterator cancels the
/// scan (that is how a `follow` scan, which never ends on its own, is stopped).
#[derive(Debug)]
pub struct ScanIter<T> {
    receiver: mpsc::Receiver<Result<T>>,
    pump: JoinHandle<()>,
    /// Set once the end (or the reading task's failure) was reported.
    finished: bool,
    runtime: Arc<ClientRuntime>,
}

/// The batches of a log scan (or changelog), each with its bucket and offsets.
pub type LogScanIter = ScanIter<ScanBatch>;

/// The batches of a snapshot scan, each with its bucket and changelog offset.
pub type SnapshotScanIter = ScanIter<SnapshotBatch>;

impl<T: Send + 'static> ScanIter<T> {
    pub(crate) fn start<S>(stream: S, runtime: Arc<ClientRuntime>, buffer: usize) -> Self
    where
        S: Stream<Item = Result<T>> + Send + Unpin + 'static,
    {
        let (sender, receiver) = mpsc::channel(buffer.max(1));
        let pump = runtime.handle().spawn(async move {
            let mut stream = stream;
            while let Some(item) = stream.next().await {
                let failed = item.is_err();
                // A closed channel means the iterator was dropped: stop reading.
                if sender.send(item).await.is_err() || failed {
                    break;
                }
            }
        });
        ScanIter { receiver, pump, finished: false, runtime }
    }
}

impl<T> Iterator for ScanIter<T> {
    type Item = Result<T>;

    /// Blocks until the next batch; `None` at the end of a bounded scan. After an error
    /// the iterator ends.
    fn next(&mut self) -> Option<Result<T>> {
        if self.finished {
            return None;
        }
        if let Some(item) = self.runtime.wait(self.receiver.recv()) {
            return Some(item);
        }
        self.finished = true;
        // The channel also closes when the reading task dies: a scan cut short that way
        // must not look like a complete one.
        match self.runtime.wait(&mut self.pump) {
            Err(e) if e.is_panic() => {
                Some(Err(Error::TaskFailed(format!("the scan's reading task panicked: {}", panic_message(e.into_panic())))))
            }
            Err(_) => Some(Err(Error::Closed("the scan was cancelled before its end".into()))),
            Ok(()) => None,
        }
    }
}

impl<T> Drop for ScanIter<T> {
    fn drop(&mut self) {
        self.pump.abort();
    }
}
