//! What the group coordinator keeps for one `__consumer_offsets` partition, and how it is rebuilt
//! from the partition's records.

use std::collections::{BTreeMap, HashMap};

use cauce_protocol::control::TransactionResult;
use tokio::sync::oneshot;

use super::consumer_group::ConsumerGroup;
use super::records::{
    decode_group_value, decode_key, decode_offset_value, CommittedOffset, OffsetsKey,
    PersistedGroup,
};
use super::state::{Group, JoinOutcome, Member, SyncOutcome};
use crate::coordinator_runtime::CoordinatorShard;

/// Offsets of one group by (topic, partition).
pub type GroupOffsets = BTreeMap<(String, i32), CommittedOffset>;

/// A parked request's way back to its connection.
pub enum Waiter {
    /// A JoinGroup waiting for the rebalance.
    Join(oneshot::Sender<JoinOutcome>),
    /// A SyncGroup waiting for the leader.
    Sync(oneshot::Sender<SyncOutcome>),
}

/// The groups of one `__consumer_offsets` partition.
#[derive(Default)]
pub struct GroupShard {
    /// Classic groups by id.
    pub groups: HashMap<String, Group>,
    /// KIP-848 consumer groups by id.
    pub consumer_groups: HashMap<String, ConsumerGroup>,
    /// Committed offsets by group id.
    pub offsets: HashMap<String, GroupOffsets>,
    /// Offsets committed inside transactions not yet ended, by producer id then group: they
    /// take effect with the producer's COMMIT marker and vanish with its ABORT.
    pub pending_offsets: HashMap<i64, HashMap<String, GroupOffsets>>,
    /// Parked JoinGroup and SyncGroup requests of these groups, by token.
    pub waiters: HashMap<u64, Waiter>,
    /// Group metadata records met while loading (the last one of each group wins); turned
    /// into groups once the whole partition has been read.
    replayed_groups: HashMap<String, Option<PersistedGroup>>,
}

impl CoordinatorShard for GroupShard {
    fn replay(&mut self, key: &[u8], value: Option<&[u8]>, transactional_producer: Option<i64>) {
        match decode_key(key) {
            Some(OffsetsKey::Offset {
                group,
                topic,
                partition,
            }) => {
                let entry = match transactional_producer {
                    Some(producer_id) => self
                        .pending_offsets
                        .entry(producer_id)
                        .or_default()
                        .entry(group)
                        .or_default(),
                    None => self.offsets.entry(group).or_default(),
                };
                match value.and_then(decode_offset_value) {
                    Some(committed) => entry.insert((topic, partition), committed),
                    None => entry.remove(&(topic, partition)),
                };
            }
            Some(OffsetsKey::Group { group }) => {
                self.replayed_groups
                    .insert(group, value.and_then(decode_group_value));
            }
            None => {}
        }
    }

    fn replay_marker(&mut self, producer_id: i64, result: TransactionResult) {
        self.end_transaction(producer_id, result);
    }

    fn finish_loading(&mut self, now_ms: i64) {
        self.offsets
            .retain(|_, group_offsets| !group_offsets.is_empty());
        for (group_id, persisted) in std::mem::take(&mut self.replayed_groups) {
            let Some(persisted) = persisted else { continue };
            self.groups
                .insert(group_id.clone(), restored(&group_id, persisted, now_ms));
        }
        for group_id in self.offsets.keys() {
            self.groups
                .entry(group_id.clone())
                .or_insert_with(|| Group::new(group_id, now_ms));
        }
    }
}

impl GroupShard {
    /// A producer's transaction ended: its pending offsets become the committed ones of their
    /// groups on COMMIT, and are dropped on ABORT.
    pub fn end_transaction(&mut self, producer_id: i64, result: TransactionResult) {
        let Some(pending) = self.pending_offsets.remove(&producer_id) else {
            return;
        };
        if result == TransactionResult::Abort {
            return;
        }
        for (group, offsets) in pending {
            self.offsets.entry(group).or_default().extend(offsets);
        }
    }

    /// Whether a transaction not yet ended holds an offset of the group's partition.
    pub fn has_pending_offset(&self, group: &str, topic: &str, partition: i32) -> bool {
        self.pending_offsets.values().any(|groups| {
            groups
                .get(group)
                .is_some_and(|offsets| offsets.contains_key(&(topic.to_string(), partition)))
        })
    }

    /// Whether a transaction not yet ended holds offsets of the group.
    pub fn has_pending_offsets(&self, group: &str) -> bool {
        self.pending_offsets
            .values()
            .any(|groups| groups.contains_key(group))
    }
}

/// A classic group as its last metadata record left it, every member given a fresh session.
fn restored(group_id: &str, persisted: PersistedGroup, now_ms: i64) -> Group {
    let mut group = Group::new(group_id, now_ms);
    let protocol_name = persisted.protocol_name.clone();
    let members = persisted
        .members
        .into_iter()
        .map(|member| Member {
            member_id: member.member_id,
            group_instance_id: member.group_instance_id,
            client_id: member.client_id,
            client_host: member.client_host,
            session_timeout_ms: member.session_timeout_ms,
            rebalance_timeout_ms: member.rebalance_timeout_ms,
            protocols: vec![(
                protocol_name.clone().unwrap_or_default(),
                member.subscription,
            )],
            assignment: member.assignment,
            last_heartbeat_ms: now_ms,
            awaiting_join: None,
            awaiting_sync: None,
        })
        .collect();
    let protocol_type = Some(persisted.protocol_type).filter(|kind| !kind.is_empty());
    group.restore(
        persisted.generation_id,
        protocol_type,
        protocol_name,
        persisted.leader,
        members,
        now_ms,
    );
    group
}
