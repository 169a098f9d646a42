//! A seeded simulation of one KIP-848 consumer group, as `state_tests.rs` has for classic
//! groups: random clients join, heartbeat (sometimes reporting nothing, sometimes losing the
//! answer, sometimes revoking late), change subscriptions, leave, fall silent until their
//! session or rebalance timeout expires, while subscribed topics appear and grow. After every
//! step the group and the clients are checked:
//!
//! - no partition is held (assigned or awaiting revocation) by two members on the coordinator;
//! - no partition is owned by two clients that are still members, and a member's client owns
//!   only what the coordinator holds for it;
//! - member epochs never go back, and never pass the group epoch;
//! - a target only names existing partitions of topics its member subscribes to.
//!
//! A quiet phase then lets every client heartbeat promptly: the group must become Stable with
//! every subscribed partition owned by exactly one member.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use uuid::Uuid;

use super::*;
use crate::group::prng::Prng;

const TOPICS: [&str; 3] = ["alpha", "beta", "gamma"];
const SESSION_TIMEOUT_MS: i32 = 3_000;
const REBALANCE_TIMEOUT_MS: i32 = 5_000;

fn topic_id(name: &str) -> Uuid {
    let index = TOPICS
        .iter()
        .position(|topic| *topic == name)
        .expect("known");
    Uuid::from_u128(index as u128 + 1)
}

/// What one simulated consumer believes and does.
struct Client {
    member_id: String,
    /// The epoch it heartbeats with: `None` while outside the group, `Some(0)` to (re)join.
    epoch: Option<i32>,
    /// The partitions it is consuming.
    owned: Assignment,
    subscription: Vec<String>,
    /// Whether the next heartbeat must carry the subscription.
    subscription_changed: bool,
    /// Steps left before a silent client speaks again.
    silent_for: u32,
}

#[derive(Default)]
struct Seen {
    states: BTreeSet<&'static str>,
    errors: BTreeSet<String>,
    lost_answers_accepted: usize,
    late_revocations: usize,
    expired: usize,
    highest_group_epoch: i32,
}

struct Simulation {
    seed: u64,
    rng: Prng,
    group: ConsumerGroup,
    limits: ConsumerGroupLimits,
    topics: TopicsMetadata,
    clients: Vec<Client>,
    assignor: Option<String>,
    now_ms: i64,
    /// The last epoch the coordinator gave each member id, to check epochs only grow.
    epochs: HashMap<String, i32>,
    seen: Seen,
}

impl Simulation {
    fn new(seed: u64) -> Simulation {
        let mut rng = Prng(seed);
        let client_count = 2 + rng.below(4) as usize;
        let clients = (0..client_count)
            .map(|index| Client {
                member_id: format!("member-{index}"),
                epoch: None,
                owned: Assignment::new(),
                subscription: vec![TOPICS[0].to_string()],
                subscription_changed: true,
                silent_for: 0,
            })
            .collect();
        let assignor = match rng.below(3) {
            0 => None,
            1 => Some("uniform".to_string()),
            _ => Some("range".to_string()),
        };
        let topics = TopicsMetadata::from([(
            TOPICS[0].to_string(),
            (topic_id(TOPICS[0]), 1 + rng.below(6) as i32),
        )]);
        Simulation {
            seed,
            rng,
            group: ConsumerGroup::new("simulated"),
            limits: ConsumerGroupLimits {
                session_timeout_ms: SESSION_TIMEOUT_MS,
                heartbeat_interval_ms: 500,
            },
            topics,
            clients,
            assignor,
            now_ms: 0,
            epochs: HashMap::new(),
            seen: Seen::default(),
        }
    }

    fn run(&mut self, steps: usize) {
        for step in 0..steps {
            self.step(step);
        }
        self.settle();
    }

    fn step(&mut self, step: usize) {
        self.now_ms += self.rng.below(700) as i64;
        let index = self.rng.below(self.clients.len() as u64) as usize;
        match self.rng.below(100) {
            0..=4 => self.change_topics(),
            5..=9 => self.change_subscription(index),
            10..=13 => self.leave(index),
            14..=17 => self.clients[index].silent_for = 1 + self.rng.below(12) as u32,
            _ => {
                let lose_answer = self.rng.chance(10);
                let revoke_late = self.rng.chance(25);
                let report_owned = !self.rng.chance(15);
                self.heartbeat(index, lose_answer, revoke_late, report_owned);
            }
        }
        for client in &mut self.clients {
            client.silent_for = client.silent_for.saturating_sub(1);
        }
        let expired = self.group.tick(&self.limits, self.now_ms);
        self.seen.expired += expired.len();
        self.check(&format!("seed {} step {step}", self.seed));
    }

