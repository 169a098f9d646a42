//! The Cauce broker: a Kafka-compatible server over the Kafka wire protocol.
//!
//! # Layout
//!
//! Roughly in the order a request meets them:
//! - [`server`]: starts everything (metadata, hosted logs, the applier, background tasks),
//!   accepts connections, and shuts down.
//! - [`connection`]: one client connection: a reader task that parses frames and runs handlers
//!   in arrival order, a writer task that writes the replies in that order.
//! - [`limits`]: connections per address and in all, and the bytes of requests in flight
//!   (`queued.max.request.bytes`).
//! - [`handlers`]: dispatch, and one module per API area; each decodes its request, calls the
//!   part that serves it, and encodes its response.
//! - [`splice`]: response frames in parts, so that Fetch does not copy record bytes.
//! - [`replica_manager`]: the one owner of a partition's path (Kafka's ReplicaManager): the
//!   hosted partitions, appends and their acknowledgement, reads and long polls, follower
//!   progress.
//! - [`partition`]: a hosted partition: its log, high watermark, long-poll signals and group
//!   commit; [`replica`] is its leader's bookkeeping of the followers and the ISR.
//! - [`high_watermarks`]: the high-watermark checkpoint file (`replication-offset-checkpoint`).
//! - [`replication`]: the metadata applier (the hosted partitions and coordinators follow each
//!   image) and the follower fetchers.
//! - [`cluster`]: the metadata log over the controller quorum, forwarding to the active
//!   controller, registration, heartbeats, fencing, ISR changes, controlled shutdown.
//! - [`coordinator_runtime`]: what every coordinator runs on: an internal topic's partitions as
//!   shards with a lock each, loaded when led, written to and replicated.
//! - [`group`]: the group coordinator: membership, rebalances, committed offsets.
//! - [`errors`]: the one table from internal errors to Kafka error codes.
//! - [`config`]: the one configuration struct, read from TOML with Kafka's key names; each key
//!   is one entry of a table, from which parsing, DescribeConfigs and `config/cauce.toml` come.
//! - [`metrics`]: request and traffic series in a Prometheus recorder, scrape-time values, and
//!   the `/metrics` endpoint (`metrics.listen`).
//! - [`http`]: the HTTP stack (axum over hyper) every endpoint is served with.
//! - [`shutdown`]: the signal that stops listeners and connections.
//!
//! `docs/ARCHITECTURE.md` follows a Produce, a Fetch and a CreateTopics through these modules.

pub(crate) mod cluster;
pub(crate) mod config;
pub(crate) mod connection;
pub(crate) mod coordinator_runtime;
pub(crate) mod errors;
pub mod group;
pub(crate) mod handlers;
pub(crate) mod high_watermarks;
pub(crate) mod http;
pub(crate) mod limits;
pub(crate) mod metrics;
pub(crate) mod partition;
pub(crate) mod replica;
pub(crate) mod replica_manager;
pub(crate) mod replication;
pub(crate) mod server;
pub(crate) mod shutdown;
pub(crate) mod splice;
// Public for the fuzz target of its records, as group::records is.
pub mod txn;

use std::sync::Arc;

use cauce_metadata::{MetadataImage, MetadataManager};
use thiserror::Error;
use tokio::sync::watch;

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
pub(crate) struct Broker {
    /// The configuration the broker started with.
    pub config: BrokerConfig,
    /// Writes and publishes cluster metadata.
    pub metadata: MetadataManager,
    /// The partitions hosted here.
    pub replicas: replica_manager::ReplicaManager,
    /// Consumer groups and committed offsets.
    pub groups: group::GroupCoordinator,
    /// Transactional ids and their transactions.
    pub transactions: txn::TxnCoordinator,
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
    /// Producer ids handed out but not yet used: the rest of the block reserved in the metadata
    /// log (held while a new block is reserved, so that one reservation serves every waiter).
    producer_ids: tokio::sync::Mutex<std::ops::Range<i64>>,
    /// How many metadata records the hosted logs and coordinators reflect: the image the
    /// metadata applier last finished applying.
    logs_applied: watch::Sender<u64>,
    /// The bytes of requests read but not yet answered (`queued.max.request.bytes`).
    pub request_memory: limits::RequestMemory,
    /// Open connections, in all and per address (`max.connections`, `max.connections.per.ip`).
    pub connection_limits: Arc<limits::ConnectionLimits>,
}

/// How long a metadata change's answer waits for the hosted logs to reflect it.
const LOGS_APPLY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// How many producer ids one metadata record reserves.
const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

impl Broker {
    /// Shares the broker with handlers.
    pub fn new(
        config: BrokerConfig,
        metadata: MetadataManager,
        replicas: replica_manager::ReplicaManager,
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
        let transactions = txn::TxnCoordinator::new(txn::TxnSettings {
            partitions: config.transaction_state_log_num_partitions,
            replication_factor: config.transaction_state_log_replication_factor,
            min_isr: config.transaction_state_log_min_isr,
            segment_bytes: config.transaction_state_log_segment_bytes,
            max_timeout_ms: config.transaction_max_timeout_ms,
            id_expiration_ms: config.transactional_id_expiration_ms,
        });
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
            replicas,
            groups,
            transactions,
            metrics: metrics::BrokerMetrics::default(),
            quorum,
            stopping: std::sync::atomic::AtomicBool::new(false),
            incarnation: uuid::Uuid::new_v4(),
            producer_ids: tokio::sync::Mutex::new(0..0),
            logs_applied: watch::Sender::new(0),
            request_memory,
            connection_limits,
        })
    }

    /// Hands out a producer id that no other producer of this cluster has had.
    pub async fn next_producer_id(&self) -> Result<i64, BrokerError> {
        let mut ids = self.producer_ids.lock().await;
        if ids.is_empty() {
            *ids = self
                .metadata
                .allocate_producer_ids(PRODUCER_ID_BLOCK_SIZE)
                .await?;
        }
        let id = ids.start;
        ids.start += 1;
        Ok(id)
    }

    /// Makes the hosted partitions and the coordinators match `image`: opens, closes and
    /// reconfigures logs, moves leaderships, loads and unloads coordinator shards. Blocking (it
    /// opens files and replays partitions); only the metadata applier and the start call it.
    pub fn apply_metadata(&self, image: &MetadataImage) -> Result<(), BrokerError> {
        let applied = self
            .replicas
            .apply(image)
            .and_then(|()| self.groups.follow_leadership(self))
            .and_then(|()| self.transactions.follow_leadership(self));
        // Sent even after a failure (logged by the caller): waiters answer with what is hosted.
        self.logs_applied.send_replace(image.records_applied);
        applied
    }

    /// Waits until the hosted logs reflect the metadata image as this node has it now, so that
    /// a topic just created can be written at once; [`LOGS_APPLY_WAIT`] at most, after which
    /// clients get the retriable errors of a partition not hosted yet.
    pub async fn logs_caught_up(&self) {
        let wanted = self.metadata.image().records_applied;
        let mut applied = self.logs_applied.subscribe();
        let caught_up = applied.wait_for(|applied| *applied >= wanted);
        if tokio::time::timeout(LOGS_APPLY_WAIT, caught_up)
            .await
            .is_err()
        {
            tracing::warn!(
                records = wanted,
                "the hosted logs still trail the metadata image"
            );
        }
    }
}

/// Milliseconds since the Unix epoch, as Kafka timestamps are.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}
