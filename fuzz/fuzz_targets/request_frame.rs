//! A whole request frame (without its size prefix), as a connection hands it to the broker:
//! header parsing, then the body of whatever API and version the header names.
#![no_main]

use bytes::Bytes;
use cauce_protocol::request::Request;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = Request::parse(Bytes::copy_from_slice(data)) else {
        return;
    };
    if let Some(api_key) = request.api_key {
        common::decode_body(api_key, request.api_version(), &request.body);
    }
});
