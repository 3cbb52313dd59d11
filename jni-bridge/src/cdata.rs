//! Arrow batches across the boundary through the Arrow C Data Interface, in both directions,
//! without copying column data: only the two small C structs (`ArrowArray`, 80 bytes;
//! `ArrowSchema`, 72 bytes) are written, the buffers are shared.
//!
//! The rules of the interface (arrow.apache.org/docs/format/CDataInterface.html) decide who
//! frees what:
//! * **The producer** fills a struct and sets its `release` callback; the buffers stay the
//!   producer's until **the consumer** calls `release` exactly once.
//! * **Moving** a struct is a bit copy after which the source is marked released
//!   (`release = NULL`); the consumer then owns the copy.
//! * The memory **of the struct itself** belongs to whoever allocated it. In both directions
//!   Java allocates both structs (`ArrowArray.allocateNew`, `ArrowSchema.allocateNew`) and
//!   frees them with `close()`; Rust only reads or writes them in place.
//!
//! This module also implements the natives of Arrow Java's C Data module
//! (`org.apache.arrow.c.jni.JniWrapper`), which would otherwise come from its own native
//! library `arrow_cdata_jni`. That library cannot serve the connector jar: relocating
//! `org.apache.arrow` renames `JniWrapper`, and the library's JNI symbols and its `JNI_OnLoad`
//! name the original classes. So `libstrom_jni` exports the same four functions the
//! connector uses under both the original and the relocated class name (docs/jni-bridge.md).

use std::ffi::c_void;

use arrow::array::{Array, RecordBatch, StructArray};
use arrow::ffi::{from_ffi, to_ffi, FFI_ArrowArray, FFI_ArrowSchema};
use jni::objects::{Global, JObject};
use jni::sys::jlong;
use jni::{jni_sig, jni_str, EnvUnowned, JavaVM};

use crate::errors::{BridgeError, BridgeResult, ThrowStromException};

/// Takes the batch Java exported into the structs at `array_address` and `schema_address`.
///
/// Ownership: the `ArrowArray` is **moved** out (Java's struct is left released, so Java's
/// `ArrowArray.close()` only frees the 80 bytes); the buffers are released when the returned
/// batch (and every slice or clone of it, e.g. one still queued in a writer) is dropped, by
/// calling Java's release callback from whatever Rust thread drops it last. The schema is
/// only read and is released by Java.
///
/// # Safety
/// The addresses must be those of live, exported structs (Java's `ArrowArray` /
/// `ArrowSchema.memoryAddress()` after `Data.exportVectorSchemaRoot`).
pub unsafe fn import_batch(array_address: jlong, schema_address: jlong) -> BridgeResult<RecordBatch> {
    if array_address == 0 || schema_address == 0 {
        return Err(BridgeError::Argument("an Arrow C Data struct address is 0".into()));
    }
    let schema = unsafe { &*(schema_address as *const FFI_ArrowSchema) };
    let array = unsafe { FFI_ArrowArray::from_raw(array_address as *mut FFI_ArrowArray) };
    let data = unsafe { from_ffi(array, schema)? };
    let struct_array = StructArray::from(data);
    if struct_array.null_count() > 0 {
        return Err(BridgeError::Argument("a batch cannot have null rows at the top level".into()));
    }
    Ok(RecordBatch::from(struct_array))
}

/// Takes the batch Java exported at `array_address` without a schema struct: the batch is a
/// struct array of `data_type` (the fields of a schema imported before). Ownership as
/// [`import_batch`].
///
/// # Safety
/// As [`import_batch`], for the array struct.
pub unsafe fn import_batch_of_type(array_address: jlong, data_type: &arrow::datatypes::DataType) -> BridgeResult<RecordBatch> {
    if array_address == 0 {
        return Err(BridgeError::Argument("the ArrowArray address is 0".into()));
    }
    let array = unsafe { FFI_ArrowArray::from_raw(array_address as *mut FFI_ArrowArray) };
    let data = unsafe { arrow::ffi::from_ffi_and_data_type(array, data_type.clone())? };
    let struct_array = StructArray::from(data);
    if struct_array.null_count() > 0 {
        return Err(BridgeError::Argument("a batch cannot have null rows at the top level".into()));
    }
    Ok(RecordBatch::from(struct_array))
}

