//! The broker's configuration: one struct, read from a TOML file with Kafka's key names.
//!
//! Keys are written as in Kafka's `server.properties`; TOML turns `log.retention.ms = 1` into
//! nested tables, which are flattened back into dotted names here, so both `log.retention.ms = 1`
//! and `"log.retention.ms" = 1` work. `config/cauce.toml` lists every key with its default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use cauce_metadata::topic_config::{validate_value, ConfigKind, TOPIC_CONFIGS};

use crate::BrokerError;

/// Everything the broker reads from its configuration.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// This node's id in the cluster (`node.id`).
    pub node_id: i32,
    /// Address the Kafka listener binds (`listeners`).
    pub listen: SocketAddr,
    /// Address given to clients in Metadata (`advertised.listeners`); defaults to `listen`.
    pub advertised: Option<(String, u16)>,
    /// Where partitions and the metadata log live (`log.dirs`).
    pub data_dir: PathBuf,
    /// Whether Metadata requests create unknown topics (`auto.create.topics.enable`).
    pub auto_create_topics: bool,
    /// Partitions of an auto-created topic or one created with -1 (`num.partitions`).
    pub num_partitions: i32,
    /// Replicas of a topic created with -1 (`default.replication.factor`).
    pub default_replication_factor: i16,
    /// Largest request accepted; a bigger size prefix closes the connection (`socket.request.max.bytes`).
    pub socket_request_max_bytes: usize,
    /// Bytes of requests read but not yet answered, across all connections
    /// (`queued.max.request.bytes`); a frame waits for room before it is read.
    pub queued_max_request_bytes: usize,
    /// Connections the listener keeps open at once; at the limit it stops accepting
    /// (`max.connections`).
    pub max_connections: usize,
    /// Connections one client address may have open; more are closed at once
    /// (`max.connections.per.ip`).
    pub max_connections_per_ip: usize,
    /// Per-address exceptions to `max.connections.per.ip`
    /// (`max.connections.per.ip.overrides`, `address:count,...`).
    pub max_connections_per_ip_overrides: BTreeMap<std::net::IpAddr, usize>,
    /// A connection with no request for this long is closed (`connections.max.idle.ms`).
    pub connections_max_idle_ms: u64,
    /// Once a frame's size has been read, the rest must arrive (and find room in
    /// `queued.max.request.bytes`) within this long, or the connection is closed (`socket.request.read.timeout.ms`, Cauce's own: a client gives up on
    /// a request after its `request.timeout.ms` anyway).
    pub socket_request_read_timeout_ms: u64,
    /// How often retention runs (`log.retention.check.interval.ms`).
    pub retention_check_interval_ms: u64,
    /// Requests a connection may have in flight before the broker stops reading from it.
    pub max_in_flight_requests_per_connection: usize,
    /// Whether DeleteTopics is allowed (`delete.topic.enable`).
    pub delete_topic_enable: bool,
    /// Partitions of `__consumer_offsets` (`offsets.topic.num.partitions`).
    pub offsets_topic_num_partitions: i32,
    /// Copies of each `__consumer_offsets` partition (`offsets.topic.replication.factor`); a
    /// single node uses as many as it has brokers (one).
    pub offsets_topic_replication_factor: i16,
    /// Segment size of `__consumer_offsets` (`offsets.topic.segment.bytes`).
    pub offsets_topic_segment_bytes: i64,
    /// How long an empty group keeps its offsets (`offsets.retention.minutes`).
    pub offsets_retention_minutes: i64,
    /// Largest commit metadata string (`offset.metadata.max.bytes`).
    pub offset_metadata_max_bytes: usize,
    /// How long a new group waits for more members (`group.initial.rebalance.delay.ms`).
    pub group_initial_rebalance_delay_ms: i32,
    /// Smallest session timeout a member may ask for (`group.min.session.timeout.ms`).
    pub group_min_session_timeout_ms: i32,
    /// Largest session timeout a member may ask for (`group.max.session.timeout.ms`).
    pub group_max_session_timeout_ms: i32,
    /// Session timeout of KIP-848 consumer group members (`group.consumer.session.timeout.ms`).
    pub group_consumer_session_timeout_ms: i32,
    /// Heartbeat interval given to KIP-848 members (`group.consumer.heartbeat.interval.ms`).
    pub group_consumer_heartbeat_interval_ms: i32,
    /// Whether compacted topics are cleaned (`log.cleaner.enable`).
    pub log_cleaner_enable: bool,
    /// How often the cleaner looks for logs due for compaction (`log.cleaner.backoff.ms`).
    pub log_cleaner_backoff_ms: u64,
    /// Where `/metrics` is served over HTTP (`metrics.listen`); `None` (empty) serves nothing, so
    /// that several brokers and tests on one host do not fight over a fixed port.
    pub metrics_listen: Option<SocketAddr>,
    /// The log filter when RUST_LOG is unset (`logging.level`), e.g. `info` or `cauce_broker=debug`.
    pub logging_level: String,
    /// Broker-level defaults for topic configs (`log.retention.ms`, `message.max.bytes`, ...).
    pub topic_defaults: BTreeMap<String, String>,
    /// The controller voters by node id, with their controller listener addresses
    /// (`controller.quorum.voters`, `1@host:port,2@host:port`). Empty: a single node whose
    /// metadata log is its own file.
    pub quorum_voters: BTreeMap<i32, String>,
    /// Address the controller listener binds: the `listeners` entry named by
    /// `controller.listener.names`. Needed when this node is a voter of a multi-node quorum.
    pub controller_listen: Option<SocketAddr>,
    /// The listener name that marks the controller listener (`controller.listener.names`).
    pub controller_listener_name: String,
    /// How often a broker heartbeats to the active controller (`broker.heartbeat.interval.ms`).
    pub broker_heartbeat_interval_ms: u64,
    /// How long the controller waits for a heartbeat before fencing a broker
    /// (`broker.session.timeout.ms`).
    pub broker_session_timeout_ms: u64,
    /// How long a follower may go without catching up before it leaves the ISR
    /// (`replica.lag.time.max.ms`).
    pub replica_lag_time_max_ms: u64,
    /// How often every hosted partition's high watermark is written to disk
    /// (`replica.high.watermark.checkpoint.interval.ms`).
    pub replica_high_watermark_checkpoint_interval_ms: u64,
    /// How long a follower's fetch waits for new data at the leader (`replica.fetch.wait.max.ms`).
    pub replica_fetch_wait_max_ms: i32,
    /// Bytes a follower asks for per partition (`replica.fetch.max.bytes`).
    pub replica_fetch_max_bytes: i32,
    /// Whether the active controller gives leaderships back to preferred replicas
    /// (`auto.leader.rebalance.enable`).
    pub auto_leader_rebalance_enable: bool,
    /// How often it looks (`leader.imbalance.check.interval.seconds`).
    pub leader_imbalance_check_interval_seconds: u64,
}

