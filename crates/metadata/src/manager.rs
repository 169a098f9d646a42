//! The metadata manager: decides what a request changes, writes the records, publishes the image.
//!
//! Every change is validated against the current image, appended durably to the store and only
//! then applied, so the image never shows a change that a restart would lose.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use uuid::Uuid;

use crate::command::{CommandOutcome, Election, MetadataCommand};
use crate::image::{MetadataImage, PartitionImage, TopicImage};
use crate::liveness::{silent_brokers, BrokerContacts};
use crate::record::{ConfigResource, MetadataRecord};
use crate::store::MetadataStore;
use crate::topic_config::validate_topic_config;
use crate::MetadataError;

/// The most partitions one request may create, as Kafka's controller limits the records of one
/// operation: beyond it the request is refused before anything is sized by it.
pub const MAX_PARTITIONS_PER_REQUEST: usize = 10_000;

/// Longest topic name Kafka accepts.
pub const MAX_TOPIC_NAME_LENGTH: usize = 249;

/// A topic to create, with defaults already resolved by the caller.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TopicRequest {
    /// The topic's name.
    pub name: String,
    /// Number of partitions.
    pub num_partitions: i32,
    /// Copies of each partition.
    pub replication_factor: i16,
    /// Explicit replica lists by partition, overriding the two counts above when non-empty.
    pub assignments: Vec<Vec<i32>>,
    /// Configuration overrides.
    pub configs: BTreeMap<String, String>,
}

/// Where the records the manager decides on are committed, and where the image comes from:
/// the node's own file ([`LocalLog`]: a single node, and tests) or the controller quorum.
///
/// The calls block; brokers make them off the reactor threads.
pub trait RecordLog: Send + Sync {
    /// The image after every committed record applied here.
    fn image(&self) -> Arc<MetadataImage>;
    /// Watches the image.
    fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>>;
    /// Whether this node is the active controller, the only one that decides changes.
    fn is_active(&self) -> bool;
    /// The controller term this node is active in; `None` when it is not the active
    /// controller. A node that loses and regains leadership does so in a new term.
    fn active_term(&self) -> Option<u64>;
    /// The active controller's node id, if one is known; `None` for a local log.
    fn active_controller(&self) -> Option<i32>;
    /// Appends records durably (committed by a majority of the quorum) and returns the image
    /// they lead to.
    fn commit(&self, records: Vec<MetadataRecord>) -> Result<Arc<MetadataImage>, MetadataError>;
    /// Has the active controller execute `command`, and returns its outcome.
    fn forward(&self, command: &MetadataCommand) -> Result<CommandOutcome, MetadataError>;
}

/// A metadata log of this node alone: one file, and this node is always the active controller.
pub struct LocalLog {
    /// The durable file; the mutex orders appends.
    store: Mutex<MetadataStore>,
    /// The current image, replaced whole after each durable append.
    image: watch::Sender<Arc<MetadataImage>>,
}

impl LocalLog {
    /// Opens the log in `dir` and replays it.
    pub fn open(dir: &Path) -> Result<LocalLog, MetadataError> {
        let (store, records) = MetadataStore::open(dir)?;
        let image = MetadataImage::default().apply(&records);
        Ok(LocalLog {
            store: Mutex::new(store),
            image: watch::Sender::new(Arc::new(image)),
        })
    }
}

impl RecordLog for LocalLog {
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
        Some(0)
    }

    fn active_controller(&self) -> Option<i32> {
        None
    }

    fn commit(&self, records: Vec<MetadataRecord>) -> Result<Arc<MetadataImage>, MetadataError> {
        let mut store = self.store.lock();
        store.append(&records)?;
        let next = Arc::new(self.image().apply(&records));
        self.image.send_replace(next.clone());
        Ok(next)
    }

    fn forward(&self, _: &MetadataCommand) -> Result<CommandOutcome, MetadataError> {
        Err(MetadataError::NotController(
            "a local metadata log is always its own controller".into(),
        ))
    }
}

/// Decides what each change means for the metadata and commits it through a [`RecordLog`].
pub struct MetadataManager {
    /// Serialises decisions, so that each is made against the image the previous one left.
    decisions: Mutex<()>,
    /// Where records are committed and the image is read.
    log: Arc<dyn RecordLog>,
    /// When each broker last registered or heartbeated, as seen by this node in its current
    /// term as the active controller.
    contacts: Mutex<BrokerContacts>,
    /// The time, for liveness; a parameter so that tests can move it without sleeping.
    clock: Clock,
}

/// Where the manager reads the time from.
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

impl MetadataManager {
    /// A manager over `log`, on the system's monotonic clock.
    pub fn new(log: Arc<dyn RecordLog>) -> MetadataManager {
        MetadataManager::with_clock(log, Arc::new(Instant::now))
    }

    /// A manager over `log` that reads the time from `clock`.
    pub fn with_clock(log: Arc<dyn RecordLog>, clock: Clock) -> MetadataManager {
        let now = clock();
        MetadataManager {
            decisions: Mutex::new(()),
            log,
            contacts: Mutex::new(BrokerContacts::new(now)),
            clock,
        }
    }

    /// Opens a single node's metadata log in `dir`, replays it, and registers this node at its
    /// address.
    pub fn open(
        dir: &Path,
        node_id: i32,
        host: &str,
        port: i32,
    ) -> Result<MetadataManager, MetadataError> {
        let manager = MetadataManager::new(Arc::new(LocalLog::open(dir)?));
        manager.execute(MetadataCommand::RegisterBroker {
            broker_id: node_id,
            host: host.to_string(),
            port,
            rack: None,
            incarnation: None,
        })?;
        Ok(manager)
    }

