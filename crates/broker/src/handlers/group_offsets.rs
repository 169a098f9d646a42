//! OffsetCommit, TxnOffsetCommit, OffsetFetch and OffsetDelete: a group's committed positions.

use std::collections::BTreeMap;

use cauce_protocol::kafka::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use cauce_protocol::kafka::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use cauce_protocol::kafka::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use cauce_protocol::kafka::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use cauce_protocol::kafka::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, TopicName, TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
};
use cauce_protocol::ResponseError;

use super::groups::{group_refusal, offsets_topic_ready};
use super::{text, Context, Reply};
use crate::errors::group_error_code;
use crate::group::coordinator::Committer;
use crate::group::records::CommittedOffset;
use crate::group::GroupCoordinator;

/// First OffsetFetch version that asks about several groups at once.
const BATCHED_OFFSET_FETCH_VERSION: i16 = 8;

pub fn offset_commit(context: Context, request: OffsetCommitRequest) -> Reply {
    Reply::Later(Box::pin(async move {
        let response = commit_offsets(&context, request).await;
        context.respond(&response)
    }))
}

/// OffsetCommit's answer, once the commit is replicated (or refused).
async fn commit_offsets(context: &Context, request: OffsetCommitRequest) -> OffsetCommitResponse {
    {
        let broker = &context.broker;
        let (errors, commits) = offsets_to_commit(
            broker,
            request.topics.iter().flat_map(|topic| {
                topic.partitions.iter().map(|partition| OffsetToCommit {
                    topic: topic.name.to_string(),
                    partition: partition.partition_index,
                    offset: partition.committed_offset,
                    leader_epoch: partition.committed_leader_epoch,
                    metadata: partition
                        .committed_metadata
                        .as_ref()
                        .map(|text| text.to_string()),
                })
            }),
        );
        let group_verdict = if request.group_id.is_empty() {
            Err(ResponseError::InvalidGroupId)
        } else if let Err(error) = offsets_topic_ready(broker).await {
            tracing::warn!(%error, "__consumer_offsets is not available");
            Err(ResponseError::CoordinatorNotAvailable)
        } else if let Some(error) = group_refusal(broker, &request.group_id) {
            Err(error)
        } else {
            broker
                .groups
                .commit(
                    broker,
                    &request.group_id,
                    &request.member_id,
                    request.group_instance_id.as_deref(),
                    request.generation_id_or_member_epoch,
                    commits,
                )
                .await
                .map_err(group_error_code)
        };
        let topics = request
            .topics
            .iter()
            .map(|topic| {
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|partition| {
                        let own = errors
                            .get(&(topic.name.to_string(), partition.partition_index))
                            .copied();
                        let error = own.or(group_verdict.err());
                        OffsetCommitResponsePartition::default()
                            .with_partition_index(partition.partition_index)
                            .with_error_code(error.map_or(0, |error| error.code()))
                    })
                    .collect();
                OffsetCommitResponseTopic::default()
                    .with_name(topic.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        OffsetCommitResponse::default().with_topics(topics)
    }
}

/// One partition's offset as OffsetCommit and TxnOffsetCommit carry it.
struct OffsetToCommit {
    topic: String,
    partition: i32,
    offset: i64,
    leader_epoch: i32,
    metadata: Option<String>,
}

/// Each partition's own error first (unknown topic, metadata too large); the rest are
/// committed together, and share the group's verdict.
#[allow(clippy::type_complexity)]
fn offsets_to_commit(
    broker: &crate::Broker,
    asked: impl Iterator<Item = OffsetToCommit>,
) -> (
    BTreeMap<(String, i32), ResponseError>,
    Vec<(String, i32, CommittedOffset)>,
) {
    let image = broker.metadata.image();
    let now = crate::now_ms();
    let max_metadata = broker.groups.settings().offset_metadata_max_bytes;
    let mut errors: BTreeMap<(String, i32), ResponseError> = BTreeMap::new();
    let mut commits = Vec::new();
    for asked in asked {
        let key = (asked.topic, asked.partition);
        let metadata = asked.metadata.unwrap_or_default();
        let exists = image
            .topic(&key.0)
            .is_some_and(|found| (key.1 as usize) < found.partitions.len());
        if !exists || key.1 < 0 {
            errors.insert(key, ResponseError::UnknownTopicOrPartition);
        } else if metadata.len() > max_metadata {
            errors.insert(key, ResponseError::OffsetMetadataTooLarge);
        } else {
            let committed = CommittedOffset {
                offset: asked.offset,
                leader_epoch: asked.leader_epoch,
                metadata,
                commit_timestamp_ms: now,
            };
            commits.push((key.0, key.1, committed));
        }
    }
    (errors, commits)
}

/// First TxnOffsetCommit version that knows COORDINATOR_LOAD_IN_PROGRESS.
const TXN_LOAD_IN_PROGRESS_VERSION: i16 = 2;

/// TxnOffsetCommit: a transactional producer commits its consumer's offsets inside its
/// transaction; they take effect with the transaction's COMMIT.
pub fn txn_offset_commit(context: Context, request: TxnOffsetCommitRequest) -> Reply {
    Reply::Later(Box::pin(async move {
        let broker = &context.broker;
        let (errors, commits) = offsets_to_commit(
            broker,
            request.topics.iter().flat_map(|topic| {
                topic.partitions.iter().map(|partition| OffsetToCommit {
                    topic: topic.name.to_string(),
                    partition: partition.partition_index,
                    offset: partition.committed_offset,
                    leader_epoch: partition.committed_leader_epoch,
                    metadata: partition
                        .committed_metadata
                        .as_ref()
                        .map(|text| text.to_string()),
                })
            }),
        );
        let group_verdict = if request.group_id.is_empty() || request.transactional_id.is_empty() {
            Err(ResponseError::InvalidRequest)
        } else if let Err(error) = offsets_topic_ready(broker).await {
            tracing::warn!(%error, "__consumer_offsets is not available");
            Err(ResponseError::CoordinatorNotAvailable)
        } else if let Some(error) = group_refusal(broker, &request.group_id) {
            Err(error)
        } else {
            let committer = Committer {
                member_id: &request.member_id,
                group_instance_id: request.group_instance_id.as_deref(),
                generation_id: request.generation_id,
            };
            broker
                .groups
                .commit_in_transaction(
                    broker,
                    &request.group_id,
                    &committer,
                    (request.producer_id.0, request.producer_epoch),
                    commits,
                )
                .await
        };
        let group_verdict = group_verdict.map_err(|error| {
            if error == ResponseError::CoordinatorLoadInProgress
                && context.version < TXN_LOAD_IN_PROGRESS_VERSION
            {
                ResponseError::CoordinatorNotAvailable
            } else {
                error
            }
        });
        if let Err(error) = group_verdict {
            tracing::debug!(group = %request.group_id.as_str(), ?error, "TxnOffsetCommit refused");
        }
        let topics = request
            .topics
            .iter()
            .map(|topic| {
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|partition| {
                        let own = errors
                            .get(&(topic.name.to_string(), partition.partition_index))
                            .copied();
                        let error = own.or(group_verdict.err());
                        TxnOffsetCommitResponsePartition::default()
                            .with_partition_index(partition.partition_index)
                            .with_error_code(error.map_or(0, |error| error.code()))
                    })
                    .collect();
                TxnOffsetCommitResponseTopic::default()
                    .with_name(topic.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        context.respond(&TxnOffsetCommitResponse::default().with_topics(topics))
    }))
}

/// A topic with each asked partition's committed offset, if any.
type TopicOffsets = (String, Vec<(i32, Option<CommittedOffset>)>);

/// One group's answer: for each (topic, partitions) asked (or all committed), the offsets.
fn fetch_group(
    groups: &GroupCoordinator,
    group_id: &str,
    wanted: Option<Vec<(String, Vec<i32>)>>,
) -> Vec<TopicOffsets> {
    let committed = groups.committed(group_id);
    match wanted {
        Some(topics) => topics
            .into_iter()
            .map(|(topic, partitions)| {
                let found = partitions
                    .into_iter()
                    .map(|partition| {
                        (
                            partition,
                            committed.get(&(topic.clone(), partition)).cloned(),
                        )
                    })
                    .collect();
                (topic, found)
            })
            .collect(),
        None => {
            let mut by_topic: BTreeMap<String, Vec<(i32, Option<CommittedOffset>)>> =
                BTreeMap::new();
            for ((topic, partition), offset) in committed {
                by_topic
                    .entry(topic)
                    .or_default()
                    .push((partition, Some(offset)));
            }
            by_topic.into_iter().collect()
        }
    }
}

pub fn offset_fetch(context: Context, request: OffsetFetchRequest) -> Reply {
    let groups = &context.broker.groups;
    let leader_epoch =
        |offset: &Option<CommittedOffset>| offset.as_ref().map_or(-1, |offset| offset.leader_epoch);
    // KIP-447: a consumer that asks for stable offsets gets UNSTABLE_OFFSET_COMMIT (and
    // retries) for a partition whose offset an open transaction may still change.
    let unstable = |group: &str, topic: &str, partition: i32| {
        request.require_stable && groups.has_pending_offset(group, topic, partition)
    };
    if context.version >= BATCHED_OFFSET_FETCH_VERSION {
        let answers = request
            .groups
            .iter()
            .map(|group| {
                let answer =
                    OffsetFetchResponseGroup::default().with_group_id(group.group_id.clone());
                if let Some(error) = group_refusal(&context.broker, &group.group_id) {
                    return answer.with_error_code(error.code());
                }
                let wanted = group.topics.as_ref().map(|topics| {
                    topics
                        .iter()
                        .map(|topic| (topic.name.to_string(), topic.partition_indexes.clone()))
                        .collect()
                });
                let topics = fetch_group(groups, &group.group_id, wanted)
                    .into_iter()
                    .map(|(topic, partitions)| {
                        let partitions = partitions
                            .into_iter()
                            .map(|(partition, offset)| {
                                if unstable(&group.group_id, &topic, partition) {
                                    return OffsetFetchResponsePartitions::default()
                                        .with_partition_index(partition)
                                        .with_committed_offset(-1)
                                        .with_error_code(
                                            ResponseError::UnstableOffsetCommit.code(),
                                        );
                                }
                                OffsetFetchResponsePartitions::default()
                                    .with_partition_index(partition)
                                    .with_committed_offset(
                                        offset.as_ref().map_or(-1, |offset| offset.offset),
                                    )
                                    .with_committed_leader_epoch(leader_epoch(&offset))
                                    .with_metadata(Some(text(
                                        offset.map_or(String::new(), |offset| offset.metadata),
                                    )))
                            })
                            .collect();
                        OffsetFetchResponseTopics::default()
                            .with_name(TopicName(text(topic)))
                            .with_partitions(partitions)
                    })
                    .collect();
                answer.with_topics(topics)
            })
            .collect();
        return context.respond(&OffsetFetchResponse::default().with_groups(answers));
    }
    if let Some(error) = group_refusal(&context.broker, &request.group_id) {
        return context.respond(&OffsetFetchResponse::default().with_error_code(error.code()));
    }
    let wanted = request.topics.as_ref().map(|topics| {
        topics
            .iter()
            .map(|topic| (topic.name.to_string(), topic.partition_indexes.clone()))
            .collect()
    });
    let topics = fetch_group(groups, &request.group_id, wanted)
        .into_iter()
        .map(|(topic, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(partition, offset)| {
                    if unstable(&request.group_id, &topic, partition) {
                        return OffsetFetchResponsePartition::default()
                            .with_partition_index(partition)
                            .with_committed_offset(-1)
                            .with_error_code(ResponseError::UnstableOffsetCommit.code());
                    }
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(partition)
                        .with_committed_offset(offset.as_ref().map_or(-1, |offset| offset.offset))
                        .with_committed_leader_epoch(leader_epoch(&offset))
                        .with_metadata(Some(text(
                            offset.map_or(String::new(), |offset| offset.metadata),
                        )))
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(text(topic)))
                .with_partitions(partitions)
        })
        .collect();
    context.respond(&OffsetFetchResponse::default().with_topics(topics))
}

pub fn offset_delete(context: Context, request: OffsetDeleteRequest) -> Reply {
    Reply::Later(Box::pin(async move {
        let response = delete_offsets(&context, request).await;
        context.respond(&response)
    }))
}

/// OffsetDelete's answer, once the tombstones are replicated (or refused).
async fn delete_offsets(context: &Context, request: OffsetDeleteRequest) -> OffsetDeleteResponse {
    {
        if let Some(error) = group_refusal(&context.broker, &request.group_id) {
            return OffsetDeleteResponse::default().with_error_code(error.code());
        }
        let partitions: Vec<(String, i32)> = request
            .topics
            .iter()
            .flat_map(|topic| {
                topic
                    .partitions
                    .iter()
                    .map(move |partition| (topic.name.to_string(), partition.partition_index))
            })
            .collect();
        let results = match context
            .broker
            .groups
            .delete_offsets(&context.broker, &request.group_id, &partitions)
            .await
        {
            Ok(results) => results,
            Err(error) => {
                return OffsetDeleteResponse::default()
                    .with_error_code(group_error_code(error).code())
            }
        };
        let mut results = results.into_iter();
        let topics = request
            .topics
            .iter()
            .map(|topic| {
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|partition| {
                        let code = results
                            .next()
                            .and_then(|result| result.err())
                            .map_or(0, |error| group_error_code(error).code());
                        OffsetDeleteResponsePartition::default()
                            .with_partition_index(partition.partition_index)
                            .with_error_code(code)
                    })
                    .collect();
                OffsetDeleteResponseTopic::default()
                    .with_name(topic.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        OffsetDeleteResponse::default().with_topics(topics)
    }
}
