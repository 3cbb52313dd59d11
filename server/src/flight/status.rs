//! The one conversion from the node's errors to gRPC status codes.

use crate::error::Error;
use tonic::Status;

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        let msg = e.to_string();
        match e {
            Error::InvalidArgument(_) => Status::invalid_argument(msg),
            Error::NotFound(_) => Status::not_found(msg),
            Error::AlreadyExists(_) => Status::already_exists(msg),
            Error::FailedPrecondition(_) => Status::failed_precondition(msg),
            Error::ResourceExhausted(_) => Status::resource_exhausted(msg),
            Error::Unimplemented(_) => Status::unimplemented(msg),
            Error::DataLoss { .. } | Error::CrcMismatch { .. } | Error::FileTooSmall { .. } => Status::data_loss(msg),
            Error::WritesStopped { .. } | Error::ShuttingDown => Status::unavailable(msg),
            // Request input is checked where it is parsed and reported as InvalidArgument; an
            // Arrow error that reaches here is the node's own (or stored data's: DataLoss above).
            Error::Arrow(_) | Error::Io { .. } | Error::Internal(_) => Status::internal(msg),
        }
    }
}

/// A panicked or cancelled blocking task.
pub(crate) fn task_failed(e: tokio::task::JoinError) -> Status {
    Status::internal(format!("request task failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn given_every_error_kind_when_converted_should_map_to_its_contract_code() {
        let cases = [
            (Error::invalid("x"), Code::InvalidArgument),
            (Error::NotFound("x".into()), Code::NotFound),
            (Error::AlreadyExists("x".into()), Code::AlreadyExists),
            (Error::FailedPrecondition("x".into()), Code::FailedPrecondition),
            (Error::ResourceExhausted("x".into()), Code::ResourceExhausted),
            (Error::Unimplemented("x".into()), Code::Unimplemented),
            (Error::DataLoss { location: "l".into(), detail: "d".into() }, Code::DataLoss),
            (Error::CrcMismatch { location: "l".into(), stored: 1, computed: 2 }, Code::DataLoss),
            (Error::FileTooSmall { location: "l".into(), expected: 2, actual: 1 }, Code::DataLoss),
            (Error::WritesStopped { location: "l".into(), detail: "d".into() }, Code::Unavailable),
            (Error::ShuttingDown, Code::Unavailable),
            (Error::Arrow(arrow_schema::ArrowError::IpcError("stored".into())), Code::Internal),
            (Error::Internal("x".into()), Code::Internal),
        ];
        for (error, code) in cases {
            let text = error.to_string();
            let status = Status::from(error);
            assert_eq!(status.code(), code, "{text}");
            assert_eq!(status.message(), text, "the message is the error's, unchanged");
        }
    }
}
