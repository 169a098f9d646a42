//! Unit tests for the classic-protocol group state machine, checked against Kafka's
//! GroupCoordinator (`GroupMetadataManager` / `ClassicGroup` in the group-coordinator module).
//!
//! Time is driven by hand through [`Harness`]; every request gets a fresh token so parked
//! answers can be matched to the request that caused them.

use std::collections::HashSet;

use super::*;
use crate::group::prng::Prng;

const START_MS: i64 = 1_000_000;
const SESSION_TIMEOUT_MS: i32 = 10_000;
const REBALANCE_TIMEOUT_MS: i32 = 30_000;
const INITIAL_DELAY_MS: i64 = 3_000;

fn protocols(list: &[(&str, &str)]) -> Vec<(String, Bytes)> {
    list.iter()
        .map(|(name, metadata)| {
            (
                name.to_string(),
                Bytes::copy_from_slice(metadata.as_bytes()),
            )
        })
        .collect()
}

fn range() -> Vec<(String, Bytes)> {
    protocols(&[("range", "range-metadata")])
}

fn join_request(member_id: &str) -> JoinRequest {
    JoinRequest {
        member_id: member_id.to_string(),
        group_instance_id: None,
        client_id: "client".to_string(),
        client_host: "/127.0.0.1".to_string(),
        session_timeout_ms: SESSION_TIMEOUT_MS,
        rebalance_timeout_ms: REBALANCE_TIMEOUT_MS,
        protocol_type: "consumer".to_string(),
        protocols: range(),
        require_known_member_id: false,
    }
}

fn static_join_request(member_id: &str, instance_id: &str) -> JoinRequest {
    JoinRequest {
        group_instance_id: Some(instance_id.to_string()),
        ..join_request(member_id)
    }
}

fn assignment_of(member_id: &str) -> Bytes {
    Bytes::from(format!("assignment-of-{member_id}"))
}

/// What a request got: its token, the immediate answer (None if parked) and the effects.
struct Answered<T> {
    token: u64,
    immediate: Option<T>,
    effects: Vec<Effect>,
}

/// One group plus a clock, a token counter and a member-id generator.
struct Harness {
    group: Group,
    limits: GroupLimits,
    now_ms: i64,
    next_token: u64,
    next_member_number: u64,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            group: Group::new("group", START_MS),
            limits: GroupLimits::default(),
            now_ms: START_MS,
            next_token: 0,
            next_member_number: 0,
        }
    }

    fn join(&mut self, request: JoinRequest) -> Answered<JoinOutcome> {
        self.next_token += 1;
        let token = self.next_token;
        let counter = &mut self.next_member_number;
        let (immediate, effects) =
            self.group
                .join(request, token, &self.limits, self.now_ms, |prefix| {
                    *counter += 1;
                    format!("{prefix}-{counter}")
                });
        Answered {
            token,
            immediate,
            effects,
        }
    }

    fn sync_as(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        assignments: &[&str],
    ) -> Answered<SyncOutcome> {
        self.next_token += 1;
        let token = self.next_token;
        let assignments = assignments
            .iter()
            .map(|member| (member.to_string(), assignment_of(member)))
            .collect();
        let (immediate, effects) = self.group.sync(
            member_id,
            instance_id,
            generation_id,
            Some("consumer"),
            Some("range"),
            assignments,
            token,
            self.now_ms,
        );
        Answered {
            token,
            immediate,
            effects,
        }
    }

    fn sync(
        &mut self,
        member_id: &str,
        generation_id: i32,
        assignments: &[&str],
    ) -> Answered<SyncOutcome> {
        self.sync_as(member_id, None, generation_id, assignments)
    }

    fn heartbeat(&mut self, member_id: &str, generation_id: i32) -> Result<(), GroupError> {
        self.group
            .heartbeat(member_id, None, generation_id, self.now_ms)
    }

    fn leave(&mut self, member_id: &str) -> (Result<(), GroupError>, Vec<Effect>) {
        self.group.leave(member_id, None, &self.limits, self.now_ms)
    }

    fn commit(&mut self, member_id: &str, generation_id: i32) -> Result<(), GroupError> {
        self.group
            .check_commit(member_id, None, generation_id, self.now_ms)
    }

    /// Moves the clock forward and ticks.
    fn advance(&mut self, by_ms: i64) -> Vec<Effect> {
        self.now_ms += by_ms;
        self.group.tick(&self.limits, self.now_ms)
    }
}

fn join_answers(effects: &[Effect]) -> Vec<(u64, JoinOutcome)> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Join { token, outcome } => Some((*token, outcome.clone())),
            _ => None,
        })
        .collect()
}

fn join_answer(effects: &[Effect], token: u64) -> JoinOutcome {
    join_answers(effects)
        .into_iter()
        .find(|(answered, _)| *answered == token)
        .map(|(_, outcome)| outcome)
        .unwrap_or_else(|| {
            panic!("expected a JoinGroup answer for token {token}, found {effects:?}")
        })
}

fn sync_answer(effects: &[Effect], token: u64) -> SyncOutcome {
    effects
        .iter()
        .find_map(|effect| match effect {
            Effect::Sync {
                token: answered,
                outcome,
            } if *answered == token => Some(outcome.clone()),
            _ => None,
        })
        .unwrap_or_else(|| {
            panic!("expected a SyncGroup answer for token {token}, found {effects:?}")
        })
}

fn persists(effects: &[Effect]) -> bool {
    effects.contains(&Effect::Persist)
}

/// Followers sync first, then the leader assigns `assignment-of-<id>` to everyone.
fn sync_everyone(harness: &mut Harness, member_ids: &[String]) {
    let generation = harness.group.generation_id;
    let leader = harness.group.leader.clone().expect("a leader");
    for member_id in member_ids.iter().filter(|member_id| **member_id != leader) {
        let instance_id = harness.group.members[member_id].group_instance_id.clone();
        let synced = harness.sync_as(member_id, instance_id.as_deref(), generation, &[]);
        assert!(
            synced.immediate.is_none(),
            "a follower's SyncGroup waits for the leader's"
        );
    }
    let everyone: Vec<&str> = member_ids.iter().map(String::as_str).collect();
    let instance_id = harness.group.members[&leader].group_instance_id.clone();
    let synced = harness.sync_as(&leader, instance_id.as_deref(), generation, &everyone);
    assert!(persists(&synced.effects));
    assert_eq!(harness.group.phase, GroupPhase::Stable);
}

/// A Stable group formed from `requests` joining together; member ids in request order.
fn stable_group_of(requests: Vec<JoinRequest>) -> (Harness, Vec<String>) {
    let mut harness = Harness::new();
    let tokens: Vec<u64> = requests
        .into_iter()
        .map(|request| harness.join(request).token)
        .collect();
    let effects = harness.advance(INITIAL_DELAY_MS);
    let member_ids: Vec<String> = tokens
        .iter()
        .map(|token| join_answer(&effects, *token).member_id)
        .collect();
    assert_eq!(harness.group.generation_id, 1);
    sync_everyone(&mut harness, &member_ids);
    (harness, member_ids)
}

fn stable_group(count: usize) -> (Harness, Vec<String>) {
    stable_group_of((0..count).map(|_| join_request("")).collect())
}

fn stable_static_group(instance_ids: &[&str]) -> (Harness, Vec<String>) {
    stable_group_of(
        instance_ids
            .iter()
            .map(|instance_id| static_join_request("", instance_id))
            .collect(),
    )
}

// ---------------------------------------------------------------------------------------------
// First rebalance, KIP-394 and the initial delay
// ---------------------------------------------------------------------------------------------

