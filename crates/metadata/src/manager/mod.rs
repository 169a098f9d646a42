//! The metadata manager: decides what a command changes, commits the records, publishes the
//! image.
//!
//! Every change is validated against the current image, committed durably through the
//! [`RecordLog`] and only then applied, so the image never shows a change that a restart would
//! lose. As Kafka's controller splits its decisions into control managers, the decisions live
//! by area, each a set of pure functions from the image (and the command) to records:
//!
//! - [`topics`]: creating (names, counts, replica placement), deleting and growing topics.
//! - [`configs`]: configuration changes of topics and brokers.
//! - [`brokers`]: registrations, heartbeats, controlled shutdowns, the cluster id.
//! - [`partitions`]: ISR changes, leaderships moved off fenced brokers, elections.
//! - [`reassignment`]: partition reassignment and its cancellation.
//! - [`record_log`]: where records are committed ([`LocalLog`] on a single node).
//!
//! This module is the shell: it serialises decisions, forwards commands when this node is not
//! the active controller, keeps the brokers' contact times for liveness, and commits.

pub mod brokers;
pub mod configs;
pub mod partitions;
pub mod reassignment;
pub mod record_log;
#[cfg(test)]
mod schedules;
#[cfg(test)]
mod tests;
pub mod topics;

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::command::{CommandOutcome, MetadataCommand};
use crate::image::{MetadataImage, TopicImage};
use crate::liveness::{silent_brokers, BrokerContacts};
use crate::record::{ConfigResource, MetadataRecord};
use crate::MetadataError;

pub use record_log::{Committing, Forwarding, LocalLog, RecordLog};
pub use topics::{
    validate_topic_name, TopicRequest, MAX_PARTITIONS_PER_REQUEST, MAX_TOPIC_NAME_LENGTH,
};

