use bytes::{BufMut, Bytes};
use kafka_protocol::messages::{ApiKey, MetadataRequest, RequestKind, ResponseKind};

use super::*;

/// A small deterministic generator, so that a failing seed can be replayed.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
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
fn generate(ty: &Ty, version: i16, random: &mut SplitMix, depth: usize, out: &mut Vec<u8>) {
    match ty {
        Ty::Bool => out.push(random.below(2) as u8),
        Ty::Int8 => out.push(random.next() as u8),
        Ty::Int16 | Ty::UInt16 => out.put_u16(random.next() as u16),
        Ty::Int32 => out.put_u32(random.next() as u32),
        Ty::Int64 | Ty::Float64 => out.put_u64(random.next()),
        Ty::Uuid => {
            out.put_u64(random.next());
            out.put_u64(random.next());
        }
        Ty::String | Ty::CompactString | Ty::Bytes | Ty::CompactBytes => {
            let length = random.below(6) as usize;
            match ty {
                Ty::String => out.put_i16(length as i16),
                Ty::Bytes => out.put_i32(length as i32),
                _ => put_unsigned_varint(out, length as u32 + 1),
            }
            out.extend((0..length).map(|_| b'a' + random.below(26) as u8));
        }
        Ty::Struct(index) => generate_struct(*index, version, random, depth + 1, out),
        Ty::OptionStruct(index) => {
            if random.below(2) == 0 {
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
                random.below(3) as usize
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
    random: &mut SplitMix,
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
        if within(known.versions, version) && random.below(2) == 0 {
            let mut value = Vec::new();
            generate(&known.ty, version, random, depth, &mut value);
            tagged.push((known.tag, value));
        }
    }
    if random.below(4) == 0 {
        tagged.push((10_000, vec![7; random.below(4) as usize]));
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
}

/// The layouts agree with the decoder: random well-formed messages of every API and version,
/// built from the layout alone, pass the check, and the decoder reads them to their last byte.
#[test]
fn well_formed_messages_of_every_api_and_version_pass_and_decode_whole() {
    let mut random = SplitMix(42);
    for api_key in ApiKey::iter() {
        for version in versions(api_key) {
            for round in 0..20 {
                let mut request = Vec::new();
                let index = lookup(&REQUESTS, api_key as i16, "request").unwrap();
                generate_struct(index, version, &mut random, 0, &mut request);
                assert_eq!(
                    check_request(api_key as i16, version, &request),
                    Ok(request.len()),
                    "{api_key:?} request v{version} round {round}"
                );
                let mut bytes = Bytes::from(request);
                RequestKind::decode(api_key, &mut bytes, version)
                    .unwrap_or_else(|error| panic!("{api_key:?} request v{version}: {error}"));
                assert!(
                    bytes.is_empty(),
                    "{api_key:?} request v{version}: {} bytes left",
                    bytes.len()
                );

                let mut response = Vec::new();
                let index = lookup(&RESPONSES, api_key as i16, "response").unwrap();
                generate_struct(index, version, &mut random, 0, &mut response);
                assert_eq!(
                    check_response(api_key as i16, version, &response),
                    Ok(response.len()),
                    "{api_key:?} response v{version} round {round}"
                );
                let mut bytes = Bytes::from(response);
                ResponseKind::decode(api_key, &mut bytes, version)
                    .unwrap_or_else(|error| panic!("{api_key:?} response v{version}: {error}"));
                assert!(
                    bytes.is_empty(),
                    "{api_key:?} response v{version}: {} bytes left",
                    bytes.len()
                );
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
    let mut random = SplitMix(7);
    for api_key in ApiKey::iter() {
        for version in versions(api_key) {
            let index = lookup(&REQUESTS, api_key as i16, "request").unwrap();
            for _ in 0..10 {
                let mut message = Vec::new();
                generate_struct(index, version, &mut random, 0, &mut message);
                if message.is_empty() {
                    continue;
                }
                for _ in 0..1 + random.below(3) {
                    let at = random.below(message.len() as u64) as usize;
                    message[at] = random.next() as u8;
                }
                if random.below(3) == 0 {
                    message.truncate(random.below(message.len() as u64) as usize);
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
