//! DoGet answered without copying batch bodies in user space.
//!
//! tonic encodes every response message with prost into one buffer, which copies each
//! FlightData body (the stored Arrow buffers, megabytes per message) before h2 writes it — a
//! profile of full-width scans showed that copy, and the fresh pages the growing buffers fault
//! in, at a fifth of the node's CPU (docs/benchmarks.md, "Scans at wire speed"). This wrapper
//! serves the DoGet route itself: each FlightData goes out as two HTTP/2 body chunks, a small
//! one with the gRPC length prefix and the protobuf fields before the body (header, app
//! metadata, the body's tag and length), and the body itself as the `Bytes` the engine returned
//! — a slice of the mapped segment for a verbatim batch. h2 writes chunks above 256 bytes with
//! vectored writes without copying them, so the stored bytes reach the socket with one copy,
//! the kernel's. Every other route goes to tonic's generated `FlightServiceServer` unchanged.
//!
//! The bytes on the wire are the same as tonic's: prost writes fields in field-number order and
//! `data_body` (field 1000) comes last, so the prefix + body is what `FlightData::encode` gives.

use super::doget::{self, GetMessage, GetStream};
use super::served::ServedStats;
use super::transport::{ResponseBody, WireBuf};
use crate::engine::StorageEngine;
use arrow_flight::Ticket;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::Stream;
use http::{HeaderMap, HeaderValue};
use http_body::Frame;
use http_body_util::BodyExt;
use prost::Message;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::Status;
use tower_service::Service;

/// The HTTP/2 path of DoGet.
const DO_GET_PATH: &str = "/arrow.flight.protocol.FlightService/DoGet";
/// Protobuf key of `FlightData.data_body`: field 1000, length-delimited.
const DATA_BODY_KEY: u64 = (1000 << 3) | 2;

/// Serves DoGet with [`FlightDataBody`]; every other request goes to `inner`.
#[derive(Clone)]
pub struct ZeroCopyDoGet<S> {
    inner: S,
    engine: Arc<dyn StorageEngine>,
    served: Arc<ServedStats>,
    /// Largest ticket message accepted (the server's decoding limit).
    max_decoding_message_size: usize,
    /// Largest message sent (the server's encoding limit): a larger one ends the stream with
    /// RESOURCE_EXHAUSTED, as tonic would.
    max_encoding_message_size: usize,
}

impl<S> ZeroCopyDoGet<S> {
    pub fn new(
        inner: S,
        engine: Arc<dyn StorageEngine>,
        served: Arc<ServedStats>,
        max_decoding_message_size: usize,
        max_encoding_message_size: usize,
    ) -> Self {
        Self { inner, engine, served, max_decoding_message_size, max_encoding_message_size }
    }
}

impl<S: NamedService> NamedService for ZeroCopyDoGet<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for ZeroCopyDoGet<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<ResponseBody>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<http::Response<ResponseBody>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if request.uri().path() != DO_GET_PATH {
            let answered = self.inner.call(request);
            return Box::pin(async move { answered.await.map(|response| response.map(ResponseBody::Tonic)) });
        }
        let (engine, served) = (self.engine.clone(), self.served.clone());
        let (max_in, max_out) = (self.max_decoding_message_size, self.max_encoding_message_size);
        Box::pin(async move {
            let ticket = match read_ticket(request, max_in).await {
                Ok(ticket) => ticket,
                Err(status) => return Ok(status.into_http::<Body>().map(ResponseBody::Tonic)),
            };
            match doget::do_get(engine.as_ref(), &served, &ticket).await {
                Ok(stream) => {
                    let body = ResponseBody::Messages(Box::pin(FlightDataBody::new(stream, max_out)));
                    let mut response = http::Response::new(body);
                    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
                    Ok(response)
                }
                Err(e) => Ok(Status::from(e).into_http::<Body>().map(ResponseBody::Tonic)),
            }
        })
    }
}

/// The one Ticket message of a DoGet request.
async fn read_ticket(request: http::Request<Body>, max_message_size: usize) -> Result<Ticket, Status> {
    let body = http_body_util::Limited::new(request.into_body(), max_message_size.saturating_add(5));
    let mut bytes = body
        .collect()
        .await
        .map_err(|e| Status::resource_exhausted(format!("DoGet request body larger than {max_message_size} bytes or broken: {e}")))?
        .to_bytes();
    if bytes.len() < 5 {
        return Err(Status::invalid_argument("DoGet request without a message"));
    }
    let compressed = bytes.get_u8();
    let len = bytes.get_u32() as usize;
    if compressed != 0 {
        return Err(Status::unimplemented("compressed DoGet requests are not supported: send the ticket uncompressed"));
    }
    if len != bytes.len() {
        return Err(Status::invalid_argument(format!(
            "DoGet request must hold exactly one message: {len} bytes announced, {} sent",
            bytes.len()
        )));
    }
    Ticket::decode(bytes).map_err(|e| Status::invalid_argument(format!("DoGet request is not a Ticket: {e}")))
}

