//! A cluster of real `cauce server` processes on loopback, each a controller voter and a broker,
//! and the Metadata questions tests ask it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, MetadataRequest, MetadataResponse,
};

use crate::raw::topic_name;
use crate::{free_port, BrokerProcess, RawClient};

/// Metadata version the helpers speak: has the controller id and topic ids.
const METADATA_VERSION: i16 = 12;
/// CreateTopics version the helpers speak.
const CREATE_TOPICS_VERSION: i16 = 7;

/// Brokers that heartbeat often and are fenced soon, so failover tests run in seconds.
pub const FAST_MEMBERSHIP: &str =
    "broker.heartbeat.interval.ms = 300\nbroker.session.timeout.ms = 2500\n";

/// Several nodes of one cluster; node ids start at 1, `nodes[i]` is node `i + 1`.
pub struct Cluster {
    /// The running (or stopped) nodes.
    pub nodes: Vec<BrokerProcess>,
    /// Where each node serves `/metrics`, by the same index.
    pub metrics: Vec<SocketAddr>,
}

impl Cluster {
    /// Starts `size` nodes, all voters, with `extra_config` (TOML) added to each one's config.
    pub fn start(size: usize, extra_config: &str) -> Cluster {
        Cluster::start_mixed(size, 0, extra_config)
    }

    /// Starts `voters` nodes that are controller voters and brokers, then `brokers_only` nodes
    /// that are only brokers (they receive the metadata log as learners).
    pub fn start_mixed(voters: usize, brokers_only: usize, extra_config: &str) -> Cluster {
        let size = voters + brokers_only;
        let controller_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let voters = controller_ports
            .iter()
            .take(voters)
            .enumerate()
            .map(|(index, port)| format!("{}@127.0.0.1:{port}", index + 1))
            .collect::<Vec<_>>()
            .join(",");
        let metrics: Vec<SocketAddr> = (0..size)
            .map(|_| SocketAddr::from(([127, 0, 0, 1], free_port())))
            .collect();
        let nodes = controller_ports
            .iter()
            .zip(&metrics)
            .enumerate()
            .map(|(index, (port, metrics))| {
                BrokerProcess::start_with_config(&format!(
                    "node.id = {}\nlisteners = \"CONTROLLER://127.0.0.1:{port}\"\ncontroller.quorum.voters = \"{voters}\"\nmetrics.listen = \"{metrics}\"\n{extra_config}",
                    index + 1
                ))
            })
            .collect();
        Cluster { nodes, metrics }
    }

    /// The node with this id.
    pub fn node(&mut self, node_id: i32) -> &mut BrokerProcess {
        &mut self.nodes[node_id as usize - 1]
    }

    /// Every running node's address, as a bootstrap list.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .filter(|node| node.pid().is_some())
            .map(BrokerProcess::bootstrap)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// One sample of node `node_id`'s `/metrics`, by its series name (labels included).
    pub fn metric(&self, node_id: i32, series: &str) -> Option<f64> {
        let address = self.metrics[node_id as usize - 1];
        let mut stream = TcpStream::connect(address).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        answer
            .lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
    }

    /// Asks node `node_id` for the cluster's metadata (all topics).
    pub fn metadata(&mut self, node_id: i32) -> MetadataResponse {
        let mut client = RawClient::connect(self.node(node_id).address);
        client.call(
            ApiKey::Metadata,
            METADATA_VERSION,
            &MetadataRequest::default().with_topics(None),
        )
    }

    /// Polls node `node_id`'s metadata until `ready` accepts it; panics after `timeout`.
    pub fn wait_for_metadata(
        &mut self,
        node_id: i32,
        timeout: Duration,
        what: &str,
        ready: impl Fn(&MetadataResponse) -> bool,
    ) -> MetadataResponse {
        let deadline = Instant::now() + timeout;
        loop {
            let metadata = self.metadata(node_id);
            if ready(&metadata) {
                return metadata;
            }
            assert!(
                Instant::now() < deadline,
                "node {node_id}: {what} not seen within {timeout:?}; last metadata: {metadata:#?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until node `node_id` lists exactly `brokers` and names a controller among them.
    pub fn wait_for_brokers(&mut self, node_id: i32, brokers: &[i32]) -> MetadataResponse {
        let wanted: Vec<i32> = brokers.to_vec();
        self.wait_for_metadata(
            node_id,
            Duration::from_secs(30),
            &format!("brokers {brokers:?} and a controller"),
            |metadata| {
                live_brokers(metadata) == wanted && wanted.contains(&metadata.controller_id.0)
            },
        )
    }

    /// Creates a topic through node `node_id`; returns the response's error code.
    pub fn create_topic(
        &mut self,
        node_id: i32,
        topic: &str,
        partitions: i32,
        replication_factor: i16,
    ) -> i16 {
        let mut client = RawClient::connect(self.node(node_id).address);
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(15_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic_name(topic))
                .with_num_partitions(partitions)
                .with_replication_factor(replication_factor)]);
        let response: CreateTopicsResponse =
            client.call(ApiKey::CreateTopics, CREATE_TOPICS_VERSION, &request);
        response.topics[0].error_code
    }
}

/// The broker ids a Metadata response lists, sorted.
pub fn live_brokers(metadata: &MetadataResponse) -> Vec<i32> {
    let mut brokers: Vec<i32> = metadata
        .brokers
        .iter()
        .map(|broker| broker.node_id.0)
        .collect();
    brokers.sort_unstable();
    brokers
}

/// One partition's leadership as a Metadata response gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    /// The leader's id, -1 for none.
    pub leader: i32,
    /// The replicas in preference order.
    pub replicas: Vec<i32>,
    /// The in-sync replicas.
    pub isr: Vec<i32>,
}

/// Each partition of `topic`, by partition index; `None` if the topic is not listed.
pub fn partitions_of(
    metadata: &MetadataResponse,
    topic: &str,
) -> Option<BTreeMap<i32, PartitionView>> {
    let found = metadata.topics.iter().find(|candidate| {
        candidate
            .name
            .as_ref()
            .is_some_and(|name| name.as_str() == topic)
    })?;
    Some(
        found
            .partitions
            .iter()
            .map(|partition| {
                let ids = |nodes: &[kafka_protocol::messages::BrokerId]| {
                    nodes.iter().map(|node| node.0).collect::<Vec<i32>>()
                };
                let view = PartitionView {
                    leader: partition.leader_id.0,
                    replicas: ids(&partition.replica_nodes),
                    isr: ids(&partition.isr_nodes),
                };
                (partition.partition_index, view)
            })
            .collect(),
    )
}
