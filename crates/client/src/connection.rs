//! One TCP connection to one broker: framing, correlation ids, version negotiation, and typed
//! calls whose responses are bounds-checked before they are decoded.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use cauce_protocol::frame::SIZE_PREFIX_BYTES;
use cauce_protocol::schema;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Message, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::ClientError;
use crate::versions::{ApiName, BrokerVersions};

/// The ApiVersions version asked first; brokers that do not know it answer UNSUPPORTED_VERSION
/// in the v0 format, with their own range, and the client asks again at that.
const API_VERSIONS_PREFERRED: i16 = 3;

/// How a client connects and how long it waits.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Sent in every request header, for the broker's logs and quotas.
    pub client_id: String,
    /// How long opening a TCP connection (and the ApiVersions exchange) may take.
    pub connect_timeout: Duration,
    /// How long one request may take from sending it to its whole response.
    pub request_timeout: Duration,
    /// The largest response frame accepted: a broker is not trusted with allocation sizes.
    pub max_response_bytes: usize,
    /// Whether `connect` asks the broker's API versions; tests of raw frames turn it off so that
    /// the broker sees only what they send.
    pub negotiate_versions: bool,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            client_id: "cauce-client".to_string(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            // Kafka's socket.request.max.bytes default: no answer to our requests is larger.
            max_response_bytes: 100 * 1024 * 1024,
            negotiate_versions: true,
        }
    }
}

/// A Kafka protocol connection to one broker.
pub struct Connection {
    /// The socket.
    stream: TcpStream,
    /// Where it goes, for errors.
    address: String,
    /// Sent in every request header.
    client_id: StrBytes,
    /// Timeouts and the response size limit.
    options: ClientOptions,
    /// The correlation id of the next request.
    next_correlation_id: i32,
    /// The broker's API version ranges, once negotiated.
    broker_versions: Option<BrokerVersions>,
}

impl Connection {
    /// Connects to `address` and, unless the options say not to, asks the broker which API
    /// versions it speaks.
    pub async fn connect(
        address: &str,
        options: &ClientOptions,
    ) -> Result<Connection, ClientError> {
        let stream = tokio::time::timeout(options.connect_timeout, TcpStream::connect(address))
            .await
            .map_err(|_| ClientError::ConnectTimedOut {
                address: address.to_string(),
                timeout_ms: options.connect_timeout.as_millis(),
            })?
            .map_err(|source| ClientError::Connect {
                address: address.to_string(),
                source,
            })?;
        // Requests are small and each waits for its answer: Nagle's delay would only add latency.
        let _ = stream.set_nodelay(true);
        let mut connection = Connection {
            stream,
            address: address.to_string(),
            client_id: StrBytes::from_string(options.client_id.clone()),
            options: options.clone(),
            next_correlation_id: 1,
            broker_versions: None,
        };
        if options.negotiate_versions {
            connection.negotiate().await?;
        }
        Ok(connection)
    }

    /// The address this connection was opened to.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The broker's API version ranges, if they were negotiated.
    pub fn broker_versions(&self) -> Option<&BrokerVersions> {
        self.broker_versions.as_ref()
    }

    /// The version `call` would use for `R`: the newest both sides know. Without negotiation,
    /// the newest this crate knows.
    pub fn version_for<R: Request>(&self) -> Result<i16, ClientError> {
        match &self.broker_versions {
            Some(versions) => versions.select(R::KEY, R::VERSIONS),
            None => Ok(R::VERSIONS.max),
        }
    }

    /// Sends `request` at the newest version both sides know and returns its response.
    pub async fn call<R: Request>(&mut self, request: &R) -> Result<R::Response, ClientError> {
        let version = self.version_for::<R>()?;
        self.call_version(version, request).await
    }

    /// Sends `request` at `version` and returns its response, within the request timeout.
    pub async fn call_version<R: Request>(
        &mut self,
        version: i16,
        request: &R,
    ) -> Result<R::Response, ClientError> {
        let timeout = self.options.request_timeout;
        self.call_version_within(version, request, timeout).await
    }

    /// Sends `request` at `version` and returns its response, within `timeout` (for requests
    /// that wait at the broker, such as a long-polling fetch).
    pub async fn call_version_within<R: Request>(
        &mut self,
        version: i16,
        request: &R,
        timeout: Duration,
    ) -> Result<R::Response, ClientError> {
        let api = ApiName(R::KEY);
        let exchange = async {
            let correlation_id = self
                .send_encoded(R::KEY, R::header_version(version), version, request)
                .await?;
            let mut frame = self.read_frame_unbounded_in_time().await?;
            let header_version = <R::Response as HeaderVersion>::header_version(version);
            decode_response::<R::Response>(
                &self.address,
                api,
                &mut frame,
                header_version,
                version,
                correlation_id,
            )
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ClientError::TimedOut {
                api,
                address: self.address.clone(),
                timeout_ms: timeout.as_millis(),
            })?
    }

