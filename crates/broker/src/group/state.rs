//! One consumer group's membership under the classic protocol, as a pure state machine.
//!
//! Inputs are requests and clock ticks; outputs are the answers to give now and [`Effect`]s:
//! answers to requests that were parked (a JoinGroup waits for the rebalance to complete, a
//! follower's SyncGroup waits for the leader's) and "persist the group". No I/O, no clock of
//! its own: the coordinator shell feeds `now_ms` in, so every transition is testable.
//!
//! Phases follow Kafka: Empty → PreparingRebalance → CompletingRebalance → Stable, and Dead for
//! a deleted group.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

/// Where a group is in its rebalance cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupPhase {
    /// No members; offsets may still be stored.
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    /// Everyone has an assignment.
    Stable,
    /// Deleted.
    Dead,
}

impl GroupPhase {
    /// Kafka's name for the phase, as ListGroups and DescribeGroups report it.
    pub fn kafka_name(self) -> &'static str {
        match self {
            GroupPhase::Empty => "Empty",
            GroupPhase::PreparingRebalance => "PreparingRebalance",
            GroupPhase::CompletingRebalance => "CompletingRebalance",
            GroupPhase::Stable => "Stable",
            GroupPhase::Dead => "Dead",
        }
    }
}

/// Why a group request is refused; each maps to one Kafka error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupError {
    /// The member id is not (or no longer) in the group.
    UnknownMemberId,
    /// The request's generation is not the group's.
    IllegalGeneration,
    /// A rebalance is under way; rejoin.
    RebalanceInProgress,
    /// KIP-394: rejoin with the member id given in the response.
    MemberIdRequired,
    /// Another member now holds this group.instance.id.
    FencedInstanceId,
    /// No protocol is shared with the group, or the protocol type differs.
    InconsistentGroupProtocol,
    /// The session timeout is outside the broker's bounds.
    InvalidSessionTimeout,
    /// The group was deleted meanwhile; find the coordinator again.
    CoordinatorNotAvailable,
    /// DeleteGroups or OffsetDelete for a group that does not exist.
    GroupIdNotFound,
    /// DeleteGroups for a group that still has members.
    NonEmptyGroup,
    /// OffsetDelete for a topic the group's members subscribe to.
    GroupSubscribedToTopic,
    /// An OffsetCommit from an older epoch of a KIP-848 member.
    StaleMemberEpoch,
    /// An OffsetCommit from an epoch newer than a KIP-848 member's.
    FencedMemberEpoch,
}

/// Limits the broker sets on groups.
#[derive(Debug, Clone, Copy)]
pub struct GroupLimits {
    /// `group.min.session.timeout.ms`.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`: how long a new group waits for more members.
    pub initial_rebalance_delay_ms: i32,
}

impl Default for GroupLimits {
    fn default() -> Self {
        GroupLimits {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
        }
    }
}

/// A member of the group.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// The id the coordinator gave it.
    pub member_id: String,
    /// Its `group.instance.id`, for static membership.
    pub group_instance_id: Option<String>,
    /// The client's id, for DescribeGroups.
    pub client_id: String,
    /// The client's address, for DescribeGroups.
    pub client_host: String,
    /// Without a heartbeat for this long, the member is removed.
    pub session_timeout_ms: i32,
    /// How long a rebalance may wait for this member to rejoin.
    pub rebalance_timeout_ms: i32,
    /// Protocols it supports, most preferred first, with their metadata.
    pub protocols: Vec<(String, Bytes)>,
    /// What the leader assigned it in the current generation.
    pub assignment: Bytes,
    /// Last time it showed it is alive.
    pub last_heartbeat_ms: i64,
    /// A JoinGroup request parked until the rebalance completes.
    pub awaiting_join: Option<u64>,
    /// A SyncGroup request parked until the leader's assignment arrives.
    pub awaiting_sync: Option<u64>,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }
}

/// A JoinGroup request, decoded.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// Empty for a member joining for the first time.
    pub member_id: String,
    /// Static membership id, if any.
    pub group_instance_id: Option<String>,
    /// The client's id.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
    /// Requested session timeout.
    pub session_timeout_ms: i32,
    /// Requested rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// e.g. "consumer".
    pub protocol_type: String,
    /// Supported protocols with metadata, most preferred first.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new member must first learn its id (KIP-394).
    pub require_known_member_id: bool,
}

