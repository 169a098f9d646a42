//! One partition this broker hosts, as its leader or as a follower: its log, the signals
//! fetchers and `acks=all` wait on, the leader's view of its replicas, and group commit.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};
use std::sync::Arc;

use cauce_log::{AbortedTxn, AppendOutcome, Log, LogConfig, LogError, ReadSlice};
use cauce_metadata::PartitionImage;
use cauce_protocol::control::EndTxnMarker;
use parking_lot::Mutex;
use tokio::sync::watch;
use uuid::Uuid;

use crate::replica::ReplicaSet;

/// A partition's log and the state around it that requests share.
pub struct Partition {
    /// The topic's name, for responses and logs.
    pub topic: String,
    /// The topic's id, for requests that address topics by id.
    pub topic_id: Uuid,
    /// The partition index.
    pub index: i32,
    /// Produce and Fetch byte and record counters, for `/metrics`.
    pub traffic: crate::metrics::PartitionTraffic,
    /// The log; one writer at a time, appends in arrival order.
    log: Mutex<Log>,
    /// The leader epoch from the metadata image, stamped on appended batches.
    leader_epoch: AtomicI32,
    /// Whether this broker leads the partition (otherwise it only holds a replica).
    is_leader: AtomicBool,
    /// The log end offset, published after each append so long-polling follower fetches wake.
    end_offset: watch::Sender<i64>,
    /// The high watermark: what consumers may read. Published as it moves, for their long
    /// polls; on a follower, the leader's as of the last fetch (capped at this log's end).
    high_watermark: watch::Sender<i64>,
    /// While this broker leads: the followers' progress and the ISR.
    replicas: Mutex<Option<ReplicaSet>>,
    /// Whether an ISR change is on its way to the controller; one at a time.
    isr_change_in_flight: AtomicBool,
    /// When the controller last refused an ISR change (ms since the epoch): the next attempt
    /// waits a little, rather than following every fetch of a broker still fenced.
    isr_change_refused_ms: AtomicI64,
    /// The offset below which everything is fsynced, published after each group commit.
    flushed_offset: watch::Sender<i64>,
    /// Whether a group commit is running; later requests join the next one.
    flush_running: AtomicBool,
    /// The highest offset a waiter needs fsynced; the committer loops until it is covered.
    flush_requested_offset: AtomicI64,
    /// The last fsync failure and how many there have been, so that every acknowledgement that
    /// was waiting when one happened reports it.
    flush_error: parking_lot::Mutex<(u64, String)>,
}

/// What a read found: the bytes and the offsets a fetch response reports.
pub struct PartitionRead {
    /// Where the batches are; empty when there is nothing to return.
    pub slice: Option<ReadSlice>,
    /// The high watermark (on a single node, the log end offset).
    pub high_watermark: i64,
    /// The last stable offset: no transaction below it is open or unreplicated.
    pub last_stable_offset: i64,
    /// The first offset still in the log.
    pub log_start_offset: i64,
    /// For a `read_committed` read that returned batches: the aborted transactions among them.
    pub aborted: Option<Vec<AbortedTxn>>,
}

/// How far a read may go, as Kafka's `FetchIsolation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchIsolation {
    /// To the log end: a follower replicating, or the broker reading its own partition.
    LogEnd,
    /// Below the high watermark: a `read_uncommitted` consumer.
    HighWatermark,
    /// Below the last stable offset: a `read_committed` consumer.
    Committed,
}

impl FetchIsolation {
    /// A consumer's isolation from the `isolation_level` field of Fetch and ListOffsets.
    pub fn of_consumer(isolation_level: i8) -> FetchIsolation {
        if isolation_level == 1 {
            FetchIsolation::Committed
        } else {
            FetchIsolation::HighWatermark
        }
    }
}

/// The log's last stable offset at `high_watermark`, after telling it the high watermark.
fn stable_offset(log: &mut Log, high_watermark: i64) -> i64 {
    log.on_high_watermark(high_watermark);
    log.last_stable_offset(high_watermark)
}

impl Partition {
    /// Wraps an opened log.
    pub fn new(
        topic: String,
        topic_id: Uuid,
        index: i32,
        leader_epoch: i32,
        log: Log,
    ) -> Partition {
        let end_offset = log.log_end_offset();
        Partition {
            topic,
            topic_id,
            index,
            traffic: crate::metrics::PartitionTraffic::default(),
            log: Mutex::new(log),
            leader_epoch: AtomicI32::new(leader_epoch),
            is_leader: AtomicBool::new(true),
            end_offset: watch::Sender::new(end_offset),
            high_watermark: watch::Sender::new(0),
            replicas: Mutex::new(None),
            isr_change_in_flight: AtomicBool::new(false),
            isr_change_refused_ms: AtomicI64::new(i64::MIN),
            flushed_offset: watch::Sender::new(end_offset),
            flush_running: AtomicBool::new(false),
            flush_requested_offset: AtomicI64::new(end_offset),
            flush_error: parking_lot::Mutex::new((0, String::new())),
        }
    }

