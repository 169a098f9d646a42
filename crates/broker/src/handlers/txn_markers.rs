//! WriteTxnMarkers: a transaction coordinator (or an admin client aborting a hanging
//! transaction) has the leaders of a transaction's partitions write its COMMIT or ABORT marker.
//!
//! Each partition of each marker is appended through the replica manager at `acks=all`, as
//! Kafka does, and the answer lists every producer and partition once every append is in the
//! in-sync replicas or failed. The log refuses a marker from a fenced producer epoch
//! (INVALID_PRODUCER_EPOCH) or an older coordinator (TRANSACTION_COORDINATOR_FENCED).

use std::time::Duration;

use cauce_protocol::control::{EndTxnMarker, TransactionResult};
use cauce_protocol::kafka::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use cauce_protocol::kafka::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};

use super::{Context, Reply};
use crate::group::coordinator::OFFSETS_TOPIC;
use crate::replica_manager::{Appended, ReplicaManager};

/// How long the appends may wait for the in-sync replicas: the request has no timeout of its
/// own, and Kafka uses its `request.timeout.ms` default.
const REPLICATION_TIMEOUT: Duration = Duration::from_secs(30);

pub fn write_txn_markers(context: Context, request: WriteTxnMarkersRequest) -> Reply {
    let now = crate::now_ms();
    let deadline = tokio::time::Instant::now() + REPLICATION_TIMEOUT;
    let image = context.broker.metadata.image();
    // Appended in request order now; the waits for replication come after.
    let mut results = Vec::with_capacity(request.markers.len());
    let mut pending: Vec<(usize, usize, usize, Appended)> = Vec::new();
    for (marker_at, written) in request.markers.into_iter().enumerate() {
        let marker = EndTxnMarker {
            result: TransactionResult::from_committed(written.transaction_result),
            coordinator_epoch: written.coordinator_epoch,
        };
        let mut topics = Vec::with_capacity(written.topics.len());
        for (topic_at, topic) in written.topics.into_iter().enumerate() {
            let mut partitions = Vec::with_capacity(topic.partition_indexes.len());
            for (partition_at, &index) in topic.partition_indexes.iter().enumerate() {
                let appended = if topic.name.as_str() == OFFSETS_TOPIC {
                    // Ends the producer's transactional offset commits too.
                    context.broker.groups.write_marker(
                        &context.broker,
                        index,
                        (written.producer_id.0, written.producer_epoch),
                        marker,
                    )
                } else {
                    context.broker.replicas.append_marker(
                        &image,
                        &topic.name,
                        index,
                        written.producer_id.0,
                        written.producer_epoch,
                        marker,
                        now,
                    )
                };
                let error = match appended {
                    Ok(appended) => {
                        if ReplicaManager::must_wait(&appended, -1) {
                            pending.push((marker_at, topic_at, partition_at, appended));
                        }
                        0
                    }
                    Err((error, message)) => {
                        tracing::info!(
                            topic = %topic.name.as_str(),
                            partition = index,
                            producer_id = written.producer_id.0,
                            ?error,
                            %message,
                            "transaction marker refused"
                        );
                        error.code()
                    }
                };
                partitions.push(
                    WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(index)
                        .with_error_code(error),
                );
            }
            topics.push(
                WritableTxnMarkerTopicResult::default()
                    .with_name(topic.name)
                    .with_partitions(partitions),
            );
        }
        results.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(written.producer_id)
                .with_topics(topics),
        );
    }
    let response = WriteTxnMarkersResponse::default().with_markers(results);
    if pending.is_empty() {
        return context.respond(&response);
    }
    Reply::Later(Box::pin(async move {
        let mut response = response;
        for (marker_at, topic_at, partition_at, appended) in &pending {
            if let Err((error, message)) =
                ReplicaManager::acknowledged(appended, -1, deadline).await
            {
                tracing::info!(topic = %appended.partition.topic, partition = appended.partition.index, ?error, %message, "transaction marker not replicated");
                response.markers[*marker_at].topics[*topic_at].partitions[*partition_at]
                    .error_code = error.code();
            }
        }
        context.respond(&response)
    }))
}
