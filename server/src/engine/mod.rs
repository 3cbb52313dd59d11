//! The storage engine behind the Flight front door.
//!
//! Its API ([`api`], re-exported here) is all the front door sees: the [`StorageEngine`]
//! trait, opaque handles for writes, scans and lookups, and encoded Arrow IPC messages.
//! Everything else is private to the engine. Inside, modules call downwards only:
//!
//! ```text
//! node        Engine: StorageEngine over the modules below; background tasks; health
//! writer      the write path (log appends, primary-key writes, dynamic partitions)
//! lookup      point / prefix lookups, insert-if-not-exists
//! scan        log scans (bucket readers, follow, limit, partitions)
//! snapshot    snapshot scans of primary-key tables
//! registry    catalog, table runtimes, partition lifecycle, retention
//! partitions  partitioned tables and routing rows to partitions
//! table       one table's (or partition's) bucket logs and KV side
//! pk          primary-key tables: merge, changelog, KV apply, lookups, replay
//! conform     schema conformance (safe casts) and bucket routing
//! sequence    idempotent writers' sequence gate
//! health      background failures reported by `health`
//! api         the public types (used by every module above)
//! ```

pub mod api;
mod background;
mod conform;
mod health;
mod lookup;
mod node;
mod partitions;
mod pk;
mod registry;
mod scan;
mod sequence;
mod snapshot;
mod table;
mod writer;

pub use api::*;
pub use node::Engine;
pub use registry::AutoPartitionReport;
