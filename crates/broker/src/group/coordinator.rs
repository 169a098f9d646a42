//! The coordinator shell: holds the groups, parks requests, persists to `__consumer_offsets`.
//!
//! Decisions are made by [`Group`]; this module locks, feeds it the clock, delivers the answers
//! it produces to parked requests, and writes records. Records go to the `__consumer_offsets`
//! partition of the group (Kafka's key/value formats, see [`super::records`]) before the client
//! is answered, and are replayed at startup, so groups and offsets survive a restart.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Buf, Bytes, BytesMut};
use cauce_metadata::TopicRequest;
use cauce_protocol::batch::BatchIter;
use cauce_protocol::records::{build_batch, records, BatchOptions, NewRecord};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::consumer_group::{
    ConsumerGroup, ConsumerGroupError, ConsumerGroupLimits, HeartbeatOutcome, HeartbeatRequest,
    TopicsMetadata,
};
use super::records::{
    decode_group_value, decode_key, decode_offset_value, group_key, group_value, offset_key,
    offset_value, partition_for_group, CommittedOffset, OffsetsKey, PersistedGroup,
    PersistedMember,
};
use super::state::{
    Effect, Group, GroupError, GroupLimits, GroupPhase, JoinOutcome, JoinRequest, Member,
    SyncOutcome,
};
use crate::{now_ms, Broker, BrokerError};

/// The internal topic that stores offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// How far a coordinator write must reach before it counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replication {
    /// This broker's log (the leader's).
    Leader,
    /// Every in-sync replica, as `acks=all`.
    InSync,
}

/// How long a coordinator write waits for the in-sync replicas.
const REPLICATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Offsets of one group by (topic, partition).
pub type GroupOffsets = BTreeMap<(String, i32), CommittedOffset>;

/// A parked request's way back to its connection.
enum Waiter {
    /// A JoinGroup waiting for the rebalance.
    Join(oneshot::Sender<JoinOutcome>),
    /// A SyncGroup waiting for the leader.
    Sync(oneshot::Sender<SyncOutcome>),
}

/// Settings the coordinator takes from the broker configuration.
#[derive(Debug, Clone, Copy)]
pub struct CoordinatorSettings {
    /// Limits on sessions and the initial rebalance delay.
    pub limits: GroupLimits,
    /// Session timeout and heartbeat interval of KIP-848 consumer groups.
    pub consumer_limits: ConsumerGroupLimits,
    /// `offsets.topic.num.partitions`.
    pub offsets_partitions: i32,
    /// `offsets.topic.replication.factor`.
    pub offsets_replication_factor: i16,
    /// `offsets.retention.minutes`, in ms: how long an empty group's offsets are kept.
    pub offsets_retention_ms: i64,
    /// `offsets.topic.segment.bytes`.
    pub offsets_segment_bytes: i64,
    /// `offset.metadata.max.bytes`.
    pub offset_metadata_max_bytes: usize,
}

/// A snapshot of a group for DescribeGroups.
pub struct GroupDescription {
    /// The phase.
    pub phase: GroupPhase,
    /// The protocol type.
    pub protocol_type: String,
    /// The chosen protocol.
    pub protocol_name: String,
    /// Members with their metadata and assignment.
    pub members: Vec<Member>,
}

/// The group coordinator of this broker.
pub struct GroupCoordinator {
    /// Settings from the broker configuration.
    settings: CoordinatorSettings,
    /// Classic groups by id.
    groups: Mutex<HashMap<String, Group>>,
    /// KIP-848 consumer groups by id.
    consumer_groups: Mutex<HashMap<String, ConsumerGroup>>,
    /// Committed offsets by group id.
    offsets: Mutex<HashMap<String, GroupOffsets>>,
    /// Parked requests by token.
    waiters: Mutex<HashMap<u64, Waiter>>,
    /// Source of tokens for parked requests.
    next_token: AtomicU64,
    /// The `__consumer_offsets` partitions this coordinator serves: this broker leads them and
    /// their groups are loaded. Groups of other partitions are another broker's.
    owned: Mutex<HashSet<i32>>,
    /// Held while `__consumer_offsets` is created and its partitions replayed, so that no
    /// request sees the new topic before this broker serves it.
    offsets_topic_creation: Mutex<()>,
}