    /// The current image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.log.image()
    }

    /// Watches the image, which changes as records are committed (here or, in a cluster,
    /// anywhere).
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.log.subscribe()
    }

    /// Whether this node is the active controller.
    pub fn is_active(&self) -> bool {
        self.log.is_active()
    }

    /// The active controller's node id, if known; `None` when the log is this node's own.
    pub fn active_controller(&self) -> Option<i32> {
        self.log.active_controller()
    }

    /// Runs a command: decides and commits it on the active controller, or sends it there.
    pub fn execute(&self, command: MetadataCommand) -> Result<CommandOutcome, MetadataError> {
        if !self.log.is_active() {
            match self.log.forward(&command) {
                // Elected meanwhile: decide here.
                Err(MetadataError::NotController(_)) if self.log.is_active() => {}
                outcome => return outcome,
            }
        }
        let _decisions = self.decisions.lock();
        let (records, outcome) = self.decide(&self.image(), &command)?;
        if !records.is_empty() {
            self.log.commit(records)?;
            log_change(&command);
        }
        Ok(outcome)
    }

    /// What `command` changes, as records, and what to answer; no records when nothing changes
    /// (validation only, or already so).
    fn decide(
        &self,
        image: &MetadataImage,
        command: &MetadataCommand,
    ) -> Result<(Vec<MetadataRecord>, CommandOutcome), MetadataError> {
        match command {
            MetadataCommand::CreateTopic {
                request,
                validate_only,
            } => decide_create_topic(image, request, *validate_only),
            MetadataCommand::DeleteTopic { name } => {
                let topic = image
                    .topic(name)
                    .ok_or_else(|| MetadataError::UnknownTopic(name.clone()))?;
                let records = vec![MetadataRecord::RemoveTopic {
                    topic_id: topic.topic_id,
                }];
                Ok((records, CommandOutcome::Topic(TopicImage::clone(topic))))
            }
            MetadataCommand::CreatePartitions {
                name,
                new_total,
                validate_only,
            } => decide_create_partitions(image, name, *new_total, *validate_only),
            MetadataCommand::AlterConfigs {
                resource,
                changes,
                replace_all,
                validate_only,
            } => {
                let records = decide_alter_configs(image, resource, changes, *replace_all)?;
                let records = if *validate_only { Vec::new() } else { records };
                Ok((records, CommandOutcome::Done))
            }
            MetadataCommand::AllocateProducerIds { count } => {
                let start = image.next_producer_id;
                let records = vec![MetadataRecord::ProducerIds {
                    next_producer_id: start + count,
                }];
                Ok((records, CommandOutcome::ProducerIds(start..start + count)))
            }
            MetadataCommand::AlterPartition {
                topic_id,
                partition,
                leader,
                leader_epoch,
                isr,
            } => {
                let records = decide_alter_partition(
                    image,
                    *topic_id,
                    *partition,
                    (*leader, *leader_epoch),
                    isr,
                )?;
                Ok((records, CommandOutcome::Done))
            }
            MetadataCommand::ElectLeaders {
                unclean,
                partitions,
            } => Ok(decide_elections(image, *unclean, partitions.as_deref())),
            MetadataCommand::Reassign {
                topic,
                partition,
                target,
            } => {
                let records = decide_reassignment(image, topic, *partition, target)?;
                Ok((records, CommandOutcome::Done))
            }
            MetadataCommand::CancelReassignment { topic, partition } => {
                let records = decide_cancellation(image, topic, *partition)?;
                Ok((records, CommandOutcome::Done))
            }
            MetadataCommand::ControlledShutdown { broker_id } => {
                if !image.brokers.contains_key(broker_id) {
                    return Ok((Vec::new(), CommandOutcome::Done));
                }
                let mut records = vec![MetadataRecord::FenceBroker {
                    broker_id: *broker_id,
                }];
                records.extend(move_leadership_away(image, *broker_id));
                Ok((records, CommandOutcome::Done))
            }
            MetadataCommand::BrokerHeartbeat { broker_id } => {
                self.record_contact(*broker_id);
                let fenced = image
                    .brokers
                    .get(broker_id)
                    .is_some_and(|broker| broker.fenced);
                let records = if fenced {
                    let mut records = vec![MetadataRecord::UnfenceBroker {
                        broker_id: *broker_id,
                    }];
                    records.extend(elect_leaderless(&image.apply(&records)));
                    records
                } else {
                    Vec::new()
                };
                Ok((records, CommandOutcome::Done))
            }
            MetadataCommand::RegisterBroker {
                broker_id,
                host,
                port,
                rack,
                incarnation,
            } => {
                // Registering counts as a heartbeat: the broker's session starts now, whatever
                // it last sent before it stopped (as in Kafka's heartbeat manager).
                self.record_contact(*broker_id);
                let mut records = Vec::new();
                if image.cluster_id.is_empty() {
                    records.push(MetadataRecord::Cluster {
                        cluster_id: new_cluster_id(),
                    });
                }
                let current = image.brokers.get(broker_id);
                let registered = current.is_some_and(|broker| {
                    broker.host == *host
                        && broker.port == *port
                        && broker.rack == *rack
                        && (incarnation.is_none() || broker.incarnation == *incarnation)
                });
                if !registered {
                    records.push(MetadataRecord::RegisterBroker {
                        broker_id: *broker_id,
                        host: host.clone(),
                        port: *port,
                        rack: rack.clone(),
                        incarnation: *incarnation,
                    });
                }
                // A new run of a broker still counted alive: the old run's leaderships must
                // not carry over at their epochs (its log may have lost what it had not
                // flushed), so it is fenced until its first heartbeat.
                let restarted = incarnation.is_some()
                    && current
                        .is_some_and(|broker| !broker.fenced && broker.incarnation != *incarnation);
                if restarted {
                    records.push(MetadataRecord::FenceBroker {
                        broker_id: *broker_id,
                    });
                    records.extend(move_leadership_away(image, *broker_id));
                }
                Ok((records, CommandOutcome::Done))
            }
        }
    }

    /// Notes that `broker_id` is in contact now, in this node's current controller term.
    fn record_contact(&self, broker_id: i32) {
        let term = self.log.active_term();
        let now = (self.clock)();
        self.contacts.lock().record_contact(term, broker_id, now);
    }

    /// On the active controller, fences the brokers that have not registered or heartbeated
    /// for `session_timeout` and moves their leaderships; returns the brokers fenced.
    ///
    /// Decided under the same lock as every command, so that a heartbeat or registration is
    /// either seen by this check or made after its records.
    pub fn fence_silent_brokers(
        &self,
        session_timeout: Duration,
    ) -> Result<Vec<i32>, MetadataError> {
        let _decisions = self.decisions.lock();
        let term = self.log.active_term();
        let now = (self.clock)();
        let image = self.image();
        let silent = {
            let mut contacts = self.contacts.lock();
            contacts.enter_term(term, now);
            silent_brokers(&image, &contacts, now, session_timeout)
        };
        if silent.is_empty() {
            return Ok(silent);
        }
        let mut image = (*image).clone();
        let mut records = Vec::new();
        for &broker_id in &silent {
            let mut fencing = vec![MetadataRecord::FenceBroker { broker_id }];
            fencing.extend(move_leadership_away(&image, broker_id));
            image = image.apply(&fencing);
            records.extend(fencing);
        }
        self.log.commit(records)?;
        tracing::warn!(brokers = ?silent, "brokers fenced: no heartbeat within the session timeout");
        Ok(silent)
    }

    /// Creates a topic, or only checks that it could be created when `validate_only`.
    pub fn create_topic(
        &self,
        request: &TopicRequest,
        validate_only: bool,
    ) -> Result<TopicImage, MetadataError> {
        match self.execute(MetadataCommand::CreateTopic {
            request: request.clone(),
            validate_only,
        })? {
            CommandOutcome::Topic(topic) => Ok(topic),
            other => Err(unexpected(other)),
        }
    }

    /// Reserves `count` producer ids that no earlier reservation handed out, durably.
    pub fn allocate_producer_ids(&self, count: i64) -> Result<Range<i64>, MetadataError> {
        match self.execute(MetadataCommand::AllocateProducerIds { count })? {
            CommandOutcome::ProducerIds(range) => Ok(range),
            other => Err(unexpected(other)),
        }
    }

    /// Deletes a topic by name.
    pub fn delete_topic(&self, name: &str) -> Result<TopicImage, MetadataError> {
        match self.execute(MetadataCommand::DeleteTopic {
            name: name.to_string(),
        })? {
            CommandOutcome::Topic(topic) => Ok(topic),
            other => Err(unexpected(other)),
        }
    }

    /// Grows a topic to `new_total` partitions.
    pub fn create_partitions(
        &self,
        name: &str,
        new_total: i32,
        validate_only: bool,
    ) -> Result<(), MetadataError> {
        self.execute(MetadataCommand::CreatePartitions {
            name: name.to_string(),
            new_total,
            validate_only,
        })
        .map(drop)
    }

    /// Changes configuration keys of a topic or broker: `Some` sets, `None` removes.
    ///
    /// With `replace_all` (the legacy AlterConfigs), keys not named are removed.
    pub fn alter_configs(
        &self,
        resource: ConfigResource,
        changes: &[(String, Option<String>)],
        replace_all: bool,
        validate_only: bool,
    ) -> Result<(), MetadataError> {
        self.execute(MetadataCommand::AlterConfigs {
            resource,
            changes: changes.to_vec(),
            replace_all,
            validate_only,
        })
        .map(drop)
    }
}

