//! Markers for partitions another broker leads: one WriteTxnMarkers request per leader and
//! round, over `cauce-client`, as Kafka's marker channel sends them.

use cauce_client::{ClientOptions, Connection};
use cauce_metadata::MetadataImage;
use cauce_protocol::control::{EndTxnMarker, TransactionResult};
use cauce_protocol::kafka::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use cauce_protocol::kafka::messages::{ProducerId, TopicName, WriteTxnMarkersRequest};
use cauce_protocol::kafka::protocol::StrBytes;
use cauce_protocol::ResponseError;

use super::state::TxnMetadata;
use crate::Broker;

/// How long connecting to a leader and its answer may take; the answer waits for the leader's
/// in-sync replicas.
const MARKER_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(35);

/// Sends the markers of `partitions` to the broker `leader` and gives each partition's result,
/// in order; every partition gets the connection's error if the request fails.
pub async fn write_remote_markers(
    broker: &Broker,
    image: &MetadataImage,
    leader: i32,
    metadata: &TxnMetadata,
    marker: EndTxnMarker,
    partitions: &[(String, i32)],
) -> Vec<Result<(), ResponseError>> {
    let all = |error: ResponseError| vec![Err(error); partitions.len()];
    let Some(registration) = image.brokers.get(&leader).filter(|leader| !leader.fenced) else {
        return all(ResponseError::NotLeaderOrFollower);
    };
    let address = format!("{}:{}", registration.host, registration.port);
    let options = ClientOptions {
        client_id: format!("cauce-txn-coordinator-{}", broker.config.node_id),
        connect_timeout: MARKER_REQUEST_TIMEOUT,
        request_timeout: MARKER_REQUEST_TIMEOUT,
        ..ClientOptions::default()
    };
    let mut topics: Vec<WritableTxnMarkerTopic> = Vec::new();
    for (topic, index) in partitions {
        match topics.last_mut() {
            Some(last) if last.name.as_str() == topic => last.partition_indexes.push(*index),
            _ => topics.push(
                WritableTxnMarkerTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partition_indexes(vec![*index]),
            ),
        }
    }
    let request =
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(metadata.producer_id))
            .with_producer_epoch(metadata.producer_epoch)
            .with_transaction_result(marker.result == TransactionResult::Commit)
            .with_coordinator_epoch(marker.coordinator_epoch)
            .with_topics(topics)]);
    let response = match Connection::connect(&address, &options).await {
        Ok(mut connection) => connection.call(&request).await,
        Err(error) => Err(error),
    };
    let response = match response {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!(%address, %error, "markers not delivered");
            return all(ResponseError::NetworkException);
        }
    };
    partitions
        .iter()
        .map(|(topic, index)| {
            let code = response
                .markers
                .iter()
                .flat_map(|marker| &marker.topics)
                .filter(|answered| answered.name.as_str() == topic)
                .flat_map(|answered| &answered.partitions)
                .find(|answered| answered.partition_index == *index)
                .map(|answered| answered.error_code);
            match code {
                Some(0) => Ok(()),
                Some(code) => {
                    Err(ResponseError::try_from_code(code)
                        .unwrap_or(ResponseError::UnknownServerError))
                }
                None => Err(ResponseError::UnknownServerError),
            }
        })
        .collect()
}
