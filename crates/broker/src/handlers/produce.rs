//! Produce: decode, append through the replica manager in arrival order, answer per `acks`.

use bytes::BytesMut;
use cauce_protocol::batch::BatchIter;
use cauce_protocol::kafka::messages::produce_response::{
    PartitionProduceResponse, TopicProduceResponse,
};
use cauce_protocol::kafka::messages::{ProduceRequest, ProduceResponse};
use cauce_protocol::ResponseError;

use super::{text, Context, Reply};
use crate::partition::Partition;
use crate::replica_manager::{Appended, ReplicaManager};

pub fn handle(context: Context, request: ProduceRequest) -> Reply {
    let acks = request.acks;
    let now = crate::now_ms();
    let deadline = tokio::time::Instant::now()
        + std::time::Duration::from_millis(request.timeout_ms.max(0) as u64);
    let internal_allowed = context.client_id() == ADMIN_CLIENT_ID;
    let image = context.broker.metadata.image();
    let mut responses = Vec::with_capacity(request.topic_data.len());
    // Appends whose acknowledgement waits for a flush or for the in-sync replicas.
    let mut pending: Vec<Appended> = Vec::new();
    let mut any_error = false;
    // As Kafka: transactional batches need a transactional id, and without one the whole
    // request is refused before anything is appended.
    let missing_transactional_id =
        (request.transactional_id.is_none() && has_transactional_batches(&request)).then(|| {
            (
                ResponseError::TransactionalIdAuthorizationFailed,
                "transactional batches need the request's transactional id".to_string(),
            )
        });
    for topic in request.topic_data {
        let mut partition_responses = Vec::with_capacity(topic.partition_data.len());
        for data in topic.partition_data {
            let mut response = PartitionProduceResponse::default()
                .with_index(data.index)
                .with_base_offset(-1);
            let appended = if let Some(refusal) = &missing_transactional_id {
                Err(refusal.clone())
            } else {
                let mut records = BytesMut::from(data.records.unwrap_or_default().as_ref());
                context.broker.replicas.append_records(
                    &image,
                    &topic.name,
                    data.index,
                    &mut records,
                    acks,
                    internal_allowed,
                    now,
                )
            };
            match appended {
                Ok(appended) => {
                    response.base_offset = appended.outcome.base_offset;
                    response.log_append_time_ms = appended.outcome.log_append_time;
                    response.log_start_offset = appended.outcome.log_start_offset;
                    if ReplicaManager::must_wait(&appended, acks) {
                        pending.push(appended);
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
    if pending.is_empty() {
        return context.respond(&response);
    }
    Reply::Later(Box::pin(async move {
        let mut response = response;
        for appended in &pending {
            if let Err((error, message)) =
                ReplicaManager::acknowledged(appended, acks, deadline).await
            {
                mark_failure(&mut response, &appended.partition, error, &message);
            }
        }
        context.respond(&response)
    }))
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

/// Whether any batch of any partition of `request` has the transactional bit.
fn has_transactional_batches(request: &ProduceRequest) -> bool {
    request.topic_data.iter().any(|topic| {
        topic.partition_data.iter().any(|data| {
            data.records.as_ref().is_some_and(|records| {
                BatchIter::new(records).any(|batch| batch.header.is_transactional())
            })
        })
    })
}
