//! `libstrom_jni`: the native half of Strom's Flink connector. Java calls the Rust client of
//! `strom-flight-api` in-process through the methods of
//! `io.strom.flink.client.internal.StromNative` (natives.rs); Arrow batches cross through the
//! Arrow C Data Interface without copies (cdata.rs); Rust objects live behind opaque handles
//! (handles.rs); errors and panics become typed Java exceptions (errors.rs). The design and
//! the rules for who frees what are in docs/jni-bridge.md.
//!
//! This crate depends on the client only, never on the server.

pub mod cdata;
pub mod completion;
pub mod errors;
pub mod handles;
pub mod natives;
pub mod objects;
pub mod scanner;
pub mod schemas;
pub mod shared;
