//! The transactional producer's requests to its coordinator: AddPartitionsToTxn,
//! AddOffsetsToTxn and EndTxn (InitProducerId with a transactional id is in `producer_ids`,
//! TxnOffsetCommit, which goes to the group coordinator, in `group_offsets`). Each is answered once the
//! coordinator's state change is in the in-sync replicas of `__transaction_state`.

use std::collections::BTreeSet;

use cauce_protocol::kafka::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use cauce_protocol::kafka::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, EndTxnRequest, EndTxnResponse,
};
use cauce_protocol::ResponseError;

use super::groups::offsets_topic_ready;
use super::{Context, Reply};
use crate::group::coordinator::OFFSETS_TOPIC;

/// First AddPartitionsToTxn, AddOffsetsToTxn and EndTxn version that knows PRODUCER_FENCED; older clients get
/// INVALID_PRODUCER_EPOCH for it, as Kafka answers them.
const PRODUCER_FENCED_VERSION: i16 = 2;

/// PRODUCER_FENCED as a client of `version` understands it.
pub fn fenced_for(version: i16, first_version_knowing: i16, error: ResponseError) -> ResponseError {
    if error == ResponseError::ProducerFenced && version < first_version_knowing {
        ResponseError::InvalidProducerEpoch
    } else {
        error
    }
}

pub fn add_partitions_to_txn(context: Context, request: AddPartitionsToTxnRequest) -> Reply {
    context.respond_later(|context| async move {
        let transactional_id = request.v3_and_below_transactional_id.to_string();
        let image = context.broker.metadata.image();
        // As Kafka: a partition that does not exist fails the request before anything is
        // written; the others are told so with OPERATION_NOT_ATTEMPTED.
        let unknown = |topic: &str, index: i32| {
            image
                .topic(topic)
                .is_none_or(|topic| index < 0 || topic.partitions.len() <= index as usize)
        };
        let any_unknown = request.v3_and_below_topics.iter().any(|topic| {
            topic
                .partitions
                .iter()
                .any(|index| unknown(&topic.name, *index))
        });
        let outcome = if transactional_id.is_empty() {
            Err(ResponseError::InvalidRequest)
        } else if any_unknown {
            Err(ResponseError::OperationNotAttempted)
        } else {
            let partitions: BTreeSet<(String, i32)> = request
                .v3_and_below_topics
                .iter()
                .flat_map(|topic| {
                    topic
                        .partitions
                        .iter()
                        .map(|index| (topic.name.to_string(), *index))
                })
                .collect();
            context
                .broker
                .transactions
                .add_partitions(
                    &context.broker,
                    &transactional_id,
                    request.v3_and_below_producer_id.0,
                    request.v3_and_below_producer_epoch,
                    &partitions,
                )
                .await
                .map_err(|error| fenced_for(context.version, PRODUCER_FENCED_VERSION, error))
        };
        let results = request
            .v3_and_below_topics
            .into_iter()
            .map(|topic| {
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|index| {
                        let code = match outcome {
                            Ok(()) => 0,
                            Err(ResponseError::OperationNotAttempted)
                                if unknown(&topic.name, *index) =>
                            {
                                ResponseError::UnknownTopicOrPartition.code()
                            }
                            Err(error) => error.code(),
                        };
                        AddPartitionsToTxnPartitionResult::default()
                            .with_partition_index(*index)
                            .with_partition_error_code(code)
                    })
                    .collect();
                AddPartitionsToTxnTopicResult::default()
                    .with_name(topic.name)
                    .with_results_by_partition(partitions)
            })
            .collect();
        AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
    })
}

/// AddOffsetsToTxn: the group's `__consumer_offsets` partition joins the transaction, so that
/// the producer's TxnOffsetCommit for the group is ended with it.
pub fn add_offsets_to_txn(context: Context, request: AddOffsetsToTxnRequest) -> Reply {
    context.respond_later(|context| async move {
        let transactional_id = request.transactional_id.to_string();
        let outcome = if transactional_id.is_empty() || request.group_id.is_empty() {
            Err(ResponseError::InvalidRequest)
        } else if let Err(error) = offsets_topic_ready(&context.broker).await {
            tracing::warn!(%error, "__consumer_offsets is not available");
            Err(ResponseError::CoordinatorNotAvailable)
        } else {
            let partition = (
                OFFSETS_TOPIC.to_string(),
                context.broker.groups.partition_of(&request.group_id),
            );
            context
                .broker
                .transactions
                .add_partitions(
                    &context.broker,
                    &transactional_id,
                    request.producer_id.0,
                    request.producer_epoch,
                    &BTreeSet::from([partition]),
                )
                .await
                .map_err(|error| fenced_for(context.version, PRODUCER_FENCED_VERSION, error))
        };
        AddOffsetsToTxnResponse::default()
            .with_error_code(outcome.err().map_or(0, |error| error.code()))
    })
}

pub fn end_txn(context: Context, request: EndTxnRequest) -> Reply {
    context.respond_later(|context| async move {
        let transactional_id = request.transactional_id.to_string();
        let outcome = if transactional_id.is_empty() {
            Err(ResponseError::InvalidRequest)
        } else {
            context
                .broker
                .transactions
                .end_transaction(
                    &context.broker,
                    &transactional_id,
                    request.producer_id.0,
                    request.producer_epoch,
                    request.committed,
                )
                .await
                .map_err(|error| fenced_for(context.version, PRODUCER_FENCED_VERSION, error))
        };
        if let Err(error) = outcome {
            tracing::debug!(%transactional_id, ?error, "EndTxn refused");
        }
        EndTxnResponse::default()
            .with_error_code(outcome.err().map_or(0, |error| error.code()))
            .with_producer_id(request.producer_id)
            .with_producer_epoch(request.producer_epoch)
    })
}
