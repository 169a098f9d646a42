//! ListOffsets, OffsetForLeaderEpoch and DeleteRecords: questions and changes about offsets.

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
use cauce_protocol::ResponseError;

use super::{leader_partition, Context, Reply};
use crate::errors::log_error_code;

/// ListOffsets timestamps with special meanings.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
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
                        let partition = match leader_partition(
                            &context.broker,
                            &topic.name,
                            wanted.partition_index,
                            wanted.current_leader_epoch,
                        ) {
                            Ok(partition) => partition,
                            Err(error) => return response.with_error_code(error.code()),
                        };
                        let epoch = partition.leader_epoch();
                        let high_watermark = partition.high_watermark();
                        let found = partition.with_log(|log| match wanted.timestamp {
                            LATEST => Ok(Some((high_watermark, -1, epoch))),
                            EARLIEST | EARLIEST_LOCAL => {
                                Ok(Some((log.log_start_offset(), -1, epoch)))
                            }
                            MAX_TIMESTAMP => log.max_timestamp_and_offset().map(|found| {
                                found.map(|(timestamp, offset)| (offset, timestamp, epoch))
                            }),
                            timestamp => log.offset_for_timestamp(timestamp),
                        });
                        match found {
                            Ok(Some((offset, timestamp, leader_epoch))) => {
                                let response =
                                    response.with_offset(offset).with_timestamp(timestamp);
                                if context.version >= LEADER_EPOCH_VERSION {
                                    response.with_leader_epoch(leader_epoch)
                                } else {
                                    response
                                }
                            }
                            Ok(None) => response,
                            Err(error) => response.with_error_code(log_error_code(&error).code()),
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
                    let partition = match leader_partition(
                        &context.broker,
                        &topic.topic,
                        wanted.partition,
                        wanted.current_leader_epoch,
                    ) {
                        Ok(partition) => partition,
                        Err(error) => return response.with_error_code(error.code()),
                    };
                    match partition.with_log(|log| log.end_offset_for_epoch(wanted.leader_epoch)) {
                        Some((epoch, end_offset)) => response
                            .with_leader_epoch(epoch)
                            .with_end_offset(end_offset),
                        None => response,
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
                        let response =
                            DeleteRecordsPartitionResult::default().with_partition_index(wanted.partition_index).with_low_watermark(-1);
                        let partition = match leader_partition(&context.broker, &topic.name, wanted.partition_index, -1) {
                            Ok(partition) => partition,
                            Err(error) => return response.with_error_code(error.code()),
                        };
                        let high_watermark = partition.high_watermark();
                        let result = partition.with_log(|log| {
                            let offset = if wanted.offset == -1 { high_watermark } else { wanted.offset };
                            if offset < 0 || offset > high_watermark {
                                return Err(ResponseError::OffsetOutOfRange);
                            }
                            log.delete_records_before(offset).map_err(|error| log_error_code(&error))
                        });
                        match result {
                            Ok(low_watermark) => {
                                tracing::info!(topic = %topic.name.as_str(), partition = wanted.partition_index, low_watermark, "records deleted");
                                response.with_low_watermark(low_watermark)
                            }
                            Err(error) => response.with_error_code(error.code()),
                        }
                    })
                    .collect();
                DeleteRecordsTopicResult::default().with_name(topic.name).with_partitions(partitions)
            })
            .collect();
        DeleteRecordsResponse::default().with_topics(topics)
    })
}
