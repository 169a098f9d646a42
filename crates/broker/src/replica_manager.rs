//! The replica manager, the one owner of a partition's path on this broker (Kafka's
//! ReplicaManager): which partitions are hosted and led (kept in step with the metadata image by
//! the metadata applier), producers' appends and their acknowledgement (`acks`, the flush
//! policy, replication to the in-sync replicas), reads for consumers and followers, the
//! followers' progress that moves the high watermark and the ISR, and the high-watermark
//! checkpoint. Handlers decode a request, call it, and encode what it returns.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use cauce_log::{AbortedTxn, AppendOutcome, Log, LogConfig, TimestampType};
use cauce_metadata::topic_config::effective_topic_configs;
use cauce_metadata::{MetadataImage, PartitionImage, TopicImage};
use parking_lot::{Mutex, RwLock};

use cauce_protocol::control::EndTxnMarker;
use cauce_protocol::ResponseError;

use crate::errors::log_error_code;
use crate::high_watermarks::{self, HighWatermarks};
use crate::partition::{FetchIsolation, Partition};
use crate::BrokerError;

/// Name of the folder, under the data dir, that holds the metadata log.
pub const METADATA_DIR_NAME: &str = "__cluster_metadata-0";
const DELETED_SUFFIX: &str = "-delete";

/// ListOffsets timestamps with special meanings.
pub const LATEST_TIMESTAMP: i64 = -1;
pub const EARLIEST_TIMESTAMP: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;

/// What ListOffsets found in a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoundOffset {
    /// The offset.
    pub offset: i64,
    /// The record's timestamp; -1 for the special timestamps that name an offset.
    pub timestamp: i64,
    /// The leader epoch to report.
    pub leader_epoch: i32,
}

/// A producer's batches appended to a partition this broker leads.
pub struct Appended {
    /// The partition.
    pub partition: Arc<Partition>,
    /// Where the batches went.
    pub outcome: AppendOutcome,
}

/// Why an append or a read was refused: the Kafka error, and a message for the client (empty
/// when the code says it all).
pub type Refusal = (ResponseError, String);

/// The partitions this broker hosts and everything done to them.
pub struct ReplicaManager {
    /// The folder partition directories live in.
    data_dir: PathBuf,
    /// This broker's id, to pick the partitions it hosts.
    node_id: i32,
    /// Broker-level topic defaults from the config file.
    topic_defaults: BTreeMap<String, String>,
    /// Hosted partitions by topic name and index.
    partitions: RwLock<HashMap<(String, i32), Arc<Partition>>>,
    /// High watermarks read from the checkpoint at start, taken by the partitions as they open.
    checkpointed: Mutex<HighWatermarks>,
    /// What the checkpoint holds now, so an unchanged one is not written again.
    last_checkpoint: Mutex<HighWatermarks>,
}

impl ReplicaManager {
    /// A replica manager over `data_dir` with no partitions opened yet.
    pub fn new(
        data_dir: &Path,
        node_id: i32,
        topic_defaults: BTreeMap<String, String>,
    ) -> ReplicaManager {
        let checkpointed = high_watermarks::read(data_dir);
        ReplicaManager {
            data_dir: data_dir.to_path_buf(),
            node_id,
            topic_defaults,
            partitions: RwLock::new(HashMap::new()),
            last_checkpoint: Mutex::new(checkpointed.clone()),
            checkpointed: Mutex::new(checkpointed),
        }
    }

    /// Writes every hosted partition's high watermark to the checkpoint, unless nothing
    /// changed since the last write.
    pub fn checkpoint_high_watermarks(&self) -> Result<(), cauce_log::LogError> {
        let entries: HighWatermarks = self
            .partitions
            .read()
            .values()
            .map(|partition| {
                (
                    (partition.topic.clone(), partition.index),
                    (partition.topic_id, partition.high_watermark()),
                )
            })
            .collect();
        let mut last = self.last_checkpoint.lock();
        if *last != entries {
            high_watermarks::write(&self.data_dir, &entries)?;
            *last = entries;
        }
        Ok(())
    }

