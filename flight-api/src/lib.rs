//! Strom's Arrow Flight wire contract (tickets, descriptors, actions, table metadata) and the
//! async Rust client built on `arrow-flight`.
//!
//! Anything with a Flight client can talk to Strom with the JSON documented in
//! `docs/protocol.md`; this crate is the typed Rust form of that contract.

pub mod client;
pub mod contract;
pub mod error;

pub use client::{
    AckFuture, AppendWriter, AppendWriterOptions, DeleteWriter, LogScanStream, LookupFuture, LookupOptions, Lookuper, ScanBatch, Snapshot,
    SnapshotBatch, SnapshotScanStream, StromClient, TableWriter, UpsertWriter, WriterOptions,
};
pub use contract::*;
pub use error::{Error, Result};
