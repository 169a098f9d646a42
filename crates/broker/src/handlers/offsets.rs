//! ListOffsets, OffsetForLeaderEpoch and DeleteRecords: questions and changes about offsets.

use super::{Context, Reply};
use crate::partition::FetchIsolation;
use cauce_protocol::kafka::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use cauce_protocol::kafka::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use cauce_protocol::kafka::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use cauce_protocol::kafka::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse, ListOffsetsRequest, ListOffsetsResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};

/// First ListOffsets version whose response carries the leader epoch.
const LEADER_EPOCH_VERSION: i16 = 4;

pub fn list_offsets(context: Context, request: ListOffsetsRequest) -> Reply {
    context.respond_blocking(move |context| {
        let topics = request
            .topics
            .into_iter()
            .map(|topic| {
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|wanted| {
                        let response = ListOffsetsPartitionResponse::default()
                            .with_partition_index(wanted.partition_index)
                            .with_timestamp(-1)
                            .with_offset(-1);
                        let found = context.broker.replicas.offset_for_timestamp(
                            &context.broker.metadata.image(),
                            &topic.name,
                            wanted.partition_index,
                            wanted.current_leader_epoch,
                            wanted.timestamp,
                            FetchIsolation::of_consumer(request.isolation_level),
                        );
                        match found {
                            Ok(Some(found)) => {
                                let response = response
                                    .with_offset(found.offset)
                                    .with_timestamp(found.timestamp);
                                if context.version >= LEADER_EPOCH_VERSION {
                                    response.with_leader_epoch(found.leader_epoch)
                                } else {
                                    response
                                }
                            }
                            Ok(None) => response,
                            Err(error) => response.with_error_code(error.code()),
                        }
                    })
                    .collect();
                ListOffsetsTopicResponse::default()
                    .with_name(topic.name)
                    .with_partitions(partitions)
            })
            .collect();
        ListOffsetsResponse::default().with_topics(topics)
    })
}

pub fn offset_for_leader_epoch(context: Context, request: OffsetForLeaderEpochRequest) -> Reply {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|wanted| {
                    let response = EpochEndOffset::default()
                        .with_partition(wanted.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    let found = context.broker.replicas.end_offset_for_epoch(
                        &context.broker.metadata.image(),
                        &topic.topic,
                        wanted.partition,
                        wanted.current_leader_epoch,
                        wanted.leader_epoch,
                    );
                    match found {
                        Ok(Some((epoch, end_offset))) => response
                            .with_leader_epoch(epoch)
                            .with_end_offset(end_offset),
                        Ok(None) => response,
                        Err(error) => response.with_error_code(error.code()),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions)
        })
        .collect();
    context.respond(&OffsetForLeaderEpochResponse::default().with_topics(topics))
}

pub fn delete_records(context: Context, request: DeleteRecordsRequest) -> Reply {
    context.respond_blocking(move |context| {
        let topics = request
            .topics
            .into_iter()
            .map(|topic| {
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|wanted| {
                        let response = DeleteRecordsPartitionResult::default()
                            .with_partition_index(wanted.partition_index)
                            .with_low_watermark(-1);
                        let result = context.broker.replicas.delete_records(
                            &context.broker.metadata.image(),
                            &topic.name,
                            wanted.partition_index,
                            wanted.offset,
                        );
                        match result {
                            Ok(low_watermark) => response.with_low_watermark(low_watermark),
                            Err(error) => response.with_error_code(error.code()),
                        }
                    })
                    .collect();
                DeleteRecordsTopicResult::default()
                    .with_name(topic.name)
                    .with_partitions(partitions)
            })
            .collect();
        DeleteRecordsResponse::default().with_topics(topics)
    })
}