    /// A hosted partition.
    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        self.partitions
            .read()
            .get(&(topic.to_string(), index))
            .cloned()
    }

    /// Appends a producer's batches (`records`, rewritten in place with offsets) to `topic`'s
    /// partition `index`, which this broker must lead. Refused before anything is written:
    /// an unknown or not-led partition, a write to an internal topic by a client
    /// (`internal_allowed` only for Kafka's admin client id), an `acks` other than -1, 0 or 1,
    /// and for `acks=all` fewer in-sync replicas than `min.insync.replicas`. The log refuses what
    /// breaks the topic's rules (sizes, timestamps, sequences, keyless records on a compacted
    /// topic).
    #[allow(clippy::too_many_arguments)]
    pub fn append_records(
        &self,
        image: &MetadataImage,
        topic: &str,
        index: i32,
        records: &mut [u8],
        acks: i16,
        internal_allowed: bool,
        now_ms: i64,
    ) -> Result<Appended, Refusal> {
        if topic == crate::group::OFFSETS_TOPIC && !internal_allowed {
            // As Kafka: only the broker writes its internal topics, whose records it later
            // replays as its own state.
            return Err((
                ResponseError::InvalidTopicException,
                format!("cannot append to internal topic {topic}"),
            ));
        }
        if !matches!(acks, -1..=1) {
            return Err((
                ResponseError::InvalidRequiredAcks,
                format!("acks must be -1, 0 or 1, found {acks}"),
            ));
        }
        let partition = self.leader_for_write(image, topic, index, acks)?;
        let outcome = partition
            .append(records, now_ms)
            .map_err(|error| (log_error_code(&error), error.to_string()))?;
        if !outcome.duplicate {
            let appended = (outcome.last_offset - outcome.base_offset + 1).max(0) as u64;
            partition.traffic.record_produced(records.len(), appended);
        }
        Ok(Appended { partition, outcome })
    }

    /// The partition an append goes to: led here, and for `acks=all` with at least
    /// `min.insync.replicas` in-sync replicas, as Kafka checks before it writes.
    fn leader_for_write(
        &self,
        image: &MetadataImage,
        topic: &str,
        index: i32,
        acks: i16,
    ) -> Result<Arc<Partition>, Refusal> {
        let partition = self
            .leader(image, topic, index)
            .map_err(|error| (error, String::new()))?;
        if acks == -1 {
            let in_sync = partition.isr().len();
            let minimum = self.min_insync_replicas(image, topic);
            if in_sync < minimum {
                return Err((
                    ResponseError::NotEnoughReplicas,
                    format!("{in_sync} in-sync replicas, fewer than min.insync.replicas {minimum}"),
                ));
            }
        }
        Ok(partition)
    }

    /// Appends a transaction marker to `topic`'s partition `index`, which this broker must
    /// lead, at `acks=all` (WriteTxnMarkers from a transaction coordinator or an admin client).
    /// Internal topics take markers too: `__consumer_offsets` holds transactional offset
    /// commits.
    #[allow(clippy::too_many_arguments)]
    pub fn append_marker(
        &self,
        image: &MetadataImage,
        topic: &str,
        index: i32,
        producer_id: i64,
        producer_epoch: i16,
        marker: EndTxnMarker,
        now_ms: i64,
    ) -> Result<Appended, Refusal> {
        let partition = self.leader_for_write(image, topic, index, -1)?;
        let outcome = partition
            .append_marker(producer_id, producer_epoch, marker, now_ms)
            .map_err(|error| (log_error_code(&error), error.to_string()))?;
        Ok(Appended { partition, outcome })
    }

    /// Waits until an append may be acknowledged: flushed if the flush policy asked for it, and
    /// for `acks=all` held by every in-sync replica before `deadline`, the request's one
    /// deadline (its `timeout_ms` from arrival, whatever the number of partitions, as Kafka).
    pub async fn acknowledged(
        appended: &Appended,
        acks: i16,
        deadline: tokio::time::Instant,
    ) -> Result<(), Refusal> {
        let end = appended.outcome.last_offset + 1;
        let partition = &appended.partition;
        if appended.outcome.needs_flush {
            partition
                .wait_flushed(end)
                .await
                .map_err(|error| (ResponseError::KafkaStorageError, error.to_string()))?;
        }
        if acks == -1 && partition.high_watermark() < end {
            partition
                .wait_replicated(end, deadline)
                .await
                .map_err(|error| {
                    let message =
                        format!("the in-sync replicas did not confirm offset {end}: {error:?}");
                    (error, message)
                })?;
        }
        Ok(())
    }

    /// Whether acknowledging an append must wait (see [`ReplicaManager::acknowledged`]).
    pub fn must_wait(appended: &Appended, acks: i16) -> bool {
        appended.outcome.needs_flush
            || (acks == -1 && appended.partition.high_watermark() <= appended.outcome.last_offset)
    }

    /// A fetch (Kafka's ReplicaManager.fetchMessages): reads every target, whole batches from
    /// its offset, below the bound of `isolation` (the log end for a follower, the high
    /// watermark or the last stable offset for a consumer); until `min_bytes` are read, an
    /// error is met or `deadline` passes, it waits for any target to grow and reads again. `max_bytes` bounds the response, except
    /// that its first batch is returned whole (KIP-74).
    pub async fn fetch(
        targets: Vec<ReadTarget>,
        max_bytes: usize,
        min_bytes: usize,
        deadline: tokio::time::Instant,
        isolation: FetchIsolation,
    ) -> Vec<PartitionRead> {
        let mut targets = targets;
        let mut grown: Vec<_> = targets
            .iter()
            .filter_map(|target| {
                target
                    .partition
                    .as_ref()
                    .ok()
                    .map(|partition| match isolation {
                        FetchIsolation::LogEnd => partition.subscribe_end_offset(),
                        // The last stable offset moves only when the high watermark does (or
                        // the log is cut, which moves that too).
                        FetchIsolation::HighWatermark | FetchIsolation::Committed => {
                            partition.subscribe_high_watermark()
                        }
                    })
            })
            .collect();
        loop {
            for receiver in grown.iter_mut() {
                receiver.borrow_and_update();
            }
            let (read_targets, reads, total_bytes, had_error) =
                read_all(targets, max_bytes, isolation).await;
            targets = read_targets;
            let done = total_bytes >= min_bytes
                || had_error
                || tokio::time::Instant::now() >= deadline
                || grown.is_empty();
            if done {
                for (target, read) in targets.iter().zip(&reads) {
                    if let (Ok(partition), Ok(records)) = (&target.partition, &read.records) {
                        partition.traffic.record_fetched(records.len());
                    }
                }
                return reads;
            }
            let any_change = futures::future::select_all(
                grown
                    .iter_mut()
                    .map(|receiver| Box::pin(receiver.changed())),
            );
            // Timed out or not, one more read: the response reflects the latest state.
            let _ = tokio::time::timeout_at(deadline, any_change).await;
        }
    }

    /// A follower's fetch says where its log ends: that moves the high watermark, and may let
    /// it back into the ISR. Returns the ISR changes to ask the controller for. A fetch at
    /// another leader epoch than this broker's says nothing: the follower's log may still hold
    /// a tail that this leader cut, so its position is not recorded (its read is refused).
    pub fn follower_fetched(
        targets: &[ReadTarget],
        replica: i32,
        now_ms: i64,
    ) -> Vec<(Arc<Partition>, Vec<i32>)> {
        targets
            .iter()
            .filter_map(|target| {
                let partition = target.partition.as_ref().ok()?;
                check_leader_epoch(partition, target.current_leader_epoch).ok()?;
                let isr = partition.follower_fetched(replica, target.fetch_offset, now_ms)?;
                Some((partition.clone(), isr))
            })
            .collect()
    }

    /// ListOffsets for one partition this broker leads: the offset for `timestamp` (or one of
    /// the special values), with the record's timestamp and the leader epoch; `None` when no
    /// record the reader may fetch (below the high watermark, or the last stable offset for
    /// `read_committed`) is that recent. Blocking: it may search the time index.
    pub fn offset_for_timestamp(
        &self,
        image: &MetadataImage,
        topic: &str,
        index: i32,
        current_leader_epoch: i32,
        timestamp: i64,
        isolation: FetchIsolation,
    ) -> Result<Option<FoundOffset>, ResponseError> {
        let partition = self.leader_at_epoch(image, topic, index, current_leader_epoch)?;
        let epoch = partition.leader_epoch();
        // As Kafka: LATEST is the end of what the reader may fetch, and a search by timestamp
        // finds only records below it.
        let fetchable_end = match isolation {
            FetchIsolation::Committed => partition.last_stable_offset(),
            FetchIsolation::HighWatermark | FetchIsolation::LogEnd => partition.high_watermark(),
        };
        let found = partition.with_log(|log| match timestamp {
            LATEST_TIMESTAMP => Ok(Some((fetchable_end, -1, epoch))),
            EARLIEST_TIMESTAMP | EARLIEST_LOCAL_TIMESTAMP => {
                Ok(Some((log.log_start_offset(), -1, epoch)))
            }
            MAX_TIMESTAMP => log.max_timestamp_and_offset().map(|found| {
                found
                    .map(|(timestamp, offset)| (offset, timestamp, epoch))
                    .filter(|(offset, _, _)| *offset < fetchable_end)
            }),
            timestamp => log
                .offset_for_timestamp(timestamp)
                .map(|found| found.filter(|(offset, _, _)| *offset < fetchable_end)),
        });
        found
            .map(|found| {
                found.map(|(offset, timestamp, leader_epoch)| FoundOffset {
                    offset,
                    timestamp,
                    leader_epoch,
                })
            })
            .map_err(|error| log_error_code(&error))
    }

    /// OffsetForLeaderEpoch for one partition this broker leads: the largest epoch up to
    /// `leader_epoch` and where it ends (KIP-101); `None` when the log knows no such epoch.
    pub fn end_offset_for_epoch(
        &self,
        image: &MetadataImage,
        topic: &str,
        index: i32,
        current_leader_epoch: i32,
        leader_epoch: i32,
    ) -> Result<Option<(i32, i64)>, ResponseError> {
        let partition = self.leader_at_epoch(image, topic, index, current_leader_epoch)?;
        Ok(partition.with_log(|log| log.end_offset_for_epoch(leader_epoch)))
    }

    /// DeleteRecords for one partition this broker leads: moves its log start to `offset` (-1:
    /// the high watermark), which must not pass the high watermark; returns the new log start.
    /// Blocking: it may delete segment files.
    pub fn delete_records(
        &self,
        image: &MetadataImage,
        topic: &str,
        index: i32,
        offset: i64,
    ) -> Result<i64, ResponseError> {
        let partition = self.leader_at_epoch(image, topic, index, -1)?;
        let high_watermark = partition.high_watermark();
        let offset = if offset == -1 { high_watermark } else { offset };
        if offset < 0 || offset > high_watermark {
            return Err(ResponseError::OffsetOutOfRange);
        }
        let low_watermark = partition
            .with_log(|log| log.delete_records_before(offset))
            .map_err(|error| log_error_code(&error))?;
        tracing::info!(topic, partition = index, low_watermark, "records deleted");
        Ok(low_watermark)
    }

    /// A topic's `min.insync.replicas`: its own setting, else the broker's default, else 1.
    fn min_insync_replicas(&self, image: &MetadataImage, topic: &str) -> usize {
        image
            .topic(topic)
            .and_then(|topic| topic.configs.get("min.insync.replicas"))
            .or_else(|| self.topic_defaults.get("min.insync.replicas"))
            .and_then(|value| value.trim().parse::<usize>().ok())
            .unwrap_or(1)
    }

    /// A partition this broker leads. One it only holds a replica of, or one of a topic it
    /// holds no replica of, is NOT_LEADER_OR_FOLLOWER: the client's metadata is out of date.
    pub fn leader(
        &self,
        image: &MetadataImage,
        topic: &str,
        index: i32,
    ) -> Result<Arc<Partition>, ResponseError> {
        match self.partition(topic, index) {
            Some(partition) if partition.is_leader() => Ok(partition),
            Some(_) => Err(ResponseError::NotLeaderOrFollower),
            None => {
                let exists = image
                    .topic(topic)
                    .is_some_and(|topic| index >= 0 && (index as usize) < topic.partitions.len());
                Err(if exists {
                    ResponseError::NotLeaderOrFollower
                } else {
                    ResponseError::UnknownTopicOrPartition
                })
            }
        }
    }

    /// A partition this broker leads, after checking the client's idea of its leader epoch.
    pub fn leader_at_epoch(
        &self,
        image: &MetadataImage,
        topic: &str,
        index: i32,
        current_leader_epoch: i32,
    ) -> Result<Arc<Partition>, ResponseError> {
        let partition = self.leader(image, topic, index)?;
        check_leader_epoch(&partition, current_leader_epoch)?;
        Ok(partition)
    }

    /// Every hosted partition.
    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().values().cloned().collect()
    }

    /// The log configuration a topic's effective settings give.
    pub fn log_config(&self, topic: &TopicImage) -> LogConfig {
        log_config_from(&topic.configs, &self.topic_defaults)
    }

    /// Broker-level topic defaults, for DescribeConfigs.
    pub fn topic_defaults(&self) -> &BTreeMap<String, String> {
        &self.topic_defaults
    }

    /// Opens logs for new partitions, closes and removes those of deleted topics, and applies
    /// configuration and leader-epoch changes. Also sweeps directories no topic owns.
    pub fn apply(&self, image: &MetadataImage) -> Result<(), BrokerError> {
        let now_ms = crate::now_ms();
        let mut wanted: HashMap<(String, i32), (&Arc<TopicImage>, &PartitionImage)> =
            HashMap::new();
        for topic in image.topics.values() {
            for partition in &topic.partitions {
                if partition.replicas.contains(&self.node_id) {
                    wanted.insert(
                        (topic.name.clone(), partition.partition),
                        (topic, partition),
                    );
                }
            }
        }
        let mut partitions = self.partitions.write();
        let removed: Vec<(String, i32)> = partitions
            .keys()
            .filter(|key| !wanted.contains_key(*key))
            .cloned()
            .collect();
        for key in removed {
            if let Some(partition) = partitions.remove(&key) {
                // Requests still holding it (acks=all waits, long polls) must learn now that it
                // is led elsewhere, not when they time out.
                partition.resign();
                if let Err(error) = partition.close() {
                    tracing::warn!(topic = %key.0, partition = key.1, %error, "closing a deleted partition failed");
                }
                self.remove_directory(&partition_dir_name(&key.0, key.1));
            }
        }
        for (key, (topic, assignment)) in wanted {
            let config = self.log_config(topic);
            match partitions.get(&key) {
                Some(partition) => {
                    partition.set_config(config);
                    partition.apply_assignment(self.node_id, assignment, now_ms);
                }
                None => {
                    let directory = self.data_dir.join(partition_dir_name(&key.0, key.1));
                    let log = Log::open(&directory, config)?;
                    let partition = Partition::new(
                        key.0.clone(),
                        topic.topic_id,
                        key.1,
                        assignment.leader_epoch,
                        log,
                    );
                    if let Some((topic_id, high_watermark)) = self.checkpointed.lock().remove(&key)
                    {
                        if topic_id == topic.topic_id {
                            partition.restore_high_watermark(high_watermark);
                        }
                    }
                    partition.apply_assignment(self.node_id, assignment, now_ms);
                    partitions.insert(key, Arc::new(partition));
                }
            }
        }
        drop(partitions);
        self.sweep_orphans()?;
        Ok(())
    }

    fn sweep_orphans(&self) -> Result<(), BrokerError> {
        let hosted: std::collections::HashSet<String> = self
            .partitions
            .read()
            .keys()
            .map(|(topic, index)| partition_dir_name(topic, *index))
            .collect();
        for entry in std::fs::read_dir(&self.data_dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().to_string();
            if !entry.file_type()?.is_dir() || name == METADATA_DIR_NAME || hosted.contains(&name) {
                continue;
            }
            if name.ends_with(DELETED_SUFFIX) || is_partition_dir_name(&name) {
                self.remove_directory(&name);
            }
        }
        Ok(())
    }

    /// Renames a partition directory out of the way, then deletes it in the background.
    fn remove_directory(&self, name: &str) {
        let source = self.data_dir.join(name);
        let target = if name.ends_with(DELETED_SUFFIX) {
            source.clone()
        } else {
            self.data_dir.join(format!(
                "{name}.{}{DELETED_SUFFIX}",
                uuid::Uuid::new_v4().simple()
            ))
        };
        if source != target {
            if let Err(error) = std::fs::rename(&source, &target) {
                tracing::warn!(directory = %source.display(), %error, "could not rename deleted partition");
                return;
            }
        }
        tracing::info!(directory = %name, "partition directory deleted");
        let delete = move || {
            if let Err(error) = std::fs::remove_dir_all(&target) {
                tracing::warn!(directory = %target.display(), %error, "could not delete partition directory");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(delete)),
            Err(_) => delete(),
        }
    }

    /// Checkpoints the high watermarks, then flushes and closes every log, for a clean
    /// shutdown.
    pub fn close_all(&self) {
        if let Err(error) = self.checkpoint_high_watermarks() {
            tracing::error!(%error, "writing the high-watermark checkpoint failed");
        }
        for partition in self
            .partitions
            .write()
            .drain()
            .map(|(_, partition)| partition)
        {
            if let Err(error) = partition.close() {
                tracing::error!(topic = %partition.topic, partition = partition.index, %error, "closing log failed");
            }
        }
    }
}

