//! The client's error type. Every failure carries a [`Code`] (the gRPC status codes, owned by
//! this crate so that no transport type leaks into the API) and a message; answers of the node
//! keep the node's code and message, so callers can tell "retry" from "fix your input".
//!
//! The conversions from tonic and arrow-flight errors are crate-private functions rather than
//! `From` impls: a public `impl From<tonic::Status> for Error` would put tonic into the API.

use std::fmt;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an [`Error`] is: the gRPC status codes except `OK`, with their
/// canonical meaning. Embedders (the JNI bridge, Python) map these to their own exception
/// types; [`Code::as_str`] is the canonical name and [`Code::grpc_value`] the wire number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// The operation was cancelled (by the caller, or because the client shut down).
    Cancelled,
    /// An error the node could not classify.
    Unknown,
    /// The request is malformed or refers to something that does not fit (bad JSON, schema
    /// mismatch, null key, bad option). Fix the input; retrying does not help.
    InvalidArgument,
    DeadlineExceeded,
    /// The database, table or partition does not exist.
    NotFound,
    /// `create_*` of a name that exists.
    AlreadyExists,
    PermissionDenied,
    /// A size or memory limit was hit.
    ResourceExhausted,
    /// The system is not in the state the request needs (sequence gap, wrong table kind,
    /// incompatible contract version).
    FailedPrecondition,
    Aborted,
    OutOfRange,
    /// The node does not serve this part of the contract (yet).
    Unimplemented,
    /// A bug or a broken promise on either side: the node sent something that does not
    /// follow the contract, or the client failed internally.
    Internal,
    /// The node cannot be reached, or it stopped serving (shutdown, writes stopped).
    Unavailable,
    /// Stored data failed its checksum.
    DataLoss,
    Unauthenticated,
}

impl Code {
    /// Every code, in gRPC number order (for embedders that build lookup tables).
    pub const ALL: [Code; 16] = [
        Code::Cancelled,
        Code::Unknown,
        Code::InvalidArgument,
        Code::DeadlineExceeded,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::ResourceExhausted,
        Code::FailedPrecondition,
        Code::Aborted,
        Code::OutOfRange,
        Code::Unimplemented,
        Code::Internal,
        Code::Unavailable,
        Code::DataLoss,
        Code::Unauthenticated,
    ];

