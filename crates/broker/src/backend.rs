//! The log backend: makes the partitions on this broker's disk match the metadata image.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cauce_log::{Log, LogConfig, TimestampType};
use cauce_metadata::topic_config::effective_topic_configs;
use cauce_metadata::{MetadataImage, PartitionImage, TopicImage};
use parking_lot::{Mutex, RwLock};

use cauce_protocol::ResponseError;

use crate::high_watermarks::{self, HighWatermarks};
use crate::partition::Partition;
use crate::BrokerError;

/// Name of the folder, under the data dir, that holds the metadata log.
pub const METADATA_DIR_NAME: &str = "__cluster_metadata-0";
const DELETED_SUFFIX: &str = "-delete";

/// The partitions this broker hosts, kept in step with the metadata image.
pub struct LogBackend {
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

impl LogBackend {
    /// A backend over `data_dir` with no partitions opened yet.
    pub fn new(
        data_dir: &Path,
        node_id: i32,
        topic_defaults: BTreeMap<String, String>,
    ) -> LogBackend {
        let checkpointed = high_watermarks::read(data_dir);
        LogBackend {
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