/// The log filter by default: Cauce's events at info; the raft library's own lines are left
/// out, since it reports routine elections and unreachable peers as warnings and errors, and
/// the broker logs the quorum's changes itself.
pub const DEFAULT_LOGGING_LEVEL: &str = "info,openraft=off";

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            node_id: 1,
            listen: "127.0.0.1:9092".parse().expect("static address"),
            advertised: None,
            data_dir: PathBuf::from("./cauce-data"),
            auto_create_topics: true,
            num_partitions: 1,
            default_replication_factor: 1,
            socket_request_max_bytes: 104_857_600,
            queued_max_request_bytes: 512 * 1024 * 1024,
            max_connections: 65_536,
            max_connections_per_ip: 65_536,
            max_connections_per_ip_overrides: BTreeMap::new(),
            connections_max_idle_ms: 600_000,
            socket_request_read_timeout_ms: 30_000,
            retention_check_interval_ms: 300_000,
            max_in_flight_requests_per_connection: 64,
            delete_topic_enable: true,
            offsets_topic_num_partitions: 50,
            offsets_topic_replication_factor: 3,
            offsets_topic_segment_bytes: 104_857_600,
            offsets_retention_minutes: 10_080,
            offset_metadata_max_bytes: 4096,
            group_initial_rebalance_delay_ms: 3000,
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            group_consumer_session_timeout_ms: 45_000,
            group_consumer_heartbeat_interval_ms: 5_000,
            log_cleaner_enable: true,
            log_cleaner_backoff_ms: 15_000,
            metrics_listen: None,
            logging_level: DEFAULT_LOGGING_LEVEL.to_string(),
            topic_defaults: BTreeMap::new(),
            quorum_voters: BTreeMap::new(),
            controller_listen: None,
            controller_listener_name: "CONTROLLER".to_string(),
            broker_heartbeat_interval_ms: 2_000,
            broker_session_timeout_ms: 9_000,
            replica_lag_time_max_ms: 30_000,
            replica_high_watermark_checkpoint_interval_ms: 5_000,
            replica_fetch_wait_max_ms: 500,
            replica_fetch_max_bytes: 1_048_576,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_seconds: 300,
        }
    }
}

/// A broker-level key (other than the topic defaults), for validation, DescribeConfigs and docs.
#[derive(Debug, Clone, Copy)]
pub struct BrokerKeyDef {
    /// Kafka's name for the key.
    pub name: &'static str,
    /// The value type DescribeConfigs reports.
    pub kind: ConfigKind,
    /// One line of documentation.
    pub doc: &'static str,
}

