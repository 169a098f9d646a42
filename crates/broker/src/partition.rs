//! One partition this broker leads: its log, the signals fetchers wait on, and group commit.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};
use std::sync::Arc;

use cauce_log::{AppendOutcome, Log, LogConfig, LogError, ReadSlice};
use parking_lot::Mutex;
use tokio::sync::watch;
use uuid::Uuid;

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
    /// The log end offset, published after each append so long-polling fetches wake up.
    end_offset: watch::Sender<i64>,
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
    /// The first offset still in the log.
    pub log_start_offset: i64,
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

    /// Adopts the leadership of a newer metadata image: whether this broker leads, and the epoch.
    pub fn set_leadership(&self, is_leader: bool, epoch: i32) {
        self.leader_epoch.store(epoch, Ordering::Release);
        self.is_leader.store(is_leader, Ordering::Release);
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
            self.end_offset.send_replace(outcome.last_offset + 1);
        }
        Ok(outcome)
    }

    /// Reads whole batches from `fetch_offset`, at most `max_bytes` unless the first is larger.
    pub fn read(&self, fetch_offset: i64, max_bytes: usize) -> Result<PartitionRead, LogError> {
        let log = self.log.lock();
        let high_watermark = log.log_end_offset();
        let log_start_offset = log.log_start_offset();
        let slice = if fetch_offset == high_watermark {
            None
        } else {
            Some(log.read(fetch_offset, max_bytes, high_watermark)?)
                .filter(|slice| slice.length > 0)
        };
        Ok(PartitionRead {
            slice,
            high_watermark,
            log_start_offset,
        })
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
