//! ApiVersions: what the broker speaks, including the answer to a version it does not know.

use bytes::Bytes;
use cauce_protocol::kafka::messages::api_versions_response::ApiVersion;
use cauce_protocol::kafka::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use cauce_protocol::versions::{self, SUPPORTED_APIS};
use cauce_protocol::ResponseError;

use super::{Context, Reply};

pub fn handle(mut context: Context, mut body: Bytes) -> Reply {
    let api_keys: Vec<ApiVersion> = SUPPORTED_APIS
        .iter()
        .map(|api| {
            ApiVersion::default()
                .with_api_key(api.api_key as i16)
                .with_min_version(api.min_version)
                .with_max_version(api.max_version)
        })
        .collect();
    let supported =
        versions::supported(ApiKey::ApiVersions).expect("ApiVersions is always supported");
    if context.version > supported.max_version || context.version < 0 {
        // KIP-511: a client newer than the broker gets a v0 response naming the versions the
        // broker has, so that it can retry with one of them.
        context.version = 0;
        let response = ApiVersionsResponse::default()
            .with_error_code(ResponseError::UnsupportedVersion.code())
            .with_api_keys(api_keys);
        return context.respond(&response);
    }
    let mut response = ApiVersionsResponse::default().with_api_keys(api_keys);
    match cauce_protocol::schema::decode::<ApiVersionsRequest>(&mut body, context.version) {
        Ok(request)
            if context.version >= 3
                && !valid_software_field(request.client_software_name.as_str()) =>
        {
            response.error_code = ResponseError::InvalidRequest.code();
        }
        Ok(_) => {}
        Err(error) => {
            tracing::warn!(client = %context.client.address, %error, "malformed ApiVersions request");
            response.error_code = ResponseError::InvalidRequest.code();
        }
    }
    context.respond(&response)
}

/// Kafka's rule for client software names and versions: letters, digits, '-' and '.', starting
/// and ending with a letter or digit.
fn valid_software_field(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|byte| byte.is_ascii_alphanumeric() || *byte == b'-' || *byte == b'.')
}

#[cfg(test)]
mod tests {
    #[test]
    fn software_names_follow_kafkas_rule() {
        assert!(super::valid_software_field("librdkafka"));
        assert!(super::valid_software_field("kafka-python"));
        assert!(super::valid_software_field("2.12.1"));
        assert!(!super::valid_software_field(""));
        assert!(!super::valid_software_field("-bad"));
        assert!(!super::valid_software_field("bad name"));
    }
}
