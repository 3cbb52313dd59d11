//! Idempotent writers' sequence numbers: each writer's batches are written in call order, and
//! a batch whose sequence skips ahead of the writer's last one is refused (a lost batch would
//! otherwise go unnoticed). Retries (sequences already seen) pass and are deduplicated by the
//! bucket logs.

use super::api::BatchIdentity;
use crate::error::{Error, Result};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// Highest sequence seen per idempotent writer of one table (across its buckets and
/// partitions). One async lock per writer serializes that writer's batches.
#[derive(Default)]
pub(crate) struct WriterSequences(Mutex<HashMap<i64, Arc<tokio::sync::Mutex<Option<i64>>>>>);

impl WriterSequences {
    /// Seeded with the last sequence every writer has in the logs (after a restart).
    pub(crate) fn with_last(last: HashMap<i64, i64>) -> Self {
        Self(Mutex::new(last.into_iter().map(|(w, s)| (w, Arc::new(tokio::sync::Mutex::new(Some(s))))).collect()))
    }
}

/// Holds a writer's lock while one of its batches is written, and rejects a sequence gap.
pub(crate) struct WriterGate {
    state: Option<(tokio::sync::OwnedMutexGuard<Option<i64>>, i64)>,
}

impl WriterGate {
    pub(crate) async fn enter(writers: &WriterSequences, path: &str, id: Option<BatchIdentity>) -> Result<Self> {
        let Some(id) = id else { return Ok(Self { state: None }) };
        let lock = writers.0.lock().entry(id.writer_id).or_default().clone();
        let guard = lock.lock_owned().await;
        if let Some(last) = *guard {
            if id.sequence > last + 1 {
                return Err(Error::FailedPrecondition(format!(
                    "table {path}: sequence gap for writer {}: expected {} (or a retry <= {last}), got {}",
                    id.writer_id,
                    last + 1,
                    id.sequence
                )));
            }
        }
        Ok(Self { state: Some((guard, id.sequence)) })
    }

    /// The batch was written: its sequence is the writer's latest.
    pub(crate) fn passed(&mut self) {
        if let Some((guard, sequence)) = &mut self.state {
            **guard = Some(guard.map_or(*sequence, |s| s.max(*sequence)));
        }
    }
}
