use bytes::{BufMut, Bytes};
use kafka_protocol::messages::{ApiKey, MetadataRequest, RequestKind, ResponseKind};
use proptest::prelude::Rng;
use proptest::test_runner::{RngAlgorithm, TestRng};

use super::*;

/// A seeded generator, so that a failing seed can be replayed.
fn seeded(seed: u64) -> TestRng {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}

/// A number in `0..bound`.
fn below(random: &mut TestRng, bound: u64) -> u64 {
    random.next_u64() % bound
}

fn put_unsigned_varint(out: &mut Vec<u8>, mut value: u32) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Writes a random, well-formed value of `ty` as the layout says it is encoded: no nulls but
/// optional structs, text that is valid UTF-8, known tagged fields at their versions and an
/// unknown one now and then.
fn generate(ty: &Ty, version: i16, random: &mut TestRng, depth: usize, out: &mut Vec<u8>) {
    match ty {
        Ty::Bool => out.push(below(random, 2) as u8),
        Ty::Int8 => out.push(random.next_u64() as u8),
        Ty::Int16 | Ty::UInt16 => out.put_u16(random.next_u64() as u16),
        Ty::Int32 => out.put_u32(random.next_u64() as u32),
        Ty::Int64 | Ty::Float64 => out.put_u64(random.next_u64()),
        Ty::Uuid => {
            out.put_u64(random.next_u64());
            out.put_u64(random.next_u64());
        }
        Ty::String | Ty::CompactString | Ty::Bytes | Ty::CompactBytes => {
            let length = below(random, 6) as usize;
            match ty {
                Ty::String => out.put_i16(length as i16),
                Ty::Bytes => out.put_i32(length as i32),
                _ => put_unsigned_varint(out, length as u32 + 1),
            }
            out.extend((0..length).map(|_| b'a' + below(random, 26) as u8));
        }
        Ty::Struct(index) => generate_struct(*index, version, random, depth + 1, out),
        Ty::OptionStruct(index) => {
            if below(random, 2) == 0 {
                out.push(0xff);
            } else {
                out.push(1);
                generate_struct(*index, version, random, depth + 1, out);
            }
        }
        Ty::Array(element) | Ty::CompactArray(element) => {
            let count = if depth > 4 {
                0
            } else {
                below(random, 3) as usize
            };
            if matches!(ty, Ty::Array(_)) {
                out.put_i32(count as i32);
            } else {
                put_unsigned_varint(out, count as u32 + 1);
            }
            for _ in 0..count {
                generate(element, version, random, depth + 1, out);
            }
        }
    }
}

fn generate_struct(
    index: usize,
    version: i16,
    random: &mut TestRng,
    depth: usize,
    out: &mut Vec<u8>,
) {
    let schema = &STRUCTS[index];
    for field in schema.fields {
        if within(field.versions, version) {
            generate(&field.ty, version, random, depth, out);
        }
    }
    if !schema.flexible.is_some_and(|range| within(range, version)) {
        return;
    }
    let mut tagged: Vec<(u32, Vec<u8>)> = Vec::new();
    for known in schema.tagged {
        if within(known.versions, version) && below(random, 2) == 0 {
            let mut value = Vec::new();
            generate(&known.ty, version, random, depth, &mut value);
            tagged.push((known.tag, value));
        }
    }
    if below(random, 4) == 0 {
        tagged.push((10_000, vec![7; below(random, 4) as usize]));
    }
    put_unsigned_varint(out, tagged.len() as u32);
    for (tag, value) in tagged {
        put_unsigned_varint(out, tag);
        put_unsigned_varint(out, value.len() as u32);
        out.extend(value);
    }
}

/// The versions that both the request and the response decoders accept (the crate's
/// `valid_versions` can claim one more than its decoders read, as for OffsetCommit v10).
fn versions(api_key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let request = STRUCTS[lookup(&REQUESTS, api_key as i16, "request").unwrap()].versions;
    let response = STRUCTS[lookup(&RESPONSES, api_key as i16, "response").unwrap()].versions;
    request.0.max(response.0)..=request.1.min(response.1)
}

