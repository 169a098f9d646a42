//! The cluster's metadata as an ordered log of records applied to an immutable image.
//!
//! # Layout
//!
//! In the order a change meets them:
//! - [`command`]: the changes brokers ask the active controller for, serialisable for forwarding.
//! - [`manager`]: decides what a command changes, split by area as Kafka's control managers
//!   (`topics`, `configs`, `brokers`, `partitions` for ISR changes and elections,
//!   `reassignment`), commits the records through a `RecordLog` (`record_log`), and publishes
//!   the new image.
//! - [`liveness`]: which brokers the active controller has heard from, and which to fence.
//! - [`topic_config`]: the topic configuration keys, their defaults and their validation.
//! - [`record`]: the metadata records (topics, partitions, brokers, configs).
//! - [`image`]: the read-only view that applying those records produces.
//! - [`store`]: a single node's metadata log file, under `LocalLog`.
//! - [`quorum`]: the metadata log replicated across the controller voters with openraft.
//! - [`framing`]: the `length | crc32c | payload` framing both log files use.
//! - [`fuzzing`]: entry points for the fuzz targets; not an API.
//!
//! A single node is its own controller, and every change still goes through the manager and a
//! `RecordLog`: a cluster swaps the single node's `LocalLog` for the quorum's log (`QuorumLog`,
//! in the broker) and the callers stay the same.

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
