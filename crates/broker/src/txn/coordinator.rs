//! The transaction coordinator's shell: it serves the transactional ids of the
//! `__transaction_state` partitions this broker leads, one shard each on the coordinator
//! runtime, writes every state change before answering, and has the partition leaders write
//! the markers of decided transactions.
//!
//! Decisions are [`super::state`]'s. A change is written under the shard's lock, with the id
//! marked pending so that any other request for it gets CONCURRENT_TRANSACTIONS; the lock is
//! released while the in-sync replicas take the record, then the change is adopted (or, if the
//! write failed, dropped). A commit or abort is decided once its Prepare record is replicated;
//! markers then go to every partition of the transaction (retried until each leader has one),
//! and a Complete record ends it. A coordinator that loads a partition finishes the Prepare
//! transactions it finds, and aborts the open ones that outlive their timeout.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cauce_protocol::control::{EndTxnMarker, TransactionResult};
use cauce_protocol::ResponseError;

use super::records::{decode_txn_key, decode_txn_value, txn_key, txn_value};
use super::state::{
    self, complete, end_transaction, expired, fence_producer_epoch, init_producer_id, timed_out,
    Decision, ProducerIdAndEpoch, TxnMetadata, TxnState,
};
use crate::coordinator_runtime::{
    ensure_internal_topic, partition_for_key, CoordinatorRuntime, CoordinatorShard, SharedShard,
};
use crate::group::coordinator::OFFSETS_TOPIC;
use crate::{now_ms, Broker, BrokerError};