/// Every broker-level key [`BrokerConfig::set`] takes besides the topic defaults.
pub const BROKER_KEYS: &[BrokerKeyDef] = &[
    BrokerKeyDef {
        name: "node.id",
        kind: ConfigKind::Int,
        doc: "this node's id",
    },
    BrokerKeyDef {
        name: "listeners",
        kind: ConfigKind::List,
        doc: "addresses the broker listens on",
    },
    BrokerKeyDef {
        name: "advertised.listeners",
        kind: ConfigKind::List,
        doc: "addresses given to clients",
    },
    BrokerKeyDef {
        name: "log.dirs",
        kind: ConfigKind::String,
        doc: "where data is stored",
    },
    BrokerKeyDef {
        name: "auto.create.topics.enable",
        kind: ConfigKind::Boolean,
        doc: "create unknown topics on Metadata",
    },
    BrokerKeyDef {
        name: "delete.topic.enable",
        kind: ConfigKind::Boolean,
        doc: "allow DeleteTopics",
    },
    BrokerKeyDef {
        name: "num.partitions",
        kind: ConfigKind::Int,
        doc: "partitions of a new topic",
    },
    BrokerKeyDef {
        name: "default.replication.factor",
        kind: ConfigKind::Int,
        doc: "replicas of a new topic",
    },
    BrokerKeyDef {
        name: "socket.request.max.bytes",
        kind: ConfigKind::Int,
        doc: "largest request",
    },
    BrokerKeyDef {
        name: "queued.max.request.bytes",
        kind: ConfigKind::Long,
        doc: "bytes of requests read but not yet answered",
    },
    BrokerKeyDef {
        name: "max.connections",
        kind: ConfigKind::Int,
        doc: "connections open at once",
    },
    BrokerKeyDef {
        name: "max.connections.per.ip",
        kind: ConfigKind::Int,
        doc: "connections open at once from one address",
    },
    BrokerKeyDef {
        name: "max.connections.per.ip.overrides",
        kind: ConfigKind::String,
        doc: "per-address exceptions, address:count,...",
    },
    BrokerKeyDef {
        name: "connections.max.idle.ms",
        kind: ConfigKind::Long,
        doc: "idle time after which a connection is closed",
    },
    BrokerKeyDef {
        name: "socket.request.read.timeout.ms",
        kind: ConfigKind::Long,
        doc: "time a started request has to arrive whole",
    },
    BrokerKeyDef {
        name: "log.retention.check.interval.ms",
        kind: ConfigKind::Long,
        doc: "how often retention runs",
    },
    BrokerKeyDef {
        name: "queued.max.requests",
        kind: ConfigKind::Int,
        doc: "requests in flight per connection",
    },
    BrokerKeyDef {
        name: "offsets.topic.num.partitions",
        kind: ConfigKind::Int,
        doc: "partitions of __consumer_offsets",
    },
    BrokerKeyDef {
        name: "offsets.topic.replication.factor",
        kind: ConfigKind::Int,
        doc: "copies of each __consumer_offsets partition",
    },
    BrokerKeyDef {
        name: "offsets.topic.segment.bytes",
        kind: ConfigKind::Int,
        doc: "segment size of __consumer_offsets",
    },
    BrokerKeyDef {
        name: "offsets.retention.minutes",
        kind: ConfigKind::Int,
        doc: "how long an empty group keeps its offsets",
    },
    BrokerKeyDef {
        name: "offset.metadata.max.bytes",
        kind: ConfigKind::Int,
        doc: "largest commit metadata",
    },
    BrokerKeyDef {
        name: "group.initial.rebalance.delay.ms",
        kind: ConfigKind::Int,
        doc: "how long a new group waits for more members",
    },
    BrokerKeyDef {
        name: "group.min.session.timeout.ms",
        kind: ConfigKind::Int,
        doc: "smallest session timeout",
    },
    BrokerKeyDef {
        name: "group.max.session.timeout.ms",
        kind: ConfigKind::Int,
        doc: "largest session timeout",
    },
    BrokerKeyDef {
        name: "group.consumer.session.timeout.ms",
        kind: ConfigKind::Int,
        doc: "session timeout of KIP-848 consumer group members",
    },
    BrokerKeyDef {
        name: "group.consumer.heartbeat.interval.ms",
        kind: ConfigKind::Int,
        doc: "heartbeat interval of KIP-848 consumer group members",
    },
    BrokerKeyDef {
        name: "log.cleaner.enable",
        kind: ConfigKind::Boolean,
        doc: "whether compacted topics are cleaned",
    },
    BrokerKeyDef {
        name: "log.cleaner.backoff.ms",
        kind: ConfigKind::Long,
        doc: "how often the cleaner looks for logs to compact",
    },
    BrokerKeyDef {
        name: "metrics.listen",
        kind: ConfigKind::String,
        doc: "HOST:PORT serving Prometheus metrics at /metrics; empty for none",
    },
    BrokerKeyDef {
        name: "logging.level",
        kind: ConfigKind::String,
        doc: "log filter when RUST_LOG is unset",
    },
    BrokerKeyDef {
        name: "controller.quorum.voters",
        kind: ConfigKind::List,
        doc: "controller voters as ID@HOST:PORT; empty for a single node",
    },
    BrokerKeyDef {
        name: "controller.listener.names",
        kind: ConfigKind::String,
        doc: "name of the listeners entry the controller listens on",
    },
    BrokerKeyDef {
        name: "broker.heartbeat.interval.ms",
        kind: ConfigKind::Long,
        doc: "how often a broker heartbeats to the active controller",
    },
    BrokerKeyDef {
        name: "broker.session.timeout.ms",
        kind: ConfigKind::Long,
        doc: "how long without heartbeats before the controller fences a broker",
    },
    BrokerKeyDef {
        name: "replica.lag.time.max.ms",
        kind: ConfigKind::Long,
        doc: "how long a follower may lag before it leaves the ISR",
    },
    BrokerKeyDef {
        name: "replica.high.watermark.checkpoint.interval.ms",
        kind: ConfigKind::Long,
        doc: "how often the partitions' high watermarks are written to disk",
    },
    BrokerKeyDef {
        name: "replica.fetch.wait.max.ms",
        kind: ConfigKind::Int,
        doc: "how long a follower's fetch waits at the leader for new data",
    },
    BrokerKeyDef {
        name: "replica.fetch.max.bytes",
        kind: ConfigKind::Int,
        doc: "bytes a follower fetches per partition",
    },
    BrokerKeyDef {
        name: "auto.leader.rebalance.enable",
        kind: ConfigKind::Boolean,
        doc: "whether leaderships go back to preferred replicas",
    },
    BrokerKeyDef {
        name: "leader.imbalance.check.interval.seconds",
        kind: ConfigKind::Long,
        doc: "how often preferred leaders are restored",
    },
];

