//! The objects behind writer and lookuper handles: the client's writer or lookuper plus the
//! schemas that crossed, so that a batch of a known schema crosses the C Data Interface
//! without one (schemas.rs).

use arrow::array::RecordBatch;
use jni::sys::jlong;
use strom_flight_api::blocking::Writer;

use crate::errors::BridgeResult;
use crate::schemas::ReceivedSchemas;

pub struct JniWriter {
    pub writer: Writer,
    schemas: ReceivedSchemas,
}

impl JniWriter {
    pub fn new(writer: Writer) -> Self {
        JniWriter { writer, schemas: ReceivedSchemas::default() }
    }

    /// Takes the batch Java exported ([`ReceivedSchemas::import`]).
    ///
    /// # Safety
    /// As [`crate::cdata::import_batch`]; `schema_address` may be 0.
    pub unsafe fn import(&self, array_address: jlong, schema_address: jlong, schema_id: i32) -> BridgeResult<RecordBatch> {
        unsafe { self.schemas.import(array_address, schema_address, schema_id) }
    }
}

/// A lookuper handle: the client's lookuper, the key schemas Java sent and the answer schemas
/// Rust sent.
pub struct JniLookuper {
    pub lookuper: strom_flight_api::blocking::Lookuper,
    pub keys: ReceivedSchemas,
    /// Shared with the answers' completions, which export on a client thread.
    pub answers: std::sync::Arc<crate::schemas::SentSchemas>,
}

impl JniLookuper {
    pub fn new(lookuper: strom_flight_api::blocking::Lookuper) -> Self {
        JniLookuper { lookuper, keys: ReceivedSchemas::default(), answers: Default::default() }
    }
}
