//! Metadata commands: the changes a broker asks the active controller for.
//!
//! Only the active controller decides what a request changes, against the latest image, so a
//! node that is not active sends it the command and waits for the outcome. Commands and
//! outcomes are serialisable for that trip; [`WireError`] carries a [`MetadataError`] across.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::image::TopicImage;
use crate::manager::TopicRequest;
use crate::record::ConfigResource;
use crate::MetadataError;

/// A change to decide and commit on the active controller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MetadataCommand {
    /// Create a topic (or only check that it could be).
    CreateTopic {
        request: TopicRequest,
        validate_only: bool,
    },
    /// Delete a topic by name.
    DeleteTopic { name: String },
    /// Grow a topic to `new_total` partitions.
    CreatePartitions {
        name: String,
        new_total: i32,
        validate_only: bool,
    },
    /// Set (`Some`) or remove (`None`) configuration keys.
    AlterConfigs {
        resource: ConfigResource,
        changes: Vec<(String, Option<String>)>,
        replace_all: bool,
        validate_only: bool,
    },
    /// Reserve a block of producer ids.
    AllocateProducerIds { count: i64 },
    /// A partition's leader asks to change its ISR (KIP-497's AlterPartition): followers that
    /// lag leave it, caught-up ones join. Refused unless the requester still leads at
    /// `leader_epoch`.
    AlterPartition {
        topic_id: uuid::Uuid,
        partition: i32,
        leader: i32,
        leader_epoch: i32,
        isr: Vec<i32>,
    },
    /// Move a partition's replicas to `target` (AlterPartitionReassignments, KIP-455); the
    /// current replicas as target cancels a reassignment in progress.
    Reassign {
        topic: String,
        partition: i32,
        target: Vec<i32>,
    },
    /// Cancel a partition's reassignment in progress (AlterPartitionReassignments with a null
    /// replica list): back to the replicas it had before.
    CancelReassignment { topic: String, partition: i32 },
    /// Elect leaders (ElectLeaders, KIP-460): the preferred replica (the first one) where it is
    /// live and in sync, or, unclean, any live replica of a partition that has no leader.
    /// `None` means every partition.
    ElectLeaders {
        unclean: bool,
        partitions: Option<Vec<(String, i32)>>,
    },
    /// A broker is about to stop (Kafka's controlled shutdown): it is fenced now, leaving the
    /// ISRs and handing its leaderships to live in-sync replicas, so that clients move before
    /// it goes rather than after its session times out.
    ControlledShutdown { broker_id: i32 },
    /// A broker is alive; a fenced one is unfenced and may lead again.
    BrokerHeartbeat { broker_id: i32 },
    /// Register a broker at the address clients reach it at. A cluster broker names its
    /// `incarnation`, new at every start: a registration from a new incarnation of a broker the
    /// metadata still counts as alive means it restarted, and it is fenced at once (its
    /// leaderships move to other in-sync replicas, at a new epoch) until it heartbeats, instead
    /// of keeping them at the epoch it held before the restart. The same incarnation
    /// registering again (a retry) changes nothing.
    RegisterBroker {
        broker_id: i32,
        host: String,
        port: i32,
        rack: Option<String>,
        #[serde(default)]
        incarnation: Option<uuid::Uuid>,
    },
}

/// What a command produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CommandOutcome {
    /// The topic as created (or as it would be, when only validated).
    Topic(TopicImage),
    /// A reserved range of producer ids.
    ProducerIds(Range<i64>),
    /// What an election did, per partition.
    Elections(Vec<(String, i32, Election)>),
    /// Done; nothing to report.
    Done,
}

/// The result of electing one partition's leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Election {
    /// A new leader was elected.
    Elected,
    /// The partition already had the leader the election would choose.
    NotNeeded,
    /// No eligible replica: the preferred one is down or out of sync; for an unclean
    /// election, no replica is live.
    NotAvailable,
    /// No such topic or partition.
    UnknownPartition,
}

/// A [`MetadataError`] in a form that crosses the wire; the variant is kept, since brokers map
/// it to a Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireError {
    Io(String),
    BadRecord { index: u64, reason: String },
    TopicAlreadyExists(String),
    UnknownTopic(String),
    InvalidTopicName(String),
    InvalidPartitions(String),
    InvalidReplicationFactor(String),
    InvalidConfig(String),
    NotController(String),
    StaleLeadership(String),
    InvalidReplicaAssignment(String),
    NoReassignmentInProgress(String),
    PolicyViolation(String),
}