/// Exports `batch` into the Java-allocated structs at the two addresses.
///
/// Ownership: Rust is the producer. Both structs get a `release` callback of arrow-rs that
/// drops Rust's references to the buffers; Java calls it (through
/// `JniWrapper.releaseArray/releaseSchema` below) when the imported vectors are closed, and
/// frees the structs' own memory with `close()`.
///
/// # Safety
/// The addresses must be those of Java-allocated structs that are empty or released
/// (their previous content is overwritten without being released).
pub unsafe fn export_batch(batch: RecordBatch, array_address: jlong, schema_address: jlong) -> BridgeResult<()> {
    if array_address == 0 || schema_address == 0 {
        return Err(BridgeError::Argument("an Arrow C Data struct address is 0".into()));
    }
    let data = StructArray::from(batch).into_data();
    let (array, schema) = to_ffi(&data)?;
    unsafe {
        std::ptr::write(array_address as *mut FFI_ArrowArray, array);
        std::ptr::write(schema_address as *mut FFI_ArrowSchema, schema);
    }
    Ok(())
}

/// Exports `batch` as [`export_batch`] does, its schema only when `schema_address` is given
/// (the receiver already holds it otherwise: a scan's batches mostly share one schema).
///
/// Ownership: as [`export_batch`]; without a schema address only the array is written.
///
/// # Safety
/// As [`export_batch`].
pub unsafe fn export_batch_array(batch: RecordBatch, array_address: jlong, schema_address: Option<jlong>) -> BridgeResult<()> {
    match schema_address {
        Some(schema_address) => unsafe { export_batch(batch, array_address, schema_address) },
        None => {
            if array_address == 0 {
                return Err(BridgeError::Argument("the ArrowArray address is 0".into()));
            }
            let array = FFI_ArrowArray::new(&StructArray::from(batch).into_data());
            unsafe { std::ptr::write(array_address as *mut FFI_ArrowArray, array) };
            Ok(())
        }
    }
}

/// Exports only a schema (e.g. a table's schema for Java to build vectors from).
///
/// # Safety
/// As [`export_batch`], for the schema struct.
pub unsafe fn export_schema(schema: &arrow::datatypes::Schema, schema_address: jlong) -> BridgeResult<()> {
    if schema_address == 0 {
        return Err(BridgeError::Argument("the ArrowSchema address is 0".into()));
    }
    let ffi = FFI_ArrowSchema::try_from(schema)?;
    unsafe { std::ptr::write(schema_address as *mut FFI_ArrowSchema, ffi) };
    Ok(())
}

// --- Arrow Java's JniWrapper natives -------------------------------------------------------

/// The C ABI layout of `struct ArrowArray`; arrow-rs keeps its fields private, and the
/// exporter below must set `release` and `private_data` itself.
#[repr(C)]
struct RawArrowArray {
    length: i64,
    null_count: i64,
    offset: i64,
    n_buffers: i64,
    n_children: i64,
    buffers: *mut *const c_void,
    children: *mut *mut RawArrowArray,
    dictionary: *mut RawArrowArray,
    release: Option<unsafe extern "C" fn(*mut RawArrowArray)>,
    private_data: *mut c_void,
}

/// The C ABI layout of `struct ArrowSchema`.
#[repr(C)]
struct RawArrowSchema {
    format: *const c_void,
    name: *const c_void,
    metadata: *const c_void,
    flags: i64,
    n_children: i64,
    children: *mut *mut RawArrowSchema,
    dictionary: *mut RawArrowSchema,
    release: Option<unsafe extern "C" fn(*mut RawArrowSchema)>,
    private_data: *mut c_void,
}

/// A struct Java's exporter filled: children, dictionary and the Java `PrivateData` whose
/// `close()` gives the buffers back to Java's allocator.
trait ExportedStruct: Sized {
    fn children(&mut self) -> Vec<*mut Self>;
    fn dictionary(&mut self) -> *mut Self;
    fn release_slot(&mut self) -> &mut Option<unsafe extern "C" fn(*mut Self)>;
    fn private_data_slot(&mut self) -> &mut *mut c_void;
}

