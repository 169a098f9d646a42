//! The runtime coordinators run on: an internal topic's partitions as independent shards.
//!
//! A coordinator (consumer groups today; transactions and streams groups next) keeps its state
//! in a compacted internal topic (`__consumer_offsets`, `__transaction_state`) whose partitions
//! split the keys between brokers: the leader of a partition coordinates the keys that hash to
//! it. This module does what every such coordinator needs and none should write again:
//!
//! - **Shards**: the state of each partition this broker coordinates lives behind its own lock,
//!   so requests for keys of different partitions never wait for each other.
//! - **Loading and unloading**: [`CoordinatorRuntime::follow_leadership`] replays the partitions
//!   this broker has come to lead into fresh shards (the coordinator's
//!   [`CoordinatorShard::replay`] applies each record) and drops the shards of those it no longer
//!   leads.
//! - **Writing**: [`CoordinatorRuntime::write`] appends records to a shard's partition. Call it
//!   while holding the shard's lock, so that the log's order is the order in which the state
//!   changed; then, without the lock, await [`Written::replicated`] when the change must reach the
//!   in-sync replicas before it is answered (as Kafka's coordinators write with `acks=all`).
//!
//! The coordinator decides what to write; the runtime never reads a key or a value.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use cauce_metadata::TopicRequest;
use cauce_protocol::batch::BatchIter;
use cauce_protocol::control::{parse_control, ControlRecord, TransactionResult};
use cauce_protocol::records::{build_batch, records, BatchOptions, NewRecord};
use parking_lot::{Mutex, RwLock};

use crate::partition::{FetchIsolation, Partition};
use crate::replica_manager::ReplicaManager;
use crate::{Broker, BrokerError};

/// The partition of a coordinator key (a group id, a transactional id) in an internal topic of
/// `partitions` partitions, as Kafka places it: Java's `String.hashCode` (over UTF-16 units,
/// wrapping), made non-negative by Kafka's `Utils.abs` (which maps `i32::MIN` to 0, where
/// masking the sign bit would give another partition for every negative hash), modulo the
/// partition count.
pub fn partition_for_key(key: &str, partitions: i32) -> i32 {
    let hash = key.encode_utf16().fold(0i32, |hash, unit| {
        hash.wrapping_mul(31).wrapping_add(i32::from(unit))
    });
    let non_negative = if hash == i32::MIN { 0 } else { hash.abs() };
    non_negative % partitions.max(1)
}

/// Creates a coordinator's internal topic if it does not exist yet, and waits until this
/// broker has applied it (opened its partitions, loaded the shards it leads). A cluster waits
/// until `replication_factor` brokers are live, as Kafka does; a single node keeps one copy.
/// `creation` is held meanwhile, so that no request sees the new topic before this broker
/// serves it.
pub async fn ensure_internal_topic(
    broker: &Broker,
    creation: &tokio::sync::Mutex<()>,
    name: &str,
    partitions: i32,
    replication_factor: i16,
    configs: BTreeMap<String, String>,
) -> Result<(), BrokerError> {
    let _creation = creation.lock().await;
    let image = broker.metadata.image();
    if image.topic(name).is_some() {
        return Ok(());
    }
    let live = image
        .brokers
        .values()
        .filter(|broker| !broker.fenced)
        .count();
    let wanted = replication_factor.max(1);
    let replication_factor = if broker.quorum.is_none() {
        wanted.min(live.max(1) as i16)
    } else if (live as i16) < wanted {
        return Err(BrokerError::Config(format!(
            "{name} needs {wanted} live brokers (its replication factor), found {live}"
        )));
    } else {
        wanted
    };
    let request = TopicRequest {
        name: name.to_string(),
        num_partitions: partitions,
        replication_factor,
        assignments: Vec::new(),
        configs,
    };
    match broker.metadata.create_topic(&request, false).await {
        Ok(_) | Err(cauce_metadata::MetadataError::TopicAlreadyExists(_)) => {}
        Err(error) => return Err(error.into()),
    }
    broker.logs_caught_up().await;
    Ok(())
}