/// A DoGet response body: each FlightData as one payload of its prefix and its body's byte
/// ranges (not copied: `transport::WireBuf`); then the trailers with the stream's status.
pub struct FlightDataBody {
    messages: GetStream,
    max_message_size: usize,
    done: bool,
}

impl FlightDataBody {
    pub fn new(messages: GetStream, max_message_size: usize) -> Self {
        Self { messages, max_message_size, done: false }
    }
}

impl http_body::Body for FlightDataBody {
    type Data = WireBuf;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<WireBuf>, Status>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let end = match Pin::new(&mut self.messages).poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Some(Ok(message))) => match encode_message(message, self.max_message_size) {
                Ok((prefix, body)) => {
                    let payload = WireBuf::from_parts(std::iter::once(prefix).chain(body));
                    return Poll::Ready(Some(Ok(Frame::data(payload))));
                }
                Err(status) => status,
            },
            Poll::Ready(Some(Err(status))) => status,
            Poll::Ready(None) => Status::ok(""),
        };
        self.done = true;
        Poll::Ready(Some(Ok(Frame::trailers(trailers(&end)))))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

/// `grpc-status` (and `grpc-message` unless OK) of the end of a stream.
fn trailers(status: &Status) -> HeaderMap {
    let mut map = HeaderMap::new();
    if status.code() == tonic::Code::Ok {
        map.insert(Status::GRPC_STATUS, HeaderValue::from_static("0"));
    } else if let Err(unencodable) = status.add_header(&mut map) {
        map.clear();
        map.insert(Status::GRPC_STATUS, HeaderValue::from(unencodable.code() as i32));
    }
    map
}

/// One message as gRPC framing + protobuf: the prefix (length prefix, every field but the
/// body, the body's key and length) and the body's ranges, untouched.
pub fn encode_message(message: GetMessage, max_message_size: usize) -> Result<(Bytes, Vec<Bytes>), Status> {
    let GetMessage { data: mut message, body } = message;
    debug_assert!(message.data_body.is_empty(), "the body travels beside the FlightData");
    if !body.is_empty() {
        align_body(&mut message, body.len());
    }
    let fields_len = message.encoded_len();
    let body_field_len = if body.is_empty() {
        0
    } else {
        prost::encoding::encoded_len_varint(DATA_BODY_KEY) + prost::encoding::encoded_len_varint(body.len() as u64) + body.len()
    };
    let message_len = fields_len + body_field_len;
    if message_len > max_message_size {
        return Err(Status::resource_exhausted(format!(
            "a scan message of {message_len} bytes is above the node's limit of {max_message_size} bytes"
        )));
    }
    let mut prefix = BytesMut::with_capacity(5 + fields_len + 20);
    prefix.put_u8(0); // not compressed
    prefix.put_u32(u32::try_from(message_len).map_err(|_| Status::resource_exhausted("a scan message above 4 GiB"))?);
    message.encode(&mut prefix).expect("the prefix buffer was sized for the message");
    if body.is_empty() {
        return Ok((prefix.freeze(), Vec::new()));
    }
    prost::encoding::encode_varint(DATA_BODY_KEY, &mut prefix);
    prost::encoding::encode_varint(body.len() as u64, &mut prefix);
    Ok((prefix.freeze(), body.into_parts()))
}

/// Where in a received message its body should start: arrow-rs decodes the buffers of a body
/// in place only when each is aligned for its type (up to 16 bytes, `i128`), and copies the
/// others (`ArrayData::align_buffers`: 14 % of a zero-copy scan client's CPU before this). A
/// client that reads a large message into a buffer of its own (tonic reserves one per message)
/// has the message start aligned, so a body at an offset that is a multiple of 16 in the
/// protobuf message is aligned, and so is every buffer in it (they are 8-aligned in the body).
const BODY_ALIGNMENT: usize = 16;

