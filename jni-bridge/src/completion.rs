//! Completing a Java future from a Rust thread.
//!
//! Async writes and lookups hand Rust an `io.strom.flink.client.internal.NativeCompletion`
//! (a `CompletableFuture<String>`). The result arrives on a `strom-client-N` thread of the
//! client's runtime, which is attached to the JVM (permanently and as a daemon thread: the same
//! few threads complete every future, and they must not keep the JVM from exiting) and calls `succeed(String)` or `fail(String status, String message)` on it.
//!
//! The exception is built by Java, not here: on a thread without a native frame, JNI's
//! `FindClass` searches the system class loader, which does not see the connector's classes
//! when Flink loads the connector in a user-code class loader. Calling a method on the
//! completion object resolves through the object's own class instead.

use jni::objects::{Global, JObject, JString, JValue};
use jni::{jni_sig, jni_str, Env, JavaVM};

use crate::errors::{BridgeError, BridgeResult};

/// A Java `NativeCompletion` to complete exactly once, from any thread.
pub struct JavaCompletion {
    target: Global<JObject<'static>>,
}

impl JavaCompletion {
    pub fn new(env: &mut Env<'_>, target: &JObject<'_>) -> BridgeResult<Self> {
        if target.is_null() {
            return Err(BridgeError::Argument("the completion is null".into()));
        }
        Ok(JavaCompletion { target: env.new_global_ref(target)? })
    }

    /// Completes with `value` (JSON, or `None` for a result passed through C Data structs).
    pub fn succeed(self, value: Option<String>) {
        self.call(|env, target| {
            let value = match value {
                Some(value) => JObject::from(JString::new(env, value)?),
                None => JObject::null(),
            };
            env.call_method(target, jni_str!("succeed"), jni_sig!("(Ljava/lang/String;)V"), &[JValue::Object(&value)])?;
            Ok(())
        });
    }

    /// Completes exceptionally with the exception `error` maps to.
    pub fn fail(self, error: &BridgeError) {
        let exception = error.to_java();
        self.call(|env, target| {
            let status = match exception.status {
                Some(status) => JObject::from(JString::new(env, status)?),
                // No status: Java raises IllegalStateException (a closed handle).
                None => JObject::null(),
            };
            let message = JString::new(env, &exception.message)?;
            env.call_method(
                target,
                jni_str!("fail"),
                jni_sig!("(Ljava/lang/String;Ljava/lang/String;)V"),
                &[JValue::Object(&status), JValue::Object(&message)],
            )?;
            Ok(())
        });
    }

    fn call(self, body: impl FnOnce(&mut Env<'_>, &JObject<'static>) -> jni::errors::Result<()>) {
        let Ok(vm) = JavaVM::singleton() else {
            // Only reachable if no native method ever ran, which cannot be: one created us.
            return;
        };
        let target = self.target;
        attach_as_daemon(&vm);
        let outcome = vm.attach_current_thread(|env| -> jni::errors::Result<()> {
            let result = body(env, target.as_obj());
            if result.is_err() && env.exception_check() {
                // The callback threw (it should not: `succeed`/`fail` only complete a
                // future). There is no caller to rethrow to on this thread.
                env.exception_describe();
                env.exception_clear();
            }
            // Delete the global reference while attached.
            drop(target);
            result
        });
        if let Err(e) = outcome {
            eprintln!("strom_jni: could not complete a Java future: {e}");
        }
    }
}

/// Attaches the calling thread to the JVM as a **daemon** thread, once per thread, so that
/// a later `attach_current_thread` finds it attached and reuses that attachment (jni 0.22
/// checks `GetEnv` first). The JVM waits for its non-daemon threads before it exits, and the
/// client's runtime threads that complete futures and release exported batches live as long
/// as a connection: attached the default way (non-daemon), they kept a plain Java `main` that
/// used the bridge from ever exiting. jni 0.22 has no daemon option, hence the raw call.
pub(crate) fn attach_as_daemon(vm: &JavaVM) {
    use std::cell::Cell;
    thread_local! {
        static ATTACHED: Cell<bool> = const { Cell::new(false) };
    }
    ATTACHED.with(|attached| {
        if attached.get() {
            return;
        }
        let raw = vm.get_raw();
        let mut env: *mut std::ffi::c_void = std::ptr::null_mut();
        // SAFETY: `raw` is the live JavaVM of this process (JavaVM::singleton); JNI 1.4's
        // AttachCurrentThreadAsDaemon is part of every JVM this runs in (Java 17). A thread
        // that is already attached gets its existing JNIEnv back.
        let status = unsafe { ((*(*raw)).v1_4.AttachCurrentThreadAsDaemon)(raw, &mut env, std::ptr::null_mut()) };
        attached.set(status == jni::sys::JNI_OK);
    });
}
