//! The manager's decisions under seeded random schedules, in memory: brokers register, heartbeat,
//! fall silent, restart and shut down; topics are created, grown and deleted; leaders change
//! their ISR; elections and reassignments start and stop. After every step the image must keep
//! the invariants clients and replicas rely on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use proptest::prelude::Rng;
use proptest::test_runner::{RngAlgorithm, TestRng};
use tokio::sync::watch;
use uuid::Uuid;

use futures::FutureExt;

use super::record_log::{Committing, Forwarding};
use super::{MetadataManager, RecordLog, TopicRequest};
use crate::command::MetadataCommand;
use crate::image::MetadataImage;
use crate::record::MetadataRecord;

/// A record log kept in memory: the node is always the active controller, in one term.
struct MemoryLog {
    /// The image after every committed record.
    image: watch::Sender<Arc<MetadataImage>>,
}

impl RecordLog for MemoryLog {
    fn image(&self) -> Arc<MetadataImage> {
        self.image.borrow().clone()
    }

    fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.image.subscribe()
    }

    fn is_active(&self) -> bool {
        true
    }

    fn active_term(&self) -> Option<u64> {
        Some(1)
    }

    fn active_controller(&self) -> Option<i32> {
        None
    }

    fn commit(&self, records: Vec<MetadataRecord>) -> Committing<'_> {
        let image = Arc::new(self.image().apply(&records));
        self.image.send_replace(image.clone());
        futures::future::ready(Ok(image)).boxed()
    }

    fn forward<'a>(&'a self, _: &'a MetadataCommand) -> Forwarding<'a> {
        unreachable!("a memory log is always its own controller")
    }
}

/// Brokers of the simulated cluster.
const BROKERS: [i32; 5] = [1, 2, 3, 4, 5];
/// A broker silent for this long is fenced.
const SESSION: Duration = Duration::from_millis(1_000);

/// One simulated cluster: the manager and the time it reads.
struct Simulation {
    /// The manager under test.
    manager: MetadataManager,
    /// The simulated time.
    now: Arc<Mutex<Instant>>,
    /// Runs the manager's calls (its commits are tasks), on this thread.
    runtime: tokio::runtime::Runtime,
    /// The run each broker registered from last.
    incarnations: BTreeMap<i32, Uuid>,
    /// Every partition's highest leader epoch seen so far, by (topic id, index).
    epochs: BTreeMap<(Uuid, i32), i32>,
}

impl Simulation {
    fn new() -> Simulation {
        let now = Arc::new(Mutex::new(Instant::now()));
        let clock_now = now.clone();
        let log = MemoryLog {
            image: watch::Sender::new(Arc::new(MetadataImage::default())),
        };
        Simulation {
            manager: MetadataManager::with_clock(
                Arc::new(log),
                Arc::new(move || *clock_now.lock()),
            ),
            now,
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a runtime"),
            incarnations: BTreeMap::new(),
            epochs: BTreeMap::new(),
        }
    }

    /// Runs one of the manager's calls to its end.
    fn run<F: std::future::Future>(&self, call: F) -> F::Output {
        self.runtime.block_on(call)
    }

    fn register(&mut self, broker_id: i32, new_run: bool) {
        let incarnation = if new_run || !self.incarnations.contains_key(&broker_id) {
            Uuid::new_v4()
        } else {
            self.incarnations[&broker_id]
        };
        self.incarnations.insert(broker_id, incarnation);
        let _ = self.run(self.manager.execute(MetadataCommand::RegisterBroker {
            broker_id,
            host: "127.0.0.1".into(),
            port: 9000 + broker_id,
            rack: None,
            incarnation: Some(incarnation),
        }));
    }

    /// A random partition of the image: (topic name, topic id, index).
    fn pick_partition(&self, rng: &mut TestRng) -> Option<(String, Uuid, i32)> {
        let image = self.manager.image();
        let topics: Vec<_> = image.topics.values().collect();
        if topics.is_empty() {
            return None;
        }
        let topic = topics[below(rng, topics.len())];
        let index = below(rng, topic.partitions.len()) as i32;
        Some((topic.name.clone(), topic.topic_id, index))
    }

    /// Some distinct brokers, in random order.
    fn some_brokers(rng: &mut TestRng, count: usize) -> Vec<i32> {
        let mut brokers = BROKERS.to_vec();
        for index in (1..brokers.len()).rev() {
            brokers.swap(index, below(rng, index + 1));
        }
        brokers.truncate(count);
        brokers
    }

