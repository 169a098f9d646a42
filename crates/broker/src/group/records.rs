//! The records of `__consumer_offsets`, in Kafka's own key and value formats, so that tools
//! reading that topic understand them.
//!
//! Offset commit: key v1 `(version: i16, group: string, topic: string, partition: i32)`, value
//! v3 `(version, offset: i64, leader_epoch: i32, metadata: string, commit_timestamp: i64)`.
//! Group metadata: key v2 `(version, group)`, value v3 `(version, protocol_type: string,
//! generation: i32, protocol: nullable string, leader: nullable string, current_state_timestamp:
//! i64, members: [member_id, group_instance_id: nullable, client_id, client_host,
//! rebalance_timeout: i32, session_timeout: i32, subscription: bytes, assignment: bytes])`.
//! A null value (tombstone) deletes the key.

use bytes::{BufMut, Bytes};
use cauce_protocol::wire::WireReader;

/// Key version of offset commits.
const OFFSET_KEY_VERSION: i16 = 1;
/// Key version of group metadata.
const GROUP_KEY_VERSION: i16 = 2;
/// Value version of offset commits written here (with leader epoch, KIP-320).
const OFFSET_VALUE_VERSION: i16 = 3;
/// Value version of group metadata written here (with static members, KIP-345).
const GROUP_VALUE_VERSION: i16 = 3;

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The next offset the group will consume.
    pub offset: i64,
    /// The leader epoch of the last consumed record, or -1.
    pub leader_epoch: i32,
    /// Free text the client attached.
    pub metadata: String,
    /// When it was committed, for offset expiry.
    pub commit_timestamp_ms: i64,
}

/// A member as persisted in group metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistedMember {
    /// The member id.
    pub member_id: String,
    /// Its static instance id.
    pub group_instance_id: Option<String>,
    /// The client id.
    pub client_id: String,
    /// The client address.
    pub client_host: String,
    /// Its rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Its session timeout.
    pub session_timeout_ms: i32,
    /// Its metadata for the chosen protocol.
    pub subscription: Bytes,
    /// Its assignment.
    pub assignment: Bytes,
}

/// A group's stable generation as persisted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistedGroup {
    /// "consumer" for consumer groups; empty for an empty group.
    pub protocol_type: String,
    /// The generation.
    pub generation_id: i32,
    /// The chosen protocol.
    pub protocol_name: Option<String>,
    /// The leader.
    pub leader: Option<String>,
    /// When the group's state last changed.
    pub state_timestamp_ms: i64,
    /// The members with their assignments.
    pub members: Vec<PersistedMember>,
}

/// A decoded `__consumer_offsets` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetsKey {
    /// An offset commit for one partition.
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    /// A group's metadata.
    Group { group: String },
}

fn put_string(out: &mut Vec<u8>, value: &str) {
    out.put_i16(value.len() as i16);
    out.put_slice(value.as_bytes());
}

fn put_nullable_string(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(value) => put_string(out, value),
        None => out.put_i16(-1),
    }
}

fn put_bytes(out: &mut Vec<u8>, value: &[u8]) {
    out.put_i32(value.len() as i32);
    out.put_slice(value);
}

/// The key of an offset commit.
pub fn offset_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + group.len() + topic.len());
    out.put_i16(OFFSET_KEY_VERSION);
    put_string(&mut out, group);
    put_string(&mut out, topic);
    out.put_i32(partition);
    out
}

/// The value of an offset commit.
pub fn offset_value(committed: &CommittedOffset) -> Vec<u8> {
    let mut out = Vec::with_capacity(26 + committed.metadata.len());
    out.put_i16(OFFSET_VALUE_VERSION);
    out.put_i64(committed.offset);
    out.put_i32(committed.leader_epoch);
    put_string(&mut out, &committed.metadata);
    out.put_i64(committed.commit_timestamp_ms);
    out
}

/// The key of a group's metadata.
pub fn group_key(group: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + group.len());
    out.put_i16(GROUP_KEY_VERSION);
    put_string(&mut out, group);
    out
}

/// The value of a group's metadata.
pub fn group_value(group: &PersistedGroup) -> Vec<u8> {
    let mut out = Vec::new();
    out.put_i16(GROUP_VALUE_VERSION);
    put_string(&mut out, &group.protocol_type);
    out.put_i32(group.generation_id);
    put_nullable_string(&mut out, group.protocol_name.as_deref());
    put_nullable_string(&mut out, group.leader.as_deref());
    out.put_i64(group.state_timestamp_ms);
    out.put_i32(group.members.len() as i32);
    for member in &group.members {
        put_string(&mut out, &member.member_id);
        put_nullable_string(&mut out, member.group_instance_id.as_deref());
        put_string(&mut out, &member.client_id);
        put_string(&mut out, &member.client_host);
        out.put_i32(member.rebalance_timeout_ms);
        out.put_i32(member.session_timeout_ms);
        put_bytes(&mut out, &member.subscription);
        put_bytes(&mut out, &member.assignment);
    }
    out
}

/// Reads the strings and bytes of these records; every decode error means "not ours to read".
struct Reader<'a>(WireReader<'a>);

