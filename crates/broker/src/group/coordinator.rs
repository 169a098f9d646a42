//! The coordinator shell: parks requests, feeds the groups the clock, and persists them.
//!
//! Decisions are made by [`Group`] and [`ConsumerGroup`]; this module delivers the answers they
//! produce to parked requests and writes records. The groups of each `__consumer_offsets`
//! partition are one [`GroupShard`] of the [`CoordinatorRuntime`], which loads the partitions
//! this broker leads, gives each its own lock and appends to it. Records (Kafka's key/value
//! formats, see [`super::records`]) are written before the client is answered and replayed when
//! the partition loads, so groups and offsets survive a restart and a failover.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Buf, Bytes};
use tokio::sync::oneshot;

use super::consumer_group::{
    ConsumerGroup, ConsumerGroupError, ConsumerGroupLimits, HeartbeatOutcome, HeartbeatRequest,
    TopicsMetadata,
};
use super::records::{
    group_key, group_value, offset_key, offset_value, CommittedOffset, PersistedGroup,
    PersistedMember,
};
pub use super::shard::GroupOffsets;
use super::shard::{GroupShard, Waiter};
use super::state::{
    Effect, Group, GroupError, GroupLimits, GroupPhase, JoinOutcome, JoinRequest, Member,
    SyncOutcome,
};
use crate::coordinator_runtime::{CoordinatorRuntime, SharedShard};
use crate::errors::{group_error_code, log_error_code};
use crate::replica_manager::{Appended, Refusal};
use crate::{now_ms, Broker, BrokerError};
use cauce_protocol::control::EndTxnMarker;
use cauce_protocol::ResponseError;

/// The internal topic that stores offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// How long a coordinator write waits for the in-sync replicas.
const REPLICATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

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

/// Who commits offsets, as OffsetCommit and TxnOffsetCommit name the member.
pub struct Committer<'a> {
    /// The member id (empty for a simple consumer).
    pub member_id: &'a str,
    /// Its static instance id.
    pub group_instance_id: Option<&'a str>,
    /// Its generation (or KIP-848 member epoch); negative for a simple consumer.
    pub generation_id: i32,
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
    /// The groups, one shard per `__consumer_offsets` partition served here.
    runtime: CoordinatorRuntime<GroupShard>,
    /// Source of tokens for parked requests.
    next_token: AtomicU64,
    /// Held while `__consumer_offsets` is created and its partitions replayed, so that no
    /// request sees the new topic before this broker serves it.
    offsets_topic_creation: tokio::sync::Mutex<()>,
}

impl GroupCoordinator {
    /// An empty coordinator; [`GroupCoordinator::follow_leadership`] loads the groups.
    pub fn new(settings: CoordinatorSettings) -> GroupCoordinator {
        GroupCoordinator {
            settings,
            runtime: CoordinatorRuntime::new(OFFSETS_TOPIC, settings.offsets_partitions, |_| {
                GroupShard::default()
            }),
            next_token: AtomicU64::new(1),
            offsets_topic_creation: tokio::sync::Mutex::new(()),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &CoordinatorSettings {
        &self.settings
    }

    /// The `__consumer_offsets` partition that holds a group.
    pub fn partition_of(&self, group_id: &str) -> i32 {
        crate::coordinator_runtime::partition_for_key(group_id, self.settings.offsets_partitions)
    }

    /// Whether this broker coordinates the group (leads its partition and has loaded it). A
    /// single node coordinates every group, even before `__consumer_offsets` exists.
    pub fn owns(&self, broker: &Broker, group_id: &str) -> bool {
        if self.runtime.is_loaded(self.partition_of(group_id)) {
            return true;
        }
        broker.quorum.is_none() && broker.metadata.image().topic(OFFSETS_TOPIC).is_none()
    }

    /// The shard holding the group, if this broker serves its partition.
    fn shard_of(&self, group_id: &str) -> Option<SharedShard<GroupShard>> {
        self.runtime.shard(self.partition_of(group_id))
    }

    /// The shard holding the group, created if needed; for requests that passed
    /// [`GroupCoordinator::owns`].
    fn serving_shard(&self, group_id: &str) -> SharedShard<GroupShard> {
        self.runtime.shard_or_new(self.partition_of(group_id))
    }

    /// Creates `__consumer_offsets` if it does not exist yet, and waits until this broker has
    /// applied it (opened its partitions, loaded the shards it leads). A cluster waits until
    /// `offsets.topic.replication.factor` brokers are live, as Kafka does; a single node keeps
    /// one copy.
    pub async fn ensure_offsets_topic(&self, broker: &Broker) -> Result<(), BrokerError> {
        let configs = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            (
                "segment.bytes".to_string(),
                self.settings.offsets_segment_bytes.to_string(),
            ),
        ]);
        crate::coordinator_runtime::ensure_internal_topic(
            broker,
            &self.offsets_topic_creation,
            OFFSETS_TOPIC,
            self.settings.offsets_partitions,
            self.settings.offsets_replication_factor,
            configs,
        )
        .await
    }

