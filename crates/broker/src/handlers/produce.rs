//! Produce: validate, append in arrival order, acknowledge per `acks` and the flush policy.

use std::sync::Arc;

use bytes::BytesMut;
use cauce_protocol::kafka::messages::produce_response::{
    PartitionProduceResponse, TopicProduceResponse,
};
use cauce_protocol::kafka::messages::{ProduceRequest, ProduceResponse};
use cauce_protocol::ResponseError;

use super::{text, Context, Reply};
use crate::errors::log_error_code;
use crate::partition::Partition;

pub fn handle(context: Context, request: ProduceRequest) -> Reply {
    let acks = request.acks;
    let now = crate::now_ms();
    let mut responses = Vec::with_capacity(request.topic_data.len());
    let mut waits: Vec<(Arc<Partition>, i64)> = Vec::new();
    // acks=all: partitions whose in-sync replicas must all have the batch before the answer.
    let mut replications: Vec<(Arc<Partition>, i64)> = Vec::new();
    let timeout = std::time::Duration::from_millis(request.timeout_ms.max(0) as u64);
    let mut any_error = false;
    // Compacted topics need a key on every record, which means reading the records: the one
    // produce path that looks inside batches, and only for these topics.
    let image = context.broker.metadata.image();
    let compacted: std::collections::HashSet<String> = request
        .topic_data
        .iter()
        .map(|topic| topic.name.to_string())
        .filter(|name| {
            image.topic(name.as_str()).is_some_and(|found| {
                let policy = found.configs.get("cleanup.policy").or_else(|| {
                    context
                        .broker
                        .logs
                        .topic_defaults()
                        .get("log.cleanup.policy")
                });
                policy.is_some_and(|policy| policy.split(',').any(|item| item.trim() == "compact"))
            })
        })
        .collect();
    for topic in request.topic_data {
        let mut partition_responses = Vec::with_capacity(topic.partition_data.len());
        for data in topic.partition_data {
            let mut response = PartitionProduceResponse::default()
                .with_index(data.index)
                .with_base_offset(-1);
            let outcome = if request.transactional_id.is_some() {
                Err((
                    ResponseError::InvalidTxnState,
                    "transactions are not supported yet".to_string(),
                ))
            } else if topic.name.as_str() == crate::group::OFFSETS_TOPIC
                && context.client_id() != ADMIN_CLIENT_ID
            {
                // As Kafka: only the broker writes its internal topics, whose records it later
                // replays as its own state.
                Err((
                    ResponseError::InvalidTopicException,
                    format!("cannot append to internal topic {}", topic.name.as_str()),
                ))
            } else if !matches!(acks, -1..=1) {
                Err((
                    ResponseError::InvalidRequiredAcks,
                    format!("acks must be -1, 0 or 1, found {acks}"),
                ))
            } else {
                match context.broker.logs.leader(&image, &topic.name, data.index) {
                    Err(error) => Err((error, String::new())),
                    Ok(partition)
                        if acks == -1
                            && !enough_in_sync(&context, &image, &topic.name, &partition) =>
                    {
                        Err((
                            ResponseError::NotEnoughReplicas,
                            format!(
                                "{} in-sync replicas, fewer than min.insync.replicas",
                                partition.isr().len()
                            ),
                        ))
                    }
                    Ok(partition) => {
                        let mut records = BytesMut::from(data.records.unwrap_or_default().as_ref());
                        let refused = if compacted.contains(topic.name.as_str()) {
                            let limit =
                                partition.with_log(|log| log.config().max_decompressed_bytes());
                            check_keys(&records, limit).err()
                        } else {
                            None
                        };
                        if let Some(reason) = refused {
                            Err((
                                ResponseError::InvalidRecord,
                                format!("{reason} in {}-{}", topic.name.as_str(), data.index),
                            ))
                        } else {
                            match partition.append(&mut records, now) {
                                Ok(outcome) => {
                                    if !outcome.duplicate {
                                        partition.traffic.record_produced(
                                            records.len(),
                                            (outcome.last_offset - outcome.base_offset + 1).max(0)
                                                as u64,
                                        );
                                    }
                                    Ok((partition, outcome))
                                }
                                Err(error) => Err((log_error_code(&error), error.to_string())),
                            }
                        }
                    }
                }
            };
            match outcome {
                Ok((partition, outcome)) => {
                    response.base_offset = outcome.base_offset;
                    response.log_append_time_ms = outcome.log_append_time;
                    response.log_start_offset = outcome.log_start_offset;
                    let end = outcome.last_offset + 1;
                    if acks == -1 && partition.high_watermark() < end {
                        replications.push((partition.clone(), end));
                    }
                    if outcome.needs_flush {
                        waits.push((partition, end));
                    }
                }
                Err((error, message)) => {
                    any_error = true;
                    tracing::debug!(topic = %topic.name.as_str(), partition = data.index, ?error, %message, "produce refused");
                    response.error_code = error.code();
                    if !message.is_empty() {
                        response.error_message = Some(text(message));
                    }
                }
            }
            partition_responses.push(response);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_partition_responses(partition_responses),
        );
    }
    if acks == 0 {
        // The client reads no response; Kafka closes the connection to tell it about a failure.
        return if any_error {
            Reply::Close("produce with acks=0 failed".into())
        } else {
            Reply::Nothing
        };
    }
    let response = ProduceResponse::default().with_responses(responses);
    if waits.is_empty() && replications.is_empty() {
        return context.respond(&response);
    }
    Reply::Later(Box::pin(async move {
        let mut response = response;
        for (partition, offset) in waits {
            if let Err(error) = partition.wait_flushed(offset).await {
                mark_failure(
                    &mut response,
                    &partition,
                    ResponseError::KafkaStorageError,
                    &error.to_string(),
                );
            }
        }
        for (partition, offset) in replications {
            if let Err(error) = partition.wait_replicated(offset, timeout).await {
                let message =
                    format!("the in-sync replicas did not confirm offset {offset}: {error:?}");
                mark_failure(&mut response, &partition, error, &message);
            }
        }
        context.respond(&response)
    }))
}