    /// A topic appears or grows.
    fn change_topics(&mut self) {
        let name = TOPICS[self.rng.below(TOPICS.len() as u64) as usize];
        let grow = 1 + self.rng.below(3) as i32;
        let entry = self
            .topics
            .entry(name.to_string())
            .or_insert((topic_id(name), 0));
        entry.1 += grow;
    }

    fn change_subscription(&mut self, index: usize) {
        let mut subscription: Vec<String> = TOPICS
            .iter()
            .filter(|_| self.rng.chance(50))
            .map(|topic| topic.to_string())
            .collect();
        if subscription.is_empty() {
            subscription.push(TOPICS[0].to_string());
        }
        let client = &mut self.clients[index];
        client.subscription = subscription;
        client.subscription_changed = true;
    }

    /// The client gives up its partitions, then says it leaves.
    fn leave(&mut self, index: usize) {
        let client = &mut self.clients[index];
        if client.epoch.is_none() {
            return;
        }
        client.owned.clear();
        client.epoch = None;
        let request = HeartbeatRequest {
            member_id: client.member_id.clone(),
            member_epoch: -1,
            ..Default::default()
        };
        let outcome = self
            .group
            .heartbeat(request, &self.topics, &self.limits, self.now_ms);
        assert_eq!(outcome.error, None, "seed {}: leaving refused", self.seed);
    }

    fn heartbeat(&mut self, index: usize, lose_answer: bool, revoke_late: bool, report: bool) {
        if self.clients[index].silent_for > 0 {
            return;
        }
        let client = &mut self.clients[index];
        let epoch = client.epoch.unwrap_or(0);
        if epoch == 0 {
            // A (re)joining consumer owns nothing and says what it subscribes to.
            client.owned.clear();
            client.subscription_changed = true;
        }
        let request = HeartbeatRequest {
            member_id: client.member_id.clone(),
            member_epoch: epoch,
            rebalance_timeout_ms: REBALANCE_TIMEOUT_MS,
            subscribed_topic_names: (client.subscription_changed || epoch == 0)
                .then(|| client.subscription.clone()),
            server_assignor: self.assignor.clone(),
            owned: (report || epoch == 0).then(|| client.owned.clone()),
            ..Default::default()
        };
        let previous_epoch = self
            .group
            .members
            .get(&client.member_id)
            .map(|member| member.previous_member_epoch);
        let outcome = self
            .group
            .heartbeat(request, &self.topics, &self.limits, self.now_ms);
        if let Some(error) = outcome.error {
            self.seen.errors.insert(format!("{error:?}"));
            // A fenced or forgotten consumer loses its partitions and joins again.
            client.owned.clear();
            client.epoch = Some(0);
            return;
        }
        if epoch > 0 && Some(epoch) == previous_epoch && epoch != outcome.member_epoch {
            self.seen.lost_answers_accepted += 1;
        }
        client.epoch.get_or_insert(0);
        if lose_answer {
            // The coordinator changed its state, but the consumer never hears of it.
            return;
        }
        let assignment = outcome.assignment.expect("a successful heartbeat assigns");
        client.epoch = Some(outcome.member_epoch);
        client.subscription_changed = false;
        let revoked = flatten(&client.owned)
            .filter(|(topic, partition)| !contains(&assignment, topic, *partition))
            .count();
        if revoked > 0 && revoke_late {
            // Still committing: it keeps what it must give up, and takes the new ones.
            self.seen.late_revocations += 1;
            for (topic, partition) in flatten(&assignment) {
                client.owned.entry(topic).or_default().insert(partition);
            }
        } else {
            client.owned = assignment;
        }
    }