impl From<&MetadataError> for WireError {
    fn from(error: &MetadataError) -> WireError {
        match error {
            MetadataError::Io(error) => WireError::Io(error.to_string()),
            MetadataError::BadRecord { index, reason } => WireError::BadRecord {
                index: *index,
                reason: reason.clone(),
            },
            MetadataError::TopicAlreadyExists(name) => WireError::TopicAlreadyExists(name.clone()),
            MetadataError::UnknownTopic(name) => WireError::UnknownTopic(name.clone()),
            MetadataError::InvalidTopicName(reason) => WireError::InvalidTopicName(reason.clone()),
            MetadataError::InvalidPartitions(reason) => {
                WireError::InvalidPartitions(reason.clone())
            }
            MetadataError::InvalidReplicationFactor(reason) => {
                WireError::InvalidReplicationFactor(reason.clone())
            }
            MetadataError::InvalidConfig(reason) => WireError::InvalidConfig(reason.clone()),
            MetadataError::NotController(reason) => WireError::NotController(reason.clone()),
            MetadataError::StaleLeadership(reason) => WireError::StaleLeadership(reason.clone()),
            MetadataError::InvalidReplicaAssignment(reason) => {
                WireError::InvalidReplicaAssignment(reason.clone())
            }
            MetadataError::NoReassignmentInProgress(reason) => {
                WireError::NoReassignmentInProgress(reason.clone())
            }
            MetadataError::PolicyViolation(reason) => WireError::PolicyViolation(reason.clone()),
        }
    }
}

impl From<WireError> for MetadataError {
    fn from(error: WireError) -> MetadataError {
        match error {
            WireError::Io(message) => MetadataError::Io(std::io::Error::other(message)),
            WireError::BadRecord { index, reason } => MetadataError::BadRecord { index, reason },
            WireError::TopicAlreadyExists(name) => MetadataError::TopicAlreadyExists(name),
            WireError::UnknownTopic(name) => MetadataError::UnknownTopic(name),
            WireError::InvalidTopicName(reason) => MetadataError::InvalidTopicName(reason),
            WireError::InvalidPartitions(reason) => MetadataError::InvalidPartitions(reason),
            WireError::InvalidReplicationFactor(reason) => {
                MetadataError::InvalidReplicationFactor(reason)
            }
            WireError::InvalidConfig(reason) => MetadataError::InvalidConfig(reason),
            WireError::NotController(reason) => MetadataError::NotController(reason),
            WireError::StaleLeadership(reason) => MetadataError::StaleLeadership(reason),
            WireError::InvalidReplicaAssignment(reason) => {
                MetadataError::InvalidReplicaAssignment(reason)
            }
            WireError::NoReassignmentInProgress(reason) => {
                MetadataError::NoReassignmentInProgress(reason)
            }
            WireError::PolicyViolation(reason) => MetadataError::PolicyViolation(reason),
        }
    }
}

/// A command's outcome as sent back to the node that forwarded it, with how many metadata
/// records the controller had applied once the command's were committed: the forwarding node
/// waits until it has applied as many before it answers, so that a client reads its own write
/// from the node it asked.
pub type WireOutcome = Result<(CommandOutcome, u64), WireError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_errors_survive_the_trip() {
        let command = MetadataCommand::AlterConfigs {
            resource: ConfigResource::Topic("orders".into()),
            changes: vec![
                ("retention.ms".into(), Some("10".into())),
                ("x".into(), None),
            ],
            replace_all: false,
            validate_only: true,
        };
        let bytes = serde_json::to_vec(&command).unwrap();
        assert_eq!(
            serde_json::from_slice::<MetadataCommand>(&bytes).unwrap(),
            command
        );
        let error = MetadataError::InvalidReplicationFactor("too many".into());
        let wire: WireOutcome = Err(WireError::from(&error));
        let back: WireOutcome =
            serde_json::from_slice(&serde_json::to_vec(&wire).unwrap()).unwrap();
        assert!(matches!(
            back.map_err(MetadataError::from),
            Err(MetadataError::InvalidReplicationFactor(reason)) if reason == "too many"
        ));
    }
}