macro_rules! exported_struct {
    ($raw:ty) => {
        impl ExportedStruct for $raw {
            fn children(&mut self) -> Vec<*mut Self> {
                if self.children.is_null() {
                    return Vec::new();
                }
                // SAFETY: the exporter allocated `n_children` child pointers.
                unsafe { std::slice::from_raw_parts(self.children, self.n_children as usize).to_vec() }
            }
            fn dictionary(&mut self) -> *mut Self {
                self.dictionary
            }
            fn release_slot(&mut self) -> &mut Option<unsafe extern "C" fn(*mut Self)> {
                &mut self.release
            }
            fn private_data_slot(&mut self) -> &mut *mut c_void {
                &mut self.private_data
            }
        }
    };
}
exported_struct!(RawArrowArray);
exported_struct!(RawArrowSchema);

/// What `private_data` of a Java-exported struct points to.
struct JavaPrivateData {
    private_data: Global<JObject<'static>>,
}

/// The `release` callback of Java-exported structs. It may run on any Rust thread (the one
/// that drops the last reference to the batch, often a tokio worker after the write was sent):
/// it attaches that thread to the JVM (permanently, as a daemon thread: attaching is
/// expensive, and the client's few threads do this again and again) and calls `PrivateData.close()`.
unsafe extern "C" fn release_exported<T: ExportedStruct>(base: *mut T) {
    // No panic may unwind out of an `extern "C"` fn (that aborts): catch everything.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe {
        let base = &mut *base;
        for child in base.children() {
            if let Some(release) = *(*child).release_slot() {
                release(child);
            }
        }
        let dictionary = base.dictionary();
        if !dictionary.is_null() {
            if let Some(release) = *(*dictionary).release_slot() {
                release(dictionary);
            }
        }
        let private_data = std::mem::replace(base.private_data_slot(), std::ptr::null_mut());
        if !private_data.is_null() {
            let private_data = Box::from_raw(private_data as *mut JavaPrivateData);
            close_java_private_data(*private_data);
        }
        *base.release_slot() = None;
    }));
}

fn close_java_private_data(data: JavaPrivateData) {
    let Ok(vm) = JavaVM::singleton() else { return };
    crate::completion::attach_as_daemon(&vm);
    let outcome = vm.attach_current_thread(|env| -> jni::errors::Result<()> {
        let result = env.call_method(data.private_data.as_obj(), jni_str!("close"), jni_sig!("()V"), &[]);
        if result.is_err() && env.exception_check() {
            // Nobody to report to on this thread: log it like Arrow's own library does.
            env.exception_describe();
            env.exception_clear();
        }
        // Drop the global reference while attached.
        drop(data);
        Ok(())
    });
    if let Err(e) = outcome {
        eprintln!("strom_jni: could not release a Java Arrow buffer: {e}");
    }
}

unsafe fn export_with_java_private_data<T: ExportedStruct>(
    env: &mut jni::Env<'_>,
    address: jlong,
    private_data: &JObject<'_>,
) -> BridgeResult<()> {
    if address == 0 {
        return Err(BridgeError::Argument("the struct address is 0".into()));
    }
    let global = env.new_global_ref(private_data)?;
    let boxed = Box::into_raw(Box::new(JavaPrivateData { private_data: global }));
    let base = unsafe { &mut *(address as *mut T) };
    *base.private_data_slot() = boxed as *mut c_void;
    *base.release_slot() = Some(release_exported::<T>);
    Ok(())
}

fn release_struct<T: ExportedStruct>(address: jlong) {
    if address == 0 {
        return;
    }
    let base = address as *mut T;
    // SAFETY: Java passes the address of a struct it allocated; `release` is either NULL
    // (already released or moved) or the producer's callback.
    unsafe {
        if let Some(release) = *(*base).release_slot() {
            release(base);
        }
    }
}

/// Defines one `JniWrapper` native under the original and the relocated class name.
macro_rules! jni_wrapper_native {
    ($original:ident, $relocated:ident, $body:ident, ($($arg:ident: $ty:ty),*)) => {
        #[unsafe(no_mangle)]
        pub extern "system" fn $original<'local>(env: EnvUnowned<'local>, this: JObject<'local>, $($arg: $ty),*) {
            $body(env, this, $($arg),*)
        }
        #[unsafe(no_mangle)]
        pub extern "system" fn $relocated<'local>(env: EnvUnowned<'local>, this: JObject<'local>, $($arg: $ty),*) {
            $body(env, this, $($arg),*)
        }
    };
}