    /// Encodes and sends any request body at `version` without waiting for its answer;
    /// returns its correlation id. With [`Connection::read_frame`] this lets tests pipeline
    /// requests.
    pub async fn send<Q: Encodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        request: &Q,
    ) -> Result<i32, ClientError> {
        let header_version = api_key.request_header_version(version);
        self.send_encoded(api_key as i16, header_version, version, request)
            .await
    }

    /// Writes bytes as they are: malformed frames for tests of what the broker refuses.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let timeout = self.options.request_timeout;
        match tokio::time::timeout(timeout, self.stream.write_all(bytes)).await {
            Ok(written) => written.map_err(|source| self.io_error(source)),
            Err(_) => Err(self.io_error(std::io::ErrorKind::TimedOut.into())),
        }
    }

    /// Reads one response frame (without its size prefix) within the request timeout.
    pub async fn read_frame(&mut self) -> Result<Bytes, ClientError> {
        let timeout = self.options.request_timeout;
        match tokio::time::timeout(timeout, self.read_frame_unbounded_in_time()).await {
            Ok(frame) => frame,
            Err(_) => Err(self.io_error(std::io::ErrorKind::TimedOut.into())),
        }
    }

    /// Whether the broker closes the connection (end of stream or a reset) within `wait`;
    /// a read that only times out is not a close, and a byte that arrives is not one either.
    pub async fn is_closed_by_peer(&mut self, wait: Duration) -> bool {
        let mut byte = [0u8; 1];
        match tokio::time::timeout(wait, self.stream.read(&mut byte)).await {
            Ok(Ok(0)) => true,
            Ok(Ok(_)) => false,
            Ok(Err(_)) => true,
            Err(_) => false,
        }
    }

    /// ApiVersions at the preferred version, or at the broker's newest if it does not know that.
    async fn negotiate(&mut self) -> Result<(), ClientError> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("cauce-client"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let timeout = self.options.connect_timeout;
        let mut response = self
            .api_versions(API_VERSIONS_PREFERRED, &request, timeout)
            .await?;
        if let Some(retry_version) = api_versions_retry(&response) {
            response = self.api_versions(retry_version, &request, timeout).await?;
        }
        if response.error_code != 0 {
            return Err(ClientError::kafka(
                ApiName(ApiKey::ApiVersions as i16),
                response.error_code,
                None,
            ));
        }
        self.broker_versions = Some(BrokerVersions::from_response(&response));
        Ok(())
    }

    /// One ApiVersions exchange. A broker that does not know `version` answers in the v0
    /// format, so a body that does not decode at `version` is read again as v0.
    async fn api_versions(
        &mut self,
        version: i16,
        request: &ApiVersionsRequest,
        timeout: Duration,
    ) -> Result<ApiVersionsResponse, ClientError> {
        let api = ApiName(ApiKey::ApiVersions as i16);
        let exchange = async {
            let correlation_id = self
                .send_encoded(
                    api.0,
                    ApiVersionsRequest::header_version(version),
                    version,
                    request,
                )
                .await?;
            let frame = self.read_frame_unbounded_in_time().await?;
            // The response header of ApiVersions is always v0, whatever the body's version.
            let header_version = ApiVersionsResponse::header_version(version);
            let decoded = decode_response::<ApiVersionsResponse>(
                &self.address,
                api,
                &mut frame.clone(),
                header_version,
                version,
                correlation_id,
            );
            match decoded {
                Err(ClientError::Decode { .. }) if version > 0 => {
                    decode_response(&self.address, api, &mut frame.clone(), 0, 0, correlation_id)
                }
                other => other,
            }
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ClientError::TimedOut {
                api,
                address: self.address.clone(),
                timeout_ms: timeout.as_millis(),
            })?
    }

    async fn send_encoded<Q: Encodable>(
        &mut self,
        api_key: i16,
        header_version: i16,
        version: i16,
        request: &Q,
    ) -> Result<i32, ClientError> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(api_key)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        // The encoder's error is kafka-protocol's `anyhow::Error`; only its text is kept, so
        // that this crate's API carries no `anyhow`.
        let encode_error = |reason: String| ClientError::Encode {
            api: ApiName(api_key),
            version,
            reason,
        };
        let mut frame = BytesMut::with_capacity(256);
        frame.put_i32(0);
        header
            .encode(&mut frame, header_version)
            .map_err(|error| encode_error(error.to_string()))?;
        request
            .encode(&mut frame, version)
            .map_err(|error| encode_error(error.to_string()))?;
        let size = (frame.len() - SIZE_PREFIX_BYTES) as i32;
        frame[..SIZE_PREFIX_BYTES].copy_from_slice(&size.to_be_bytes());
        self.stream
            .write_all(&frame)
            .await
            .map_err(|source| self.io_error(source))?;
        Ok(correlation_id)
    }

    /// Reads one frame, refusing a size prefix above the limit before allocating for it.
    async fn read_frame_unbounded_in_time(&mut self) -> Result<Bytes, ClientError> {
        let mut prefix = [0u8; SIZE_PREFIX_BYTES];
        self.stream
            .read_exact(&mut prefix)
            .await
            .map_err(|source| self.read_error(source))?;
        let size = i32::from_be_bytes(prefix);
        let max = self.options.max_response_bytes;
        let size = usize::try_from(size)
            .ok()
            .filter(|size| *size <= max)
            .ok_or_else(|| ClientError::ResponseSize {
                address: self.address.clone(),
                size: i64::from(size),
                max,
            })?;
        let mut body = vec![0u8; size];
        self.stream
            .read_exact(&mut body)
            .await
            .map_err(|source| self.read_error(source))?;
        Ok(Bytes::from(body))
    }

    fn io_error(&self, source: std::io::Error) -> ClientError {
        ClientError::Io {
            address: self.address.clone(),
            source,
        }
    }

    /// An end of stream is the broker closing the connection, which deserves its own words.
    fn read_error(&self, source: std::io::Error) -> ClientError {
        if source.kind() == std::io::ErrorKind::UnexpectedEof {
            return ClientError::Closed {
                address: self.address.clone(),
            };
        }
        self.io_error(source)
    }
}

