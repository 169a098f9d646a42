//! The leader's view of a partition's replicas: where each follower's log ends, which replicas
//! are in sync, and the high watermark that follows from them (Kafka's model).
//!
//! Pure bookkeeping, driven by the partition: appends move the leader's log end, follower
//! fetches report where theirs end, and the metadata image says who is in the ISR. The ISR
//! itself changes only through the controller; this struct says when to ask for a change.

use std::collections::HashMap;

/// What the leader knows about one follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FollowerProgress {
    /// Where the follower's log ends, as its last fetch said; -1 until it fetched.
    log_end_offset: i64,
    /// When the follower last held everything the leader had (ms since the epoch).
    caught_up_ms: i64,
    /// The leader's log end when the follower last fetched, and when that was: a fetch that
    /// reaches that offset shows the follower had caught up as of then, even if the leader has
    /// taken more writes since (Kafka's rule, so that a busy partition keeps its ISR).
    previous_fetch: (i64, i64),
}

/// A partition's replicas as its leader tracks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaSet {
    /// The leader, this broker.
    leader: i32,
    /// Every replica, the leader included.
    replicas: Vec<i32>,
    /// The in-sync replicas, as committed in the metadata.
    isr: Vec<i32>,
    /// Per follower.
    followers: HashMap<i32, FollowerProgress>,
    /// Offset below which every in-sync replica has the data; only moves forward.
    high_watermark: i64,
}

impl ReplicaSet {
    /// The set of a partition this broker starts leading at `now_ms`, whose log ends at
    /// `log_end_offset` and whose high watermark was last known to be `high_watermark`.
    /// Followers get a full `replica.lag.time.max.ms` before they can be dropped.
    pub fn new(
        leader: i32,
        replicas: &[i32],
        isr: &[i32],
        high_watermark: i64,
        log_end_offset: i64,
        now_ms: i64,
    ) -> ReplicaSet {
        let followers = replicas
            .iter()
            .filter(|replica| **replica != leader)
            .map(|replica| {
                let progress = FollowerProgress {
                    log_end_offset: -1,
                    caught_up_ms: now_ms,
                    previous_fetch: (i64::MAX, now_ms),
                };
                (*replica, progress)
            })
            .collect();
        let mut set = ReplicaSet {
            leader,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            followers,
            high_watermark: high_watermark.min(log_end_offset),
        };
        set.advance_high_watermark(log_end_offset);
        set
    }

    /// Adopts a newer assignment (same leader and epoch): the replicas and the ISR. A follower
    /// that left the ISR must show where its log ends again before it can rejoin: the position
    /// it had is stale, and a broker that crashed may have lost part of its log since.
    pub fn update_membership(&mut self, replicas: &[i32], isr: &[i32], now_ms: i64) {
        for (replica, progress) in self.followers.iter_mut() {
            if self.isr.contains(replica) && !isr.contains(replica) {
                progress.log_end_offset = -1;
            }
        }
        self.replicas = replicas.to_vec();
        self.isr = isr.to_vec();
        let leader = self.leader;
        self.followers
            .retain(|replica, _| replicas.contains(replica));
        for replica in replicas.iter().filter(|replica| **replica != leader) {
            self.followers.entry(*replica).or_insert(FollowerProgress {
                log_end_offset: -1,
                caught_up_ms: now_ms,
                previous_fetch: (i64::MAX, now_ms),
            });
        }
    }

    /// The in-sync replicas.
    pub fn isr(&self) -> &[i32] {
        &self.isr
    }

    /// The high watermark.
    #[cfg(test)]
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// Records a follower's fetch from `fetch_offset` (where its log ends) while the leader's
    /// log ends at `leader_log_end`; returns the new high watermark.
    pub fn follower_fetched(
        &mut self,
        replica: i32,
        fetch_offset: i64,
        leader_log_end: i64,
        now_ms: i64,
    ) -> i64 {
        if let Some(progress) = self.followers.get_mut(&replica) {
            progress.log_end_offset = fetch_offset;
            let (previous_leader_end, previous_fetch_ms) = progress.previous_fetch;
            if fetch_offset >= leader_log_end {
                progress.caught_up_ms = now_ms;
            } else if fetch_offset >= previous_leader_end {
                progress.caught_up_ms = progress.caught_up_ms.max(previous_fetch_ms);
            }
            progress.previous_fetch = (leader_log_end, now_ms);
        }
        self.advance_high_watermark(leader_log_end)
    }

