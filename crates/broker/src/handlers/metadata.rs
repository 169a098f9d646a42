//! Metadata: brokers, topics and partition leaders, creating unknown topics when allowed.

use std::collections::BTreeMap;

use cauce_metadata::manager::validate_topic_name;
use cauce_metadata::{MetadataError, MetadataImage, TopicImage, TopicRequest};
use cauce_protocol::kafka::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use cauce_protocol::kafka::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use cauce_protocol::ResponseError;

use super::{text, Context, Reply};
use crate::errors::metadata_error_code;

/// Sent when the client did not ask for authorized operations.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

pub fn handle(context: Context, request: MetadataRequest) -> Reply {
    let needs_creation = context.broker.config.auto_create_topics
        && (context.version < 4 || request.allow_auto_topic_creation)
        && request.topics.as_ref().is_some_and(|topics| {
            let image = context.broker.metadata.image();
            topics.iter().any(|topic| {
                topic
                    .name
                    .as_ref()
                    .is_some_and(|name| image.topic(name).is_none())
            })
        });
    if needs_creation {
        return context.respond_later(|context| async move {
            let refused = create_missing(&context, &request).await;
            build(&context, &request, &refused)
        });
    }
    let response = build(&context, &request, &BTreeMap::new());
    context.respond(&response)
}

/// Creates the requested topics that do not exist, if auto-creation is on for this request;
/// returns why each that could not be created was refused.
async fn create_missing(
    context: &Context,
    request: &MetadataRequest,
) -> BTreeMap<String, ResponseError> {
    let mut refused = BTreeMap::new();
    let broker = &context.broker;
    if !(broker.config.auto_create_topics
        && (context.version < 4 || request.allow_auto_topic_creation))
    {
        return refused;
    }
    let image = broker.metadata.image();
    for requested in request.topics.iter().flatten() {
        let Some(name) = &requested.name else {
            continue;
        };
        if image.topic(name).is_some() || validate_topic_name(name).is_err() {
            continue;
        }
        if let Err(error) = auto_create_topic(context, name).await {
            refused.insert(name.to_string(), metadata_error_code(&error));
        }
    }
    broker.logs_caught_up().await;
    refused
}

/// The response, from the image as it is now; `refused` holds the auto-creations that failed.
fn build(
    context: &Context,
    request: &MetadataRequest,
    refused: &BTreeMap<String, ResponseError>,
) -> MetadataResponse {
    let broker = &context.broker;
    let auto_create = broker.config.auto_create_topics
        && (context.version < 4 || request.allow_auto_topic_creation);
    let image = broker.metadata.image();
    let all_topics = match &request.topics {
        None => true,
        Some(topics) => topics.is_empty() && context.version == 0,
    };
    let mut topics = Vec::new();
    if all_topics {
        topics.extend(
            image
                .topics
                .values()
                .map(|topic| describe_topic(&image, topic, request)),
        );
    } else {
        for requested in request.topics.iter().flatten() {
            let Some(name) = &requested.name else {
                let found = image.topic_by_id(&requested.topic_id).cloned();
                topics.push(match found {
                    Some(topic) => describe_topic(&image, &topic, request),
                    None => error_topic(None, ResponseError::UnknownTopicId)
                        .with_topic_id(requested.topic_id),
                });
                continue;
            };
            if let Some(topic) = image.topic(name) {
                topics.push(describe_topic(&image, topic, request));
                continue;
            }
            if validate_topic_name(name).is_err() {
                topics.push(error_topic(
                    Some(name),
                    ResponseError::InvalidTopicException,
                ));
                continue;
            }
            if !auto_create {
                topics.push(error_topic(
                    Some(name),
                    ResponseError::UnknownTopicOrPartition,
                ));
                continue;
            }
            // Created by an earlier request but not in this node's image yet, or refused.
            let error = refused
                .get(name.as_str())
                .copied()
                .unwrap_or(ResponseError::LeaderNotAvailable);
            topics.push(error_topic(Some(name), error));
        }
    }
    // A broker re-registers its advertised address at every start, so the image is current.
    // Fenced brokers are left out, as Kafka does: clients should not connect to them.
    let brokers = image
        .brokers
        .values()
        .filter(|registration| !registration.fenced)
        .map(|registration| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(registration.broker_id))
                .with_host(text(registration.host.clone()))
                .with_port(registration.port)
                .with_rack(registration.rack.clone().map(text))
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(text(image.cluster_id.clone())))
        .with_controller_id(BrokerId(
            broker
                .metadata
                .active_controller()
                .unwrap_or(broker.config.node_id),
        ))
        .with_topics(topics)
        .with_cluster_authorized_operations(OPERATIONS_NOT_REQUESTED)
}

async fn auto_create_topic(context: &Context, name: &str) -> Result<(), MetadataError> {
    let config = &context.broker.config;
    let request = TopicRequest {
        name: name.to_string(),
        num_partitions: config.num_partitions,
        replication_factor: config.default_replication_factor,
        ..Default::default()
    };
    match context.broker.metadata.create_topic(&request, false).await {
        Ok(_) => {
            tracing::info!(topic = %name, client = %context.client.address, "topic auto-created");
            Ok(())
        }
        Err(MetadataError::TopicAlreadyExists(_)) => Ok(()),
        Err(error) => Err(error),
    }
}

fn describe_topic(
    image: &MetadataImage,
    topic: &TopicImage,
    request: &MetadataRequest,
) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .map(|partition| {
            let error = if partition.leader < 0 {
                ResponseError::LeaderNotAvailable.code()
            } else {
                0
            };
            let offline = partition
                .replicas
                .iter()
                .copied()
                .filter(|replica| !image.is_live(*replica))
                .map(BrokerId)
                .collect();
            MetadataResponsePartition::default()
                .with_error_code(error)
                .with_offline_replicas(offline)
                .with_partition_index(partition.partition)
                .with_leader_id(BrokerId(partition.leader))
                .with_leader_epoch(partition.leader_epoch)
                .with_replica_nodes(partition.replicas.iter().copied().map(BrokerId).collect())
                .with_isr_nodes(partition.isr.iter().copied().map(BrokerId).collect())
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(text(topic.name.clone()))))
        .with_topic_id(topic.topic_id)
        .with_is_internal(topic.name.starts_with("__"))
        .with_partitions(partitions)
        .with_topic_authorized_operations(if request.include_topic_authorized_operations {
            ALL_TOPIC_OPERATIONS
        } else {
            OPERATIONS_NOT_REQUESTED
        })
}

/// Bits of the ACL operations a topic supports (READ 3, WRITE 4, CREATE 5, DELETE 6, ALTER 7,
/// DESCRIBE 8, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11); every client may do all of them until
/// authorisation exists.
const ALL_TOPIC_OPERATIONS: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);

fn error_topic(name: Option<&str>, error: ResponseError) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(name.map(|name| TopicName(text(name))))
        .with_error_code(error.code())
        .with_topic_authorized_operations(OPERATIONS_NOT_REQUESTED)
}