    /// Serves the `__consumer_offsets` partitions this broker leads now: replays those it has
    /// come to lead (at startup, or after another broker failed) and forgets the groups of those
    /// it no longer leads. Blocking: it reads logs.
    pub fn follow_leadership(&self, broker: &Broker) -> Result<(), BrokerError> {
        self.runtime.follow_leadership(&broker.replicas, now_ms())
    }

    /// Appends a group's metadata record without waiting for the other replicas: this runs under
    /// the shard's lock, and a lost membership record only costs a rebalance.
    fn persist_group(&self, broker: &Broker, group: &Group) {
        tracing::info!(
            group = %group.group_id,
            generation = group.generation_id,
            phase = group.phase.kafka_name(),
            members = group.members.len(),
            "group changed"
        );
        let value = group_value(&persisted(group));
        let entries = vec![(group_key(&group.group_id), Some(value))];
        if let Err(error) = self.runtime.write(
            &broker.replicas,
            self.partition_of(&group.group_id),
            entries,
            now_ms(),
        ) {
            tracing::error!(group = %group.group_id, %error, "persisting group metadata failed");
        }
    }

    /// Delivers what the group's state machine decided: answers to parked requests, records.
    fn apply_effects(
        &self,
        broker: &Broker,
        shard: &mut GroupShard,
        group_id: &str,
        effects: Vec<Effect>,
    ) {
        for effect in effects {
            match effect {
                Effect::Join { token, outcome } => {
                    if let Some(Waiter::Join(sender)) = shard.waiters.remove(&token) {
                        let _ = sender.send(outcome);
                    }
                }
                Effect::Sync { token, outcome } => {
                    if let Some(Waiter::Sync(sender)) = shard.waiters.remove(&token) {
                        let _ = sender.send(outcome);
                    }
                }
                Effect::Persist => {
                    if let Some(group) = shard.groups.get(group_id) {
                        self.persist_group(broker, group);
                    }
                }
            }
        }
    }

    /// Runs `work` on the group, creating it when absent or dead, and applies its effects.
    fn with_group<T>(
        &self,
        broker: &Broker,
        shard: &mut GroupShard,
        group_id: &str,
        work: impl FnOnce(&mut Group, i64) -> (T, Vec<Effect>),
    ) -> T {
        let now = now_ms();
        let group = shard
            .groups
            .entry(group_id.to_string())
            .or_insert_with(|| Group::new(group_id, now));
        if group.phase == GroupPhase::Dead {
            *group = Group::new(group_id, now);
        }
        let (result, effects) = work(group, now);
        self.apply_effects(broker, shard, group_id, effects);
        result
    }

    /// A new token for a parked request.
    fn next_token(&self) -> u64 {
        self.next_token.fetch_add(1, Ordering::Relaxed)
    }

