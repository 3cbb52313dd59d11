//! The client's error type: every failure names what went wrong, and server answers keep
//! their gRPC status code so callers can tell "retry" from "fix your input".

use tonic::Code;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The node answered with a gRPC status.
    #[error("{code:?}: {message}")]
    Status { code: Code, message: String },
    /// The connection could not be made or broke.
    #[error("transport error: {0}")]
    Transport(String),
    #[error("arrow error: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("json error: {0}")]
    Json(#[from] serde_json::Error),
    /// The node sent something that does not follow the contract.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The caller passed something invalid; nothing was sent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl Error {
    /// The gRPC code of a server answer, if this is one.
    pub fn code(&self) -> Option<Code> {
        match self {
            Error::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether resending the same request (with the same writer id and sequence) may succeed.
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

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        Error::Status { code: status.code(), message: status.message().to_string() }
    }
}

impl From<tonic::transport::Error> for Error {
    fn from(e: tonic::transport::Error) -> Self {
        Error::Transport(format!("{e:?}"))
    }
}

impl From<arrow_flight::error::FlightError> for Error {
    fn from(e: arrow_flight::error::FlightError) -> Self {
        use arrow_flight::error::FlightError;
        match e {
            FlightError::Arrow(e) => Error::Arrow(e),
            FlightError::Tonic(status) => Error::from(*status),
            FlightError::ProtocolError(m) | FlightError::DecodeError(m) => Error::Protocol(m),
            FlightError::NotYetImplemented(m) => Error::Protocol(format!("not implemented: {m}")),
            FlightError::ExternalError(e) => Error::Transport(e.to_string()),
        }
    }
}