/// What a coordinator keeps for one partition of its internal topic.
pub trait CoordinatorShard: Send + 'static {
    /// Applies one record read back from the partition while it loads. A record without a
    /// value is a tombstone. `transactional_producer` names the producer of a transactional
    /// batch, whose records count only once its COMMIT marker is replayed.
    fn replay(&mut self, key: &[u8], value: Option<&[u8]>, transactional_producer: Option<i64>);

    /// Applies a transaction marker read back from the partition: the producer's transactional
    /// records before it are committed or aborted.
    fn replay_marker(&mut self, _producer_id: i64, _result: TransactionResult) {}

    /// Called once every record of the partition has been replayed, with the time, so the
    /// coordinator can rebuild what it derives from the records.
    fn finish_loading(&mut self, now_ms: i64);
}

/// One shard, shared by the requests that touch its keys.
pub type SharedShard<S> = Arc<Mutex<S>>;

/// The shards of one coordinator and the internal topic they are kept in.
pub struct CoordinatorRuntime<S: CoordinatorShard> {
    /// The internal topic, for reads, writes and logs.
    topic: &'static str,
    /// Partitions of the internal topic: a key's partition depends on it.
    partition_count: i32,
    /// The shard of each partition served here. A partition is in `loaded` once replayed; a
    /// single node also serves shards before the topic exists (nothing to replay yet).
    shards: RwLock<BTreeMap<i32, SharedShard<S>>>,
    /// Partitions this broker leads and has replayed.
    loaded: Mutex<BTreeSet<i32>>,
    /// Builds the empty shard of a partition.
    new_shard: Box<dyn Fn(i32) -> S + Send + Sync>,
    /// Held while leadership is followed, so that two callers never replay one partition at
    /// once.
    following: Mutex<()>,
}

/// Records appended by [`CoordinatorRuntime::write`], before they are known to be replicated.
pub struct Written {
    /// The partition they went to.
    partition: Arc<Partition>,
    /// The offset after the last of them.
    end_offset: i64,
}

impl Written {
    /// Waits until the in-sync replicas have the records (the high watermark passes them), or
    /// fails after `timeout` or when this broker stops leading the partition.
    pub async fn replicated(self, timeout: Duration) -> Result<(), BrokerError> {
        if self.partition.high_watermark() >= self.end_offset {
            return Ok(());
        }
        self.partition
            .wait_replicated(self.end_offset, tokio::time::Instant::now() + timeout)
            .await
            .map_err(|error| {
                BrokerError::Config(format!(
                    "{}-{} write not replicated: {error:?}",
                    self.partition.topic, self.partition.index
                ))
            })
    }
}

impl<S: CoordinatorShard> CoordinatorRuntime<S> {
    /// A runtime with no shard yet; [`CoordinatorRuntime::follow_leadership`] loads them.
    pub fn new(
        topic: &'static str,
        partition_count: i32,
        new_shard: impl Fn(i32) -> S + Send + Sync + 'static,
    ) -> CoordinatorRuntime<S> {
        CoordinatorRuntime {
            topic,
            partition_count,
            shards: RwLock::new(BTreeMap::new()),
            loaded: Mutex::new(BTreeSet::new()),
            new_shard: Box::new(new_shard),
            following: Mutex::new(()),
        }
    }

    /// Whether `partition` has been replayed here and this broker leads it.
    pub fn is_loaded(&self, partition: i32) -> bool {
        self.loaded.lock().contains(&partition)
    }

    /// The shard of `partition`, if served here.
    pub fn shard(&self, partition: i32) -> Option<SharedShard<S>> {
        self.shards.read().get(&partition).cloned()
    }

