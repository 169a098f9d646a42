//! The Cauce broker: a Kafka-compatible server over the Kafka wire protocol.
//!
//! Layout:
//! - [`config`]: the one configuration struct, read from TOML with Kafka's key names; each key
//!   is one entry of a table, from which parsing, DescribeConfigs and `config/cauce.toml` come.
//! - [`server`]: starts everything, accepts connections, runs background tasks, shuts down.
//! - [`connection`]: one client connection: frames in, handlers in order, responses out.
//! - [`handlers`]: one module per API area; each decodes its request and encodes its response.
//! - [`partition`]: a hosted partition: its log, long-poll signal and group commit.
//! - [`backend`]: keeps the hosted partitions in step with the metadata image.
//! - [`errors`]: the one table from internal errors to Kafka error codes.
//! - [`group`]: the group coordinator: membership, rebalances, committed offsets.
//! - [`coordinator_runtime`]: what every coordinator runs on: an internal topic's partitions as
//!   shards with a lock each, loaded when led, written to and replicated.
//! - [`metrics`]: request and traffic series in a Prometheus recorder, scrape-time values, and
//!   the `/metrics` endpoint (`metrics.listen`).
//! - [`http`]: the HTTP stack (axum) every endpoint is served with.
//! - [`shutdown`]: the signal that stops listeners and connections.
//! - [`limits`]: connections per address and in all, and the bytes of requests in flight.

pub mod backend;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod coordinator_runtime;
pub mod errors;
pub mod group;
pub mod handlers;
pub mod high_watermarks;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod partition;
pub mod replica;
pub mod replication;
pub mod server;
pub mod shutdown;
pub mod splice;

use std::sync::Arc;

use cauce_metadata::MetadataManager;
use parking_lot::Mutex;
use thiserror::Error;

pub use config::BrokerConfig;
pub use server::Server;

/// Errors that stop the broker from starting or running.
#[derive(Debug, Error)]
pub enum BrokerError {
    /// The configuration is not usable.
    #[error("configuration: {0}")]
    Config(String),
    /// A socket or file operation failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The metadata log failed.
    #[error("metadata: {0}")]
    Metadata(#[from] cauce_metadata::MetadataError),
    /// A partition's log failed to open or close.
    #[error("log: {0}")]
    Log(#[from] cauce_log::LogError),
}

/// State every connection and handler shares.
pub struct Broker {
    /// The configuration the broker started with.
    pub config: BrokerConfig,
    /// Writes and publishes cluster metadata.
    pub metadata: MetadataManager,
    /// The partitions hosted here.
    pub logs: backend::LogBackend,
    /// Consumer groups and committed offsets.
    pub groups: group::GroupCoordinator,
    /// Request counters and the connection gauge, for `/metrics`.
    pub metrics: metrics::BrokerMetrics,
    /// This node's member of the controller quorum; `None` for a single node.
    pub quorum: Option<cauce_metadata::quorum::Quorum>,
    /// Set once shutdown begins: the broker stops heartbeating, so that a controlled shutdown
    /// is not undone by its own next heartbeat.
    pub stopping: std::sync::atomic::AtomicBool,
    /// This run of the broker process, sent when it registers: a registration from a new run
    /// tells the controller the broker restarted.
    pub incarnation: uuid::Uuid,
    /// Producer ids handed out but not yet used: the rest of the block reserved in the metadata log.
    producer_ids: Mutex<std::ops::Range<i64>>,
    /// The bytes of requests read but not yet answered (`queued.max.request.bytes`).
    pub request_memory: limits::RequestMemory,
    /// Open connections, in all and per address (`max.connections`, `max.connections.per.ip`).
    pub connection_limits: Arc<limits::ConnectionLimits>,
}

/// How many producer ids one metadata record reserves.
const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

impl Broker {
    /// Shares the broker with handlers.
    pub fn new(
        config: BrokerConfig,
        metadata: MetadataManager,
        logs: backend::LogBackend,
        quorum: Option<cauce_metadata::quorum::Quorum>,
    ) -> Arc<Broker> {
        let settings = group::coordinator::CoordinatorSettings {
            limits: group::state::GroupLimits {
                min_session_timeout_ms: config.group_min_session_timeout_ms,
                max_session_timeout_ms: config.group_max_session_timeout_ms,
                initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
            },
            consumer_limits: group::consumer_group::ConsumerGroupLimits {
                session_timeout_ms: config.group_consumer_session_timeout_ms,
                heartbeat_interval_ms: config.group_consumer_heartbeat_interval_ms,
            },
            offsets_partitions: config.offsets_topic_num_partitions,
            offsets_replication_factor: config.offsets_topic_replication_factor,
            offsets_retention_ms: config.offsets_retention_minutes.saturating_mul(60_000),
            offsets_segment_bytes: config.offsets_topic_segment_bytes,
            offset_metadata_max_bytes: config.offset_metadata_max_bytes,
        };
        let groups = group::GroupCoordinator::new(settings);
        let request_memory = limits::RequestMemory::new(config.queued_max_request_bytes);
        let connection_limits = limits::ConnectionLimits::new(
            config.max_connections,
            config.max_connections_per_ip,
            config
                .max_connections_per_ip_overrides
                .iter()
                .map(|(address, count)| (*address, *count))
                .collect(),
        );
        Arc::new(Broker {
            config,
            metadata,
            logs,
            groups,
            metrics: metrics::BrokerMetrics::default(),
            quorum,
            stopping: std::sync::atomic::AtomicBool::new(false),
            incarnation: uuid::Uuid::new_v4(),
            producer_ids: Mutex::new(0..0),
            request_memory,
            connection_limits,
        })
    }

    /// Hands out a producer id that no other producer of this cluster has had.
    pub fn next_producer_id(&self) -> Result<i64, BrokerError> {
        let mut ids = self.producer_ids.lock();
        if ids.is_empty() {
            *ids = self
                .metadata
                .allocate_producer_ids(PRODUCER_ID_BLOCK_SIZE)?;
        }
        let id = ids.start;
        ids.start += 1;
        Ok(id)
    }

    /// Applies the current metadata image to the hosted partitions.
    pub fn sync_logs(&self) -> Result<(), BrokerError> {
        self.logs.apply(&self.metadata.image())
    }
}

/// Milliseconds since the Unix epoch, as Kafka timestamps are.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}