/// An outcome of the wrong kind: only a remote controller of another version could send one.
fn unexpected(outcome: CommandOutcome) -> MetadataError {
    MetadataError::NotController(format!("the controller answered {outcome:?}"))
}

/// One info line per committed change.
fn log_change(command: &MetadataCommand) {
    match command {
        MetadataCommand::CreateTopic { request, .. } => {
            tracing::info!(topic = %request.name, partitions = request.num_partitions, "topic created")
        }
        MetadataCommand::DeleteTopic { name } => tracing::info!(topic = %name, "topic deleted"),
        MetadataCommand::CreatePartitions {
            name, new_total, ..
        } => tracing::info!(topic = %name, partitions = new_total, "partitions added"),
        MetadataCommand::AlterConfigs {
            resource, changes, ..
        } => tracing::info!(resource = ?resource, changes = changes.len(), "configs altered"),
        MetadataCommand::AllocateProducerIds { .. } => {}
        MetadataCommand::AlterPartition {
            topic_id,
            partition,
            isr,
            ..
        } => tracing::info!(%topic_id, partition, ?isr, "ISR changed"),
        MetadataCommand::BrokerHeartbeat { broker_id } => {
            tracing::info!(broker = broker_id, "broker unfenced")
        }
        MetadataCommand::ControlledShutdown { broker_id } => {
            tracing::info!(
                broker = broker_id,
                "broker shutting down: leaderships moved away"
            )
        }
        MetadataCommand::ElectLeaders { unclean, .. } => {
            tracing::info!(unclean, "leaders elected")
        }
        MetadataCommand::Reassign {
            topic,
            partition,
            target,
        } => tracing::info!(%topic, partition, ?target, "partition reassignment started"),
        MetadataCommand::CancelReassignment { topic, partition } => {
            tracing::info!(%topic, partition, "partition reassignment cancelled")
        }
        MetadataCommand::RegisterBroker {
            broker_id,
            host,
            port,
            ..
        } => tracing::info!(broker = broker_id, %host, port, "broker registered"),
    }
}

/// Partition changes for fencing `broker_id`: it leaves every ISR it is in, unless it is the
/// last member (so that it can lead again when it returns, having everything committed), and
/// each partition it led gets its first live in-sync replica as leader, or none.
fn move_leadership_away(image: &MetadataImage, broker_id: i32) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics.values() {
        for partition in &topic.partitions {
            let in_isr = partition.isr.contains(&broker_id);
            if partition.leader != broker_id && !in_isr {
                continue;
            }
            let remaining: Vec<i32> = partition
                .isr
                .iter()
                .copied()
                .filter(|replica| *replica != broker_id)
                .collect();
            let isr = if remaining.is_empty() {
                partition.isr.clone()
            } else {
                remaining
            };
            let mut isr = isr;
            let (leader, leader_epoch) = if partition.leader == broker_id {
                let live = |replica: &i32| *replica != broker_id && image.is_live(*replica);
                let next = match isr.iter().copied().find(live) {
                    Some(next) => next,
                    // No live in-sync replica: a topic that allows it takes any live replica,
                    // losing what only the in-sync ones had (unclean.leader.election.enable).
                    None => match partition.replicas.iter().copied().find(live) {
                        Some(unclean) if unclean_election_enabled(topic) => {
                            tracing::warn!(topic = %topic.name, partition = partition.partition, leader = unclean, "unclean leader election");
                            isr = vec![unclean];
                            unclean
                        }
                        _ => -1,
                    },
                };
                (next, partition.leader_epoch + 1)
            } else {
                (partition.leader, partition.leader_epoch)
            };
            records.push(partition_change(
                topic,
                partition,
                isr,
                leader,
                leader_epoch,
            ));
        }
    }
    records
}

/// Whether a topic allows a replica outside the ISR to lead (`unclean.leader.election.enable`,
/// set on the topic; the default is false).
fn unclean_election_enabled(topic: &TopicImage) -> bool {
    topic
        .configs
        .get("unclean.leader.election.enable")
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("true"))
}