fn release_schema_native(mut env: EnvUnowned<'_>, _this: JObject<'_>, address: jlong) {
    env.with_env(|_| -> BridgeResult<()> {
        release_struct::<RawArrowSchema>(address);
        Ok(())
    })
    .resolve::<ThrowStromException>()
}

fn release_array_native(mut env: EnvUnowned<'_>, _this: JObject<'_>, address: jlong) {
    env.with_env(|_| -> BridgeResult<()> {
        release_struct::<RawArrowArray>(address);
        Ok(())
    })
    .resolve::<ThrowStromException>()
}

fn export_schema_native<'local>(mut env: EnvUnowned<'local>, _this: JObject<'local>, address: jlong, data: JObject<'local>) {
    env.with_env(|env| unsafe { export_with_java_private_data::<RawArrowSchema>(env, address, &data) }).resolve::<ThrowStromException>()
}

fn export_array_native<'local>(mut env: EnvUnowned<'local>, _this: JObject<'local>, address: jlong, data: JObject<'local>) {
    env.with_env(|env| unsafe { export_with_java_private_data::<RawArrowArray>(env, address, &data) }).resolve::<ThrowStromException>()
}

jni_wrapper_native!(
    Java_org_apache_arrow_c_jni_JniWrapper_releaseSchema,
    Java_io_strom_shaded_org_apache_arrow_c_jni_JniWrapper_releaseSchema,
    release_schema_native,
    (address: jlong)
);
jni_wrapper_native!(
    Java_org_apache_arrow_c_jni_JniWrapper_releaseArray,
    Java_io_strom_shaded_org_apache_arrow_c_jni_JniWrapper_releaseArray,
    release_array_native,
    (address: jlong)
);
jni_wrapper_native!(
    Java_org_apache_arrow_c_jni_JniWrapper_exportSchema,
    Java_io_strom_shaded_org_apache_arrow_c_jni_JniWrapper_exportSchema,
    export_schema_native,
    (address: jlong, data: JObject<'local>)
);
jni_wrapper_native!(
    Java_org_apache_arrow_c_jni_JniWrapper_exportArray,
    Java_io_strom_shaded_org_apache_arrow_c_jni_JniWrapper_exportArray,
    export_array_native,
    (address: jlong, data: JObject<'local>)
);
// The stream functions (`exportArrayStream`, `getNextArrayStream`, ...) are not provided:
// the connector moves single batches. Calling them fails with UnsatisfiedLinkError.

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false), Field::new("name", DataType::Utf8, true)]));
        RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from(vec![1, 2, 3])), Arc::new(StringArray::from(vec![Some("a"), None, Some("c")]))],
        )
        .unwrap()
    }

    #[test]
    fn given_exported_batch_when_imported_should_share_buffers_and_release_once() {
        let original = batch();
        let values_ptr = original.column(0).to_data().buffers()[0].as_ptr();
        let mut array = FFI_ArrowArray::empty();
        let mut schema = FFI_ArrowSchema::empty();
        let (array_address, schema_address) = (&mut array as *mut _ as jlong, &mut schema as *mut _ as jlong);
        unsafe { export_batch(original.clone(), array_address, schema_address).unwrap() };
        assert!(!array.is_released(), "the producer set release");
        let imported = unsafe { import_batch(array_address, schema_address).unwrap() };
        assert!(array.is_released(), "importing moved the array out, leaving the source released");
        assert_eq!(imported, original);
        assert_eq!(imported.column(0).to_data().buffers()[0].as_ptr(), values_ptr, "no copy of column data");
    }

    #[test]
    fn given_null_addresses_when_crossing_should_fail_as_invalid_argument() {
        let err = unsafe { import_batch(0, 0) }.unwrap_err();
        assert!(matches!(err, BridgeError::Argument(_)), "{err}");
        assert!(unsafe { export_batch(batch(), 0, 8) }.is_err());
    }

    #[test]
    fn given_released_struct_when_released_again_should_do_nothing() {
        let mut array = FFI_ArrowArray::empty();
        release_struct::<RawArrowArray>(&mut array as *mut _ as jlong);
        assert_eq!(std::mem::size_of::<RawArrowArray>(), 80);
        assert_eq!(std::mem::size_of::<RawArrowSchema>(), 72);
    }
}
