//! Partition changes and elections: ISR changes asked by leaders, leaderships moved off a fenced
//! broker, preferred and unclean elections.

use uuid::Uuid;

use super::reassignment::complete_reassignment;

use crate::command::{CommandOutcome, Election};
use crate::image::{MetadataImage, PartitionImage, TopicImage};
use crate::record::MetadataRecord;
use crate::MetadataError;

/// Partition changes for fencing `broker_id`: it leaves every ISR it is in, unless it is the
/// last member (so that it can lead again when it returns, having everything committed), and
/// each partition it led gets its first live in-sync replica as leader, or none.
pub(super) fn move_leadership_away(image: &MetadataImage, broker_id: i32) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics.values() {
        for partition in &topic.partitions {
            let in_isr = partition.isr.contains(&broker_id);
            if partition.leader != broker_id && !in_isr {
                continue;
            }
            let remaining: Vec<i32> = partition
                .isr
                .iter()
                .copied()
                .filter(|replica| *replica != broker_id)
                .collect();
            let isr = if remaining.is_empty() {
                partition.isr.clone()
            } else {
                remaining
            };
            let mut isr = isr;
            let (leader, leader_epoch) = if partition.leader == broker_id {
                let live = |replica: &i32| *replica != broker_id && image.is_live(*replica);
                let next = match isr.iter().copied().find(live) {
                    Some(next) => next,
                    // No live in-sync replica: a topic that allows it takes any live replica,
                    // losing what only the in-sync ones had (unclean.leader.election.enable).
                    None => match partition.replicas.iter().copied().find(live) {
                        Some(unclean) if unclean_election_enabled(topic) => {
                            tracing::warn!(topic = %topic.name, partition = partition.partition, leader = unclean, "unclean leader election");
                            isr = vec![unclean];
                            unclean
                        }
                        _ => -1,
                    },
                };
                (next, partition.leader_epoch + 1)
            } else {
                (partition.leader, partition.leader_epoch)
            };
            records.push(partition_change(
                topic,
                partition,
                isr,
                leader,
                leader_epoch,
            ));
        }
    }
    records
}

/// Whether a topic allows a replica outside the ISR to lead (`unclean.leader.election.enable`,
/// set on the topic; the default is false).
pub(super) fn unclean_election_enabled(topic: &TopicImage) -> bool {
    topic
        .configs
        .get("unclean.leader.election.enable")
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("true"))
}

/// A leader's ISR change: only from the current leader at its current epoch, to replicas of
/// the partition, keeping the leader, and adding only live brokers.
pub(super) fn decide_alter_partition(
    image: &MetadataImage,
    topic_id: Uuid,
    index: i32,
    (leader, leader_epoch): (i32, i32),
    isr: &[i32],
) -> Result<Vec<MetadataRecord>, MetadataError> {
    let topic = image
        .topic_by_id(&topic_id)
        .ok_or_else(|| MetadataError::UnknownTopic(topic_id.to_string()))?;
    let partition = usize::try_from(index)
        .ok()
        .and_then(|index| topic.partitions.get(index))
        .ok_or_else(|| MetadataError::UnknownTopic(format!("{}-{index}", topic.name)))?;
    if partition.leader != leader || partition.leader_epoch != leader_epoch {
        return Err(MetadataError::StaleLeadership(format!(
            "{}-{index} is led by {} at epoch {}, not {leader} at {leader_epoch}",
            topic.name, partition.leader, partition.leader_epoch
        )));
    }
    let acceptable = isr.contains(&leader)
        && isr
            .iter()
            .all(|replica| partition.replicas.contains(replica))
        && isr
            .iter()
            .all(|replica| partition.isr.contains(replica) || image.is_live(*replica));
    if !acceptable {
        return Err(MetadataError::StaleLeadership(format!(
            "ISR {isr:?} is not acceptable for {}-{index} with replicas {:?}",
            topic.name, partition.replicas
        )));
    }
    if isr == partition.isr.as_slice() {
        return Ok(Vec::new());
    }
    let mut records = vec![partition_change(
        topic,
        partition,
        isr.to_vec(),
        leader,
        leader_epoch,
    )];
    records.extend(complete_reassignment(
        &image.apply(&records),
        topic_id,
        index,
    ));
    Ok(records)
}

