//! Transactions: markers on partitions, `read_committed` reads, the transaction coordinator.
//!
//! The marker and read tests write transactions by hand (transactional batches with the raw
//! protocol, then the markers a coordinator would have the leader write), so that they control
//! every offset; the producer tests go through the coordinator.

mod cluster;
mod failover;
mod markers;
mod offsets;
mod operations;
mod producers;
mod read_committed;

use cauce_integration_tests::raw::{
    current_unix_time_ms, produce_request, topic_name, LIST_OFFSETS_LATEST_TIMESTAMP,
    PRODUCE_VERSION,
};
use std::time::{Duration, Instant};

use cauce_integration_tests::clients::CONSUME_TIMEOUT;
use cauce_integration_tests::raw::produce_each_value_as_its_own_batch;
use cauce_integration_tests::RawClient;
use cauce_protocol::records::{build_batch, BatchOptions, NewRecord};
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, EndTxnRequest, EndTxnResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, InitProducerIdRequest, InitProducerIdResponse,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, ListOffsetsRequest, ListOffsetsResponse, ProduceResponse, ProducerId,
    TransactionalId, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

/// Produces `values` as one transactional batch of `producer_id` at epoch 0, first sequence
/// `sequence`, under the transactional id `txn-<producer id>`.
pub fn produce_transactional(
    client: &mut RawClient,
    topic: &str,
    producer_id: i64,
    sequence: i32,
    values: &[&str],
) -> i64 {
    let transactional_id = format!("txn-{producer_id}");
    let partition = produce_transactional_batch(
        client,
        topic,
        producer_id,
        0,
        sequence,
        &transactional_id,
        values,
    );
    assert_eq!(partition.error_code, 0, "{:?}", partition.error_message);
    partition.base_offset
}

/// Produces `values` as one transactional batch at sequence 0 and returns the error code.
pub fn produce_transactional_at(
    client: &mut RawClient,
    topic: &str,
    producer_id: i64,
    epoch: i16,
    transactional_id: &str,
    values: &[&str],
) -> i16 {
    produce_transactional_batch(
        client,
        topic,
        producer_id,
        epoch,
        0,
        transactional_id,
        values,
    )
    .error_code
}

pub fn produce_transactional_batch(
    client: &mut RawClient,
    topic: &str,
    producer_id: i64,
    producer_epoch: i16,
    sequence: i32,
    transactional_id: &str,
    values: &[&str],
) -> PartitionProduceResponse {
    let records: Vec<NewRecord> = values
        .iter()
        .map(|value| NewRecord::value_only(current_unix_time_ms(), value.as_bytes().to_vec()))
        .collect();
    let batch = build_batch(
        0,
        &records,
        &BatchOptions {
            producer_id,
            producer_epoch,
            base_sequence: sequence,
            is_transactional: true,
            ..BatchOptions::default()
        },
    )
    .unwrap();
    let request = produce_request(topic, 0, batch).with_transactional_id(Some(TransactionalId(
        StrBytes::from_string(transactional_id.to_string()),
    )));
    let response: ProduceResponse = client.call(ApiKey::Produce, PRODUCE_VERSION, &request);
    response.responses[0].partition_responses[0].clone()
}

/// ListOffsets LATEST of partition 0 for `isolation_level` (1: the last stable offset).
pub fn latest_offset(client: &mut RawClient, topic: &str, isolation_level: i8) -> i64 {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation_level)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(LIST_OFFSETS_LATEST_TIMESTAMP)])]);
    let response: ListOffsetsResponse = client.call(ApiKey::ListOffsets, 8, &request);
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    partition.offset
}

/// The last stable offset of partition 0, from ListOffsets.
pub fn latest_committed_offset(client: &mut RawClient, topic: &str) -> i64 {
    latest_offset(client, topic, 1)
}

/// Sends one marker for partition 0 of `topic` and returns that partition's error code.
pub fn write_marker(
    client: &mut RawClient,
    topic: &str,
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
) -> i16 {
    let request =
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(producer_epoch)
            .with_transaction_result(commit)
            .with_coordinator_epoch(coordinator_epoch)
            .with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(topic_name(topic))
                .with_partition_indexes(vec![0])])]);
    let response: WriteTxnMarkersResponse = client.call(ApiKey::WriteTxnMarkers, 1, &request);
    assert_eq!(response.markers.len(), 1);
    assert_eq!(response.markers[0].producer_id, ProducerId(producer_id));
    let partition = &response.markers[0].topics[0].partitions[0];
    assert_eq!(partition.partition_index, 0);
    partition.error_code
}

/// FindCoordinator for a transactional id, which must succeed.
pub fn find_transaction_coordinator(client: &mut RawClient, transactional_id: &str) {
    let response: FindCoordinatorResponse = client.call(
        ApiKey::FindCoordinator,
        3,
        &FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(transactional_id.to_string()))
            .with_key_type(1),
    );
    assert_eq!(response.error_code, 0);
}

/// InitProducerId for a transactional id; returns the producer id and epoch.
pub fn init_producer(
    client: &mut RawClient,
    transactional_id: &str,
    timeout_ms: i32,
) -> (i64, i16) {
    let response: InitProducerIdResponse = client.call(
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(StrBytes::from_string(
                transactional_id.to_string(),
            ))))
            .with_transaction_timeout_ms(timeout_ms)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    );
    assert_eq!(response.error_code, 0);
    (response.producer_id.0, response.producer_epoch)
}

/// AddPartitionsToTxn (v3) of partition 0 of `topic`, which must succeed.
pub fn add_partition_zero(
    client: &mut RawClient,
    transactional_id: &str,
    producer_id: i64,
    epoch: i16,
    topic: &str,
) {
    let response: AddPartitionsToTxnResponse = client.call(
        ApiKey::AddPartitionsToTxn,
        3,
        &AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(StrBytes::from_string(
                transactional_id.to_string(),
            )))
            .with_v3_and_below_producer_id(ProducerId(producer_id))
            .with_v3_and_below_producer_epoch(epoch)
            .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![0])]),
    );
    assert_eq!(
        response.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
        0
    );
}

/// EndTxn (v3); returns the error code.
pub fn end_transaction(
    client: &mut RawClient,
    transactional_id: &str,
    producer_id: i64,
    epoch: i16,
    commit: bool,
) -> i16 {
    let response: EndTxnResponse = client.call(
        ApiKey::EndTxn,
        3,
        &EndTxnRequest::default()
            .with_transactional_id(TransactionalId(StrBytes::from_string(
                transactional_id.to_string(),
            )))
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch)
            .with_committed(commit),
    );
    response.error_code
}

/// What a librdkafka `read_committed` consumer reads of partition 0 before a plain record
/// appended now: everything committed, and no aborted or open record, in order.
pub fn read_committed_until_sentinel(
    bootstrap: &str,
    client: &mut RawClient,
    topic: &str,
) -> Vec<String> {
    produce_each_value_as_its_own_batch(client, topic, &[SENTINEL.to_string()]);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("{topic}-committed"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let deadline = Instant::now() + CONSUME_TIMEOUT;
    let mut values = Vec::new();
    while Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message.expect("consume");
        let value = String::from_utf8(message.payload().unwrap_or_default().to_vec()).unwrap();
        if value == SENTINEL {
            return values;
        }
        values.push(value);
    }
    panic!("the sentinel of {topic} never came; read so far: {values:?}");
}

/// The plain record that ends [`read_committed_until_sentinel`]'s read.
const SENTINEL: &str = "sentinel";