/// Decides what each change means for the metadata and commits it through a [`RecordLog`].
pub struct MetadataManager {
    /// Serialises decisions, so that each is made against the image the previous one left. A
    /// commit holds it until the records are in the image, even when its caller stops waiting.
    decisions: Arc<tokio::sync::Mutex<()>>,
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
            decisions: Arc::new(tokio::sync::Mutex::new(())),
            log,
            contacts: Mutex::new(BrokerContacts::new(now)),
            clock,
        }
    }

    /// Opens a single node's metadata log in `dir`, replays it, and registers this node at its
    /// address.
    pub async fn open(
        dir: &Path,
        node_id: i32,
        host: &str,
        port: i32,
    ) -> Result<MetadataManager, MetadataError> {
        let manager = MetadataManager::new(Arc::new(LocalLog::open(dir)?));
        manager
            .execute(MetadataCommand::RegisterBroker {
                broker_id: node_id,
                host: host.to_string(),
                port,
                rack: None,
                incarnation: None,
            })
            .await?;
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
    pub async fn execute(&self, command: MetadataCommand) -> Result<CommandOutcome, MetadataError> {
        if !self.log.is_active() {
            match self.log.forward(&command).await {
                // Elected meanwhile: decide here.
                Err(MetadataError::NotController(_)) if self.log.is_active() => {}
                outcome => return outcome,
            }
        }
        let decisions = self.decisions.clone().lock_owned().await;
        let (records, outcome) = self.decide(&self.image(), &command)?;
        if !records.is_empty() {
            self.commit(decisions, records).await?;
            log_change(&command);
        }
        Ok(outcome)
    }

    /// Commits `records` decided under `decisions`, which is held until they are in the image.
    /// The commit runs as a task of its own: were it dropped halfway, the next decision could
    /// be made against an image that lacks records the log is still committing.
    async fn commit(
        &self,
        decisions: tokio::sync::OwnedMutexGuard<()>,
        records: Vec<MetadataRecord>,
    ) -> Result<Arc<MetadataImage>, MetadataError> {
        let log = self.log.clone();
        tokio::spawn(async move {
            let committed = log.commit(records).await;
            drop(decisions);
            committed
        })
        .await
        .map_err(|error| MetadataError::NotController(format!("the commit failed: {error}")))?
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
            } => topics::decide_create_topic(image, request, *validate_only),
            MetadataCommand::DeleteTopic { name } => topics::decide_delete_topic(image, name),
            MetadataCommand::CreatePartitions {
                name,
                new_total,
                validate_only,
            } => topics::decide_create_partitions(image, name, *new_total, *validate_only),
            MetadataCommand::AlterConfigs {
                resource,
                changes,
                replace_all,
                validate_only,
            } => {
                let records =
                    configs::decide_alter_configs(image, resource, changes, *replace_all)?;
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
                let records = partitions::decide_alter_partition(
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
            } => Ok(partitions::decide_elections(
                image,
                *unclean,
                partitions.as_deref(),
            )),
            MetadataCommand::Reassign {
                topic,
                partition,
                target,
            } => {
                let records = reassignment::decide_reassignment(image, topic, *partition, target)?;
                Ok((records, CommandOutcome::Done))
            }
            MetadataCommand::CancelReassignment { topic, partition } => {
                let records = reassignment::decide_cancellation(image, topic, *partition)?;
                Ok((records, CommandOutcome::Done))
            }
            MetadataCommand::ControlledShutdown { broker_id } => Ok((
                brokers::decide_controlled_shutdown(image, *broker_id),
                CommandOutcome::Done,
            )),
            MetadataCommand::BrokerHeartbeat { broker_id } => {
                self.record_contact(*broker_id);
                Ok((
                    brokers::decide_heartbeat(image, *broker_id),
                    CommandOutcome::Done,
                ))
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
                let registration = brokers::Registration {
                    broker_id: *broker_id,
                    host,
                    port: *port,
                    rack: rack.as_deref(),
                    incarnation: *incarnation,
                };
                Ok((
                    brokers::decide_registration(image, &registration),
                    CommandOutcome::Done,
                ))
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
    pub async fn fence_silent_brokers(
        &self,
        session_timeout: Duration,
    ) -> Result<Vec<i32>, MetadataError> {
        let decisions = self.decisions.clone().lock_owned().await;
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
            fencing.extend(partitions::move_leadership_away(&image, broker_id));
            image = image.apply(&fencing);
            records.extend(fencing);
        }
        self.commit(decisions, records).await?;
        tracing::warn!(brokers = ?silent, "brokers fenced: no heartbeat within the session timeout");
        Ok(silent)
    }

    /// Creates a topic, or only checks that it could be created when `validate_only`.
    pub async fn create_topic(
        &self,
        request: &TopicRequest,
        validate_only: bool,
    ) -> Result<TopicImage, MetadataError> {
        match self
            .execute(MetadataCommand::CreateTopic {
                request: request.clone(),
                validate_only,
            })
            .await?
        {
            CommandOutcome::Topic(topic) => Ok(topic),
            other => Err(unexpected(other)),
        }
    }

    /// Reserves `count` producer ids that no earlier reservation handed out, durably.
    pub async fn allocate_producer_ids(&self, count: i64) -> Result<Range<i64>, MetadataError> {
        match self
            .execute(MetadataCommand::AllocateProducerIds { count })
            .await?
        {
            CommandOutcome::ProducerIds(range) => Ok(range),
            other => Err(unexpected(other)),
        }
    }

    /// Deletes a topic by name.
    pub async fn delete_topic(&self, name: &str) -> Result<TopicImage, MetadataError> {
        match self
            .execute(MetadataCommand::DeleteTopic {
                name: name.to_string(),
            })
            .await?
        {
            CommandOutcome::Topic(topic) => Ok(topic),
            other => Err(unexpected(other)),
        }
    }

    /// Grows a topic to `new_total` partitions.
    pub async fn create_partitions(
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
        .await
        .map(drop)
    }

    /// Changes configuration keys of a topic or broker: `Some` sets, `None` removes.
    ///
    /// With `replace_all` (the legacy AlterConfigs), keys not named are removed.
    pub async fn alter_configs(
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
        .await
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