    /// Moves the high watermark to the smallest log end among the in-sync replicas, never back;
    /// returns it.
    pub fn advance_high_watermark(&mut self, leader_log_end: i64) -> i64 {
        let smallest = self
            .isr
            .iter()
            .map(|replica| {
                if *replica == self.leader {
                    leader_log_end
                } else {
                    self.followers
                        .get(replica)
                        .map_or(-1, |progress| progress.log_end_offset)
                }
            })
            .min()
            .unwrap_or(leader_log_end);
        self.high_watermark = self.high_watermark.max(smallest.min(leader_log_end));
        self.high_watermark
    }

    /// The ISR the leader should ask the controller for, if it differs from the current one:
    /// in-sync followers that have not caught up for `max_lag_ms` leave; followers outside it
    /// that reached the high watermark join. The leader always stays.
    pub fn wanted_isr(&self, now_ms: i64, max_lag_ms: i64) -> Option<Vec<i32>> {
        let wanted: Vec<i32> = self
            .replicas
            .iter()
            .copied()
            .filter(|replica| {
                if *replica == self.leader {
                    return true;
                }
                let Some(progress) = self.followers.get(replica) else {
                    return false;
                };
                if self.isr.contains(replica) {
                    now_ms - progress.caught_up_ms <= max_lag_ms
                } else {
                    progress.log_end_offset >= self.high_watermark && progress.log_end_offset >= 0
                }
            })
            .collect();
        let mut current = self.isr.clone();
        current.sort_unstable();
        let mut sorted = wanted.clone();
        sorted.sort_unstable();
        (sorted != current).then_some(wanted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_high_watermark_is_the_smallest_log_end_of_the_isr_and_never_goes_back() {
        let mut set = ReplicaSet::new(1, &[1, 2, 3], &[1, 2, 3], 0, 10, 0);
        assert_eq!(set.high_watermark(), 0, "followers have not fetched yet");
        assert_eq!(set.follower_fetched(2, 10, 10, 1), 0, "replica 3 is behind");
        assert_eq!(set.follower_fetched(3, 7, 10, 1), 7);
        assert_eq!(set.follower_fetched(3, 10, 12, 2), 10);
        // A follower that truncated does not move it back.
        assert_eq!(set.follower_fetched(3, 4, 12, 3), 10);
        // Alone in the ISR, the leader's log end is the high watermark.
        set.update_membership(&[1, 2, 3], &[1], 4);
        assert_eq!(set.advance_high_watermark(12), 12);
    }

    #[test]
    fn a_follower_that_keeps_up_with_a_busy_leader_stays_in_sync() {
        let mut set = ReplicaSet::new(1, &[1, 2], &[1, 2], 0, 0, 0);
        // Each fetch reaches where the leader was at the previous one, never where it is now.
        for round in 1..100 {
            let now = round * 1_000;
            set.follower_fetched(2, (round - 1) * 10, round * 10, now);
        }
        assert_eq!(set.wanted_isr(100_000, 5_000), None);
        // A follower stuck at one offset falls out.
        for round in 100..110 {
            set.follower_fetched(2, 990, round * 10, round * 1_000);
        }
        assert_eq!(set.wanted_isr(110_000, 5_000), Some(vec![1]));
    }

    #[test]
    fn a_follower_dropped_from_the_isr_is_not_proposed_back_on_its_old_position() {
        let mut set = ReplicaSet::new(1, &[1, 2], &[1, 2], 0, 10, 0);
        set.follower_fetched(2, 10, 10, 1);
        set.update_membership(&[1, 2], &[1], 2);
        assert_eq!(set.wanted_isr(3, 30_000), None, "no fetch since it left");
        set.follower_fetched(2, 10, 10, 4);
        assert_eq!(set.wanted_isr(4, 30_000), Some(vec![1, 2]));
    }

    #[test]
    fn lagging_followers_leave_the_isr_and_caught_up_ones_join_it() {
        let mut set = ReplicaSet::new(1, &[1, 2, 3], &[1, 2, 3], 0, 100, 0);
        set.follower_fetched(2, 100, 100, 5_000);
        set.follower_fetched(3, 60, 100, 5_000);
        assert_eq!(
            set.wanted_isr(20_000, 30_000),
            None,
            "both within the lag time"
        );
        assert_eq!(
            set.wanted_isr(31_000, 30_000),
            Some(vec![1, 2]),
            "3 never caught up"
        );
        set.update_membership(&[1, 2, 3], &[1, 2], 31_000);
        assert_eq!(set.high_watermark(), 60);
        assert_eq!(set.advance_high_watermark(100), 100);
        set.follower_fetched(3, 90, 100, 32_000);
        assert_eq!(
            set.wanted_isr(32_000, 30_000),
            None,
            "below the high watermark"
        );
        set.follower_fetched(3, 100, 100, 33_000);
        assert_eq!(set.wanted_isr(33_000, 30_000), Some(vec![1, 2, 3]));
    }
}
