//! A cluster of in-process quorum nodes on loopback ports, for the quorum's integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cauce_metadata::quorum::{Quorum, QuorumConfig, QuorumTiming};
use cauce_metadata::{MetadataImage, MetadataRecord};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// How long a test waits for the cluster to reach a state before failing.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Timing short enough for fast tests, long enough for a loaded 2-core machine.
pub fn fast_timing() -> QuorumTiming {
    QuorumTiming {
        heartbeat_interval: Duration::from_millis(50),
        election_timeout_min: Duration::from_millis(300),
        election_timeout_max: Duration::from_millis(600),
        propose_timeout: Duration::from_secs(5),
        app_request_timeout: Duration::from_secs(5),
        snapshot_timeout: Duration::from_secs(5),
    }
}

/// A record that creates topic `name`, easy to look for in an image.
pub fn topic(name: &str) -> MetadataRecord {
    MetadataRecord::Topic {
        name: name.to_string(),
        topic_id: Uuid::new_v4(),
    }
}

/// Sends the nodes' logs to the test output, filtered by `RUST_LOG` (nothing when unset).
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Binds a listener on an ephemeral loopback port.
pub async fn bind_ephemeral() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    (listener, address)
}

/// One running node.
pub struct TestNode {
    /// The node.
    pub quorum: Quorum,
    /// Its listener's task.
    server: JoinHandle<()>,
}

/// Nodes sharing one voter set, each with a directory under one temporary directory.
pub struct TestCluster {
    /// Holds every node's directory.
    root: tempfile::TempDir,
    /// Voter ids and addresses.
    pub voters: BTreeMap<u64, String>,
    /// Every node's address, voters and others.
    pub addresses: BTreeMap<u64, String>,
    /// Running nodes by id.
    pub nodes: BTreeMap<u64, TestNode>,
    /// Applied to each node's configuration before it starts.
    tune: Arc<dyn Fn(&mut QuorumConfig) + Send + Sync>,
}

impl TestCluster {
    /// Starts `voter_count` voters, ids 1.., with the fast timing.
    pub async fn start(voter_count: u64) -> TestCluster {
        TestCluster::start_tuned(voter_count, |_| {}).await
    }

    /// Starts `voter_count` voters, ids 1.., adjusting each configuration with `tune`.
    pub async fn start_tuned(
        voter_count: u64,
        tune: impl Fn(&mut QuorumConfig) + Send + Sync + 'static,
    ) -> TestCluster {
        init_logging();
        let mut listeners = BTreeMap::new();
        for node_id in 1..=voter_count {
            listeners.insert(node_id, bind_ephemeral().await);
        }
        let voters: BTreeMap<u64, String> = listeners
            .iter()
            .map(|(node_id, (_, address))| (*node_id, address.clone()))
            .collect();
        let mut cluster = TestCluster {
            root: tempfile::tempdir().unwrap(),
            addresses: voters.clone(),
            voters,
            nodes: BTreeMap::new(),
            tune: Arc::new(tune),
        };
        for (node_id, (listener, _)) in listeners {
            cluster.start_node(node_id, listener).await;
        }
        cluster
    }

    /// The directory of node `node_id`.
    pub fn dir(&self, node_id: u64) -> PathBuf {
        self.root.path().join(format!("node-{node_id}"))
    }

    /// The running node `node_id`.
    pub fn node(&self, node_id: u64) -> &Quorum {
        &self.nodes[&node_id].quorum
    }

    /// Starts node `node_id` (a voter or not) serving on `listener`.
    pub async fn start_node(&mut self, node_id: u64, listener: TcpListener) {
        let address = listener.local_addr().unwrap().to_string();
        let mut config = QuorumConfig::new(node_id, self.voters.clone(), self.dir(node_id));
        config.timing = fast_timing();
        (self.tune)(&mut config);
        let quorum = Quorum::start(config).await.unwrap();
        let server = quorum.serve(listener);
        self.addresses.insert(node_id, address);
        self.nodes.insert(node_id, TestNode { quorum, server });
    }

    /// Shuts node `node_id` down and waits until its listener is closed.
    pub async fn stop(&mut self, node_id: u64) {
        let node = self.nodes.remove(&node_id).unwrap();
        node.quorum.shutdown().await;
        node.server.await.unwrap();
    }

    /// Starts node `node_id` again from its directory, at its old address.
    pub async fn restart(&mut self, node_id: u64) {
        let address = self.addresses[&node_id].clone();
        let listener = TcpListener::bind(&address).await.unwrap();
        self.start_node(node_id, listener).await;
    }

    /// Shuts every node down.
    pub async fn stop_all(&mut self) {
        let node_ids: Vec<u64> = self.nodes.keys().copied().collect();
        for node_id in node_ids {
            self.stop(node_id).await;
        }
    }

    /// Waits until every node in `node_ids` names the same leader, one of them, and returns it.
    pub async fn wait_for_leader(&self, node_ids: &[u64]) -> u64 {
        wait_until("a leader all nodes agree on", || {
            let leaders: Vec<Option<(u64, String)>> = node_ids
                .iter()
                .map(|node_id| self.node(*node_id).leader())
                .collect();
            let first = leaders[0].clone()?;
            let agreed = leaders.iter().all(|leader| leader.as_ref() == Some(&first));
            (agreed && node_ids.contains(&first.0) && first.1 == self.addresses[&first.0])
                .then_some(first.0)
        })
        .await
    }

    /// Waits until node `node_id`'s image satisfies `check`, and returns that image.
    pub async fn wait_for_image(
        &self,
        node_id: u64,
        what: &str,
        check: impl Fn(&MetadataImage) -> bool,
    ) -> Arc<MetadataImage> {
        let quorum = self.node(node_id);
        wait_until(&format!("node {node_id}: {what}"), || {
            let image = quorum.image();
            check(&image).then_some(image)
        })
        .await
    }
}

/// Polls `probe` until it returns a value, failing the test after [`PATIENCE`].
pub async fn wait_until<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether `image` has every topic in `names`.
pub fn has_topics(image: &MetadataImage, names: &[String]) -> bool {
    names.iter().all(|name| image.topic(name).is_some())
}