/// The version to ask ApiVersions at again, when the broker refused the first one: its own
/// newest, which it lists even in a refusal, or v0.
fn api_versions_retry(response: &ApiVersionsResponse) -> Option<i16> {
    if response.error_code != kafka_protocol::error::ResponseError::UnsupportedVersion.code() {
        return None;
    }
    let newest = response
        .api_keys
        .iter()
        .find(|api| api.api_key == ApiKey::ApiVersions as i16)
        .map_or(0, |api| api.max_version);
    Some(newest.clamp(0, ApiVersionsRequest::VERSIONS.max))
}

/// Decodes a response frame: header, correlation id check, then the body through the bounds
/// check of `cauce_protocol::schema`.
fn decode_response<T: Decodable>(
    address: &str,
    api: ApiName,
    frame: &mut Bytes,
    header_version: i16,
    version: i16,
    correlation_id: i32,
) -> Result<T, ClientError> {
    let decode_error = |source| ClientError::Decode {
        address: address.to_string(),
        source,
    };
    let header = schema::decode::<ResponseHeader>(frame, header_version).map_err(decode_error)?;
    if header.correlation_id != correlation_id {
        return Err(ClientError::CorrelationMismatch {
            expected: correlation_id,
            found: header.correlation_id,
        });
    }
    let response = schema::decode::<T>(frame, version).map_err(decode_error)?;
    if !frame.is_empty() {
        tracing::debug!(%api, left = frame.len(), "response had trailing bytes");
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::ApiVersion;

    #[test]
    fn a_refused_api_versions_is_asked_again_at_the_brokers_newest() {
        let refused = ApiVersionsResponse::default()
            .with_error_code(35)
            .with_api_keys(vec![ApiVersion::default()
                .with_api_key(18)
                .with_min_version(0)
                .with_max_version(2)]);
        assert_eq!(api_versions_retry(&refused), Some(2));
        assert_eq!(
            api_versions_retry(&ApiVersionsResponse::default().with_error_code(35)),
            Some(0)
        );
        assert_eq!(api_versions_retry(&ApiVersionsResponse::default()), None);
    }

    #[test]
    fn a_response_for_another_request_is_refused() {
        let mut frame = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(7)
            .encode(&mut frame, 0)
            .unwrap();
        ApiVersionsResponse::default()
            .encode(&mut frame, 0)
            .unwrap();
        let mut frame = frame.freeze();
        let error =
            decode_response::<ApiVersionsResponse>("here", ApiName(18), &mut frame, 0, 0, 8)
                .unwrap_err();
        assert!(matches!(
            error,
            ClientError::CorrelationMismatch {
                expected: 8,
                found: 7
            }
        ));
    }

    #[test]
    fn a_truncated_response_is_a_decode_error_not_a_panic() {
        let mut frame = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(1)
            .encode(&mut frame, 0)
            .unwrap();
        // An api_keys array that claims a billion entries and carries none.
        frame.put_i16(0);
        frame.put_i32(1_000_000_000);
        let mut frame = frame.freeze();
        let error =
            decode_response::<ApiVersionsResponse>("here", ApiName(18), &mut frame, 0, 0, 1)
                .unwrap_err();
        assert!(matches!(error, ClientError::Decode { .. }), "{error}");
    }
}