impl BrokerConfig {
    /// Sets `listeners`: the entry named by `controller.listener.names` is the controller
    /// listener, the first other one the Kafka listener. A later `controller.listener.names`
    /// does not re-split an earlier `listeners`; set the name first, or use the default.
    fn set_listeners(&mut self, value: &str) -> Result<(), std::net::AddrParseError> {
        let mut kafka = None;
        for entry in value
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
        {
            let name = entry.split_once("://").map(|(name, _)| name);
            let address = parse_listener(entry)?;
            if name == Some(self.controller_listener_name.as_str()) {
                self.controller_listen = Some(address);
            } else if kafka.is_none() {
                kafka = Some(address);
            }
        }
        if let Some(address) = kafka {
            self.listen = address;
        }
        Ok(())
    }

    /// Whether this node runs with a replicated metadata quorum rather than a local log.
    pub fn is_clustered(&self) -> bool {
        !self.quorum_voters.is_empty()
    }

    /// The current value of a key of [`BROKER_KEYS`], as text.
    pub fn broker_key_value(&self, key: &str) -> Option<String> {
        let (host, port) = self.advertised_address();
        Some(match key {
            "node.id" => self.node_id.to_string(),
            "listeners" => match self.controller_listen {
                Some(controller) => format!(
                    "PLAINTEXT://{},{}://{controller}",
                    self.listen, self.controller_listener_name
                ),
                None => format!("PLAINTEXT://{}", self.listen),
            },
            "controller.quorum.voters" => self
                .quorum_voters
                .iter()
                .map(|(id, address)| format!("{id}@{address}"))
                .collect::<Vec<_>>()
                .join(","),
            "controller.listener.names" => self.controller_listener_name.clone(),
            "broker.heartbeat.interval.ms" => self.broker_heartbeat_interval_ms.to_string(),
            "broker.session.timeout.ms" => self.broker_session_timeout_ms.to_string(),
            "replica.lag.time.max.ms" => self.replica_lag_time_max_ms.to_string(),
            "replica.high.watermark.checkpoint.interval.ms" => self
                .replica_high_watermark_checkpoint_interval_ms
                .to_string(),
            "replica.fetch.wait.max.ms" => self.replica_fetch_wait_max_ms.to_string(),
            "replica.fetch.max.bytes" => self.replica_fetch_max_bytes.to_string(),
            "auto.leader.rebalance.enable" => self.auto_leader_rebalance_enable.to_string(),
            "leader.imbalance.check.interval.seconds" => {
                self.leader_imbalance_check_interval_seconds.to_string()
            }
            "advertised.listeners" => format!("PLAINTEXT://{host}:{port}"),
            "log.dirs" => self.data_dir.display().to_string(),
            "auto.create.topics.enable" => self.auto_create_topics.to_string(),
            "delete.topic.enable" => self.delete_topic_enable.to_string(),
            "num.partitions" => self.num_partitions.to_string(),
            "default.replication.factor" => self.default_replication_factor.to_string(),
            "socket.request.max.bytes" => self.socket_request_max_bytes.to_string(),
            "queued.max.request.bytes" => self.queued_max_request_bytes.to_string(),
            "max.connections" => self.max_connections.to_string(),
            "max.connections.per.ip" => self.max_connections_per_ip.to_string(),
            "max.connections.per.ip.overrides" => self
                .max_connections_per_ip_overrides
                .iter()
                .map(|(address, count)| format!("{address}:{count}"))
                .collect::<Vec<_>>()
                .join(","),
            "connections.max.idle.ms" => self.connections_max_idle_ms.to_string(),
            "socket.request.read.timeout.ms" => self.socket_request_read_timeout_ms.to_string(),
            "log.retention.check.interval.ms" => self.retention_check_interval_ms.to_string(),
            "queued.max.requests" => self.max_in_flight_requests_per_connection.to_string(),
            "offsets.topic.num.partitions" => self.offsets_topic_num_partitions.to_string(),
            "offsets.topic.replication.factor" => self.offsets_topic_replication_factor.to_string(),
            "offsets.topic.segment.bytes" => self.offsets_topic_segment_bytes.to_string(),
            "offsets.retention.minutes" => self.offsets_retention_minutes.to_string(),
            "offset.metadata.max.bytes" => self.offset_metadata_max_bytes.to_string(),
            "group.initial.rebalance.delay.ms" => self.group_initial_rebalance_delay_ms.to_string(),
            "group.min.session.timeout.ms" => self.group_min_session_timeout_ms.to_string(),
            "group.max.session.timeout.ms" => self.group_max_session_timeout_ms.to_string(),
            "group.consumer.session.timeout.ms" => {
                self.group_consumer_session_timeout_ms.to_string()
            }
            "group.consumer.heartbeat.interval.ms" => {
                self.group_consumer_heartbeat_interval_ms.to_string()
            }
            "log.cleaner.enable" => self.log_cleaner_enable.to_string(),
            "log.cleaner.backoff.ms" => self.log_cleaner_backoff_ms.to_string(),
            "metrics.listen" => self
                .metrics_listen
                .map_or_else(String::new, |address| address.to_string()),
            "logging.level" => self.logging_level.clone(),
            _ => return None,
        })
    }

