//! The async Rust client: a thin, typed layer over the Arrow Flight calls of the contract.
//!
//! Everything here is plain Arrow Flight with JSON bodies (see `docs/protocol.md`), so the
//! client never does anything a pyarrow script could not do by hand; it only adds types,
//! pipelined idempotent writes with retries ([`AppendWriter`], [`UpsertWriter`],
//! [`DeleteWriter`], all built on [`TableWriter`]), pipelined lookups over `DoExchange`
//! ([`Lookuper`]) and decoded scans ([`LogScanStream`], [`SnapshotScanStream`]).
//!
//! ```no_run
//! # async fn demo() -> strom_flight_api::Result<()> {
//! use strom_flight_api::{StromClient, LogScan};
//! let client = StromClient::connect("grpc://127.0.0.1:9123").await?;
//! let rows: usize = client
//!     .collect_log(LogScan { database: "db".into(), table: "t".into(), ..Default::default() })
//!     .await?
//!     .iter()
//!     .map(|b| b.batch.num_rows())
//!     .sum();
//! # let _ = rows; Ok(()) }
//! ```

mod admin;
mod decode;
mod lookuper;
#[cfg(test)]
mod mock_handshake_tests;
#[cfg(test)]
pub(crate) mod mock_kv_tests;
#[cfg(test)]
pub(crate) mod mock_tests;
mod scanner;
mod writer;
mod writers;

use std::future::Future;
use std::time::Duration;

use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::HandshakeRequest;
use tokio::runtime::Handle;
use tonic::transport::{Channel, Endpoint};

use crate::contract::{HandshakeInfo, CONTRACT_VERSION};
use crate::error::{from_status, from_transport, Code, Error, Result};

pub use admin::path_descriptor;
pub use decode::BatchDecoder;
pub use lookuper::{LookupFuture, LookupOptions, Lookuper};
pub use scanner::{LogScanStream, ScanBatch, Snapshot, SnapshotBatch, SnapshotScanStream};
pub use writer::{AckFuture, AppendWriterOptions, TableWriter, WriterOptions};
pub use writers::{AppendWriter, DeleteWriter, UpsertWriter};

/// Largest gRPC message the client sends or accepts. Scans stream stored batches as they are,
/// so a batch written by another client with a larger limit must still be readable; 64 MiB
/// matches the node's default ceiling.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Largest HTTP/2 DATA frame this client accepts (SETTINGS_MAX_FRAME_SIZE). h2's default is
/// 16 KiB, and the node (h2) writes every DATA frame with its own system call: 16 KiB frames
/// cost ~37 000 calls, each waking this client, per GB scanned. With 4 MiB frames (a quarter of
/// the stream window, so four are in flight) a client that does not decode measured 1.63–1.68 →
/// 2.33–2.34 GB/s on full-width scans and 2.02–2.04 → 2.65–2.79 GB/s on 13 of 43 columns, the
/// node spending 23 % less CPU per GB (docs/benchmarks.md, "Scans, 2026-12-07 21:50 UTC").
pub const MAX_RECEIVED_FRAME_BYTES: u32 = 4 * 1024 * 1024;

/// How a client connects.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// How long opening the TCP connection may take before `connect` fails with `UNAVAILABLE`.
    pub connect_timeout: Duration,
    /// How long the node may take to answer the handshake once connected.
    pub handshake_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self { connect_timeout: Duration::from_secs(10), handshake_timeout: Duration::from_secs(10) }
    }
}

/// A connection to one Strom node. Cheap to clone: clones share one HTTP/2 channel, which
/// multiplexes every call, so there is no reason to open more than one per node.
///
/// The client remembers the tokio runtime it was connected on (see [`StromClient::runtime`])
/// and runs all of its background work there: the connection's tasks and the driver tasks of
/// writers and lookupers. So [`StromClient::append_writer`] and friends can be called from
/// any thread, including one without a runtime. Its async methods are awaited on a tokio
/// runtime (any one); callers without one use [`crate::blocking::StromClient`].
#[derive(Clone, Debug)]
pub struct StromClient {
    inner: FlightServiceClient<Channel>,
    endpoint: String,
    runtime: Handle,
    server_version: String,
}