/// A leader's ISR change: only from the current leader at its current epoch, to replicas of
/// the partition, keeping the leader, and adding only live brokers.
fn decide_alter_partition(
    image: &MetadataImage,
    topic_id: Uuid,
    index: i32,
    (leader, leader_epoch): (i32, i32),
    isr: &[i32],
) -> Result<Vec<MetadataRecord>, MetadataError> {
    let topic = image
        .topic_by_id(&topic_id)
        .ok_or_else(|| MetadataError::UnknownTopic(topic_id.to_string()))?;
    let partition = usize::try_from(index)
        .ok()
        .and_then(|index| topic.partitions.get(index))
        .ok_or_else(|| MetadataError::UnknownTopic(format!("{}-{index}", topic.name)))?;
    if partition.leader != leader || partition.leader_epoch != leader_epoch {
        return Err(MetadataError::StaleLeadership(format!(
            "{}-{index} is led by {} at epoch {}, not {leader} at {leader_epoch}",
            topic.name, partition.leader, partition.leader_epoch
        )));
    }
    let acceptable = isr.contains(&leader)
        && isr
            .iter()
            .all(|replica| partition.replicas.contains(replica))
        && isr
            .iter()
            .all(|replica| partition.isr.contains(replica) || image.is_live(*replica));
    if !acceptable {
        return Err(MetadataError::StaleLeadership(format!(
            "ISR {isr:?} is not acceptable for {}-{index} with replicas {:?}",
            topic.name, partition.replicas
        )));
    }
    if isr == partition.isr.as_slice() {
        return Ok(Vec::new());
    }
    let mut records = vec![partition_change(
        topic,
        partition,
        isr.to_vec(),
        leader,
        leader_epoch,
    )];
    records.extend(complete_reassignment(
        &image.apply(&records),
        topic_id,
        index,
    ));
    Ok(records)
}

/// Starts (or replaces, or with the current replicas cancels) a reassignment of a partition's
/// replicas to `target`: the partition is hosted by old and new replicas alike until every
/// target replica is in sync, then the old ones leave (KIP-455's adding and removing
/// replicas).
fn decide_reassignment(
    image: &MetadataImage,
    name: &str,
    index: i32,
    target: &[i32],
) -> Result<Vec<MetadataRecord>, MetadataError> {
    let (topic, partition) = find_partition(image, name, index)?;
    let mut unique = target.to_vec();
    unique.sort_unstable();
    unique.dedup();
    if target.is_empty() || unique.len() != target.len() {
        return Err(MetadataError::InvalidReplicaAssignment(format!(
            "replicas {target:?} must name at least one broker, each once"
        )));
    }
    if let Some(unknown) = target
        .iter()
        .find(|broker| !image.brokers.contains_key(broker))
    {
        return Err(MetadataError::InvalidReplicaAssignment(format!(
            "broker {unknown} is not registered"
        )));
    }
    let original = original_replicas(partition);
    let adding: Vec<i32> = target
        .iter()
        .copied()
        .filter(|replica| !original.contains(replica))
        .collect();
    let removing: Vec<i32> = original
        .iter()
        .copied()
        .filter(|replica| !target.contains(replica))
        .collect();
    let mut replicas = target.to_vec();
    replicas.extend(&removing);
    let isr: Vec<i32> = partition
        .isr
        .iter()
        .copied()
        .filter(|replica| replicas.contains(replica))
        .collect();
    // A leader that is no replica any more (one being added, when a cancellation or a new
    // target drops it) hands over.
    let (leader, leader_epoch) = leader_among(image, partition, &replicas, &isr);
    let mut hosted = partition.clone();
    hosted.replicas = replicas;
    let mut records = vec![
        partition_change(topic, &hosted, isr, leader, leader_epoch),
        MetadataRecord::Reassignment {
            topic_id: topic.topic_id,
            partition: index,
            adding,
            removing,
        },
    ];
    records.extend(complete_reassignment(
        &image.apply(&records),
        topic.topic_id,
        index,
    ));
    Ok(records)
}

/// The partition's leader and epoch once its replicas are `replicas`: the current leader if it is
/// one of them, else the first live member of `isr` (none: -1) at the next epoch.
fn leader_among(
    image: &MetadataImage,
    partition: &PartitionImage,
    replicas: &[i32],
    isr: &[i32],
) -> (i32, i32) {
    if replicas.contains(&partition.leader) {
        return (partition.leader, partition.leader_epoch);
    }
    let next = isr
        .iter()
        .copied()
        .find(|replica| image.is_live(*replica))
        .unwrap_or(-1);
    (next, partition.leader_epoch + 1)
}

/// Cancels a partition's reassignment in progress (KIP-455): it goes back to the replicas it had
/// before, in the order the reassignment left them (as Kafka does); those being added leave it.
fn decide_cancellation(
    image: &MetadataImage,
    name: &str,
    index: i32,
) -> Result<Vec<MetadataRecord>, MetadataError> {
    let (_, partition) = find_partition(image, name, index)?;
    if partition.reassignment_target().is_none() {
        return Err(MetadataError::NoReassignmentInProgress(format!(
            "partition {index} of topic '{name}' has no reassignment in progress"
        )));
    }
    decide_reassignment(image, name, index, &original_replicas(partition))
}

/// Topic `name` and its partition `index`.
fn find_partition<'a>(
    image: &'a MetadataImage,
    name: &str,
    index: i32,
) -> Result<(&'a TopicImage, &'a PartitionImage), MetadataError> {
    let topic = image
        .topic(name)
        .ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
    let partition = usize::try_from(index)
        .ok()
        .and_then(|slot| topic.partitions.get(slot))
        .ok_or_else(|| MetadataError::UnknownTopic(format!("{name}-{index}")))?;
    Ok((topic, partition))
}

/// A partition's replicas before any reassignment in progress, in their order.
fn original_replicas(partition: &PartitionImage) -> Vec<i32> {
    partition
        .replicas
        .iter()
        .copied()
        .filter(|replica| !partition.adding_replicas.contains(replica))
        .collect()
}