    /// The shard of `partition`, created empty if there is none. Only for a partition the
    /// coordinator serves (loaded, or a single node before the topic exists).
    pub fn shard_or_new(&self, partition: i32) -> SharedShard<S> {
        if let Some(shard) = self.shard(partition) {
            return shard;
        }
        self.shards
            .write()
            .entry(partition)
            .or_insert_with(|| Arc::new(Mutex::new((self.new_shard)(partition))))
            .clone()
    }

    /// Every shard served here, with its partition; for timers and listings.
    pub fn shards(&self) -> Vec<(i32, SharedShard<S>)> {
        self.shards
            .read()
            .iter()
            .map(|(partition, shard)| (*partition, shard.clone()))
            .collect()
    }

    /// Serves the partitions this broker leads now: replays those it has come to lead (at
    /// startup, or after another broker failed) and drops the shards of those it no longer
    /// leads. Blocking: it reads logs.
    pub fn follow_leadership(&self, logs: &ReplicaManager, now_ms: i64) -> Result<(), BrokerError> {
        let _following = self.following.lock();
        let led: BTreeSet<i32> = (0..self.partition_count)
            .filter(|index| {
                logs.partition(self.topic, *index)
                    .is_some_and(|partition| partition.is_leader())
            })
            .collect();
        let loaded = self.loaded.lock().clone();
        let lost: Vec<i32> = loaded.difference(&led).copied().collect();
        if !lost.is_empty() {
            self.loaded
                .lock()
                .retain(|partition| !lost.contains(partition));
            let mut shards = self.shards.write();
            for partition in &lost {
                shards.remove(partition);
            }
            tracing::info!(topic = self.topic, partitions = ?lost, "stopped coordinating these partitions");
        }
        for partition in led.difference(&loaded) {
            self.load(logs, *partition, now_ms)?;
        }
        Ok(())
    }

    /// Replays one partition into its shard (an existing one keeps what it has: a single node
    /// serves groups before the topic exists, and the new topic's log is empty).
    fn load(
        &self,
        logs: &ReplicaManager,
        partition_index: i32,
        now_ms: i64,
    ) -> Result<(), BrokerError> {
        let Some(partition) = logs.partition(self.topic, partition_index) else {
            return Ok(());
        };
        let shard = self.shard(partition_index);
        let shard =
            shard.unwrap_or_else(|| Arc::new(Mutex::new((self.new_shard)(partition_index))));
        let mut replayed = 0u64;
        {
            let mut state = shard.lock();
            let (mut position, max_decompressed) = partition.with_log(|log| {
                (
                    log.log_start_offset(),
                    log.config().max_decompressed_bytes(),
                )
            });
            loop {
                let read = partition.read(position, 1 << 20, FetchIsolation::LogEnd)?;
                let Some(slice) = read.slice else { break };
                let bytes = slice.read_bytes().map_err(BrokerError::Io)?;
                let mut next = position;
                for batch in BatchIter::new(&bytes) {
                    next = batch.header.next_offset();
                    if batch.header.is_control() {
                        if let Ok((header, ControlRecord::EndTxn(marker))) =
                            parse_control(batch.bytes)
                        {
                            state.replay_marker(header.producer_id, marker.result);
                        }
                        continue;
                    }
                    let transactional_producer = batch
                        .header
                        .is_transactional()
                        .then_some(batch.header.producer_id);
                    let Ok((_, iterator)) = records(batch.bytes, max_decompressed) else {
                        continue;
                    };
                    for record in iterator.flatten() {
                        let Some(key) = record.key.as_deref() else {
                            continue;
                        };
                        state.replay(key, record.value.as_deref(), transactional_producer);
                        replayed += 1;
                    }
                }
                if next <= position {
                    break;
                }
                position = next;
            }
            state.finish_loading(now_ms);
        }
        self.shards.write().insert(partition_index, shard);
        self.loaded.lock().insert(partition_index);
        tracing::info!(
            topic = self.topic,
            partition = partition_index,
            records = replayed,
            "coordinator partition loaded"
        );
        Ok(())
    }