/// Whether a partition has at least `min.insync.replicas` in-sync replicas.
fn enough_in_sync(
    context: &Context,
    image: &cauce_metadata::MetadataImage,
    topic: &str,
    partition: &Partition,
) -> bool {
    let minimum = image
        .topic(topic)
        .and_then(|topic| topic.configs.get("min.insync.replicas"))
        .or_else(|| {
            context
                .broker
                .logs
                .topic_defaults()
                .get("min.insync.replicas")
        })
        .and_then(|value| value.trim().parse::<usize>().ok())
        .unwrap_or(1);
    partition.isr().len() >= minimum
}

fn mark_failure(
    response: &mut ProduceResponse,
    partition: &Partition,
    error: ResponseError,
    message: &str,
) {
    for topic in response
        .responses
        .iter_mut()
        .filter(|topic| topic.name.as_str() == partition.topic)
    {
        for entry in topic
            .partition_responses
            .iter_mut()
            .filter(|entry| entry.index == partition.index)
        {
            entry.error_code = error.code();
            entry.error_message = Some(text(message.to_string()));
        }
    }
}

/// The client id that Kafka lets write to internal topics (its `AdminUtils.ADMIN_CLIENT_ID`).
const ADMIN_CLIENT_ID: &str = "__admin_client";

/// Checks that every record of every non-control batch has a key, as a compacted topic needs;
/// a batch that cannot be read (corrupt, or decompressing to more than `max_decompressed`
/// bytes) is refused too.
fn check_keys(records: &[u8], max_decompressed: usize) -> Result<(), String> {
    let batches = cauce_protocol::batch::BatchIter::new(records);
    for batch in batches.filter(|batch| !batch.header.is_control()) {
        let (_, mut iterator) = cauce_protocol::records::records(batch.bytes, max_decompressed)
            .map_err(|error| {
                format!(
                    "batch at offset {} cannot be read: {error}",
                    batch.header.base_offset
                )
            })?;
        if iterator.any(|record| record.map_or(true, |record| record.key.is_none())) {
            return Err("compacted topic cannot accept a record without a key".into());
        }
    }
    Ok(())
}
