//! The node's HTTP/2 server: hyper's HTTP/2 connection driven directly rather than through
//! `tonic::transport::Server`, with every route but DoGet still answered by tonic's generated
//! Flight server.
//!
//! Why: h2 writes each DATA frame payload it is handed with its own `writev`, and a payload is
//! one value of the response body's `Data` type. tonic's server fixes that type to one `Bytes`,
//! so a scan message made of many byte ranges — a stored batch cut into row ranges is ~100
//! slices of the stored buffers per message (`log/cut.rs`) — went out as ~100 frames and ~100
//! system calls, each also a frame the client handles on its own. Here the response body's
//! `Data` is a [`WireBuf`]: a DoGet message (gRPC prefix and all its body ranges) is one payload,
//! split into frames only by the client's frame size and written with vectored writes (h2 hands
//! the socket up to 16 ranges per call). The bytes on the wire do not change.
//!
//! What tonic's server did that this keeps: HTTP/2 only (gRPC clients speak nothing else),
//! TCP_NODELAY on every accepted socket, the HTTP/2 windows and frame size from the caller,
//! graceful shutdown (stop accepting, GOAWAY on every connection, wait for running requests).
//! What it leaves out: server-side `grpc-timeout` deadlines (the clients enforce their own and
//! reset the stream, which ends the request here too) and HTTP/1.

use bytes::{Buf, Bytes};
use futures::future::BoxFuture;
use http_body::Frame;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::io::IoSlice;
use std::pin::{pin, Pin};
use std::task::{Context, Poll};
use tokio::net::TcpListener;
use tonic::Status;
use tower_service::Service;

/// HTTP/2 settings the node advertises.
#[derive(Debug, Clone, Copy)]
pub struct Http2Settings {
    /// How much a client may send on one stream before the node acknowledges it.
    pub stream_window: u32,
    /// How much a client may send on the connection before the node acknowledges it.
    pub connection_window: u32,
    /// Largest DATA frame the node accepts from a client.
    pub max_frame_size: u32,
}

/// Bytes sent as one HTTP/2 payload: several ranges, written one after the other without
/// being joined (vectored writes).
#[derive(Debug, Default, Clone)]
pub struct WireBuf {
    parts: VecDeque<Bytes>,
    remaining: usize,
}

impl WireBuf {
    /// The ranges in order (empty ones are left out).
    pub fn from_parts(parts: impl IntoIterator<Item = Bytes>) -> Self {
        let parts: VecDeque<Bytes> = parts.into_iter().filter(|p| !p.is_empty()).collect();
        let remaining = parts.iter().map(Bytes::len).sum();
        Self { parts, remaining }
    }

    /// The ranges still to send.
    pub fn parts(&self) -> impl Iterator<Item = &Bytes> {
        self.parts.iter()
    }
}

impl From<Bytes> for WireBuf {
    fn from(bytes: Bytes) -> Self {
        Self::from_parts([bytes])
    }
}

impl Buf for WireBuf {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        self.parts.front().map_or(&[], |p| p.as_ref())
    }

    fn advance(&mut self, mut cnt: usize) {
        assert!(cnt <= self.remaining, "advance past the end of a WireBuf ({cnt} > {})", self.remaining);
        self.remaining -= cnt;
        while cnt > 0 {
            let front = self.parts.front_mut().expect("remaining bytes are in parts");
            if cnt < front.len() {
                front.advance(cnt);
                return;
            }
            cnt -= front.len();
            self.parts.pop_front();
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, part) in dst.iter_mut().zip(&self.parts) {
            *slot = IoSlice::new(part);
            n += 1;
        }
        n
    }
}

/// A response body: a DoGet's messages, or whatever tonic's generated server answered.
pub enum ResponseBody {
    Tonic(tonic::body::Body),
    Messages(Pin<Box<dyn http_body::Body<Data = WireBuf, Error = Status> + Send>>),
}