    /// The leader epoch batches are stamped with.
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    /// Adopts a partition's assignment from a newer metadata image: who leads, at which
    /// epoch, and the replicas and ISR. A broker that starts leading (or leads at a new epoch)
    /// starts tracking its followers afresh.
    pub fn apply_assignment(&self, node_id: i32, assignment: &PartitionImage, now_ms: i64) {
        let is_leader = assignment.leader == node_id;
        let new_term =
            is_leader && (!self.is_leader() || self.leader_epoch() != assignment.leader_epoch);
        let mut replicas = self.replicas.lock();
        if !is_leader {
            *replicas = None;
        } else if new_term || replicas.is_none() {
            *replicas = Some(ReplicaSet::new(
                node_id,
                &assignment.replicas,
                &assignment.isr,
                self.high_watermark(),
                self.log_end_offset(),
                now_ms,
            ));
        } else if let Some(set) = replicas.as_mut() {
            set.update_membership(&assignment.replicas, &assignment.isr, now_ms);
        }
        let demoted = self.is_leader() && !is_leader;
        self.leader_epoch
            .store(assignment.leader_epoch, Ordering::Release);
        self.is_leader.store(is_leader, Ordering::Release);
        if let Some(set) = replicas.as_mut() {
            let high_watermark = set.advance_high_watermark(self.log_end_offset());
            self.publish_high_watermark(high_watermark);
        }
        if demoted {
            // Long polls and acks=all waits learn now that another broker leads, as on resign.
            self.high_watermark.send_modify(|_| {});
            self.end_offset.send_modify(|_| {});
        }
    }

    /// Stops leading (the partition left this broker): waiters answer NOT_LEADER_OR_FOLLOWER.
    pub fn resign(&self) {
        *self.replicas.lock() = None;
        self.is_leader.store(false, Ordering::Release);
        // Wake long polls and acks=all waits so that they notice.
        self.high_watermark.send_modify(|_| {});
        self.end_offset.send_modify(|_| {});
    }

    /// Starts the high watermark where the checkpoint left it (never past the log end), before
    /// the partition's assignment is applied.
    pub fn restore_high_watermark(&self, high_watermark: i64) {
        self.publish_high_watermark(high_watermark.clamp(0, self.log_end_offset()));
    }