    /// Appends `entries` (key, value or `None` for a tombstone) to `partition` as one batch.
    /// Call it holding the shard's lock, so the log keeps the order of the state's changes.
    pub fn write(
        &self,
        logs: &ReplicaManager,
        partition_index: i32,
        entries: Vec<(Vec<u8>, Option<Vec<u8>>)>,
        now_ms: i64,
    ) -> Result<Written, BrokerError> {
        self.append(logs, partition_index, entries, None, now_ms)
    }

    /// Like [`CoordinatorRuntime::write`], as one transactional batch of the producer
    /// `(producer id, epoch)`: the records take effect when its COMMIT marker is written. The
    /// batch continues the producer's sequence in the partition, so that the log's checks
    /// hold for the coordinator's writes as for a client's.
    pub fn write_transactional(
        &self,
        logs: &ReplicaManager,
        partition_index: i32,
        entries: Vec<(Vec<u8>, Option<Vec<u8>>)>,
        producer: (i64, i16),
        now_ms: i64,
    ) -> Result<Written, BrokerError> {
        self.append(logs, partition_index, entries, Some(producer), now_ms)
    }

    /// Appends with the acknowledgement of the local write only; see `write`.
    fn append(
        &self,
        logs: &ReplicaManager,
        partition_index: i32,
        entries: Vec<(Vec<u8>, Option<Vec<u8>>)>,
        producer: Option<(i64, i16)>,
        now_ms: i64,
    ) -> Result<Written, BrokerError> {
        let Some(partition) = logs.partition(self.topic, partition_index) else {
            return Err(BrokerError::Config(format!(
                "{} partition {partition_index} is not hosted here",
                self.topic
            )));
        };
        let new_records: Vec<NewRecord> = entries
            .into_iter()
            .map(|(key, value)| NewRecord {
                timestamp_ms: now_ms,
                key: Some(key),
                value,
                headers: Vec::new(),
            })
            .collect();
        let options = match producer {
            None => BatchOptions::default(),
            Some((producer_id, producer_epoch)) => {
                let base_sequence = partition.with_log(|log| {
                    log.producer_state(producer_id)
                        .filter(|entry| entry.producer_epoch == producer_epoch)
                        .and_then(|entry| entry.last_sequence())
                        .map_or(0, |last| cauce_protocol::batch::increment_sequence(last, 1))
                });
                BatchOptions {
                    producer_id,
                    producer_epoch,
                    base_sequence,
                    is_transactional: true,
                    ..BatchOptions::default()
                }
            }
        };
        let batch = build_batch(0, &new_records, &options)
            .map_err(|error| BrokerError::Config(error.to_string()))?;
        let mut bytes = BytesMut::from(&batch[..]);
        let outcome = partition.append(&mut bytes, now_ms)?;
        Ok(Written {
            partition,
            end_offset: outcome.last_offset + 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::partition_for_key;

    #[test]
    fn keys_are_placed_as_kafka_places_them() {
        // Java's hashCode of each key, then Utils.abs(hash) % 50.
        for (key, hash, partition) in [
            ("hello", 99_162_322, 22),
            ("my-txn", -1_061_187_895, 45),
            ("txn-copier", -808_094_827, 27),
            ("transactional-id-1", 1_051_133_891, 41),
            // Outside the basic plane: two UTF-16 units for the emoji, as Java counts them.
            ("grupo-ñ-😀", -1_357_466_973, 23),
            ("polygenelubricants", i32::MIN, 0),
            ("", 0, 0),
        ] {
            assert_eq!(partition_for_key(key, 50), partition, "{key} (hash {hash})");
        }
        // Masking the sign bit instead would have put "my-txn" on partition 3.
        assert_ne!((-1_061_187_895i32 & 0x7fff_ffff) % 50, 45);
    }
}
