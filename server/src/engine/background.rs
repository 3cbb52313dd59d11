//! The node's background tasks — the os-mode flusher, retention, the auto-partition check and
//! the idle KV flush — and the record of their failures that `health` reports.
//!
//! Each task runs its blocking work on the blocking pool. A failure is logged with its table
//! and kept (per task and table, with a count of consecutive failures) until the task next
//! succeeds for that table, so an operator sees it in `health` instead of only in the logs.

use super::health::{BackgroundFailures, AUTO_PARTITION, FLUSH, KV_FLUSH, RETENTION};
use super::registry::Registry;
use crate::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Starts every background task; they stop when `shutdown` changes.
pub(crate) fn spawn(registry: Arc<Registry>, shutdown: watch::Receiver<bool>) {
    let failures = registry.failures.clone();
    let log = &registry.config.log;
    let flush = Duration::from_millis(log.flush_interval_ms);
    let retention = Duration::from_millis(log.retention_check_interval_ms);
    let auto_partition = Duration::from_millis(log.auto_partition_check_interval_ms.max(1));
    every(flush, shutdown.clone(), registry.clone(), failures.clone(), |registry, failures| async move {
        let mut failed = Vec::new();
        for table in registry.runtimes() {
            let path = table.meta().path();
            match table.sync_all().await {
                Ok(()) => {}
                Err(e) => {
                    failures.record(FLUSH, Some(&path), &e, (registry.clock)());
                    failed.push(path);
                }
            }
        }
        failures.clear_others(FLUSH, &failed);
    });
    if registry.config.kv.idle_flush_ms > 0 {
        let idle = Duration::from_millis(registry.config.kv.idle_flush_ms);
        every(
            idle.min(Duration::from_secs(1)),
            shutdown.clone(),
            registry.clone(),
            failures.clone(),
            move |registry, failures| async move {
                let Some(kv) = registry.open_kv() else { return };
                let started = Instant::now();
                match blocking(move || kv.flush_if_idle(idle)).await {
                    Ok(true) => tracing::debug!(ms = started.elapsed().as_millis() as u64, "KV store flushed after idle writes"),
                    Ok(false) => {}
                    Err(e) => return failures.record(KV_FLUSH, None, &e, (registry.clock)()),
                }
                failures.clear(KV_FLUSH, None);
            },
        );
    }
    // The first tick fires at once: a node that was down catches up at start.
    every(auto_partition, shutdown.clone(), registry.clone(), failures.clone(), |registry, failures| async move {
        let r = registry.clone();
        match blocking(move || Ok(r.check_auto_partitions())).await {
            Ok((report, failed)) => {
                if !report.created.is_empty() || !report.dropped.is_empty() {
                    tracing::info!(created = report.created.len(), dropped = report.dropped.len(), "auto-partition check");
                }
                let names: Vec<String> = failed.iter().map(|(t, _)| t.clone()).collect();
                for (table, e) in failed {
                    failures.record(AUTO_PARTITION, Some(&table), &e, (registry.clock)());
                }
                failures.clear_others(AUTO_PARTITION, &names);
            }
            Err(e) => failures.record(AUTO_PARTITION, None, &e, (registry.clock)()),
        }
    });
    every(retention, shutdown, registry, failures, |registry, failures| async move {
        let r = registry.clone();
        match blocking(move || Ok(r.apply_retention((r.clock)()))).await {
            Ok((deleted, failed)) => {
                if deleted > 0 {
                    tracing::info!(segments = deleted, "retention deleted expired segments");
                }
                let names: Vec<String> = failed.iter().map(|(t, _)| t.clone()).collect();
                for (table, e) in failed {
                    failures.record(RETENTION, Some(&table), &e, (registry.clock)());
                }
                failures.clear_others(RETENTION, &names);
            }
            Err(e) => failures.record(RETENTION, None, &e, (registry.clock)()),
        }
    });
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> crate::error::Result<T> + Send + 'static) -> crate::error::Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Internal(format!("background task panicked: {e}")))?
}

/// Runs `task` every `period` until shutdown (missed ticks are delayed, not bunched).
fn every<F, Fut>(period: Duration, mut shutdown: watch::Receiver<bool>, registry: Arc<Registry>, failures: Arc<BackgroundFailures>, task: F)
where
    F: Fn(Arc<Registry>, Arc<BackgroundFailures>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => task(registry.clone(), failures.clone()).await,
                _ = shutdown.changed() => return,
            }
        }
    });
}
