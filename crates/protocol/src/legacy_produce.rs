//! Produce versions 0-2: advertised (see [`crate::versions::PRODUCE_ADVERTISED_MIN_VERSION`])
//! but not served. A client that uses one gets UNSUPPORTED_VERSION for every partition it
//! named, in the response format of its version, rather than a dropped connection.
//!
//! The schema crate no longer knows these versions, so the few fields involved are read and
//! written here: request `acks: i16, timeout: i32, [topic: string, [partition: i32, records:
//! bytes]]`; response `[topic: string, [partition: i32, error: i16, base_offset: i64,
//! log_append_time: i64 (v2)]], throttle_time_ms: i32 (v1+)`.

use bytes::{BufMut, Bytes, BytesMut};

use crate::wire::WireReader;

/// Highest Produce version answered by this module.
pub const MAX_LEGACY_PRODUCE_VERSION: i16 = 2;

/// Kafka's UNSUPPORTED_VERSION error code.
const UNSUPPORTED_VERSION: i16 = 35;

/// The topics and partitions a legacy Produce body names, or `None` if it is malformed.
fn named_partitions(body: &[u8]) -> Option<Vec<(&[u8], Vec<i32>)>> {
    let mut reader = WireReader::new(body);
    let _acks = reader.i16()?;
    let _timeout = reader.i32()?;
    let topic_count = reader.i32()?;
    let mut topics = Vec::new();
    for _ in 0..topic_count.max(0) {
        let name = reader.nullable_string_bytes()?.unwrap_or_default();
        let partition_count = reader.i32()?;
        let mut partitions = Vec::new();
        for _ in 0..partition_count.max(0) {
            partitions.push(reader.i32()?);
            let records_length = reader.i32()?;
            if records_length > 0 {
                reader.take(records_length as usize)?;
            }
        }
        topics.push((name, partitions));
    }
    Some(topics)
}

/// The complete response frame (size prefix included) refusing a legacy Produce request, or
/// `None` if the body is malformed.
pub fn unsupported_version_response(
    body: &[u8],
    version: i16,
    correlation_id: i32,
) -> Option<Bytes> {
    debug_assert!((0..=MAX_LEGACY_PRODUCE_VERSION).contains(&version));
    let topics = named_partitions(body)?;
    let mut frame = BytesMut::new();
    frame.put_i32(0);
    frame.put_i32(correlation_id);
    frame.put_i32(topics.len() as i32);
    for (name, partitions) in topics {
        frame.put_i16(name.len() as i16);
        frame.put_slice(name);
        frame.put_i32(partitions.len() as i32);
        for partition in partitions {
            frame.put_i32(partition);
            frame.put_i16(UNSUPPORTED_VERSION);
            frame.put_i64(-1);
            if version >= 2 {
                frame.put_i64(-1);
            }
        }
    }
    if version >= 1 {
        frame.put_i32(0);
    }
    let size = (frame.len() - 4) as i32;
    frame[0..4].copy_from_slice(&size.to_be_bytes());
    Some(frame.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(records: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&1i16.to_be_bytes());
        body.extend_from_slice(&1000i32.to_be_bytes());
        body.extend_from_slice(&1i32.to_be_bytes());
        body.extend_from_slice(&2i16.to_be_bytes());
        body.extend_from_slice(b"t1");
        body.extend_from_slice(&2i32.to_be_bytes());
        for partition in [0i32, 3] {
            body.extend_from_slice(&partition.to_be_bytes());
            body.extend_from_slice(&(records.len() as i32).to_be_bytes());
            body.extend_from_slice(records);
        }
        body
    }

    #[test]
    fn every_named_partition_gets_unsupported_version_in_its_versions_format() {
        let body = request(b"abc");
        let v0 = unsupported_version_response(&body, 0, 9).unwrap();
        // size, correlation, 1 topic, "t1", 2 partitions of (partition, error, offset).
        assert_eq!(v0.len(), 4 + 4 + 4 + 2 + 2 + 4 + 2 * (4 + 2 + 8));
        assert_eq!(&v0[4..8], &9i32.to_be_bytes());
        assert_eq!(&v0[24..26], &UNSUPPORTED_VERSION.to_be_bytes());
        let v2 = unsupported_version_response(&body, 2, 9).unwrap();
        assert_eq!(v2.len(), v0.len() + 2 * 8 + 4);
    }

    #[test]
    fn malformed_bodies_are_refused() {
        let body = request(b"abc");
        assert!(unsupported_version_response(&body[..body.len() - 1], 1, 1).is_none());
        assert!(unsupported_version_response(&[0, 1], 1, 1).is_none());
    }
}
