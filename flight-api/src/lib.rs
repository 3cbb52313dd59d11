//! Strom's Arrow Flight wire contract (tickets, descriptors, actions, table metadata) and the
//! Rust clients built on `arrow-flight`: the async [`StromClient`] and the blocking facade
//! [`blocking::StromClient`] for callers without a tokio runtime (JNI, Python, plain threads).
//!
//! Anything with a Flight client can talk to Strom with the JSON documented in
//! `docs/protocol.md`; this crate is the typed Rust form of that contract. The public API
//! exposes no gRPC transport types: failures are [`Error`]s classified by [`Code`].

pub mod blocking;
pub mod client;
pub mod contract;
pub mod error;

pub use client::{
    AckFuture, AppendWriter, AppendWriterOptions, BatchDecoder, ClientOptions, DeleteWriter, LogScanStream, LookupFuture, LookupOptions,
    Lookuper, ScanBatch, Snapshot, SnapshotBatch, SnapshotScanStream, StromClient, TableWriter, UpsertWriter, WriterOptions,
};
pub use contract::*;
pub use error::{Code, Error, Result};
