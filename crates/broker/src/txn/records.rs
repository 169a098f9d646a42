//! The records of `__transaction_state`, in Kafka's formats (its `TransactionLogKey` and
//! `TransactionLogValue` schemas), so that Kafka's tools read Cauce's topic and a Kafka
//! broker's topic could be replayed here.
//!
//! Key, version 0: `version: i16, transactional_id: string (i16 length)`.
//! Value, version 0: `version: i16, producer_id: i64, producer_epoch: i16, timeout_ms: i32,
//! status: i8, partitions: nullable array (i32 count, -1 null) of (topic: string, partitions:
//! array of i32), last_update_ms: i64, start_ms: i64`.
//! Value, version 1 (flexible): the same fields with compact arrays and strings (lengths as
//! unsigned varints of n + 1, 0 for null), an empty tagged-field section after each partition
//! entry, then the record's tagged fields: 0 previous producer id (i64, default -1), 1 next
//! producer id (i64, default -1), 2 client transaction version (i16, default 0), each left out
//! when it has its default, unknown tags skipped on read.
//! A null value (tombstone) deletes the transactional id.

use std::collections::BTreeSet;

use bytes::BufMut;
use cauce_protocol::wire::WireReader;

use super::state::{TxnMetadata, TxnState};

/// The only key version.
const KEY_VERSION: i16 = 0;
/// The value version written: the flexible one, which carries the tagged fields TV2 needs.
const VALUE_VERSION: i16 = 1;

/// The key of a transactional id's record.
pub fn txn_key(transactional_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + transactional_id.len());
    key.put_i16(KEY_VERSION);
    put_string(&mut key, transactional_id);
    key
}

/// The transactional id of a key; `None` for another key version or a malformed key.
pub fn decode_txn_key(key: &[u8]) -> Option<String> {
    let mut reader = WireReader::new(key);
    if reader.i16()? != KEY_VERSION {
        return None;
    }
    let id = reader.nullable_string_bytes()??;
    let id = String::from_utf8(id.to_vec()).ok()?;
    reader.is_empty().then_some(id)
}

fn put_string(output: &mut Vec<u8>, text: &str) {
    output.put_i16(text.len().min(i16::MAX as usize) as i16);
    output.extend_from_slice(&text.as_bytes()[..text.len().min(i16::MAX as usize)]);
}

