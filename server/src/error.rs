//! One error enum for the node. The engine never sees gRPC types: it returns these errors and
//! the Flight layer turns them into status codes (`flight/status.rs`, the only conversion).
//! Messages name the table, column, option or range at fault.

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad request: malformed JSON, unknown command, schema mismatch, bad option, null key.
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is valid but the state forbids it (sequence gap, wrong table kind, ...).
    #[error("{0}")]
    FailedPrecondition(String),
    /// A size or memory limit.
    #[error("{0}")]
    ResourceExhausted(String),
    /// A feature of the contract this node version does not serve yet.
    #[error("{0}")]
    Unimplemented(String),
    /// Stored data failed its checksum or framing: the range is named, nothing is dropped.
    #[error("data loss in {location}: {detail}")]
    DataLoss { location: String, detail: String },
    #[error("CRC mismatch in {location}: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { location: String, stored: u32, computed: u32 },
    #[error("{location} is too small: expected at least {expected} bytes, found {actual}")]
    FileTooSmall { location: String, expected: u64, actual: u64 },
    /// Writes are stopped after an fsync failure: the page cache can no longer be trusted.
    #[error("writes stopped on {location} after an fsync failure: {detail}")]
    WritesStopped { location: String, detail: String },
    #[error("I/O error on {location}: {source}")]
    Io { location: String, source: std::io::Error },
    /// An Arrow error the request did not cause (a request's bad input is mapped to
    /// `InvalidArgument` where it is checked; stored data that does not decode is `DataLoss`).
    #[error("arrow error: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("shutting down")]
    ShuttingDown,
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }

    pub fn io(location: impl std::fmt::Display, source: std::io::Error) -> Self {
        Error::Io { location: location.to_string(), source }
    }

    /// The same error (kind and status) with `context` in front of a request error's message.
    pub fn with_context(self, context: &str) -> Self {
        match self {
            Error::InvalidArgument(m) => Error::InvalidArgument(format!("{context}: {m}")),
            Error::NotFound(m) => Error::NotFound(format!("{context}: {m}")),
            Error::AlreadyExists(m) => Error::AlreadyExists(format!("{context}: {m}")),
            Error::FailedPrecondition(m) => Error::FailedPrecondition(format!("{context}: {m}")),
            Error::ResourceExhausted(m) => Error::ResourceExhausted(format!("{context}: {m}")),
            other => other,
        }
    }
}

/// Adds the location (a path, usually) to an `std::io::Result`.
pub trait IoContext<T> {
    fn at(self, location: impl std::fmt::Display) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, location: impl std::fmt::Display) -> Result<T> {
        self.map_err(|e| Error::io(location, e))
    }
}