#[test]
fn every_api_and_version_the_broker_advertises_has_a_layout() {
    for api_key in ApiKey::iter() {
        for (table, kind) in [(&REQUESTS[..], "request"), (&RESPONSES[..], "response")] {
            let index = lookup(table, api_key as i16, kind).unwrap();
            let (low, high) = STRUCTS[index].versions;
            let claimed = api_key.valid_versions();
            assert!(
                claimed.min <= low && high <= claimed.max,
                "{api_key:?} {kind}"
            );
        }
    }
    for api in crate::versions::SUPPORTED_APIS {
        let layout = versions(api.api_key);
        assert!(
            layout.contains(&api.min_decoded_version) && layout.contains(&api.max_version),
            "{:?} v{}-{} is advertised, the decoders read v{layout:?}",
            api.api_key,
            api.min_decoded_version,
            api.max_version
        );
    }
    assert_eq!(
        index_of::<MetadataRequest>().unwrap(),
        lookup(&REQUESTS, 3, "request").unwrap()
    );
    // `index_of` looks types up by (module, type) without building a string.
    let keys: Vec<(&str, &str)> = STRUCTS
        .iter()
        .map(|schema| schema.name.split_once("::").unwrap())
        .collect();
    assert!(
        keys.windows(2).all(|pair| pair[0] < pair[1]),
        "STRUCTS out of order"
    );
}

/// The layouts agree with the decoder: random well-formed messages of every API and version,
/// built from the layout alone, pass the check, and the decoder reads them to their last byte.
#[test]
fn well_formed_messages_of_every_api_and_version_pass_and_decode_whole() {
    /// Decodes with the crate's decoder for the kind, returning the bytes it left.
    type Decoder = fn(ApiKey, &mut Bytes, i16) -> Result<(), String>;
    let request: Decoder = |key, bytes, version| {
        RequestKind::decode(key, bytes, version)
            .map(drop)
            .map_err(|error| error.to_string())
    };
    let response: Decoder = |key, bytes, version| {
        ResponseKind::decode(key, bytes, version)
            .map(drop)
            .map_err(|error| error.to_string())
    };
    let kinds = [
        (&REQUESTS[..], "request", request),
        (&RESPONSES[..], "response", response),
    ];
    let mut random = seeded(42);
    for api_key in ApiKey::iter() {
        for version in versions(api_key) {
            for round in 0..20 {
                for (table, kind, decode) in kinds {
                    let mut message = Vec::new();
                    let index = lookup(table, api_key as i16, kind).unwrap();
                    generate_struct(index, version, &mut random, 0, &mut message);
                    assert_eq!(
                        check_struct(index, version, &message),
                        Ok(message.len()),
                        "{api_key:?} {kind} v{version} round {round}"
                    );
                    let mut bytes = Bytes::from(message);
                    decode(api_key, &mut bytes, version)
                        .unwrap_or_else(|error| panic!("{api_key:?} {kind} v{version}: {error}"));
                    assert!(
                        bytes.is_empty(),
                        "{api_key:?} {kind} v{version}: {} bytes left",
                        bytes.len()
                    );
                }
            }
        }
    }
}

/// The frame that used to abort the broker: Metadata v1 whose topic array claims 2^31 - 1
/// elements, with nothing after the count.
#[test]
fn an_array_count_larger_than_the_bytes_left_is_refused_before_decoding() {
    let mut body = Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff]);
    let refused = decode::<MetadataRequest>(&mut body, 1).unwrap_err();
    assert!(
        matches!(&refused, SchemaError::Malformed { reason, .. } if reason.contains("2147483647")),
        "{refused}"
    );
    // Compact form (v9+): a varint count just as impossible.
    let mut compact = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x07, 0x00]);
    assert!(decode::<MetadataRequest>(&mut compact, 12).is_err());
}