    /// JoinGroup: answered now or once the rebalance completes.
    pub fn join(
        &self,
        broker: &Broker,
        group_id: &str,
        request: JoinRequest,
    ) -> oneshot::Receiver<JoinOutcome> {
        let (sender, receiver) = oneshot::channel();
        let token = self.next_token();
        let limits = self.settings.limits;
        let shard = self.serving_shard(group_id);
        let mut shard = shard.lock();
        shard.waiters.insert(token, Waiter::Join(sender));
        let immediate = self.with_group(broker, &mut shard, group_id, |group, now| {
            group.join(request, token, &limits, now, |prefix| {
                format!("{prefix}-{}", uuid::Uuid::new_v4())
            })
        });
        if let Some(outcome) = immediate {
            if let Some(Waiter::Join(sender)) = shard.waiters.remove(&token) {
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
        let token = self.next_token();
        let shard = self.serving_shard(group_id);
        let mut shard = shard.lock();
        shard.waiters.insert(token, Waiter::Sync(sender));
        let immediate = self.with_group(broker, &mut shard, group_id, |group, now| {
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
            if let Some(Waiter::Sync(sender)) = shard.waiters.remove(&token) {
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
        let Some(shard) = self.shard_of(group_id) else {
            return Err(GroupError::UnknownMemberId);
        };
        let mut shard = shard.lock();
        if !shard.groups.contains_key(group_id) {
            return Err(GroupError::UnknownMemberId);
        }
        self.with_group(broker, &mut shard, group_id, |group, now| {
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
        let shard = self.serving_shard(group_id);
        let mut shard = shard.lock();
        self.with_group(broker, &mut shard, group_id, |group, now| {
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
    pub async fn tick(&self, broker: &Broker) {
        let now = now_ms();
        let limits = self.settings.limits;
        let mut expired_groups = Vec::new();
        for (_, shard) in self.runtime.shards() {
            let mut shard = shard.lock();
            let group_ids: Vec<String> = shard.groups.keys().cloned().collect();
            for group_id in group_ids {
                let Some(group) = shard.groups.get_mut(&group_id) else {
                    continue;
                };
                let effects = group.tick(&limits, now);
                let expired = group.offsets_expired(self.settings.offsets_retention_ms, now);
                if !effects.is_empty() {
                    self.apply_effects(broker, &mut shard, &group_id, effects);
                }
                let has_offsets = shard
                    .offsets
                    .get(&group_id)
                    .is_some_and(|offsets| !offsets.is_empty());
                // Offsets an open transaction may still commit keep the group (Kafka's
                // openTransactionsByGroup).
                if expired && has_offsets && !shard.has_pending_offsets(&group_id) {
                    expired_groups.push(group_id);
                }
            }
            for group in shard.consumer_groups.values_mut() {
                let expired = group.tick(&self.settings.consumer_limits, now);
                if !expired.is_empty() {
                    tracing::info!(group = %group.group_id, members = ?expired, "consumer group members expired");
                }
            }
        }
        for group_id in expired_groups {
            tracing::info!(group = %group_id, "offsets expired after offsets.retention.minutes");
            if let Err(error) = self.remove_group(broker, &group_id).await {
                tracing::error!(group = %group_id, %error, "expiring offsets failed");
            }
        }
    }

    /// Checks an OffsetCommit's member, then stores the offsets: written to the group's
    /// partition, replicated to the in-sync replicas, then visible to OffsetFetch.
    pub async fn commit(
        &self,
        broker: &Broker,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        commits: Vec<(String, i32, CommittedOffset)>,
    ) -> Result<(), GroupError> {
        let shard = self.serving_shard(group_id);
        let written = {
            let mut locked = shard.lock();
            let committer = Committer {
                member_id,
                group_instance_id,
                generation_id,
            };
            self.check_committer(broker, &mut locked, group_id, &committer)?;
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
            self.runtime.write(
                &broker.replicas,
                self.partition_of(group_id),
                entries,
                now_ms(),
            )
        };
        // Like Kafka's coordinator, write with acks=all: a commit answered before the other
        // in-sync replicas have it could be lost if this broker failed.
        let replicated = match written {
            Ok(written) => written.replicated(REPLICATION_TIMEOUT).await,
            Err(error) => Err(error),
        };
        if let Err(error) = replicated {
            tracing::error!(group = %group_id, %error, "storing committed offsets failed");
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let mut locked = shard.lock();
        let group_offsets = locked.offsets.entry(group_id.to_string()).or_default();
        for (topic, partition, committed) in commits {
            group_offsets.insert((topic, partition), committed);
        }
        Ok(())
    }

    /// Whether the member may commit offsets for the group, classic or KIP-848: an unknown
    /// group with a negative generation is a simple consumer's, as Kafka allows.
    fn check_committer(
        &self,
        broker: &Broker,
        locked: &mut GroupShard,
        group_id: &str,
        committer: &Committer,
    ) -> Result<(), GroupError> {
        let consumer_verdict = locked
            .consumer_groups
            .get(group_id)
            .map(|group| group.check_commit(committer.member_id, committer.generation_id));
        match consumer_verdict {
            Some(Err(ConsumerGroupError::StaleMemberEpoch)) => Err(GroupError::StaleMemberEpoch),
            Some(Err(ConsumerGroupError::FencedMemberEpoch)) => Err(GroupError::FencedMemberEpoch),
            Some(Err(_)) => Err(GroupError::UnknownMemberId),
            Some(Ok(())) => Ok(()),
            None => self.with_group(broker, locked, group_id, |group, now| {
                (
                    group.check_commit(
                        committer.member_id,
                        committer.group_instance_id,
                        committer.generation_id,
                        now,
                    ),
                    Vec::new(),
                )
            }),
        }
    }

    /// TxnOffsetCommit: checks the member as OffsetCommit does, then writes the offsets as a
    /// transactional batch of the producer. They stay pending, invisible to OffsetFetch, until
    /// the producer's COMMIT marker reaches this partition (and vanish with an ABORT).
    pub async fn commit_in_transaction(
        &self,
        broker: &Broker,
        group_id: &str,
        committer: &Committer<'_>,
        producer: (i64, i16),
        commits: Vec<(String, i32, CommittedOffset)>,
    ) -> Result<(), ResponseError> {
        let shard = self.serving_shard(group_id);
        let written = {
            let mut locked = shard.lock();
            self.check_committer(broker, &mut locked, group_id, committer)
                .map_err(group_error_code)?;
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
            let written = self
                .runtime
                .write_transactional(
                    &broker.replicas,
                    self.partition_of(group_id),
                    entries,
                    producer,
                    now_ms(),
                )
                .map_err(|error| match error {
                    BrokerError::Log(error) => log_error_code(&error),
                    _ => ResponseError::CoordinatorNotAvailable,
                })?;
            // Pending in log order: a marker written after this batch ends these offsets.
            let pending = locked
                .pending_offsets
                .entry(producer.0)
                .or_default()
                .entry(group_id.to_string())
                .or_default();
            for (topic, partition, committed) in commits {
                pending.insert((topic, partition), committed);
            }
            written
        };
        written
            .replicated(REPLICATION_TIMEOUT)
            .await
            .map_err(|error| {
                tracing::error!(group = %group_id, %error, "storing transactional offsets failed");
                ResponseError::CoordinatorNotAvailable
            })
    }

    /// WriteTxnMarkers for a `__consumer_offsets` partition: the marker is appended under the
    /// partition's shard lock and applied to the pending offsets at once, so that the shard
    /// follows the log's order.
    pub fn write_marker(
        &self,
        broker: &Broker,
        partition_index: i32,
        producer: (i64, i16),
        marker: EndTxnMarker,
    ) -> Result<Appended, Refusal> {
        let image = broker.metadata.image();
        let append = || {
            broker.replicas.append_marker(
                &image,
                OFFSETS_TOPIC,
                partition_index,
                producer.0,
                producer.1,
                marker,
                now_ms(),
            )
        };
        // A partition not loaded (yet) here answers as Kafka's coordinator does while loading,
        // with an error the sender retries: a marker appended while the load reads the log
        // could be missed by the loaded state.
        let loading = || {
            (
                ResponseError::NotLeaderOrFollower,
                format!("{OFFSETS_TOPIC}-{partition_index} is not loaded by the group coordinator"),
            )
        };
        if !self.runtime.is_loaded(partition_index) {
            return Err(loading());
        }
        let shard = self.runtime.shard(partition_index).ok_or_else(loading)?;
        let mut locked = shard.lock();
        let appended = append()?;
        locked.end_transaction(producer.0, marker.result);
        Ok(appended)
    }

    /// Whether a transaction not yet ended holds an offset of the group's partition, for
    /// OffsetFetch's `require_stable`.
    pub fn has_pending_offset(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        self.shard_of(group_id)
            .is_some_and(|shard| shard.lock().has_pending_offset(group_id, topic, partition))
    }

    /// ConsumerGroupHeartbeat (KIP-848): answered at once.
    pub fn consumer_heartbeat(
        &self,
        broker: &Broker,
        group_id: &str,
        request: HeartbeatRequest,
    ) -> HeartbeatOutcome {
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
        let shard = self.serving_shard(group_id);
        let mut shard = shard.lock();
        let classic_in_use = shard
            .groups
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
        let group = shard
            .consumer_groups
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
        self.shard_of(group_id)?
            .lock()
            .consumer_groups
            .get(group_id)
            .cloned()
    }

    /// The committed offsets of a group.
    pub fn committed(&self, group_id: &str) -> GroupOffsets {
        self.shard_of(group_id)
            .and_then(|shard| shard.lock().offsets.get(group_id).cloned())
            .unwrap_or_default()
    }

    /// Every group: (group id, protocol type, state name, group type "classic" or "consumer").
    pub fn list(&self) -> Vec<(String, String, &'static str, &'static str)> {
        let mut listed = Vec::new();
        for (_, shard) in self.runtime.shards() {
            let shard = shard.lock();
            listed.extend(
                shard
                    .groups
                    .values()
                    .filter(|group| group.phase != GroupPhase::Dead)
                    .filter(|group| {
                        !(shard.consumer_groups.contains_key(&group.group_id)
                            && group.phase == GroupPhase::Empty)
                    })
                    .map(|group| {
                        (
                            group.group_id.clone(),
                            group.protocol_type.clone().unwrap_or_default(),
                            group.phase.kafka_name(),
                            "classic",
                        )
                    }),
            );
            listed.extend(shard.consumer_groups.values().map(|group| {
                (
                    group.group_id.clone(),
                    "consumer".to_string(),
                    group.state_name(),
                    "consumer",
                )
            }));
        }
        listed
    }

    /// A group's description; `None` if unknown.
    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        let shard = self.shard_of(group_id)?;
        let shard = shard.lock();
        let group = shard.groups.get(group_id)?;
        Some(GroupDescription {
            phase: group.phase,
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocol_name: group.protocol_name.clone().unwrap_or_default(),
            members: group.members.values().cloned().collect(),
        })
    }

    /// DeleteGroups: only empty groups; writes tombstones for the group and its offsets.
    pub async fn delete(&self, broker: &Broker, group_id: &str) -> Result<(), GroupError> {
        {
            let Some(shard) = self.shard_of(group_id) else {
                return Err(GroupError::GroupIdNotFound);
            };
            let shard = shard.lock();
            match shard.groups.get(group_id) {
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
        self.remove_group(broker, group_id).await.map_err(|error| {
            tracing::error!(group = %group_id, %error, "deleting group failed");
            GroupError::CoordinatorNotAvailable
        })
    }

    /// Writes tombstones for a group and its offsets, waits for the in-sync replicas, then
    /// forgets the group.
    async fn remove_group(&self, broker: &Broker, group_id: &str) -> Result<(), BrokerError> {
        let shard = self.serving_shard(group_id);
        let written = {
            let shard = shard.lock();
            let mut entries: Vec<(Vec<u8>, Option<Vec<u8>>)> = shard
                .offsets
                .get(group_id)
                .into_iter()
                .flat_map(|offsets| offsets.keys())
                .map(|(topic, partition)| (offset_key(group_id, topic, *partition), None))
                .collect();
            entries.push((group_key(group_id), None));
            self.runtime.write(
                &broker.replicas,
                self.partition_of(group_id),
                entries,
                now_ms(),
            )?
        };
        written.replicated(REPLICATION_TIMEOUT).await?;
        let mut shard = shard.lock();
        shard.offsets.remove(group_id);
        if let Some(group) = shard.groups.get_mut(group_id) {
            let effects = group.delete(now_ms());
            self.apply_effects(broker, &mut shard, group_id, effects);
        }
        shard.groups.remove(group_id);
        tracing::info!(group = %group_id, "group deleted");
        Ok(())
    }

    /// OffsetDelete: removes committed offsets of partitions the group does not subscribe to.
    pub async fn delete_offsets(
        &self,
        broker: &Broker,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        let Some(shard) = self.shard_of(group_id) else {
            return Err(GroupError::GroupIdNotFound);
        };
        let (results, written) = {
            let locked = shard.lock();
            let Some(group) = locked
                .groups
                .get(group_id)
                .filter(|group| group.phase != GroupPhase::Dead)
            else {
                return Err(GroupError::GroupIdNotFound);
            };
            let protocol = group.protocol_name.clone().unwrap_or_default();
            let subscribed: Vec<String> = group
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
                .collect();
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
            if tombstones.is_empty() {
                return Ok(results);
            }
            let written = self
                .runtime
                .write(
                    &broker.replicas,
                    self.partition_of(group_id),
                    tombstones,
                    now_ms(),
                )
                .map_err(|_| GroupError::CoordinatorNotAvailable)?;
            (results, written)
        };
        written
            .replicated(REPLICATION_TIMEOUT)
            .await
            .map_err(|_| GroupError::CoordinatorNotAvailable)?;
        let mut locked = shard.lock();
        if let Some(group_offsets) = locked.offsets.get_mut(group_id) {
            for ((topic, partition), result) in partitions.iter().zip(&results) {
                if result.is_ok() {
                    group_offsets.remove(&(topic.clone(), *partition));
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
