//! Building blocks of primary-key tables: typed row values with a stable encoding,
//! order-preserving keys, merge engines, and the RocksDB store they are applied to.

pub mod keys;
pub mod merge;
pub mod row_bytes;
pub mod store;
pub mod value;
