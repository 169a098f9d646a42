//! Topics and their partitions: creation (names, counts, replica placement), deletion, growth.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::command::CommandOutcome;
use crate::image::{MetadataImage, TopicImage};
use crate::record::{ConfigResource, MetadataRecord};
use crate::topic_config::validate_topic_config;
use crate::MetadataError;

/// The most partitions one request may create, as Kafka's controller limits the records of one
/// operation: beyond it the request is refused before anything is sized by it.
pub const MAX_PARTITIONS_PER_REQUEST: usize = 10_000;

/// Longest topic name Kafka accepts.
pub const MAX_TOPIC_NAME_LENGTH: usize = 249;

/// A topic to create, with defaults already resolved by the caller.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TopicRequest {
    /// The topic's name.
    pub name: String,
    /// Number of partitions.
    pub num_partitions: i32,
    /// Copies of each partition.
    pub replication_factor: i16,
    /// Explicit replica lists by partition, overriding the two counts above when non-empty.
    pub assignments: Vec<Vec<i32>>,
    /// Configuration overrides.
    pub configs: BTreeMap<String, String>,
}

pub(super) fn decide_create_topic(
    image: &MetadataImage,
    request: &TopicRequest,
    validate_only: bool,
) -> Result<(Vec<MetadataRecord>, CommandOutcome), MetadataError> {
    validate_topic_name(&request.name)?;
    if image.topic(&request.name).is_some() {
        return Err(MetadataError::TopicAlreadyExists(request.name.clone()));
    }
    if let Some(existing) = image
        .topics
        .keys()
        .find(|existing| collides(existing, &request.name))
    {
        return Err(MetadataError::InvalidTopicName(format!(
            "topic '{}' collides with existing topic '{existing}': '.' and '_' are interchangeable in metric names",
            request.name
        )));
    }
    for (name, value) in &request.configs {
        validate_topic_config(name, value)?;
    }
    let assignments = assign_replicas(image, request)?;
    let topic_id = Uuid::new_v4();
    let mut records = vec![MetadataRecord::Topic {
        name: request.name.clone(),
        topic_id,
    }];
    records.extend(partition_records(image, topic_id, 0, assignments)?);
    records.extend(
        request
            .configs
            .iter()
            .map(|(name, value)| MetadataRecord::Config {
                resource: ConfigResource::Topic(request.name.clone()),
                name: name.clone(),
                value: Some(value.clone()),
            }),
    );
    let preview = image.apply(&records);
    let topic = preview
        .topic(&request.name)
        .map(|topic| TopicImage::clone(topic))
        .expect("topic just applied");
    let records = if validate_only { Vec::new() } else { records };
    Ok((records, CommandOutcome::Topic(topic)))
}

pub(super) fn assign_replicas(
    image: &MetadataImage,
    request: &TopicRequest,
) -> Result<Vec<Vec<i32>>, MetadataError> {
    let registered: Vec<i32> = image.brokers.keys().copied().collect();
    let wanted = if request.assignments.is_empty() {
        request.num_partitions.max(0) as usize
    } else {
        request.assignments.len()
    };
    check_partition_count(wanted)?;
    if !request.assignments.is_empty() {
        for replicas in &request.assignments {
            if let Some(unknown) = replicas.iter().find(|broker| !registered.contains(broker)) {
                return Err(MetadataError::InvalidReplicationFactor(format!(
                    "replica assignment names broker {unknown}, which is not registered"
                )));
            }
        }
        return Ok(request.assignments.clone());
    }
    if request.num_partitions < 1 {
        return Err(MetadataError::InvalidPartitions(format!(
            "number of partitions must be at least 1, found {}",
            request.num_partitions
        )));
    }
    if request.replication_factor < 1 {
        return Err(MetadataError::InvalidReplicationFactor(format!(
            "replication factor must be at least 1, found {}",
            request.replication_factor
        )));
    }
    // As Kafka's controller, new replicas go only to brokers that are not fenced.
    let brokers = live_brokers(image);
    if request.replication_factor as usize > brokers.len() {
        return Err(MetadataError::InvalidReplicationFactor(format!(
            "replication factor: {} larger than available brokers: {}",
            request.replication_factor,
            brokers.len()
        )));
    }
    Ok(spread_replicas(
        &brokers,
        0..request.num_partitions as usize,
        request.replication_factor as usize,
    ))
}

/// Replica lists for `partitions`: partition p starts at broker p (mod the broker count) and
/// takes the next ones, so leaders and copies spread evenly over the brokers.
pub(super) fn spread_replicas(
    brokers: &[i32],
    partitions: Range<usize>,
    replication: usize,
) -> Vec<Vec<i32>> {
    partitions
        .map(|partition| {
            (0..replication)
                .map(|copy| brokers[(partition + copy) % brokers.len()])
                .collect()
        })
        .collect()
}

