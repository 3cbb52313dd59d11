//! Schemas that cross the C Data Interface once instead of with every batch. A writer's
//! batches share one schema, so do a lookuper's key batches and its answers; exporting 43
//! fields and parsing them again cost more than crossing a batch's buffers (docs/jni-bridge.md,
//! "The schema crosses once").
//!
//! Schemas are named by ids rather than "the last one": Java threads may share a writer or a
//! lookuper, and answers complete on other threads than the requests that asked for them, so
//! a batch always names the schema it has.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};
use jni::sys::jlong;

use crate::cdata::{export_batch_array, import_batch, import_batch_of_type};
use crate::errors::{BridgeError, BridgeResult};

/// How many schemas are remembered per direction (they change only when a job's columns or a
/// table's schema change; the newest are the ones referred to).
const KEPT_SCHEMAS: usize = 8;

/// Java → Rust: the schemas Java sent, by the id Java gave each.
#[derive(Default)]
pub struct ReceivedSchemas {
    /// `(id, struct type of the batch's fields)`, newest last.
    schemas: Mutex<Vec<(i32, DataType)>>,
}

impl ReceivedSchemas {
    /// Takes the batch Java exported at `array_address`. With a schema (`schema_address`
    /// non-zero: one Java has not sent before) the schema is read from there and kept under
    /// `schema_id`; without one, the batch has the schema kept under `schema_id`.
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

/// Rust → Java: the schemas exported, by the id Rust gave each (from 1; Java says 0 when it
/// holds none).
#[derive(Default)]
pub struct SentSchemas {
    schemas: Mutex<Vec<(i32, SchemaRef)>>,
    last_id: AtomicI32,
}

impl SentSchemas {
    /// The id of `schema`, a new one the first time it is seen.
    fn id_of(&self, schema: &SchemaRef) -> i32 {
        let mut schemas = self.schemas.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((id, _)) = schemas.iter().find(|(_, s)| std::sync::Arc::ptr_eq(s, schema) || s == schema) {
            return *id;
        }
        let id = self.last_id.fetch_add(1, Ordering::Relaxed) + 1;
        schemas.push((id, schema.clone()));
        if schemas.len() > KEPT_SCHEMAS {
            schemas.remove(0);
        }
        id
    }

    /// Exports `batch` into the structs at the two addresses, the schema only when its id is not
    /// `java_holds` (the id of a schema Java imported earlier and keeps); returns the batch's
    /// schema id, which Java needs to find the schema when the struct stays empty.
    ///
    /// # Safety
    /// As [`crate::cdata::export_batch`].
    pub unsafe fn export(&self, batch: RecordBatch, array_address: jlong, schema_address: jlong, java_holds: i32) -> BridgeResult<i32> {
        let id = self.id_of(&batch.schema());
        let schema = (id != java_holds).then_some(schema_address);
        unsafe { export_batch_array(batch, array_address, schema)? };
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int32Array;
    use std::sync::Arc;

    fn batch(columns: &[&str]) -> RecordBatch {
        RecordBatch::try_from_iter(columns.iter().map(|c| (*c, Arc::new(Int32Array::from(vec![1, 2])) as _))).unwrap()
    }

    #[test]
    fn given_equal_schemas_when_ids_are_asked_should_reuse_one_and_number_others_from_one() {
        let sent = SentSchemas::default();
        let a = batch(&["k", "v"]).schema();
        assert_eq!(sent.id_of(&a), 1);
        assert_eq!(sent.id_of(&batch(&["k", "v"]).schema()), 1, "an equal schema, another Arc");
        assert_eq!(sent.id_of(&batch(&["k", "v", "added"]).schema()), 2);
        assert_eq!(sent.id_of(&a), 1);
        for i in 0..KEPT_SCHEMAS {
            sent.id_of(&batch(&[&format!("c{i}")]).schema());
        }
        assert_eq!(sent.id_of(&a), 2 + KEPT_SCHEMAS as i32 + 1, "forgotten after {KEPT_SCHEMAS} newer ones: a new id");
    }

    #[test]
    fn given_no_schema_when_the_id_is_unknown_should_refuse_before_touching_the_array() {
        let received = ReceivedSchemas::default();
        // An address that would crash if read: the id check comes first.
        let err = unsafe { received.import(8, 0, 7) }.unwrap_err();
        assert!(err.to_string().contains("unknown schema id 7"), "{err}");
    }
}
