//! The transactional producer's requests to its coordinator: AddPartitionsToTxn,
//! AddOffsetsToTxn and EndTxn (InitProducerId with a transactional id is in `producer_ids`,
//! TxnOffsetCommit, which goes to the group coordinator, in `group_offsets`); and the
//! operator's (KIP-664): DescribeTransactions, ListTransactions, DescribeProducers. Each is answered once the
//! coordinator's state change is in the in-sync replicas of `__transaction_state`.

use std::collections::BTreeSet;

use cauce_protocol::kafka::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use cauce_protocol::kafka::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use cauce_protocol::kafka::messages::describe_transactions_response::{
    TopicData, TransactionState as DescribedState,
};
use cauce_protocol::kafka::messages::list_transactions_response::TransactionState as ListedState;
use cauce_protocol::kafka::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, DescribeProducersRequest, DescribeProducersResponse,
    DescribeTransactionsRequest, DescribeTransactionsResponse, EndTxnRequest, EndTxnResponse,
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TopicName, TransactionalId,
};
use cauce_protocol::ResponseError;

use super::groups::offsets_topic_ready;
use super::{text, Context, Reply};
use crate::group::coordinator::OFFSETS_TOPIC;
use crate::txn::state::TxnState;

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

/// DescribeTransactions: each id's state, from its coordinator (this broker, or
/// NOT_COORDINATOR).
pub fn describe_transactions(context: Context, request: DescribeTransactionsRequest) -> Reply {
    let states = request
        .transactional_ids
        .into_iter()
        .map(|transactional_id| {
            let answer = DescribedState::default().with_transactional_id(transactional_id.clone());
            if transactional_id.is_empty() {
                return answer.with_error_code(ResponseError::InvalidRequest.code());
            }
            match context.broker.transactions.describe(&transactional_id) {
                Err(error) => answer.with_error_code(error.code()),
                Ok(metadata) => {
                    let mut topics: Vec<TopicData> = Vec::new();
                    for (topic, partition) in &metadata.partitions {
                        match topics.last_mut() {
                            Some(last) if last.topic.as_str() == topic => {
                                last.partitions.push(*partition)
                            }
                            _ => topics.push(
                                TopicData::default()
                                    .with_topic(TopicName(text(topic.clone())))
                                    .with_partitions(vec![*partition]),
                            ),
                        }
                    }
                    answer
                        .with_transaction_state(text(metadata.state.name()))
                        .with_transaction_timeout_ms(metadata.timeout_ms)
                        .with_transaction_start_time_ms(metadata.start_ms)
                        .with_producer_id(ProducerId(metadata.producer_id))
                        .with_producer_epoch(metadata.producer_epoch)
                        .with_topics(topics)
                }
            }
        })
        .collect();
    context.respond(&DescribeTransactionsResponse::default().with_transaction_states(states))
}

/// ListTransactions: the transactions this broker coordinates, filtered by state, producer id
/// and (version 1) how long they have been open.
pub fn list_transactions(context: Context, request: ListTransactionsRequest) -> Reply {
    let mut unknown = Vec::new();
    let mut states = BTreeSet::new();
    for name in &request.state_filters {
        match TxnState::from_name(name) {
            Some(state) => {
                states.insert(state);
            }
            None => unknown.push(name.clone()),
        }
    }
    let producer_ids: BTreeSet<i64> = request.producer_id_filters.iter().map(|id| id.0).collect();
    let listed = context
        .broker
        .transactions
        .list(&states, &producer_ids, request.duration_filter)
        .into_iter()
        .map(|(transactional_id, producer_id, state)| {
            ListedState::default()
                .with_transactional_id(TransactionalId(text(transactional_id)))
                .with_producer_id(ProducerId(producer_id))
                .with_transaction_state(text(state.name()))
        })
        .collect();
    context.respond(
        &ListTransactionsResponse::default()
            .with_unknown_state_filters(unknown)
            .with_transaction_states(listed),
    )
}

/// DescribeProducers: the producers of partitions this broker leads, with the open
/// transaction of each (what `cauce txn abort` and `kafka-transactions.sh` look for).
pub fn describe_producers(context: Context, request: DescribeProducersRequest) -> Reply {
    let image = context.broker.metadata.image();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partition_indexes
                .iter()
                .map(|&index| {
                    let answer = PartitionResponse::default().with_partition_index(index);
                    let partition = match context.broker.replicas.leader(&image, &topic.name, index)
                    {
                        Ok(partition) => partition,
                        Err(error) => return answer.with_error_code(error.code()),
                    };
                    let producers = partition
                        .with_log(|log| log.producers())
                        .into_iter()
                        .map(|(producer_id, entry)| {
                            ProducerState::default()
                                .with_producer_id(ProducerId(producer_id))
                                .with_producer_epoch(i32::from(entry.producer_epoch))
                                .with_last_sequence(entry.last_sequence().unwrap_or(-1))
                                .with_last_timestamp(entry.last_timestamp)
                                .with_coordinator_epoch(entry.coordinator_epoch)
                                .with_current_txn_start_offset(
                                    entry.current_txn_first_offset.unwrap_or(-1),
                                )
                        })
                        .collect();
                    answer.with_active_producers(producers)
                })
                .collect();
            TopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    context.respond(&DescribeProducersResponse::default().with_topics(topics))
}