    /// The high watermark: consumers read below it.
    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    /// Watches the high watermark, for long-polling consumer fetches.
    pub fn subscribe_high_watermark(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    fn publish_high_watermark(&self, high_watermark: i64) {
        self.high_watermark.send_if_modified(|current| {
            let moved = high_watermark != *current;
            *current = high_watermark;
            moved
        });
    }

    /// Waits until every in-sync replica has everything below `offset` (the high watermark
    /// reached it), for `acks=all`; fails if the leadership moves or `deadline` passes first.
    pub async fn wait_replicated(
        &self,
        offset: i64,
        deadline: tokio::time::Instant,
    ) -> Result<(), cauce_protocol::ResponseError> {
        const LEADERSHIP_CHECK: std::time::Duration = std::time::Duration::from_millis(100);
        let mut high_watermark = self.subscribe_high_watermark();
        loop {
            if *high_watermark.borrow_and_update() >= offset {
                return Ok(());
            }
            if !self.is_leader() {
                return Err(cauce_protocol::ResponseError::NotLeaderOrFollower);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(cauce_protocol::ResponseError::RequestTimedOut);
            }
            let slice = (deadline - now).min(LEADERSHIP_CHECK);
            let _ = tokio::time::timeout(slice, high_watermark.changed()).await;
        }
    }

    /// The in-sync replicas while this broker leads; empty otherwise.
    pub fn isr(&self) -> Vec<i32> {
        self.replicas
            .lock()
            .as_ref()
            .map_or_else(Vec::new, |set| set.isr().to_vec())
    }

    /// Records a follower's fetch from `fetch_offset`, moving the high watermark; returns the
    /// ISR to ask the controller for if the follower should join it.
    pub fn follower_fetched(
        &self,
        replica: i32,
        fetch_offset: i64,
        now_ms: i64,
    ) -> Option<Vec<i32>> {
        let mut replicas = self.replicas.lock();
        let set = replicas.as_mut()?;
        let high_watermark =
            set.follower_fetched(replica, fetch_offset, self.log_end_offset(), now_ms);
        self.publish_high_watermark(high_watermark);
        set.wanted_isr(now_ms, i64::MAX)
    }

    /// Claims the right to send an ISR change; false while another is on its way, or shortly
    /// after the controller refused one.
    pub fn begin_isr_change(&self, now_ms: i64) -> bool {
        const RETRY_AFTER_REFUSAL_MS: i64 = 500;
        let refused = self.isr_change_refused_ms.load(Ordering::Acquire);
        if now_ms.saturating_sub(refused) < RETRY_AFTER_REFUSAL_MS {
            return false;
        }
        !self.isr_change_in_flight.swap(true, Ordering::AcqRel)
    }

    /// Releases the claim of [`Partition::begin_isr_change`], noting when it was refused.
    pub fn end_isr_change(&self, refused_at_ms: Option<i64>) {
        if let Some(at) = refused_at_ms {
            self.isr_change_refused_ms.store(at, Ordering::Release);
        }
        self.isr_change_in_flight.store(false, Ordering::Release);
    }

    /// The ISR to ask the controller for, if followers lagged for `max_lag_ms` or caught up.
    pub fn wanted_isr(&self, now_ms: i64, max_lag_ms: i64) -> Option<Vec<i32>> {
        self.replicas
            .lock()
            .as_ref()
            .and_then(|set| set.wanted_isr(now_ms, max_lag_ms))
    }

    /// Appends batches fetched from the leader, keeping their offsets (follower side).
    pub fn append_replicated(
        &self,
        records: &mut [u8],
        now_ms: i64,
    ) -> Result<AppendOutcome, LogError> {
        let outcome = self.log.lock().append_replicated(records, now_ms)?;
        self.end_offset.send_replace(outcome.last_offset + 1);
        Ok(outcome)
    }

    /// Adopts the leader's high watermark, capped at this replica's log end (follower side).
    pub fn follow_high_watermark(&self, leader_high_watermark: i64) {
        self.publish_high_watermark(leader_high_watermark.min(self.log_end_offset()));
    }

    /// Cuts the log back to `offset` (a follower diverging from its new leader).
    pub fn truncate_to(&self, offset: i64) -> Result<(), LogError> {
        self.change_log_end(|log| log.truncate_to(offset))
    }

    /// Empties the log and starts it at `offset` (a follower whose leader deleted what it lacks).
    pub fn reset_to(&self, offset: i64) -> Result<(), LogError> {
        self.change_log_end(|log| log.reset_to(offset))
    }

    fn change_log_end(
        &self,
        change: impl FnOnce(&mut Log) -> Result<(), LogError>,
    ) -> Result<(), LogError> {
        let mut log = self.log.lock();
        change(&mut log)?;
        let end = log.log_end_offset();
        drop(log);
        self.end_offset.send_replace(end);
        if self.high_watermark() > end {
            self.publish_high_watermark(end);
        }
        Ok(())
    }

    /// Whether this broker leads the partition, so clients may produce to and fetch from it.
    pub fn is_leader(&self) -> bool {
        self.is_leader.load(Ordering::Acquire)
    }

    /// Appends a produce request's batches; they are in the page cache when this returns.
    pub fn append(&self, records: &mut [u8], now_ms: i64) -> Result<AppendOutcome, LogError> {
        let outcome = self
            .log
            .lock()
            .append(records, self.leader_epoch(), now_ms)?;
        if !outcome.duplicate {
            let end = outcome.last_offset + 1;
            self.end_offset.send_replace(end);
            if let Some(set) = self.replicas.lock().as_mut() {
                let high_watermark = set.advance_high_watermark(end);
                self.publish_high_watermark(high_watermark);
            }
        }
        Ok(outcome)
    }

    /// Appends the marker that commits or aborts a producer's transaction (WriteTxnMarkers);
    /// the log refuses one from a fenced producer epoch or coordinator.
    pub fn append_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        marker: EndTxnMarker,
        now_ms: i64,
    ) -> Result<AppendOutcome, LogError> {
        let outcome = {
            let mut log = self.log.lock();
            // Markers are what add to the transactions held back for replication: drop the
            // replicated ones here, so the set stays as small as the unreplicated range.
            log.on_high_watermark(self.high_watermark());
            log.append_marker(
                producer_id,
                producer_epoch,
                marker,
                self.leader_epoch(),
                now_ms,
            )?
        };
        let end = outcome.last_offset + 1;
        self.end_offset.send_replace(end);
        if let Some(set) = self.replicas.lock().as_mut() {
            let high_watermark = set.advance_high_watermark(end);
            self.publish_high_watermark(high_watermark);
        }
        Ok(outcome)
    }