    /// Reads a TOML file with Kafka key names.
    pub fn from_file(path: &Path) -> Result<BrokerConfig, BrokerError> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            BrokerError::Config(format!("cannot read {}: {error}", path.display()))
        })?;
        BrokerConfig::from_toml(&text)
    }

    /// Parses TOML text with Kafka key names; unknown keys and bad values are errors.
    pub fn from_toml(text: &str) -> Result<BrokerConfig, BrokerError> {
        let table: toml::Table = toml::from_str(text)
            .map_err(|error| BrokerError::Config(format!("config is not valid TOML: {error}")))?;
        let mut flat = BTreeMap::new();
        flatten("", &table, &mut flat);
        let mut config = BrokerConfig::default();
        for (key, value) in flat {
            config.set(&key, &value)?;
        }
        Ok(config)
    }

    /// Sets one key from its textual value.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), BrokerError> {
        let bad = |expected: &str| {
            BrokerError::Config(format!(
                "invalid value '{value}' for '{key}': expected {expected}"
            ))
        };
        match key {
            "node.id" => self.node_id = value.parse().map_err(|_| bad("an integer"))?,
            "listeners" => self
                .set_listeners(value)
                .map_err(|_| bad("[NAME://]HOST:PORT,..."))?,
            "controller.quorum.voters" => {
                self.quorum_voters = parse_voters(value).map_err(|_| bad("ID@HOST:PORT,..."))?
            }
            "controller.listener.names" => self.controller_listener_name = value.trim().to_string(),
            "broker.heartbeat.interval.ms" => {
                self.broker_heartbeat_interval_ms =
                    value.parse().map_err(|_| bad("milliseconds"))?
            }
            "broker.session.timeout.ms" => {
                self.broker_session_timeout_ms = value.parse().map_err(|_| bad("milliseconds"))?
            }
            "auto.leader.rebalance.enable" => {
                self.auto_leader_rebalance_enable =
                    value.parse().map_err(|_| bad("true or false"))?
            }
            "leader.imbalance.check.interval.seconds" => {
                self.leader_imbalance_check_interval_seconds = value
                    .parse()
                    .ok()
                    .filter(|seconds: &u64| *seconds >= 1)
                    .ok_or_else(|| bad("a number of seconds of at least 1"))?
            }
            "replica.lag.time.max.ms" => {
                self.replica_lag_time_max_ms = value.parse().map_err(|_| bad("milliseconds"))?
            }
            "replica.high.watermark.checkpoint.interval.ms" => {
                self.replica_high_watermark_checkpoint_interval_ms = value
                    .parse()
                    .ok()
                    .filter(|ms: &u64| *ms >= 1)
                    .ok_or_else(|| bad("milliseconds, at least 1"))?
            }
            "replica.fetch.wait.max.ms" => {
                self.replica_fetch_wait_max_ms = value.parse().map_err(|_| bad("milliseconds"))?
            }
            "replica.fetch.max.bytes" => {
                self.replica_fetch_max_bytes = value
                    .parse()
                    .ok()
                    .filter(|bytes: &i32| *bytes > 0)
                    .ok_or_else(|| bad("a positive number of bytes"))?
            }
            "advertised.listeners" => {
                let address = strip_listener_name(value);
                let (host, port) = address.rsplit_once(':').ok_or_else(|| bad("HOST:PORT"))?;
                self.advertised = Some((
                    host.to_string(),
                    port.parse().map_err(|_| bad("HOST:PORT"))?,
                ));
            }
            "log.dirs" | "log.dir" => self.data_dir = PathBuf::from(value),
            "auto.create.topics.enable" => {
                self.auto_create_topics = value.parse().map_err(|_| bad("true or false"))?
            }
            "delete.topic.enable" => {
                self.delete_topic_enable = value.parse().map_err(|_| bad("true or false"))?
            }
            "num.partitions" => {
                self.num_partitions = value
                    .parse()
                    .ok()
                    .filter(|count| *count >= 1)
                    .ok_or_else(|| bad("an integer of at least 1"))?
            }
            "default.replication.factor" => {
                self.default_replication_factor = value
                    .parse()
                    .ok()
                    .filter(|count| *count >= 1)
                    .ok_or_else(|| bad("an integer of at least 1"))?
            }
            "socket.request.max.bytes" => {
                self.socket_request_max_bytes = value
                    .parse()
                    .ok()
                    .filter(|size| *size >= 1024)
                    .ok_or_else(|| bad("an integer of at least 1024"))?
            }
            "queued.max.request.bytes" => {
                // Kafka's -1 (no limit) is accepted; the pool is then as large as it can be.
                self.queued_max_request_bytes = match value.trim() {
                    "-1" => usize::MAX,
                    other => other
                        .parse()
                        .ok()
                        .filter(|bytes| *bytes >= 1024)
                        .ok_or_else(|| bad("-1 or an integer of at least 1024"))?,
                }
            }
            "max.connections" => {
                self.max_connections = value
                    .parse()
                    .ok()
                    .filter(|count| *count >= 1)
                    .ok_or_else(|| bad("an integer of at least 1"))?
            }
            "max.connections.per.ip" => {
                self.max_connections_per_ip = value
                    .parse()
                    .ok()
                    .filter(|count| *count >= 1)
                    .ok_or_else(|| bad("an integer of at least 1"))?
            }
            "max.connections.per.ip.overrides" => {
                self.max_connections_per_ip_overrides =
                    parse_connection_overrides(value).ok_or_else(|| bad("address:count,..."))?
            }
            "connections.max.idle.ms" => {
                self.connections_max_idle_ms = value
                    .parse()
                    .ok()
                    .filter(|ms| *ms >= 1)
                    .ok_or_else(|| bad("an integer of at least 1"))?
            }
            "socket.request.read.timeout.ms" => {
                self.socket_request_read_timeout_ms = value
                    .parse()
                    .ok()
                    .filter(|ms| *ms >= 1)
                    .ok_or_else(|| bad("an integer of at least 1"))?
            }
            "log.retention.check.interval.ms" => {
                self.retention_check_interval_ms = value
                    .parse()
                    .ok()
                    .filter(|ms| *ms >= 1)
                    .ok_or_else(|| bad("an integer of at least 1"))?
            }
            "queued.max.requests" => {
                self.max_in_flight_requests_per_connection = value
                    .parse()
                    .ok()
                    .filter(|count| *count >= 1)
                    .ok_or_else(|| bad("an integer of at least 1"))?
            }
            "offsets.topic.num.partitions" => {
                self.offsets_topic_num_partitions =
                    at_least(value, 1).ok_or_else(|| bad("an integer of at least 1"))?
            }
            "offsets.topic.replication.factor" => {
                self.offsets_topic_replication_factor = value
                    .parse()
                    .ok()
                    .filter(|factor: &i16| *factor >= 1)
                    .ok_or_else(|| bad("an integer of at least 1"))?
            }
            "offsets.topic.segment.bytes" => {
                self.offsets_topic_segment_bytes =
                    at_least(value, 1024).ok_or_else(|| bad("an integer of at least 1024"))?
            }
            "offsets.retention.minutes" => {
                self.offsets_retention_minutes =
                    at_least(value, 1).ok_or_else(|| bad("an integer of at least 1"))?
            }
            "offset.metadata.max.bytes" => {
                self.offset_metadata_max_bytes =
                    at_least(value, 0).ok_or_else(|| bad("a non-negative integer"))?
            }
            "group.initial.rebalance.delay.ms" => {
                self.group_initial_rebalance_delay_ms =
                    at_least(value, 0).ok_or_else(|| bad("a non-negative integer"))?
            }
            "group.min.session.timeout.ms" => {
                self.group_min_session_timeout_ms =
                    at_least(value, 1).ok_or_else(|| bad("an integer of at least 1"))?
            }
            "group.max.session.timeout.ms" => {
                self.group_max_session_timeout_ms =
                    at_least(value, 1).ok_or_else(|| bad("an integer of at least 1"))?
            }
            "group.consumer.session.timeout.ms" => {
                self.group_consumer_session_timeout_ms =
                    at_least(value, 1).ok_or_else(|| bad("an integer of at least 1"))?
            }
            "group.consumer.heartbeat.interval.ms" => {
                self.group_consumer_heartbeat_interval_ms =
                    at_least(value, 1).ok_or_else(|| bad("an integer of at least 1"))?
            }
            "log.cleaner.enable" => {
                self.log_cleaner_enable = value.parse().map_err(|_| bad("true or false"))?
            }
            "log.cleaner.backoff.ms" => {
                self.log_cleaner_backoff_ms =
                    at_least(value, 1).ok_or_else(|| bad("an integer of at least 1"))?
            }
            "metrics.listen" => {
                self.metrics_listen = if value.trim().is_empty() {
                    None
                } else {
                    Some(parse_listener(value).map_err(|_| bad("HOST:PORT or an empty string"))?)
                }
            }
            "logging.level" => {
                if tracing_filter_is_valid(value) {
                    self.logging_level = value.to_string();
                } else {
                    return Err(bad(
                        "a log filter such as info, debug or cauce_broker=debug",
                    ));
                }
            }
            "log.retention.hours" | "log.retention.minutes" => {
                let unit_ms: i64 = if key.ends_with("hours") {
                    3_600_000
                } else {
                    60_000
                };
                let amount: i64 = value.parse().map_err(|_| bad("an integer"))?;
                let ms = if amount < 0 {
                    -1
                } else {
                    amount.saturating_mul(unit_ms)
                };
                self.topic_defaults
                    .entry("log.retention.ms".into())
                    .or_insert(ms.to_string());
            }
            _ => {
                let Some(def) = TOPIC_CONFIGS.iter().find(|def| def.broker_synonym == key) else {
                    return Err(BrokerError::Config(format!("unknown config key '{key}'")));
                };
                validate_value(def, value)
                    .map_err(|error| BrokerError::Config(error.to_string()))?;
                self.topic_defaults
                    .insert(key.to_string(), value.to_string());
            }
        }
        Ok(())
    }

    /// The host and port clients are told to connect to.
    pub fn advertised_address(&self) -> (String, u16) {
        self.advertised
            .clone()
            .unwrap_or_else(|| (self.listen.ip().to_string(), self.listen.port()))
    }
}

