//! Every broker-level key, once: adding a key means adding one entry here. The documentation
//! is written as it should read in `config/cauce.toml`, which is generated from it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::define::{broker_config, key_setter, key_shower, BrokerKeyDef};
use super::values::{
    advertised_listener, at_least, connection_overrides, log_filter, optional_listener, parsed,
    path, quorum_voters, request_pool_bytes, set_listeners, show_advertised_listener,
    show_connection_overrides, show_listeners, show_optional_address, show_quorum_voters,
    trimmed_text,
};

/// The log filter by default: Cauce's events at info; the raft library's own lines are left
/// out, since it reports routine elections and unreachable peers as warnings and errors, and
/// the broker logs the quorum's changes itself.
pub const DEFAULT_LOGGING_LEVEL: &str = "info,openraft=off";

/// The Kafka listener's address when none is configured.
const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9092);

broker_config! {
    section "Node and listeners" {
        /// This node's id in the cluster.
        node_id: i32 = 1, key "node.id", kind Int, parse parsed("an integer");

        /// Addresses this node listens on: HOST:PORT or NAME://HOST:PORT, comma separated. The
        /// entry named by controller.listener.names is the controller listener (needed by the
        /// voters of a multi-node quorum); the first other one is the Kafka listener.
        listen: SocketAddr = DEFAULT_LISTEN, key "listeners", kind List,
            set set_listeners, show show_listeners;

        /// Address clients are told to connect to; defaults to the listener's bound address.
        advertised: Option<(String, u16)> = None, key "advertised.listeners", kind List,
            parse advertised_listener, show show_advertised_listener;

        /// Directory for partitions and the metadata log (Kafka's log.dir is accepted too).
        data_dir: PathBuf = PathBuf::from("./cauce-data"), key "log.dirs" or "log.dir",
            kind String, parse path, show |config| config.data_dir.display().to_string();

        /// Largest request accepted, in bytes; a larger size prefix closes the connection.
        socket_request_max_bytes: usize = 104_857_600, key "socket.request.max.bytes", kind Int,
            parse at_least(1024, "an integer of at least 1024");

        /// Requests a connection may have in flight before the broker stops reading from it.
        max_in_flight_requests_per_connection: usize = 64, key "queued.max.requests", kind Int,
            parse at_least(1, "an integer of at least 1");

        /// Bytes of requests read but not yet answered, across all connections. A request waits
        /// for room before it is read; one larger than the pool waits until the pool is empty. A
        /// frame is charged as it arrives: 64 KiB when its size is read, then twice what it holds
        /// each time that is full. Kafka's default is -1 (no limit); -1 is accepted here too.
        queued_max_request_bytes: usize = 512 * 1024 * 1024, key "queued.max.request.bytes",
            kind Long, parse request_pool_bytes;

        /// Connections open at once; at the limit the listener stops accepting until one closes.
        max_connections: usize = 65_536, key "max.connections", kind Int,
            parse at_least(1, "an integer of at least 1");

        /// Connections one client address may have open; a new one above it is closed at once.
        max_connections_per_ip: usize = 65_536, key "max.connections.per.ip", kind Int,
            parse at_least(1, "an integer of at least 1");

        /// Exceptions to max.connections.per.ip, as address:count pairs
        /// ("127.0.0.1:200,[::1]:200").
        max_connections_per_ip_overrides: BTreeMap<std::net::IpAddr, usize> = BTreeMap::new(),
            key "max.connections.per.ip.overrides", kind String, parse connection_overrides,
            show |config| show_connection_overrides(&config.max_connections_per_ip_overrides);

        /// A connection that sends no request for this long is closed.
        connections_max_idle_ms: u64 = 600_000, key "connections.max.idle.ms", kind Long,
            parse at_least(1, "an integer of at least 1");

        /// Cauce's own: once a request's size has been read, the whole request must arrive within
        /// this long or the connection is closed (a client gives up on a request after its own
        /// request.timeout.ms, 30 s by default, anyway). Waiting for queued.max.request.bytes
        /// counts, so that frames filling the pool and waiting for each other give up rather than
        /// hang.
        socket_request_read_timeout_ms: u64 = 30_000, key "socket.request.read.timeout.ms",
            kind Long, parse at_least(1, "an integer of at least 1");

        /// HOST:PORT where Prometheus metrics are served over HTTP at /metrics; empty (the
        /// default) serves none, so that several brokers on one host need no ports of their own.
        metrics_listen: Option<SocketAddr> = None, key "metrics.listen", kind String,
            parse optional_listener, show |config| show_optional_address(config.metrics_listen);

        /// Log filter when the RUST_LOG environment variable is unset: a level (error, warn,
        /// info, debug, trace) or per-module levels such as "info,cauce_broker::group=debug".
        logging_level: String = DEFAULT_LOGGING_LEVEL.to_string(), key "logging.level",
            kind String, parse log_filter;
    }

    section "Cluster" {
        /// The controller quorum: every voter's node id and controller listener, as in KRaft,
        /// e.g. "1@127.0.0.1:9093,2@127.0.0.1:9193,3@127.0.0.1:9293". Empty (the default) runs a
        /// single node whose metadata log is a local file. Nodes not listed join as brokers only.
        quorum_voters: BTreeMap<i32, String> = BTreeMap::new(), key "controller.quorum.voters",
            kind List, parse quorum_voters, show |config| show_quorum_voters(&config.quorum_voters);

        /// The name of the listeners entry the controller listens on.
        controller_listener_name: String = "CONTROLLER".to_string(),
            key "controller.listener.names", kind String, parse trimmed_text;

        /// How often a broker heartbeats to the active controller, in milliseconds.
        broker_heartbeat_interval_ms: u64 = 2_000, key "broker.heartbeat.interval.ms", kind Long,
            parse parsed("milliseconds");

        /// How long the active controller waits for a broker's heartbeat before fencing it
        /// (moving its partition leaderships away), in milliseconds.
        broker_session_timeout_ms: u64 = 9_000, key "broker.session.timeout.ms", kind Long,
            parse parsed("milliseconds");

        /// How long a follower may go without catching up with its leader before the leader
        /// drops it from the in-sync replicas, in milliseconds.
        replica_lag_time_max_ms: u64 = 30_000, key "replica.lag.time.max.ms", kind Long,
            parse parsed("milliseconds");

        /// How often every partition's high watermark is written to disk
        /// (replication-offset-checkpoint), so that a restarted leader serves committed data at
        /// once, in milliseconds.
        replica_high_watermark_checkpoint_interval_ms: u64 = 5_000,
            key "replica.high.watermark.checkpoint.interval.ms", kind Long,
            parse at_least(1, "milliseconds, at least 1");

        /// How long a follower's fetch waits at the leader for new data, in milliseconds.
        replica_fetch_wait_max_ms: i32 = 500, key "replica.fetch.wait.max.ms", kind Int,
            parse parsed("milliseconds");

        /// Bytes a follower fetches per partition and request.
        replica_fetch_max_bytes: i32 = 1_048_576, key "replica.fetch.max.bytes", kind Int,
            parse at_least(1, "a positive number of bytes");

        /// Whether the active controller gives leaderships back to each partition's preferred
        /// replica (the first in its list) once it is live and in sync again.
        auto_leader_rebalance_enable: bool = true, key "auto.leader.rebalance.enable",
            kind Boolean, parse parsed("true or false");

        /// How often the active controller looks for leaderships to give back to preferred
        /// replicas, in seconds.
        leader_imbalance_check_interval_seconds: u64 = 300,
            key "leader.imbalance.check.interval.seconds", kind Long,
            parse at_least(1, "a number of seconds of at least 1");
    }

    section "Topics" {
        /// Create a topic when a client asks for its metadata and it does not exist.
        auto_create_topics: bool = true, key "auto.create.topics.enable", kind Boolean,
            parse parsed("true or false");

        /// Partitions of an auto-created topic, or of one created with -1 partitions.
        num_partitions: i32 = 1, key "num.partitions", kind Int,
            parse at_least(1, "an integer of at least 1");

        /// Replicas of a topic created with -1 as replication factor.
        default_replication_factor: i16 = 1, key "default.replication.factor", kind Int,
            parse at_least(1, "an integer of at least 1");

        /// Whether DeleteTopics is allowed.
        delete_topic_enable: bool = true, key "delete.topic.enable", kind Boolean,
            parse parsed("true or false");

        /// How often retention (retention.ms, retention.bytes) is enforced.
        retention_check_interval_ms: u64 = 300_000, key "log.retention.check.interval.ms",
            kind Long, parse at_least(1, "an integer of at least 1");
    }

    section "Log cleaner (compaction)" {
        /// Whether topics with cleanup.policy=compact are compacted.
        log_cleaner_enable: bool = true, key "log.cleaner.enable", kind Boolean,
            parse parsed("true or false");

        /// How often the cleaner looks for logs due for compaction.
        log_cleaner_backoff_ms: u64 = 15_000, key "log.cleaner.backoff.ms", kind Long,
            parse at_least(1, "an integer of at least 1");
    }

    section "Consumer groups" {
        /// Partitions of the internal __consumer_offsets topic (created on first use).
        offsets_topic_num_partitions: i32 = 50, key "offsets.topic.num.partitions", kind Int,
            parse at_least(1, "an integer of at least 1");

        /// Copies of each __consumer_offsets partition. In a cluster the topic is created once
        /// this many brokers are registered (until then FindCoordinator answers
        /// COORDINATOR_NOT_AVAILABLE); a single node keeps one copy.
        offsets_topic_replication_factor: i16 = 3, key "offsets.topic.replication.factor",
            kind Int, parse at_least(1, "an integer of at least 1");

        /// Segment size of __consumer_offsets.
        offsets_topic_segment_bytes: i64 = 104_857_600, key "offsets.topic.segment.bytes",
            kind Int, parse at_least(1024, "an integer of at least 1024");

        /// How long a group that has no members keeps its committed offsets.
        offsets_retention_minutes: i64 = 10_080, key "offsets.retention.minutes", kind Int,
            parse at_least(1, "an integer of at least 1");

        /// Largest metadata string a client may attach to a committed offset.
        offset_metadata_max_bytes: usize = 4096, key "offset.metadata.max.bytes", kind Int,
            parse at_least(0, "a non-negative integer");

        /// How long a new group waits for more members before its first rebalance completes.
        group_initial_rebalance_delay_ms: i32 = 3000, key "group.initial.rebalance.delay.ms",
            kind Int, parse at_least(0, "a non-negative integer");

        /// Smallest session timeout a member may ask for.
        group_min_session_timeout_ms: i32 = 6000, key "group.min.session.timeout.ms", kind Int,
            parse at_least(1, "an integer of at least 1");

        /// Largest session timeout a member may ask for.
        group_max_session_timeout_ms: i32 = 1_800_000, key "group.max.session.timeout.ms",
            kind Int, parse at_least(1, "an integer of at least 1");

        /// Session timeout of KIP-848 consumer group members (group.protocol=consumer).
        group_consumer_session_timeout_ms: i32 = 45_000,
            key "group.consumer.session.timeout.ms", kind Int,
            parse at_least(1, "an integer of at least 1");

        /// Heartbeat interval the coordinator gives KIP-848 consumer group members.
        group_consumer_heartbeat_interval_ms: i32 = 5_000,
            key "group.consumer.heartbeat.interval.ms", kind Int,
            parse at_least(1, "an integer of at least 1");
    }

    section "Transactions" {
        /// Partitions of the internal __transaction_state topic (created on first use).
        transaction_state_log_num_partitions: i32 = 50,
            key "transaction.state.log.num.partitions", kind Int,
            parse at_least(1, "an integer of at least 1");

        /// Copies of each __transaction_state partition. In a cluster the topic is created once
        /// this many brokers are registered; a single node keeps one copy.
        transaction_state_log_replication_factor: i16 = 3,
            key "transaction.state.log.replication.factor", kind Int,
            parse at_least(1, "an integer of at least 1");

        /// min.insync.replicas of __transaction_state: a transaction's state is acknowledged
        /// once this many replicas hold it.
        transaction_state_log_min_isr: i32 = 2, key "transaction.state.log.min.isr", kind Int,
            parse at_least(1, "an integer of at least 1");

        /// Segment size of __transaction_state.
        transaction_state_log_segment_bytes: i64 = 104_857_600,
            key "transaction.state.log.segment.bytes", kind Int,
            parse at_least(1024, "an integer of at least 1024");

        /// Largest transaction.timeout.ms a producer may ask for; a larger one gets
        /// INVALID_TRANSACTION_TIMEOUT.
        transaction_max_timeout_ms: i32 = 900_000, key "transaction.max.timeout.ms", kind Int,
            parse at_least(1, "an integer of at least 1");

        /// How often the coordinator looks for transactions open longer than their timeout,
        /// which it aborts.
        transaction_abort_timed_out_transaction_cleanup_interval_ms: i64 = 10_000,
            key "transaction.abort.timed.out.transaction.cleanup.interval.ms", kind Int,
            parse at_least(1, "an integer of at least 1");

        /// How long a transactional id may stay idle (no transaction open) before the
        /// coordinator forgets it.
        transactional_id_expiration_ms: i64 = 604_800_000,
            key "transactional.id.expiration.ms", kind Int,
            parse at_least(1, "an integer of at least 1");

        /// How often the coordinator looks for idle transactional ids to forget.
        transaction_remove_expired_transaction_cleanup_interval_ms: i64 = 3_600_000,
            key "transaction.remove.expired.transaction.cleanup.interval.ms", kind Int,
            parse at_least(1, "an integer of at least 1");
    }

    derived {
        /// Address the controller listener binds: the `listeners` entry named by
        /// `controller.listener.names`. Needed when this node is a voter of a multi-node quorum.
        controller_listen: Option<SocketAddr> = None;

        /// Broker-level defaults for topic configs (`log.retention.ms`, `message.max.bytes`,
        /// ...), by their broker-level names; the keys are those of `TOPIC_CONFIGS`.
        topic_defaults: BTreeMap<String, String> = BTreeMap::new();
    }
}
