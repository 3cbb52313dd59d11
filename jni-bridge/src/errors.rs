//! How failures cross the boundary: every Rust error becomes a typed Java exception, and a
//! panic becomes a `StromException` with status `INTERNAL` instead of unwinding into the JVM
//! (which would abort it).
//!
//! | Rust | Java |
//! |---|---|
//! | a node or client error with code `NOT_FOUND` | `StromNotFoundException` |
//! | ... `INVALID_ARGUMENT` | `StromInvalidArgumentException` |
//! | ... `ALREADY_EXISTS` | `StromAlreadyExistsException` |
//! | ... `FAILED_PRECONDITION` | `StromFailedPreconditionException` |
//! | ... `DATA_LOSS` | `StromDataLossException` |
//! | ... `UNAVAILABLE` (node down, connection broke) | `StromUnavailableException` |
//! | ... any other code | `StromException` |
//! | a closed handle, or a client object closed under a running call | `IllegalStateException` |
//! | a bad argument from Java (malformed JSON options, a null array address) | `StromInvalidArgumentException` |
//! | a panic | `StromException` with status `INTERNAL` |
//!
//! Every `Strom*Exception` is built with `(String status, String message)`: the canonical gRPC
//! name (`NOT_FOUND`) and the node's message (which names the table, column or option).

use std::any::Any;

use jni::errors::ErrorPolicy;
use jni::objects::{JString, JValue};
use jni::{jni_sig, Env};
use strom_flight_api::{Code, Error as ClientError};

use crate::handles::HandleError;

/// A failure inside a native method, before it is thrown as a Java exception.
#[derive(Debug)]
pub enum BridgeError {
    /// The Rust client failed (the node's answer, a transport failure, ...).
    Client(ClientError),
    /// A handle that is closed or of the wrong kind.
    Handle(HandleError),
    /// Java passed something unusable; nothing was sent.
    Argument(String),
    /// A JNI call failed; if it left a Java exception pending, that one propagates as is.
    Jni(jni::errors::Error),
}

impl std::fmt::Display for BridgeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BridgeError::Client(e) => write!(f, "{e}"),
            BridgeError::Handle(e) => write!(f, "{e}"),
            BridgeError::Argument(m) => write!(f, "invalid argument: {m}"),
            BridgeError::Jni(e) => write!(f, "JNI call failed: {e}"),
        }
    }
}

impl std::error::Error for BridgeError {}

impl From<ClientError> for BridgeError {
    fn from(e: ClientError) -> Self {
        BridgeError::Client(e)
    }
}

impl From<HandleError> for BridgeError {
    fn from(e: HandleError) -> Self {
        BridgeError::Handle(e)
    }
}

impl From<jni::errors::Error> for BridgeError {
    fn from(e: jni::errors::Error) -> Self {
        BridgeError::Jni(e)
    }
}

impl From<arrow::error::ArrowError> for BridgeError {
    fn from(e: arrow::error::ArrowError) -> Self {
        BridgeError::Argument(format!("Arrow C Data: {e}"))
    }
}

impl From<serde_json::Error> for BridgeError {
    fn from(e: serde_json::Error) -> Self {
        BridgeError::Argument(format!("JSON: {e}"))
    }
}

pub type BridgeResult<T> = Result<T, BridgeError>;

/// The Java exception a failure becomes: its class (JNI binary name), the status string its
/// constructor takes (`None`: a plain JDK exception with only a message) and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JavaException {
    pub class: &'static str,
    pub status: Option<&'static str>,
    pub message: String,
}

pub const STROM_EXCEPTION: &str = "io/strom/flink/client/StromException";
const ILLEGAL_STATE: &str = "java/lang/IllegalStateException";

/// The exception class for a status code.
pub fn class_for_code(code: Code) -> &'static str {
    match code {
        Code::NotFound => "io/strom/flink/client/StromNotFoundException",
        Code::InvalidArgument => "io/strom/flink/client/StromInvalidArgumentException",
        Code::AlreadyExists => "io/strom/flink/client/StromAlreadyExistsException",
        Code::FailedPrecondition => "io/strom/flink/client/StromFailedPreconditionException",
        Code::DataLoss => "io/strom/flink/client/StromDataLossException",
        Code::Unavailable => "io/strom/flink/client/StromUnavailableException",
        _ => STROM_EXCEPTION,
    }
}

impl BridgeError {
    /// What Java sees. `None` for a JNI failure that already left a Java exception pending.
    pub fn to_java(&self) -> JavaException {
        match self {
            // A closed writer/lookuper can also be reported by the client itself when close()
            // raced with this call: to Java that is the same use-after-close.
            BridgeError::Client(ClientError::Closed(message)) => {
                JavaException { class: ILLEGAL_STATE, status: None, message: format!("closed: {message}") }
            }
            BridgeError::Client(e) => {
                let code = e.code();
                JavaException { class: class_for_code(code), status: Some(code.as_str()), message: node_message(e) }
            }
            BridgeError::Handle(e) => JavaException { class: ILLEGAL_STATE, status: None, message: e.to_string() },
            BridgeError::Argument(m) => JavaException {
                class: class_for_code(Code::InvalidArgument),
                status: Some(Code::InvalidArgument.as_str()),
                message: m.clone(),
            },
            BridgeError::Jni(e) => {
                JavaException { class: STROM_EXCEPTION, status: Some(Code::Internal.as_str()), message: format!("JNI call failed: {e}") }
            }
        }
    }
}

