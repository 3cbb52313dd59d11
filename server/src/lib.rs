//! Strom storage node: catalog, bucket logs and the Arrow Flight service.
//!
//! Module map (see `docs/architecture.md`): `flight` (the front door: parsing, validation,
//! status codes) calls `engine` (tables, appends, scans) through the `StorageEngine` trait;
//! `engine` uses `catalog` (validated, durable metadata) and `log` (segments, group commit,
//! recovery, zero-copy projection).

pub mod catalog;
pub mod config;
pub mod engine;
pub mod error;
pub mod flight;
pub mod fs;
pub mod fsutil;
pub mod kv;
pub mod log;
pub mod server;

pub use config::Config;
pub use error::{Error, Result};
pub use server::RunningServer;