/// Pads the JSON app metadata of a message with trailing spaces (still the same JSON value)
/// so that its body of `body_len` bytes starts at a multiple of `BODY_ALIGNMENT` in the
/// encoded FlightData. Messages without JSON metadata are left as they are.
fn align_body(message: &mut arrow_flight::FlightData, body_len: usize) {
    if !message.app_metadata.ends_with(b"}") {
        return;
    }
    use prost::encoding::encoded_len_varint;
    // The app metadata field is its key (1 byte), its length and its bytes; the body starts
    // after every field, the body's key and the body's length.
    let field = |len: usize| 1 + encoded_len_varint(len as u64) + len;
    let metadata_len = message.app_metadata.len();
    let others = message.encoded_len() - field(metadata_len) + encoded_len_varint(DATA_BODY_KEY) + encoded_len_varint(body_len as u64);
    // At most 2 * BODY_ALIGNMENT steps: one varint boundary (127 -> 128 bytes) can be crossed.
    let padded_len = (metadata_len..).find(|&len| (others + field(len)).is_multiple_of(BODY_ALIGNMENT)).expect("some length aligns");
    if padded_len > metadata_len {
        let mut padded = Vec::with_capacity(padded_len);
        padded.extend_from_slice(&message.app_metadata);
        padded.resize(padded_len, b' ');
        message.app_metadata = padded.into();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::MessageBody;
    use arrow_flight::FlightData;

    /// The message with its body split into `parts` ranges.
    fn get_message(message: &FlightData, parts: usize) -> GetMessage {
        let body = message.data_body.clone();
        let step = body.len().div_ceil(parts.max(1)).max(1);
        let ranges = (0..body.len()).step_by(step).map(|at| body.slice(at..(at + step).min(body.len())));
        GetMessage { data: FlightData { data_body: Bytes::new(), ..message.clone() }, body: MessageBody::from_parts(ranges) }
    }

    fn framed(message: &FlightData, parts: usize) -> Vec<u8> {
        let (prefix, body) = encode_message(get_message(message, parts), usize::MAX).unwrap();
        let mut out = prefix.to_vec();
        for part in body {
            out.extend_from_slice(&part);
        }
        out
    }

    #[test]
    fn given_a_flight_data_when_framed_should_match_what_prost_and_grpc_framing_give() {
        let cases = [
            FlightData {
                data_header: vec![1u8; 300].into(),
                data_body: vec![7u8; 70_000].into(),
                app_metadata: b"{\"bucket\":0}".to_vec().into(),
                ..Default::default()
            },
            FlightData { data_header: vec![2u8; 10].into(), ..Default::default() },
            FlightData { data_body: vec![3u8; 1].into(), ..Default::default() },
            FlightData::default(),
        ];
        for message in cases {
            for parts in [1, 3] {
                let out = framed(&message, parts);
                // What prost would send for the message with the app metadata this one was
                // padded to (see `given_json_metadata_when_framed_...`).
                let sent = FlightData::decode(&out[5..]).unwrap();
                assert_eq!(sent.app_metadata.trim_ascii_end(), message.app_metadata.trim_ascii_end());
                let expected = sent.encode_to_vec();
                assert_eq!(out[0], 0, "uncompressed");
                assert_eq!(u32::from_be_bytes(out[1..5].try_into().unwrap()) as usize, expected.len());
                assert_eq!(&out[5..], expected.as_slice(), "the same bytes as prost's encoding ({parts} body ranges)");
                assert_eq!(FlightData { app_metadata: message.app_metadata.clone(), ..sent }, message);
            }
        }
    }

    #[test]
    fn given_json_metadata_when_framed_should_start_the_body_16_byte_aligned_with_the_same_json() {
        for header_len in [0usize, 1, 7, 100, 250, 301] {
            for metadata_len in [2usize, 9, 60, 115, 120, 126, 127, 128, 200] {
                for body_len in [1usize, 127, 128, 70_000, 3 << 20] {
                    let json = format!("{{\"k\":\"{}\"}}", "x".repeat(metadata_len - 2));
                    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
                    let message = FlightData {
                        data_header: vec![1u8; header_len].into(),
                        data_body: vec![7u8; body_len].into(),
                        app_metadata: json.into_bytes().into(),
                        ..Default::default()
                    };
                    let out = framed(&message, 1);
                    let body_start = out.len() - 5 - body_len;
                    assert_eq!(body_start % BODY_ALIGNMENT, 0, "header {header_len}, metadata {metadata_len}, body {body_len}");
                    let sent = FlightData::decode(&out[5..]).unwrap();
                    assert!(sent.app_metadata.len() < message.app_metadata.len() + 2 * BODY_ALIGNMENT);
                    assert_eq!(serde_json::from_slice::<serde_json::Value>(&sent.app_metadata).unwrap(), value, "the same JSON value");
                    assert_eq!((sent.data_header, sent.data_body), (message.data_header, message.data_body));
                }
            }
        }
    }

    #[test]
    fn given_metadata_that_is_not_json_when_framed_should_send_it_unchanged() {
        let message = FlightData { data_body: vec![7u8; 100].into(), app_metadata: b"opaque".to_vec().into(), ..Default::default() };
        assert_eq!(FlightData::decode(&framed(&message, 1)[5..]).unwrap(), message);
    }

    #[test]
    fn given_a_message_above_the_limit_when_framed_should_be_resource_exhausted() {
        let message = FlightData { data_body: vec![0u8; 1000].into(), ..Default::default() };
        let err = encode_message(get_message(&message, 1), 999).unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err}");
    }

    #[test]
    fn given_the_body_when_framed_should_not_copy_it() {
        let body = Bytes::from(vec![9u8; 4096]);
        let message = GetMessage { data: FlightData::default(), body: MessageBody::from_parts([body.slice(..100), body.slice(100..)]) };
        let (_, sent) = encode_message(message, usize::MAX).unwrap();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].as_ptr(), body.as_ptr(), "each range goes out as the same allocation");
        assert_eq!(sent[1].as_ptr(), body[100..].as_ptr());
    }
}
