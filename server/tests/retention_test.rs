//! Retention by `table.log.ttl`: whole expired segments go, the log start moves, and readers
//! asking for deleted offsets get a clear error.

mod common;

use common::*;
use strom_flight_api::{LogScan, StartPosition};
use strom_server::Error;

#[tokio::test]
async fn given_expired_segments_when_retention_runs_should_delete_them_and_move_log_start() {
    let f = EngineFixture::builder().segment_bytes(2 * 1024).option("table.log.ttl", "1 h").open();
    for i in 0..12 {
        f.append(rows(i * 100, 100), None).await.unwrap();
    }
    let before = f.segment_files(0).len();
    assert!(before > 2);
    // Nothing is older than an hour yet.
    assert_eq!(f.engine.apply_retention(strom_server::clock::system_now_ms()), 0);
    // Two hours later every sealed segment has expired; the active one stays.
    let deleted = f.engine.apply_retention(strom_server::clock::system_now_ms() + 2 * 3600 * 1000);
    assert_eq!(deleted, before - 1);
    assert_eq!(f.segment_files(0).len(), 1);
    let start = f.log_start_offset(0);
    assert!(start > 0);
    let err = f.scan(LogScan { from: StartPosition::Offset { offset: 0 }, ..EngineFixture::full_scan() }).await.unwrap_err();
    assert!(matches!(err, Error::FailedPrecondition(_)) && err.to_string().contains(&format!("log start offset {start}")), "{err}");
    let rest = f.scan(EngineFixture::full_scan()).await.unwrap();
    assert_eq!(ids(&rest), (start as i64..1200).collect::<Vec<_>>(), "earliest starts at the new log start");
}
