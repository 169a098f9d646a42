//! CreateTopics, DeleteTopics and CreatePartitions.

use std::collections::BTreeMap;

use cauce_metadata::topic_config::effective_topic_configs;
use cauce_metadata::{MetadataError, TopicRequest};
use cauce_protocol::kafka::messages::create_partitions_response::CreatePartitionsTopicResult;
use cauce_protocol::kafka::messages::create_topics_request::CreatableTopic;
use cauce_protocol::kafka::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use cauce_protocol::kafka::messages::delete_topics_response::DeletableTopicResult;
use cauce_protocol::kafka::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use cauce_protocol::ResponseError;

use super::{text, Context, Reply};
use crate::errors::metadata_error_code;

/// First CreateTopics version whose response lists the topic's configs.
const CONFIGS_IN_RESPONSE_VERSION: i16 = 5;

pub fn create_topics(context: Context, request: CreateTopicsRequest) -> Reply {
    context.respond_later(|context| async move {
        let mut seen = BTreeMap::new();
        for topic in &request.topics {
            *seen.entry(topic.name.to_string()).or_insert(0) += 1;
        }
        let mut results = Vec::with_capacity(request.topics.len());
        for topic in &request.topics {
            let result = CreatableTopicResult::default().with_name(topic.name.clone());
            if seen[topic.name.as_str()] > 1 {
                results.push(
                    result
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(text(format!(
                            "topic '{}' appears more than once in the request",
                            topic.name.as_str()
                        )))),
                );
                continue;
            }
            results.push(
                match create_one(&context, topic, request.validate_only).await {
                    Ok(result) => result,
                    Err(error) => result
                        .with_error_code(metadata_error_code(&error).code())
                        .with_error_message(Some(text(error.to_string()))),
                },
            );
        }
        if !request.validate_only {
            context.broker.logs_caught_up().await;
        }
        CreateTopicsResponse::default().with_topics(results)
    })
}

async fn create_one(
    context: &Context,
    topic: &CreatableTopic,
    validate_only: bool,
) -> Result<CreatableTopicResult, MetadataError> {
    let config = &context.broker.config;
    let mut configs = BTreeMap::new();
    for entry in &topic.configs {
        if let Some(value) = &entry.value {
            configs.insert(entry.name.to_string(), value.to_string());
        }
    }
    let mut assignments: Vec<(i32, Vec<i32>)> = topic
        .assignments
        .iter()
        .map(|assignment| {
            (
                assignment.partition_index,
                assignment.broker_ids.iter().map(|id| id.0).collect(),
            )
        })
        .collect();
    assignments.sort_by_key(|(partition, _)| *partition);
    if !assignments.is_empty() && (topic.num_partitions != -1 || topic.replication_factor != -1) {
        return Err(MetadataError::InvalidPartitions(
            "both replica assignments and partition count or replication factor were given; give one".into(),
        ));
    }
    if assignments
        .iter()
        .enumerate()
        .any(|(expected, (partition, _))| *partition != expected as i32)
    {
        return Err(MetadataError::InvalidPartitions(
            "replica assignments must cover partitions 0..n without gaps".into(),
        ));
    }
    let request = TopicRequest {
        name: topic.name.to_string(),
        num_partitions: if topic.num_partitions == -1 {
            config.num_partitions
        } else {
            topic.num_partitions
        },
        replication_factor: if topic.replication_factor == -1 {
            config.default_replication_factor
        } else {
            topic.replication_factor
        },
        assignments: assignments
            .into_iter()
            .map(|(_, replicas)| replicas)
            .collect(),
        configs,
    };
    let created = context
        .broker
        .metadata
        .create_topic(&request, validate_only)
        .await?;
    let mut result = CreatableTopicResult::default()
        .with_name(TopicName(text(created.name.clone())))
        .with_topic_id(created.topic_id)
        .with_num_partitions(created.partitions.len() as i32)
        .with_replication_factor(
            created
                .partitions
                .first()
                .map_or(0, |partition| partition.replicas.len() as i16),
        );
    if context.version >= CONFIGS_IN_RESPONSE_VERSION {
        let configs =
            effective_topic_configs(&created.configs, context.broker.replicas.topic_defaults())
                .into_iter()
                .map(|(def, value, source)| {
                    CreatableTopicConfigs::default()
                        .with_name(text(def.name))
                        .with_value(Some(text(value)))
                        .with_config_source(source.describe_configs_code())
                })
                .collect();
        result.configs = Some(configs);
    }
    Ok(result)
}

pub fn delete_topics(context: Context, request: DeleteTopicsRequest) -> Reply {
    context.respond_later(|context| async move {
        // Versions 0-5 name topics in `topic_names`; version 6 uses `topics` with names or ids.
        let mut targets: Vec<(Option<String>, uuid::Uuid)> = request
            .topic_names
            .iter()
            .map(|name| (Some(name.to_string()), uuid::Uuid::nil()))
            .collect();
        targets.extend(request.topics.iter().map(|topic| {
            (
                topic.name.as_ref().map(|name| name.to_string()),
                topic.topic_id,
            )
        }));
        let image = context.broker.metadata.image();
        let mut responses = Vec::with_capacity(targets.len());
        for (name, topic_id) in targets {
            let resolved = name
                .clone()
                .or_else(|| image.topic_by_id(&topic_id).map(|topic| topic.name.clone()));
            let result = DeletableTopicResult::default()
                .with_name(name.clone().map(|name| TopicName(text(name))))
                .with_topic_id(topic_id);
            let Some(resolved) = resolved else {
                responses.push(result.with_error_code(ResponseError::UnknownTopicId.code()));
                continue;
            };
            if !context.broker.config.delete_topic_enable {
                responses.push(
                    result
                        .with_error_code(ResponseError::TopicDeletionDisabled.code())
                        .with_error_message(Some(text("delete.topic.enable is false"))),
                );
                continue;
            }
            responses.push(
                match context.broker.metadata.delete_topic(&resolved).await {
                    Ok(topic) => result
                        .with_name(Some(TopicName(text(resolved))))
                        .with_topic_id(topic.topic_id),
                    Err(error) => result
                        .with_error_code(metadata_error_code(&error).code())
                        .with_error_message(Some(text(error.to_string()))),
                },
            );
        }
        context.broker.logs_caught_up().await;
        DeleteTopicsResponse::default().with_responses(responses)
    })
}

pub fn create_partitions(context: Context, request: CreatePartitionsRequest) -> Reply {
    context.respond_later(|context| async move {
        let mut results = Vec::with_capacity(request.topics.len());
        for topic in &request.topics {
            let result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
            if topic.assignments.is_some() {
                results.push(
                    result
                        .with_error_code(ResponseError::InvalidReplicaAssignment.code())
                        .with_error_message(Some(text(
                            "explicit assignments for new partitions are not supported yet",
                        ))),
                );
                continue;
            }
            let created = context
                .broker
                .metadata
                .create_partitions(&topic.name, topic.count, request.validate_only)
                .await;
            results.push(match created {
                Ok(()) => result,
                Err(error) => result
                    .with_error_code(metadata_error_code(&error).code())
                    .with_error_message(Some(text(error.to_string()))),
            });
        }
        if !request.validate_only {
            context.broker.logs_caught_up().await;
        }
        CreatePartitionsResponse::default().with_results(results)
    })
}
