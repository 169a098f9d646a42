//! The one error type of the client, and which of its cases are worth retrying.

use cauce_protocol::schema::SchemaError;
use cauce_protocol::ResponseError;
use thiserror::Error;

use crate::versions::ApiName;

/// Why a call to a broker failed.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The TCP connection could not be opened.
    #[error("cannot connect to {address}: {source}")]
    Connect {
        /// The broker's address, as given.
        address: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// Opening the TCP connection took longer than the connect timeout.
    #[error("connecting to {address} timed out after {timeout_ms} ms")]
    ConnectTimedOut {
        /// The broker's address, as given.
        address: String,
        /// The timeout that ran out.
        timeout_ms: u128,
    },
    /// The connection broke while a request was being written or its response read.
    #[error("connection to {address} failed: {source}")]
    Io {
        /// The broker's address.
        address: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The broker closed the connection instead of answering.
    #[error("{address} closed the connection")]
    Closed {
        /// The broker's address.
        address: String,
    },
    /// No response came within the request timeout.
    #[error("{api} to {address} timed out after {timeout_ms} ms")]
    TimedOut {
        /// The request's API name.
        api: ApiName,
        /// The broker's address.
        address: String,
        /// The timeout that ran out.
        timeout_ms: u128,
    },
    /// The response's size prefix is negative or above the configured limit: the broker is a
    /// peer, not a trusted source of allocation sizes.
    #[error("response size {size} from {address} is outside 0..={max}")]
    ResponseSize {
        /// The broker's address.
        address: String,
        /// The size the prefix claimed.
        size: i64,
        /// The largest response accepted.
        max: usize,
    },
    /// The response did not pass the bounds check or did not decode.
    #[error("malformed response from {address}: {source}")]
    Decode {
        /// The broker's address.
        address: String,
        /// What was wrong with it.
        source: SchemaError,
    },
    /// The request could not be encoded at the version chosen.
    #[error("cannot encode {api} v{version}: {reason}")]
    Encode {
        /// The request's API name.
        api: ApiName,
        /// The version it was encoded at.
        version: i16,
        /// The encoder's reason.
        reason: String,
    },
    /// A response answered another request than the one sent.
    #[error("response correlation id {found} does not match request {expected}")]
    CorrelationMismatch {
        /// The request's correlation id.
        expected: i32,
        /// The response's.
        found: i32,
    },
    /// The client and the broker have no version of the API in common.
    #[error("{api}: no version in common (client {client_min}..={client_max}, broker {broker})")]
    NoCommonVersion {
        /// The request's API name.
        api: ApiName,
        /// The oldest version this client can encode.
        client_min: i16,
        /// The newest version this client can encode.
        client_max: i16,
        /// The broker's range, or `none` where it does not advertise the API.
        broker: String,
    },
    /// The broker answered with a Kafka error code.
    #[error("{api} failed: {}", describe_code(*code, message.as_deref()))]
    Kafka {
        /// The request's API name.
        api: ApiName,
        /// The Kafka error code.
        code: i16,
        /// The broker's own message, where the response has one: it says what was wrong
        /// (which value of which key), where the code only says what kind of thing.
        message: Option<String>,
    },
    /// The bootstrap list named no broker.
    #[error("the bootstrap list is empty")]
    NoBootstrap,
    /// The cluster's metadata does not know the node the request must go to.
    #[error("node {0} is not in the cluster's metadata")]
    UnknownNode(i32),
}

impl ClientError {
    /// A Kafka error for `api`, with the broker's message if it sent a non-empty one.
    pub fn kafka(api: ApiName, code: i16, message: Option<&str>) -> ClientError {
        ClientError::Kafka {
            api,
            code,
            message: message
                .filter(|message| !message.is_empty())
                .map(str::to_string),
        }
    }

    /// The Kafka error code, where the broker answered with one.
    pub fn code(&self) -> Option<i16> {
        match self {
            ClientError::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The broker's message, where it sent one.
    pub fn broker_message(&self) -> Option<&str> {
        match self {
            ClientError::Kafka { message, .. } => message.as_deref(),
            _ => None,
        }
    }

    /// Whether the connection is unusable after this error: the next request needs a new one.
    pub fn breaks_connection(&self) -> bool {
        matches!(
            self,
            ClientError::Connect { .. }
                | ClientError::ConnectTimedOut { .. }
                | ClientError::Io { .. }
                | ClientError::Closed { .. }
                | ClientError::TimedOut { .. }
                | ClientError::ResponseSize { .. }
                | ClientError::Decode { .. }
                | ClientError::CorrelationMismatch { .. }
        )
    }

    /// Whether trying again (after refreshing metadata) may succeed: the connection failed, or
    /// the broker said the request went to the wrong node or came too early.
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Connect { .. }
            | ClientError::ConnectTimedOut { .. }
            | ClientError::Io { .. }
            | ClientError::Closed { .. }
            | ClientError::TimedOut { .. } => true,
            ClientError::Kafka { code, .. } => is_retriable_code(*code),
            ClientError::UnknownNode(_) => true,
            _ => false,
        }
    }

    /// Whether the cluster's metadata (leaders, controller, coordinators) must be looked up again
    /// before retrying.
    pub fn needs_fresh_metadata(&self) -> bool {
        match self {
            ClientError::Kafka { code, .. } => [
                ResponseError::NotController,
                ResponseError::NotCoordinator,
                ResponseError::CoordinatorNotAvailable,
                ResponseError::LeaderNotAvailable,
                ResponseError::NotLeaderOrFollower,
            ]
            .iter()
            .any(|error| error.code() == *code),
            ClientError::UnknownNode(_) => true,
            other => other.breaks_connection(),
        }
    }
}

/// The Kafka errors this client retries: the request reached the wrong node, or the right node
/// was not ready yet. Other errors Kafka calls retriable (an unknown topic, a corrupt message)
/// are answers the caller wants to see at once.
pub fn is_retriable_code(code: i16) -> bool {
    [
        ResponseError::NotController,
        ResponseError::NotCoordinator,
        ResponseError::CoordinatorLoadInProgress,
        ResponseError::CoordinatorNotAvailable,
        ResponseError::LeaderNotAvailable,
        ResponseError::NotLeaderOrFollower,
        ResponseError::RequestTimedOut,
    ]
    .iter()
    .any(|error| error.code() == code)
}

/// `NAME (code)`, followed by the broker's message where there is one.
fn describe_code(code: i16, message: Option<&str>) -> String {
    let name = match ResponseError::try_from_code(code) {
        Some(error) => error.to_string(),
        None => "NoError".to_string(),
    };
    match message {
        Some(message) => format!("{name} ({code}): {message}"),
        None => format!("{name} ({code})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_and_loading_errors_are_retried_and_answers_are_not() {
        for error in [
            ResponseError::NotController,
            ResponseError::NotCoordinator,
            ResponseError::CoordinatorLoadInProgress,
            ResponseError::CoordinatorNotAvailable,
            ResponseError::LeaderNotAvailable,
            ResponseError::NotLeaderOrFollower,
            ResponseError::RequestTimedOut,
        ] {
            let client_error = ClientError::kafka(ApiName(0), error.code(), None);
            assert!(client_error.is_retriable(), "{error:?}");
        }
        for error in [
            ResponseError::UnknownTopicOrPartition,
            ResponseError::TopicAlreadyExists,
            ResponseError::InvalidConfig,
            ResponseError::NonEmptyGroup,
        ] {
            let client_error = ClientError::kafka(ApiName(0), error.code(), None);
            assert!(!client_error.is_retriable(), "{error:?}");
        }
        let refused = ClientError::Connect {
            address: "127.0.0.1:1".into(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        assert!(refused.is_retriable() && refused.breaks_connection());
    }

    #[test]
    fn a_kafka_error_keeps_its_code_and_the_brokers_message() {
        let error = ClientError::kafka(
            ApiName(19),
            ResponseError::InvalidConfig.code(),
            Some("invalid value 'soon' for retention.ms"),
        );
        assert_eq!(error.code(), Some(40));
        assert_eq!(
            error.broker_message(),
            Some("invalid value 'soon' for retention.ms")
        );
        let text = error.to_string();
        assert!(text.contains("InvalidConfig (40)"), "{text}");
        assert!(text.contains("'soon'"), "{text}");
        assert_eq!(
            ClientError::kafka(ApiName(1), 6, Some("")).broker_message(),
            None
        );
    }

    #[test]
    fn only_routing_errors_and_broken_connections_refresh_metadata() {
        assert!(ClientError::kafka(ApiName(1), 6, None).needs_fresh_metadata());
        assert!(!ClientError::kafka(ApiName(1), 14, None).needs_fresh_metadata());
        assert!(!ClientError::kafka(ApiName(1), 3, None).needs_fresh_metadata());
    }
}