/// One partition a fetch reads.
pub struct ReadTarget {
    /// The partition, if this broker leads it, or the error to answer with.
    pub partition: Result<Arc<Partition>, ResponseError>,
    /// The offset to read from.
    pub fetch_offset: i64,
    /// The partition's byte limit.
    pub max_bytes: usize,
    /// The epoch the client believes the leader has, or -1.
    pub current_leader_epoch: i32,
}

/// What a fetch read from one partition.
pub struct PartitionRead {
    /// Whole batches (possibly none), or why the partition could not be read.
    pub records: Result<Bytes, ResponseError>,
    /// The partition's high watermark; -1 when it was not reached.
    pub high_watermark: i64,
    /// The partition's last stable offset; -1 when it was not reached.
    pub last_stable_offset: i64,
    /// The partition's log start offset; -1 when it was not reached.
    pub log_start_offset: i64,
    /// For `read_committed`: the aborted transactions of the records returned.
    pub aborted: Option<Vec<AbortedTxn>>,
}

/// Reads every target once, off the reactor; returns the targets back, what was read, the bytes
/// in all, and whether any failed.
async fn read_all(
    targets: Vec<ReadTarget>,
    max_bytes: usize,
    isolation: FetchIsolation,
) -> (Vec<ReadTarget>, Vec<PartitionRead>, usize, bool) {
    let read = tokio::task::spawn_blocking(move || {
        let mut remaining = max_bytes;
        let mut total = 0;
        let mut had_error = false;
        let mut reads = Vec::with_capacity(targets.len());
        for target in &targets {
            let unreached = |error: ResponseError| PartitionRead {
                records: Err(error),
                high_watermark: -1,
                last_stable_offset: -1,
                log_start_offset: -1,
                aborted: None,
            };
            // A partition demoted since the fetch began is not read: its reader must go to the
            // new leader.
            let checked = target
                .partition
                .as_ref()
                .map_err(|error| *error)
                .and_then(|partition| match partition.is_leader() {
                    true => Ok(partition),
                    false => Err(ResponseError::NotLeaderOrFollower),
                })
                .and_then(|partition| {
                    check_leader_epoch(partition, target.current_leader_epoch).map(|()| partition)
                });
            let partition = match checked {
                Ok(partition) => partition,
                Err(error) => {
                    had_error = true;
                    reads.push(unreached(error));
                    continue;
                }
            };
            // KIP-74: the first batch of the response is returned whole even above the
            // limits; later partitions only return batches that fit.
            let limit = target.max_bytes.min(remaining);
            let read = read_partition(partition, target.fetch_offset, limit, total == 0, isolation);
            match &read.records {
                Ok(bytes) => {
                    total += bytes.len();
                    remaining = remaining.saturating_sub(bytes.len());
                }
                Err(_) => had_error = true,
            }
            reads.push(read);
        }
        (targets, reads, total, had_error)
    })
    .await;
    read.expect("fetch read task panicked")
}

