//! Fetch: whole batches from the logs, long-polling on `max_wait_ms` / `min_bytes`.
//!
//! Fetch sessions (KIP-227) are declined: every response is a full one with session id 0,
//! which the protocol allows and clients handle by sending full requests.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cauce_log::LogError;
use cauce_protocol::kafka::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use cauce_protocol::kafka::messages::{FetchRequest, FetchResponse, TopicName};
use cauce_protocol::ResponseError;
use tokio::time::Instant;
use uuid::Uuid;

use super::{check_leader_epoch, text, Context, Reply};
use crate::errors::log_error_code;
use crate::partition::Partition;

/// First version that addresses topics by id instead of by name.
const TOPIC_ID_VERSION: i16 = 13;
/// The session epoch of a sessionless full fetch.
const FINAL_EPOCH: i32 = -1;
/// First version that names the fetching replica in `replica_state` (KIP-903).
const REPLICA_STATE_VERSION: i16 = 15;

/// A follower's fetch says where its log ends: that moves the high watermark, and may let it
/// back into the ISR, which the controller is asked for.
fn record_follower_progress(context: &Context, wanted: &[Wanted], replica: i32) {
    let now = crate::now_ms();
    for want in wanted {
        let Ok(partition) = &want.target else {
            continue;
        };
        if let Some(isr) = partition.follower_fetched(replica, want.fetch_offset, now) {
            crate::cluster::request_isr_change(&context.broker, partition, isr);
        }
    }
}

/// One requested partition, resolved.
struct Wanted {
    /// Index of the topic in the response.
    topic_slot: usize,
    /// The partition, or the error to answer with.
    target: Result<Arc<Partition>, ResponseError>,
    /// The partition index.
    index: i32,
    /// The offset to read from.
    fetch_offset: i64,
    /// The per-partition byte limit.
    partition_max_bytes: usize,
    /// The epoch the client believes the leader has, or -1.
    current_leader_epoch: i32,
}

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
    let mut wanted = Vec::new();
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
            let target = match &name {
                Some(name) => context
                    .broker
                    .logs
                    .leader(&image, name, partition.partition),
                None => Err(missing),
            };
            wanted.push(Wanted {
                topic_slot: topics.len() - 1,
                target,
                index: partition.partition,
                fetch_offset: partition.fetch_offset,
                partition_max_bytes: partition.partition_max_bytes.max(0) as usize,
                current_leader_epoch: partition.current_leader_epoch,
            });
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
    let max_bytes = request.max_bytes.max(0) as usize;
    let min_bytes = request.min_bytes.max(0) as usize;
    let deadline = Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    Reply::Later(Box::pin(async move {
        let mut end_offsets: Vec<_> = wanted
            .iter()
            .filter_map(|want| {
                want.target.as_ref().ok().map(|partition| match follower {
                    Some(_) => partition.subscribe_end_offset(),
                    None => partition.subscribe_high_watermark(),
                })
            })
            .collect();
        if let Some(replica) = follower {
            record_follower_progress(&context, &wanted, replica);
        }
        loop {
            for receiver in end_offsets.iter_mut() {
                receiver.borrow_and_update();
            }
            let reads = read_all(wanted, max_bytes, follower.is_some()).await;
            let (next_wanted, partitions, total_bytes, had_error) = reads;
            wanted = next_wanted;
            let done = total_bytes >= min_bytes
                || had_error
                || Instant::now() >= deadline
                || end_offsets.is_empty();
            if done {
                let mut topics = topics;
                for (want, data) in wanted.iter().zip(partitions) {
                    if let (Ok(partition), Some(records)) = (&want.target, &data.records) {
                        partition.traffic.record_fetched(records.len());
                    }
                    topics[want.topic_slot].partitions.push(data);
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
                return context.respond_spliced(&response, record_sets);
            }
            let any_change = futures::future::select_all(
                end_offsets
                    .iter_mut()
                    .map(|receiver| Box::pin(receiver.changed())),
            );
            if tokio::time::timeout_at(deadline, any_change).await.is_err() {
                // Timed out: one last read so the response reflects the latest state.
                continue;
            }
        }
    }))
}

/// Reads every wanted partition off the reactor; returns the responses, bytes, and whether any failed.
async fn read_all(
    wanted: Vec<Wanted>,
    max_bytes: usize,
    to_log_end: bool,
) -> (Vec<Wanted>, Vec<PartitionData>, usize, bool) {
    let result = tokio::task::spawn_blocking(move || {
        let mut remaining = max_bytes;
        let mut total = 0;
        let mut had_error = false;
        let mut responses = Vec::with_capacity(wanted.len());
        for want in &wanted {
            let data = PartitionData::default().with_partition_index(want.index);
            let partition = match &want.target {
                Ok(partition) => partition,
                Err(error) => {
                    had_error = true;
                    responses.push(data.with_error_code(error.code()).with_high_watermark(-1));
                    continue;
                }
            };
            if let Err(error) = check_leader_epoch(partition, want.current_leader_epoch) {
                had_error = true;
                responses.push(data.with_error_code(error.code()).with_high_watermark(-1));
                continue;
            }
            // KIP-74: the first batch of the response is returned whole even above the
            // limits; later partitions only return batches that fit.
            let limit = want.partition_max_bytes.min(remaining);
            let whole_first_batch = total == 0;
            match read_partition(
                partition,
                want.fetch_offset,
                limit,
                whole_first_batch,
                to_log_end,
            ) {
                Ok((bytes, high_watermark, log_start_offset)) => {
                    total += bytes.len();
                    remaining = remaining.saturating_sub(bytes.len());
                    responses.push(
                        data.with_high_watermark(high_watermark)
                            .with_last_stable_offset(high_watermark)
                            .with_log_start_offset(log_start_offset)
                            .with_records(Some(bytes)),
                    );
                }
                Err((error, high_watermark, log_start_offset)) => {
                    had_error = true;
                    responses.push(
                        data.with_error_code(error.code())
                            .with_high_watermark(high_watermark)
                            .with_log_start_offset(log_start_offset),
                    );
                }
            }
        }
        (wanted, responses, total, had_error)
    })
    .await;
    result.expect("fetch read task panicked")
}

fn read_partition(
    partition: &Partition,
    offset: i64,
    limit: usize,
    whole_first_batch: bool,
    to_log_end: bool,
) -> Result<(Bytes, i64, i64), (ResponseError, i64, i64)> {
    let read = match partition.read(offset, limit, to_log_end) {
        Ok(read) => read,
        Err(error) => {
            let high_watermark = partition.high_watermark();
            let log_start = partition.with_log(|log| log.log_start_offset());
            if !matches!(error, LogError::OffsetOutOfRange { .. }) {
                tracing::error!(topic = %partition.topic, partition = partition.index, %error, "fetch read failed");
            }
            return Err((log_error_code(&error), high_watermark, log_start));
        }
    };
    let bytes = match &read.slice {
        None => Bytes::new(),
        Some(slice) if slice.length > limit && !whole_first_batch => Bytes::new(),
        Some(slice) => match slice.read_bytes() {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::error!(topic = %partition.topic, partition = partition.index, %error, "fetch read failed");
                return Err((
                    ResponseError::KafkaStorageError,
                    read.high_watermark,
                    read.log_start_offset,
                ));
            }
        },
    };
    Ok((bytes, read.high_watermark, read.log_start_offset))
}