    /// The canonical gRPC name, e.g. `NOT_FOUND` (what `docs/protocol.md` uses).
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Cancelled => "CANCELLED",
            Code::Unknown => "UNKNOWN",
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::Aborted => "ABORTED",
            Code::OutOfRange => "OUT_OF_RANGE",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Internal => "INTERNAL",
            Code::Unavailable => "UNAVAILABLE",
            Code::DataLoss => "DATA_LOSS",
            Code::Unauthenticated => "UNAUTHENTICATED",
        }
    }

    /// The number gRPC uses for this code on the wire (1..=16).
    pub fn grpc_value(self) -> i32 {
        match self {
            Code::Cancelled => 1,
            Code::Unknown => 2,
            Code::InvalidArgument => 3,
            Code::DeadlineExceeded => 4,
            Code::NotFound => 5,
            Code::AlreadyExists => 6,
            Code::PermissionDenied => 7,
            Code::ResourceExhausted => 8,
            Code::FailedPrecondition => 9,
            Code::Aborted => 10,
            Code::OutOfRange => 11,
            Code::Unimplemented => 12,
            Code::Internal => 13,
            Code::Unavailable => 14,
            Code::DataLoss => 15,
            Code::Unauthenticated => 16,
        }
    }

    /// The code of a gRPC status. `OK` never reaches an error (tonic only builds a failed
    /// status from it when a server misbehaves), so it counts as `Unknown`.
    pub(crate) fn from_tonic(code: tonic::Code) -> Code {
        match code {
            tonic::Code::Ok | tonic::Code::Unknown => Code::Unknown,
            tonic::Code::Cancelled => Code::Cancelled,
            tonic::Code::InvalidArgument => Code::InvalidArgument,
            tonic::Code::DeadlineExceeded => Code::DeadlineExceeded,
            tonic::Code::NotFound => Code::NotFound,
            tonic::Code::AlreadyExists => Code::AlreadyExists,
            tonic::Code::PermissionDenied => Code::PermissionDenied,
            tonic::Code::ResourceExhausted => Code::ResourceExhausted,
            tonic::Code::FailedPrecondition => Code::FailedPrecondition,
            tonic::Code::Aborted => Code::Aborted,
            tonic::Code::OutOfRange => Code::OutOfRange,
            tonic::Code::Unimplemented => Code::Unimplemented,
            tonic::Code::Internal => Code::Internal,
            tonic::Code::Unavailable => Code::Unavailable,
            tonic::Code::DataLoss => Code::DataLoss,
            tonic::Code::Unauthenticated => Code::Unauthenticated,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed client call. [`Error::code`] classifies every variant; [`Error::is_retriable`]
/// says whether sending the same request again may succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The node answered with a gRPC status; `message` is the node's, naming what is at fault.
    #[error("{code}: {message}")]
    Status { code: Code, message: String },
    /// The connection could not be made or broke (code `UNAVAILABLE`).
    #[error("transport error: {0}")]
    Transport(String),
    /// Encoding or decoding Arrow data failed (code `INTERNAL`).
    #[error("arrow error: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// Encoding a request or decoding an answer as JSON failed (code `INTERNAL`).
    #[error("json error: {0}")]
    Json(#[from] serde_json::Error),
    /// The node sent something that does not follow the contract (code `INTERNAL`).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The caller passed something invalid; nothing was sent (code `INVALID_ARGUMENT`).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The node speaks another contract version than this client (code `FAILED_PRECONDITION`):
    /// upgrade whichever side is older.
    #[error("contract version mismatch: {0}")]
    ContractMismatch(String),
    /// The writer, lookuper or client was closed, or the runtime it runs on shut down, before
    /// the call could finish (code `CANCELLED`; not retriable on the same handle).
    #[error("closed: {0}")]
    Closed(String),
    /// A task of the client itself failed (a panic, reported instead of unwinding into the
    /// caller, which may be a JNI frame). Code `INTERNAL`.
    #[error("client task failed: {0}")]
    TaskFailed(String),
}

impl Error {
    /// The code of this failure; every variant has one (see each variant's documentation).
    pub fn code(&self) -> Code {
        match self {
            Error::Status { code, .. } => *code,
            Error::Transport(_) => Code::Unavailable,
            Error::Arrow(_) | Error::Json(_) | Error::Protocol(_) | Error::TaskFailed(_) => Code::Internal,
            Error::InvalidArgument(_) => Code::InvalidArgument,
            Error::ContractMismatch(_) => Code::FailedPrecondition,
            Error::Closed(_) => Code::Cancelled,
        }
    }

    /// Whether resending the same request (with the same writer id and sequence) may succeed:
    /// transport failures and the node's transient codes (`UNAVAILABLE`, `UNKNOWN`,
    /// `CANCELLED`, `DEADLINE_EXCEEDED`, `ABORTED`). A closed handle is not retriable although
    /// its code is `CANCELLED`: it will stay closed.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Transport(_) => true,
            Error::Status { code, .. } => {
                matches!(code, Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded | Code::Aborted)
            }
            _ => false,
        }
    }
}

/// A node's gRPC status as an [`Error`], keeping its code and message.
pub(crate) fn from_status(status: tonic::Status) -> Error {
    Error::Status { code: Code::from_tonic(status.code()), message: status.message().to_string() }
}

/// A tonic transport failure (connect, broken connection) as an [`Error`], after `context`
/// (which names the endpoint).
pub(crate) fn from_transport(context: &str, error: tonic::transport::Error) -> Error {
    // The Debug form names the underlying cause (e.g. "Connection refused"); Display only
    // says "transport error".
    Error::Transport(format!("{context}: {error:?}"))
}

/// An arrow-flight encode/decode failure as an [`Error`].
pub(crate) fn from_flight(error: arrow_flight::error::FlightError) -> Error {
    use arrow_flight::error::FlightError;
    match error {
        FlightError::Arrow(e) => Error::Arrow(e),
        FlightError::Tonic(status) => from_status(*status),
        FlightError::ProtocolError(m) | FlightError::DecodeError(m) => Error::Protocol(m),
        FlightError::NotYetImplemented(m) => Error::Protocol(format!("not implemented: {m}")),
        FlightError::ExternalError(e) => Error::Transport(e.to_string()),
    }
}