#[test]
fn first_member_learns_its_id_then_leads_generation_one_after_the_initial_delay() {
    let mut harness = Harness::new();
    let first = harness.join(JoinRequest {
        require_known_member_id: true,
        ..join_request("")
    });
    let refused = first
        .immediate
        .expect("MEMBER_ID_REQUIRED is answered at once");
    assert_eq!(refused.error, Some(GroupError::MemberIdRequired));
    assert!(!refused.member_id.is_empty());
    assert!(first.effects.is_empty());
    assert_eq!(harness.group.phase, GroupPhase::Empty);
    assert!(harness
        .group
        .pending_members
        .contains_key(&refused.member_id));
    let member_id = refused.member_id;

    let rejoined = harness.join(JoinRequest {
        require_known_member_id: true,
        ..join_request(&member_id)
    });
    assert!(
        rejoined.immediate.is_none(),
        "the join waits for the initial delay"
    );
    assert!(rejoined.effects.is_empty());
    assert_eq!(harness.group.phase, GroupPhase::PreparingRebalance);
    assert!(harness.group.pending_members.is_empty());

    assert!(harness.advance(1_000).is_empty());
    assert!(harness.advance(INITIAL_DELAY_MS - 1_000 - 1).is_empty());
    let effects = harness.advance(1);
    let outcome = join_answer(&effects, rejoined.token);
    assert_eq!(outcome.error, None);
    assert_eq!(outcome.generation_id, 1);
    assert_eq!(outcome.member_id, member_id);
    assert_eq!(outcome.leader, member_id);
    assert_eq!(outcome.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(outcome.protocol_name.as_deref(), Some("range"));
    assert_eq!(
        outcome.members,
        vec![(
            member_id.clone(),
            None,
            Bytes::from_static(b"range-metadata")
        )]
    );
    assert!(!outcome.skip_assignment);
    assert_eq!(harness.group.phase, GroupPhase::CompletingRebalance);
    assert_eq!(harness.group.generation_id, 1);
}

#[test]
fn member_joining_during_the_initial_delay_extends_it_and_shares_the_generation() {
    let mut harness = Harness::new();
    let first = harness.join(join_request(""));
    harness.advance(2_000);
    let second = harness.join(join_request(""));
    assert!(second.immediate.is_none());

    // The window now ends 3 s after the second join, not after the first.
    assert!(harness.advance(1_000).is_empty());
    assert!(harness.advance(INITIAL_DELAY_MS - 1_000 - 1).is_empty());
    assert_eq!(harness.group.phase, GroupPhase::PreparingRebalance);
    let effects = harness.advance(1);

    let leader = join_answer(&effects, first.token);
    let follower = join_answer(&effects, second.token);
    assert_eq!(leader.generation_id, 1);
    assert_eq!(follower.generation_id, 1);
    assert_eq!(leader.leader, leader.member_id);
    assert_eq!(follower.leader, leader.member_id);
    assert_eq!(
        leader.members.len(),
        2,
        "only the leader gets the member list"
    );
    assert!(follower.members.is_empty());
    assert_ne!(leader.member_id, follower.member_id);
}

#[test]
fn initial_delay_is_never_extended_beyond_the_rebalance_timeout() {
    let mut harness = Harness::new();
    let first = harness.join(JoinRequest {
        rebalance_timeout_ms: 5_000,
        ..join_request("")
    });
    harness.advance(2_000);
    harness.join(JoinRequest {
        rebalance_timeout_ms: 5_000,
        ..join_request("")
    });
    harness.advance(2_000);
    harness.join(JoinRequest {
        rebalance_timeout_ms: 5_000,
        ..join_request("")
    });
    assert!(harness.advance(999).is_empty());
    let effects = harness.advance(1);
    assert_eq!(join_answer(&effects, first.token).members.len(), 3);
    assert_eq!(harness.group.phase, GroupPhase::CompletingRebalance);
}

#[test]
fn initial_delay_holds_the_join_even_when_everyone_has_joined() {
    let mut harness = Harness::new();
    harness.join(join_request(""));
    assert_eq!(harness.group.phase, GroupPhase::PreparingRebalance);
    assert!(harness.advance(INITIAL_DELAY_MS - 1).is_empty());
    assert_eq!(join_answers(&harness.advance(1)).len(), 1);
}

#[test]
fn pending_member_holds_the_join_phase_until_it_rejoins() {
    let (mut harness, ids) = stable_group(1);
    let newcomer = harness.join(JoinRequest {
        require_known_member_id: true,
        ..join_request("")
    });
    let newcomer_id = newcomer.immediate.expect("answered").member_id;
    assert_eq!(
        harness.group.phase,
        GroupPhase::Stable,
        "a pending member does not rebalance by itself"
    );

    let leader = harness.join(join_request(&ids[0]));
    assert!(leader.immediate.is_none());
    assert!(
        join_answers(&leader.effects).is_empty(),
        "the join waits for the pending member"
    );

    let rejoined = harness.join(JoinRequest {
        require_known_member_id: true,
        ..join_request(&newcomer_id)
    });
    let leader_outcome = join_answer(&rejoined.effects, leader.token);
    let newcomer_outcome = join_answer(&rejoined.effects, rejoined.token);
    assert_eq!(leader_outcome.generation_id, 2);
    assert_eq!(newcomer_outcome.generation_id, 2);
    assert_eq!(newcomer_outcome.member_id, newcomer_id);
}

#[test]
fn pending_member_that_never_returns_expires_after_its_session_timeout() {
    let (mut harness, ids) = stable_group(1);
    harness.join(JoinRequest {
        require_known_member_id: true,
        ..join_request("")
    });
    let leader = harness.join(join_request(&ids[0]));
    assert!(harness.advance(SESSION_TIMEOUT_MS as i64).is_empty());
    let effects = harness.advance(1);
    assert_eq!(join_answer(&effects, leader.token).generation_id, 2);
    assert!(harness.group.pending_members.is_empty());
}

#[test]
fn leave_of_a_pending_member_lets_the_join_complete() {
    let (mut harness, ids) = stable_group(1);
    let pending_id = harness
        .join(JoinRequest {
            require_known_member_id: true,
            ..join_request("")
        })
        .immediate
        .expect("answered")
        .member_id;
    let leader = harness.join(join_request(&ids[0]));
    let (result, effects) = harness.leave(&pending_id);
    assert_eq!(result, Ok(()));
    assert_eq!(join_answer(&effects, leader.token).generation_id, 2);
}

// ---------------------------------------------------------------------------------------------
// SyncGroup
// ---------------------------------------------------------------------------------------------

#[test]
fn leader_sync_answers_parked_follower_syncs_with_their_assignments_and_persists() {
    let mut harness = Harness::new();
    let first = harness.join(join_request(""));
    let second = harness.join(join_request(""));
    let third = harness.join(join_request(""));
    let effects = harness.advance(INITIAL_DELAY_MS);
    let leader = join_answer(&effects, first.token).member_id;
    let follower = join_answer(&effects, second.token).member_id;
    let unassigned = join_answer(&effects, third.token).member_id;

    let follower_sync = harness.sync(&follower, 1, &[]);
    assert!(follower_sync.immediate.is_none());
    assert!(follower_sync.effects.is_empty());

    // The leader leaves the third member out: it gets an empty assignment.
    let leader_sync = harness.sync(&leader, 1, &[&leader, &follower]);
    assert!(
        leader_sync.immediate.is_none(),
        "the leader's own answer comes as an effect"
    );
    assert!(persists(&leader_sync.effects));
    let follower_outcome = sync_answer(&leader_sync.effects, follower_sync.token);
    assert_eq!(follower_outcome.error, None);
    assert_eq!(follower_outcome.assignment, assignment_of(&follower));
    assert_eq!(follower_outcome.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(follower_outcome.protocol_name.as_deref(), Some("range"));
    assert_eq!(
        sync_answer(&leader_sync.effects, leader_sync.token).assignment,
        assignment_of(&leader)
    );
    assert_eq!(harness.group.phase, GroupPhase::Stable);

    // A member syncing after the group is stable is answered at once.
    let late = harness.sync(&unassigned, 1, &[]);
    let late = late.immediate.expect("answered at once in Stable");
    assert_eq!(late.error, None);
    assert!(late.assignment.is_empty());
}

#[test]
fn sync_is_refused_for_wrong_identity_generation_protocol_or_phase() {
    let (mut harness, ids) = stable_group(2);
    let refused =
        |answered: Answered<SyncOutcome>| answered.immediate.expect("answered at once").error;
    assert_eq!(
        refused(harness.sync(&ids[1], 0, &[])),
        Some(GroupError::IllegalGeneration)
    );
    assert_eq!(
        refused(harness.sync("stranger", 1, &[])),
        Some(GroupError::UnknownMemberId)
    );
    let now_ms = harness.now_ms;
    let (wrong_name, _) = harness.group.sync(
        &ids[1],
        None,
        1,
        Some("consumer"),
        Some("roundrobin"),
        Vec::new(),
        99,
        now_ms,
    );
    assert_eq!(
        wrong_name.expect("answered").error,
        Some(GroupError::InconsistentGroupProtocol)
    );
    let (wrong_type, _) = harness.group.sync(
        &ids[1],
        None,
        1,
        Some("connect"),
        None,
        Vec::new(),
        100,
        now_ms,
    );
    assert_eq!(
        wrong_type.expect("answered").error,
        Some(GroupError::InconsistentGroupProtocol)
    );

    harness.join(join_request(""));
    assert_eq!(harness.group.phase, GroupPhase::PreparingRebalance);
    assert_eq!(
        refused(harness.sync(&ids[1], 1, &[])),
        Some(GroupError::RebalanceInProgress)
    );
}

#[test]
fn rebalance_during_completing_rebalance_voids_parked_syncs() {
    let mut harness = Harness::new();
    let first = harness.join(join_request(""));
    let second = harness.join(join_request(""));
    let effects = harness.advance(INITIAL_DELAY_MS);
    let follower = join_answer(&effects, second.token).member_id;
    let leader = join_answer(&effects, first.token).member_id;
    let parked = harness.sync(&follower, 1, &[]);

    let newcomer = harness.join(join_request(""));
    assert_eq!(
        sync_answer(&newcomer.effects, parked.token).error,
        Some(GroupError::RebalanceInProgress)
    );
    assert_eq!(harness.group.phase, GroupPhase::PreparingRebalance);
    assert!(harness
        .group
        .members
        .values()
        .all(|member| member.awaiting_sync.is_none()));

    harness.join(join_request(&leader));
    let effects = harness.join(join_request(&follower)).effects;
    assert_eq!(join_answers(&effects).len(), 3);
    assert_eq!(harness.group.generation_id, 2);
}

// ---------------------------------------------------------------------------------------------
// Heartbeat
// ---------------------------------------------------------------------------------------------

#[test]
fn heartbeat_errors_follow_the_phase_identity_and_generation() {
    let mut harness = Harness::new();
    harness.join(join_request(""));
    let member_id = harness
        .group
        .members
        .keys()
        .next()
        .expect("a member")
        .clone();
    assert_eq!(
        harness.heartbeat(&member_id, 0),
        Err(GroupError::RebalanceInProgress)
    );

    harness.advance(INITIAL_DELAY_MS);
    assert_eq!(harness.group.phase, GroupPhase::CompletingRebalance);
    assert_eq!(
        harness.heartbeat(&member_id, 1),
        Ok(()),
        "heartbeats are fine while awaiting SyncGroup"
    );
    assert_eq!(
        harness.heartbeat(&member_id, 0),
        Err(GroupError::IllegalGeneration)
    );

    harness.sync(&member_id, 1, &[&member_id]);
    assert_eq!(harness.group.phase, GroupPhase::Stable);
    assert_eq!(harness.heartbeat(&member_id, 1), Ok(()));
    assert_eq!(
        harness.heartbeat(&member_id, 2),
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(
        harness.heartbeat("stranger", 1),
        Err(GroupError::UnknownMemberId)
    );

    harness.group.delete(harness.now_ms);
    assert_eq!(
        harness.heartbeat(&member_id, 1),
        Err(GroupError::CoordinatorNotAvailable)
    );
}

// ---------------------------------------------------------------------------------------------
// Rebalances of a Stable group
// ---------------------------------------------------------------------------------------------

#[test]
fn member_joining_a_stable_group_makes_everyone_rejoin_into_the_next_generation() {
    let (mut harness, ids) = stable_group(2);
    let newcomer = harness.join(join_request(""));
    assert!(newcomer.immediate.is_none());
    assert_eq!(harness.group.phase, GroupPhase::PreparingRebalance);
    assert_eq!(
        harness.heartbeat(&ids[0], 1),
        Err(GroupError::RebalanceInProgress)
    );
    assert_eq!(
        harness.heartbeat(&ids[1], 1),
        Err(GroupError::RebalanceInProgress)
    );
    assert_eq!(
        harness.commit(&ids[1], 1),
        Ok(()),
        "commits are still allowed while preparing"
    );

    let leader = harness.join(join_request(&ids[0]));
    assert!(
        join_answers(&leader.effects).is_empty(),
        "not everyone has rejoined yet"
    );
    let follower = harness.join(join_request(&ids[1]));
    let effects = follower.effects;
    let answers = join_answers(&effects);
    assert_eq!(
        answers.len(),
        3,
        "no initial delay once the group has had members"
    );
    assert!(answers
        .iter()
        .all(|(_, outcome)| outcome.generation_id == 2 && outcome.leader == ids[0]));
    assert_eq!(join_answer(&effects, leader.token).members.len(), 3);
    assert!(join_answer(&effects, newcomer.token).members.is_empty());
    assert_eq!(harness.group.phase, GroupPhase::CompletingRebalance);
    assert_eq!(
        harness.heartbeat(&ids[1], 1),
        Err(GroupError::IllegalGeneration)
    );
}

#[test]
fn dynamic_members_that_do_not_rejoin_before_the_rebalance_timeout_are_removed() {
    let (mut harness, ids) = stable_group(2);
    let newcomer = harness.join(join_request(""));
    let leader = harness.join(join_request(&ids[0]));
    // The follower keeps heartbeating, so only the rebalance timeout can remove it.
    for _ in 0..5 {
        harness.advance(5_000);
        assert_eq!(
            harness.heartbeat(&ids[1], 1),
            Err(GroupError::RebalanceInProgress)
        );
    }
    assert!(harness
        .advance(REBALANCE_TIMEOUT_MS as i64 - 25_000 - 1)
        .is_empty());
    assert_eq!(harness.group.phase, GroupPhase::PreparingRebalance);

    let effects = harness.advance(1);
    assert_eq!(join_answer(&effects, leader.token).members.len(), 2);
    assert_eq!(join_answer(&effects, newcomer.token).generation_id, 2);
    assert!(!harness.group.members.contains_key(&ids[1]));
    assert_eq!(
        harness.heartbeat(&ids[1], 1),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        harness.heartbeat(&ids[1], 2),
        Err(GroupError::UnknownMemberId)
    );
}

#[test]
fn leader_that_does_not_rejoin_is_replaced_by_a_member_that_did() {
    let (mut harness, ids) = stable_group(2);
    assert_eq!(harness.leave(&ids[1]).0, Ok(()));
    let newcomer = harness.join(join_request(""));
    // The leader keeps heartbeating but never rejoins.
    for _ in 0..5 {
        harness.advance(5_000);
        assert_eq!(
            harness.heartbeat(&ids[0], 1),
            Err(GroupError::RebalanceInProgress)
        );
    }
    let effects = harness.advance(5_000);
    let outcome = join_answer(&effects, newcomer.token);
    assert_eq!(outcome.leader, outcome.member_id);
    assert_eq!(outcome.members.len(), 1);
    assert_eq!(
        harness.group.leader.as_deref(),
        Some(outcome.member_id.as_str())
    );
    assert!(!harness.group.members.contains_key(&ids[0]));
}

#[test]
fn session_expiry_removes_a_silent_member_and_rebalances() {
    let (mut harness, ids) = stable_group(2);
    let (leader, follower) = (&ids[0], &ids[1]);
    // The follower heartbeats; the leader falls silent.
    harness.advance(5_000);
    assert_eq!(harness.heartbeat(follower, 1), Ok(()));
    assert!(
        harness.advance(5_000).is_empty(),
        "a session of exactly the timeout is still alive"
    );
    assert!(harness.group.members.contains_key(leader));

    harness.advance(1);
    assert!(!harness.group.members.contains_key(leader));
    assert_eq!(harness.group.phase, GroupPhase::PreparingRebalance);
    assert_eq!(harness.group.leader.as_deref(), Some(follower.as_str()));
    assert_eq!(
        harness.heartbeat(follower, 1),
        Err(GroupError::RebalanceInProgress)
    );

    let rejoined = harness.join(join_request(follower));
    let outcome = join_answer(&rejoined.effects, rejoined.token);
    assert_eq!(outcome.generation_id, 2);
    assert_eq!(outcome.leader, *follower);
    assert_eq!(outcome.members.len(), 1);
}

#[test]
fn members_waiting_in_join_do_not_expire() {
    let (mut harness, ids) = stable_group(2);
    harness.join(join_request(&ids[0]));
    harness.advance(SESSION_TIMEOUT_MS as i64 + 1);
    assert!(
        harness.group.members.contains_key(&ids[0]),
        "a parked JoinGroup keeps the member alive"
    );
    assert!(!harness.group.members.contains_key(&ids[1]));
}

#[test]
fn followers_expiring_together_while_awaiting_sync_are_answered_once() {
    let mut harness = Harness::new();
    let first = harness.join(join_request(""));
    let second = harness.join(join_request(""));
    let third = harness.join(join_request(""));
    let effects = harness.advance(INITIAL_DELAY_MS);
    let leader = join_answer(&effects, first.token).member_id;
    let followers = [
        join_answer(&effects, second.token).member_id,
        join_answer(&effects, third.token).member_id,
    ];
    let parked: Vec<u64> = followers
        .iter()
        .map(|follower| harness.sync(follower, 1, &[]).token)
        .collect();

    // The leader is slow but alive; both followers go silent after syncing.
    harness.advance(SESSION_TIMEOUT_MS as i64 / 2);
    harness
        .heartbeat(&leader, 1)
        .expect("the leader is a member");
    let effects = harness.advance(SESSION_TIMEOUT_MS as i64 / 2 + 1);
    for token in parked {
        let answers = effects.iter().filter(|effect| matches!(effect, Effect::Sync { token: answered, .. } if *answered == token)).count();
        assert_eq!(
            answers, 1,
            "token {token} answered {answers} times in {effects:?}"
        );
    }
    assert_eq!(
        harness.group.members.keys().collect::<Vec<_>>(),
        vec![&leader]
    );
    assert_eq!(harness.group.phase, GroupPhase::PreparingRebalance);
}

#[test]
fn offset_commit_counts_as_a_heartbeat() {
    let (mut harness, ids) = stable_group(1);
    for _ in 0..4 {
        harness.advance(SESSION_TIMEOUT_MS as i64 - 1);
        assert_eq!(harness.commit(&ids[0], 1), Ok(()));
    }
    assert_eq!(harness.group.phase, GroupPhase::Stable);
}

// ---------------------------------------------------------------------------------------------
// Known members rejoining
// ---------------------------------------------------------------------------------------------

#[test]
fn follower_rejoining_a_stable_group_unchanged_gets_the_current_generation() {
    let (mut harness, ids) = stable_group(2);
    let rejoined = harness.join(join_request(&ids[1]));
    let outcome = rejoined.immediate.expect("answered at once");
    assert_eq!(outcome.error, None);
    assert_eq!(outcome.generation_id, 1);
    assert_eq!(outcome.leader, ids[0]);
    assert!(outcome.members.is_empty());
    assert!(rejoined.effects.is_empty());
    assert_eq!(harness.group.phase, GroupPhase::Stable);
}

#[test]
fn leader_rejoining_a_stable_group_forces_a_rebalance() {
    let (mut harness, ids) = stable_group(2);
    let rejoined = harness.join(join_request(&ids[0]));
    assert!(rejoined.immediate.is_none());
    assert_eq!(harness.group.phase, GroupPhase::PreparingRebalance);
}

#[test]
fn follower_rejoining_with_changed_metadata_forces_a_rebalance() {
    let (mut harness, ids) = stable_group(2);
    let rejoined = harness.join(JoinRequest {
        protocols: protocols(&[("range", "more-topics")]),
        ..join_request(&ids[1])
    });
    assert!(rejoined.immediate.is_none());
    assert_eq!(harness.group.phase, GroupPhase::PreparingRebalance);
    let effects = harness.join(join_request(&ids[0])).effects;
    let leader_view = join_answers(&effects)
        .into_iter()
        .find(|(_, outcome)| outcome.member_id == ids[0])
        .expect("leader answered")
        .1;
    assert!(leader_view.members.contains(&(
        ids[1].clone(),
        None,
        Bytes::from_static(b"more-topics")
    )));
}

#[test]
fn member_that_lost_its_join_answer_gets_it_again_while_completing() {
    let (mut harness, ids) = stable_group(2);
    harness.join(join_request(&ids[0]));
    harness.join(join_request(&ids[1]));
    assert_eq!(harness.group.phase, GroupPhase::CompletingRebalance);

    let follower = harness
        .join(join_request(&ids[1]))
        .immediate
        .expect("answered at once");
    assert_eq!((follower.generation_id, follower.members.len()), (2, 0));
    let leader = harness
        .join(join_request(&ids[0]))
        .immediate
        .expect("answered at once");
    assert_eq!((leader.generation_id, leader.members.len()), (2, 2));
    assert_eq!(harness.group.phase, GroupPhase::CompletingRebalance);
}

#[test]
fn second_join_while_parked_answers_the_first_with_rebalance_in_progress() {
    let (mut harness, ids) = stable_group(2);
    let first = harness.join(join_request(&ids[0]));
    let second = harness.join(join_request(&ids[0]));
    assert_eq!(
        join_answer(&second.effects, first.token).error,
        Some(GroupError::RebalanceInProgress)
    );
    let effects = harness.join(join_request(&ids[1])).effects;
    assert_eq!(join_answer(&effects, second.token).generation_id, 2);
}

#[test]
fn unknown_member_id_is_refused() {
    let (mut harness, _) = stable_group(1);
    let refused = harness
        .join(join_request("who-is-this"))
        .immediate
        .expect("answered at once");
    assert_eq!(refused.error, Some(GroupError::UnknownMemberId));
    assert_eq!(refused.member_id, "who-is-this");
}

// ---------------------------------------------------------------------------------------------
// LeaveGroup
// ---------------------------------------------------------------------------------------------

#[test]
fn leave_of_one_member_rebalances_the_rest() {
    let (mut harness, ids) = stable_group(2);
    let (result, effects) = harness.leave(&ids[1]);
    assert_eq!(result, Ok(()));
    assert!(join_answers(&effects).is_empty());
    assert_eq!(harness.group.phase, GroupPhase::PreparingRebalance);
    assert_eq!(
        harness.heartbeat(&ids[0], 1),
        Err(GroupError::RebalanceInProgress)
    );
    let rejoined = harness.join(join_request(&ids[0]));
    let outcome = join_answer(&rejoined.effects, rejoined.token);
    assert_eq!((outcome.generation_id, outcome.members.len()), (2, 1));
}

#[test]
fn leave_of_the_last_member_empties_the_group() {
    let (mut harness, ids) = stable_group(1);
    let (result, effects) = harness.leave(&ids[0]);
    assert_eq!(result, Ok(()));
    assert!(persists(&effects));
    assert_eq!(harness.group.phase, GroupPhase::Empty);
    assert_eq!(harness.group.generation_id, 2);
    assert!(harness.group.members.is_empty());
    assert_eq!(harness.group.leader, None);
    assert_eq!(harness.group.protocol_name, None);
    assert_eq!(
        harness.commit("", -1),
        Ok(()),
        "an empty group takes simple commits again"
    );
}

#[test]
fn leave_answers_the_leavers_parked_requests() {
    let (mut harness, ids) = stable_group(2);
    let parked = harness.join(join_request(&ids[1]));
    assert!(
        parked.immediate.is_some(),
        "an unchanged follower is answered at once"
    );
    let parked = harness.join(join_request(&ids[0]));
    let (result, effects) = harness.leave(&ids[0]);
    assert_eq!(result, Ok(()));
    assert_eq!(
        join_answer(&effects, parked.token).error,
        Some(GroupError::UnknownMemberId)
    );

    let mut harness = Harness::new();
    let first = harness.join(join_request(""));
    let second = harness.join(join_request(""));
    let effects = harness.advance(INITIAL_DELAY_MS);
    let follower = join_answer(&effects, second.token).member_id;
    assert!(!join_answer(&effects, first.token).members.is_empty());
    let parked = harness.sync(&follower, 1, &[]);
    let (_, effects) = harness.leave(&follower);
    assert_eq!(
        sync_answer(&effects, parked.token).error,
        Some(GroupError::UnknownMemberId)
    );
}

#[test]
fn leave_checks_identity() {
    let (mut harness, ids) = stable_static_group(&["instance-a", "instance-b"]);
    let limits = harness.limits;
    let now_ms = harness.now_ms;
    assert_eq!(
        harness.leave("stranger").0,
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        harness
            .group
            .leave("stale", Some("instance-a"), &limits, now_ms)
            .0,
        Err(GroupError::FencedInstanceId)
    );
    assert_eq!(
        harness
            .group
            .leave("", Some("instance-z"), &limits, now_ms)
            .0,
        Err(GroupError::UnknownMemberId)
    );
    // Admin removal by instance id alone.
    assert_eq!(
        harness
            .group
            .leave("", Some("instance-b"), &limits, now_ms)
            .0,
        Ok(())
    );
    assert!(!harness.group.members.contains_key(&ids[1]));
    assert!(!harness.group.static_members.contains_key("instance-b"));
    assert_eq!(harness.group.phase, GroupPhase::PreparingRebalance);
}

// ---------------------------------------------------------------------------------------------
// Static membership (KIP-345, KIP-814)
// ---------------------------------------------------------------------------------------------

#[test]
fn static_member_restarting_in_a_stable_group_keeps_its_generation_and_assignment() {
    let (mut harness, ids) = stable_static_group(&["instance-a", "instance-b"]);
    let old_member_id = ids[1].clone();
    let restarted = harness.join(static_join_request("", "instance-b"));
    let outcome = restarted.immediate.expect("answered at once, no rebalance");
    assert_eq!(outcome.error, None);
    assert_eq!(outcome.generation_id, 1);
    assert_ne!(outcome.member_id, old_member_id);
    assert_eq!(outcome.leader, ids[0]);
    assert!(outcome.members.is_empty());
    assert!(!outcome.skip_assignment);
    assert_eq!(restarted.effects, vec![Effect::Persist]);
    assert_eq!(harness.group.phase, GroupPhase::Stable);
    assert_eq!(harness.group.generation_id, 1);
    assert_eq!(
        harness.group.static_members["instance-b"],
        outcome.member_id
    );

    let synced = harness
        .sync_as(&outcome.member_id, Some("instance-b"), 1, &[])
        .immediate
        .expect("answered at once");
    assert_eq!(
        synced.assignment,
        assignment_of(&old_member_id),
        "the assignment survives the restart"
    );

    let now_ms = harness.now_ms;
    assert_eq!(
        harness
            .group
            .heartbeat(&old_member_id, Some("instance-b"), 1, now_ms),
        Err(GroupError::FencedInstanceId)
    );
    assert_eq!(
        harness.group.heartbeat(&old_member_id, None, 1, now_ms),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        harness
            .group
            .heartbeat(&outcome.member_id, Some("instance-b"), 1, now_ms),
        Ok(())
    );
    assert_eq!(
        harness.heartbeat(&ids[0], 1),
        Ok(()),
        "the other member is undisturbed"
    );
}

#[test]
fn static_leader_restarting_in_a_stable_group_is_told_to_skip_assignment() {
    let (mut harness, ids) = stable_static_group(&["instance-a", "instance-b"]);
    let outcome = harness
        .join(static_join_request("", "instance-a"))
        .immediate
        .expect("answered at once");
    assert_eq!(outcome.error, None);
    assert_eq!(outcome.generation_id, 1);
    assert!(outcome.skip_assignment);
    assert_eq!(outcome.leader, outcome.member_id);
    let listed: Vec<&str> = outcome
        .members
        .iter()
        .map(|(member_id, _, _)| member_id.as_str())
        .collect();
    assert!(listed.contains(&outcome.member_id.as_str()) && listed.contains(&ids[1].as_str()));
    assert!(!listed.contains(&ids[0].as_str()));
    assert_eq!(
        harness.group.leader.as_deref(),
        Some(outcome.member_id.as_str())
    );
    assert_eq!(harness.group.phase, GroupPhase::Stable);
}

#[test]
fn static_member_restarting_with_new_metadata_for_the_same_protocol_does_not_rebalance() {
    // A restarted Java consumer no longer owns partitions and has generation -1, so its
    // subscription bytes differ; Kafka only rebalances if the selected protocol would change.
    let (mut harness, ids) = stable_static_group(&["instance-a", "instance-b"]);
    let request = JoinRequest {
        protocols: protocols(&[("range", "owns-nothing-yet")]),
        ..static_join_request("", "instance-b")
    };
    let outcome = harness
        .join(request)
        .immediate
        .expect("answered at once, no rebalance");
    assert_eq!(outcome.error, None);
    assert_eq!(outcome.generation_id, 1);
    assert_eq!(harness.group.phase, GroupPhase::Stable);
    assert_eq!(harness.heartbeat(&ids[0], 1), Ok(()));
}

#[test]
fn static_member_restarting_with_protocols_that_change_the_selection_rebalances() {
    let both = || protocols(&[("range", "m"), ("roundrobin", "m")]);
    let (mut harness, ids) = stable_group_of(vec![
        JoinRequest {
            protocols: both(),
            ..static_join_request("", "instance-a")
        },
        JoinRequest {
            protocols: both(),
            ..static_join_request("", "instance-b")
        },
    ]);
    assert_eq!(harness.group.protocol_name.as_deref(), Some("range"));
    let restarted = harness.join(JoinRequest {
        protocols: protocols(&[("roundrobin", "m")]),
        ..static_join_request("", "instance-b")
    });
    assert!(restarted.immediate.is_none());
    assert_eq!(harness.group.phase, GroupPhase::PreparingRebalance);
    let effects = harness
        .join(JoinRequest {
            protocols: both(),
            ..static_join_request(&ids[0], "instance-a")
        })
        .effects;
    let outcome = join_answer(&effects, restarted.token);
    assert_eq!(outcome.generation_id, 2);
    assert_eq!(outcome.protocol_name.as_deref(), Some("roundrobin"));
}

#[test]
fn duplicate_instance_id_with_a_stale_member_id_is_fenced() {
    let (mut harness, ids) = stable_static_group(&["instance-a", "instance-b"]);
    let stale = ids[1].clone();
    harness
        .join(static_join_request("", "instance-b"))
        .immediate
        .expect("answered");

    let refused = harness
        .join(static_join_request(&stale, "instance-b"))
        .immediate
        .expect("answered at once");
    assert_eq!(refused.error, Some(GroupError::FencedInstanceId));
    let synced = harness
        .sync_as(&stale, Some("instance-b"), 1, &[])
        .immediate
        .expect("answered at once");
    assert_eq!(synced.error, Some(GroupError::FencedInstanceId));
    let now_ms = harness.now_ms;
    assert_eq!(
        harness
            .group
            .check_commit(&stale, Some("instance-b"), 1, now_ms),
        Err(GroupError::FencedInstanceId)
    );
    assert_eq!(harness.group.phase, GroupPhase::Stable);
}

#[test]
fn static_restart_fences_the_old_incarnations_parked_join() {
    let (mut harness, ids) = stable_static_group(&["instance-a", "instance-b"]);
    let newcomer = harness.join(join_request(""));
    let old_join = harness.join(static_join_request(&ids[1], "instance-b"));
    assert!(old_join.immediate.is_none());

    let restarted = harness.join(static_join_request("", "instance-b"));
    assert!(
        restarted.immediate.is_none(),
        "joins the rebalance under way"
    );
    let fenced = join_answer(&restarted.effects, old_join.token);
    assert_eq!(fenced.error, Some(GroupError::FencedInstanceId));
    assert_eq!(fenced.member_id, ids[1]);

    let effects = harness
        .join(static_join_request(&ids[0], "instance-a"))
        .effects;
    assert_eq!(join_answer(&effects, restarted.token).generation_id, 2);
    assert_eq!(join_answer(&effects, newcomer.token).generation_id, 2);
    assert_eq!(harness.group.members.len(), 3);
}

#[test]
fn static_restart_while_completing_rebalance_fences_the_parked_sync_and_rebalances() {
    let (mut harness, ids) = stable_static_group(&["instance-a", "instance-b"]);
    harness.join(static_join_request(&ids[0], "instance-a"));
    harness.join(static_join_request(&ids[1], "instance-b"));
    assert_eq!(harness.group.phase, GroupPhase::CompletingRebalance);
    let parked = harness.sync_as(&ids[1], Some("instance-b"), 2, &[]);

    let restarted = harness.join(static_join_request("", "instance-b"));
    assert!(restarted.immediate.is_none());
    assert_eq!(
        sync_answer(&restarted.effects, parked.token).error,
        Some(GroupError::FencedInstanceId)
    );
    assert_eq!(harness.group.phase, GroupPhase::PreparingRebalance);
}

/// Static members with a session longer than their rebalance timeout, as KIP-345 recommends.
fn long_session_static_request(member_id: &str, instance_id: &str) -> JoinRequest {
    JoinRequest {
        session_timeout_ms: 45_000,
        rebalance_timeout_ms: 20_000,
        ..static_join_request(member_id, instance_id)
    }
}

#[test]
fn static_member_that_does_not_rejoin_stays_until_its_session_expires() {
    let (mut harness, ids) = stable_group_of(vec![
        long_session_static_request("", "instance-a"),
        long_session_static_request("", "instance-b"),
    ]);
    let leader = harness.join(long_session_static_request(&ids[0], "instance-a"));
    let effects = harness.advance(20_000);
    let outcome = join_answer(&effects, leader.token);
    assert_eq!(outcome.generation_id, 2);
    assert_eq!(
        outcome.members.len(),
        2,
        "the silent static member is still assigned"
    );
    assert!(harness.group.members.contains_key(&ids[1]));
    assert_eq!(harness.group.static_members["instance-b"], ids[1]);

    let synced = harness.sync_as(&ids[0], Some("instance-a"), 2, &[&ids[0], &ids[1]]);
    assert!(persists(&synced.effects));
    assert_eq!(harness.group.phase, GroupPhase::Stable);

    // It comes back: stale generation, then a rejoin with its id gives it generation 2.
    let now_ms = harness.now_ms;
    assert_eq!(
        harness
            .group
            .heartbeat(&ids[1], Some("instance-b"), 1, now_ms),
        Err(GroupError::IllegalGeneration)
    );
    let rejoined = harness
        .join(long_session_static_request(&ids[1], "instance-b"))
        .immediate
        .expect("answered at once");
    assert_eq!(rejoined.generation_id, 2);
    let synced = harness
        .sync_as(&ids[1], Some("instance-b"), 2, &[])
        .immediate
        .expect("answered at once");
    assert_eq!(synced.assignment, assignment_of(&ids[1]));
}

#[test]
fn static_member_that_never_returns_is_removed_when_its_session_expires() {
    let (mut harness, ids) = stable_group_of(vec![
        long_session_static_request("", "instance-a"),
        long_session_static_request("", "instance-b"),
    ]);
    harness.join(long_session_static_request(&ids[0], "instance-a"));
    harness.advance(20_000);
    harness.sync_as(&ids[0], Some("instance-a"), 2, &[&ids[0], &ids[1]]);
    for _ in 0..4 {
        harness.advance(10_000);
        harness
            .group
            .heartbeat(&ids[0], Some("instance-a"), 2, harness.now_ms)
            .expect("leader alive");
    }
    assert!(
        harness.group.members.contains_key(&ids[1]),
        "45 s have not passed since the join completed"
    );
    harness.advance(5_001);
    assert!(!harness.group.members.contains_key(&ids[1]));
    assert!(!harness.group.static_members.contains_key("instance-b"));
    assert_eq!(harness.group.phase, GroupPhase::PreparingRebalance);
}

#[test]
fn rebalance_waits_again_when_no_member_has_rejoined() {
    let (mut harness, ids) = stable_group_of(vec![
        long_session_static_request("", "instance-a"),
        long_session_static_request("", "instance-b"),
    ]);
    // A dynamic member comes and goes, leaving a rebalance nobody has rejoined.
    let visitor = harness.join(JoinRequest {
        rebalance_timeout_ms: 20_000,
        ..join_request("")
    });
    let visitor_id = harness
        .group
        .members
        .keys()
        .find(|member_id| !ids.contains(member_id))
        .expect("visitor")
        .clone();
    let (_, effects) = harness.leave(&visitor_id);
    assert_eq!(
        join_answer(&effects, visitor.token).error,
        Some(GroupError::UnknownMemberId)
    );

    assert!(
        harness.advance(20_000).is_empty(),
        "no one to lead: wait another rebalance timeout"
    );
    assert_eq!(harness.group.phase, GroupPhase::PreparingRebalance);
    assert_eq!(harness.group.generation_id, 1);
    assert_eq!(harness.group.members.len(), 2);

    harness.advance(5_000);
    let leader = harness.join(long_session_static_request(&ids[0], "instance-a"));
    assert!(harness.advance(14_999).is_empty());
    let effects = harness.advance(1);
    let outcome = join_answer(&effects, leader.token);
    assert_eq!(outcome.generation_id, 2);
    assert_eq!(outcome.leader, ids[0]);
    assert_eq!(outcome.members.len(), 2);
}

#[test]
fn static_leader_that_does_not_rejoin_hands_leadership_to_a_member_that_did() {
    let (mut harness, ids) = stable_group_of(vec![
        long_session_static_request("", "instance-a"),
        long_session_static_request("", "instance-b"),
    ]);
    let follower = harness.join(long_session_static_request("", "instance-c"));
    let effects = harness.advance(20_000);
    let outcome = join_answer(&effects, follower.token);
    assert_ne!(outcome.leader, ids[0]);
    assert_eq!(outcome.leader, outcome.member_id);
    assert_eq!(outcome.members.len(), 3);
    assert!(
        harness.group.members.contains_key(&ids[0]) && harness.group.members.contains_key(&ids[1])
    );
}

// ---------------------------------------------------------------------------------------------
// Protocols and limits
// ---------------------------------------------------------------------------------------------

#[test]
fn protocol_is_chosen_by_member_votes_among_shared_candidates() {
    let mut harness = Harness::new();
    let first = harness.join(JoinRequest {
        protocols: protocols(&[("range", "a"), ("roundrobin", "a"), ("sticky", "a")]),
        ..join_request("")
    });
    harness.join(JoinRequest {
        protocols: protocols(&[("roundrobin", "b"), ("range", "b")]),
        ..join_request("")
    });
    harness.join(JoinRequest {
        protocols: protocols(&[("sticky", "c"), ("roundrobin", "c"), ("range", "c")]),
        ..join_request("")
    });
    let effects = harness.advance(INITIAL_DELAY_MS);
    // sticky is not shared; of range and roundrobin, roundrobin has two votes.
    let outcome = join_answer(&effects, first.token);
    assert_eq!(outcome.protocol_name.as_deref(), Some("roundrobin"));
    let metadata: Vec<&[u8]> = outcome
        .members
        .iter()
        .map(|(_, _, metadata)| metadata.as_ref())
        .collect();
    assert_eq!(
        metadata,
        vec![b"a".as_ref(), b"b".as_ref(), b"c".as_ref()],
        "the leader sees each member's metadata for the chosen protocol"
    );
}

#[test]
fn member_sharing_no_protocol_or_protocol_type_is_inconsistent() {
    let (mut harness, _) = stable_group(1);
    let refused = |harness: &mut Harness, request: JoinRequest| {
        harness
            .join(request)
            .immediate
            .expect("answered at once")
            .error
    };
    assert_eq!(
        refused(
            &mut harness,
            JoinRequest {
                protocols: protocols(&[("roundrobin", "x")]),
                ..join_request("")
            }
        ),
        Some(GroupError::InconsistentGroupProtocol)
    );
    assert_eq!(
        refused(
            &mut harness,
            JoinRequest {
                protocol_type: "connect".to_string(),
                ..join_request("")
            }
        ),
        Some(GroupError::InconsistentGroupProtocol)
    );
    assert_eq!(harness.group.phase, GroupPhase::Stable);

    let mut empty = Harness::new();
    assert_eq!(
        refused(
            &mut empty,
            JoinRequest {
                protocols: Vec::new(),
                ..join_request("")
            }
        ),
        Some(GroupError::InconsistentGroupProtocol)
    );
    assert_eq!(
        refused(
            &mut empty,
            JoinRequest {
                protocol_type: String::new(),
                ..join_request("")
            }
        ),
        Some(GroupError::InconsistentGroupProtocol)
    );
    // An empty group accepts any protocol type.
    assert!(empty
        .join(JoinRequest {
            protocol_type: "connect".to_string(),
            ..join_request("")
        })
        .immediate
        .is_none());
}

#[test]
fn session_timeout_must_be_within_the_broker_bounds() {
    let limits = GroupLimits::default();
    let mut harness = Harness::new();
    for invalid in [
        limits.min_session_timeout_ms - 1,
        limits.max_session_timeout_ms + 1,
    ] {
        let refused = harness
            .join(JoinRequest {
                session_timeout_ms: invalid,
                ..join_request("")
            })
            .immediate
            .expect("answered at once");
        assert_eq!(refused.error, Some(GroupError::InvalidSessionTimeout));
    }
    assert_eq!(harness.group.phase, GroupPhase::Empty);
    for valid in [limits.min_session_timeout_ms, limits.max_session_timeout_ms] {
        assert!(harness
            .join(JoinRequest {
                session_timeout_ms: valid,
                ..join_request("")
            })
            .immediate
            .is_none());
    }
}

// ---------------------------------------------------------------------------------------------
// OffsetCommit checks
// ---------------------------------------------------------------------------------------------

#[test]
fn simple_commits_are_allowed_only_for_empty_groups() {
    let mut harness = Harness::new();
    assert_eq!(harness.commit("", -1), Ok(()));
    harness.join(join_request(""));
    assert_eq!(
        harness.commit("", -1),
        Err(GroupError::UnknownMemberId),
        "preparing"
    );
    harness.group.delete(harness.now_ms);
    assert_eq!(
        harness.commit("", -1),
        Err(GroupError::CoordinatorNotAvailable)
    );

    let (mut harness, _) = stable_group(1);
    assert_eq!(
        harness.commit("", -1),
        Err(GroupError::UnknownMemberId),
        "stable"
    );
}

#[test]
fn member_commits_are_checked_by_identity_generation_and_phase() {
    let (mut harness, ids) = stable_group(2);
    assert_eq!(harness.commit(&ids[0], 1), Ok(()));
    assert_eq!(
        harness.commit(&ids[0], 0),
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(
        harness.commit("stranger", 1),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        harness.commit("", 1),
        Err(GroupError::UnknownMemberId),
        "a generation without a member id is not a simple commit"
    );

    harness.join(join_request(""));
    assert_eq!(harness.group.phase, GroupPhase::PreparingRebalance);
    assert_eq!(harness.commit(&ids[0], 1), Ok(()));

    harness.join(join_request(&ids[0]));
    harness.join(join_request(&ids[1]));
    assert_eq!(harness.group.phase, GroupPhase::CompletingRebalance);
    assert_eq!(
        harness.commit(&ids[0], 2),
        Err(GroupError::RebalanceInProgress)
    );
    assert_eq!(
        harness.commit(&ids[0], 1),
        Err(GroupError::IllegalGeneration)
    );
}

// ---------------------------------------------------------------------------------------------
// Delete and restore
// ---------------------------------------------------------------------------------------------

#[test]
fn delete_answers_parked_requests_and_refuses_everything_after() {
    let mut harness = Harness::new();
    let first = harness.join(join_request(""));
    let second = harness.join(join_request(""));
    let effects = harness.advance(INITIAL_DELAY_MS);
    let follower = join_answer(&effects, second.token).member_id;
    let leader = join_answer(&effects, first.token).member_id;
    let parked_sync = harness.sync(&follower, 1, &[]);
    let newcomer_id = {
        let newcomer = harness.join(join_request(""));
        assert!(newcomer.immediate.is_none());
        newcomer.token
    };
    let parked_join = harness.join(join_request(&leader));

    let effects = harness.group.delete(harness.now_ms);
    assert_eq!(
        join_answer(&effects, newcomer_id).error,
        Some(GroupError::CoordinatorNotAvailable)
    );
    assert_eq!(
        join_answer(&effects, parked_join.token).error,
        Some(GroupError::CoordinatorNotAvailable)
    );
    assert!(
        effects.iter().all(
            |effect| !matches!(effect, Effect::Sync { token, .. } if *token == parked_sync.token)
        ),
        "answered earlier by the rebalance"
    );
    assert_eq!(harness.group.phase, GroupPhase::Dead);
    assert_eq!(harness.group.phase.kafka_name(), "Dead");

    let refused = harness
        .join(join_request(""))
        .immediate
        .expect("answered at once");
    assert_eq!(refused.error, Some(GroupError::CoordinatorNotAvailable));
    assert_eq!(
        harness.leave(&leader).0,
        Err(GroupError::CoordinatorNotAvailable)
    );
    assert_eq!(
        harness
            .sync(&leader, 1, &[])
            .immediate
            .expect("answered")
            .error,
        Some(GroupError::CoordinatorNotAvailable)
    );
    assert!(harness.advance(100_000).is_empty());
}

#[test]
fn delete_answers_a_parked_sync() {
    let mut harness = Harness::new();
    harness.join(join_request(""));
    let second = harness.join(join_request(""));
    let effects = harness.advance(INITIAL_DELAY_MS);
    let follower = join_answer(&effects, second.token).member_id;
    let parked = harness.sync(&follower, 1, &[]);
    let effects = harness.group.delete(harness.now_ms);
    assert_eq!(
        sync_answer(&effects, parked.token).error,
        Some(GroupError::CoordinatorNotAvailable)
    );
}

fn restored_member(member_id: &str, instance_id: Option<&str>) -> Member {
    Member {
        member_id: member_id.to_string(),
        group_instance_id: instance_id.map(str::to_string),
        client_id: "client".to_string(),
        client_host: "/127.0.0.1".to_string(),
        session_timeout_ms: SESSION_TIMEOUT_MS,
        rebalance_timeout_ms: REBALANCE_TIMEOUT_MS,
        protocols: range(),
        assignment: assignment_of(member_id),
        last_heartbeat_ms: 0,
        awaiting_join: Some(1),
        awaiting_sync: Some(2),
    }
}

#[test]
fn restored_group_is_stable_and_its_members_carry_on() {
    let mut harness = Harness::new();
    harness.now_ms += 50_000;
    let members = vec![
        restored_member("member-a", None),
        restored_member("member-b", Some("instance-b")),
    ];
    harness.group.restore(
        7,
        Some("consumer".to_string()),
        Some("range".to_string()),
        Some("member-a".to_string()),
        members,
        harness.now_ms,
    );
    assert_eq!(harness.group.phase, GroupPhase::Stable);
    assert_eq!(harness.group.static_members["instance-b"], "member-b");
    assert!(harness
        .group
        .members
        .values()
        .all(|member| member.awaiting_join.is_none() && member.awaiting_sync.is_none()));

    assert_eq!(harness.heartbeat("member-a", 7), Ok(()));
    assert_eq!(
        harness.heartbeat("member-a", 6),
        Err(GroupError::IllegalGeneration)
    );
    let synced = harness
        .sync("member-a", 7, &[])
        .immediate
        .expect("answered at once");
    assert_eq!(synced.assignment, assignment_of("member-a"));
    // Sessions restart at restore time, not at the persisted heartbeat.
    harness.advance(SESSION_TIMEOUT_MS as i64 - 1);
    assert_eq!(harness.group.members.len(), 2);

    let restarted = harness
        .join(static_join_request("", "instance-b"))
        .immediate
        .expect("no rebalance");
    assert_eq!(restarted.generation_id, 7);
}

#[test]
fn restoring_no_members_gives_an_empty_group() {
    let mut harness = Harness::new();
    harness.group.restore(
        3,
        Some("consumer".to_string()),
        None,
        None,
        Vec::new(),
        START_MS,
    );
    assert_eq!(harness.group.phase, GroupPhase::Empty);
    assert_eq!(harness.commit("", -1), Ok(()));
    let first = harness.join(join_request(""));
    let effects = harness.advance(INITIAL_DELAY_MS);
    assert_eq!(
        join_answer(&effects, first.token).generation_id,
        4,
        "generations continue from the restored one"
    );
}

#[test]
fn phases_have_kafkas_names() {
    let names: Vec<&str> = [
        GroupPhase::Empty,
        GroupPhase::PreparingRebalance,
        GroupPhase::CompletingRebalance,
        GroupPhase::Stable,
        GroupPhase::Dead,
    ]
    .into_iter()
    .map(GroupPhase::kafka_name)
    .collect();
    assert_eq!(
        names,
        [
            "Empty",
            "PreparingRebalance",
            "CompletingRebalance",
            "Stable",
            "Dead"
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Seeded random schedules
// ---------------------------------------------------------------------------------------------

/// splitmix64: small, deterministic, good enough to pick actions.
/// What one simulated consumer believes.
#[derive(Default)]
struct SimulatedClient {
    /// Set for static members.
    instance_id: Option<String>,
    /// Empty until the coordinator gives one.
    member_id: String,
    /// The generation it last joined.
    generation_id: i32,
    /// Its JoinGroup in flight, if parked.
    join_token: Option<u64>,
    /// Its SyncGroup in flight, if parked.
    sync_token: Option<u64>,
    /// Members to assign, when it was made leader.
    to_assign: Vec<String>,
}

impl SimulatedClient {
    fn busy(&self) -> bool {
        self.join_token.is_some() || self.sync_token.is_some()
    }

    fn forget_membership(&mut self) {
        self.member_id.clear();
        self.generation_id = -1;
        self.to_assign.clear();
    }

    fn take_join_outcome(&mut self, outcome: &JoinOutcome) {
        match outcome.error {
            None => {
                self.member_id = outcome.member_id.clone();
                self.generation_id = outcome.generation_id;
                self.to_assign = if outcome.skip_assignment {
                    Vec::new()
                } else {
                    outcome
                        .members
                        .iter()
                        .map(|(member_id, _, _)| member_id.clone())
                        .collect()
                };
            }
            Some(GroupError::MemberIdRequired) => self.member_id = outcome.member_id.clone(),
            Some(GroupError::UnknownMemberId | GroupError::FencedInstanceId) => {
                self.forget_membership()
            }
            Some(_) => {}
        }
    }

    fn take_sync_outcome(&mut self, outcome: &SyncOutcome) {
        match outcome.error {
            None => self.to_assign.clear(),
            Some(GroupError::UnknownMemberId | GroupError::FencedInstanceId) => {
                self.forget_membership()
            }
            Some(_) => {}
        }
    }
}

/// Drives a group with random clients and checks invariants after every step.
struct Simulation {
    seed: u64,
    rng: Prng,
    harness: Harness,
    clients: Vec<SimulatedClient>,
    /// Parked requests not yet answered.
    outstanding: HashSet<u64>,
    /// Every request answered so far.
    answered: HashSet<u64>,
    /// Which client sent each request.
    sender: HashMap<u64, usize>,
    last_generation: i32,
    /// Every answer seen (None for success), to check the schedules reach the interesting cases.
    outcomes_seen: Vec<Option<GroupError>>,
}

impl Simulation {
    fn new(seed: u64) -> Simulation {
        let mut rng = Prng(seed);
        let client_count = 3 + rng.below(3) as usize;
        let clients = (0..client_count)
            .map(|index| SimulatedClient {
                instance_id: (index % 2 == 0).then(|| format!("instance-{index}")),
                generation_id: -1,
                ..SimulatedClient::default()
            })
            .collect();
        Simulation {
            seed,
            rng,
            harness: Harness::new(),
            clients,
            outstanding: HashSet::new(),
            answered: HashSet::new(),
            sender: HashMap::new(),
            last_generation: 0,
            outcomes_seen: Vec::new(),
        }
    }

    fn run(&mut self, steps: usize) {
        for step in 0..steps {
            self.run_one(step);
        }
        // Deleting the group must answer everything still parked.
        let effects = self.harness.group.delete(self.harness.now_ms);
        self.deliver(effects);
        assert!(
            self.outstanding.is_empty(),
            "seed {}: requests never answered: {:?}",
            self.seed,
            self.outstanding
        );
    }

    fn run_one(&mut self, step: usize) {
        let client = self.rng.below(self.clients.len() as u64) as usize;
        match self.rng.below(100) {
            0..=19 => self.join(client),
            20..=31 => self.sync(client),
            32..=59 => self.heartbeat(client),
            60..=62 => self.leave(client),
            63..=65 => self.restart(client),
            66..=71 => self.commit(client),
            _ => {
                let by_ms = 1 + self.rng.below(6_000) as i64;
                let effects = self.harness.advance(by_ms);
                self.deliver(effects);
            }
        }
        self.check_invariants(step);
    }

    fn join(&mut self, client: usize) {
        if self.clients[client].busy() {
            return;
        }
        let metadata = match self.rng.below(10) {
            0 => protocols(&[("range", "more-topics")]),
            1 => protocols(&[("roundrobin", "m"), ("range", "m")]),
            _ => range(),
        };
        let state = &self.clients[client];
        let request = JoinRequest {
            member_id: state.member_id.clone(),
            group_instance_id: state.instance_id.clone(),
            protocols: metadata,
            session_timeout_ms: if self.rng.chance(3) {
                1_000
            } else {
                SESSION_TIMEOUT_MS
            },
            rebalance_timeout_ms: 15_000,
            require_known_member_id: self.rng.chance(50),
            ..join_request("")
        };
        let answered = self.harness.join(request);
        self.sent(client, answered.token);
        match &answered.immediate {
            Some(outcome) => {
                self.answer_now(answered.token);
                self.outcomes_seen.push(outcome.error);
                self.clients[client].take_join_outcome(outcome);
            }
            None => self.park(client, answered.token, true),
        }
        self.deliver(answered.effects);
    }

    fn sync(&mut self, client: usize) {
        let state = &self.clients[client];
        if state.busy() || state.member_id.is_empty() {
            return;
        }
        let (member_id, instance_id, generation_id) = (
            state.member_id.clone(),
            state.instance_id.clone(),
            state.generation_id,
        );
        let assignees: Vec<String> = state.to_assign.clone();
        let assignees: Vec<&str> = assignees.iter().map(String::as_str).collect();
        let answered = self.harness.sync_as(
            &member_id,
            instance_id.as_deref(),
            generation_id,
            &assignees,
        );
        self.sent(client, answered.token);
        match &answered.immediate {
            Some(outcome) => {
                self.answer_now(answered.token);
                self.outcomes_seen.push(outcome.error);
                self.clients[client].take_sync_outcome(outcome);
            }
            None => self.park(client, answered.token, false),
        }
        self.deliver(answered.effects);
    }

    fn heartbeat(&mut self, client: usize) {
        let state = &self.clients[client];
        if state.member_id.is_empty() {
            return;
        }
        let result = self.harness.group.heartbeat(
            &state.member_id,
            state.instance_id.as_deref(),
            state.generation_id,
            self.harness.now_ms,
        );
        self.outcomes_seen.push(result.err());
        if matches!(
            result,
            Err(GroupError::UnknownMemberId | GroupError::FencedInstanceId)
        ) && !state.busy()
        {
            self.clients[client].forget_membership();
        }
    }

    fn leave(&mut self, client: usize) {
        let state = &self.clients[client];
        if state.member_id.is_empty() && state.instance_id.is_none() {
            return;
        }
        let (result, effects) = self.harness.group.leave(
            &state.member_id,
            state.instance_id.as_deref(),
            &self.harness.limits,
            self.harness.now_ms,
        );
        if result.is_ok() {
            let member_id = self.clients[client].member_id.clone();
            assert!(
                !self.harness.group.members.contains_key(&member_id) || member_id.is_empty(),
                "seed {}: {member_id} left but is still a member",
                self.seed
            );
        }
        self.deliver(effects);
        self.restart_state(client);
    }

    /// The process restarts without leaving; static members keep their instance id.
    fn restart(&mut self, client: usize) {
        self.restart_state(client);
        self.join(client);
    }

    fn restart_state(&mut self, client: usize) {
        let state = &mut self.clients[client];
        state.forget_membership();
        state.join_token = None;
        state.sync_token = None;
    }

    fn commit(&mut self, client: usize) {
        let phase = self.harness.group.phase;
        let now_ms = self.harness.now_ms;
        if self.rng.chance(30) {
            let result = self.harness.group.check_commit("", None, -1, now_ms);
            assert_eq!(
                result.is_ok(),
                phase == GroupPhase::Empty,
                "seed {}: simple commit in {phase:?} gave {result:?}",
                self.seed
            );
            return;
        }
        let state = &self.clients[client];
        if state.member_id.is_empty() {
            return;
        }
        let result = self.harness.group.check_commit(
            &state.member_id,
            state.instance_id.as_deref(),
            state.generation_id,
            now_ms,
        );
        if result.is_ok() {
            assert!(
                matches!(phase, GroupPhase::Stable | GroupPhase::PreparingRebalance),
                "seed {}: member commit accepted in {phase:?}",
                self.seed
            );
        }
    }

    fn sent(&mut self, client: usize, token: u64) {
        self.sender.insert(token, client);
    }

    fn park(&mut self, client: usize, token: u64, is_join: bool) {
        self.outstanding.insert(token);
        let state = &mut self.clients[client];
        if is_join {
            state.join_token = Some(token);
        } else {
            state.sync_token = Some(token);
        }
    }

    fn answer_now(&mut self, token: u64) {
        let parked = self.harness.group.members.values().any(|member| {
            member.awaiting_join == Some(token) || member.awaiting_sync == Some(token)
        });
        assert!(
            !parked,
            "seed {}: token {token} answered at once but also parked",
            self.seed
        );
        assert!(
            self.answered.insert(token),
            "seed {}: token {token} answered twice",
            self.seed
        );
    }

    fn deliver(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            let (token, is_join) = match &effect {
                Effect::Join { token, outcome } => {
                    self.outcomes_seen.push(outcome.error);
                    (*token, true)
                }
                Effect::Sync { token, outcome } => {
                    self.outcomes_seen.push(outcome.error);
                    (*token, false)
                }
                Effect::Persist => continue,
            };
            assert!(
                self.answered.insert(token),
                "seed {}: token {token} answered twice ({effect:?})",
                self.seed
            );
            assert!(
                self.outstanding.remove(&token),
                "seed {}: token {token} answered but never parked",
                self.seed
            );
            let client = self.sender[&token];
            let state = &mut self.clients[client];
            match effect {
                Effect::Join { outcome, .. } if state.join_token == Some(token) => {
                    state.join_token = None;
                    state.take_join_outcome(&outcome);
                }
                Effect::Sync { outcome, .. } if state.sync_token == Some(token) => {
                    state.sync_token = None;
                    state.take_sync_outcome(&outcome);
                }
                _ => assert!(is_join || state.sync_token != Some(token)),
            }
        }
    }

    fn check_invariants(&mut self, step: usize) {
        let group = &self.harness.group;
        let context = format!("seed {} step {step} phase {:?}", self.seed, group.phase);
        assert!(
            group.generation_id >= self.last_generation,
            "{context}: generation went from {} to {}",
            self.last_generation,
            group.generation_id
        );
        self.last_generation = group.generation_id;

        let parked_joins = group
            .members
            .values()
            .filter(|member| member.awaiting_join.is_some())
            .count();
        let parked_syncs = group
            .members
            .values()
            .filter(|member| member.awaiting_sync.is_some())
            .count();
        match group.phase {
            GroupPhase::Empty => {
                assert!(
                    group.members.is_empty(),
                    "{context}: members in an empty group"
                );
                assert_eq!(group.leader, None, "{context}");
            }
            GroupPhase::PreparingRebalance => {
                let deadline = group.rebalance_deadline_ms.unwrap_or_else(|| {
                    panic!("{context}: a rebalance without a deadline could wait forever")
                });
                // Like Kafka's DelayedJoin with no members (timeout 0), it ends at the next tick.
                assert!(
                    !group.members.is_empty() || deadline <= self.harness.now_ms,
                    "{context}: preparing with no members until {deadline}"
                );
                assert_eq!(
                    parked_syncs, 0,
                    "{context}: a SyncGroup parked while preparing"
                );
            }
            GroupPhase::CompletingRebalance => {
                assert!(!group.members.is_empty(), "{context}");
                assert_eq!(
                    parked_joins, 0,
                    "{context}: a JoinGroup parked while completing"
                );
            }
            GroupPhase::Stable => {
                assert!(!group.members.is_empty(), "{context}");
                assert_eq!(
                    parked_syncs, 0,
                    "{context}: stable but a SyncGroup is still waiting"
                );
                assert_eq!(
                    parked_joins, 0,
                    "{context}: stable but a JoinGroup is still waiting"
                );
            }
            GroupPhase::Dead => panic!("{context}: the simulation never deletes mid-run"),
        }
        if !group.members.is_empty() {
            let leader = group
                .leader
                .as_ref()
                .unwrap_or_else(|| panic!("{context}: no leader"));
            assert!(
                group.members.contains_key(leader),
                "{context}: leader {leader} is not a member"
            );
        }
        for (instance_id, member_id) in &group.static_members {
            let member = group.members.get(member_id).unwrap_or_else(|| {
                panic!("{context}: {instance_id} maps to missing member {member_id}")
            });
            assert_eq!(
                member.group_instance_id.as_ref(),
                Some(instance_id),
                "{context}"
            );
        }
        for member in group.members.values() {
            if let Some(instance_id) = &member.group_instance_id {
                assert_eq!(
                    group.static_members.get(instance_id),
                    Some(&member.member_id),
                    "{context}: static member not mapped"
                );
            }
        }
        let parked: HashSet<u64> = group
            .members
            .values()
            .flat_map(|member| [member.awaiting_join, member.awaiting_sync])
            .flatten()
            .collect();
        assert_eq!(
            parked, self.outstanding,
            "{context}: parked requests differ from those awaiting an answer"
        );
    }
}

#[test]
fn random_schedules_keep_the_group_invariants() {
    for seed in 0..300 {
        Simulation::new(seed).run(400);
    }
}

#[test]
fn random_schedules_reach_every_phase_and_answer() {
    // Guards the simulation itself: it must actually exercise the interesting cases.
    let mut phases_seen = HashSet::new();
    let mut outcomes_seen = Vec::new();
    let mut highest_generation = 0;
    for seed in 0..20 {
        let mut simulation = Simulation::new(seed);
        for step in 0..400 {
            simulation.run_one(step);
            phases_seen.insert(simulation.harness.group.phase.kafka_name());
        }
        outcomes_seen.extend(simulation.outcomes_seen);
        highest_generation = highest_generation.max(simulation.harness.group.generation_id);
    }
    for phase in [
        "Empty",
        "PreparingRebalance",
        "CompletingRebalance",
        "Stable",
    ] {
        assert!(
            phases_seen.contains(phase),
            "the simulation never reached {phase}"
        );
    }
    use GroupError::*;
    for outcome in [
        None,
        Some(MemberIdRequired),
        Some(RebalanceInProgress),
        Some(IllegalGeneration),
        Some(UnknownMemberId),
        Some(FencedInstanceId),
        Some(InvalidSessionTimeout),
    ] {
        assert!(
            outcomes_seen.contains(&outcome),
            "the simulation never saw {outcome:?}"
        );
    }
    assert!(
        highest_generation >= 10,
        "the simulation only reached generation {highest_generation}"
    );
}

#[test]
fn offsets_expire_only_after_the_group_has_been_empty_for_the_retention_period() {
    let retention_ms = 60_000;
    let mut group = Group::new("retained", 1_000);
    assert!(
        !group.offsets_expired(retention_ms, 1_000 + retention_ms),
        "exactly the retention period is not past it"
    );
    assert!(group.offsets_expired(retention_ms, 1_001 + retention_ms));
    // A group with members keeps its offsets however long it lives.
    group.restore(
        3,
        Some("consumer".into()),
        Some("range".into()),
        None,
        vec![],
        1_000,
    );
    let mut with_member = Group::new("busy", 0);
    let member = Member {
        member_id: "m".into(),
        group_instance_id: None,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        protocols: vec![("range".into(), Bytes::new())],
        assignment: Bytes::new(),
        last_heartbeat_ms: 0,
        awaiting_join: None,
        awaiting_sync: None,
    };
    with_member.restore(
        1,
        Some("consumer".into()),
        Some("range".into()),
        Some("m".into()),
        vec![member],
        0,
    );
    assert_eq!(with_member.phase, GroupPhase::Stable);
    assert!(!with_member.offsets_expired(retention_ms, 10 * retention_ms));
}
