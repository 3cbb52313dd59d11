//! `strom`: the node binary.

use clap::{Parser, Subcommand};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use strom_server::config::{Durability, DEFAULT_CONFIG_TOML};
use strom_server::{Config, RunningServer};

/// mimalloc instead of glibc's malloc: a lookup or a write allocates many small short-lived
/// buffers on tokio workers and RocksDB threads, where glibc's per-thread arenas showed up as
/// ~10 % of the node's CPU in profiles (`_int_malloc`, `malloc_consolidate`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "strom", version, about = "Strom: streaming storage for real-time analytics over Arrow Flight")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the storage node.
    Serve(ServeArgs),
    /// Print the commented default configuration (every key, its type, default and why).
    Config,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML configuration file (see `strom config`).
    #[arg(long, env = "STROM_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (catalog and bucket logs).
    #[arg(long, env = "STROM_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Listen address host:port; port 0 picks a free port.
    #[arg(long, env = "STROM_LISTEN")]
    listen: Option<String>,
    /// When appends are acknowledged: sync (after fdatasync) or os (after write).
    #[arg(long, env = "STROM_LOG_DURABILITY")]
    durability: Option<Durability>,
    /// Largest gRPC message accepted or sent, in bytes.
    #[arg(long, env = "STROM_MAX_MESSAGE_BYTES")]
    max_message_bytes: Option<usize>,
    /// Segment size in bytes before a new segment file starts.
    #[arg(long, env = "STROM_LOG_SEGMENT_BYTES")]
    segment_bytes: Option<u64>,
    /// Log format on stderr: text or json.
    #[arg(long, env = "STROM_LOG_FORMAT", default_value = "text")]
    log_format: String,
}

fn build_config(args: &ServeArgs) -> strom_server::Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(d) = &args.data_dir {
        config.storage.data_dir = d.clone();
    }
    if let Some(l) = &args.listen {
        config.server.listen = l.clone();
    }
    if let Some(d) = args.durability {
        config.log.durability = d;
    }
    if let Some(m) = args.max_message_bytes {
        config.server.max_message_bytes = m;
        config.server.max_inflight_write_bytes = config.server.max_inflight_write_bytes.max(m);
    }
    if let Some(s) = args.segment_bytes {
        config.log.segment_bytes = s;
    }
    config.validate()?;
    Ok(config)
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal());
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received: shutting down"),
        _ = term.recv() => tracing::info!("SIGTERM received: shutting down"),
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Command::Config => {
            print!("{DEFAULT_CONFIG_TOML}");
            return std::process::ExitCode::SUCCESS;
        }
        Command::Serve(args) => args,
    };
    init_logging(&args.log_format);
    let config = match build_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("strom: invalid configuration: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("strom").build().expect("tokio runtime");
    runtime.block_on(async move {
        let server = match RunningServer::start(config.clone()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "could not start");
                eprintln!("strom: could not start: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        tracing::info!(addr = %server.addr, data_dir = %config.storage.data_dir.display(), durability = %config.log.durability, "serving Arrow Flight");
        println!("strom: listening on {}", server.endpoint());
        let _ = std::io::stdout().flush();
        wait_for_signal().await;
        match server.shutdown().await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "shutdown failed");
                std::process::ExitCode::FAILURE
            }
        }
    })
}