    fn step(&mut self, rng: &mut TestRng, topic_count: &mut u32) -> String {
        let broker_id = BROKERS[below(rng, BROKERS.len())];
        match below(rng, 100) {
            0..=14 => {
                let new_run = chance(rng, 30);
                self.register(broker_id, new_run);
                format!("register {broker_id} new_run={new_run}")
            }
            15..=39 => {
                let _ = self.run(
                    self.manager
                        .execute(MetadataCommand::BrokerHeartbeat { broker_id }),
                );
                format!("heartbeat {broker_id}")
            }
            40..=49 => {
                let elapsed = Duration::from_millis(below(rng, 800) as u64);
                *self.now.lock() += elapsed;
                let fenced = self.run(self.manager.fence_silent_brokers(SESSION));
                format!("{elapsed:?} pass, fenced {fenced:?}")
            }
            50..=53 => {
                let _ = self.run(
                    self.manager
                        .execute(MetadataCommand::ControlledShutdown { broker_id }),
                );
                format!("controlled shutdown {broker_id}")
            }
            54..=61 => {
                *topic_count += 1;
                let request = TopicRequest {
                    name: format!("topic-{topic_count}"),
                    num_partitions: (1 + below(rng, 3)) as _,
                    replication_factor: (1 + below(rng, 3)) as _,
                    ..TopicRequest::default()
                };
                let created = self
                    .run(self.manager.create_topic(&request, false))
                    .map(drop);
                format!("create {request:?}: {created:?}")
            }
            62..=63 => match self.pick_partition(rng) {
                Some((name, ..)) => {
                    let _ = self.run(self.manager.delete_topic(&name));
                    format!("delete {name}")
                }
                None => "no topic to delete".into(),
            },
            64..=79 => {
                let Some((name, topic_id, index)) = self.pick_partition(rng) else {
                    return "no partition for an ISR change".into();
                };
                let image = self.manager.image();
                let partition = &image.topic(&name).unwrap().partitions[index as usize];
                let stale = chance(rng, 10);
                let leader_epoch = partition.leader_epoch - i32::from(stale);
                let mut isr: Vec<i32> = partition
                    .replicas
                    .iter()
                    .copied()
                    .filter(|replica| *replica == partition.leader || chance(rng, 60))
                    .collect();
                if isr.is_empty() {
                    isr.push(partition.replicas[0]);
                }
                let outcome = self.run(self.manager.execute(MetadataCommand::AlterPartition {
                    topic_id,
                    partition: index,
                    leader: partition.leader,
                    leader_epoch,
                    isr: isr.clone(),
                }));
                format!("alter {name}-{index} isr {isr:?} epoch {leader_epoch}: {outcome:?}")
            }
            80..=87 => {
                let unclean = chance(rng, 30);
                let outcome = self.run(self.manager.execute(MetadataCommand::ElectLeaders {
                    unclean,
                    partitions: None,
                }));
                format!("elect unclean={unclean}: {outcome:?}")
            }
            88..=95 => {
                let Some((name, _, index)) = self.pick_partition(rng) else {
                    return "no partition to reassign".into();
                };
                let target = {
                    let count = 1 + below(rng, 3);
                    Simulation::some_brokers(rng, count)
                };
                let outcome = self.run(self.manager.execute(MetadataCommand::Reassign {
                    topic: name.clone(),
                    partition: index,
                    target: target.clone(),
                }));
                format!("reassign {name}-{index} to {target:?}: {outcome:?}")
            }
            _ => {
                let Some((name, _, index)) = self.pick_partition(rng) else {
                    return "no reassignment to cancel".into();
                };
                let outcome = self.run(self.manager.execute(MetadataCommand::CancelReassignment {
                    topic: name.clone(),
                    partition: index,
                }));
                format!("cancel reassignment {name}-{index}: {outcome:?}")
            }
        }
    }

    /// Checks the invariants; returns what is broken.
    fn check(&mut self) -> Result<(), String> {
        let image = self.manager.image();
        for topic in image.topics.values() {
            for partition in &topic.partitions {
                let name = format!("{}-{}", topic.name, partition.partition);
                if partition.isr.is_empty() {
                    return Err(format!("{name}: empty ISR {partition:?}"));
                }
                if let Some(outside) = partition
                    .isr
                    .iter()
                    .find(|replica| !partition.replicas.contains(replica))
                {
                    return Err(format!(
                        "{name}: ISR member {outside} is not a replica {partition:?}"
                    ));
                }
                if partition.leader >= 0 {
                    if !partition.isr.contains(&partition.leader) {
                        return Err(format!("{name}: leader outside the ISR {partition:?}"));
                    }
                    let live = image
                        .brokers
                        .get(&partition.leader)
                        .is_some_and(|broker| !broker.fenced);
                    if !live {
                        return Err(format!("{name}: fenced or unknown leader {partition:?}"));
                    }
                }
                let key = (topic.topic_id, partition.partition);
                let highest = self.epochs.entry(key).or_insert(partition.leader_epoch);
                if partition.leader_epoch < *highest {
                    return Err(format!(
                        "{name}: leader epoch went back from {highest} to {}",
                        partition.leader_epoch
                    ));
                }
                *highest = partition.leader_epoch;
            }
        }
        Ok(())
    }
}

/// A number in `0..bound`.
fn below(rng: &mut TestRng, bound: usize) -> usize {
    (rng.next_u64() % bound as u64) as usize
}

/// True `percent` times in a hundred.
fn chance(rng: &mut TestRng, percent: u64) -> bool {
    rng.next_u64() % 100 < percent
}

#[test]
fn partition_invariants_hold_under_random_schedules() {
    for seed in 0..100u64 {
        let mut seed_bytes = [0u8; 32];
        seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
        let mut rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
        let mut simulation = Simulation::new();
        for broker_id in BROKERS {
            simulation.register(broker_id, false);
        }
        let mut topic_count = 0;
        let mut history = Vec::new();
        for _ in 0..400 {
            history.push(simulation.step(&mut rng, &mut topic_count));
            if let Err(broken) = simulation.check() {
                let recent = history
                    .iter()
                    .rev()
                    .take(8)
                    .rev()
                    .cloned()
                    .collect::<Vec<_>>();
                panic!("seed {seed}: {broken}\nlast steps:\n{}", recent.join("\n"));
            }
        }
    }
}