/// A copy of an error for the second and later waiters of one failure (errors hold
/// non-clonable sources, but the code and message are what callers act on).
pub(crate) fn duplicate_error(e: &Error) -> Error {
    match e {
        Error::Status { code, message } => Error::Status { code: *code, message: message.clone() },
        Error::Transport(m) => Error::Transport(m.clone()),
        Error::Protocol(m) => Error::Protocol(m.clone()),
        Error::InvalidArgument(m) => Error::InvalidArgument(m.clone()),
        Error::ContractMismatch(m) => Error::ContractMismatch(m.clone()),
        Error::Closed(m) => Error::Closed(m.clone()),
        Error::TaskFailed(m) => Error::TaskFailed(m.clone()),
        Error::Arrow(e) => Error::Arrow(arrow_schema::ArrowError::ExternalError(e.to_string().into())),
        Error::Json(e) => Error::Protocol(format!("json error: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_every_tonic_code_when_mapped_should_keep_its_grpc_number() {
        for code in Code::ALL {
            let tonic_code = tonic::Code::from_i32(code.grpc_value());
            assert_eq!(Code::from_tonic(tonic_code), code, "{tonic_code:?}");
            assert_eq!(format!("{:?}", tonic_code).to_lowercase(), format!("{code:?}").to_lowercase());
        }
        assert_eq!(Code::from_tonic(tonic::Code::Ok), Code::Unknown, "OK is no error code");
    }

    #[test]
    fn given_node_status_when_converted_should_keep_code_and_message() {
        let err = from_status(tonic::Status::not_found("table shop.orders does not exist"));
        assert_eq!(err.code(), Code::NotFound);
        assert_eq!(err.to_string(), "NOT_FOUND: table shop.orders does not exist");
        assert!(!err.is_retriable());
        let err = from_status(tonic::Status::unavailable("node is shutting down"));
        assert_eq!((err.code(), err.is_retriable()), (Code::Unavailable, true));
    }

    #[test]
    fn given_client_side_errors_when_classified_should_have_the_documented_codes() {
        let cases: Vec<(Error, Code, bool)> = vec![
            (Error::Transport("connection refused".into()), Code::Unavailable, true),
            (Error::InvalidArgument("bad endpoint".into()), Code::InvalidArgument, false),
            (Error::Protocol("no app_metadata".into()), Code::Internal, false),
            (Error::Arrow(arrow_schema::ArrowError::ComputeError("x".into())), Code::Internal, false),
            (Error::ContractMismatch("node speaks 2".into()), Code::FailedPrecondition, false),
            (Error::Closed("writer closed".into()), Code::Cancelled, false),
            (Error::TaskFailed("panicked".into()), Code::Internal, false),
        ];
        for (err, code, retriable) in cases {
            assert_eq!(err.code(), code, "{err}");
            assert_eq!(err.is_retriable(), retriable, "{err}");
            let copy = duplicate_error(&err);
            assert_eq!(copy.code(), code, "a duplicate keeps the code");
            let text = err.to_string();
            let detail = &text[text.find(": ").expect("kind: detail") + 2..];
            assert!(copy.to_string().contains(detail), "a duplicate keeps the message: {copy} vs {err}");
        }
    }

    #[test]
    fn given_flight_errors_when_converted_should_map_tonic_status_and_protocol_errors() {
        use arrow_flight::error::FlightError;
        let status = FlightError::Tonic(Box::new(tonic::Status::data_loss("crc mismatch in bucket 2")));
        let err = from_flight(status);
        assert_eq!(err.code(), Code::DataLoss);
        assert!(err.to_string().contains("crc mismatch in bucket 2"), "{err}");
        assert_eq!(from_flight(FlightError::DecodeError("truncated".into())).code(), Code::Internal);
    }

    #[test]
    fn given_node_transient_codes_when_checked_should_be_retriable_and_input_errors_not() {
        for code in [Code::Unavailable, Code::Unknown, Code::Cancelled, Code::DeadlineExceeded, Code::Aborted] {
            assert!(Error::Status { code, message: String::new() }.is_retriable(), "{code}");
        }
        for code in [Code::InvalidArgument, Code::NotFound, Code::AlreadyExists, Code::FailedPrecondition, Code::ResourceExhausted] {
            assert!(!Error::Status { code, message: String::new() }.is_retriable(), "{code}");
        }
    }
}
