//! How a quorum node is configured, and the openraft configuration that follows from it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::SnapshotPolicy;

use super::error::QuorumError;
use super::types::NodeId;

/// Snapshot (and purge the log) after this many applied entries, by default.
pub const DEFAULT_SNAPSHOT_AFTER_ENTRIES: u64 = 1000;

/// Everything a quorum node needs to start.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    /// This node's id (`node.id`).
    pub node_id: NodeId,
    /// Controller voters: node id to the "host:port" of its quorum listener
    /// (`controller.quorum.voters`). Must not be empty.
    pub voters: BTreeMap<NodeId, String>,
    /// Directory of the raft log, vote and snapshot; created if absent.
    pub dir: PathBuf,
    /// Election, heartbeat and request timing.
    pub timing: QuorumTiming,
    /// Build a snapshot after this many entries were applied since the last one, then purge the
    /// log up to this many entries before it.
    pub snapshot_after_entries: u64,
}

impl QuorumConfig {
    /// A configuration with default timing and snapshot policy.
    pub fn new(node_id: NodeId, voters: BTreeMap<NodeId, String>, dir: PathBuf) -> QuorumConfig {
        QuorumConfig {
            node_id,
            voters,
            dir,
            timing: QuorumTiming::default(),
            snapshot_after_entries: DEFAULT_SNAPSHOT_AFTER_ENTRIES,
        }
    }

    /// Checks what openraft does not: the voters and the snapshot threshold.
    pub(crate) fn validate(&self) -> Result<(), QuorumError> {
        if self.voters.is_empty() {
            return Err(QuorumError::Config(
                "controller.quorum.voters is empty, expected at least one voter".into(),
            ));
        }
        if let Some((node_id, _)) = self.voters.iter().find(|(_, address)| address.is_empty()) {
            return Err(QuorumError::Config(format!(
                "voter {node_id} has an empty address, expected host:port"
            )));
        }
        if self.snapshot_after_entries == 0 {
            return Err(QuorumError::Config(
                "snapshot_after_entries is 0, expected at least 1".into(),
            ));
        }
        Ok(())
    }

    /// Whether this node votes.
    pub(crate) fn is_voter(&self) -> bool {
        self.voters.contains_key(&self.node_id)
    }

    /// Whether this node is the one that creates the cluster's first membership: the voter with
    /// the smallest id, so exactly one node does it.
    pub(crate) fn initializes_cluster(&self) -> bool {
        self.voters.keys().next() == Some(&self.node_id)
    }

    /// The openraft configuration.
    pub(crate) fn raft_config(&self) -> Result<Arc<openraft::Config>, QuorumError> {
        let timing = &self.timing;
        let config = openraft::Config {
            cluster_name: "cauce-metadata".into(),
            heartbeat_interval: millis(timing.heartbeat_interval),
            election_timeout_min: millis(timing.election_timeout_min),
            election_timeout_max: millis(timing.election_timeout_max),
            install_snapshot_timeout: millis(timing.snapshot_timeout),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_after_entries),
            // Keep a snapshot interval's worth of entries, so a follower a little behind is
            // caught up from the log rather than sent the whole image.
            max_in_snapshot_log_to_keep: self.snapshot_after_entries,
            purge_batch_size: 1,
            ..Default::default()
        };
        let config = config
            .validate()
            .map_err(|error| QuorumError::Config(error.to_string()))?;
        Ok(Arc::new(config))
    }
}

/// Election, heartbeat and request timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumTiming {
    /// How often the leader sends heartbeats; also how long an append may take before it is
    /// retried.
    pub heartbeat_interval: Duration,
    /// The shortest time a follower waits without hearing from a leader before it stands.
    pub election_timeout_min: Duration,
    /// The longest such time; each wait is drawn between the two.
    pub election_timeout_max: Duration,
    /// How long a proposal or membership change may wait to be committed before the caller
    /// gets `QuorumError::Timeout` (a leader cut off from its majority waits indefinitely).
    pub propose_timeout: Duration,
    /// How long an application call (`Quorum::call_app`), connect included, may take.
    pub app_request_timeout: Duration,
    /// How long sending and installing a snapshot on a follower may take.
    pub snapshot_timeout: Duration,
}

impl Default for QuorumTiming {
    fn default() -> QuorumTiming {
        QuorumTiming {
            heartbeat_interval: Duration::from_millis(100),
            election_timeout_min: Duration::from_millis(500),
            election_timeout_max: Duration::from_millis(1000),
            propose_timeout: Duration::from_secs(30),
            app_request_timeout: Duration::from_secs(30),
            snapshot_timeout: Duration::from_secs(30),
        }
    }
}

impl QuorumTiming {
    /// How long openraft waits before retrying a peer it could not connect to.
    pub(crate) fn unreachable_backoff(&self) -> Duration {
        self.heartbeat_interval * 2
    }
}

/// A duration in whole milliseconds, as openraft's configuration takes them.
fn millis(duration: Duration) -> u64 {
    duration.as_millis().try_into().unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voters(ids: &[u64]) -> BTreeMap<u64, String> {
        ids.iter()
            .map(|id| (*id, format!("127.0.0.1:{}", 9000 + id)))
            .collect()
    }

    #[test]
    fn only_the_smallest_voter_initializes_the_cluster() {
        let config = QuorumConfig::new(2, voters(&[3, 2, 5]), PathBuf::from("/tmp/x"));
        assert!(config.is_voter());
        assert!(config.initializes_cluster());
        let config = QuorumConfig::new(3, voters(&[3, 2, 5]), PathBuf::from("/tmp/x"));
        assert!(!config.initializes_cluster());
        let observer = QuorumConfig::new(9, voters(&[3, 2, 5]), PathBuf::from("/tmp/x"));
        assert!(!observer.is_voter());
        assert!(!observer.initializes_cluster());
    }

    #[test]
    fn bad_configurations_are_refused() {
        let empty = QuorumConfig::new(1, BTreeMap::new(), PathBuf::from("/tmp/x"));
        assert!(matches!(empty.validate(), Err(QuorumError::Config(_))));
        let mut no_address = QuorumConfig::new(1, voters(&[1]), PathBuf::from("/tmp/x"));
        no_address.voters.insert(2, String::new());
        assert!(matches!(no_address.validate(), Err(QuorumError::Config(_))));
        let mut bad_timing = QuorumConfig::new(1, voters(&[1]), PathBuf::from("/tmp/x"));
        bad_timing.timing.election_timeout_min = Duration::from_millis(50);
        assert!(matches!(
            bad_timing.raft_config(),
            Err(QuorumError::Config(_))
        ));
    }

    #[test]
    fn the_default_timing_gives_a_valid_raft_config() {
        let config = QuorumConfig::new(1, voters(&[1]), PathBuf::from("/tmp/x"));
        config.validate().unwrap();
        let raft = config.raft_config().unwrap();
        assert_eq!(raft.heartbeat_interval, 100);
        assert_eq!(raft.election_timeout_min, 500);
    }
}
