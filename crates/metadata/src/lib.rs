//! The cluster's metadata as an ordered log of records applied to an immutable image.
//!
//! Layout:
//! - [`record`]: the metadata records (topics, partitions, brokers, configs).
//! - [`image`]: the read-only view that applying those records produces.
//! - [`store`]: the durable, checksummed file the records are appended to.
//! - [`manager`]: decides what a command changes (by area: topics, configs, brokers,
//!   partitions and elections, reassignment), commits the records, publishes the new image.
//! - [`liveness`]: which brokers the active controller has heard from, and which to fence.
//! - [`command`]: the changes brokers ask the active controller for, serialisable for forwarding.
//! - [`topic_config`]: the topic configuration keys, their defaults and their validation.
//! - [`quorum`]: the metadata log replicated across the controller voters with openraft.
//!
//! A single node runs as a cluster of one: node 1 is controller and broker, and every change
//! goes through the log, so adding voters later replaces the store, not the callers.

pub mod command;
mod framing;
#[doc(hidden)]
pub mod fuzzing;
mod image;
mod liveness;
pub mod manager;
pub mod quorum;
mod record;
mod store;
pub mod topic_config;

pub use image::{BrokerRegistration, MetadataImage, PartitionImage, TopicImage};
pub use manager::{MetadataManager, TopicRequest};
pub use record::{ConfigResource, MetadataRecord};

use thiserror::Error;

/// Everything that can go wrong in the metadata layer.
#[derive(Debug, Error)]
pub enum MetadataError {
    /// The metadata log could not be read or written.
    #[error("metadata log i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A record in the log could not be decoded.
    #[error("metadata record {index} is not valid: {reason}")]
    BadRecord { index: u64, reason: String },
    /// The topic already exists.
    #[error("topic '{0}' already exists")]
    TopicAlreadyExists(String),
    /// The topic does not exist.
    #[error("topic '{0}' does not exist")]
    UnknownTopic(String),
    /// The topic name breaks Kafka's naming rules.
    #[error("{0}")]
    InvalidTopicName(String),
    /// The partition count is not acceptable.
    #[error("{0}")]
    InvalidPartitions(String),
    /// The replication factor is not acceptable.
    #[error("{0}")]
    InvalidReplicationFactor(String),
    /// A configuration key or value is not acceptable.
    #[error("{0}")]
    InvalidConfig(String),
    /// A replica assignment names unknown brokers, none, or one twice.
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    /// The change would write more records than one operation may (Kafka's 10,000).
    #[error("{0}")]
    PolicyViolation(String),
    /// A reassignment was to be cancelled where none is in progress.
    #[error("{0}")]
    NoReassignmentInProgress(String),
    /// A leader asked to change a partition it no longer leads, or at an old epoch.
    #[error("{0}")]
    StaleLeadership(String),
    /// No active controller could take the change (none elected, or it did not answer).
    #[error("no active controller: {0}")]
    NotController(String),
}