fn put_uvarint(output: &mut Vec<u8>, mut value: u32) {
    while value >= 0x80 {
        output.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    output.push(value as u8);
}

fn put_compact_string(output: &mut Vec<u8>, text: &str) {
    put_uvarint(output, text.len() as u32 + 1);
    output.extend_from_slice(text.as_bytes());
}

/// The partitions grouped by topic, in order.
fn by_topic(partitions: &BTreeSet<(String, i32)>) -> Vec<(&str, Vec<i32>)> {
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for (topic, partition) in partitions {
        match topics.last_mut() {
            Some((last, indexes)) if *last == topic => indexes.push(*partition),
            _ => topics.push((topic, vec![*partition])),
        }
    }
    topics
}

/// The value of a transactional id's record (version 1). The partitions are written null in
/// Empty, as Kafka writes them.
pub fn txn_value(metadata: &TxnMetadata) -> Vec<u8> {
    let mut value = Vec::with_capacity(64);
    value.put_i16(VALUE_VERSION);
    value.put_i64(metadata.producer_id);
    value.put_i16(metadata.producer_epoch);
    value.put_i32(metadata.timeout_ms);
    value.put_i8(metadata.state.id());
    if metadata.state == TxnState::Empty {
        put_uvarint(&mut value, 0);
    } else {
        let topics = by_topic(&metadata.partitions);
        put_uvarint(&mut value, topics.len() as u32 + 1);
        for (topic, indexes) in topics {
            put_compact_string(&mut value, topic);
            put_uvarint(&mut value, indexes.len() as u32 + 1);
            for index in indexes {
                value.put_i32(index);
            }
            value.push(0); // no tagged fields
        }
    }
    value.put_i64(metadata.last_update_ms);
    value.put_i64(metadata.start_ms);
    let mut tagged: Vec<(u32, Vec<u8>)> = Vec::new();
    if metadata.prev_producer_id != -1 {
        tagged.push((0, metadata.prev_producer_id.to_be_bytes().to_vec()));
    }
    if metadata.next_producer_id != -1 {
        tagged.push((1, metadata.next_producer_id.to_be_bytes().to_vec()));
    }
    if metadata.client_transaction_version != 0 {
        tagged.push((
            2,
            metadata.client_transaction_version.to_be_bytes().to_vec(),
        ));
    }
    put_uvarint(&mut value, tagged.len() as u32);
    for (tag, data) in tagged {
        put_uvarint(&mut value, tag);
        put_uvarint(&mut value, data.len() as u32);
        value.extend_from_slice(&data);
    }
    value
}

/// Reads a value of version 0 or 1; `None` for another version or malformed bytes. Counts are
/// checked against the bytes left before anything is allocated for them.
pub fn decode_txn_value(value: &[u8]) -> Option<TxnMetadata> {
    let mut reader = WireReader::new(value);
    let version = reader.i16()?;
    let flexible = match version {
        0 => false,
        1 => true,
        _ => return None,
    };
    let producer_id = reader.i64()?;
    let producer_epoch = reader.i16()?;
    let timeout_ms = reader.i32()?;
    let state = TxnState::from_id(reader.i8()?)?;
    let topic_count = if flexible {
        reader.uvarint()?.checked_sub(1)
    } else {
        u32::try_from(reader.i32()?).ok()
    };
    let mut partitions = BTreeSet::new();
    for _ in 0..topic_count.unwrap_or(0) {
        let topic = if flexible {
            let length = reader.uvarint()?.checked_sub(1)?;
            reader.take(length as usize)?
        } else {
            reader.nullable_string_bytes()??
        };
        let topic = String::from_utf8(topic.to_vec()).ok()?;
        let count = if flexible {
            reader.uvarint()?.checked_sub(1)?
        } else {
            u32::try_from(reader.i32()?).ok()?
        };
        for _ in 0..count {
            partitions.insert((topic.clone(), reader.i32()?));
        }
        if flexible {
            skip_tagged_fields(&mut reader)?;
        }
    }
    let last_update_ms = reader.i64()?;
    let start_ms = reader.i64()?;
    let mut metadata = TxnMetadata {
        producer_id,
        prev_producer_id: -1,
        next_producer_id: -1,
        producer_epoch,
        last_producer_epoch: -1,
        timeout_ms,
        state,
        partitions,
        start_ms,
        last_update_ms,
        client_transaction_version: 0,
    };
    if flexible {
        let count = reader.uvarint()?;
        for _ in 0..count {
            let tag = reader.uvarint()?;
            let size = reader.uvarint()?;
            let data = reader.take(size as usize)?;
            let mut field = WireReader::new(data);
            match tag {
                0 => metadata.prev_producer_id = field.i64()?,
                1 => metadata.next_producer_id = field.i64()?,
                2 => metadata.client_transaction_version = field.i16()?,
                _ => {}
            }
        }
    }
    reader.is_empty().then_some(metadata)
}

fn skip_tagged_fields(reader: &mut WireReader) -> Option<()> {
    let count = reader.uvarint()?;
    for _ in 0..count {
        reader.uvarint()?;
        let size = reader.uvarint()?;
        reader.take(size as usize)?;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ongoing() -> TxnMetadata {
        TxnMetadata {
            producer_id: 1000,
            prev_producer_id: -1,
            next_producer_id: -1,
            producer_epoch: 3,
            last_producer_epoch: -1,
            timeout_ms: 60_000,
            state: TxnState::Ongoing,
            partitions: [
                ("orders".to_string(), 0),
                ("orders".to_string(), 2),
                ("out".to_string(), 1),
            ]
            .into_iter()
            .collect(),
            start_ms: 1_700_000_000_000,
            last_update_ms: 1_700_000_000_500,
            client_transaction_version: 0,
        }
    }

    #[test]
    fn the_key_is_kafkas_version_zero_string() {
        assert_eq!(txn_key("t1"), [0, 0, 0, 2, b't', b'1']);
        assert_eq!(decode_txn_key(&txn_key("t1")).as_deref(), Some("t1"));
        assert_eq!(decode_txn_key(&[0, 1, 0, 2, b't', b'1']), None);
    }

    #[test]
    fn a_version_one_value_has_the_schemas_bytes() {
        let value = txn_value(&ongoing());
        let mut expected = vec![0, 1];
        expected.extend(1000i64.to_be_bytes());
        expected.extend(3i16.to_be_bytes());
        expected.extend(60_000i32.to_be_bytes());
        expected.push(1); // Ongoing
        expected.push(3); // two topics
        expected.extend([7, b'o', b'r', b'd', b'e', b'r', b's', 3]);
        expected.extend(0i32.to_be_bytes());
        expected.extend(2i32.to_be_bytes());
        expected.push(0);
        expected.extend([4, b'o', b'u', b't', 2]);
        expected.extend(1i32.to_be_bytes());
        expected.push(0);
        expected.extend(1_700_000_000_500i64.to_be_bytes());
        expected.extend(1_700_000_000_000i64.to_be_bytes());
        expected.push(0); // no tagged fields: all at their defaults
        assert_eq!(value, expected);
        assert_eq!(decode_txn_value(&value), Some(ongoing()));
    }

    #[test]
    fn tagged_fields_round_trip_and_unknown_tags_are_skipped() {
        let mut metadata = ongoing();
        metadata.prev_producer_id = 999;
        metadata.next_producer_id = 1001;
        metadata.client_transaction_version = 2;
        let mut value = txn_value(&metadata);
        assert_eq!(decode_txn_value(&value), Some(metadata.clone()));
        // A later Kafka's tag 3 (two bytes) after ours: the count becomes 4.
        let count_at = value.len() - (2 + 8) - (2 + 8) - (2 + 2) - 1;
        value[count_at] = 4;
        value.extend([3, 2, 0xab, 0xcd]);
        assert_eq!(decode_txn_value(&value), Some(metadata));
    }

    #[test]
    fn empty_writes_null_partitions_and_version_zero_is_read() {
        let mut empty = ongoing();
        empty.state = TxnState::Empty;
        empty.partitions.clear();
        empty.start_ms = -1;
        let value = txn_value(&empty);
        assert_eq!(value[17], 0, "null partitions");
        assert_eq!(decode_txn_value(&value), Some(empty.clone()));

        let mut v0 = vec![0, 0];
        v0.extend(1000i64.to_be_bytes());
        v0.extend(3i16.to_be_bytes());
        v0.extend(60_000i32.to_be_bytes());
        v0.push(1);
        v0.extend(1i32.to_be_bytes());
        v0.extend([0, 3, b'o', b'u', b't']);
        v0.extend(1i32.to_be_bytes());
        v0.extend(1i32.to_be_bytes());
        v0.extend(5i64.to_be_bytes());
        v0.extend(4i64.to_be_bytes());
        let decoded = decode_txn_value(&v0).unwrap();
        assert_eq!(decoded.state, TxnState::Ongoing);
        assert_eq!(
            decoded.partitions.into_iter().collect::<Vec<_>>(),
            [("out".to_string(), 1)]
        );
        assert_eq!((decoded.last_update_ms, decoded.start_ms), (5, 4));
    }

    #[test]
    fn lying_counts_unknown_versions_and_states_are_refused_without_allocating() {
        let mut value = txn_value(&ongoing());
        value[17] = 0xff; // an unterminated varint count
        assert_eq!(decode_txn_value(&value), None);
        let mut v0 = vec![0, 0];
        v0.extend(1i64.to_be_bytes());
        v0.extend(0i16.to_be_bytes());
        v0.extend(1i32.to_be_bytes());
        v0.push(1);
        v0.extend(i32::MAX.to_be_bytes()); // two billion topics in a few bytes
        assert_eq!(decode_txn_value(&v0), None);
        let mut bad_state = txn_value(&ongoing());
        bad_state[16] = 9;
        assert_eq!(decode_txn_value(&bad_state), None);
        let mut bad_version = txn_value(&ongoing());
        bad_version[1] = 2;
        assert_eq!(decode_txn_value(&bad_version), None);
    }
}