impl GroupCoordinator {
    /// An empty coordinator; [`GroupCoordinator::load`] fills it from disk.
    pub fn new(settings: CoordinatorSettings) -> GroupCoordinator {
        GroupCoordinator {
            settings,
            groups: Mutex::new(HashMap::new()),
            consumer_groups: Mutex::new(HashMap::new()),
            offsets: Mutex::new(HashMap::new()),
            waiters: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(1),
            owned: Mutex::new(HashSet::new()),
            offsets_topic_creation: Mutex::new(()),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &CoordinatorSettings {
        &self.settings
    }

    /// The `__consumer_offsets` partition that holds a group.
    pub fn partition_of(&self, group_id: &str) -> i32 {
        partition_for_group(group_id, self.settings.offsets_partitions)
    }

    /// Whether this broker coordinates the group (leads its partition and has loaded it). A
    /// single node coordinates every group, even before `__consumer_offsets` exists.
    pub fn owns(&self, broker: &Broker, group_id: &str) -> bool {
        if self.owned.lock().contains(&self.partition_of(group_id)) {
            return true;
        }
        broker.quorum.is_none() && broker.metadata.image().topic(OFFSETS_TOPIC).is_none()
    }

    /// Creates `__consumer_offsets` if it does not exist yet (blocking: it writes metadata).
    /// A cluster waits until `offsets.topic.replication.factor` brokers are live, as Kafka
    /// does; a single node keeps one copy.
    pub fn ensure_offsets_topic(&self, broker: &Broker) -> Result<(), BrokerError> {
        let _creation = self.offsets_topic_creation.lock();
        let image = broker.metadata.image();
        if image.topic(OFFSETS_TOPIC).is_some() {
            return Ok(());
        }
        let live = image
            .brokers
            .values()
            .filter(|broker| !broker.fenced)
            .count();
        let wanted = self.settings.offsets_replication_factor.max(1);
        let replication_factor = if broker.quorum.is_none() {
            wanted.min(live.max(1) as i16)
        } else if (live as i16) < wanted {
            return Err(BrokerError::Config(format!(
                "{OFFSETS_TOPIC} needs {wanted} live brokers (offsets.topic.replication.factor), found {live}"
            )));
        } else {
            wanted
        };
        let request = TopicRequest {
            name: OFFSETS_TOPIC.to_string(),
            num_partitions: self.settings.offsets_partitions,
            replication_factor,
            assignments: Vec::new(),
            configs: BTreeMap::from([
                ("cleanup.policy".to_string(), "compact".to_string()),
                (
                    "segment.bytes".to_string(),
                    self.settings.offsets_segment_bytes.to_string(),
                ),
            ]),
        };
        match broker.metadata.create_topic(&request, false) {
            Ok(_) | Err(cauce_metadata::MetadataError::TopicAlreadyExists(_)) => {}
            Err(error) => return Err(error.into()),
        }
        broker.sync_logs()?;
        self.follow_leadership(broker)
    }

    /// Serves the `__consumer_offsets` partitions this broker leads now: replays those it has
    /// come to lead (at startup, or after another broker failed) and forgets the groups of those
    /// it no longer leads. Blocking: it reads logs.
    pub fn follow_leadership(&self, broker: &Broker) -> Result<(), BrokerError> {
        let led: HashSet<i32> = (0..self.settings.offsets_partitions)
            .filter(|index| {
                broker
                    .logs
                    .partition(OFFSETS_TOPIC, *index)
                    .is_some_and(|partition| partition.is_leader())
            })
            .collect();
        let owned = self.owned.lock().clone();
        let lost: HashSet<i32> = owned.difference(&led).copied().collect();
        let gained: Vec<i32> = led.difference(&owned).copied().collect();
        if !lost.is_empty() {
            self.unload(&lost);
        }
        if !gained.is_empty() {
            self.load(broker, &gained)?;
        }
        *self.owned.lock() = led;
        Ok(())
    }

    /// Forgets the groups held in `partitions`, which another broker now coordinates.
    fn unload(&self, partitions: &HashSet<i32>) {
        let theirs = |group_id: &String| partitions.contains(&self.partition_of(group_id));
        self.groups.lock().retain(|group_id, _| !theirs(group_id));
        self.consumer_groups
            .lock()
            .retain(|group_id, _| !theirs(group_id));
        self.offsets.lock().retain(|group_id, _| !theirs(group_id));
        tracing::info!(partitions = ?partitions, "stopped coordinating the groups of these {OFFSETS_TOPIC} partitions");
    }

    /// Replays `partitions` of `__consumer_offsets` into memory.
    fn load(&self, broker: &Broker, partitions: &[i32]) -> Result<(), BrokerError> {
        let now = now_ms();
        let mut persisted_groups: HashMap<String, Option<PersistedGroup>> = HashMap::new();
        let mut offsets = self.offsets.lock();
        for &partition in partitions {
            let Some(log) = broker.logs.partition(OFFSETS_TOPIC, partition) else {
                continue;
            };
            let (mut position, max_decompressed) = log.with_log(|log| {
                (
                    log.log_start_offset(),
                    log.config().max_decompressed_bytes(),
                )
            });
            loop {
                let read = log.read(position, 1 << 20, true)?;
                let Some(slice) = read.slice else { break };
                let bytes = slice.read_bytes().map_err(BrokerError::Io)?;
                let mut next = position;
                for batch in BatchIter::new(&bytes) {
                    next = batch.header.next_offset();
                    let Ok((_, iterator)) = records(batch.bytes, max_decompressed) else {
                        continue;
                    };
                    for record in iterator.flatten() {
                        let Some(key) = record.key.as_deref().and_then(decode_key) else {
                            continue;
                        };
                        match key {
                            OffsetsKey::Offset {
                                group,
                                topic,
                                partition,
                            } => {
                                let entry = offsets.entry(group).or_default();
                                match record.value.as_deref().and_then(decode_offset_value) {
                                    Some(committed) => entry.insert((topic, partition), committed),
                                    None => entry.remove(&(topic, partition)),
                                };
                            }
                            OffsetsKey::Group { group } => {
                                persisted_groups.insert(
                                    group,
                                    record.value.as_deref().and_then(decode_group_value),
                                );
                            }
                        }
                    }
                }
                if next <= position {
                    break;
                }
                position = next;
            }
        }
        offsets.retain(|_, group_offsets| !group_offsets.is_empty());
        let mut groups = self.groups.lock();
        for (group_id, persisted) in persisted_groups {
            let Some(persisted) = persisted else { continue };
            let mut group = Group::new(&group_id, now);
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
                    last_heartbeat_ms: now,
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
                now,
            );
            groups.insert(group_id, group);
        }
        for group_id in offsets.keys() {
            groups
                .entry(group_id.clone())
                .or_insert_with(|| Group::new(group_id, now));
        }
        tracing::info!(
            groups = groups.len(),
            partitions = partitions.len(),
            "consumer groups loaded"
        );
        Ok(())
    }

    fn park(&self, waiter: Waiter) -> u64 {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        self.waiters.lock().insert(token, waiter);
        token
    }

    fn apply_effects(&self, broker: &Broker, group: &Group, effects: Vec<Effect>) {
        let mut waiters = self.waiters.lock();
        for effect in effects {
            match effect {
                Effect::Join { token, outcome } => {
                    if let Some(Waiter::Join(sender)) = waiters.remove(&token) {
                        let _ = sender.send(outcome);
                    }
                }
                Effect::Sync { token, outcome } => {
                    if let Some(Waiter::Sync(sender)) = waiters.remove(&token) {
                        let _ = sender.send(outcome);
                    }
                }
                Effect::Persist => {
                    tracing::info!(
                        group = %group.group_id,
                        generation = group.generation_id,
                        phase = group.phase.kafka_name(),
                        members = group.members.len(),
                        "group changed"
                    );
                    let value = group_value(&persisted(group));
                    // Not waiting for the other replicas here: this runs under the groups' lock,
                    // and a lost membership record only costs a rebalance.
                    if let Err(error) = self.append(
                        broker,
                        &group.group_id,
                        vec![(group_key(&group.group_id), Some(value))],
                        Replication::Leader,
                    ) {
                        tracing::error!(group = %group.group_id, %error, "persisting group metadata failed");
                    }
                }
            }
        }
    }

    /// Appends records to the group's partition of `__consumer_offsets`, waiting for the
    /// in-sync replicas when asked to. Never call with [`Replication::InSync`] while holding a
    /// lock that request handlers take: the wait needs the reactor to make progress.
    fn append(
        &self,
        broker: &Broker,
        group_id: &str,
        entries: Vec<(Vec<u8>, Option<Vec<u8>>)>,
        replication: Replication,
    ) -> Result<(), BrokerError> {
        let partition_index = partition_for_group(group_id, self.settings.offsets_partitions);
        let Some(partition) = broker.logs.partition(OFFSETS_TOPIC, partition_index) else {
            return Err(BrokerError::Config(format!(
                "{OFFSETS_TOPIC} partition {partition_index} is not hosted here"
            )));
        };
        let now = now_ms();
        let new_records: Vec<NewRecord> = entries
            .into_iter()
            .map(|(key, value)| NewRecord {
                timestamp_ms: now,
                key: Some(key),
                value,
                headers: Vec::new(),
            })
            .collect();
        let batch = build_batch(0, &new_records, &BatchOptions::default())
            .map_err(|error| BrokerError::Config(error.to_string()))?;
        let mut bytes = BytesMut::from(&batch[..]);
        let outcome = partition.append(&mut bytes, now)?;
        // Like Kafka's coordinator, write with acks=all: a commit answered before the other
        // in-sync replicas have it could be lost if this broker failed.
        let end = outcome.last_offset + 1;
        if replication == Replication::InSync && partition.high_watermark() < end {
            crate::cluster::block_on(partition.wait_replicated(end, REPLICATION_TIMEOUT)).map_err(
                |error| {
                    BrokerError::Config(format!("{OFFSETS_TOPIC} write not replicated: {error:?}"))
                },
            )?;
        }
        Ok(())
    }

    /// Runs `work` on the group, creating it when absent or dead.
    fn with_group<T>(
        &self,
        broker: &Broker,
        group_id: &str,
        work: impl FnOnce(&mut Group, i64) -> (T, Vec<Effect>),
    ) -> T {
        let now = now_ms();
        let mut groups = self.groups.lock();
        let group = groups
            .entry(group_id.to_string())
            .or_insert_with(|| Group::new(group_id, now));
        if group.phase == GroupPhase::Dead {
            *group = Group::new(group_id, now);
        }
        let (result, effects) = work(group, now);
        self.apply_effects(broker, group, effects);
        result
    }

    /// JoinGroup: answered now or once the rebalance completes.
    pub fn join(
        &self,
        broker: &Broker,
        group_id: &str,
        request: JoinRequest,
    ) -> oneshot::Receiver<JoinOutcome> {
        let (sender, receiver) = oneshot::channel();
        let token = self.park(Waiter::Join(sender));
        let limits = self.settings.limits;
        let immediate = self.with_group(broker, group_id, |group, now| {
            group.join(request, token, &limits, now, |prefix| {
                format!("{prefix}-{}", uuid::Uuid::new_v4())
            })
        });
        if let Some(outcome) = immediate {
            if let Some(Waiter::Join(sender)) = self.waiters.lock().remove(&token) {
                let _ = sender.send(outcome);
            }
        }
        receiver
    }

    /// SyncGroup: answered now (stable group, errors) or once the leader's assignment arrives.
    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &self,
        broker: &Broker,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> oneshot::Receiver<SyncOutcome> {
        let (sender, receiver) = oneshot::channel();
        let token = self.park(Waiter::Sync(sender));
        let immediate = self.with_group(broker, group_id, |group, now| {
            group.sync(
                member_id,
                group_instance_id,
                generation_id,
                protocol_type,
                protocol_name,
                assignments,
                token,
                now,
            )
        });
        if let Some(outcome) = immediate {
            if let Some(Waiter::Sync(sender)) = self.waiters.lock().remove(&token) {
                let _ = sender.send(outcome);
            }
        }
        receiver
    }

    /// Heartbeat.
    pub fn heartbeat(
        &self,
        broker: &Broker,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), GroupError> {
        if !self.groups.lock().contains_key(group_id) {
            return Err(GroupError::UnknownMemberId);
        }
        self.with_group(broker, group_id, |group, now| {
            (
                group.heartbeat(member_id, group_instance_id, generation_id, now),
                Vec::new(),
            )
        })
    }

    /// LeaveGroup for each (member id, instance id).
    pub fn leave(
        &self,
        broker: &Broker,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Vec<Result<(), GroupError>> {
        tracing::info!(group = %group_id, members = ?members, "members leaving");
        let limits = self.settings.limits;
        self.with_group(broker, group_id, |group, now| {
            let mut results = Vec::new();
            let mut effects = Vec::new();
            for (member_id, instance_id) in members {
                let (result, more) = group.leave(member_id, instance_id.as_deref(), &limits, now);
                results.push(result);
                effects.extend(more);
            }
            (results, effects)
        })
    }

    /// Advances every group's clock and expires offsets of long-empty groups.
    pub fn tick(&self, broker: &Broker) {
        let now = now_ms();
        let limits = self.settings.limits;
        let mut expired_groups = Vec::new();
        {
            let mut groups = self.groups.lock();
            for group in groups.values_mut() {
                let effects = group.tick(&limits, now);
                if !effects.is_empty() {
                    self.apply_effects(broker, group, effects);
                }
                if group.offsets_expired(self.settings.offsets_retention_ms, now) {
                    expired_groups.push(group.group_id.clone());
                }
            }
        }
        for group in self.consumer_groups.lock().values_mut() {
            let expired = group.tick(&self.settings.consumer_limits, now);
            if !expired.is_empty() {
                tracing::info!(group = %group.group_id, members = ?expired, "consumer group members expired");
            }
        }
        for group_id in expired_groups {
            let has_offsets = self
                .offsets
                .lock()
                .get(&group_id)
                .is_some_and(|offsets| !offsets.is_empty());
            if has_offsets {
                tracing::info!(group = %group_id, "offsets expired after offsets.retention.minutes");
                if let Err(error) = self.remove_group(broker, &group_id) {
                    tracing::error!(group = %group_id, %error, "expiring offsets failed");
                }
            }
        }
    }

    /// Checks an OffsetCommit's member, then stores the offsets durably (page cache) and in memory.
    pub fn commit(
        &self,
        broker: &Broker,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        commits: Vec<(String, i32, CommittedOffset)>,
    ) -> Result<(), GroupError> {
        let consumer_verdict = self
            .consumer_groups
            .lock()
            .get(group_id)
            .map(|group| group.check_commit(member_id, generation_id));
        match consumer_verdict {
            Some(Err(ConsumerGroupError::StaleMemberEpoch)) => {
                return Err(GroupError::StaleMemberEpoch)
            }
            Some(Err(ConsumerGroupError::FencedMemberEpoch)) => {
                return Err(GroupError::FencedMemberEpoch)
            }
            Some(Err(_)) => return Err(GroupError::UnknownMemberId),
            Some(Ok(())) => {}
            None => self.with_group(broker, group_id, |group, now| {
                (
                    group.check_commit(member_id, group_instance_id, generation_id, now),
                    Vec::new(),
                )
            })?,
        }
        if commits.is_empty() {
            return Ok(());
        }
        let entries = commits
            .iter()
            .map(|(topic, partition, committed)| {
                (
                    offset_key(group_id, topic, *partition),
                    Some(offset_value(committed)),
                )
            })
            .collect();
        if let Err(error) = self.append(broker, group_id, entries, Replication::InSync) {
            tracing::error!(group = %group_id, %error, "storing committed offsets failed");
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let mut offsets = self.offsets.lock();
        let group_offsets = offsets.entry(group_id.to_string()).or_default();
        for (topic, partition, committed) in commits {
            group_offsets.insert((topic, partition), committed);
        }
        Ok(())
    }

    /// ConsumerGroupHeartbeat (KIP-848): answered at once.
    pub fn consumer_heartbeat(
        &self,
        broker: &Broker,
        group_id: &str,
        request: HeartbeatRequest,
    ) -> HeartbeatOutcome {
        let classic_in_use = self
            .groups
            .lock()
            .get(group_id)
            .is_some_and(|group| !group.members.is_empty());
        if classic_in_use {
            return HeartbeatOutcome {
                error: Some(ConsumerGroupError::NotAConsumerGroup),
                member_id: request.member_id,
                member_epoch: request.member_epoch,
                assignment: None,
            };
        }
        let image = broker.metadata.image();
        let topics: TopicsMetadata = image
            .topics
            .values()
            .map(|topic| {
                (
                    topic.name.clone(),
                    (topic.topic_id, topic.partitions.len() as i32),
                )
            })
            .collect();
        let mut groups = self.consumer_groups.lock();
        let group = groups
            .entry(group_id.to_string())
            .or_insert_with(|| ConsumerGroup::new(group_id));
        let epoch_before = group.group_epoch;
        let outcome = group.heartbeat(request, &topics, &self.settings.consumer_limits, now_ms());
        if group.group_epoch != epoch_before {
            tracing::info!(group = %group_id, epoch = group.group_epoch, members = group.members.len(), "consumer group changed");
        }
        outcome
    }

    /// A KIP-848 group's state, for ConsumerGroupDescribe.
    pub fn describe_consumer_group(&self, group_id: &str) -> Option<ConsumerGroup> {
        self.consumer_groups.lock().get(group_id).cloned()
    }

    /// The committed offsets of a group, all of them or those asked for.
    pub fn committed(&self, group_id: &str) -> GroupOffsets {
        self.offsets
            .lock()
            .get(group_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Every group: (group id, protocol type, state name, group type "classic" or "consumer").
    pub fn list(&self) -> Vec<(String, String, &'static str, &'static str)> {
        let mut listed: Vec<(String, String, &'static str, &'static str)> = self
            .groups
            .lock()
            .values()
            .filter(|group| group.phase != GroupPhase::Dead)
            .map(|group| {
                (
                    group.group_id.clone(),
                    group.protocol_type.clone().unwrap_or_default(),
                    group.phase.kafka_name(),
                    "classic",
                )
            })
            .collect();
        let consumer_groups = self.consumer_groups.lock();
        listed.retain(|(group_id, _, state, _)| {
            !(consumer_groups.contains_key(group_id) && *state == "Empty")
        });
        listed.extend(consumer_groups.values().map(|group| {
            (
                group.group_id.clone(),
                "consumer".to_string(),
                group.state_name(),
                "consumer",
            )
        }));
        listed
    }

    /// A group's description; `None` if unknown.
    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        let groups = self.groups.lock();
        let group = groups.get(group_id)?;
        Some(GroupDescription {
            phase: group.phase,
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocol_name: group.protocol_name.clone().unwrap_or_default(),
            members: group.members.values().cloned().collect(),
        })
    }

    /// DeleteGroups: only empty groups; writes tombstones for the group and its offsets.
    pub fn delete(&self, broker: &Broker, group_id: &str) -> Result<(), GroupError> {
        {
            let groups = self.groups.lock();
            match groups.get(group_id) {
                None => return Err(GroupError::GroupIdNotFound),
                Some(group) if group.phase == GroupPhase::Dead => {
                    return Err(GroupError::GroupIdNotFound)
                }
                Some(group) if group.phase != GroupPhase::Empty => {
                    return Err(GroupError::NonEmptyGroup)
                }
                Some(_) => {}
            }
        }
        self.remove_group(broker, group_id).map_err(|error| {
            tracing::error!(group = %group_id, %error, "deleting group failed");
            GroupError::CoordinatorNotAvailable
        })
    }

    fn remove_group(&self, broker: &Broker, group_id: &str) -> Result<(), BrokerError> {
        let offsets = self
            .offsets
            .lock()
            .get(group_id)
            .cloned()
            .unwrap_or_default();
        let mut entries: Vec<(Vec<u8>, Option<Vec<u8>>)> = offsets
            .keys()
            .map(|(topic, partition)| (offset_key(group_id, topic, *partition), None))
            .collect();
        entries.push((group_key(group_id), None));
        self.append(broker, group_id, entries, Replication::InSync)?;
        self.offsets.lock().remove(group_id);
        let now = now_ms();
        let mut groups = self.groups.lock();
        if let Some(group) = groups.get_mut(group_id) {
            let effects = group.delete(now);
            self.apply_effects(broker, group, effects);
        }
        groups.remove(group_id);
        tracing::info!(group = %group_id, "group deleted");
        Ok(())
    }

    /// OffsetDelete: removes committed offsets of partitions the group does not subscribe to.
    pub fn delete_offsets(
        &self,
        broker: &Broker,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        let subscribed: Vec<String> = {
            let groups = self.groups.lock();
            let Some(group) = groups
                .get(group_id)
                .filter(|group| group.phase != GroupPhase::Dead)
            else {
                return Err(GroupError::GroupIdNotFound);
            };
            let protocol = group.protocol_name.clone().unwrap_or_default();
            group
                .members
                .values()
                .flat_map(|member| {
                    let metadata = member
                        .protocols
                        .iter()
                        .find(|(name, _)| *name == protocol)
                        .map(|(_, metadata)| metadata.clone());
                    subscribed_topics(metadata.unwrap_or_default())
                })
                .collect()
        };
        let mut results = Vec::new();
        let mut tombstones = Vec::new();
        for (topic, partition) in partitions {
            if subscribed.contains(topic) {
                results.push(Err(GroupError::GroupSubscribedToTopic));
            } else {
                tombstones.push((offset_key(group_id, topic, *partition), None));
                results.push(Ok(()));
            }
        }
        if !tombstones.is_empty() {
            self.append(broker, group_id, tombstones, Replication::InSync)
                .map_err(|_| GroupError::CoordinatorNotAvailable)?;
            let mut offsets = self.offsets.lock();
            if let Some(group_offsets) = offsets.get_mut(group_id) {
                for ((topic, partition), result) in partitions.iter().zip(&results) {
                    if result.is_ok() {
                        group_offsets.remove(&(topic.clone(), *partition));
                    }
                }
            }
        }
        Ok(results)
    }
}

/// The group as its metadata record stores it.
fn persisted(group: &Group) -> PersistedGroup {
    let protocol = group.protocol_name.clone().unwrap_or_default();
    PersistedGroup {
        protocol_type: group.protocol_type.clone().unwrap_or_default(),
        generation_id: group.generation_id,
        protocol_name: group.protocol_name.clone(),
        leader: group.leader.clone(),
        state_timestamp_ms: group.state_timestamp_ms,
        members: group
            .members
            .values()
            .map(|member| PersistedMember {
                member_id: member.member_id.clone(),
                group_instance_id: member.group_instance_id.clone(),
                client_id: member.client_id.clone(),
                client_host: member.client_host.clone(),
                rebalance_timeout_ms: member.rebalance_timeout_ms,
                session_timeout_ms: member.session_timeout_ms,
                subscription: member
                    .protocols
                    .iter()
                    .find(|(name, _)| *name == protocol)
                    .map(|(_, metadata)| metadata.clone())
                    .unwrap_or_default(),
                assignment: member.assignment.clone(),
            })
            .collect(),
    }
}

/// The topics of a consumer-protocol subscription: `version: i16, topics: [string], ...`.
fn subscribed_topics(mut metadata: Bytes) -> Vec<String> {
    let mut topics = Vec::new();
    if metadata.remaining() < 6 {
        return topics;
    }
    let _version = metadata.get_i16();
    let count = metadata.get_i32();
    for _ in 0..count.max(0) {
        if metadata.remaining() < 2 {
            break;
        }
        let length = metadata.get_i16().max(0) as usize;
        if metadata.remaining() < length {
            break;
        }
        topics.push(String::from_utf8_lossy(&metadata.split_to(length)).into_owned());
    }
    topics
}
