//! Transactions: markers on partitions, `read_committed` reads, the transaction coordinator.
//!
//! Until the coordinator exists, the tests write transactions by hand: transactional batches
//! with the raw protocol, then the markers a coordinator would have the leader write.

mod markers;
mod read_committed;

use cauce_integration_tests::raw::{
    current_unix_time_ms, produce_request, topic_name, PRODUCE_VERSION,
};
use cauce_integration_tests::RawClient;
use cauce_protocol::records::{build_batch, BatchOptions, NewRecord};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ApiKey, ProduceResponse, ProducerId, TransactionalId, WriteTxnMarkersRequest,
    WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;

/// Produces `values` as one transactional batch of `producer_id` at epoch 0.
pub fn produce_transactional(
    client: &mut RawClient,
    topic: &str,
    producer_id: i64,
    sequence: i32,
    values: &[&str],
) -> i64 {
    let records: Vec<NewRecord> = values
        .iter()
        .map(|value| NewRecord::value_only(current_unix_time_ms(), value.as_bytes().to_vec()))
        .collect();
    let batch = build_batch(
        0,
        &records,
        &BatchOptions {
            producer_id,
            producer_epoch: 0,
            base_sequence: sequence,
            is_transactional: true,
            ..BatchOptions::default()
        },
    )
    .unwrap();
    let request = produce_request(topic, 0, batch).with_transactional_id(Some(TransactionalId(
        StrBytes::from_string(format!("txn-{producer_id}")),
    )));
    let response: ProduceResponse = client.call(ApiKey::Produce, PRODUCE_VERSION, &request);
    let partition = &response.responses[0].partition_responses[0];
    assert_eq!(partition.error_code, 0, "{:?}", partition.error_message);
    partition.base_offset
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