/// The partition's leader and epoch once its replicas are `replicas`: the current leader if it is
/// one of them, else the first live member of `isr` (none: -1) at the next epoch.
pub(super) fn leader_among(
    image: &MetadataImage,
    partition: &PartitionImage,
    replicas: &[i32],
    isr: &[i32],
) -> (i32, i32) {
    if replicas.contains(&partition.leader) {
        return (partition.leader, partition.leader_epoch);
    }
    let next = isr
        .iter()
        .copied()
        .find(|replica| image.is_live(*replica))
        .unwrap_or(-1);
    (next, partition.leader_epoch + 1)
}

/// Topic `name` and its partition `index`.
pub(super) fn find_partition<'a>(
    image: &'a MetadataImage,
    name: &str,
    index: i32,
) -> Result<(&'a TopicImage, &'a PartitionImage), MetadataError> {
    let topic = image
        .topic(name)
        .ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
    let partition = usize::try_from(index)
        .ok()
        .and_then(|slot| topic.partitions.get(slot))
        .ok_or_else(|| MetadataError::UnknownTopic(format!("{name}-{index}")))?;
    Ok((topic, partition))
}

/// Elections for `wanted` partitions (all when `None`): the preferred replica where it is live,
/// in sync and not already leading; unclean, any live replica of a leaderless partition,
/// which then forms the ISR alone (what only it has becomes the partition's history).
pub(super) fn decide_elections(
    image: &MetadataImage,
    unclean: bool,
    wanted: Option<&[(String, i32)]>,
) -> (Vec<MetadataRecord>, CommandOutcome) {
    let targets: Vec<(String, i32)> = match wanted {
        Some(wanted) => wanted.to_vec(),
        None => image
            .topics
            .values()
            .flat_map(|topic| {
                topic
                    .partitions
                    .iter()
                    .map(|partition| (topic.name.clone(), partition.partition))
            })
            .collect(),
    };
    let mut records = Vec::new();
    let mut results = Vec::new();
    for (name, index) in targets {
        let found = image.topic(&name).and_then(|topic| {
            usize::try_from(index)
                .ok()
                .and_then(|slot| topic.partitions.get(slot))
                .map(|partition| (topic, partition))
        });
        let Some((topic, partition)) = found else {
            results.push((name, index, Election::UnknownPartition));
            continue;
        };
        let choice = if unclean {
            if partition.leader >= 0 && image.is_live(partition.leader) {
                Err(Election::NotNeeded)
            } else {
                partition
                    .replicas
                    .iter()
                    .copied()
                    .find(|replica| image.is_live(*replica))
                    .map(|leader| (leader, vec![leader]))
                    .ok_or(Election::NotAvailable)
            }
        } else {
            let preferred = partition.replicas.first().copied().unwrap_or(-1);
            if partition.leader == preferred {
                Err(Election::NotNeeded)
            } else if partition.isr.contains(&preferred) && image.is_live(preferred) {
                Ok((preferred, partition.isr.clone()))
            } else {
                Err(Election::NotAvailable)
            }
        };
        match choice {
            Ok((leader, isr)) => {
                records.push(partition_change(
                    topic,
                    partition,
                    isr,
                    leader,
                    partition.leader_epoch + 1,
                ));
                results.push((name, index, Election::Elected));
            }
            Err(outcome) => results.push((name, index, outcome)),
        }
    }
    (records, CommandOutcome::Elections(results))
}

/// Leaders for the partitions that have none but a live broker in their ISR.
pub(super) fn elect_leaderless(image: &MetadataImage) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics.values() {
        for partition in topic
            .partitions
            .iter()
            .filter(|partition| partition.leader < 0)
        {
            if let Some(leader) = partition
                .isr
                .iter()
                .copied()
                .find(|replica| image.is_live(*replica))
            {
                records.push(partition_change(
                    topic,
                    partition,
                    partition.isr.clone(),
                    leader,
                    partition.leader_epoch + 1,
                ));
            }
        }
    }
    records
}

/// A `Partition` record that keeps the replicas and sets ISR and leadership.
pub(super) fn partition_change(
    topic: &TopicImage,
    partition: &PartitionImage,
    isr: Vec<i32>,
    leader: i32,
    leader_epoch: i32,
) -> MetadataRecord {
    MetadataRecord::Partition {
        topic_id: topic.topic_id,
        partition: partition.partition,
        replicas: partition.replicas.clone(),
        isr,
        leader,
        leader_epoch,
    }
}