/// Whether a log filter has the shape `level` or `target=level` items separated by commas.
fn tracing_filter_is_valid(value: &str) -> bool {
    const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];
    !value.trim().is_empty()
        && value.split(',').all(|item| {
            let level = item
                .rsplit_once('=')
                .map_or(item, |(_, level)| level)
                .trim();
            LEVELS.contains(&level.to_ascii_lowercase().as_str())
        })
}

/// Parses a number that must be at least `min`.
fn at_least<T: std::str::FromStr + PartialOrd + From<u16>>(value: &str, min: u16) -> Option<T> {
    value
        .parse::<T>()
        .ok()
        .filter(|parsed| *parsed >= T::from(min))
}

/// Accepts `HOST:PORT` or Kafka's `NAME://HOST:PORT`.
/// Parses `controller.quorum.voters`: `ID@HOST:PORT` entries separated by commas.
fn parse_voters(value: &str) -> Result<BTreeMap<i32, String>, ()> {
    let mut voters = BTreeMap::new();
    for entry in value
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
    {
        let (id, address) = entry.split_once('@').ok_or(())?;
        let id: i32 = id.trim().parse().map_err(|_| ())?;
        let (host, port) = address.trim().rsplit_once(':').ok_or(())?;
        if host.is_empty() || port.parse::<u16>().is_err() || voters.contains_key(&id) {
            return Err(());
        }
        voters.insert(id, address.trim().to_string());
    }
    Ok(voters)
}