    /// Reads whole batches from `fetch_offset`, at most `max_bytes` unless the first is larger,
    /// below the bound `isolation` names. Between that bound and the log end a reader gets
    /// nothing, not an error. A `read_committed` read also gets the aborted transactions of
    /// the range it may read.
    pub fn read(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        isolation: FetchIsolation,
    ) -> Result<PartitionRead, LogError> {
        let mut log = self.log.lock();
        let log_end_offset = log.log_end_offset();
        let high_watermark = self.high_watermark().min(log_end_offset);
        let last_stable_offset = stable_offset(&mut log, high_watermark);
        let log_start_offset = log.log_start_offset();
        let upper = match isolation {
            FetchIsolation::LogEnd => log_end_offset,
            FetchIsolation::HighWatermark => high_watermark,
            FetchIsolation::Committed => last_stable_offset,
        };
        let slice = if fetch_offset >= upper && fetch_offset <= log_end_offset {
            None
        } else {
            Some(log.read(fetch_offset, max_bytes, upper)?).filter(|slice| slice.length > 0)
        };
        // Transactions reported up to the read's bound rather than the last batch returned:
        // a reader ignores those that start after what it got, as with Kafka's segment bound.
        let aborted = (isolation == FetchIsolation::Committed && slice.is_some())
            .then(|| log.aborted_transactions(fetch_offset, upper));
        Ok(PartitionRead {
            slice,
            high_watermark,
            last_stable_offset,
            log_start_offset,
            aborted,
        })
    }

    /// The last stable offset: where `read_committed` reads stop.
    pub fn last_stable_offset(&self) -> i64 {
        let mut log = self.log.lock();
        let high_watermark = self.high_watermark().min(log.log_end_offset());
        stable_offset(&mut log, high_watermark)
    }

    /// Runs `work` with the log locked; for the rarer operations (offsets, retention, deletes).
    pub fn with_log<T>(&self, work: impl FnOnce(&mut Log) -> T) -> T {
        work(&mut self.log.lock())
    }

    /// The log end offset.
    pub fn log_end_offset(&self) -> i64 {
        *self.end_offset.borrow()
    }

    /// Watches the log end offset, for long-polling fetches.
    pub fn subscribe_end_offset(&self) -> watch::Receiver<i64> {
        self.end_offset.subscribe()
    }

    /// Applies a changed topic configuration.
    pub fn set_config(&self, config: LogConfig) {
        self.log.lock().set_config(config);
    }

    /// Waits until everything below `offset` is fsynced, starting a group commit if none runs.
    ///
    /// Appends that arrive while an fsync is under way are covered by the next one, so many
    /// acknowledgements share one `fdatasync`.
    pub async fn wait_flushed(self: &Arc<Self>, offset: i64) -> Result<(), LogError> {
        let mut flushed = self.flushed_offset.subscribe();
        let failures_before = self.flush_error.lock().0;
        loop {
            if *flushed.borrow_and_update() >= offset {
                return Ok(());
            }
            let (failures, message) = self.flush_error.lock().clone();
            if failures != failures_before {
                return Err(LogError::Io {
                    operation: "fsync",
                    path: std::path::PathBuf::from(format!("{}-{}", self.topic, self.index)),
                    source: std::io::Error::other(message),
                });
            }
            self.flush_requested_offset
                .fetch_max(offset, Ordering::AcqRel);
            self.start_group_commit();
            if flushed.changed().await.is_err() {
                return Ok(());
            }
        }
    }

    /// Starts a background fsync of everything appended so far, unless one is running.
    pub fn start_group_commit(self: &Arc<Self>) {
        if self.flush_running.swap(true, Ordering::AcqRel) {
            return;
        }
        let partition = self.clone();
        tokio::task::spawn_blocking(move || loop {
            let handle = partition.log.lock().flush_handle();
            let target = handle.up_to_offset;
            if let Err(error) = handle.sync() {
                tracing::error!(topic = %partition.topic, partition = partition.index, %error, "fsync failed");
                {
                    let mut failure = partition.flush_error.lock();
                    *failure = (failure.0 + 1, error.to_string());
                }
                partition.flush_running.store(false, Ordering::Release);
                // Wake the waiters so they answer with the failure instead of hanging.
                partition.flushed_offset.send_modify(|_| {});
                return;
            }
            partition.log.lock().mark_flushed(target);
            partition.flushed_offset.send_replace(target);
            if partition.flush_requested_offset.load(Ordering::Acquire) > target {
                continue;
            }
            partition.flush_running.store(false, Ordering::Release);
            // A waiter may have asked between the check and the store; it saw the flag set and
            // relies on this thread, so look once more.
            let requested = partition.flush_requested_offset.load(Ordering::Acquire);
            if requested <= target || partition.flush_running.swap(true, Ordering::AcqRel) {
                return;
            }
        });
    }

    /// Flushes and closes the log for a clean shutdown.
    pub fn close(&self) -> Result<(), LogError> {
        self.log.lock().close_in_place()
    }
}