impl StromClient {
    /// Connects to `grpc://host:port`, `http://host:port` or `host:port` with default
    /// options, on the runtime this is awaited on.
    ///
    /// The connection is made eagerly and the contract versions are compared (Flight
    /// `Handshake`), so a wrong address fails here with the address in the error
    /// (`UNAVAILABLE`), and a node of another contract version with `FAILED_PRECONDITION`
    /// ([`Error::ContractMismatch`]), rather than on the first call.
    pub async fn connect(endpoint: &str) -> Result<StromClient> {
        Self::connect_with(endpoint, &ClientOptions::default()).await
    }

    /// [`StromClient::connect`] with options, on the runtime this is awaited on.
    pub async fn connect_with(endpoint: &str, options: &ClientOptions) -> Result<StromClient> {
        let runtime = Handle::try_current().map_err(|_| {
            Error::InvalidArgument(
                "StromClient::connect must be awaited on a tokio runtime; use connect_on with a runtime handle, \
                 or strom_flight_api::blocking::StromClient from plain threads"
                    .into(),
            )
        })?;
        Self::connect_on(&runtime, endpoint, options).await
    }

    /// Connects with `runtime` as the client's runtime: the connection and every background
    /// task of the client run there, whatever executor awaits this future.
    pub async fn connect_on(runtime: &Handle, endpoint: &str, options: &ClientOptions) -> Result<StromClient> {
        let uri = normalize_endpoint(endpoint)?;
        // Connecting inside a task of `runtime` makes tonic spawn the connection's tasks
        // there (it uses `tokio::spawn`), not on whatever runtime the caller is on.
        let (inner, info) = spawn_on(runtime, connect_and_handshake(uri.clone(), options.clone())).await??;
        Ok(StromClient { inner, endpoint: uri, runtime: runtime.clone(), server_version: info.server_version })
    }

    /// The `http://host:port` URI this client talks to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The node's build version, as its handshake reported it.
    pub fn server_version(&self) -> &str {
        &self.server_version
    }

    /// The runtime the client's background tasks run on.
    pub fn runtime(&self) -> &Handle {
        &self.runtime
    }
}

/// Runs `future` as a task of `runtime` and waits for it from any executor. A panic in the
/// task becomes [`Error::TaskFailed`]; a runtime that shuts down first, [`Error::Closed`].
pub(crate) async fn spawn_on<F>(runtime: &Handle, future: F) -> Result<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    runtime.spawn(future).await.map_err(|e| {
        if e.is_panic() {
            Error::TaskFailed(panic_message(e.into_panic()))
        } else {
            Error::Closed("the client's runtime shut down before the call finished".into())
        }
    })
}

/// The text of a panic payload (a `&str` or `String` for `panic!` with a message).
pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => payload.downcast_ref::<&str>().map(|s| s.to_string()).unwrap_or_else(|| "panic without a message".into()),
    }
}

async fn connect_and_handshake(uri: String, options: ClientOptions) -> Result<(FlightServiceClient<Channel>, HandshakeInfo)> {
    let channel = Endpoint::from_shared(uri.clone())
        .map_err(|e| Error::InvalidArgument(format!("bad endpoint {uri:?}: {e}")))?
        .connect_timeout(options.connect_timeout)
        .tcp_nodelay(true)
        // Large windows: scans stream multi-megabyte batches; h2's 64 KiB default would
        // stall every 64 KiB on a WINDOW_UPDATE round trip.
        .initial_stream_window_size(16 * 1024 * 1024)
        .initial_connection_window_size(64 * 1024 * 1024)
        .max_frame_size(MAX_RECEIVED_FRAME_BYTES)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true)
        .connect()
        .await
        .map_err(|e| from_transport(&format!("cannot connect to {uri}"), e))?;
    let mut client =
        FlightServiceClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES).max_encoding_message_size(MAX_MESSAGE_BYTES);
    let info = tokio::time::timeout(options.handshake_timeout, handshake(&mut client, &uri)).await.map_err(|_| {
        Error::Transport(format!("the node at {uri} did not answer the handshake within {:?}", options.handshake_timeout))
    })??;
    Ok((client, info))
}

/// Sends our contract version and checks the node's (see `docs/protocol.md`, "Handshake").
async fn handshake(client: &mut FlightServiceClient<Channel>, uri: &str) -> Result<HandshakeInfo> {
    let request = HandshakeRequest { protocol_version: CONTRACT_VERSION, payload: Default::default() };
    let mut answers = match client.handshake(futures::stream::iter([request])).await {
        Ok(response) => response.into_inner(),
        Err(status) => return Err(handshake_refused(from_status(status), uri)),
    };
    let first = answers.message().await.map_err(|status| handshake_refused(from_status(status), uri))?;
    // Drain so the call ends cleanly; nothing after the first answer matters.
    while let Ok(Some(_)) = answers.message().await {}
    let Some(answer) = first else {
        return Err(Error::ContractMismatch(format!(
            "the node at {uri} answered the handshake with no message; this client speaks Strom contract version {CONTRACT_VERSION}"
        )));
    };
    check_handshake_answer(answer.protocol_version, &answer.payload, uri)
}

