//! The contract-version handshake of `connect` against mock nodes that answer it right, with
//! another version, like a node older than the versioned handshake, or not at all; and the
//! rule that a client opened on one runtime serves threads that have none.

use futures::stream::BoxStream;
use futures::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use arrow_flight::{HandshakeRequest, HandshakeResponse};

use super::mock_tests::{batch, start, Mock};
use super::{ClientOptions, StromClient};
use crate::contract::{HandshakeInfo, CONTRACT_VERSION};
use crate::error::{Code, Error};

/// How a mock node answers the handshake.
#[derive(Debug, Clone, Default)]
pub(crate) enum HandshakeAnswer {
    /// Like a node of this contract: our version and a [`HandshakeInfo`] payload.
    #[default]
    Contract,
    /// This `protocol_version` and payload.
    Version(u64, Vec<u8>),
    /// A status instead of an answer.
    Refuse(tonic::Code, String),
}

/// Reads the client's first handshake message and answers as told; returns the
/// `protocol_version` the client sent.
pub(crate) async fn answer_handshake(
    request: Request<Streaming<HandshakeRequest>>,
    answer: &HandshakeAnswer,
) -> (Option<u64>, Result<Response<BoxStream<'static, Result<HandshakeResponse, Status>>>, Status>) {
    let sent = request.into_inner().message().await.ok().flatten().map(|r| r.protocol_version);
    let (protocol_version, payload) = match answer {
        HandshakeAnswer::Contract => {
            let info = HandshakeInfo { contract_version: CONTRACT_VERSION, server_version: "9.9.9-mock".into() };
            (CONTRACT_VERSION, serde_json::to_vec(&info).unwrap())
        }
        HandshakeAnswer::Version(version, payload) => (*version, payload.clone()),
        HandshakeAnswer::Refuse(code, message) => return (sent, Err(Status::new(*code, message.clone()))),
    };
    let response = HandshakeResponse { protocol_version, payload: payload.into() };
    (sent, Ok(Response::new(futures::stream::once(async { Ok(response) }).boxed())))
}

async fn connect_to(answer: HandshakeAnswer) -> (Mock, Result<StromClient, Error>) {
    let mock = Mock::default();
    mock.state.lock().unwrap().handshake = answer;
    let addr = start(mock.clone()).await;
    let result = StromClient::connect(&addr.to_string()).await;
    (mock, result)
}

#[tokio::test]
async fn given_node_of_this_contract_when_connecting_should_send_our_version_and_learn_the_server_version() {
    let (mock, result) = connect_to(HandshakeAnswer::Contract).await;
    let client = result.unwrap();
    assert_eq!(mock.state.lock().unwrap().handshake_versions, vec![CONTRACT_VERSION]);
    assert_eq!(client.server_version(), "9.9.9-mock");
}

#[tokio::test]
async fn given_node_of_another_contract_version_when_connecting_should_fail_with_failed_precondition_naming_both() {
    let payload = br#"{"contract_version": 2, "server_version": "2.0.0"}"#.to_vec();
    let (_, result) = connect_to(HandshakeAnswer::Version(2, payload)).await;
    let err = result.unwrap_err();
    assert!(matches!(err, Error::ContractMismatch(_)), "{err:?}");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(!err.is_retriable());
    let text = err.to_string();
    assert!(text.contains("contract version 2") && text.contains(&format!("contract version {CONTRACT_VERSION}")), "{text}");
}

#[tokio::test]
async fn given_node_older_than_the_versioned_handshake_when_connecting_should_fail_with_failed_precondition() {
    // What the node answered before contract versions existed: 0 and an empty payload.
    let (_, result) = connect_to(HandshakeAnswer::Version(0, Vec::new())).await;
    let err = result.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
    assert!(err.to_string().contains("no contract version"), "{err}");
}

#[tokio::test]
async fn given_node_refusing_our_version_when_connecting_should_keep_its_message_as_failed_precondition() {
    let refusal = "client speaks contract version 1, this node speaks contract version 2";
    let (_, result) = connect_to(HandshakeAnswer::Refuse(tonic::Code::FailedPrecondition, refusal.into())).await;
    let err = result.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
    assert!(err.to_string().contains(refusal), "the node's message is kept: {err}");
}

#[tokio::test]
async fn given_flight_server_without_handshake_when_connecting_should_fail_with_failed_precondition() {
    let (_, result) = connect_to(HandshakeAnswer::Refuse(tonic::Code::Unimplemented, "no handshake here".into())).await;
    let err = result.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
    assert!(err.to_string().contains("does not implement the Flight handshake"), "{err}");
}

#[tokio::test]
async fn given_matching_version_with_unreadable_payload_when_connecting_should_be_a_protocol_error() {
    let (_, result) = connect_to(HandshakeAnswer::Version(CONTRACT_VERSION, b"not json".to_vec())).await;
    let err = result.unwrap_err();
    assert!(matches!(err, Error::Protocol(_)), "{err:?}");
    assert_eq!(err.code(), Code::Internal);
}

#[test]
fn given_plain_thread_without_runtime_when_connecting_and_writing_should_run_everything_on_the_client_runtime() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mock = Mock::default();
    let addr = runtime.block_on(start(mock.clone()));
    let handle = runtime.handle().clone();
    let ack = std::thread::spawn(move || {
        assert!(tokio::runtime::Handle::try_current().is_err(), "a plain thread has no runtime");
        // Neither connecting nor opening a writer may need (or spawn onto) an ambient runtime;
        // a non-tokio executor polls the futures while the client's runtime does the IO.
        futures::executor::block_on(async {
            let client = StromClient::connect_on(&handle, &addr.to_string(), &ClientOptions::default()).await?;
            let mut writer = client.append_writer("d", "t", Default::default());
            let ack = writer.append(batch(&[1, 2])).await?;
            writer.close().await?;
            Ok::<_, Error>(ack)
        })
    })
    .join()
    .expect("no panic on a thread without a runtime")
    .unwrap();
    assert_eq!(ack.rows, 2);
    assert_eq!(mock.rows(), vec![1, 2]);
}

#[test]
fn given_plain_thread_when_connect_is_awaited_outside_tokio_should_be_invalid_argument_not_a_panic() {
    let err = futures::executor::block_on(StromClient::connect("grpc://127.0.0.1:1")).unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.to_string().contains("connect_on"), "the message names the way out: {err}");
}
