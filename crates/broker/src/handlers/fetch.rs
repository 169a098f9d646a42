//! Fetch: decode, read through the replica manager (which long-polls on `max_wait_ms` /
//! `min_bytes`), encode with the record bytes spliced in.
//!
//! Fetch sessions (KIP-227) are declined: every response is a full one with session id 0,
//! which the protocol allows and clients handle by sending full requests.

use std::time::Duration;

use bytes::Bytes;
use cauce_log::AbortedTxn;
use cauce_protocol::kafka::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use cauce_protocol::kafka::messages::{FetchRequest, FetchResponse, ProducerId, TopicName};
use cauce_protocol::ResponseError;
use tokio::time::Instant;
use uuid::Uuid;

use super::{text, Context, Reply};
use crate::partition::FetchIsolation;
use crate::replica_manager::{ReadTarget, ReplicaManager};

/// First version that addresses topics by id instead of by name.
const TOPIC_ID_VERSION: i16 = 13;
/// The session epoch of a sessionless full fetch.
const FINAL_EPOCH: i32 = -1;
/// First version that names the fetching replica in `replica_state` (KIP-903).
const REPLICA_STATE_VERSION: i16 = 15;

pub fn handle(context: Context, request: FetchRequest) -> Reply {
    if request.session_id != 0
        || (request.session_epoch != 0 && request.session_epoch != FINAL_EPOCH)
    {
        // This broker never hands out a session, so any id or incremental epoch is unknown.
        let response =
            FetchResponse::default().with_error_code(ResponseError::FetchSessionIdNotFound.code());
        return context.respond(&response);
    }
    let image = context.broker.metadata.image();
    let mut topics: Vec<FetchableTopicResponse> = Vec::with_capacity(request.topics.len());
    let mut targets = Vec::new();
    // Where each target's answer goes: the topic's place in the response, the partition index.
    let mut slots = Vec::new();
    for topic in &request.topics {
        let (name, topic_id, missing) = if context.version >= TOPIC_ID_VERSION {
            let name = image
                .topic_by_id(&topic.topic_id)
                .map(|image| image.name.clone());
            (name, topic.topic_id, ResponseError::UnknownTopicId)
        } else {
            (
                Some(topic.topic.to_string()),
                Uuid::nil(),
                ResponseError::UnknownTopicOrPartition,
            )
        };
        topics.push(
            FetchableTopicResponse::default()
                .with_topic(TopicName(text(name.clone().unwrap_or_default())))
                .with_topic_id(topic_id),
        );
        for partition in &topic.partitions {
            let led = match &name {
                Some(name) => context
                    .broker
                    .replicas
                    .leader(&image, name, partition.partition),
                None => Err(missing),
            };
            targets.push(ReadTarget {
                partition: led,
                fetch_offset: partition.fetch_offset,
                max_bytes: partition.partition_max_bytes.max(0) as usize,
                current_leader_epoch: partition.current_leader_epoch,
            });
            slots.push((topics.len() - 1, partition.partition));
        }
    }
    // A follower (a broker fetching for its replica) reads up to the log end and reports
    // where its own log ends; a consumer reads below the high watermark.
    let replica = if context.version >= REPLICA_STATE_VERSION {
        request.replica_state.replica_id.0
    } else {
        request.replica_id.0
    };
    let follower = (replica >= 0).then_some(replica);
    let isolation = match follower {
        Some(_) => FetchIsolation::LogEnd,
        None => FetchIsolation::of_consumer(request.isolation_level),
    };
    let max_bytes = request.max_bytes.max(0) as usize;
    let min_bytes = request.min_bytes.max(0) as usize;
    let deadline = Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    if let Some(replica) = follower {
        let now = crate::now_ms();
        for (partition, isr) in ReplicaManager::follower_fetched(&targets, replica, now) {
            crate::cluster::request_isr_change(&context.broker, &partition, isr);
        }
    }
    Reply::Later(Box::pin(async move {
        let reads = ReplicaManager::fetch(targets, max_bytes, min_bytes, deadline, isolation).await;
        let mut topics = topics;
        for ((topic_slot, index), read) in slots.into_iter().zip(reads) {
            let data = PartitionData::default()
                .with_partition_index(index)
                .with_high_watermark(read.high_watermark)
                .with_log_start_offset(read.log_start_offset);
            let data = match read.records {
                Ok(records) => data
                    .with_last_stable_offset(read.last_stable_offset)
                    .with_aborted_transactions(aborted_transactions(isolation, read.aborted))
                    .with_records(Some(records)),
                Err(error) => data.with_error_code(error.code()),
            };
            topics[topic_slot].partitions.push(data);
        }
        // The encoder puts the record sets in response order: topic by topic.
        let record_sets: Vec<Bytes> = topics
            .iter()
            .flat_map(|topic| &topic.partitions)
            .filter_map(|data| data.records.clone())
            .collect();
        let response = FetchResponse::default()
            .with_responses(topics)
            .with_session_id(0);
        context.respond_spliced(&response, record_sets)
    }))
}

/// The `aborted_transactions` of a partition's answer: a list (maybe empty) for
/// `read_committed`, as Kafka sends it, and null otherwise.
fn aborted_transactions(
    isolation: FetchIsolation,
    aborted: Option<Vec<AbortedTxn>>,
) -> Option<Vec<AbortedTransaction>> {
    (isolation == FetchIsolation::Committed).then(|| {
        aborted
            .unwrap_or_default()
            .into_iter()
            .map(|aborted| {
                AbortedTransaction::default()
                    .with_producer_id(ProducerId(aborted.producer_id))
                    .with_first_offset(aborted.first_offset)
            })
            .collect()
    })
}