/// The message without the `CODE: ` prefix the client's Display puts before a node's
/// message (Java shows the status separately).
fn node_message(e: &ClientError) -> String {
    match e {
        ClientError::Status { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// The exception a panic becomes.
pub fn panic_exception(payload: &(dyn Any + Send)) -> JavaException {
    let detail = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string());
    JavaException {
        class: STROM_EXCEPTION,
        status: Some(Code::Internal.as_str()),
        message: format!("panic in the Strom native library (a bug; please report it): {detail}"),
    }
}

/// Throws `exception` in `env` unless an exception is already pending (that one is the
/// cause and must not be replaced).
pub fn throw(env: &mut Env<'_>, exception: &JavaException) -> jni::errors::Result<()> {
    if env.exception_check() {
        return Ok(());
    }
    let class = jni::strings::JNIString::new(exception.class);
    match exception.status {
        None => {
            let message = jni::strings::JNIString::new(&exception.message);
            // `throw_new` returns Err(JavaException) once thrown: that is the success case.
            let _ = env.throw_new(class, message);
        }
        Some(status) => {
            let status = JString::new(env, status)?;
            let message = JString::new(env, &exception.message)?;
            let throwable = env.new_object(
                class,
                jni_sig!("(Ljava/lang/String;Ljava/lang/String;)V"),
                &[JValue::Object(&status), JValue::Object(&message)],
            )?;
            let throwable = env.cast_local::<jni::objects::JThrowable>(throwable)?;
            let _ = env.throw(throwable);
        }
    }
    Ok(())
}

/// The error policy of every native method: typed exceptions for errors, `StromException`
/// (`INTERNAL`) for panics, and the return type's default value (0, null) in both cases.
pub struct ThrowStromException;

impl<T: Default> ErrorPolicy<T, BridgeError> for ThrowStromException {
    type Captures<'unowned_env_local: 'native_method, 'native_method> = ();

    fn on_error<'unowned_env_local: 'native_method, 'native_method>(
        env: &mut Env<'unowned_env_local>,
        _captures: &mut (),
        err: BridgeError,
    ) -> jni::errors::Result<T> {
        throw(env, &err.to_java())?;
        Ok(T::default())
    }

    fn on_panic<'unowned_env_local: 'native_method, 'native_method>(
        env: &mut Env<'unowned_env_local>,
        _captures: &mut (),
        payload: Box<dyn Any + Send + 'static>,
    ) -> jni::errors::Result<T> {
        let exception = panic_exception(payload.as_ref());
        // Dropping a payload can itself panic; leak it rather than risk an unwind into Java.
        std::mem::forget(payload);
        throw(env, &exception)?;
        Ok(T::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_each_node_code_when_mapped_should_pick_the_documented_subclass_and_keep_the_message() {
        let cases = [
            (Code::NotFound, "StromNotFoundException"),
            (Code::InvalidArgument, "StromInvalidArgumentException"),
            (Code::AlreadyExists, "StromAlreadyExistsException"),
            (Code::FailedPrecondition, "StromFailedPreconditionException"),
            (Code::DataLoss, "StromDataLossException"),
            (Code::Unavailable, "StromUnavailableException"),
            (Code::ResourceExhausted, "StromException"),
            (Code::Internal, "StromException"),
        ];
        for (code, class) in cases {
            let err = BridgeError::Client(ClientError::Status { code, message: "table shop.orders does not exist".into() });
            let java = err.to_java();
            assert_eq!(java.class, format!("io/strom/flink/client/{class}"), "{code}");
            assert_eq!(java.status, Some(code.as_str()));
            assert_eq!(java.message, "table shop.orders does not exist", "the node's message without the code prefix");
        }
    }

    #[test]
    fn given_client_side_failures_when_mapped_should_use_their_codes() {
        let transport = BridgeError::Client(ClientError::Transport("connect to 127.0.0.1:1: Connection refused".into())).to_java();
        assert_eq!((transport.class, transport.status), (class_for_code(Code::Unavailable), Some("UNAVAILABLE")));
        assert!(transport.message.contains("Connection refused"), "{}", transport.message);
        let argument = BridgeError::Argument("array address is 0".into()).to_java();
        assert_eq!(argument.status, Some("INVALID_ARGUMENT"));
        assert!(argument.class.ends_with("StromInvalidArgumentException"));
    }

    #[test]
    fn given_closed_handles_when_mapped_should_be_illegal_state() {
        let handle = BridgeError::Handle(HandleError::Closed { kind: crate::handles::HandleKind::Writer, handle: 7 }).to_java();
        assert_eq!((handle.class, handle.status), ("java/lang/IllegalStateException", None));
        assert!(handle.message.contains("writer"), "{}", handle.message);
        let closed = BridgeError::Client(ClientError::Closed("the writer is closed".into())).to_java();
        assert_eq!(closed.class, "java/lang/IllegalStateException");
    }

    #[test]
    fn given_panic_payloads_when_mapped_should_be_internal_with_the_panic_text() {
        let from_str = panic_exception(&"index out of bounds");
        assert_eq!((from_str.class, from_str.status), (STROM_EXCEPTION, Some("INTERNAL")));
        assert!(from_str.message.contains("index out of bounds"));
        let from_string = panic_exception(&String::from("formatted 42"));
        assert!(from_string.message.contains("formatted 42"));
        assert!(panic_exception(&42_u8).message.contains("without a message"));
    }
}
