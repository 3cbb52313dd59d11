//! A writer handle: the client's writer plus the schemas of the batches Java sent, so that a
//! batch of a known schema crosses the C Data Interface without one. Exporting 43 fields in
//! Java and parsing them again in Rust cost more than crossing the batch's buffers.

use std::sync::Mutex;

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use jni::sys::jlong;
use strom_flight_api::blocking::Writer;

use crate::cdata::{import_batch, import_batch_of_type};
use crate::errors::{BridgeError, BridgeResult};

/// How many schemas a writer remembers (they change only when a job's columns change; Java
/// refers to the newest ones).
const KEPT_SCHEMAS: usize = 8;

pub struct JniWriter {
    pub writer: Writer,
    /// The struct types (the batch's fields) of the schemas Java sent, by the id Java gave
    /// each, newest last. Ids rather than "the last one": Java threads may share a writer,
    /// and a batch names the schema it has, whatever another thread sent meanwhile.
    schemas: Mutex<Vec<(i32, DataType)>>,
}

impl JniWriter {
    pub fn new(writer: Writer) -> Self {
        JniWriter { writer, schemas: Mutex::new(Vec::new()) }
    }

    /// Takes the batch Java exported at `array_address`. With a schema (`schema_address`
    /// non-zero: a schema this writer has not seen) the schema is read from there and kept
    /// under `schema_id`; without one, the batch has the schema kept under `schema_id`.
    ///
    /// # Safety
    /// As [`import_batch`]; `schema_address` may be 0.
    pub unsafe fn import(&self, array_address: jlong, schema_address: jlong, schema_id: i32) -> BridgeResult<RecordBatch> {
        if schema_address != 0 {
            let batch = unsafe { import_batch(array_address, schema_address)? };
            let mut schemas = self.schemas.lock().unwrap_or_else(|e| e.into_inner());
            schemas.retain(|(id, _)| *id != schema_id);
            schemas.push((schema_id, DataType::Struct(batch.schema().fields().clone())));
            if schemas.len() > KEPT_SCHEMAS {
                schemas.remove(0);
            }
            return Ok(batch);
        }
        let data_type = {
            let schemas = self.schemas.lock().unwrap_or_else(|e| e.into_inner());
            let Some((_, data_type)) = schemas.iter().find(|(id, _)| *id == schema_id) else {
                return Err(BridgeError::Argument(format!("a batch came without a schema and with unknown schema id {schema_id}")));
            };
            data_type.clone()
        };
        unsafe { import_batch_of_type(array_address, &data_type) }
    }
}
