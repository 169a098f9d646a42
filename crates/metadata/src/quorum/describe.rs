//! The quorum's state for DescribeQuorum, from openraft's metrics and the replica activity.
//!
//! Offsets follow Kafka's convention rather than raft's indexes: an offset is one past the
//! last entry it counts (the log's first entry, index 0, is the initial membership), so an empty
//! log ends at 0 and the high watermark is the committed index plus one.

use serde::{Deserialize, Serialize};

use super::activity::ReplicaTimes;
use super::types::{LogId, NodeId, RaftMetrics};

/// What this node knows about the quorum; exact only on the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumDescription {
    /// The current leader, if known.
    pub leader: Option<NodeId>,
    /// The raft term, which plays the part of KRaft's leader epoch.
    pub leader_epoch: u64,
    /// One past the last committed entry (0 when nothing is committed), as known here.
    pub high_watermark: u64,
    /// The voters, by node id.
    pub voters: Vec<ReplicaDescription>,
    /// The learners (KRaft's observers), by node id.
    pub learners: Vec<ReplicaDescription>,
}

/// One member of the quorum, as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaDescription {
    /// Its node id.
    pub node_id: NodeId,
    /// Its quorum listener address.
    pub address: String,
    /// One past the last entry known to be in its log; `None` when unknown (always on a
    /// follower, except for itself).
    pub log_end_offset: Option<u64>,
    /// When it last answered the leader, in ms since the Unix epoch.
    pub last_fetch_ms: Option<u64>,
    /// When it last held everything the leader had, in ms since the Unix epoch.
    pub last_caught_up_ms: Option<u64>,
}

/// Describes the quorum from this node's metrics, its committed entry and the replica times
/// it recorded, at `now_ms`.
pub(crate) fn describe(
    metrics: &RaftMetrics,
    committed: Option<LogId>,
    times: impl Fn(NodeId) -> ReplicaTimes,
    now_ms: u64,
) -> QuorumDescription {
    let membership = metrics.membership_config.membership();
    let replica = |node_id: NodeId| {
        let address = membership
            .get_node(&node_id)
            .map(|node| node.addr.clone())
            .unwrap_or_default();
        describe_replica(metrics, node_id, address, &times, now_ms)
    };
    QuorumDescription {
        leader: metrics.current_leader,
        leader_epoch: metrics.current_term,
        high_watermark: end_offset(committed.map(|log_id| log_id.index)),
        voters: membership.voter_ids().map(&replica).collect(),
        learners: membership.learner_ids().map(&replica).collect(),
    }
}

/// One replica's description.
fn describe_replica(
    metrics: &RaftMetrics,
    node_id: NodeId,
    address: String,
    times: &impl Fn(NodeId) -> ReplicaTimes,
    now_ms: u64,
) -> ReplicaDescription {
    let is_leader = metrics.replication.is_some();
    if node_id == metrics.id {
        let now = is_leader.then_some(now_ms);
        return ReplicaDescription {
            node_id,
            address,
            log_end_offset: Some(end_offset(metrics.last_log_index)),
            last_fetch_ms: now,
            last_caught_up_ms: now,
        };
    }
    let matched = metrics
        .replication
        .as_ref()
        .and_then(|replication| replication.get(&node_id));
    let known = if is_leader {
        times(node_id)
    } else {
        ReplicaTimes::default()
    };
    ReplicaDescription {
        node_id,
        address,
        log_end_offset: matched.map(|log_id| end_offset(log_id.map(|log_id| log_id.index))),
        last_fetch_ms: known.last_fetch_ms,
        last_caught_up_ms: known.last_caught_up_ms,
    }
}

/// The offset one past a log index; 0 for no entry.
fn end_offset(last_index: Option<u64>) -> u64 {
    last_index.map_or(0, |index| index + 1)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Arc;

    use openraft::{BasicNode, CommittedLeaderId, Membership};

    use super::*;
    use crate::quorum::types::StoredMembership;

    fn log_id(index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(2, 1), index)
    }

    fn metrics(leader: bool) -> RaftMetrics {
        let nodes: BTreeMap<u64, BasicNode> = (1..=4)
            .map(|id| (id, BasicNode::new(format!("host-{id}:9093"))))
            .collect();
        let membership = Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes);
        let mut metrics = RaftMetrics::new_initial(1);
        metrics.current_term = 2;
        metrics.current_leader = Some(1);
        metrics.last_log_index = Some(9);
        metrics.membership_config = Arc::new(StoredMembership::new(Some(log_id(0)), membership));
        if leader {
            let replication = BTreeMap::from([
                (1, Some(log_id(9))),
                (2, Some(log_id(9))),
                (3, Some(log_id(4))),
                (4, None),
            ]);
            metrics.replication = Some(replication);
        }
        metrics
    }

    fn times(node_id: NodeId) -> ReplicaTimes {
        ReplicaTimes {
            last_fetch_ms: Some(100 + node_id),
            last_caught_up_ms: (node_id == 2).then_some(90),
        }
    }

    #[test]
    fn the_leader_describes_every_replica_in_offsets() {
        let description = describe(&metrics(true), Some(log_id(8)), times, 500);
        assert_eq!(description.leader, Some(1));
        assert_eq!(description.leader_epoch, 2);
        assert_eq!(description.high_watermark, 9);
        let ends: Vec<_> = description
            .voters
            .iter()
            .map(|voter| (voter.node_id, voter.log_end_offset))
            .collect();
        assert_eq!(ends, vec![(1, Some(10)), (2, Some(10)), (3, Some(5))]);
        assert_eq!(description.voters[0].last_caught_up_ms, Some(500));
        assert_eq!(description.voters[1].last_caught_up_ms, Some(90));
        assert_eq!(description.voters[2].last_fetch_ms, Some(103));
        assert_eq!(description.voters[2].address, "host-3:9093");
        assert_eq!(description.learners.len(), 1);
        assert_eq!(description.learners[0].node_id, 4);
        assert_eq!(description.learners[0].log_end_offset, Some(0));
    }

    #[test]
    fn a_follower_knows_only_its_own_log_end() {
        let mut metrics = metrics(false);
        metrics.id = 2;
        let description = describe(&metrics, None, times, 500);
        assert_eq!(description.high_watermark, 0);
        let own = &description.voters[1];
        assert_eq!(own.log_end_offset, Some(10));
        assert_eq!(own.last_fetch_ms, None);
        assert_eq!(description.voters[0].log_end_offset, None);
        assert_eq!(description.voters[0].last_fetch_ms, None);
    }
}