impl http_body::Body for ResponseBody {
    type Data = WireBuf;
    type Error = Status;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<WireBuf>, Status>>> {
        match self.get_mut() {
            ResponseBody::Tonic(body) => Pin::new(body).poll_frame(cx).map(|f| f.map(|f| f.map(|f| f.map_data(WireBuf::from)))),
            ResponseBody::Messages(body) => body.as_mut().poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Tonic(body) => body.is_end_stream(),
            ResponseBody::Messages(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            ResponseBody::Tonic(body) => body.size_hint(),
            ResponseBody::Messages(body) => body.size_hint(),
        }
    }
}

/// Serves `service` on every connection `listener` accepts until `shutdown` completes, then
/// stops accepting, asks every connection to finish (HTTP/2 GOAWAY: running requests go on,
/// new ones are refused) and returns once all have closed.
pub async fn serve<S>(listener: TcpListener, service: S, settings: Http2Settings, shutdown: impl Future<Output = ()>) -> std::io::Result<()>
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<ResponseBody>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .initial_stream_window_size(settings.stream_window)
        .initial_connection_window_size(settings.connection_window)
        .max_frame_size(settings.max_frame_size)
        // No cap on streams per connection, as tonic's server: a client multiplexes every call
        // over one connection, follow scans and lookup streams stay open for a job's lifetime,
        // and hyper's default of 200 would make the 201st wait behind them.
        .max_concurrent_streams(None::<u32>);
    // Each connection holds a receiver; the sender tells them to close and learns when the
    // last one is gone.
    let (stop_connections, connections) = tokio::sync::watch::channel(false);
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: the listener itself is fine, but
                // retrying at once would spin while the condition lasts.
                tracing::warn!(error = %e, "could not accept a connection");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        // Small acks and lookups must not wait for Nagle's algorithm (~40 ms).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::warn!(error = %e, "could not set TCP_NODELAY on a connection");
        }
        let service = service.clone();
        let hyper_service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
            // tonic's generated server is always ready, and so is the DoGet route in front of it.
            let mut service = service.clone();
            let call: BoxFuture<'static, Result<http::Response<ResponseBody>, Infallible>> =
                Box::pin(service.call(request.map(tonic::body::Body::new)));
            call
        });
        let connection = builder.serve_connection(TokioIo::new(stream), hyper_service);
        let mut stopping = connections.clone();
        tokio::spawn(async move {
            let mut connection = pin!(connection);
            tokio::select! {
                served = connection.as_mut() => return log_connection_end(served),
                _ = stopping.wait_for(|stop| *stop) => {}
            }
            connection.as_mut().graceful_shutdown();
            log_connection_end(connection.await);
        });
    }
    drop(listener);
    drop(connections);
    let _ = stop_connections.send(true);
    stop_connections.closed().await;
    Ok(())
}

fn log_connection_end(served: hyper::Result<()>) {
    if let Err(e) = served {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_several_ranges_when_advanced_across_them_should_yield_the_remaining_bytes_in_order() {
        let mut buf =
            WireBuf::from_parts([Bytes::from_static(b"abc"), Bytes::new(), Bytes::from_static(b"defg"), Bytes::from_static(b"h")]);
        assert_eq!(buf.remaining(), 8);
        let mut slices = [IoSlice::new(&[]); 8];
        assert_eq!(buf.chunks_vectored(&mut slices), 3, "empty ranges are left out");
        buf.advance(4);
        assert_eq!(buf.chunk(), b"efg");
        let mut slices = [IoSlice::new(&[]); 1];
        assert_eq!(buf.chunks_vectored(&mut slices), 1, "no more slices than asked for");
        assert_eq!(&*slices[0], b"efg");
        assert_eq!(buf.copy_to_bytes(4), Bytes::from_static(b"efgh"));
        assert_eq!(buf.remaining(), 0);
        assert_eq!(buf.chunk(), b"");
    }

    #[test]
    #[should_panic(expected = "advance past the end")]
    fn given_a_short_buffer_when_advanced_too_far_should_panic() {
        WireBuf::from(Bytes::from_static(b"ab")).advance(3);
    }
}
