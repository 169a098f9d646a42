//! A cluster of real `cauce server` processes on loopback, each a controller voter and a broker,
//! and the Metadata questions tests ask it.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, MetadataRequest, MetadataResponse,
};

use crate::network::Network;
use crate::raw::topic_name;
use crate::{free_port, BrokerProcess, RawClient};

/// Metadata version the helpers speak: has the controller id and topic ids.
const METADATA_VERSION: i16 = 12;
/// CreateTopics version the helpers speak.
const CREATE_TOPICS_VERSION: i16 = 7;

/// How long a node may take to see a membership or ISR change a test waits for.
pub const CHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Brokers that heartbeat often and are fenced soon, so failover tests run in seconds.
pub const FAST_MEMBERSHIP: &str =
    "broker.heartbeat.interval.ms = 300\nbroker.session.timeout.ms = 2500\n";

/// Several nodes of one cluster; node ids start at 1, `nodes[i]` is node `i + 1`.
pub struct Cluster {
    /// The running (or stopped) nodes.
    pub nodes: Vec<BrokerProcess>,
    /// Where each node serves `/metrics`, by the same index.
    pub metrics: Vec<SocketAddr>,
    /// The proxies in front of every node's listeners, if the cluster was started behind them.
    network: Option<Network>,
}

impl Cluster {
    /// Starts `size` nodes, all voters, with `extra_config` (TOML) added to each one's config.
    pub fn start(size: usize, extra_config: &str) -> Cluster {
        Cluster::start_mixed(size, 0, extra_config)
    }

    /// Starts `voters` nodes that are controller voters and brokers, then `brokers_only` nodes
    /// that are only brokers (they receive the metadata log as learners).
    pub fn start_mixed(voters: usize, brokers_only: usize, extra_config: &str) -> Cluster {
        Cluster::launch(voters, brokers_only, extra_config, None)
    }

    /// Starts `size` voter nodes that every connection reaches through a proxy (both the Kafka
    /// and the controller listener), so that [`Cluster::isolate`] can cut one off.
    pub fn start_behind_proxies(size: usize, extra_config: &str) -> Cluster {
        Cluster::launch(size, 0, extra_config, Some(Network::default()))
    }

    fn launch(
        voters: usize,
        brokers_only: usize,
        extra_config: &str,
        network: Option<Network>,
    ) -> Cluster {
        let size = voters + brokers_only;
        // Where node `node` listens, and where the others reach it: a proxy, if there is one.
        let listener = |node: usize| {
            let listen = loopback(free_port());
            let reached = network
                .as_ref()
                .map_or(listen, |network| network.proxy(node as i32, listen));
            (listen, reached)
        };
        let controllers: Vec<(SocketAddr, SocketAddr)> = (1..=size).map(listener).collect();
        let voters = controllers
            .iter()
            .take(voters)
            .enumerate()
            .map(|(index, (_, reached))| format!("{}@{reached}", index + 1))
            .collect::<Vec<_>>()
            .join(",");
        let metrics: Vec<SocketAddr> = (0..size).map(|_| loopback(free_port())).collect();
        let nodes: Vec<BrokerProcess> = controllers
            .iter()
            .zip(&metrics)
            .enumerate()
            .map(|(index, ((controller, _), metrics))| {
                let node = index + 1;
                let (listen, reached) = listener(node);
                let advertised = match network {
                    Some(_) => format!("advertised.listeners = \"PLAINTEXT://{reached}\"\n"),
                    None => String::new(),
                };
                BrokerProcess::start_behind(
                    listen,
                    reached,
                    &format!(
                        "node.id = {node}\nlisteners = \"CONTROLLER://{controller}\"\ncontroller.quorum.voters = \"{voters}\"\nmetrics.listen = \"{metrics}\"\n{advertised}{extra_config}"
                    ),
                )
            })
            .collect();
        let cluster = Cluster {
            nodes,
            metrics,
            network,
        };
        if let Some(network) = &cluster.network {
            network.set_nodes(cluster.nodes_by_pid());
        }
        cluster
    }

    /// The running nodes' ids by process id.
    fn nodes_by_pid(&self) -> HashMap<u32, i32> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(index, node)| Some((node.pid()?, index as i32 + 1)))
            .collect()
    }

    /// Cuts node `node_id` off from the other nodes (in both directions) while clients still
    /// reach every node. Needs a cluster started behind proxies.
    pub fn isolate(&self, node_id: i32) {
        self.network
            .as_ref()
            .expect("isolate needs a cluster started behind proxies")
            .isolate(node_id, self.nodes_by_pid());
    }

    /// Lets node `node_id` reach the other nodes again.
    pub fn heal(&self, node_id: i32) {
        self.network
            .as_ref()
            .expect("heal needs a cluster started behind proxies")
            .heal(node_id);
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

    /// Polls node `node_id` until every partition of `topic` has all of `brokers` in its ISR and
    /// a leader among them, panicking with `failure` (and the partitions still missing a broker)
    /// after [`CHANGE_TIMEOUT`].
    pub fn wait_for_full_isrs(
        &mut self,
        node_id: i32,
        topic: &str,
        partitions: i32,
        brokers: &[i32],
        failure: &str,
    ) -> BTreeMap<i32, PartitionView> {
        let deadline = Instant::now() + CHANGE_TIMEOUT;
        loop {
            let current = partitions_of(&self.metadata(node_id), topic).unwrap_or_default();
            let short: BTreeMap<&i32, &PartitionView> = current
                .iter()
                .filter(|(_, view)| {
                    let mut isr = view.isr.clone();
                    isr.sort_unstable();
                    isr != brokers || !brokers.contains(&view.leader)
                })
                .collect();
            if current.len() == partitions as usize && short.is_empty() {
                return current;
            }
            assert!(
                Instant::now() < deadline,
                "{failure}: node {node_id} still shows {} of {partitions} partitions of {topic}, \
                 these without ISR {brokers:?} after {CHANGE_TIMEOUT:?}: {short:?}",
                current.len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until every node lists every broker, creates `topic` through node 1 with a replica
    /// on each node, and waits until every node sees all of them in each partition's ISR;
    /// returns the partitions as node 1 sees them.
    pub fn create_fully_replicated_topic(
        &mut self,
        topic: &str,
        partitions: i32,
    ) -> BTreeMap<i32, PartitionView> {
        let brokers: Vec<i32> = (1..=self.nodes.len() as i32).collect();
        for &node in &brokers {
            self.wait_for_brokers(node, &brokers);
        }
        assert_eq!(
            self.create_topic(1, topic, partitions, brokers.len() as i16),
            0,
            "creating {topic}"
        );
        for &node in brokers.iter().rev() {
            self.wait_for_full_isrs(node, topic, partitions, &brokers, "the new topic");
        }
        partitions_of(&self.metadata(1), topic).expect("the topic just created")
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

/// `127.0.0.1:port`.
fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
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
