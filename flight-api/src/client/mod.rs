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
mod lookuper;
#[cfg(test)]
mod mock_kv_tests;
#[cfg(test)]
mod mock_tests;
mod scanner;
mod writer;
mod writers;

use std::time::Duration;

use arrow_flight::flight_service_client::FlightServiceClient;
use tonic::transport::{Channel, Endpoint};

use crate::error::{Error, Result};

pub use admin::path_descriptor;
pub use lookuper::{LookupFuture, LookupOptions, Lookuper};
pub use scanner::{LogScanStream, ScanBatch, Snapshot, SnapshotBatch, SnapshotScanStream};
pub use writer::{AckFuture, AppendWriterOptions, TableWriter, WriterOptions};
pub use writers::{AppendWriter, DeleteWriter, UpsertWriter};

/// Largest gRPC message the client sends or accepts. Scans stream stored batches as they are,
/// so a batch written by another client with a larger limit must still be readable; 64 MiB
/// matches the node's default ceiling.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// A connection to one Strom node. Cheap to clone: clones share one HTTP/2 channel, which
/// multiplexes every call, so there is no reason to open more than one per node.
#[derive(Clone, Debug)]
pub struct StromClient {
    inner: FlightServiceClient<Channel>,
    endpoint: String,
}

impl StromClient {
    /// Connects to `grpc://host:port`, `http://host:port` or `host:port`.
    ///
    /// The connection is made eagerly so that a wrong address fails here, with the address
    /// in the error, rather than on the first call.
    pub async fn connect(endpoint: &str) -> Result<StromClient> {
        let uri = normalize_endpoint(endpoint)?;
        let channel = Endpoint::from_shared(uri.clone())
            .map_err(|e| Error::InvalidArgument(format!("bad endpoint {endpoint:?}: {e}")))?
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            // Large windows: scans stream multi-megabyte batches; h2's 64 KiB default would
            // stall every 64 KiB on a WINDOW_UPDATE round trip.
            .initial_stream_window_size(16 * 1024 * 1024)
            .initial_connection_window_size(64 * 1024 * 1024)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true)
            .connect()
            .await
            .map_err(|e| Error::Transport(format!("cannot connect to {uri}: {e:?}")))?;
        Ok(Self::from_channel(channel, uri))
    }

    /// Wraps an existing channel (for callers that build their own, e.g. with TLS).
    pub fn from_channel(channel: Channel, endpoint: impl Into<String>) -> StromClient {
        let inner =
            FlightServiceClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES).max_encoding_message_size(MAX_MESSAGE_BYTES);
        StromClient { inner, endpoint: endpoint.into() }
    }

    /// The `http://host:port` URI this client talks to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The raw Flight client, for requests the typed API does not cover (and for tests that
    /// send deliberately malformed ones).
    pub fn flight_client(&self) -> FlightServiceClient<Channel> {
        self.inner.clone()
    }
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

/// A copy of an error for the second and later waiters of one failure (errors hold
/// non-clonable sources, but the code and message are what callers act on).
pub(crate) fn duplicate_error(e: &Error) -> Error {
    match e {
        Error::Status { code, message } => Error::Status { code: *code, message: message.clone() },
        Error::Transport(m) => Error::Transport(m.clone()),
        Error::Protocol(m) => Error::Protocol(m.clone()),
        Error::InvalidArgument(m) => Error::InvalidArgument(m.clone()),
        Error::Arrow(e) => Error::Arrow(arrow_schema::ArrowError::ExternalError(e.to_string().into())),
        Error::Json(e) => Error::Protocol(format!("json error: {e}")),
    }
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
        assert!(err.is_retriable());
        assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    }
}
