//! Partition reassignment (KIP-455): adding the target replicas, completing once they are in
//! sync, cancelling back to the replicas from before.

use uuid::Uuid;

use super::partitions::{find_partition, leader_among, partition_change, unclean_election_enabled};
use crate::image::{MetadataImage, PartitionImage};
use crate::record::MetadataRecord;
use crate::MetadataError;

/// Starts (or replaces, or with the current replicas cancels) a reassignment of a partition's
/// replicas to `target`: the partition is hosted by old and new replicas alike until every
/// target replica is in sync, then the old ones leave (KIP-455's adding and removing
/// replicas).
pub(super) fn decide_reassignment(
    image: &MetadataImage,
    name: &str,
    index: i32,
    target: &[i32],
) -> Result<Vec<MetadataRecord>, MetadataError> {
    let (topic, partition) = find_partition(image, name, index)?;
    let mut unique = target.to_vec();
    unique.sort_unstable();
    unique.dedup();
    if target.is_empty() || unique.len() != target.len() {
        return Err(MetadataError::InvalidReplicaAssignment(format!(
            "replicas {target:?} must name at least one broker, each once"
        )));
    }
    if let Some(unknown) = target
        .iter()
        .find(|broker| !image.brokers.contains_key(broker))
    {
        return Err(MetadataError::InvalidReplicaAssignment(format!(
            "broker {unknown} is not registered"
        )));
    }
    let original = original_replicas(partition);
    let adding: Vec<i32> = target
        .iter()
        .copied()
        .filter(|replica| !original.contains(replica))
        .collect();
    let removing: Vec<i32> = original
        .iter()
        .copied()
        .filter(|replica| !target.contains(replica))
        .collect();
    let mut replicas = target.to_vec();
    replicas.extend(&removing);
    let isr: Vec<i32> = partition
        .isr
        .iter()
        .copied()
        .filter(|replica| replicas.contains(replica))
        .collect();
    // Every in-sync replica leaving (only replicas being added were in sync): as Kafka, only a
    // topic that allows an unclean election may go on, from a live replica.
    let isr = if isr.is_empty() {
        if !unclean_election_enabled(topic) {
            return Err(MetadataError::InvalidReplicaAssignment(format!(
                "moving partition {index} of topic '{name}' to {target:?} leaves no in-sync replica; it would need an unclean leader election"
            )));
        }
        match replicas
            .iter()
            .copied()
            .find(|replica| image.is_live(*replica))
        {
            Some(replica) => vec![replica],
            None => {
                return Err(MetadataError::InvalidReplicaAssignment(format!(
                "moving partition {index} of topic '{name}' to {target:?} leaves no live replica"
            )))
            }
        }
    } else {
        isr
    };
    // A leader that is no replica any more (one being added, when a cancellation or a new
    // target drops it) hands over.
    let (leader, leader_epoch) = leader_among(image, partition, &replicas, &isr);
    let mut hosted = partition.clone();
    hosted.replicas = replicas;
    let mut records = vec![
        partition_change(topic, &hosted, isr, leader, leader_epoch),
        MetadataRecord::Reassignment {
            topic_id: topic.topic_id,
            partition: index,
            adding,
            removing,
        },
    ];
    records.extend(complete_reassignment(
        &image.apply(&records),
        topic.topic_id,
        index,
    ));
    Ok(records)
}

/// Cancels a partition's reassignment in progress (KIP-455): it goes back to the replicas it had
/// before, in the order the reassignment left them (as Kafka does); those being added leave it.
pub(super) fn decide_cancellation(
    image: &MetadataImage,
    name: &str,
    index: i32,
) -> Result<Vec<MetadataRecord>, MetadataError> {
    let (_, partition) = find_partition(image, name, index)?;
    if partition.reassignment_target().is_none() {
        return Err(MetadataError::NoReassignmentInProgress(format!(
            "partition {index} of topic '{name}' has no reassignment in progress"
        )));
    }
    decide_reassignment(image, name, index, &original_replicas(partition))
}

/// A partition's replicas before any reassignment in progress, in their order.
pub(super) fn original_replicas(partition: &PartitionImage) -> Vec<i32> {
    partition
        .replicas
        .iter()
        .copied()
        .filter(|replica| !partition.adding_replicas.contains(replica))
        .collect()
}

/// Ends a partition's reassignment if every target replica is in sync: the replicas become the
/// target, the others leave the ISR, and a leader that is leaving hands over to an in-sync
/// target replica.
pub(super) fn complete_reassignment(
    image: &MetadataImage,
    topic_id: Uuid,
    index: i32,
) -> Vec<MetadataRecord> {
    let Some(topic) = image.topic_by_id(&topic_id) else {
        return Vec::new();
    };
    let Some(partition) = usize::try_from(index)
        .ok()
        .and_then(|slot| topic.partitions.get(slot))
    else {
        return Vec::new();
    };
    let Some(target) = partition.reassignment_target() else {
        return Vec::new();
    };
    if !target.iter().all(|replica| partition.isr.contains(replica)) {
        return Vec::new();
    }
    let isr: Vec<i32> = target.clone();
    let (leader, leader_epoch) = leader_among(image, partition, &target, &isr);
    let mut finished = partition.clone();
    finished.replicas = target.clone();
    vec![
        partition_change(topic, &finished, isr, leader, leader_epoch),
        MetadataRecord::Reassignment {
            topic_id,
            partition: index,
            adding: Vec::new(),
            removing: Vec::new(),
        },
    ]
}
