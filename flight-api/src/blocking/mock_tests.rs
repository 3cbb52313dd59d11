//! The blocking facade against the in-process mock nodes: plain threads (many at once), a
//! thread inside a foreign runtime, acks waited on, polled and called back, scan iterators
//! that cancel the scan when dropped, and a facade dropped inside another runtime.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::json;

use super::{ConnectOptions, StromClient};
use crate::client::mock_kv_tests::{int64s, keys, serve, KvMock};
use crate::client::mock_tests::{batch, fast_retries, start, Mock};
use crate::contract::{CountRequest, LogScan};
use crate::error::{Code, Error};

/// Generous bound for things that must happen, so that a bug fails the test instead of hanging it.
const EVENTUALLY: Duration = Duration::from_secs(20);

/// The mock nodes run on their own runtime, as a real node is another process.
struct Nodes {
    _runtime: tokio::runtime::Runtime,
    writes: Mock,
    writes_addr: SocketAddr,
    reads: KvMock,
    reads_addr: SocketAddr,
}

fn nodes() -> Nodes {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (writes, reads) = (Mock::default(), KvMock::default());
    let writes_addr = runtime.block_on(start(writes.clone()));
    let reads_addr = runtime.block_on(serve(&reads));
    Nodes { _runtime: runtime, writes, writes_addr, reads, reads_addr }
}

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn given_facade_handles_when_checked_should_be_send_and_sync() {
    assert_send_sync::<StromClient>();
    assert_send_sync::<super::Writer>();
    assert_send_sync::<super::Lookuper>();
    assert_send_sync::<super::AckHandle>();
    assert_send_sync::<super::LookupHandle>();
    assert_send_sync::<super::LogScanIter>();
    assert_send_sync::<super::SnapshotScanIter>();
}