    /// Every client heartbeats promptly, answers arrive and revocations are immediate.
    fn settle(&mut self) {
        for client in &mut self.clients {
            client.silent_for = 0;
        }
        for round in 0..40 {
            for index in 0..self.clients.len() {
                if self.clients[index].epoch.is_none() {
                    continue;
                }
                self.now_ms += 10;
                self.heartbeat(index, false, false, true);
                self.check(&format!("seed {} settling round {round}", self.seed));
            }
        }
        let context = format!("seed {} after settling", self.seed);
        let members: Vec<&Client> = self
            .clients
            .iter()
            .filter(|client| client.epoch.is_some())
            .collect();
        assert_eq!(members.len(), self.group.members.len(), "{context}");
        if members.is_empty() {
            assert_eq!(self.group.state_name(), "Empty", "{context}");
            return;
        }
        assert_eq!(self.group.state_name(), "Stable", "{context}");
        let mut owned = BTreeSet::new();
        for client in &members {
            let member = &self.group.members[&client.member_id];
            assert_eq!(
                client.owned, member.assigned,
                "{context}: {}",
                client.member_id
            );
            owned.extend(flatten(&client.owned));
        }
        let subscribed: BTreeSet<&String> = members
            .iter()
            .flat_map(|client| client.subscription.iter())
            .collect();
        let expected: BTreeSet<(Uuid, i32)> = self
            .topics
            .iter()
            .filter(|(name, _)| subscribed.contains(name))
            .flat_map(|(_, (id, partitions))| (0..*partitions).map(move |p| (*id, p)))
            .collect();
        assert_eq!(
            owned, expected,
            "{context}: not every partition is consumed"
        );
    }

    fn check(&mut self, context: &str) {
        let group = &self.group;
        self.seen.states.insert(group.state_name());
        self.seen.highest_group_epoch = self.seen.highest_group_epoch.max(group.group_epoch);
        assert!(group.assignment_epoch <= group.group_epoch, "{context}");
        let mut held = BTreeMap::new();
        for member in group.members.values() {
            for pair in flatten(&member.assigned).chain(flatten(&member.pending_revocation)) {
                if let Some(other) = held.insert(pair, &member.member_id) {
                    panic!(
                        "{context}: {pair:?} held by {other} and {}",
                        member.member_id
                    );
                }
            }
            assert!(member.member_epoch <= group.group_epoch, "{context}");
            let last = self
                .epochs
                .insert(member.member_id.clone(), member.member_epoch);
            assert!(
                last.is_none_or(|last| last <= member.member_epoch),
                "{context}: {} went from epoch {last:?} to {}",
                member.member_id,
                member.member_epoch
            );
        }
        for (member_id, target) in &group.target {
            let member = &group.members[member_id];
            for (topic, partition) in flatten(target) {
                let (name, (_, count)) = self
                    .topics
                    .iter()
                    .find(|(_, (id, _))| *id == topic)
                    .expect("targets name known topics");
                assert!(
                    partition < *count,
                    "{context}: {name}-{partition} does not exist"
                );
                assert!(member.subscribed_topics.contains(name), "{context}");
            }
        }
        let mut owned_by = BTreeMap::new();
        for client in &self.clients {
            let Some(member) = group.members.get(&client.member_id) else {
                continue;
            };
            if client.epoch.is_none() {
                continue;
            }
            for pair in flatten(&client.owned) {
                assert!(
                    contains(&member.assigned, &pair.0, pair.1)
                        || contains(&member.pending_revocation, &pair.0, pair.1),
                    "{context}: {} consumes {pair:?}, which the coordinator does not hold for it",
                    client.member_id
                );
                if let Some(other) = owned_by.insert(pair, &client.member_id) {
                    panic!(
                        "{context}: {pair:?} consumed by {other} and {}",
                        client.member_id
                    );
                }
            }
        }
    }
}

#[test]
fn random_schedules_never_give_a_partition_to_two_members() {
    for seed in 0..300 {
        Simulation::new(seed).run(400);
    }
}

#[test]
fn random_schedules_reach_every_state_and_answer() {
    // Guards the simulation itself: it must exercise the interesting cases.
    let mut seen = Seen::default();
    for seed in 0..30 {
        let mut simulation = Simulation::new(seed);
        simulation.run(400);
        let run = simulation.seen;
        seen.states.extend(run.states);
        seen.errors.extend(run.errors);
        seen.lost_answers_accepted += run.lost_answers_accepted;
        seen.late_revocations += run.late_revocations;
        seen.expired += run.expired;
        seen.highest_group_epoch = seen.highest_group_epoch.max(run.highest_group_epoch);
    }
    for state in ["Empty", "Reconciling", "Stable"] {
        assert!(seen.states.contains(state), "never reached {state}");
    }
    for error in ["UnknownMemberId", "FencedMemberEpoch"] {
        assert!(seen.errors.contains(error), "never answered {error}");
    }
    assert!(
        seen.lost_answers_accepted > 0,
        "no lost answer was recovered"
    );
    assert!(seen.late_revocations > 0, "no consumer revoked late");
    assert!(seen.expired > 0, "no member expired");
    assert!(
        seen.highest_group_epoch >= 20,
        "only reached group epoch {}",
        seen.highest_group_epoch
    );
}
