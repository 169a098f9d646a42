//! A request body of any API and version the decoding crate knows: the first byte picks the
//! API, the second the version within its range, so that every one is reached directly.
#![no_main]

use cauce_protocol::kafka::messages::ApiKey;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let [api, version, body @ ..] = data else {
        return;
    };
    let keys: Vec<ApiKey> = ApiKey::iter().collect();
    let api_key = keys[*api as usize % keys.len()];
    let range = api_key.valid_versions();
    let span = (range.max - range.min + 1) as u8;
    let version = range.min + i16::from(*version % span);
    common::decode_body(api_key, version, body);
});