#[test]
fn given_several_plain_threads_when_writing_through_blocking_writers_should_write_every_batch_once() {
    let nodes = nodes();
    let client = StromClient::connect(&nodes.writes_addr.to_string()).unwrap();
    let threads: Vec<_> = (0..4i64)
        .map(|t| {
            let client = client.clone();
            std::thread::spawn(move || {
                let writer = client.append_writer("d", "t", fast_retries());
                for i in 0..5 {
                    let ack = writer.write(batch(&[t * 100 + i])).unwrap();
                    assert_eq!((ack.rows, ack.sequence), (1, Some(i)), "sequences are per writer");
                }
                writer.close().unwrap();
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("no writer thread panicked");
    }
    let mut rows = nodes.writes.rows();
    rows.sort_unstable();
    let expected: Vec<i64> = (0..4).flat_map(|t| (0..5).map(move |i| t * 100 + i)).collect();
    assert_eq!(rows, expected);
}

#[test]
fn given_unconfirmed_writes_when_flushed_should_resolve_every_ack_by_wait_poll_and_callback() {
    let nodes = nodes();
    let client = StromClient::connect(&nodes.writes_addr.to_string()).unwrap();
    let writer = client.append_writer("d", "t", fast_retries());
    let first = writer.write_unconfirmed(batch(&[1])).unwrap();
    let second = writer.write_unconfirmed(batch(&[2, 3])).unwrap();
    let mut third = writer.write_unconfirmed(batch(&[4])).unwrap();
    let (sender, receiver) = mpsc::channel();
    first.on_complete(move |ack| sender.send(ack).unwrap());
    assert_eq!(second.wait().unwrap().rows, 2);
    // flush answers only after every earlier ack was resolved, so polling must see it now.
    writer.flush().unwrap();
    let polled = third.try_wait().expect("acked before flush returned").unwrap();
    assert_eq!(polled.sequence, Some(2));
    assert_eq!(third.try_wait().unwrap().unwrap().sequence, Some(2), "polling again answers the same");
    let called_back = receiver.recv_timeout(EVENTUALLY).expect("the callback ran").unwrap();
    assert_eq!(called_back.sequence, Some(0));
    writer.close().unwrap();
    assert!(matches!(writer.write(batch(&[5])), Err(Error::Closed(_))), "a closed writer refuses batches");
    writer.close().expect("closing twice is a no-op");
}

#[test]
fn given_rejected_batch_when_written_blocking_should_surface_the_nodes_code() {
    let nodes = nodes();
    let client = StromClient::connect(&nodes.writes_addr.to_string()).unwrap();
    let writer = client.append_writer("d", "t", fast_retries());
    let err = writer.write(batch(&[-1])).unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.to_string().contains("negative v"), "{err}");
}

#[test]
fn given_last_handle_when_a_callback_is_registered_should_call_it_exactly_once_as_the_runtime_stops() {
    let nodes = nodes();
    let client = StromClient::connect(&nodes.writes_addr.to_string()).unwrap();
    let writer = client.append_writer("d", "t", fast_retries());
    let ack = writer.write_unconfirmed(batch(&[1])).unwrap();
    drop((writer, client));
    let (sender, receiver) = mpsc::channel();
    // The ack holds the last reference to the runtime, which stops when it is consumed here:
    // the callback still runs once, with the ack or with an error, never zero times.
    ack.on_complete(move |result| sender.send(result.map(|a| a.rows)).unwrap());
    let first = receiver.recv_timeout(EVENTUALLY).expect("the callback ran");
    assert!(matches!(first, Ok(1) | Err(_)), "{first:?}");
    // The callback is consumed by its one call, which drops its sender: nothing else comes.
    assert!(matches!(receiver.recv_timeout(EVENTUALLY), Err(mpsc::RecvTimeoutError::Disconnected)), "called exactly once");
}

#[test]
fn given_blocking_lookuper_shared_by_threads_when_looking_up_should_answer_each_its_own_keys() {
    let nodes = nodes();
    let client = StromClient::connect(&nodes.reads_addr.to_string()).unwrap();
    let lookuper = std::sync::Arc::new(client.lookuper("d", "t", Default::default()));
    let threads: Vec<_> = (0..3i64)
        .map(|t| {
            let lookuper = lookuper.clone();
            std::thread::spawn(move || {
                let answer = lookuper.lookup(keys(&[2 * t, 2 * t + 1])).unwrap();
                assert_eq!(int64s(&answer, "v"), vec![20 * t]);
                let pending = lookuper.submit(keys(&[10 + 2 * t])).unwrap();
                assert_eq!(int64s(&pending.wait().unwrap(), "k"), vec![10 + 2 * t]);
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("no lookup thread panicked");
    }
    lookuper.close().unwrap();
}

#[test]
fn given_scan_iterator_when_dropped_mid_follow_scan_should_cancel_the_call() {
    let nodes = nodes();
    let (dropped, scan_ended) = mpsc::channel();
    nodes.reads.state.lock().unwrap().endless_scan_dropped = Some(dropped);
    let options = ConnectOptions { scan_buffer: 2, ..Default::default() };
    let client = StromClient::connect_with(&nodes.reads_addr.to_string(), &options).unwrap();
    let mut scan = client.scan_log(LogScan { database: "d".into(), table: "t".into(), follow: true, ..Default::default() }).unwrap();
    let offsets: Vec<u64> = scan.by_ref().take(3).map(|b| b.unwrap().metadata.base_offset).collect();
    assert_eq!(offsets, vec![0, 1, 2]);
    drop(scan);
    scan_ended.recv_timeout(EVENTUALLY).expect("the node saw the scan cancelled");
}

#[test]
fn given_bounded_scan_when_iterated_should_yield_every_batch_then_end() {
    let nodes = nodes();
    nodes.reads.state.lock().unwrap().do_get_batches =
        (0..10).map(|i| (json!({"bucket": 0, "base_offset": i, "high_watermark": 10}), vec![i])).collect();
    let options = ConnectOptions { scan_buffer: 1, ..Default::default() };
    let client = StromClient::connect_with(&nodes.reads_addr.to_string(), &options).unwrap();
    let values: Vec<i64> = client
        .scan_log(LogScan { database: "d".into(), table: "t".into(), ..Default::default() })
        .unwrap()
        .flat_map(|b| int64s(&b.unwrap().batch, "v"))
        .collect();
    assert_eq!(values, (0..10).collect::<Vec<_>>(), "a one-batch buffer still delivers everything in order");
}

#[test]
fn given_thread_inside_a_foreign_current_thread_runtime_when_calling_the_facade_should_answer_without_panicking() {
    let nodes = nodes();
    nodes.reads.state.lock().unwrap().do_get_batches = vec![(json!({}), vec![42])];
    let client = StromClient::connect(&nodes.reads_addr.to_string()).unwrap();
    let foreign = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (count, looked_up) = foreign.block_on(async {
        assert!(tokio::runtime::Handle::try_current().is_ok(), "inside the foreign runtime");
        let count = client.count(CountRequest { database: "d".into(), table: "t".into(), ..Default::default() });
        let lookuper = client.lookuper("d", "t", Default::default());
        let answer = lookuper.lookup(keys(&[6]));
        lookuper.close().unwrap();
        (count, answer)
    });
    assert_eq!(count.unwrap(), 42);
    assert_eq!(int64s(&looked_up.unwrap(), "v"), vec![60]);
}

#[test]
fn given_facade_connected_inside_a_foreign_runtime_when_dropped_there_should_not_panic() {
    let nodes = nodes();
    let foreign = tokio::runtime::Runtime::new().unwrap();
    let addr = nodes.writes_addr.to_string();
    let rows = foreign.block_on(async move {
        let client = StromClient::connect(&addr).unwrap();
        let writer = client.append_writer("d", "t", fast_retries());
        let ack = writer.write(batch(&[7])).unwrap();
        writer.close().unwrap();
        // The last handle goes inside this runtime's task: the facade's runtime must stop
        // in the background instead of blocking (which tokio would turn into a panic).
        drop((writer, client));
        ack.rows
    });
    assert_eq!(rows, 1);
    assert_eq!(nodes.writes.rows(), vec![7]);
}

#[test]
fn given_no_node_listening_when_connecting_blocking_should_be_unavailable() {
    let err = StromClient::connect("grpc://127.0.0.1:1").unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert!(err.is_retriable());
}