fn read_partition(
    partition: &Partition,
    offset: i64,
    limit: usize,
    whole_first_batch: bool,
    isolation: FetchIsolation,
) -> PartitionRead {
    let read = match partition.read(offset, limit, isolation) {
        Ok(read) => read,
        Err(error) => {
            if !matches!(error, cauce_log::LogError::OffsetOutOfRange { .. }) {
                tracing::error!(topic = %partition.topic, partition = partition.index, %error, "fetch read failed");
            }
            return PartitionRead {
                records: Err(log_error_code(&error)),
                high_watermark: partition.high_watermark(),
                last_stable_offset: partition.last_stable_offset(),
                log_start_offset: partition.with_log(|log| log.log_start_offset()),
                aborted: None,
            };
        }
    };
    let records = match &read.slice {
        None => Ok(Bytes::new()),
        Some(slice) if slice.length > limit && !whole_first_batch => Ok(Bytes::new()),
        Some(slice) => slice.read_bytes().map_err(|error| {
            tracing::error!(topic = %partition.topic, partition = partition.index, %error, "fetch read failed");
            ResponseError::KafkaStorageError
        }),
    };
    // A batch dropped for the limit takes its aborted transactions with it.
    let aborted = match &records {
        Ok(bytes) if !bytes.is_empty() => read.aborted,
        _ => None,
    };
    PartitionRead {
        records,
        high_watermark: read.high_watermark,
        last_stable_offset: read.last_stable_offset,
        log_start_offset: read.log_start_offset,
        aborted,
    }
}