/// A refused handshake: the node says which versions clash (`FAILED_PRECONDITION`), or it is
/// not a Strom node of a versioned contract at all (`UNIMPLEMENTED`). Other failures
/// (unreachable node...) keep their code.
fn handshake_refused(error: Error, uri: &str) -> Error {
    match error.code() {
        Code::FailedPrecondition => Error::ContractMismatch(format!("the node at {uri} refused this client: {error}")),
        Code::Unimplemented => Error::ContractMismatch(format!(
            "the node at {uri} does not implement the Flight handshake ({error}); this client speaks Strom contract version \
             {CONTRACT_VERSION}"
        )),
        _ => error,
    }
}

/// Accepts exactly our contract version with a readable payload. A node that answers 0 with an
/// empty payload predates the versioned handshake.
fn check_handshake_answer(node_version: u64, payload: &[u8], uri: &str) -> Result<HandshakeInfo> {
    if node_version != CONTRACT_VERSION {
        let node = if node_version == 0 && payload.is_empty() {
            "no contract version (a node older than the versioned handshake)".to_string()
        } else {
            format!("contract version {node_version}")
        };
        return Err(Error::ContractMismatch(format!(
            "the node at {uri} speaks {node}, this client speaks contract version {CONTRACT_VERSION}: upgrade the older side"
        )));
    }
    let info: HandshakeInfo = serde_json::from_slice(payload).map_err(|e| {
        Error::Protocol(format!("the handshake payload of the node at {uri} ({:?}) does not decode: {e}", String::from_utf8_lossy(payload)))
    })?;
    if info.contract_version != node_version {
        return Err(Error::Protocol(format!(
            "the node at {uri} answered protocol_version {node_version} but contract_version {} in its payload",
            info.contract_version
        )));
    }
    Ok(info)
}

/// `grpc://h:p` and `h:p` become `http://h:p`; tonic only knows http(s).
fn normalize_endpoint(endpoint: &str) -> Result<String> {
    let endpoint = endpoint.trim();
    if endpoint.is_empty() {
        return Err(Error::InvalidArgument("empty endpoint".into()));
    }
    let uri = if let Some(rest) = endpoint.strip_prefix("grpc://") {
        format!("http://{rest}")
    } else if let Some(rest) = endpoint.strip_prefix("grpc+tcp://") {
        format!("http://{rest}")
    } else if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
        endpoint.to_string()
    } else if endpoint.contains("://") {
        return Err(Error::InvalidArgument(format!(
            "unsupported endpoint scheme in {endpoint:?}: use grpc://host:port, http://host:port or host:port"
        )));
    } else {
        format!("http://{endpoint}")
    };
    Ok(uri.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_endpoint_forms_when_normalized_should_map_to_http() {
        assert_eq!(normalize_endpoint("grpc://127.0.0.1:1").unwrap(), "http://127.0.0.1:1");
        assert_eq!(normalize_endpoint("http://h:2/").unwrap(), "http://h:2");
        assert_eq!(normalize_endpoint("h:3").unwrap(), "http://h:3");
        assert_eq!(normalize_endpoint("grpc+tcp://h:4").unwrap(), "http://h:4");
    }

    #[test]
    fn given_unknown_scheme_or_empty_when_normalized_should_be_invalid_argument() {
        assert!(matches!(normalize_endpoint("ftp://h:1"), Err(Error::InvalidArgument(_))));
        assert!(matches!(normalize_endpoint("  "), Err(Error::InvalidArgument(_))));
    }

    #[tokio::test]
    async fn given_nothing_listening_when_connecting_should_be_a_retriable_transport_error() {
        // Port 1 on loopback is essentially never open.
        let err = StromClient::connect("grpc://127.0.0.1:1").await.unwrap_err();
        assert!(matches!(err, Error::Transport(_)), "{err:?}");
        assert_eq!(err.code(), Code::Unavailable);
        assert!(err.is_retriable());
        assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    }
}
