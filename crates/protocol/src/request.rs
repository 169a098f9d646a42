//! A request frame split into its header and its still-encoded body.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use thiserror::Error;

/// Why a request could not be parsed far enough to be answered.
#[derive(Debug, Error)]
pub enum RequestError {
    /// Fewer bytes than the fixed part of a header.
    #[error("request of {0} bytes is shorter than a request header")]
    Truncated(usize),
    /// The header itself did not decode.
    #[error("malformed request header for api key {api_key} version {api_version}: {reason}")]
    MalformedHeader {
        api_key: i16,
        api_version: i16,
        reason: String,
    },
}

/// A request whose header is decoded and whose body waits for its handler.
#[derive(Debug)]
pub struct Request {
    /// The API, or `None` for a key this protocol version does not know.
    pub api_key: Option<ApiKey>,
    /// The decoded header; its key and version are those the client sent.
    pub header: RequestHeader,
    /// The body, decoded by the handler once the version is known to be supported.
    pub body: Bytes,
}

impl Request {
    /// Splits a frame (without its size prefix) into header and body.
    ///
    /// An unknown API key or version still yields a request, so that the broker can answer it
    /// with UNSUPPORTED_VERSION instead of dropping the connection.
    pub fn parse(mut frame: Bytes) -> Result<Request, RequestError> {
        if frame.len() < 8 {
            return Err(RequestError::Truncated(frame.len()));
        }
        let api_key_code = i16::from_be_bytes([frame[0], frame[1]]);
        let api_version = i16::from_be_bytes([frame[2], frame[3]]);
        let api_key = ApiKey::try_from(api_key_code).ok();
        // A known key at an unknown version keeps the header layout of its newest version;
        // an unknown key gets the non-flexible header, which every client sends for ApiVersions.
        let header_version = match api_key {
            Some(key) => key.request_header_version(api_version.clamp(0, key.valid_versions().max)),
            None => 1,
        };
        let header = match crate::schema::decode::<RequestHeader>(&mut frame, header_version) {
            Ok(header) => header,
            Err(error) => {
                return Err(RequestError::MalformedHeader {
                    api_key: api_key_code,
                    api_version,
                    reason: error.to_string(),
                })
            }
        };
        let body = frame.copy_to_bytes(frame.remaining());
        Ok(Request {
            api_key,
            header,
            body,
        })
    }

    /// The correlation id to echo in the response.
    pub fn correlation_id(&self) -> i32 {
        self.header.correlation_id
    }

    /// The API version the client asked for.
    pub fn api_version(&self) -> i16 {
        self.header.request_api_version
    }
}
