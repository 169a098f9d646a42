//! One consumer group under the next-generation protocol (KIP-848), as a pure state machine.
//!
//! The coordinator owns the assignment: each heartbeat reports a member's subscription and
//! owned partitions, and the answer carries its member epoch and the partitions it may own.
//! A change of members or subscribed metadata bumps the group epoch; a new target assignment is
//! computed for it, and every member reconciles towards its target on its own heartbeats: it
//! first gives up partitions that moved away (keeping its epoch), and only once it reports them
//! released does it move to the new epoch and get partitions that no other member still holds.
//! So a partition is never owned by two members at once.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

/// Partitions by topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// The subscribed topics' metadata the assignment was computed from: name → (id, partitions).
pub type TopicsMetadata = BTreeMap<String, (Uuid, i32)>;

/// Why a heartbeat is refused; each maps to one Kafka error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerGroupError {
    /// The member is not in the group (expired, left, or never joined).
    UnknownMemberId,
    /// The member's epoch is not the one the coordinator gave it.
    FencedMemberEpoch,
    /// An OffsetCommit from an older member epoch.
    StaleMemberEpoch,
    /// The requested server assignor does not exist.
    UnsupportedAssignor,
    /// A field required to join is missing or invalid.
    InvalidRequest,
    /// The group id belongs to a classic group with members.
    NotAConsumerGroup,
}