/// The internal topic of transaction state.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// How long a state write waits for the in-sync replicas.
const REPLICATION_TIMEOUT: Duration = Duration::from_secs(5);
/// The pause between two rounds of markers that did not all land.
const MARKER_RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// Settings the coordinator takes from the broker configuration.
#[derive(Debug, Clone, Copy)]
pub struct TxnSettings {
    /// `transaction.state.log.num.partitions`.
    pub partitions: i32,
    /// `transaction.state.log.replication.factor`.
    pub replication_factor: i16,
    /// `transaction.state.log.min.isr`.
    pub min_isr: i32,
    /// `transaction.state.log.segment.bytes`.
    pub segment_bytes: i64,
    /// `transaction.max.timeout.ms`.
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`.
    pub id_expiration_ms: i64,
}

/// One transactional id as the shard holds it.
#[derive(Debug, Clone)]
struct TxnEntry {
    /// Its state as last written.
    metadata: TxnMetadata,
    /// A write for it is in flight.
    pending: bool,
    /// Markers of its Prepare state are being written.
    markers_in_flight: bool,
}

/// The transactional ids of one `__transaction_state` partition.
#[derive(Debug, Default)]
pub struct TxnShard {
    /// By transactional id.
    ids: BTreeMap<String, TxnEntry>,
}

impl CoordinatorShard for TxnShard {
    fn replay(&mut self, key: &[u8], value: Option<&[u8]>, _transactional: Option<i64>) {
        let Some(id) = decode_txn_key(key) else {
            tracing::warn!(
                "skipping a __transaction_state record whose key is not a transaction's"
            );
            return;
        };
        match value {
            None => {
                self.ids.remove(&id);
            }
            Some(value) => match decode_txn_value(value) {
                Some(metadata) => {
                    self.ids.insert(
                        id,
                        TxnEntry {
                            metadata,
                            pending: false,
                            markers_in_flight: false,
                        },
                    );
                }
                None => {
                    tracing::warn!(transactional_id = %id, "skipping an unreadable transaction state")
                }
            },
        }
    }

    fn finish_loading(&mut self, _now_ms: i64) {
        // Prepare transactions are finished by the next tick, which sends their markers.
    }
}

/// The transaction coordinator of this broker.
pub struct TxnCoordinator {
    /// Settings from the broker configuration.
    settings: TxnSettings,
    /// The ids, one shard per `__transaction_state` partition served here.
    runtime: CoordinatorRuntime<TxnShard>,
    /// Held while `__transaction_state` is created.
    topic_creation: tokio::sync::Mutex<()>,
    /// Transactions completed here: committed, aborted.
    ended: (AtomicU64, AtomicU64),
}

/// A change decided under the shard's lock, to be written.
struct Change {
    /// The state to write and adopt.
    next: TxnMetadata,
    /// Whether the id is new: if the write fails, it is forgotten again.
    created: bool,
}

impl TxnCoordinator {
    /// An empty coordinator; [`TxnCoordinator::follow_leadership`] loads the ids.
    pub fn new(settings: TxnSettings) -> TxnCoordinator {
        TxnCoordinator {
            settings,
            runtime: CoordinatorRuntime::new(TRANSACTION_STATE_TOPIC, settings.partitions, |_| {
                TxnShard::default()
            }),
            topic_creation: tokio::sync::Mutex::new(()),
            ended: (AtomicU64::new(0), AtomicU64::new(0)),
        }
    }

    /// The ids this broker coordinates, counted by their state's Kafka name.
    pub fn count_by_state(&self) -> BTreeMap<&'static str, u64> {
        let mut counts = BTreeMap::new();
        for (_, shard) in self.runtime.shards() {
            for entry in shard.lock().ids.values() {
                *counts.entry(entry.metadata.state.name()).or_insert(0) += 1;
            }
        }
        counts
    }

    /// Transactions completed here since the start: (committed, aborted).
    pub fn ended(&self) -> (u64, u64) {
        (
            self.ended.0.load(Ordering::Relaxed),
            self.ended.1.load(Ordering::Relaxed),
        )
    }

    /// The `__transaction_state` partition that holds a transactional id.
    pub fn partition_of(&self, transactional_id: &str) -> i32 {
        partition_for_key(transactional_id, self.settings.partitions)
    }

    /// Creates `__transaction_state` if needed (compacted, `min.insync.replicas` from
    /// `transaction.state.log.min.isr`, capped at the copies a single node can keep).
    pub async fn ensure_topic(&self, broker: &Broker) -> Result<(), BrokerError> {
        if broker
            .metadata
            .image()
            .topic(TRANSACTION_STATE_TOPIC)
            .is_some()
        {
            return Ok(());
        }
        let replication_factor = if broker.quorum.is_none() {
            1
        } else {
            self.settings.replication_factor
        };
        let min_isr = self
            .settings
            .min_isr
            .min(i32::from(replication_factor))
            .max(1);
        let configs = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("compression.type".to_string(), "uncompressed".to_string()),
            ("min.insync.replicas".to_string(), min_isr.to_string()),
            (
                "segment.bytes".to_string(),
                self.settings.segment_bytes.to_string(),
            ),
            (
                "unclean.leader.election.enable".to_string(),
                "false".to_string(),
            ),
        ]);
        ensure_internal_topic(
            broker,
            &self.topic_creation,
            TRANSACTION_STATE_TOPIC,
            self.settings.partitions,
            replication_factor,
            configs,
        )
        .await
    }

    /// Serves the `__transaction_state` partitions this broker leads now. Blocking: it reads
    /// logs.
    pub fn follow_leadership(&self, broker: &Broker) -> Result<(), BrokerError> {
        self.runtime.follow_leadership(&broker.replicas, now_ms())
    }

    /// The shard holding `transactional_id`, or the error telling the client to look for the
    /// coordinator again.
    fn serving_shard(
        &self,
        transactional_id: &str,
    ) -> Result<SharedShard<TxnShard>, ResponseError> {
        let partition = self.partition_of(transactional_id);
        if !self.runtime.is_loaded(partition) {
            return Err(ResponseError::NotCoordinator);
        }
        self.runtime
            .shard(partition)
            .ok_or(ResponseError::NotCoordinator)
    }

    /// The coordinator epoch markers carry: the leader epoch of the id's partition here.
    fn coordinator_epoch(&self, broker: &Broker, partition: i32) -> Option<i32> {
        broker
            .replicas
            .partition(TRANSACTION_STATE_TOPIC, partition)
            .filter(|partition| partition.is_leader())
            .map(|partition| partition.leader_epoch())
    }

    /// Decides under the shard's lock with `decide` (given the id's state, if any, refused with
    /// CONCURRENT_TRANSACTIONS while a write is pending), writes what it decided, waits for the
    /// in-sync replicas, and adopts it. `Ok(None)`: decided with nothing to write.
    async fn change(
        &self,
        broker: &Broker,
        transactional_id: &str,
        decide: impl FnOnce(Option<&TxnMetadata>) -> Result<Option<TxnMetadata>, ResponseError>,
    ) -> Result<Option<TxnMetadata>, ResponseError> {
        let shard = self.serving_shard(transactional_id)?;
        let partition = self.partition_of(transactional_id);
        let (written, change) = {
            let mut shard = shard.lock();
            let entry = shard.ids.get(transactional_id);
            if entry.is_some_and(|entry| entry.pending) {
                return Err(ResponseError::ConcurrentTransactions);
            }
            let Some(next) = decide(entry.map(|entry| &entry.metadata))? else {
                return Ok(None);
            };
            let created = entry.is_none();
            let record = vec![(txn_key(transactional_id), Some(txn_value(&next)))];
            let written = self
                .runtime
                .write(&broker.replicas, partition, record, now_ms())
                .map_err(|error| {
                    tracing::warn!(transactional_id, %error, "writing transaction state failed");
                    ResponseError::NotCoordinator
                })?;
            let entry = shard
                .ids
                .entry(transactional_id.to_string())
                .or_insert_with(|| TxnEntry {
                    metadata: next.clone(),
                    pending: false,
                    markers_in_flight: false,
                });
            entry.pending = true;
            (written, Change { next, created })
        };
        let replicated = written.replicated(REPLICATION_TIMEOUT).await;
        let mut shard = shard.lock();
        let Some(entry) = shard.ids.get_mut(transactional_id) else {
            return Err(ResponseError::NotCoordinator);
        };
        entry.pending = false;
        match replicated {
            Ok(()) => {
                entry.metadata = change.next.clone();
                Ok(Some(change.next))
            }
            Err(error) => {
                tracing::warn!(transactional_id, %error, "transaction state not replicated");
                if change.created {
                    shard.ids.remove(transactional_id);
                }
                Err(ResponseError::CoordinatorNotAvailable)
            }
        }
    }

    /// InitProducerId with a transactional id: the producer id and epoch the producer now owns.
    /// A producer whose predecessor left a transaction open gets CONCURRENT_TRANSACTIONS while
    /// the coordinator aborts it, and retries.
    pub async fn init_producer_id(
        &self,
        broker: &Arc<Broker>,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<ProducerIdAndEpoch>,
    ) -> Result<(i64, i16), ResponseError> {
        if timeout_ms <= 0 || timeout_ms > self.settings.max_timeout_ms {
            return Err(ResponseError::InvalidTransactionTimeout);
        }
        // A producer id is needed for a new id or an exhausted epoch: take one before locking.
        let shard = self.serving_shard(transactional_id)?;
        let needs_id = {
            let shard = shard.lock();
            shard
                .ids
                .get(transactional_id)
                .is_none_or(|entry| state::is_epoch_exhausted(entry.metadata.producer_epoch))
        };
        let fresh_id = if needs_id {
            Some(broker.next_producer_id().await.map_err(|error| {
                tracing::error!(%error, "producer id allocation failed");
                ResponseError::CoordinatorNotAvailable
            })?)
        } else {
            None
        };
        let now = now_ms();
        let mut fenced = None;
        let written = self
            .change(broker, transactional_id, |current| {
                let created;
                let current = match current {
                    Some(current) => current,
                    None => {
                        let id = fresh_id.ok_or(ResponseError::ConcurrentTransactions)?;
                        created = TxnMetadata::new(id, timeout_ms, now);
                        &created
                    }
                };
                let next = init_producer_id(current, timeout_ms, expected, now, || {
                    fresh_id.unwrap_or(state::NO_PRODUCER_ID)
                })?;
                if next.producer_id == state::NO_PRODUCER_ID {
                    // Needed a fresh id that was not taken before the lock.
                    return Err(ResponseError::ConcurrentTransactions);
                }
                if next.state == TxnState::PrepareEpochFence {
                    // Abort the predecessor's transaction at the bumped epoch.
                    let aborting = match end_transaction(
                        &next,
                        next.producer_id,
                        next.producer_epoch,
                        false,
                        false,
                        now,
                    )? {
                        Decision::Write(aborting) => aborting,
                        Decision::Done => return Err(ResponseError::ConcurrentTransactions),
                    };
                    fenced = Some(aborting.clone());
                    return Ok(Some(aborting));
                }
                Ok(Some(next))
            })
            .await?;
        let written = written.expect("init always writes");
        if let Some(aborting) = fenced {
            tracing::info!(
                transactional_id,
                producer_id = aborting.producer_id,
                epoch = aborting.producer_epoch,
                "fenced the previous producer and aborting its transaction"
            );
            self.start_markers(broker, transactional_id);
            return Err(ResponseError::ConcurrentTransactions);
        }
        tracing::info!(
            transactional_id,
            producer_id = written.producer_id,
            epoch = written.producer_epoch,
            "transactional producer initialised"
        );
        Ok((written.producer_id, written.producer_epoch))
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's offsets partition).
    pub async fn add_partitions(
        &self,
        broker: &Broker,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &BTreeSet<(String, i32)>,
    ) -> Result<(), ResponseError> {
        let now = now_ms();
        self.change(broker, transactional_id, |current| {
            let current = current.ok_or(ResponseError::InvalidProducerIdMapping)?;
            match state::add_partitions(current, producer_id, producer_epoch, partitions, now)? {
                Decision::Done => Ok(None),
                Decision::Write(next) => Ok(Some(next)),
            }
        })
        .await
        .map(|_| ())
    }

    /// EndTxn: decides the transaction once its Prepare record is replicated; the markers
    /// follow in the background.
    pub async fn end_transaction(
        &self,
        broker: &Arc<Broker>,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    ) -> Result<(), ResponseError> {
        let now = now_ms();
        let written = self
            .change(broker, transactional_id, |current| {
                let current = current.ok_or(ResponseError::InvalidProducerIdMapping)?;
                match end_transaction(current, producer_id, producer_epoch, commit, true, now)? {
                    Decision::Done => Ok(None),
                    Decision::Write(next) => Ok(Some(next)),
                }
            })
            .await?;
        if let Some(decided) = written {
            tracing::debug!(
                transactional_id,
                state = decided.state.name(),
                "transaction decided"
            );
            self.start_markers(broker, transactional_id);
        }
        Ok(())
    }

    /// DescribeTransactions for one id: its state, or TRANSACTIONAL_ID_NOT_FOUND.
    pub fn describe(&self, transactional_id: &str) -> Result<TxnMetadata, ResponseError> {
        let shard = self.serving_shard(transactional_id)?;
        let shard = shard.lock();
        shard
            .ids
            .get(transactional_id)
            .map(|entry| entry.metadata.clone())
            .filter(|metadata| metadata.state != TxnState::Dead)
            .ok_or(ResponseError::TransactionalIdNotFound)
    }

    /// ListTransactions: the ids this broker coordinates, with their producer and state, that
    /// pass every filter given (states by Kafka's names, producer ids, and open for longer
    /// than `min_duration_ms` when that is not negative).
    pub fn list(
        &self,
        states: &BTreeSet<TxnState>,
        producer_ids: &BTreeSet<i64>,
        min_duration_ms: i64,
    ) -> Vec<(String, i64, TxnState)> {
        let now = now_ms();
        let mut listed = Vec::new();
        for (_, shard) in self.runtime.shards() {
            for (id, entry) in &shard.lock().ids {
                let metadata = &entry.metadata;
                let keep = metadata.state != TxnState::Dead
                    && (producer_ids.is_empty() || producer_ids.contains(&metadata.producer_id))
                    && (states.is_empty() || states.contains(&metadata.state))
                    && (min_duration_ms < 0 || now - metadata.start_ms > min_duration_ms);
                if keep {
                    listed.push((id.clone(), metadata.producer_id, metadata.state));
                }
            }
        }
        listed
    }

    /// Starts writing the markers of the id's Prepare transaction, unless that runs already.
    fn start_markers(&self, broker: &Arc<Broker>, transactional_id: &str) {
        let Ok(shard) = self.serving_shard(transactional_id) else {
            return;
        };
        let partition = self.partition_of(transactional_id);
        let Some(coordinator_epoch) = self.coordinator_epoch(broker, partition) else {
            return;
        };
        let metadata = {
            let mut shard = shard.lock();
            let Some(entry) = shard.ids.get_mut(transactional_id) else {
                return;
            };
            let preparing = matches!(
                entry.metadata.state,
                TxnState::PrepareCommit | TxnState::PrepareAbort
            );
            if !preparing || entry.markers_in_flight || entry.pending {
                return;
            }
            entry.markers_in_flight = true;
            entry.metadata.clone()
        };
        let broker = Arc::clone(broker);
        let transactional_id = transactional_id.to_string();
        tokio::spawn(async move {
            let coordinator = &broker.transactions;
            let done = write_markers(&broker, &metadata, coordinator_epoch, || {
                coordinator.still_preparing(&transactional_id, &metadata)
            })
            .await;
            let completed = if done {
                coordinator
                    .change(&broker, &transactional_id, |current| {
                        let current = current.ok_or(ResponseError::NotCoordinator)?;
                        Ok(complete(current, now_ms()))
                    })
                    .await
            } else {
                Ok(None)
            };
            match &completed {
                Ok(Some(done)) => {
                    let counter = match done.state {
                        TxnState::CompleteCommit => &coordinator.ended.0,
                        _ => &coordinator.ended.1,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%transactional_id, ?error, "completing the transaction failed; the next tick retries");
                }
            }
            if let Ok(shard) = coordinator.serving_shard(&transactional_id) {
                if let Some(entry) = shard.lock().ids.get_mut(&transactional_id) {
                    entry.markers_in_flight = false;
                }
            }
        });
    }

    /// Whether the id still has the Prepare transaction `metadata` here (markers stop when
    /// another coordinator took the partition or the state moved on).
    fn still_preparing(&self, transactional_id: &str, metadata: &TxnMetadata) -> bool {
        self.serving_shard(transactional_id).is_ok_and(|shard| {
            shard.lock().ids.get(transactional_id).is_some_and(|entry| {
                entry.metadata.state == metadata.state
                    && entry.metadata.producer_id == metadata.producer_id
                    && entry.metadata.producer_epoch == metadata.producer_epoch
            })
        })
    }

    /// The periodic work: markers of Prepare transactions that have none under way (after a
    /// failover, or a failed completion), aborts of transactions past their timeout, and the
    /// expiry of idle ids.
    pub async fn tick(&self, broker: &Arc<Broker>) {
        let now = now_ms();
        let mut preparing = Vec::new();
        let mut timed_out_ids = Vec::new();
        let mut expired_ids = Vec::new();
        for (_, shard) in self.runtime.shards() {
            let shard = shard.lock();
            for (id, entry) in &shard.ids {
                if entry.pending {
                    continue;
                }
                match entry.metadata.state {
                    TxnState::PrepareCommit | TxnState::PrepareAbort
                        if !entry.markers_in_flight =>
                    {
                        preparing.push(id.clone());
                    }
                    _ if timed_out(&entry.metadata, now) => timed_out_ids.push(id.clone()),
                    _ if expired(&entry.metadata, now, self.settings.id_expiration_ms) => {
                        expired_ids.push(id.clone())
                    }
                    _ => {}
                }
            }
        }
        for id in preparing {
            self.start_markers(broker, &id);
        }
        for id in timed_out_ids {
            let aborted = self
                .change(broker, &id, |current| {
                    let Some(current) = current.filter(|current| timed_out(current, now)) else {
                        return Ok(None);
                    };
                    let fenced = fence_producer_epoch(current, now);
                    match end_transaction(
                        &fenced,
                        fenced.producer_id,
                        fenced.producer_epoch,
                        false,
                        false,
                        now,
                    )? {
                        Decision::Write(aborting) => Ok(Some(aborting)),
                        Decision::Done => Ok(None),
                    }
                })
                .await;
            match aborted {
                Ok(Some(_)) => {
                    tracing::info!(transactional_id = %id, "aborting a transaction past its timeout");
                    self.start_markers(broker, &id);
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(transactional_id = %id, ?error, "aborting a timed-out transaction failed")
                }
            }
        }
        for id in expired_ids {
            self.expire(broker, &id, now);
        }
    }

    /// Forgets an idle id: a tombstone, then nothing in memory.
    fn expire(&self, broker: &Broker, transactional_id: &str, now: i64) {
        let Ok(shard) = self.serving_shard(transactional_id) else {
            return;
        };
        let mut shard = shard.lock();
        let still_expired = shard.ids.get(transactional_id).is_some_and(|entry| {
            !entry.pending && expired(&entry.metadata, now, self.settings.id_expiration_ms)
        });
        if !still_expired {
            return;
        }
        let tombstone = vec![(txn_key(transactional_id), None)];
        match self.runtime.write(
            &broker.replicas,
            self.partition_of(transactional_id),
            tombstone,
            now,
        ) {
            Ok(_) => {
                shard.ids.remove(transactional_id);
                tracing::info!(transactional_id, "idle transactional id expired");
            }
            Err(error) => {
                tracing::warn!(transactional_id, %error, "expiring a transactional id failed")
            }
        }
    }
}

/// Writes the markers of the Prepare transaction `metadata` on every partition it names, at
/// the partitions' leaders, until each has one or `keep_going` says to stop. True once every
/// partition has its marker (or is gone).
async fn write_markers(
    broker: &Arc<Broker>,
    metadata: &TxnMetadata,
    coordinator_epoch: i32,
    keep_going: impl Fn() -> bool,
) -> bool {
    let marker = EndTxnMarker {
        result: TransactionResult::from_committed(metadata.state == TxnState::PrepareCommit),
        coordinator_epoch,
    };
    let mut remaining: BTreeSet<(String, i32)> = metadata.partitions.clone();
    while !remaining.is_empty() {
        if !keep_going() {
            return false;
        }
        let image = broker.metadata.image();
        let mut by_leader: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
        for (topic, index) in &remaining {
            let Some(topic_image) = image.topic(topic) else {
                // The topic is gone: nothing to end there.
                continue;
            };
            let Some(partition) = topic_image.partitions.get(*index as usize) else {
                continue;
            };
            by_leader
                .entry(partition.leader)
                .or_default()
                .push((topic.clone(), *index));
        }
        let mut landed: BTreeSet<(String, i32)> = remaining
            .iter()
            .filter(|(topic, index)| {
                image
                    .topic(topic)
                    .is_none_or(|topic| topic.partitions.get(*index as usize).is_none())
            })
            .cloned()
            .collect();
        for (leader, partitions) in by_leader {
            let results = if leader == broker.config.node_id {
                write_local_markers(broker, metadata, marker, &partitions).await
            } else {
                super::markers::write_remote_markers(
                    broker,
                    &image,
                    leader,
                    metadata,
                    marker,
                    &partitions,
                )
                .await
            };
            for ((topic, index), result) in partitions.into_iter().zip(results) {
                match result {
                    Ok(()) => {
                        landed.insert((topic, index));
                    }
                    Err(
                        ResponseError::InvalidProducerEpoch
                        | ResponseError::TransactionCoordinatorFenced,
                    ) => {
                        // Something newer owns the transaction: stop writing its markers.
                        tracing::warn!(
                            topic,
                            partition = index,
                            producer_id = metadata.producer_id,
                            "marker refused as stale"
                        );
                        return false;
                    }
                    Err(error) => {
                        tracing::debug!(topic, partition = index, ?error, "marker not written yet");
                    }
                }
            }
        }
        for done in landed {
            remaining.remove(&done);
        }
        if !remaining.is_empty() {
            tokio::time::sleep(MARKER_RETRY_BACKOFF).await;
        }
    }
    true
}

/// Writes markers on partitions this broker leads, waiting for their in-sync replicas.
async fn write_local_markers(
    broker: &Broker,
    metadata: &TxnMetadata,
    marker: EndTxnMarker,
    partitions: &[(String, i32)],
) -> Vec<Result<(), ResponseError>> {
    let image = broker.metadata.image();
    let deadline = tokio::time::Instant::now() + REPLICATION_TIMEOUT;
    let mut results = Vec::with_capacity(partitions.len());
    for (topic, index) in partitions {
        let appended = if topic == OFFSETS_TOPIC {
            broker.groups.write_marker(
                broker,
                *index,
                (metadata.producer_id, metadata.producer_epoch),
                marker,
            )
        } else {
            broker.replicas.append_marker(
                &image,
                topic,
                *index,
                metadata.producer_id,
                metadata.producer_epoch,
                marker,
                now_ms(),
            )
        };
        let result = match appended {
            Ok(appended) => {
                crate::replica_manager::ReplicaManager::acknowledged(&appended, -1, deadline)
                    .await
                    .map_err(|(error, _)| error)
            }
            Err((error, _)) => Err(error),
        };
        results.push(result);
    }
    results
}
