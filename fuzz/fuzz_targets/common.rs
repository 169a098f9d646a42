//! What the request targets share: the broker's decoding path for a body.

use bytes::Bytes;
use cauce_protocol::kafka::messages::{ApiKey, RequestKind};
use cauce_protocol::schema;

/// Decodes `body` as the broker would: the bounds check first, the crate's decoder only if it
/// passes. Whatever the check accepts, the decoder must read exactly as far (or refuse the
/// bytes for a reason of its own); it must never be handed an impossible length.
pub fn decode_body(api_key: ApiKey, version: i16, body: &[u8]) {
    let Ok(checked) = schema::check_request(api_key as i16, version, body) else {
        return;
    };
    let mut bytes = Bytes::copy_from_slice(body);
    if RequestKind::decode(api_key, &mut bytes, version).is_ok() {
        assert_eq!(
            body.len() - bytes.len(),
            checked,
            "{api_key:?} v{version}: the decoder and the check disagree on where the body ends"
        );
    }
}