/// The answer to a JoinGroup.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinOutcome {
    /// Set when refused; the other fields then carry what the error needs (member id).
    pub error: Option<GroupError>,
    /// The generation the member joined.
    pub generation_id: i32,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The chosen protocol.
    pub protocol_name: Option<String>,
    /// The leader's member id.
    pub leader: String,
    /// The member's id.
    pub member_id: String,
    /// For the leader: every member with its metadata for the chosen protocol.
    pub members: Vec<(String, Option<String>, Bytes)>,
    /// KIP-814: a static leader that rejoined without a rebalance must not assign again.
    pub skip_assignment: bool,
}

/// The answer to a SyncGroup.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncOutcome {
    /// Set when refused.
    pub error: Option<GroupError>,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The chosen protocol.
    pub protocol_name: Option<String>,
    /// The member's assignment.
    pub assignment: Bytes,
}

/// Something the shell must do because of a transition.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Answer the parked JoinGroup `token`.
    Join { token: u64, outcome: JoinOutcome },
    /// Answer the parked SyncGroup `token`.
    Sync { token: u64, outcome: SyncOutcome },
    /// The group's generation, members or assignment changed: write it to the offsets topic.
    Persist,
}

/// What a request gets right away: an answer, or nothing yet (it was parked).
pub type Immediate<T> = Option<T>;

/// One group.
#[derive(Debug, Clone)]
pub struct Group {
    /// The group id.
    pub group_id: String,
    /// The phase.
    pub phase: GroupPhase,
    /// Bumped when a rebalance completes.
    pub generation_id: i32,
    /// The protocol type every member shares ("consumer" for consumers).
    pub protocol_type: Option<String>,
    /// The protocol chosen for the current generation.
    pub protocol_name: Option<String>,
    /// The member that computes assignments.
    pub leader: Option<String>,
    /// Members by id.
    pub members: BTreeMap<String, Member>,
    /// Member ids by group.instance.id.
    pub static_members: HashMap<String, String>,
    /// Ids handed out with MEMBER_ID_REQUIRED, not yet joined, with when they were issued.
    pub pending_members: HashMap<String, (i64, i32)>,
    /// When the current PreparingRebalance must end.
    rebalance_deadline_ms: Option<i64>,
    /// The initial-delay window of a new group: (window start, longest it may run).
    initial_delay: Option<(i64, i64)>,
    /// When the phase last changed.
    pub state_timestamp_ms: i64,
}

impl Group {
    /// A new, empty group.
    pub fn new(group_id: &str, now_ms: i64) -> Group {
        Group {
            group_id: group_id.to_string(),
            phase: GroupPhase::Empty,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            rebalance_deadline_ms: None,
            initial_delay: None,
            state_timestamp_ms: now_ms,
        }
    }

    fn set_phase(&mut self, phase: GroupPhase, now_ms: i64) {
        self.phase = phase;
        self.state_timestamp_ms = now_ms;
    }

    fn refused(&self, error: GroupError, member_id: &str) -> JoinOutcome {
        JoinOutcome {
            error: Some(error),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
            skip_assignment: false,
        }
    }

    fn current_generation_outcome(
        &self,
        member_id: &str,
        members: Vec<(String, Option<String>, Bytes)>,
    ) -> JoinOutcome {
        JoinOutcome {
            error: None,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members,
            skip_assignment: false,
        }
    }

    fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        self.candidate_protocols()
            .iter()
            .any(|candidate| protocols.iter().any(|(name, _)| name == candidate))
    }

    /// Protocols every member supports.
    fn candidate_protocols(&self) -> Vec<String> {
        let mut members = self.members.values();
        let Some(first) = members.next() else {
            return Vec::new();
        };
        let mut candidates: Vec<String> = first
            .protocols
            .iter()
            .map(|(name, _)| name.clone())
            .collect();
        for member in members {
            candidates
                .retain(|candidate| member.protocols.iter().any(|(name, _)| name == candidate));
        }
        candidates
    }

    /// Kafka's choice: each member votes for its most preferred candidate; most votes wins.
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: Vec<(String, usize)> = candidates
            .iter()
            .map(|candidate| (candidate.clone(), 0))
            .collect();
        for member in self.members.values() {
            if let Some((name, _)) = member
                .protocols
                .iter()
                .find(|(name, _)| candidates.contains(name))
            {
                if let Some(entry) = votes.iter_mut().find(|(candidate, _)| candidate == name) {
                    entry.1 += 1;
                }
            }
        }
        votes
            .iter()
            .fold(None::<&(String, usize)>, |best, entry| match best {
                Some(best) if best.1 >= entry.1 => Some(best),
                _ => Some(entry),
            })
            .map(|(name, _)| name.clone())
    }

    /// Handles a JoinGroup. `token` identifies the request if it has to wait.
    pub fn join(
        &mut self,
        request: JoinRequest,
        token: u64,
        limits: &GroupLimits,
        now_ms: i64,
        new_member_id: impl FnOnce(&str) -> String,
    ) -> (Immediate<JoinOutcome>, Vec<Effect>) {
        if self.phase == GroupPhase::Dead {
            return (
                Some(self.refused(GroupError::CoordinatorNotAvailable, &request.member_id)),
                Vec::new(),
            );
        }
        if request.session_timeout_ms < limits.min_session_timeout_ms
            || request.session_timeout_ms > limits.max_session_timeout_ms
        {
            return (
                Some(self.refused(GroupError::InvalidSessionTimeout, &request.member_id)),
                Vec::new(),
            );
        }
        if !self.supports_protocols(&request.protocol_type, &request.protocols) {
            return (
                Some(self.refused(GroupError::InconsistentGroupProtocol, &request.member_id)),
                Vec::new(),
            );
        }
        if request.member_id.is_empty() {
            return self.join_unknown_member(request, token, limits, now_ms, new_member_id);
        }
        self.join_known_member(request, token, limits, now_ms)
    }

    fn join_unknown_member(
        &mut self,
        request: JoinRequest,
        token: u64,
        limits: &GroupLimits,
        now_ms: i64,
        new_member_id: impl FnOnce(&str) -> String,
    ) -> (Immediate<JoinOutcome>, Vec<Effect>) {
        if let Some(instance_id) = request.group_instance_id.clone() {
            let member_id = new_member_id(&instance_id);
            if let Some(old_member_id) = self.static_members.get(&instance_id).cloned() {
                return self.rejoin_static_member(
                    request,
                    &old_member_id,
                    member_id,
                    token,
                    limits,
                    now_ms,
                );
            }
            self.static_members.insert(instance_id, member_id.clone());
            let effects = self.add_member_and_rebalance(request, member_id, token, limits, now_ms);
            return (None, effects);
        }
        let member_id = new_member_id(&request.client_id);
        if request.require_known_member_id {
            self.pending_members
                .insert(member_id.clone(), (now_ms, request.session_timeout_ms));
            return (
                Some(self.refused(GroupError::MemberIdRequired, &member_id)),
                Vec::new(),
            );
        }
        let effects = self.add_member_and_rebalance(request, member_id, token, limits, now_ms);
        (None, effects)
    }

    /// A static member restarted: it keeps its place and assignment under a new member id.
    fn rejoin_static_member(
        &mut self,
        request: JoinRequest,
        old_member_id: &str,
        member_id: String,
        token: u64,
        limits: &GroupLimits,
        now_ms: i64,
    ) -> (Immediate<JoinOutcome>, Vec<Effect>) {
        let Some(mut member) = self.members.remove(old_member_id) else {
            self.static_members
                .remove(request.group_instance_id.as_deref().unwrap_or_default());
            let effects = self.add_member_and_rebalance(request, member_id, token, limits, now_ms);
            return (None, effects);
        };
        let mut effects = Vec::new();
        // The old incarnation's parked requests are answered as fenced.
        if let Some(old_token) = member.awaiting_join.take() {
            effects.push(Effect::Join {
                token: old_token,
                outcome: self.refused(GroupError::FencedInstanceId, old_member_id),
            });
        }
        if let Some(old_token) = member.awaiting_sync.take() {
            effects.push(Effect::Sync {
                token: old_token,
                outcome: sync_refused(GroupError::FencedInstanceId),
            });
        }
        member.member_id = member_id.clone();
        member.client_id = request.client_id.clone();
        member.client_host = request.client_host.clone();
        member.session_timeout_ms = request.session_timeout_ms;
        member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        member.protocols = request.protocols.clone();
        member.last_heartbeat_ms = now_ms;
        let was_leader = self.leader.as_deref() == Some(old_member_id);
        if was_leader {
            self.leader = Some(member_id.clone());
        }
        self.static_members.insert(
            request.group_instance_id.clone().unwrap_or_default(),
            member_id.clone(),
        );
        self.members.insert(member_id.clone(), member);
        match self.phase {
            // Kafka rebalances only if the protocol the group would select changes: a restarted
            // consumer's metadata differs anyway (it owns no partitions, its generation is -1).
            GroupPhase::Stable if self.select_protocol() == self.protocol_name => {
                // KIP-345: no rebalance; the member gets the current generation and fetches
                // its assignment with SyncGroup. A leader must not assign again (KIP-814).
                let mut outcome = self.current_generation_outcome(&member_id, Vec::new());
                if was_leader {
                    outcome.members = self.member_list();
                    outcome.skip_assignment = true;
                }
                effects.push(Effect::Persist);
                (Some(outcome), effects)
            }
            GroupPhase::PreparingRebalance => {
                self.members
                    .get_mut(&member_id)
                    .expect("just inserted")
                    .awaiting_join = Some(token);
                effects.extend(self.maybe_complete_join(now_ms));
                (None, effects)
            }
            _ => {
                self.members
                    .get_mut(&member_id)
                    .expect("just inserted")
                    .awaiting_join = Some(token);
                effects.extend(self.prepare_rebalance(limits, now_ms));
                effects.extend(self.maybe_complete_join(now_ms));
                (None, effects)
            }
        }
    }

    fn join_known_member(
        &mut self,
        request: JoinRequest,
        token: u64,
        limits: &GroupLimits,
        now_ms: i64,
    ) -> (Immediate<JoinOutcome>, Vec<Effect>) {
        let member_id = request.member_id.clone();
        if let Some(instance_id) = &request.group_instance_id {
            if self
                .static_members
                .get(instance_id)
                .is_some_and(|current| *current != member_id)
            {
                return (
                    Some(self.refused(GroupError::FencedInstanceId, &member_id)),
                    Vec::new(),
                );
            }
        }
        if self.pending_members.remove(&member_id).is_some() {
            let effects = self.add_member_and_rebalance(request, member_id, token, limits, now_ms);
            return (None, effects);
        }
        let Some(member) = self.members.get_mut(&member_id) else {
            return (
                Some(self.refused(GroupError::UnknownMemberId, &member_id)),
                Vec::new(),
            );
        };
        let protocols_changed = member.protocols != request.protocols;
        member.last_heartbeat_ms = now_ms;
        member.session_timeout_ms = request.session_timeout_ms;
        member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        member.protocols = request.protocols;
        let is_leader = self.leader.as_deref() == Some(member_id.as_str());
        let mut effects = Vec::new();
        match self.phase {
            GroupPhase::PreparingRebalance => {
                let previous = self
                    .members
                    .get_mut(&member_id)
                    .expect("checked above")
                    .awaiting_join
                    .replace(token);
                if let Some(previous) = previous {
                    effects.push(Effect::Join {
                        token: previous,
                        outcome: self.refused(GroupError::RebalanceInProgress, &member_id),
                    });
                }
                effects.extend(self.maybe_complete_join(now_ms));
                (None, effects)
            }
            // The member lost its JoinGroup answer: give it the current generation again.
            GroupPhase::CompletingRebalance if !protocols_changed => {
                let members = if is_leader {
                    self.member_list()
                } else {
                    Vec::new()
                };
                (
                    Some(self.current_generation_outcome(&member_id, members)),
                    effects,
                )
            }
            GroupPhase::Stable if !protocols_changed && !is_leader => (
                Some(self.current_generation_outcome(&member_id, Vec::new())),
                effects,
            ),
            // A changed subscription, or a leader asking to assign again, starts a rebalance.
            GroupPhase::CompletingRebalance | GroupPhase::Stable => {
                self.members
                    .get_mut(&member_id)
                    .expect("checked above")
                    .awaiting_join = Some(token);
                effects.extend(self.prepare_rebalance(limits, now_ms));
                effects.extend(self.maybe_complete_join(now_ms));
                (None, effects)
            }
            GroupPhase::Empty | GroupPhase::Dead => (
                Some(self.refused(GroupError::UnknownMemberId, &member_id)),
                effects,
            ),
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        request: JoinRequest,
        member_id: String,
        token: u64,
        limits: &GroupLimits,
        now_ms: i64,
    ) -> Vec<Effect> {
        if self.members.is_empty() {
            self.protocol_type = Some(request.protocol_type.clone());
        }
        let member = Member {
            member_id: member_id.clone(),
            group_instance_id: request.group_instance_id,
            client_id: request.client_id,
            client_host: request.client_host,
            session_timeout_ms: request.session_timeout_ms,
            rebalance_timeout_ms: request.rebalance_timeout_ms,
            protocols: request.protocols,
            assignment: Bytes::new(),
            last_heartbeat_ms: now_ms,
            awaiting_join: Some(token),
            awaiting_sync: None,
        };
        self.members.insert(member_id.clone(), member);
        if self.leader.is_none() {
            self.leader = Some(member_id);
        }
        let mut effects = Vec::new();
        if self.phase == GroupPhase::PreparingRebalance {
            if let Some((started, longest)) = self.initial_delay {
                // Each member arriving in the initial window extends it, up to the longest.
                let extended =
                    (now_ms + limits.initial_rebalance_delay_ms as i64).min(started + longest);
                self.rebalance_deadline_ms = Some(extended);
            }
        } else {
            effects.extend(self.prepare_rebalance(limits, now_ms));
        }
        effects.extend(self.maybe_complete_join(now_ms));
        effects
    }

    fn prepare_rebalance(&mut self, limits: &GroupLimits, now_ms: i64) -> Vec<Effect> {
        let mut effects = Vec::new();
        if self.phase == GroupPhase::CompletingRebalance {
            // Assignments of the generation that never became stable are void.
            for member in self.members.values_mut() {
                if let Some(token) = member.awaiting_sync.take() {
                    effects.push(Effect::Sync {
                        token,
                        outcome: sync_refused(GroupError::RebalanceInProgress),
                    });
                }
            }
        }
        let longest_rebalance = self
            .members
            .values()
            .map(|member| member.rebalance_timeout_ms as i64)
            .max()
            .unwrap_or(0);
        if self.phase == GroupPhase::Empty {
            let delay = (limits.initial_rebalance_delay_ms as i64).min(longest_rebalance);
            self.initial_delay = Some((now_ms, longest_rebalance));
            self.rebalance_deadline_ms = Some(now_ms + delay);
        } else {
            self.initial_delay = None;
            self.rebalance_deadline_ms = Some(now_ms + longest_rebalance);
        }
        self.set_phase(GroupPhase::PreparingRebalance, now_ms);
        effects
    }

    /// Completes the join phase once every member has rejoined (outside the initial delay).
    fn maybe_complete_join(&mut self, now_ms: i64) -> Vec<Effect> {
        if self.phase != GroupPhase::PreparingRebalance || self.initial_delay.is_some() {
            return Vec::new();
        }
        let everyone_joined = self
            .members
            .values()
            .all(|member| member.awaiting_join.is_some())
            && self.pending_members.is_empty();
        if everyone_joined {
            return self.complete_join(now_ms);
        }
        Vec::new()
    }

    fn complete_join(&mut self, now_ms: i64) -> Vec<Effect> {
        // Dynamic members that did not rejoin in time are out; static ones stay until their
        // session expires (KIP-345), as in Kafka's completeClassicGroupJoin.
        let missing: Vec<String> = self
            .members
            .values()
            .filter(|member| member.awaiting_join.is_none() && member.group_instance_id.is_none())
            .map(|member| member.member_id.clone())
            .collect();
        for member_id in missing {
            self.forget_member(&member_id);
        }
        if !self.members.is_empty() && !self.elect_joined_leader() {
            // Nobody rejoined: wait another rebalance timeout, during which the silent static
            // members rejoin or their sessions expire.
            let longest_rebalance = self
                .members
                .values()
                .map(|member| member.rebalance_timeout_ms as i64)
                .max()
                .unwrap_or(0);
            self.initial_delay = None;
            self.rebalance_deadline_ms = Some(now_ms + longest_rebalance);
            return Vec::new();
        }
        self.pending_members.clear();
        self.initial_delay = None;
        self.rebalance_deadline_ms = None;
        self.generation_id += 1;
        if self.members.is_empty() {
            // Kafka keeps the protocol type of an empty group; ListGroups still shows "consumer".
            self.protocol_name = None;
            self.leader = None;
            self.set_phase(GroupPhase::Empty, now_ms);
            return vec![Effect::Persist];
        }
        self.protocol_name = self.select_protocol();
        self.set_phase(GroupPhase::CompletingRebalance, now_ms);
        let leader = self.leader.clone().unwrap_or_default();
        let member_list = self.member_list();
        let mut effects = Vec::new();
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for member_id in ids {
            let members = if member_id == leader {
                member_list.clone()
            } else {
                Vec::new()
            };
            let outcome = self.current_generation_outcome(&member_id, members);
            let member = self.members.get_mut(&member_id).expect("listed above");
            member.assignment = Bytes::new();
            member.last_heartbeat_ms = now_ms;
            if let Some(token) = member.awaiting_join.take() {
                effects.push(Effect::Join { token, outcome });
            }
        }
        effects
    }

    /// Keeps the leader if it rejoined, else picks a member that did; false if none did.
    fn elect_joined_leader(&mut self) -> bool {
        let rejoined = |member: &Member| member.awaiting_join.is_some();
        if self
            .leader
            .as_ref()
            .and_then(|leader| self.members.get(leader))
            .is_some_and(rejoined)
        {
            return true;
        }
        let Some(new_leader) = self.members.values().find(|member| rejoined(member)) else {
            return false;
        };
        self.leader = Some(new_leader.member_id.clone());
        true
    }

    fn member_list(&self) -> Vec<(String, Option<String>, Bytes)> {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        self.members
            .values()
            .map(|member| {
                (
                    member.member_id.clone(),
                    member.group_instance_id.clone(),
                    member.metadata_for(&protocol),
                )
            })
            .collect()
    }

    fn forget_member(&mut self, member_id: &str) {
        if let Some(member) = self.members.remove(member_id) {
            if let Some(instance_id) = &member.group_instance_id {
                if self
                    .static_members
                    .get(instance_id)
                    .is_some_and(|current| current == member_id)
                {
                    self.static_members.remove(instance_id);
                }
            }
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = self.members.keys().next().cloned();
        }
    }

    /// Checks a member's identity and generation, as every request after JoinGroup does.
    fn check_member(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), GroupError> {
        if self.phase == GroupPhase::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if let Some(instance_id) = group_instance_id {
            if self
                .static_members
                .get(instance_id)
                .is_some_and(|current| current != member_id)
            {
                return Err(GroupError::FencedInstanceId);
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(GroupError::UnknownMemberId);
        }
        if generation_id != self.generation_id {
            return Err(GroupError::IllegalGeneration);
        }
        Ok(())
    }

    /// Handles a SyncGroup.
    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        token: u64,
        now_ms: i64,
    ) -> (Immediate<SyncOutcome>, Vec<Effect>) {
        if let Err(error) = self.check_member(member_id, group_instance_id, generation_id) {
            return (Some(sync_refused(error)), Vec::new());
        }
        if protocol_type.is_some_and(|found| Some(found) != self.protocol_type.as_deref())
            || protocol_name.is_some_and(|found| Some(found) != self.protocol_name.as_deref())
        {
            return (
                Some(sync_refused(GroupError::InconsistentGroupProtocol)),
                Vec::new(),
            );
        }
        match self.phase {
            GroupPhase::Empty | GroupPhase::Dead => {
                (Some(sync_refused(GroupError::UnknownMemberId)), Vec::new())
            }
            GroupPhase::PreparingRebalance => (
                Some(sync_refused(GroupError::RebalanceInProgress)),
                Vec::new(),
            ),
            GroupPhase::Stable => {
                self.members
                    .get_mut(member_id)
                    .expect("checked")
                    .last_heartbeat_ms = now_ms;
                (Some(self.sync_success(member_id)), Vec::new())
            }
            GroupPhase::CompletingRebalance => {
                let member = self.members.get_mut(member_id).expect("checked");
                member.last_heartbeat_ms = now_ms;
                // A repeated SyncGroup supersedes the parked one, which still gets an answer.
                let superseded = member
                    .awaiting_sync
                    .replace(token)
                    .map(|previous| Effect::Sync {
                        token: previous,
                        outcome: sync_refused(GroupError::RebalanceInProgress),
                    });
                if self.leader.as_deref() != Some(member_id) {
                    return (None, superseded.into_iter().collect());
                }
                for (assigned_member, assignment) in assignments {
                    if let Some(member) = self.members.get_mut(&assigned_member) {
                        member.assignment = assignment;
                    }
                }
                self.set_phase(GroupPhase::Stable, now_ms);
                let mut effects: Vec<Effect> = superseded.into_iter().collect();
                effects.push(Effect::Persist);
                let waiting: Vec<(String, u64)> = self
                    .members
                    .values_mut()
                    .filter_map(|member| {
                        member
                            .awaiting_sync
                            .take()
                            .map(|token| (member.member_id.clone(), token))
                    })
                    .collect();
                for (waiting_member, token) in waiting {
                    effects.push(Effect::Sync {
                        token,
                        outcome: self.sync_success(&waiting_member),
                    });
                }
                (None, effects)
            }
        }
    }

    fn sync_success(&self, member_id: &str) -> SyncOutcome {
        SyncOutcome {
            error: None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment: self
                .members
                .get(member_id)
                .map(|member| member.assignment.clone())
                .unwrap_or_default(),
        }
    }

    /// Handles a Heartbeat.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        self.check_member(member_id, group_instance_id, generation_id)?;
        match self.phase {
            GroupPhase::Empty | GroupPhase::Dead => Err(GroupError::UnknownMemberId),
            GroupPhase::PreparingRebalance => {
                self.members
                    .get_mut(member_id)
                    .expect("checked")
                    .last_heartbeat_ms = now_ms;
                Err(GroupError::RebalanceInProgress)
            }
            GroupPhase::CompletingRebalance | GroupPhase::Stable => {
                self.members
                    .get_mut(member_id)
                    .expect("checked")
                    .last_heartbeat_ms = now_ms;
                Ok(())
            }
        }
    }

    /// Handles one member of a LeaveGroup.
    pub fn leave(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        limits: &GroupLimits,
        now_ms: i64,
    ) -> (Result<(), GroupError>, Vec<Effect>) {
        if self.phase == GroupPhase::Dead {
            return (Err(GroupError::CoordinatorNotAvailable), Vec::new());
        }
        let target = match group_instance_id {
            Some(instance_id) => match self.static_members.get(instance_id) {
                Some(current) if member_id.is_empty() || current == member_id => current.clone(),
                Some(_) => return (Err(GroupError::FencedInstanceId), Vec::new()),
                None => return (Err(GroupError::UnknownMemberId), Vec::new()),
            },
            None => member_id.to_string(),
        };
        if self.pending_members.remove(&target).is_some() {
            return (Ok(()), self.maybe_complete_join(now_ms));
        }
        let Some(member) = self.members.get(&target).cloned() else {
            return (Err(GroupError::UnknownMemberId), Vec::new());
        };
        let mut effects = Vec::new();
        if let Some(token) = member.awaiting_join {
            effects.push(Effect::Join {
                token,
                outcome: self.refused(GroupError::UnknownMemberId, &target),
            });
        }
        if let Some(token) = member.awaiting_sync {
            effects.push(Effect::Sync {
                token,
                outcome: sync_refused(GroupError::UnknownMemberId),
            });
        }
        self.forget_member(&target);
        effects.extend(self.after_member_removed(limits, now_ms));
        (Ok(()), effects)
    }

    fn after_member_removed(&mut self, limits: &GroupLimits, now_ms: i64) -> Vec<Effect> {
        match self.phase {
            GroupPhase::Stable | GroupPhase::CompletingRebalance => {
                let mut effects = self.prepare_rebalance(limits, now_ms);
                effects.extend(self.maybe_complete_join(now_ms));
                effects
            }
            GroupPhase::PreparingRebalance => {
                if self.members.is_empty() {
                    return self.complete_join(now_ms);
                }
                self.maybe_complete_join(now_ms)
            }
            GroupPhase::Empty | GroupPhase::Dead => Vec::new(),
        }
    }

    /// Advances time: expires silent members and ends a rebalance whose time is up.
    pub fn tick(&mut self, limits: &GroupLimits, now_ms: i64) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.pending_members
            .retain(|_, (issued, session_timeout)| now_ms - *issued <= *session_timeout as i64);
        let is_expired = |member: &Member| {
            member.awaiting_join.is_none()
                && now_ms - member.last_heartbeat_ms > member.session_timeout_ms as i64
        };
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|member| is_expired(member))
            .map(|member| member.member_id.clone())
            .collect();
        for member_id in expired {
            // Removing one member may already have removed this one, or answered its parked
            // SyncGroup with REBALANCE_IN_PROGRESS: look again rather than use a stale copy.
            let Some(member) = self
                .members
                .get_mut(&member_id)
                .filter(|member| is_expired(member))
            else {
                continue;
            };
            if let Some(token) = member.awaiting_sync.take() {
                effects.push(Effect::Sync {
                    token,
                    outcome: sync_refused(GroupError::UnknownMemberId),
                });
            }
            self.forget_member(&member_id);
            effects.extend(self.after_member_removed(limits, now_ms));
        }
        if self.phase == GroupPhase::PreparingRebalance
            && self
                .rebalance_deadline_ms
                .is_some_and(|deadline| now_ms >= deadline)
        {
            effects.extend(self.complete_join(now_ms));
        } else {
            effects.extend(self.maybe_complete_join(now_ms));
        }
        effects
    }

    /// Checks an OffsetCommit's member and generation. Returns whether it counts as a heartbeat.
    pub fn check_commit(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        if generation_id < 0 && member_id.is_empty() && group_instance_id.is_none() {
            // A consumer that assigns partitions itself and only stores offsets here.
            return match self.phase {
                GroupPhase::Empty => Ok(()),
                GroupPhase::Dead => Err(GroupError::CoordinatorNotAvailable),
                _ => Err(GroupError::UnknownMemberId),
            };
        }
        self.check_member(member_id, group_instance_id, generation_id)?;
        match self.phase {
            GroupPhase::CompletingRebalance => Err(GroupError::RebalanceInProgress),
            GroupPhase::Empty | GroupPhase::Dead => Err(GroupError::UnknownMemberId),
            GroupPhase::PreparingRebalance | GroupPhase::Stable => {
                self.members
                    .get_mut(member_id)
                    .expect("checked")
                    .last_heartbeat_ms = now_ms;
                Ok(())
            }
        }
    }

    /// Kafka's `offsets.retention.minutes` rule: a group's offsets expire once it has been
    /// empty for the retention period; a group with members keeps them however old.
    pub fn offsets_expired(&self, retention_ms: i64, now_ms: i64) -> bool {
        self.phase == GroupPhase::Empty
            && now_ms.saturating_sub(self.state_timestamp_ms) > retention_ms
    }

    /// Marks the group deleted; parked requests are answered so clients look again.
    pub fn delete(&mut self, now_ms: i64) -> Vec<Effect> {
        let mut effects = Vec::new();
        for member in self.members.values() {
            if let Some(token) = member.awaiting_join {
                effects.push(Effect::Join {
                    token,
                    outcome: self.refused(GroupError::CoordinatorNotAvailable, &member.member_id),
                });
            }
            if let Some(token) = member.awaiting_sync {
                effects.push(Effect::Sync {
                    token,
                    outcome: sync_refused(GroupError::CoordinatorNotAvailable),
                });
            }
        }
        self.members.clear();
        self.static_members.clear();
        self.pending_members.clear();
        self.set_phase(GroupPhase::Dead, now_ms);
        effects
    }

    /// Restores a persisted, stable generation after a broker restart; members get a fresh session.
    pub fn restore(
        &mut self,
        generation_id: i32,
        protocol_type: Option<String>,
        protocol_name: Option<String>,
        leader: Option<String>,
        members: Vec<Member>,
        now_ms: i64,
    ) {
        self.generation_id = generation_id;
        self.protocol_type = protocol_type;
        self.protocol_name = protocol_name;
        self.leader = leader;
        self.members.clear();
        self.static_members.clear();
        for mut member in members {
            member.last_heartbeat_ms = now_ms;
            member.awaiting_join = None;
            member.awaiting_sync = None;
            if let Some(instance_id) = &member.group_instance_id {
                self.static_members
                    .insert(instance_id.clone(), member.member_id.clone());
            }
            self.members.insert(member.member_id.clone(), member);
        }
        let phase = if self.members.is_empty() {
            GroupPhase::Empty
        } else {
            GroupPhase::Stable
        };
        self.set_phase(phase, now_ms);
    }
}

fn sync_refused(error: GroupError) -> SyncOutcome {
    SyncOutcome {
        error: Some(error),
        protocol_type: None,
        protocol_name: None,
        assignment: Bytes::new(),
    }
}
#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
