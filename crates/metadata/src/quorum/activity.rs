//! When each follower and learner last answered the leader and last caught up with it.
//!
//! openraft reports how far each replica's log matches the leader's, but not when; KRaft's
//! DescribeQuorum also gives the last fetch and last caught-up times. The leader's network
//! clients record them here as append responses arrive, against the leader's log end at the
//! time the request was sent, which the log store keeps current.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use super::types::NodeId;

/// The times known about one replica, in milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplicaTimes {
    /// When it last answered a replication request, whatever the answer.
    pub last_fetch_ms: Option<u64>,
    /// When it last held every entry the leader had when the request was sent.
    pub last_caught_up_ms: Option<u64>,
}

impl ReplicaTimes {
    /// The times after an answer received at `at_ms`.
    ///
    /// `matched_end` is one past the last entry the replica confirmed it holds (`None` when the
    /// answer confirmed nothing); `leader_end` is one past the leader's last entry when the
    /// request was sent.
    pub fn after_answer(self, at_ms: u64, matched_end: Option<u64>, leader_end: u64) -> Self {
        let caught_up = matched_end.is_some_and(|end| end >= leader_end);
        ReplicaTimes {
            last_fetch_ms: Some(at_ms),
            last_caught_up_ms: if caught_up {
                Some(at_ms)
            } else {
                self.last_caught_up_ms
            },
        }
    }
}

/// Replica times shared by the leader's network clients and `Quorum::describe`.
#[derive(Debug, Default)]
pub(crate) struct ReplicaActivity {
    /// One past the index of this node's last log entry (0 when the log is empty).
    local_log_end: AtomicU64,
    /// Times by replica id.
    replicas: Mutex<BTreeMap<NodeId, ReplicaTimes>>,
}

impl ReplicaActivity {
    /// Records this node's log end; the log store calls it after every change.
    pub(crate) fn set_local_log_end(&self, end: u64) {
        self.local_log_end.store(end, Ordering::Release);
    }

    /// This node's log end, which is the leader's when this node leads.
    pub(crate) fn local_log_end(&self) -> u64 {
        self.local_log_end.load(Ordering::Acquire)
    }

    /// Records an answer from `replica`; see [`ReplicaTimes::after_answer`].
    pub(crate) fn record_answer(&self, replica: NodeId, matched_end: Option<u64>, leader_end: u64) {
        let mut replicas = self.replicas.lock();
        let times = replicas.entry(replica).or_default();
        *times = times.after_answer(now_ms(), matched_end, leader_end);
    }

    /// What is known about `replica`.
    pub(crate) fn times(&self, replica: NodeId) -> ReplicaTimes {
        self.replicas
            .lock()
            .get(&replica)
            .copied()
            .unwrap_or_default()
    }
}

/// Milliseconds since the Unix epoch, as Kafka reports times.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_reaching_the_leader_end_counts_as_caught_up() {
        let times = ReplicaTimes::default().after_answer(10, Some(5), 5);
        assert_eq!(
            times,
            ReplicaTimes {
                last_fetch_ms: Some(10),
                last_caught_up_ms: Some(10)
            }
        );
    }

    #[test]
    fn a_lagging_or_conflicting_answer_only_moves_the_fetch_time() {
        let caught_up = ReplicaTimes::default().after_answer(10, Some(5), 5);
        let lagging = caught_up.after_answer(20, Some(3), 5);
        assert_eq!(lagging.last_fetch_ms, Some(20));
        assert_eq!(lagging.last_caught_up_ms, Some(10));
        let conflicting = lagging.after_answer(30, None, 5);
        assert_eq!(conflicting.last_fetch_ms, Some(30));
        assert_eq!(conflicting.last_caught_up_ms, Some(10));
    }

    #[test]
    fn activity_is_kept_per_replica() {
        let activity = ReplicaActivity::default();
        activity.set_local_log_end(7);
        activity.record_answer(2, Some(7), activity.local_log_end());
        activity.record_answer(3, Some(1), activity.local_log_end());
        assert!(activity.times(2).last_caught_up_ms.is_some());
        assert!(activity.times(3).last_caught_up_ms.is_none());
        assert!(activity.times(3).last_fetch_ms.is_some());
        assert_eq!(activity.times(4), ReplicaTimes::default());
    }
}