/// Ends a partition's reassignment if every target replica is in sync: the replicas become the
/// target, the others leave the ISR, and a leader that is leaving hands over to an in-sync
/// target replica.
fn complete_reassignment(image: &MetadataImage, topic_id: Uuid, index: i32) -> Vec<MetadataRecord> {
    let Some(topic) = image.topic_by_id(&topic_id) else {
        return Vec::new();
    };
    let Some(partition) = usize::try_from(index)
        .ok()
        .and_then(|slot| topic.partitions.get(slot))
    else {
        return Vec::new();
    };
    let Some(target) = partition.reassignment_target() else {
        return Vec::new();
    };
    if !target.iter().all(|replica| partition.isr.contains(replica)) {
        return Vec::new();
    }
    let isr: Vec<i32> = target.clone();
    let (leader, leader_epoch) = leader_among(image, partition, &target, &isr);
    let mut finished = partition.clone();
    finished.replicas = target.clone();
    vec![
        partition_change(topic, &finished, isr, leader, leader_epoch),
        MetadataRecord::Reassignment {
            topic_id,
            partition: index,
            adding: Vec::new(),
            removing: Vec::new(),
        },
    ]
}

/// Elections for `wanted` partitions (all when `None`): the preferred replica where it is live,
/// in sync and not already leading; unclean, any live replica of a leaderless partition,
/// which then forms the ISR alone (what only it has becomes the partition's history).
fn decide_elections(
    image: &MetadataImage,
    unclean: bool,
    wanted: Option<&[(String, i32)]>,
) -> (Vec<MetadataRecord>, CommandOutcome) {
    let targets: Vec<(String, i32)> = match wanted {
        Some(wanted) => wanted.to_vec(),
        None => image
            .topics
            .values()
            .flat_map(|topic| {
                topic
                    .partitions
                    .iter()
                    .map(|partition| (topic.name.clone(), partition.partition))
            })
            .collect(),
    };
    let mut records = Vec::new();
    let mut results = Vec::new();
    for (name, index) in targets {
        let found = image.topic(&name).and_then(|topic| {
            usize::try_from(index)
                .ok()
                .and_then(|slot| topic.partitions.get(slot))
                .map(|partition| (topic, partition))
        });
        let Some((topic, partition)) = found else {
            results.push((name, index, Election::UnknownPartition));
            continue;
        };
        let choice = if unclean {
            if partition.leader >= 0 && image.is_live(partition.leader) {
                Err(Election::NotNeeded)
            } else {
                partition
                    .replicas
                    .iter()
                    .copied()
                    .find(|replica| image.is_live(*replica))
                    .map(|leader| (leader, vec![leader]))
                    .ok_or(Election::NotAvailable)
            }
        } else {
            let preferred = partition.replicas.first().copied().unwrap_or(-1);
            if partition.leader == preferred {
                Err(Election::NotNeeded)
            } else if partition.isr.contains(&preferred) && image.is_live(preferred) {
                Ok((preferred, partition.isr.clone()))
            } else {
                Err(Election::NotAvailable)
            }
        };
        match choice {
            Ok((leader, isr)) => {
                records.push(partition_change(
                    topic,
                    partition,
                    isr,
                    leader,
                    partition.leader_epoch + 1,
                ));
                results.push((name, index, Election::Elected));
            }
            Err(outcome) => results.push((name, index, outcome)),
        }
    }
    (records, CommandOutcome::Elections(results))
}

/// Leaders for the partitions that have none but a live broker in their ISR.
fn elect_leaderless(image: &MetadataImage) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics.values() {
        for partition in topic
            .partitions
            .iter()
            .filter(|partition| partition.leader < 0)
        {
            if let Some(leader) = partition
                .isr
                .iter()
                .copied()
                .find(|replica| image.is_live(*replica))
            {
                records.push(partition_change(
                    topic,
                    partition,
                    partition.isr.clone(),
                    leader,
                    partition.leader_epoch + 1,
                ));
            }
        }
    }
    records
}

/// A `Partition` record that keeps the replicas and sets ISR and leadership.
fn partition_change(
    topic: &TopicImage,
    partition: &PartitionImage,
    isr: Vec<i32>,
    leader: i32,
    leader_epoch: i32,
) -> MetadataRecord {
    MetadataRecord::Partition {
        topic_id: topic.topic_id,
        partition: partition.partition,
        replicas: partition.replicas.clone(),
        isr,
        leader,
        leader_epoch,
    }
}

fn decide_create_topic(
    image: &MetadataImage,
    request: &TopicRequest,
    validate_only: bool,
) -> Result<(Vec<MetadataRecord>, CommandOutcome), MetadataError> {
    validate_topic_name(&request.name)?;
    if image.topic(&request.name).is_some() {
        return Err(MetadataError::TopicAlreadyExists(request.name.clone()));
    }
    if let Some(existing) = image
        .topics
        .keys()
        .find(|existing| collides(existing, &request.name))
    {
        return Err(MetadataError::InvalidTopicName(format!(
            "topic '{}' collides with existing topic '{existing}': '.' and '_' are interchangeable in metric names",
            request.name
        )));
    }
    for (name, value) in &request.configs {
        validate_topic_config(name, value)?;
    }
    let assignments = assign_replicas(image, request)?;
    let topic_id = Uuid::new_v4();
    let mut records = vec![MetadataRecord::Topic {
        name: request.name.clone(),
        topic_id,
    }];
    records.extend(partition_records(topic_id, 0, assignments));
    records.extend(
        request
            .configs
            .iter()
            .map(|(name, value)| MetadataRecord::Config {
                resource: ConfigResource::Topic(request.name.clone()),
                name: name.clone(),
                value: Some(value.clone()),
            }),
    );
    let preview = image.apply(&records);
    let topic = preview
        .topic(&request.name)
        .map(|topic| TopicImage::clone(topic))
        .expect("topic just applied");
    let records = if validate_only { Vec::new() } else { records };
    Ok((records, CommandOutcome::Topic(topic)))
}