/// Parses one listener address, `[NAME://]HOST:PORT`, with `localhost` as 127.0.0.1.
pub fn parse_listener(value: &str) -> Result<SocketAddr, std::net::AddrParseError> {
    let address = strip_listener_name(value);
    let address = address
        .strip_prefix("localhost:")
        .map_or(address.to_string(), |port| format!("127.0.0.1:{port}"));
    address.parse()
}

fn strip_listener_name(value: &str) -> &str {
    let first = value.split(',').next().unwrap_or(value).trim();
    first
        .split_once("://")
        .map_or(first, |(_, address)| address)
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut BTreeMap<String, String>) {
    for (key, value) in table {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(inner) => flatten(&name, inner, out),
            toml::Value::String(text) => {
                out.insert(name, text.clone());
            }
            other => {
                out.insert(name, other.to_string());
            }
        }
    }
}

/// Parses `max.connections.per.ip.overrides`: `address:count` pairs separated by commas
/// (IPv6 addresses as `[::1]:5`); empty for none.
fn parse_connection_overrides(value: &str) -> Option<BTreeMap<std::net::IpAddr, usize>> {
    let mut overrides = BTreeMap::new();
    for entry in value
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
    {
        let (address, count) = entry.rsplit_once(':')?;
        let address = address.trim_start_matches('[').trim_end_matches(']');
        overrides.insert(address.parse().ok()?, count.parse().ok()?);
    }
    Some(overrides)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_kafka_keys_parse_with_or_without_quotes() {
        let config = BrokerConfig::from_toml(
            "node.id = 3\nlisteners = \"PLAINTEXT://127.0.0.1:9999\"\n\"log.retention.ms\" = 5\nlog.segment.bytes = 1048576\nauto.create.topics.enable = false\n",
        )
        .unwrap();
        assert_eq!(config.node_id, 3);
        assert_eq!(config.listen.port(), 9999);
        assert!(!config.auto_create_topics);
        assert_eq!(config.topic_defaults.get("log.retention.ms").unwrap(), "5");
        assert_eq!(
            config.topic_defaults.get("log.segment.bytes").unwrap(),
            "1048576"
        );
    }

    #[test]
    fn logging_level_takes_levels_and_per_module_filters() {
        let config =
            BrokerConfig::from_toml("logging.level = \"info,cauce_broker::group=debug\"").unwrap();
        assert_eq!(config.logging_level, "info,cauce_broker::group=debug");
        assert!(BrokerConfig::from_toml("logging.level = \"loud\"").is_err());
        assert_eq!(BrokerConfig::default().logging_level, DEFAULT_LOGGING_LEVEL);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let unknown = BrokerConfig::from_toml("no.such.key = 1")
            .unwrap_err()
            .to_string();
        assert!(
            unknown.contains("unknown config key 'no.such.key'"),
            "{unknown}"
        );
        assert!(BrokerConfig::from_toml("num.partitions = 0").is_err());
        assert!(BrokerConfig::from_toml("log.retention.ms = \"soon\"").is_err());
    }

    #[test]
    fn connection_limits_parse_with_their_overrides() {
        let config = BrokerConfig::from_toml(
            "\"max.connections\" = 10\n\"max.connections.per.ip\" = 3\n\
             \"max.connections.per.ip.overrides\" = \"127.0.0.1:5, [::1]:7\"\n",
        )
        .unwrap();
        assert_eq!(
            (config.max_connections, config.max_connections_per_ip),
            (10, 3)
        );
        let overrides: Vec<String> = config
            .max_connections_per_ip_overrides
            .iter()
            .map(|(address, count)| format!("{address}={count}"))
            .collect();
        assert_eq!(overrides, ["127.0.0.1=5", "::1=7"]);
        assert!(
            BrokerConfig::from_toml("\"max.connections.per.ip.overrides\" = \"host\"").is_err()
        );
        assert_eq!(
            BrokerConfig::from_toml("queued.max.request.bytes = -1")
                .unwrap()
                .queued_max_request_bytes,
            usize::MAX
        );
    }

    #[test]
    fn the_shipped_default_config_parses_and_lists_every_key() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/cauce.toml");
        BrokerConfig::from_file(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut keys: Vec<&str> = TOPIC_CONFIGS.iter().map(|def| def.broker_synonym).collect();
        keys.extend(BROKER_KEYS.iter().map(|def| def.name));
        for key in keys {
            // Keys that prefix others are listed quoted (see max.connections).
            assert!(
                text.contains(&format!("# {key} = ")) || text.contains(&format!("# \"{key}\" = ")),
                "config/cauce.toml does not list '{key}'"
            );
        }
    }

    #[test]
    fn metrics_listener_is_off_unless_an_address_is_given() {
        assert_eq!(BrokerConfig::default().metrics_listen, None);
        let config = BrokerConfig::from_toml("metrics.listen = \"127.0.0.1:9644\"").unwrap();
        assert_eq!(
            config.metrics_listen,
            Some("127.0.0.1:9644".parse().unwrap())
        );
        assert_eq!(
            config.broker_key_value("metrics.listen").unwrap(),
            "127.0.0.1:9644"
        );
        let off = BrokerConfig::from_toml("metrics.listen = \"\"").unwrap();
        assert_eq!(off.metrics_listen, None);
        assert!(BrokerConfig::from_toml("metrics.listen = \"nowhere\"").is_err());
    }

    #[test]
    fn kraft_style_listeners_and_voters_parse() {
        let config = BrokerConfig::from_toml(
            "node.id = 2\nlisteners = \"PLAINTEXT://127.0.0.1:9192,CONTROLLER://127.0.0.1:9193\"\n\
             controller.quorum.voters = \"1@127.0.0.1:9093, 2@127.0.0.1:9193,3@localhost:9293\"\n",
        )
        .unwrap();
        assert_eq!(config.listen, "127.0.0.1:9192".parse().unwrap());
        assert_eq!(
            config.controller_listen,
            Some("127.0.0.1:9193".parse().unwrap())
        );
        assert!(config.is_clustered());
        assert_eq!(
            config.quorum_voters.get(&3).map(String::as_str),
            Some("localhost:9293")
        );
        assert_eq!(
            config.broker_key_value("controller.quorum.voters").unwrap(),
            "1@127.0.0.1:9093,2@127.0.0.1:9193,3@localhost:9293"
        );
        assert!(!BrokerConfig::default().is_clustered());
        for bad in [
            "1@nowhere",
            "x@127.0.0.1:1",
            "1@127.0.0.1:1,1@127.0.0.1:2",
            "1-127.0.0.1:1",
        ] {
            assert!(
                BrokerConfig::from_toml(&format!("controller.quorum.voters = \"{bad}\"")).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn every_broker_key_has_a_value_to_describe() {
        let config = BrokerConfig::default();
        for def in BROKER_KEYS {
            assert!(
                config.broker_key_value(def.name).is_some(),
                "{} has no value",
                def.name
            );
        }
    }
}
