//! Kafka framing: every request and answer is an `i32` big-endian size followed by that many
//! bytes; a request starts with its header (API key, version, correlation id, client id).
//! Decoding of headers and bodies goes through the `kafka-protocol` crate, guarded here: a
//! panic in a generated decoder is an error for that request, not a dead task.

use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

/// Bytes of the size prefix.
pub const SIZE_LEN: usize = 4;
/// Largest request accepted: the STRP payload limit, sixteen times the default request size
/// of librdkafka and of the Java producer (1 MB). A larger one closes the connection, as
/// Kafka's own broker does past `socket.request.max.bytes`.
pub const MAX_REQUEST_BYTES: usize = stream_proto::MAX_PAYLOAD as usize;
/// Bytes of a request header's fixed part (API key, version, correlation id).
const FIXED_HEADER_LEN: usize = 8;

/// Why a connection's input cannot be served (the connection is closed).
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// A negative size prefix.
    #[error("request size {0} is negative")]
    NegativeSize(i32),
    /// A size prefix over the limit.
    #[error("request of {size} bytes is larger than the {max} accepted")]
    TooLarge {
        /// From the prefix.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Too short for a header.
    #[error("request of {0} bytes is shorter than a request header")]
    Short(usize),
    /// An API key Kafka does not define.
    #[error("unknown API key {0}")]
    UnknownApi(i16),
    /// A header that does not decode.
    #[error("malformed {key:?} v{version} request header: {why}")]
    Header {
        /// The request's API.
        key: ApiKey,
        /// Its version.
        version: i16,
        /// The decoder's complaint.
        why: String,
    },
}

/// The size of the request at the front of `buf` (prefix excluded), once its prefix is in.
pub fn request_size(buf: &[u8], max: usize) -> Result<Option<usize>, FrameError> {
    let Some(prefix) = buf.get(..SIZE_LEN) else {
        return Ok(None);
    };
    let size = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    if size < 0 {
        return Err(FrameError::NegativeSize(size));
    }
    let size = size as usize;
    if size > max {
        return Err(FrameError::TooLarge { size, max });
    }
    Ok(Some(size))
}

/// The API key of the request at the front of `buf` (prefix included), once it is in.
pub fn peek_api_key(buf: &[u8]) -> Option<i16> {
    let b = buf.get(SIZE_LEN..SIZE_LEN + 2)?;
    Some(i16::from_be_bytes([b[0], b[1]]))
}

/// A request's header.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// Which API.
    pub api_key: ApiKey,
    /// Its version.
    pub api_version: i16,
    /// Echoed in the answer.
    pub correlation_id: i32,
    /// The client's name for itself (logged).
    pub client_id: Option<String>,
}

/// Splits a request (its size prefix removed) into its header and body.
pub fn parse_request(mut req: Bytes) -> Result<(RequestHead, Bytes), FrameError> {
    if req.len() < FIXED_HEADER_LEN {
        return Err(FrameError::Short(req.len()));
    }
    let raw_key = i16::from_be_bytes([req[0], req[1]]);
    let version = i16::from_be_bytes([req[2], req[3]]);
    let api_key = ApiKey::try_from(raw_key).map_err(|_| FrameError::UnknownApi(raw_key))?;
    let header_version = api_key.request_header_version(version);
    let header: RequestHeader =
        decode(&mut req, header_version).map_err(|why| FrameError::Header {
            key: api_key,
            version,
            why,
        })?;
    let head = RequestHead {
        api_key,
        api_version: version,
        correlation_id: header.correlation_id,
        client_id: header.client_id.map(|c| c.to_string()),
    };
    Ok((head, req))
}

/// Decodes one message of `version` from the front of `buf`, without letting a decoder's panic
/// escape.
pub fn decode<M: Decodable>(buf: &mut Bytes, version: i16) -> Result<M, String> {
    match catch_unwind(AssertUnwindSafe(|| M::decode(buf, version))) {
        Ok(Ok(m)) => Ok(m),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(_) => Err("the decoder failed on these bytes".to_string()),
    }
}

/// Frames an answer of `version` to the request `head`.
pub fn encode_response<M: Encodable>(
    head: &RequestHead,
    version: i16,
    body: &M,
) -> Result<BytesMut, String> {
    let mut out = BytesMut::with_capacity(256);
    out.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(head.correlation_id);
    header
        .encode(&mut out, head.api_key.response_header_version(version))
        .map_err(|e| format!("encoding the {:?} answer header: {e:#}", head.api_key))?;
    body.encode(&mut out, version)
        .map_err(|e| format!("encoding the {:?} v{version} answer: {e:#}", head.api_key))?;
    let size = (out.len() - SIZE_LEN) as i32;
    out[..SIZE_LEN].copy_from_slice(&size.to_be_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked_before_the_request_is_read() {
        assert!(matches!(request_size(&[0, 0], 100), Ok(None)));
        assert!(matches!(request_size(&[0, 0, 0, 50], 100), Ok(Some(50))));
        assert!(matches!(
            request_size(&[0x7f, 0xff, 0xff, 0xff], 100),
            Err(FrameError::TooLarge { .. })
        ));
        assert!(matches!(
            request_size(&[0xff, 0xff, 0xff, 0xff], 100),
            Err(FrameError::NegativeSize(-1))
        ));
    }

    #[test]
    fn short_and_unknown_requests_are_errors() {
        assert!(matches!(
            parse_request(Bytes::from_static(&[0, 18])),
            Err(FrameError::Short(2))
        ));
        assert!(matches!(
            parse_request(Bytes::from_static(&[0x7f, 0, 0, 0, 0, 0, 0, 1])),
            Err(FrameError::UnknownApi(0x7f00))
        ));
    }
}
