//! Starting and stopping the node: bind, serve Flight, stop gracefully (drain, fsync, close).
//! Used by the binary and by in-process tests (`RunningServer` binds `127.0.0.1:0` happily).

use crate::config::Config;
use crate::engine::Engine;
use crate::error::{Error, IoContext, Result};
use crate::flight::transport::Http2Settings;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const HTTP2_STREAM_WINDOW: u32 = 16 * 1024 * 1024;
const HTTP2_CONNECTION_WINDOW: u32 = 64 * 1024 * 1024;
const HTTP2_MAX_FRAME: u32 = 1024 * 1024;

pub struct RunningServer {
    pub addr: SocketAddr,
    pub engine: Arc<Engine>,
    shutdown: watch::Sender<bool>,
    handle: JoinHandle<Result<()>>,
}

impl RunningServer {
    /// Opens storage (recovering it), binds the listen address and starts serving.
    pub async fn start(config: Config) -> Result<Self> {
        config.validate()?;
        let listen = config.listen_addr()?;
        let engine = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || Engine::open(config))
                .await
                .map_err(|e| Error::Internal(format!("open task failed: {e}")))??
        };
        let listener = tokio::net::TcpListener::bind(listen).await.at(format!("listen address {listen}"))?;
        let addr = listener.local_addr().at("listen socket")?;
        let (shutdown, stop) = watch::channel(false);
        engine.spawn_background(stop.clone());
        let max = config.server.max_message_bytes;
        let service = crate::flight::flight_service(
            engine.clone(),
            config.server.max_inflight_write_bytes,
            max,
            max.max(256 * 1024 * 1024),
            config.server.lookup_pipeline_depth,
        );
        let grace = Duration::from_millis(config.server.shutdown_grace_ms);
        let engine2 = engine.clone();
        let handle = tokio::spawn(async move {
            let mut stop_serving = stop.clone();
            // HTTP/2 windows sized for multi-megabyte batches: with h2's 64 KiB default a
            // DoPut of one large batch stalls on a WINDOW_UPDATE round trip every 64 KiB.
            let settings = Http2Settings {
                stream_window: HTTP2_STREAM_WINDOW,
                connection_window: HTTP2_CONNECTION_WINDOW,
                max_frame_size: HTTP2_MAX_FRAME,
            };
            let serve = crate::flight::transport::serve(listener, service, settings, async move {
                let _ = stop_serving.changed().await;
            });
            let mut stop_grace = stop;
            tokio::select! {
                served = serve => served.at("Flight server")?,
                _ = async { let _ = stop_grace.changed().await; tokio::time::sleep(grace).await } => {
                    tracing::warn!(grace_ms = grace.as_millis() as u64, "requests still running after the shutdown grace period (e.g. follow scans); closing them");
                }
            }
            engine2.sync_all().await?;
            engine2.flush_kv().await?;
            tracing::info!("all logs flushed and fsynced, KV state flushed; stopped");
            Ok(())
        });
        Ok(Self { addr, engine, shutdown, handle })
    }

    /// The `grpc://host:port` endpoint clients connect to.
    pub fn endpoint(&self) -> String {
        format!("grpc://{}", self.addr)
    }

    /// Stops accepting requests, waits for running ones (up to the grace period), fsyncs.
    pub async fn shutdown(self) -> Result<()> {
        self.engine.close_readers();
        let _ = self.shutdown.send(true);
        self.handle.await.map_err(|e| Error::Internal(format!("server task failed: {e}")))?
    }
}
