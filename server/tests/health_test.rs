//! `health` reports background work that failed, with its table, instead of leaving it in the
//! logs only.

mod common;

use common::{rows, DB, TABLE};
use std::sync::Arc;
use std::time::Duration;
use strom_flight_api::{ColumnSpec, CreateDatabase, CreateTable, WriteCommand};
use strom_server::config::{Config, Durability};
use strom_server::engine::{Engine, StorageEngine};
use strom_server::fs::FaultFs;
use strom_server::Error;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_an_fsync_failure_in_the_os_mode_flusher_when_health_is_asked_should_report_the_table_degraded() {
    let dir = tempfile::tempdir().unwrap();
    let fault = FaultFs::new(dir.path()).unwrap();
    let mut config = Config::default();
    config.storage.data_dir = dir.path().join("data");
    config.log.durability = Durability::Os;
    config.log.flush_interval_ms = 10;
    let engine = Engine::open_on(config, strom_server::clock::system_clock(), Arc::new(fault.clone())).unwrap();
    engine.create_database(&CreateDatabase { name: DB.into(), ..Default::default() }).unwrap();
    let columns = vec![ColumnSpec::new("id", "BIGINT").not_null(), ColumnSpec::new("name", "STRING"), ColumnSpec::new("score", "BIGINT")];
    engine.create_table(&CreateTable { database: DB.into(), table: TABLE.into(), columns, ..Default::default() }).unwrap();
    assert_eq!(engine.health().status, "ok");

    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    engine.spawn_background(shutdown);
    fault.fail_next_syncs_matching(1, |p| p.extension().is_some_and(|e| e == "log"));
    let append = WriteCommand::append(DB, TABLE);
    common::write(engine.as_ref(), &append, rows(0, 10), None).await.expect("os mode acknowledges after the write");

    // The flusher runs every 10 ms; wait (bounded) until its failure is reported.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let health = loop {
        let health = engine.health();
        if !health.background_failures.is_empty() || tokio::time::Instant::now() > deadline {
            break health;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(health.status, "degraded", "{health:?}");
    let failure = &health.background_failures[0];
    assert_eq!((failure.task.as_str(), failure.table.as_deref()), ("flush", Some("db.t")), "{failure:?}");
    assert!(failure.error.contains("fsync") || failure.error.contains("fdatasync"), "{}", failure.error);
    let err = common::write(engine.as_ref(), &append, rows(10, 1), None).await.unwrap_err();
    assert!(matches!(err, Error::WritesStopped { .. }), "writes stay stopped after an fsync failure: {err}");
}