/// Refuses a request that would create more than [`MAX_PARTITIONS_PER_REQUEST`] partitions.
pub(super) fn check_partition_count(count: usize) -> Result<(), MetadataError> {
    if count > MAX_PARTITIONS_PER_REQUEST {
        return Err(MetadataError::PolicyViolation(format!(
            "unable to perform excessively large batch operation: {count} partitions, expected at most {MAX_PARTITIONS_PER_REQUEST}"
        )));
    }
    Ok(())
}

pub(super) fn decide_create_partitions(
    image: &MetadataImage,
    name: &str,
    new_total: i32,
    validate_only: bool,
) -> Result<(Vec<MetadataRecord>, CommandOutcome), MetadataError> {
    let Some(topic) = image.topic(name) else {
        return Err(MetadataError::UnknownTopic(name.to_string()));
    };
    let current = topic.partitions.len() as i32;
    if new_total <= current {
        return Err(MetadataError::InvalidPartitions(format!(
            "topic '{name}' has {current} partitions; the new count must be larger, found {new_total}"
        )));
    }
    let replication = topic
        .partitions
        .first()
        .map_or(1, |partition| partition.replicas.len());
    check_partition_count((new_total - current) as usize)?;
    let brokers = live_brokers(image);
    if brokers.is_empty() {
        return Err(MetadataError::InvalidReplicationFactor(
            "no broker is registered to host new partitions".into(),
        ));
    }
    if replication > brokers.len() {
        return Err(MetadataError::InvalidReplicationFactor(format!(
            "replication factor: {replication} larger than available brokers: {}",
            brokers.len()
        )));
    }
    let assignments = spread_replicas(&brokers, current as usize..new_total as usize, replication);
    let records = if validate_only {
        Vec::new()
    } else {
        partition_records(image, topic.topic_id, current, assignments)?
    };
    Ok((records, CommandOutcome::Done))
}

pub(super) fn partition_records(
    image: &MetadataImage,
    topic_id: Uuid,
    first_partition: i32,
    assignments: Vec<Vec<i32>>,
) -> Result<Vec<MetadataRecord>, MetadataError> {
    assignments
        .into_iter()
        .enumerate()
        .map(|(index, replicas)| {
            let partition = first_partition + index as i32;
            // A new partition's ISR is its replicas that are not fenced, and the first of them
            // leads, as in Kafka: an explicit assignment may name a broker that is down.
            let isr: Vec<i32> = replicas
                .iter()
                .copied()
                .filter(|replica| image.is_live(*replica))
                .collect();
            let Some(&leader) = isr.first() else {
                return Err(MetadataError::InvalidReplicationFactor(format!(
                    "every broker assigned to partition {partition} is fenced or shutting down: {replicas:?}"
                )));
            };
            Ok(MetadataRecord::Partition {
                topic_id,
                partition,
                leader,
                isr,
                replicas,
                leader_epoch: 0,
            })
        })
        .collect()
}

/// Brokers that can take new replicas: registered and not fenced.
fn live_brokers(image: &MetadataImage) -> Vec<i32> {
    image
        .brokers
        .values()
        .filter(|broker| !broker.fenced)
        .map(|broker| broker.broker_id)
        .collect()
}

/// Kafka's topic naming rules: 1 to 249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), MetadataError> {
    let invalid = |reason: String| Err(MetadataError::InvalidTopicName(reason));
    if name.is_empty() {
        return invalid("topic name is empty".into());
    }
    if name == "." || name == ".." {
        return invalid(format!("topic name cannot be '{name}'"));
    }
    if name.len() > MAX_TOPIC_NAME_LENGTH {
        return invalid(format!(
            "topic name is {} characters long; the maximum is {MAX_TOPIC_NAME_LENGTH}",
            name.len()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return invalid(format!(
            "topic name '{name}' contains '{bad}'; only ASCII letters, digits, '.', '_' and '-' are allowed"
        ));
    }
    Ok(())
}

pub(super) fn collides(existing: &str, new: &str) -> bool {
    existing != new && existing.replace('.', "_") == new.replace('.', "_")
}

/// A deletion's record, and the topic as it was.
pub(super) fn decide_delete_topic(
    image: &MetadataImage,
    name: &str,
) -> Result<(Vec<MetadataRecord>, CommandOutcome), MetadataError> {
    let topic = image
        .topic(name)
        .ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
    let records = vec![MetadataRecord::RemoveTopic {
        topic_id: topic.topic_id,
    }];
    Ok((records, CommandOutcome::Topic(TopicImage::clone(topic))))
}