impl<'a> Reader<'a> {
    fn i16(&mut self) -> Option<i16> {
        self.0.i16()
    }
    fn i32(&mut self) -> Option<i32> {
        self.0.i32()
    }
    fn i64(&mut self) -> Option<i64> {
        self.0.i64()
    }
    fn nullable_string(&mut self) -> Option<Option<String>> {
        let bytes = self.0.nullable_string_bytes()?;
        Some(bytes.map(|bytes| String::from_utf8_lossy(bytes).into_owned()))
    }
    fn string(&mut self) -> Option<String> {
        self.nullable_string().map(Option::unwrap_or_default)
    }
    fn bytes(&mut self) -> Option<Bytes> {
        Some(
            self.0
                .nullable_bytes()?
                .map(Bytes::copy_from_slice)
                .unwrap_or_default(),
        )
    }
}

/// Decodes a key; `None` for a key this broker does not know.
pub fn decode_key(key: &[u8]) -> Option<OffsetsKey> {
    let mut reader = Reader(WireReader::new(key));
    match reader.i16()? {
        0 | 1 => Some(OffsetsKey::Offset {
            group: reader.string()?,
            topic: reader.string()?,
            partition: reader.i32()?,
        }),
        2 => Some(OffsetsKey::Group {
            group: reader.string()?,
        }),
        _ => None,
    }
}

/// Decodes an offset commit value of version 0 to 3.
pub fn decode_offset_value(value: &[u8]) -> Option<CommittedOffset> {
    let mut reader = Reader(WireReader::new(value));
    let version = reader.i16()?;
    let offset = reader.i64()?;
    let leader_epoch = if version >= 3 { reader.i32()? } else { -1 };
    let metadata = reader.string()?;
    let commit_timestamp_ms = reader.i64()?;
    Some(CommittedOffset {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
    })
}

/// Decodes a group metadata value of version 0 to 3.
pub fn decode_group_value(value: &[u8]) -> Option<PersistedGroup> {
    let mut reader = Reader(WireReader::new(value));
    let version = reader.i16()?;
    let protocol_type = reader.string()?;
    let generation_id = reader.i32()?;
    let protocol_name = reader.nullable_string()?;
    let leader = reader.nullable_string()?;
    let state_timestamp_ms = if version >= 2 { reader.i64()? } else { -1 };
    let count = reader.i32()?;
    // Grown as members really decode: the count is read off a record any client could have
    // written, and a short record ends the loop at its first missing field.
    let mut members = Vec::new();
    for _ in 0..count.max(0) {
        let member_id = reader.string()?;
        let group_instance_id = if version >= 3 {
            reader.nullable_string()?
        } else {
            None
        };
        let client_id = reader.string()?;
        let client_host = reader.string()?;
        let rebalance_timeout_ms = if version >= 1 { reader.i32()? } else { -1 };
        let session_timeout_ms = reader.i32()?;
        let subscription = reader.bytes()?;
        let assignment = reader.bytes()?;
        members.push(PersistedMember {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    Some(PersistedGroup {
        protocol_type,
        generation_id,
        protocol_name,
        leader,
        state_timestamp_ms,
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_records_round_trip() {
        let committed = CommittedOffset {
            offset: 42,
            leader_epoch: 3,
            metadata: "meta".into(),
            commit_timestamp_ms: 99,
        };
        assert_eq!(
            decode_offset_value(&offset_value(&committed)),
            Some(committed)
        );
        assert_eq!(
            decode_key(&offset_key("g", "t", 7)),
            Some(OffsetsKey::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 7
            })
        );
    }

    #[test]
    fn group_records_round_trip() {
        let group = PersistedGroup {
            protocol_type: "consumer".into(),
            generation_id: 5,
            protocol_name: Some("range".into()),
            leader: Some("m-1".into()),
            state_timestamp_ms: 1000,
            members: vec![PersistedMember {
                member_id: "m-1".into(),
                group_instance_id: Some("i-1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"assign"),
            }],
        };
        assert_eq!(decode_group_value(&group_value(&group)), Some(group));
        assert_eq!(
            decode_key(&group_key("g")),
            Some(OffsetsKey::Group { group: "g".into() })
        );
    }

    #[test]
    fn truncated_values_are_ignored_not_misread() {
        let committed = CommittedOffset {
            offset: 1,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: 2,
        };
        let value = offset_value(&committed);
        assert_eq!(decode_offset_value(&value[..value.len() - 1]), None);
        assert_eq!(decode_key(&[0, 9]), None);
    }

    #[test]
    fn a_group_value_claiming_two_billion_members_is_refused_without_allocating_for_them() {
        let mut value = Vec::new();
        value.extend(3i16.to_be_bytes()); // version
        value.extend([0, 8]);
        value.extend(b"consumer");
        value.extend(1i32.to_be_bytes()); // generation
        value.extend([0xff, 0xff, 0xff, 0xff]); // no protocol, no leader
        value.extend(0i64.to_be_bytes()); // state timestamp
        value.extend(i32::MAX.to_be_bytes()); // members
        assert!(decode_group_value(&value).is_none());
    }
}