/// KIP-320: a client that knows a newer epoch than this broker gets UNKNOWN_LEADER_EPOCH (the
/// broker is behind), one with an older epoch gets FENCED_LEADER_EPOCH; -1 skips the check.
pub fn check_leader_epoch(
    partition: &Partition,
    current_leader_epoch: i32,
) -> Result<(), ResponseError> {
    let epoch = partition.leader_epoch();
    if current_leader_epoch < 0 || current_leader_epoch == epoch {
        Ok(())
    } else if current_leader_epoch > epoch {
        Err(ResponseError::UnknownLeaderEpoch)
    } else {
        Err(ResponseError::FencedLeaderEpoch)
    }
}

/// Kafka's directory name for a partition: `<topic>-<partition>`.
pub fn partition_dir_name(topic: &str, index: i32) -> String {
    format!("{topic}-{index}")
}

fn is_partition_dir_name(name: &str) -> bool {
    name.rsplit_once('-')
        .is_some_and(|(topic, index)| !topic.is_empty() && index.parse::<u32>().is_ok())
}

/// Builds the log configuration from topic overrides and broker defaults.
pub fn log_config_from(
    overrides: &BTreeMap<String, String>,
    broker_defaults: &BTreeMap<String, String>,
) -> LogConfig {
    let mut config = LogConfig::default();
    for (def, value, _) in effective_topic_configs(overrides, broker_defaults) {
        let as_i64 = || value.trim().parse::<i64>().unwrap_or(i64::MAX);
        match def.name {
            "segment.bytes" => config.segment_bytes = as_i64().max(1) as u64,
            "segment.ms" => config.segment_ms = as_i64(),
            "retention.ms" => config.retention_ms = as_i64(),
            "retention.bytes" => config.retention_bytes = as_i64(),
            "index.interval.bytes" => {
                config.index_interval_bytes = as_i64().clamp(0, u32::MAX as i64) as u32
            }
            "segment.index.bytes" => {
                config.segment_index_bytes = as_i64().clamp(0, u32::MAX as i64) as u32
            }
            "flush.messages" => config.flush_messages = as_i64().max(1) as u64,
            "flush.ms" => config.flush_ms = as_i64().max(0) as u64,
            "max.message.bytes" => {
                config.max_message_bytes = as_i64().clamp(0, u32::MAX as i64) as u32
            }
            "cleanup.policy" => {
                let policies: Vec<&str> = value.split(',').map(str::trim).collect();
                config.cleanup_policy_compact = policies.contains(&"compact");
                config.cleanup_policy_delete = policies.contains(&"delete");
            }
            "delete.retention.ms" => config.delete_retention_ms = as_i64(),
            "min.cleanable.dirty.ratio" => {
                config.min_cleanable_dirty_ratio = value.trim().parse().unwrap_or(0.5)
            }
            "min.compaction.lag.ms" => config.min_compaction_lag_ms = as_i64(),
            "max.compaction.lag.ms" => config.max_compaction_lag_ms = as_i64(),
            "message.timestamp.before.max.ms" => config.message_timestamp_before_max_ms = as_i64(),
            "message.timestamp.after.max.ms" => config.message_timestamp_after_max_ms = as_i64(),
            "message.timestamp.type" => {
                config.message_timestamp_type = if value == "LogAppendTime" {
                    TimestampType::LogAppendTime
                } else {
                    TimestampType::CreateTime
                }
            }
            _ => {}
        }
    }
    config
}