fn assign_replicas(
    image: &MetadataImage,
    request: &TopicRequest,
) -> Result<Vec<Vec<i32>>, MetadataError> {
    let brokers: Vec<i32> = image.brokers.keys().copied().collect();
    let wanted = if request.assignments.is_empty() {
        request.num_partitions.max(0) as usize
    } else {
        request.assignments.len()
    };
    check_partition_count(wanted)?;
    if !request.assignments.is_empty() {
        for replicas in &request.assignments {
            if let Some(unknown) = replicas.iter().find(|broker| !brokers.contains(broker)) {
                return Err(MetadataError::InvalidReplicationFactor(format!(
                    "replica assignment names broker {unknown}, which is not registered"
                )));
            }
        }
        return Ok(request.assignments.clone());
    }
    if request.num_partitions < 1 {
        return Err(MetadataError::InvalidPartitions(format!(
            "number of partitions must be at least 1, found {}",
            request.num_partitions
        )));
    }
    if request.replication_factor < 1 {
        return Err(MetadataError::InvalidReplicationFactor(format!(
            "replication factor must be at least 1, found {}",
            request.replication_factor
        )));
    }
    if request.replication_factor as usize > brokers.len() {
        return Err(MetadataError::InvalidReplicationFactor(format!(
            "replication factor: {} larger than available brokers: {}",
            request.replication_factor,
            brokers.len()
        )));
    }
    Ok(spread_replicas(
        &brokers,
        0..request.num_partitions as usize,
        request.replication_factor as usize,
    ))
}

/// Replica lists for `partitions`: partition p starts at broker p (mod the broker count) and
/// takes the next ones, so leaders and copies spread evenly over the brokers.
fn spread_replicas(brokers: &[i32], partitions: Range<usize>, replication: usize) -> Vec<Vec<i32>> {
    partitions
        .map(|partition| {
            (0..replication)
                .map(|copy| brokers[(partition + copy) % brokers.len()])
                .collect()
        })
        .collect()
}

/// Refuses a request that would create more than [`MAX_PARTITIONS_PER_REQUEST`] partitions.
fn check_partition_count(count: usize) -> Result<(), MetadataError> {
    if count > MAX_PARTITIONS_PER_REQUEST {
        return Err(MetadataError::PolicyViolation(format!(
            "unable to perform excessively large batch operation: {count} partitions, expected at most {MAX_PARTITIONS_PER_REQUEST}"
        )));
    }
    Ok(())
}

fn decide_create_partitions(
    image: &MetadataImage,
    name: &str,
    new_total: i32,
    validate_only: bool,
) -> Result<(Vec<MetadataRecord>, CommandOutcome), MetadataError> {
    let Some(topic) = image.topic(name) else {
        return Err(MetadataError::UnknownTopic(name.to_string()));
    };
    let current = topic.partitions.len() as i32;
    if new_total <= current {
        return Err(MetadataError::InvalidPartitions(format!(
            "topic '{name}' has {current} partitions; the new count must be larger, found {new_total}"
        )));
    }
    let replication = topic
        .partitions
        .first()
        .map_or(1, |partition| partition.replicas.len());
    check_partition_count((new_total - current) as usize)?;
    let brokers: Vec<i32> = image.brokers.keys().copied().collect();
    if brokers.is_empty() {
        return Err(MetadataError::InvalidReplicationFactor(
            "no broker is registered to host new partitions".into(),
        ));
    }
    let assignments = spread_replicas(&brokers, current as usize..new_total as usize, replication);
    let records = if validate_only {
        Vec::new()
    } else {
        partition_records(topic.topic_id, current, assignments).collect()
    };
    Ok((records, CommandOutcome::Done))
}

fn decide_alter_configs(
    image: &MetadataImage,
    resource: &ConfigResource,
    changes: &[(String, Option<String>)],
    replace_all: bool,
) -> Result<Vec<MetadataRecord>, MetadataError> {
    let current = match resource {
        ConfigResource::Topic(name) => match image.topic(name) {
            Some(topic) => topic.configs.clone(),
            None => return Err(MetadataError::UnknownTopic(name.clone())),
        },
        ConfigResource::Broker(broker) => image
            .broker_configs
            .get(broker)
            .cloned()
            .unwrap_or_default(),
    };
    if let ConfigResource::Topic(_) = resource {
        for (name, value) in changes {
            match value {
                Some(value) => validate_topic_config(name, value)?,
                None => validate_topic_config(
                    name,
                    crate::topic_config::topic_config_def(name).map_or("", |def| def.default),
                )?,
            }
        }
    } else if let Some((name, _)) = changes.first() {
        return Err(MetadataError::InvalidConfig(format!(
            "broker config '{name}' cannot be changed while the broker runs; set it in the config file"
        )));
    }
    let mut records: Vec<MetadataRecord> = Vec::new();
    if replace_all {
        for name in current
            .keys()
            .filter(|name| !changes.iter().any(|(changed, _)| changed == *name))
        {
            records.push(MetadataRecord::Config {
                resource: resource.clone(),
                name: name.clone(),
                value: None,
            });
        }
    }
    for (name, value) in changes {
        records.push(MetadataRecord::Config {
            resource: resource.clone(),
            name: name.clone(),
            value: value.clone(),
        });
    }
    Ok(records)
}

fn partition_records(
    topic_id: Uuid,
    first_partition: i32,
    assignments: Vec<Vec<i32>>,
) -> impl Iterator<Item = MetadataRecord> {
    assignments
        .into_iter()
        .enumerate()
        .map(move |(index, replicas)| MetadataRecord::Partition {
            topic_id,
            partition: first_partition + index as i32,
            leader: replicas[0],
            isr: replicas.clone(),
            replicas,
            leader_epoch: 0,
        })
}