#[test]
fn lengths_that_lie_are_refused() {
    // A string longer than the bytes left (Metadata v1, one topic named with 300 bytes).
    let mut body = vec![0, 0, 0, 1, 0x01, 0x2c];
    body.extend([b'a'; 10]);
    assert!(matches!(
        check_request(3, 1, &body),
        Err(SchemaError::Malformed { .. })
    ));
    // A negative length other than -1.
    let body = [0, 0, 0, 1, 0xff, 0xfe];
    assert!(matches!(
        check_request(3, 1, &body),
        Err(SchemaError::Malformed { .. })
    ));
    // A varint that never ends.
    let body = [0x80; 12];
    assert!(matches!(
        check_request(3, 12, &body),
        Err(SchemaError::Malformed { .. })
    ));
    // A tagged field whose announced size is not what its value takes: Fetch v15's tag 0
    // (cluster id) announced as 9 bytes, holding a 2-byte compact string.
    let mut fetch = Vec::new();
    fetch.extend([0u8; 4 * 3 + 1 + 4 * 2]); // max wait, min bytes, max bytes, isolation, session
    fetch.extend([1, 1, 1, 1]); // no topics, no forgotten topics, empty rack id
    fetch.extend([1, 0, 9, 2, b'x']); // one tagged field: tag 0, size 9, "x"
    fetch.extend([0; 7]);
    assert!(matches!(
        check_request(1, 15, &fetch),
        Err(SchemaError::Malformed { .. })
    ));
}

#[test]
fn an_unknown_version_is_refused() {
    assert!(matches!(
        check_request(3, 99, &[]),
        Err(SchemaError::UnknownVersion { version: 99, .. })
    ));
    assert!(matches!(
        check_request(999, 0, &[]),
        Err(SchemaError::UnknownMessage(_))
    ));
}

/// Mutated messages: whatever the check accepts, the decoder reads exactly as far as the check
/// did (or refuses for a reason of its own, such as text that is not UTF-8).
#[test]
fn the_decoder_reads_as_far_as_the_check_on_mutated_messages() {
    let mut random = seeded(7);
    for api_key in ApiKey::iter() {
        for version in versions(api_key) {
            let index = lookup(&REQUESTS, api_key as i16, "request").unwrap();
            for _ in 0..10 {
                let mut message = Vec::new();
                generate_struct(index, version, &mut random, 0, &mut message);
                if message.is_empty() {
                    continue;
                }
                for _ in 0..1 + below(&mut random, 3) {
                    let at = below(&mut random, message.len() as u64) as usize;
                    message[at] = random.next_u64() as u8;
                }
                if below(&mut random, 3) == 0 {
                    message.truncate(below(&mut random, message.len() as u64) as usize);
                }
                let Ok(checked) = check_request(api_key as i16, version, &message) else {
                    continue;
                };
                let mut bytes = Bytes::from(message.clone());
                let total = bytes.len();
                if RequestKind::decode(api_key, &mut bytes, version).is_ok() {
                    assert_eq!(
                        total - bytes.len(),
                        checked,
                        "{api_key:?} v{version} {message:?}"
                    );
                }
            }
        }
    }
}

/// Found by the request_frame fuzz target: DescribeTopicPartitions v0 whose nullable cursor has
/// the marker 0, which the decoder reads as null (only 1 is a struct).
#[test]
fn a_nullable_struct_marker_other_than_one_is_null_as_the_decoder_reads_it() {
    let frame = [
        0u8, 75, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 14, 0, 137, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 227, 0, 8, 32, 0, 0,
        0, 0,
    ];
    let request = crate::request::Request::parse(Bytes::copy_from_slice(&frame)).unwrap();
    let api_key = request.api_key.unwrap();
    let version = request.api_version();
    let checked = check_request(api_key as i16, version, &request.body);
    let mut body = request.body.clone();
    let decoded = RequestKind::decode(api_key, &mut body, version);
    if let (Ok(checked), Ok(_)) = (checked, decoded) {
        assert_eq!(request.body.len() - body.len(), checked);
    }
}