/// Limits and defaults the broker sets on consumer groups.
#[derive(Debug, Clone, Copy)]
pub struct ConsumerGroupLimits {
    /// `group.consumer.session.timeout.ms`.
    pub session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms`.
    pub heartbeat_interval_ms: i32,
}

impl Default for ConsumerGroupLimits {
    fn default() -> Self {
        ConsumerGroupLimits {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
        }
    }
}

/// The assignors this coordinator runs.
pub const ASSIGNORS: &[&str] = &["uniform", "range"];

/// A member of the group.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerMember {
    /// The id the client generated.
    pub member_id: String,
    /// Static membership id, if any.
    pub instance_id: Option<String>,
    /// The client's rack.
    pub rack_id: Option<String>,
    /// The client's id, for describe.
    pub client_id: String,
    /// The client's address, for describe.
    pub client_host: String,
    /// The epoch the member is at.
    pub member_epoch: i32,
    /// The epoch before the last bump, accepted once if the bump's answer was lost.
    pub previous_member_epoch: i32,
    /// How long it may take to revoke partitions.
    pub rebalance_timeout_ms: i32,
    /// The topics it subscribes to.
    pub subscribed_topics: Vec<String>,
    /// The assignor it asked for, if any.
    pub server_assignor: Option<String>,
    /// The partitions it may own now.
    pub assigned: Assignment,
    /// Partitions it must give up before it moves to the next epoch.
    pub pending_revocation: Assignment,
    /// When revocation started, for the rebalance timeout.
    pub revocation_started_ms: Option<i64>,
    /// Last heartbeat.
    pub last_heartbeat_ms: i64,
}

/// A decoded ConsumerGroupHeartbeat.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatRequest {
    /// The member id the client generated.
    pub member_id: String,
    /// 0 to join, -1 to leave, -2 for a static member leaving temporarily, else its epoch.
    pub member_epoch: i32,
    /// Static membership id.
    pub instance_id: Option<String>,
    /// The client's rack.
    pub rack_id: Option<String>,
    /// How long it may take to revoke.
    pub rebalance_timeout_ms: i32,
    /// `None` when unchanged since the last heartbeat.
    pub subscribed_topic_names: Option<Vec<String>>,
    /// The assignor asked for.
    pub server_assignor: Option<String>,
    /// The partitions the member owns; `None` when unchanged.
    pub owned: Option<Assignment>,
    /// The client's id.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatOutcome {
    /// Set when refused.
    pub error: Option<ConsumerGroupError>,
    /// The member's id.
    pub member_id: String,
    /// The member's epoch after this heartbeat (-1 after leaving).
    pub member_epoch: i32,
    /// The partitions it may own.
    pub assignment: Option<Assignment>,
}

/// One consumer group.
#[derive(Debug, Clone)]
pub struct ConsumerGroup {
    /// The group id.
    pub group_id: String,
    /// Bumped on every change of members, subscriptions or subscribed metadata.
    pub group_epoch: i32,
    /// The group epoch the target assignment was computed for.
    pub assignment_epoch: i32,
    /// Members by id.
    pub members: BTreeMap<String, ConsumerMember>,
    /// Target assignment by member.
    pub target: BTreeMap<String, Assignment>,
    /// The metadata the target was computed from.
    metadata: TopicsMetadata,
    /// The assignor of the current target.
    pub assignor: String,
}

/// Every (topic id, partition) of an assignment.
fn flatten(assignment: &Assignment) -> impl Iterator<Item = (Uuid, i32)> + '_ {
    assignment.iter().flat_map(|(topic, partitions)| {
        partitions.iter().map(move |partition| (*topic, *partition))
    })
}

fn collect(pairs: impl IntoIterator<Item = (Uuid, i32)>) -> Assignment {
    let mut assignment = Assignment::new();
    for (topic, partition) in pairs {
        assignment.entry(topic).or_default().insert(partition);
    }
    assignment
}

fn contains(assignment: &Assignment, topic: &Uuid, partition: i32) -> bool {
    assignment
        .get(topic)
        .is_some_and(|partitions| partitions.contains(&partition))
}

impl ConsumerGroup {
    /// A new, empty group.
    pub fn new(group_id: &str) -> ConsumerGroup {
        ConsumerGroup {
            group_id: group_id.to_string(),
            group_epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            metadata: TopicsMetadata::new(),
            assignor: ASSIGNORS[0].to_string(),
        }
    }

    /// Kafka's name for the group's state.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            return "Empty";
        }
        if self.assignment_epoch < self.group_epoch {
            return "Assigning";
        }
        let reconciling = self.members.values().any(|member| {
            member.member_epoch != self.assignment_epoch
                || !member.pending_revocation.is_empty()
                || self
                    .target
                    .get(&member.member_id)
                    .is_some_and(|target| *target != member.assigned)
        });
        if reconciling {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// Handles one heartbeat. `topics` is the current metadata of every topic.
    pub fn heartbeat(
        &mut self,
        request: HeartbeatRequest,
        topics: &TopicsMetadata,
        limits: &ConsumerGroupLimits,
        now_ms: i64,
    ) -> HeartbeatOutcome {
        let refuse = |error, request: &HeartbeatRequest| HeartbeatOutcome {
            error: Some(error),
            member_id: request.member_id.clone(),
            member_epoch: request.member_epoch,
            assignment: None,
        };
        if request.member_id.is_empty() {
            return refuse(ConsumerGroupError::UnknownMemberId, &request);
        }
        if let Some(assignor) = &request.server_assignor {
            if !ASSIGNORS.contains(&assignor.as_str()) {
                return refuse(ConsumerGroupError::UnsupportedAssignor, &request);
            }
        }
        // Joins, subscription changes and metadata changes together make one new group epoch.
        let mut changed = false;
        match request.member_epoch {
            -1 | -2 => {
                if self.members.remove(&request.member_id).is_some() {
                    self.target.remove(&request.member_id);
                    self.group_epoch += 1;
                }
                return HeartbeatOutcome {
                    error: None,
                    member_id: request.member_id,
                    member_epoch: request.member_epoch,
                    assignment: None,
                };
            }
            0 => {
                let Some(subscribed) = request.subscribed_topic_names.clone() else {
                    return refuse(ConsumerGroupError::InvalidRequest, &request);
                };
                // A (re)joining member starts over: whatever it held is released.
                self.members.remove(&request.member_id);
                let member = ConsumerMember {
                    member_id: request.member_id.clone(),
                    instance_id: request.instance_id.clone(),
                    rack_id: request.rack_id.clone(),
                    client_id: request.client_id.clone(),
                    client_host: request.client_host.clone(),
                    member_epoch: 0,
                    previous_member_epoch: 0,
                    rebalance_timeout_ms: request.rebalance_timeout_ms,
                    subscribed_topics: subscribed,
                    server_assignor: request.server_assignor.clone(),
                    assigned: Assignment::new(),
                    pending_revocation: Assignment::new(),
                    revocation_started_ms: None,
                    last_heartbeat_ms: now_ms,
                };
                self.members.insert(request.member_id.clone(), member);
                changed = true;
            }
            epoch => {
                let Some(member) = self.members.get_mut(&request.member_id) else {
                    return refuse(ConsumerGroupError::UnknownMemberId, &request);
                };
                let lost_answer = epoch == member.previous_member_epoch
                    && request.owned.as_ref().is_some_and(|owned| {
                        flatten(owned)
                            .all(|(topic, partition)| contains(&member.assigned, &topic, partition))
                    });
                if epoch != member.member_epoch && !lost_answer {
                    return refuse(ConsumerGroupError::FencedMemberEpoch, &request);
                }
                member.last_heartbeat_ms = now_ms;
                if let Some(subscribed) = &request.subscribed_topic_names {
                    if *subscribed != member.subscribed_topics {
                        member.subscribed_topics = subscribed.clone();
                        changed = true;
                    }
                }
                if request.server_assignor.is_some()
                    && request.server_assignor != member.server_assignor
                {
                    member.server_assignor = request.server_assignor.clone();
                    changed = true;
                }
            }
        }
        changed |= self.refresh_metadata(topics);
        if changed {
            self.group_epoch += 1;
        }
        if self.assignment_epoch < self.group_epoch {
            self.compute_target();
        }
        self.reconcile(&request.member_id, request.owned.as_ref(), now_ms);
        let member = &self.members[&request.member_id];
        let _ = limits;
        HeartbeatOutcome {
            error: None,
            member_id: member.member_id.clone(),
            member_epoch: member.member_epoch,
            assignment: Some(member.assigned.clone()),
        }
    }

    /// Whether a subscribed topic appeared, vanished or grew since the target was computed.
    fn refresh_metadata(&mut self, topics: &TopicsMetadata) -> bool {
        let subscribed: BTreeSet<&String> = self
            .members
            .values()
            .flat_map(|member| member.subscribed_topics.iter())
            .collect();
        let current: TopicsMetadata = subscribed
            .into_iter()
            .filter_map(|name| topics.get(name).map(|found| (name.clone(), *found)))
            .collect();
        if current == self.metadata {
            return false;
        }
        self.metadata = current;
        true
    }

    /// Runs the assignor for the current group epoch.
    fn compute_target(&mut self) {
        let assignor = self
            .members
            .values()
            .filter_map(|member| member.server_assignor.clone())
            .next()
            .unwrap_or_else(|| ASSIGNORS[0].to_string());
        let subscriptions: BTreeMap<String, Vec<String>> = self
            .members
            .values()
            .map(|member| (member.member_id.clone(), member.subscribed_topics.clone()))
            .collect();
        self.target = if assignor == "range" {
            assign_range(&subscriptions, &self.metadata)
        } else {
            assign_uniform(&subscriptions, &self.metadata, &self.target)
        };
        self.assignor = assignor;
        self.assignment_epoch = self.group_epoch;
    }

    /// Whether another member still holds a partition.
    fn held_by_other(&self, member_id: &str, topic: &Uuid, partition: i32) -> bool {
        self.members.values().any(|other| {
            other.member_id != member_id
                && (contains(&other.assigned, topic, partition)
                    || contains(&other.pending_revocation, topic, partition))
        })
    }

    /// Moves one member towards its target, as far as the others' releases allow.
    fn reconcile(&mut self, member_id: &str, owned: Option<&Assignment>, now_ms: i64) {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let assignment_epoch = self.assignment_epoch;
        let Some(member) = self.members.get(member_id).cloned() else {
            return;
        };
        let mut member = member;
        if !member.pending_revocation.is_empty() {
            let released = owned.is_some_and(|owned| {
                !flatten(&member.pending_revocation)
                    .any(|(topic, partition)| contains(owned, &topic, partition))
            });
            if !released {
                self.members.insert(member_id.to_string(), member);
                return;
            }
            member.pending_revocation.clear();
            member.revocation_started_ms = None;
        }
        if member.member_epoch != assignment_epoch {
            let keep: Assignment = collect(
                flatten(&member.assigned)
                    .filter(|(topic, partition)| contains(&target, topic, *partition)),
            );
            let revoke: Assignment = collect(
                flatten(&member.assigned)
                    .filter(|(topic, partition)| !contains(&target, topic, *partition)),
            );
            member.assigned = keep;
            if !revoke.is_empty() {
                // Give these up first; the epoch moves once the member reports them released.
                member.pending_revocation = revoke;
                member.revocation_started_ms = Some(now_ms);
                self.members.insert(member_id.to_string(), member);
                return;
            }
            member.previous_member_epoch = member.member_epoch;
            member.member_epoch = assignment_epoch;
        }
        // Add what the target holds and nobody else still owns.
        let additions: Vec<(Uuid, i32)> = flatten(&target)
            .filter(|(topic, partition)| !contains(&member.assigned, topic, *partition))
            .filter(|(topic, partition)| !self.held_by_other(member_id, topic, *partition))
            .collect();
        for (topic, partition) in additions {
            member.assigned.entry(topic).or_default().insert(partition);
        }
        self.members.insert(member_id.to_string(), member);
    }

    /// Removes members whose session expired or who took too long to revoke.
    pub fn tick(&mut self, limits: &ConsumerGroupLimits, now_ms: i64) -> Vec<String> {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|member| {
                now_ms - member.last_heartbeat_ms > limits.session_timeout_ms as i64
                    || member.revocation_started_ms.is_some_and(|started| {
                        now_ms - started > member.rebalance_timeout_ms.max(0) as i64
                    })
            })
            .map(|member| member.member_id.clone())
            .collect();
        for member_id in &expired {
            self.members.remove(member_id);
            self.target.remove(member_id);
            self.group_epoch += 1;
        }
        if !expired.is_empty() && !self.members.is_empty() {
            self.compute_target();
        }
        expired
    }

    /// Checks an OffsetCommit's member and epoch.
    pub fn check_commit(
        &self,
        member_id: &str,
        member_epoch: i32,
    ) -> Result<(), ConsumerGroupError> {
        if member_id.is_empty() && member_epoch < 0 {
            return if self.members.is_empty() {
                Ok(())
            } else {
                Err(ConsumerGroupError::UnknownMemberId)
            };
        }
        let Some(member) = self.members.get(member_id) else {
            return Err(ConsumerGroupError::UnknownMemberId);
        };
        if member_epoch > member.member_epoch {
            return Err(ConsumerGroupError::FencedMemberEpoch);
        }
        if member_epoch < member.member_epoch && member_epoch != member.previous_member_epoch {
            return Err(ConsumerGroupError::StaleMemberEpoch);
        }
        Ok(())
    }
}

/// Range: per topic, the subscribed members in id order get contiguous ranges; the first
/// `partitions % members` get one more.
pub fn assign_range(
    subscriptions: &BTreeMap<String, Vec<String>>,
    metadata: &TopicsMetadata,
) -> BTreeMap<String, Assignment> {
    let mut target: BTreeMap<String, Assignment> = subscriptions
        .keys()
        .map(|member| (member.clone(), Assignment::new()))
        .collect();
    for (name, (topic_id, partitions)) in metadata {
        let members: Vec<&String> = subscriptions
            .iter()
            .filter(|(_, topics)| topics.contains(name))
            .map(|(member, _)| member)
            .collect();
        if members.is_empty() {
            continue;
        }
        let count = members.len() as i32;
        let (share, extra) = (partitions / count, partitions % count);
        let mut next = 0;
        for (index, member) in members.into_iter().enumerate() {
            let size = share + if (index as i32) < extra { 1 } else { 0 };
            let assigned = target.get_mut(member).expect("every member has a target");
            assigned
                .entry(*topic_id)
                .or_default()
                .extend(next..next + size);
            next += size;
        }
    }
    drop_empty_topics(target)
}

/// Uniform: every partition goes to a subscribed member, loads differ by at most one where
/// subscriptions allow, and partitions stay with their previous target owner when possible.
pub fn assign_uniform(
    subscriptions: &BTreeMap<String, Vec<String>>,
    metadata: &TopicsMetadata,
    previous: &BTreeMap<String, Assignment>,
) -> BTreeMap<String, Assignment> {
    let mut target: BTreeMap<String, Assignment> = subscriptions
        .keys()
        .map(|member| (member.clone(), Assignment::new()))
        .collect();
    let mut load: BTreeMap<String, usize> = subscriptions
        .keys()
        .map(|member| (member.clone(), 0))
        .collect();
    let all: Vec<(String, Uuid, i32)> = metadata
        .iter()
        .flat_map(|(name, (topic_id, partitions))| {
            (0..*partitions).map(move |partition| (name.clone(), *topic_id, partition))
        })
        .collect();
    let eligible = |name: &str| -> Vec<&String> {
        subscriptions
            .iter()
            .filter(|(_, topics)| topics.iter().any(|topic| topic == name))
            .map(|(member, _)| member)
            .collect()
    };
    let assignable = all
        .iter()
        .filter(|(name, _, _)| !eligible(name).is_empty())
        .count();
    let quota = if subscriptions.is_empty() {
        0
    } else {
        assignable.div_ceil(subscriptions.len())
    };
    let mut unassigned = Vec::new();
    for (name, topic_id, partition) in &all {
        let members = eligible(name);
        if members.is_empty() {
            continue;
        }
        let sticky = members.iter().find(|member| {
            previous
                .get(**member)
                .is_some_and(|assignment| contains(assignment, topic_id, *partition))
                && load[**member] < quota
        });
        match sticky {
            Some(member) => {
                target
                    .get_mut(*member)
                    .expect("listed")
                    .entry(*topic_id)
                    .or_default()
                    .insert(*partition);
                *load.get_mut(*member).expect("listed") += 1;
            }
            None => unassigned.push((name.clone(), *topic_id, *partition)),
        }
    }
    for (name, topic_id, partition) in unassigned {
        let members = eligible(&name);
        let least = members
            .into_iter()
            .min_by_key(|member| (load[*member], (*member).clone()))
            .expect("eligible is not empty")
            .clone();
        target
            .get_mut(&least)
            .expect("listed")
            .entry(topic_id)
            .or_default()
            .insert(partition);
        *load.get_mut(&least).expect("listed") += 1;
    }
    drop_empty_topics(target)
}

fn drop_empty_topics(target: BTreeMap<String, Assignment>) -> BTreeMap<String, Assignment> {
    target
        .into_iter()
        .map(|(member, assignment)| {
            (
                member,
                assignment
                    .into_iter()
                    .filter(|(_, partitions)| !partitions.is_empty())
                    .collect(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(count: i32) -> (TopicsMetadata, Uuid) {
        let id = Uuid::from_u128(7);
        (TopicsMetadata::from([("t".to_string(), (id, count))]), id)
    }

    fn join(member: &str) -> HeartbeatRequest {
        HeartbeatRequest {
            member_id: member.into(),
            member_epoch: 0,
            rebalance_timeout_ms: 60_000,
            subscribed_topic_names: Some(vec!["t".into()]),
            ..Default::default()
        }
    }

    fn beat(member: &str, epoch: i32, owned: &Assignment) -> HeartbeatRequest {
        HeartbeatRequest {
            member_id: member.into(),
            member_epoch: epoch,
            owned: Some(owned.clone()),
            ..Default::default()
        }
    }

    fn count(assignment: &Assignment) -> usize {
        assignment.values().map(BTreeSet::len).sum()
    }

    /// Drives both members with heartbeats until nothing changes; returns their assignments.
    fn settle(
        group: &mut ConsumerGroup,
        topics: &TopicsMetadata,
        members: &[&str],
        now: &mut i64,
    ) -> Vec<Assignment> {
        let limits = ConsumerGroupLimits::default();
        let mut owned: BTreeMap<String, (i32, Assignment)> = members
            .iter()
            .map(|member| {
                (
                    member.to_string(),
                    (
                        group.members[*member].member_epoch,
                        group.members[*member].assigned.clone(),
                    ),
                )
            })
            .collect();
        for _ in 0..20 {
            for member in members {
                *now += 100;
                let (epoch, held) = owned[*member].clone();
                let outcome = group.heartbeat(beat(member, epoch, &held), topics, &limits, *now);
                assert_eq!(outcome.error, None);
                owned.insert(
                    member.to_string(),
                    (outcome.member_epoch, outcome.assignment.unwrap()),
                );
                // No partition is ever owned by two members.
                let mut seen = BTreeSet::new();
                for (_, held) in owned.values() {
                    for pair in flatten(held) {
                        assert!(seen.insert(pair), "{pair:?} owned twice");
                    }
                }
            }
        }
        members
            .iter()
            .map(|member| owned[*member].1.clone())
            .collect()
    }

    #[test]
    fn a_second_member_gets_half_after_the_first_revokes() {
        let (metadata, _) = topics(6);
        let mut group = ConsumerGroup::new("g");
        let limits = ConsumerGroupLimits::default();
        let first = group.heartbeat(join("a"), &metadata, &limits, 0);
        assert_eq!(first.member_epoch, 1);
        assert_eq!(count(first.assignment.as_ref().unwrap()), 6);
        let second = group.heartbeat(join("b"), &metadata, &limits, 10);
        // Everything is still held by a: b gets nothing yet, but has the new epoch.
        assert_eq!(count(second.assignment.as_ref().unwrap()), 0);
        let mut now = 20;
        let settled = settle(&mut group, &metadata, &["a", "b"], &mut now);
        assert_eq!(count(&settled[0]), 3);
        assert_eq!(count(&settled[1]), 3);
        assert_eq!(group.state_name(), "Stable");
    }

    #[test]
    fn leaving_hands_partitions_back() {
        let (metadata, _) = topics(4);
        let mut group = ConsumerGroup::new("g");
        let limits = ConsumerGroupLimits::default();
        group.heartbeat(join("a"), &metadata, &limits, 0);
        group.heartbeat(join("b"), &metadata, &limits, 0);
        let mut now = 0;
        settle(&mut group, &metadata, &["a", "b"], &mut now);
        let epoch = group.members["b"].member_epoch;
        let left = group.heartbeat(
            HeartbeatRequest {
                member_id: "b".into(),
                member_epoch: -1,
                ..Default::default()
            },
            &metadata,
            &limits,
            now,
        );
        assert_eq!(left.member_epoch, -1);
        let settled = settle(&mut group, &metadata, &["a"], &mut now);
        assert_eq!(count(&settled[0]), 4);
        assert!(epoch < group.members["a"].member_epoch);
    }

    #[test]
    fn unknown_and_fenced_members_are_refused() {
        let (metadata, _) = topics(2);
        let mut group = ConsumerGroup::new("g");
        let limits = ConsumerGroupLimits::default();
        assert_eq!(
            group
                .heartbeat(beat("x", 3, &Assignment::new()), &metadata, &limits, 0)
                .error,
            Some(ConsumerGroupError::UnknownMemberId)
        );
        group.heartbeat(join("a"), &metadata, &limits, 0);
        assert_eq!(
            group
                .heartbeat(beat("a", 9, &Assignment::new()), &metadata, &limits, 0)
                .error,
            Some(ConsumerGroupError::FencedMemberEpoch)
        );
    }

    #[test]
    fn silent_members_expire_and_their_partitions_move() {
        let (metadata, _) = topics(4);
        let mut group = ConsumerGroup::new("g");
        let limits = ConsumerGroupLimits {
            session_timeout_ms: 1000,
            heartbeat_interval_ms: 100,
        };
        group.heartbeat(join("a"), &metadata, &limits, 0);
        group.heartbeat(join("b"), &metadata, &limits, 0);
        let mut now = 0;
        settle(&mut group, &metadata, &["a", "b"], &mut now);
        // Only a keeps heartbeating.
        for _ in 0..20 {
            now += 100;
            let (epoch, held) = (
                group.members["a"].member_epoch,
                group.members["a"].assigned.clone(),
            );
            group.heartbeat(beat("a", epoch, &held), &metadata, &limits, now);
            group.tick(&limits, now);
        }
        assert!(!group.members.contains_key("b"));
        assert_eq!(count(&group.members["a"].assigned), 4);
    }

    #[test]
    fn range_gives_contiguous_ranges_and_uniform_is_balanced_and_sticky() {
        let id = Uuid::from_u128(1);
        let metadata = TopicsMetadata::from([("t".to_string(), (id, 7))]);
        let subscriptions: BTreeMap<String, Vec<String>> = ["a", "b", "c"]
            .iter()
            .map(|member| (member.to_string(), vec!["t".to_string()]))
            .collect();
        let range = assign_range(&subscriptions, &metadata);
        assert_eq!(range["a"][&id], BTreeSet::from([0, 1, 2]));
        assert_eq!(range["b"][&id], BTreeSet::from([3, 4]));
        assert_eq!(range["c"][&id], BTreeSet::from([5, 6]));
        let uniform = assign_uniform(&subscriptions, &metadata, &BTreeMap::new());
        let loads: Vec<usize> = uniform.values().map(count).collect();
        assert_eq!(loads.iter().sum::<usize>(), 7);
        assert!(loads.iter().max().unwrap() - loads.iter().min().unwrap() <= 1);
        let mut fewer = subscriptions.clone();
        fewer.remove("c");
        let after = assign_uniform(&fewer, &metadata, &uniform);
        for member in ["a", "b"] {
            for pair in flatten(&uniform[member]) {
                assert!(
                    contains(&after[member], &pair.0, pair.1),
                    "{member} lost {pair:?} needlessly"
                );
            }
        }
    }

    #[test]
    fn commits_check_member_and_epoch() {
        let (metadata, _) = topics(2);
        let mut group = ConsumerGroup::new("g");
        let limits = ConsumerGroupLimits::default();
        assert_eq!(group.check_commit("", -1), Ok(()));
        let joined = group.heartbeat(join("a"), &metadata, &limits, 0);
        assert_eq!(group.check_commit("a", joined.member_epoch), Ok(()));
        assert_eq!(
            group.check_commit("a", joined.member_epoch + 1),
            Err(ConsumerGroupError::FencedMemberEpoch)
        );
        assert_eq!(
            group.check_commit("zz", 1),
            Err(ConsumerGroupError::UnknownMemberId)
        );
        assert_eq!(
            group.check_commit("", -1),
            Err(ConsumerGroupError::UnknownMemberId)
        );
    }
}

#[cfg(test)]
#[path = "consumer_group_simulation.rs"]
mod simulation;