/// Kafka's topic naming rules: 1 to 249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), MetadataError> {
    let invalid = |reason: String| Err(MetadataError::InvalidTopicName(reason));
    if name.is_empty() {
        return invalid("topic name is empty".into());
    }
    if name == "." || name == ".." {
        return invalid(format!("topic name cannot be '{name}'"));
    }
    if name.len() > MAX_TOPIC_NAME_LENGTH {
        return invalid(format!(
            "topic name is {} characters long; the maximum is {MAX_TOPIC_NAME_LENGTH}",
            name.len()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return invalid(format!(
            "topic name '{name}' contains '{bad}'; only ASCII letters, digits, '.', '_' and '-' are allowed"
        ));
    }
    Ok(())
}

fn collides(existing: &str, new: &str) -> bool {
    existing != new && existing.replace('.', "_") == new.replace('.', "_")
}

fn new_cluster_id() -> String {
    // Kafka's cluster ids are a random UUID in URL-safe base64 without padding.
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = Uuid::new_v4().into_bytes();
    let mut bits: u32 = 0;
    let mut bit_count = 0;
    let mut out = String::new();
    for byte in bytes {
        bits = (bits << 8) | byte as u32;
        bit_count += 8;
        while bit_count >= 6 {
            bit_count -= 6;
            out.push(ALPHABET[((bits >> bit_count) & 63) as usize] as char);
        }
    }
    if bit_count > 0 {
        out.push(ALPHABET[((bits << (6 - bit_count)) & 63) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path) -> MetadataManager {
        MetadataManager::open(dir, 1, "127.0.0.1", 9092).unwrap()
    }

    fn request(name: &str, partitions: i32) -> TopicRequest {
        TopicRequest {
            name: name.into(),
            num_partitions: partitions,
            replication_factor: 1,
            ..Default::default()
        }
    }

    #[test]
    fn topics_and_configs_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let cluster_id = {
            let manager = open(dir.path());
            manager.create_topic(&request("orders", 3), false).unwrap();
            manager
                .alter_configs(
                    ConfigResource::Topic("orders".into()),
                    &[("retention.ms".into(), Some("1000".into()))],
                    false,
                    false,
                )
                .unwrap();
            manager.create_partitions("orders", 5, false).unwrap();
            manager.image().cluster_id.clone()
        };
        let manager = open(dir.path());
        let image = manager.image();
        assert_eq!(image.cluster_id, cluster_id);
        assert_eq!(cluster_id.len(), 22);
        let topic = image.topic("orders").unwrap();
        assert_eq!(topic.partitions.len(), 5);
        assert_eq!(
            topic.configs.get("retention.ms").map(String::as_str),
            Some("1000")
        );
        assert_eq!(image.brokers.len(), 1);
    }

    #[test]
    fn invalid_requests_are_refused_and_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let manager = open(dir.path());
        assert!(matches!(
            manager.create_topic(&request("bad name", 1), false),
            Err(MetadataError::InvalidTopicName(_))
        ));
        assert!(matches!(
            manager.create_topic(&request("ok", 0), false),
            Err(MetadataError::InvalidPartitions(_))
        ));
        let mut too_many_copies = request("ok", 1);
        too_many_copies.replication_factor = 3;
        assert!(matches!(
            manager.create_topic(&too_many_copies, false),
            Err(MetadataError::InvalidReplicationFactor(_))
        ));
        let mut bad_config = request("ok", 1);
        bad_config
            .configs
            .insert("retention.ms".into(), "soon".into());
        assert!(matches!(
            manager.create_topic(&bad_config, false),
            Err(MetadataError::InvalidConfig(_))
        ));
        manager.create_topic(&request("a.b", 1), true).unwrap();
        assert!(
            manager.image().topic("a.b").is_none(),
            "validate-only created the topic"
        );
        manager.create_topic(&request("a.b", 1), false).unwrap();
        assert!(manager.create_topic(&request("a_b", 1), false).is_err());
        // Two billion partitions are refused before anything is sized by the count.
        assert!(matches!(
            manager.create_topic(&request("huge", i32::MAX), true),
            Err(MetadataError::PolicyViolation(_))
        ));
        assert!(matches!(
            manager.create_partitions("a.b", i32::MAX, false),
            Err(MetadataError::PolicyViolation(_))
        ));
        assert!(matches!(
            manager.create_topic(&request("a.b", 1), false),
            Err(MetadataError::TopicAlreadyExists(_))
        ));
    }

    fn register(manager: &MetadataManager, broker_id: i32) {
        manager
            .execute(MetadataCommand::RegisterBroker {
                broker_id,
                host: "127.0.0.1".into(),
                port: 9000 + broker_id,
                rack: None,
                incarnation: None,
            })
            .unwrap();
    }

    fn heartbeat(manager: &MetadataManager, broker_id: i32) {
        manager
            .execute(MetadataCommand::BrokerHeartbeat { broker_id })
            .unwrap();
    }

    #[test]
    fn a_silent_broker_is_fenced_and_its_leaderships_move_to_live_in_sync_replicas() {
        let dir = tempfile::tempdir().unwrap();
        let manager = open(dir.path());
        register(&manager, 2);
        register(&manager, 3);
        let mut replicated = request("replicated", 3);
        replicated.replication_factor = 3;
        manager.create_topic(&replicated, false).unwrap();
        manager.create_topic(&request("single", 3), false).unwrap();
        let session = Duration::from_millis(50);
        assert!(manager.fence_silent_brokers(session).unwrap().is_empty());
        std::thread::sleep(session + Duration::from_millis(10));
        heartbeat(&manager, 1);
        heartbeat(&manager, 2);
        assert_eq!(manager.fence_silent_brokers(session).unwrap(), vec![3]);

        let image = manager.image();
        assert!(!image.is_live(3));
        for partition in &image.topic("replicated").unwrap().partitions {
            assert!(!partition.isr.contains(&3), "{partition:?}");
            assert_ne!(partition.leader, 3, "{partition:?}");
            assert!(image.is_live(partition.leader), "{partition:?}");
            let moved = partition.replicas[0] == 3;
            assert_eq!(partition.leader_epoch, i32::from(moved), "{partition:?}");
        }
        // A partition whose only replica is fenced keeps it in the ISR and has no leader.
        let orphan = image
            .topic("single")
            .unwrap()
            .partitions
            .iter()
            .find(|partition| partition.replicas == [3])
            .cloned()
            .unwrap();
        assert_eq!((orphan.leader, orphan.isr.clone()), (-1, vec![3]));

        // Heartbeating again unfences it and gives it back the partition only it can lead.
        heartbeat(&manager, 3);
        let image = manager.image();
        assert!(image.is_live(3));
        let back = &image.topic("single").unwrap().partitions[orphan.partition as usize];
        assert_eq!(
            (back.leader, back.leader_epoch),
            (3, orphan.leader_epoch + 1)
        );
        heartbeat(&manager, 1);
        heartbeat(&manager, 2);
        assert!(manager.fence_silent_brokers(session).unwrap().is_empty());
    }

    #[test]
    fn only_a_topic_that_allows_it_gets_a_leader_from_outside_the_isr() {
        let dir = tempfile::tempdir().unwrap();
        let manager = open(dir.path());
        register(&manager, 2);
        register(&manager, 3);
        for (name, unclean) in [("careful", "false"), ("risky", "true")] {
            let mut topic = request(name, 1);
            topic.assignments = vec![vec![3, 2]];
            topic
                .configs
                .insert("unclean.leader.election.enable".into(), unclean.into());
            manager.create_topic(&topic, false).unwrap();
        }
        let session = Duration::from_millis(30);
        let fence_all_but = |alive: &[i32]| {
            std::thread::sleep(session + Duration::from_millis(10));
            for broker in alive {
                heartbeat(&manager, *broker);
            }
            manager.fence_silent_brokers(session).unwrap()
        };
        assert!(manager.fence_silent_brokers(session).unwrap().is_empty());
        // 2 leaves the ISRs, comes back (without catching up), then the leader 3 dies.
        assert_eq!(fence_all_but(&[1, 3]), vec![2]);
        heartbeat(&manager, 2);
        assert_eq!(fence_all_but(&[1, 2]), vec![3]);
        let image = manager.image();
        let careful = &image.topic("careful").unwrap().partitions[0];
        assert_eq!((careful.leader, careful.isr.clone()), (-1, vec![3]));
        let risky = &image.topic("risky").unwrap().partitions[0];
        assert_eq!((risky.leader, risky.isr.clone()), (2, vec![2]));
    }

    #[test]
    fn a_reassignment_hosts_old_and_new_replicas_until_the_new_ones_are_in_sync() {
        let dir = tempfile::tempdir().unwrap();
        let manager = open(dir.path());
        for broker in [2, 3, 4] {
            register(&manager, broker);
        }
        let mut topic = request("moving", 1);
        topic.assignments = vec![vec![1, 2, 3]];
        let topic_id = manager.create_topic(&topic, false).unwrap().topic_id;
        let reassign = |target: Vec<i32>| {
            manager.execute(MetadataCommand::Reassign {
                topic: "moving".into(),
                partition: 0,
                target,
            })
        };
        assert!(matches!(
            reassign(vec![4, 4]),
            Err(MetadataError::InvalidReplicaAssignment(_))
        ));
        reassign(vec![4, 2, 3]).unwrap();
        let partition = manager.image().topic("moving").unwrap().partitions[0].clone();
        assert_eq!(partition.replicas, vec![4, 2, 3, 1]);
        assert_eq!(
            (
                partition.adding_replicas.clone(),
                partition.removing_replicas.clone()
            ),
            (vec![4], vec![1])
        );
        assert_eq!(
            (partition.leader, partition.isr.clone()),
            (1, vec![1, 2, 3])
        );
        // The new replica catches up and the leader adds it: the move completes.
        manager
            .execute(MetadataCommand::AlterPartition {
                topic_id,
                partition: 0,
                leader: 1,
                leader_epoch: 0,
                isr: vec![1, 2, 3, 4],
            })
            .unwrap();
        let partition = manager.image().topic("moving").unwrap().partitions[0].clone();
        assert_eq!(partition.replicas, vec![4, 2, 3]);
        assert_eq!(partition.isr, vec![4, 2, 3]);
        assert_eq!((partition.leader, partition.leader_epoch), (4, 1));
        assert_eq!(partition.reassignment_target(), None);
    }

    #[test]
    fn a_broker_registering_from_a_new_run_is_fenced_and_its_leaderships_move() {
        let dir = tempfile::tempdir().unwrap();
        let manager = open(dir.path());
        let run = |incarnation: Uuid| {
            manager.execute(MetadataCommand::RegisterBroker {
                broker_id: 2,
                host: "127.0.0.1".into(),
                port: 9002,
                rack: None,
                incarnation: Some(incarnation),
            })
        };
        let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
        run(first).unwrap();
        register(&manager, 3);
        let mut topic = request("led", 1);
        topic.assignments = vec![vec![2, 1, 3]];
        manager.create_topic(&topic, false).unwrap();
        let led = || manager.image().topic("led").unwrap().partitions[0].clone();
        assert_eq!((led().leader, led().leader_epoch), (2, 0));
        // The same run registering again (a retry) changes nothing.
        run(first).unwrap();
        assert_eq!((led().leader, led().leader_epoch), (2, 0));
        assert!(!manager.image().brokers[&2].fenced);
        // A new run: fenced at once, its leadership moves on at a new epoch.
        run(second).unwrap();
        assert!(manager.image().brokers[&2].fenced);
        let partition = led();
        assert_eq!((partition.leader, partition.leader_epoch), (1, 1));
        assert_eq!(partition.isr, vec![1, 3]);
        // Its first heartbeat unfences it; registering again from that run changes nothing.
        heartbeat(&manager, 2);
        assert!(!manager.image().brokers[&2].fenced);
        run(second).unwrap();
        assert!(!manager.image().brokers[&2].fenced);
    }

    #[test]
    fn a_cancelled_reassignment_goes_back_to_the_replicas_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let manager = open(dir.path());
        for broker in [2, 3, 4] {
            register(&manager, broker);
        }
        let mut topic = request("staying", 1);
        topic.assignments = vec![vec![1, 2, 3]];
        manager.create_topic(&topic, false).unwrap();
        let cancel = || {
            manager.execute(MetadataCommand::CancelReassignment {
                topic: "staying".into(),
                partition: 0,
            })
        };
        assert!(matches!(
            cancel(),
            Err(MetadataError::NoReassignmentInProgress(_))
        ));
        manager
            .execute(MetadataCommand::Reassign {
                topic: "staying".into(),
                partition: 0,
                target: vec![4, 2, 3],
            })
            .unwrap();
        cancel().unwrap();
        let partition = manager.image().topic("staying").unwrap().partitions[0].clone();
        // As in Kafka, the replicas come back in the order the reassignment left them: the
        // target's, then those it was removing.
        assert_eq!(partition.replicas, vec![2, 3, 1]);
        assert!(partition.adding_replicas.is_empty() && partition.removing_replicas.is_empty());
        assert_eq!(
            (
                partition.leader,
                partition.leader_epoch,
                partition.isr.clone()
            ),
            (1, 0, vec![1, 2, 3])
        );
        assert_eq!(partition.reassignment_target(), None);
        assert!(matches!(
            manager.execute(MetadataCommand::CancelReassignment {
                topic: "staying".into(),
                partition: 1,
            }),
            Err(MetadataError::UnknownTopic(_))
        ));
    }

    #[test]
    fn deleted_topics_are_gone_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let manager = open(dir.path());
            manager.create_topic(&request("gone", 1), false).unwrap();
            manager.delete_topic("gone").unwrap();
            assert!(matches!(
                manager.delete_topic("gone"),
                Err(MetadataError::UnknownTopic(_))
            ));
        }
        assert!(open(dir.path()).image().topic("gone").is_none());
    }
}
