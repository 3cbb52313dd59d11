//! Building blocks of primary-key tables: typed row values with a stable encoding, and
//! order-preserving key encoding. The KV engine over RocksDB builds on these.

pub mod keys;
pub mod merge;
pub mod value;
