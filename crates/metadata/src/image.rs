//! The metadata image: an immutable view of the cluster, replaced whole on every change.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::record::{ConfigResource, MetadataRecord};

/// A broker as registered in the metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRegistration {
    /// The node id clients see in Metadata responses.
    pub broker_id: i32,
    /// The advertised host.
    pub host: String,
    /// The advertised port.
    pub port: i32,
    /// The rack, for rack-aware clients.
    pub rack: Option<String>,
    /// Whether the active controller fenced it for missing heartbeats.
    pub fenced: bool,
    /// The run of the broker process that registered, if it said.
    pub incarnation: Option<Uuid>,
}

/// One partition's assignment and leadership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionImage {
    /// The partition index.
    pub partition: i32,
    /// The replicas in preference order.
    pub replicas: Vec<i32>,
    /// The in-sync replicas.
    pub isr: Vec<i32>,
    /// The leader's broker id, -1 when none.
    pub leader: i32,
    /// Bumped on every leadership change; fences stale leaders and followers.
    pub leader_epoch: i32,
    /// Replicas joining in an ongoing reassignment.
    #[serde(default)]
    pub adding_replicas: Vec<i32>,
    /// Replicas leaving once the reassignment completes.
    #[serde(default)]
    pub removing_replicas: Vec<i32>,
}

impl PartitionImage {
    /// The replicas a reassignment in progress moves the partition to, if one is.
    pub fn reassignment_target(&self) -> Option<Vec<i32>> {
        if self.adding_replicas.is_empty() && self.removing_replicas.is_empty() {
            return None;
        }
        Some(
            self.replicas
                .iter()
                .copied()
                .filter(|replica| !self.removing_replicas.contains(replica))
                .collect(),
        )
    }
}

/// A topic with its partitions and configuration overrides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    /// The topic's name.
    pub name: String,
    /// The topic's id, which outlives a delete-and-recreate of the same name.
    pub topic_id: Uuid,
    /// Partitions by index; index i holds partition i.
    pub partitions: Vec<PartitionImage>,
    /// Configuration overrides set on the topic (not the defaults).
    pub configs: BTreeMap<String, String>,
}

/// The whole cluster's metadata at one point of the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataImage {
    /// The cluster id reported to clients.
    pub cluster_id: String,
    /// Number of records applied; identifies this image.
    pub records_applied: u64,
    /// Registered brokers by id.
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    /// Topics by name.
    pub topics: BTreeMap<String, Arc<TopicImage>>,
    /// Topic names by id, for requests that address topics by id.
    pub topic_names_by_id: HashMap<Uuid, String>,
    /// The first producer id not yet reserved by any broker.
    pub next_producer_id: i64,
    /// Dynamic broker configuration by broker id ("" for the cluster default).
    pub broker_configs: BTreeMap<String, BTreeMap<String, String>>,
}

impl MetadataImage {
    /// Whether a broker is registered and not fenced.
    pub fn is_live(&self, broker_id: i32) -> bool {
        self.brokers
            .get(&broker_id)
            .is_some_and(|broker| !broker.fenced)
    }

    /// A topic by name.
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.topics.get(name)
    }

    /// A topic by id.
    pub fn topic_by_id(&self, topic_id: &Uuid) -> Option<&Arc<TopicImage>> {
        self.topic_names_by_id
            .get(topic_id)
            .and_then(|name| self.topics.get(name))
    }

    /// Applies records in order, returning the image they lead to.
    pub fn apply(&self, records: &[MetadataRecord]) -> MetadataImage {
        let mut next = self.clone();
        for record in records {
            next.apply_one(record);
        }
        next
    }

    /// Records that rebuild this image when applied to an empty one, for snapshots.
    ///
    /// `records_applied` is not carried: it counts the log, not the state, so whoever restores a
    /// snapshot sets it from the snapshot itself.
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let mut records = Vec::new();
        if !self.cluster_id.is_empty() {
            records.push(MetadataRecord::Cluster {
                cluster_id: self.cluster_id.clone(),
            });
        }
        records.extend(
            self.brokers
                .values()
                .map(|broker| MetadataRecord::RegisterBroker {
                    broker_id: broker.broker_id,
                    host: broker.host.clone(),
                    port: broker.port,
                    rack: broker.rack.clone(),
                    incarnation: broker.incarnation,
                }),
        );
        records.extend(
            self.brokers
                .values()
                .filter(|broker| broker.fenced)
                .map(|broker| MetadataRecord::FenceBroker {
                    broker_id: broker.broker_id,
                }),
        );
        records.push(MetadataRecord::ProducerIds {
            next_producer_id: self.next_producer_id,
        });
        for topic in self.topics.values() {
            push_topic_records(topic, &mut records);
        }
        for (broker, configs) in &self.broker_configs {
            push_broker_config_records(broker, configs, &mut records);
        }
        records
    }

    fn apply_one(&mut self, record: &MetadataRecord) {
        self.records_applied += 1;
        match record {
            MetadataRecord::Cluster { cluster_id } => self.cluster_id = cluster_id.clone(),
            MetadataRecord::RegisterBroker {
                broker_id,
                host,
                port,
                rack,
                incarnation,
            } => {
                let registration = BrokerRegistration {
                    broker_id: *broker_id,
                    host: host.clone(),
                    port: *port,
                    rack: rack.clone(),
                    fenced: false,
                    incarnation: *incarnation,
                };
                self.brokers.insert(*broker_id, registration);
            }
            MetadataRecord::FenceBroker { broker_id } => {
                if let Some(broker) = self.brokers.get_mut(broker_id) {
                    broker.fenced = true;
                }
            }
            MetadataRecord::UnfenceBroker { broker_id } => {
                if let Some(broker) = self.brokers.get_mut(broker_id) {
                    broker.fenced = false;
                }
            }
            MetadataRecord::Topic { name, topic_id } => {
                let topic = TopicImage {
                    name: name.clone(),
                    topic_id: *topic_id,
                    partitions: Vec::new(),
                    configs: BTreeMap::new(),
                };
                self.topic_names_by_id.insert(*topic_id, name.clone());
                self.topics.insert(name.clone(), Arc::new(topic));
            }
            MetadataRecord::Partition {
                topic_id,
                partition,
                replicas,
                isr,
                leader,
                leader_epoch,
            } => {
                let Some(name) = self.topic_names_by_id.get(topic_id) else {
                    // Records come from disk and from the quorum: not trusted to be in order.
                    tracing::warn!(%topic_id, partition, "partition record for an unknown topic skipped");
                    return;
                };
                let Some(topic) = self.topics.get_mut(name) else {
                    return;
                };
                // Records come from the log on disk and from the quorum: a partition that does
                // not fit the topic is skipped, not trusted.
                let Ok(index) = usize::try_from(*partition) else {
                    tracing::warn!(%topic_id, partition, "partition record with a negative index skipped");
                    return;
                };
                if index > topic.partitions.len() {
                    tracing::warn!(%topic_id, partition, "partition record out of order skipped");
                    return;
                }
                let topic = Arc::make_mut(topic);
                // A reassignment in progress outlives the leadership changes it goes through.
                let (adding_replicas, removing_replicas) = topic
                    .partitions
                    .get(index)
                    .map(|current| {
                        (
                            current.adding_replicas.clone(),
                            current.removing_replicas.clone(),
                        )
                    })
                    .unwrap_or_default();
                let image = PartitionImage {
                    partition: *partition,
                    replicas: replicas.clone(),
                    isr: isr.clone(),
                    leader: *leader,
                    leader_epoch: *leader_epoch,
                    adding_replicas,
                    removing_replicas,
                };
                if index < topic.partitions.len() {
                    topic.partitions[index] = image;
                } else {
                    topic.partitions.push(image);
                }
            }
            MetadataRecord::Reassignment {
                topic_id,
                partition,
                adding,
                removing,
            } => {
                let Some(name) = self.topic_names_by_id.get(topic_id) else {
                    return;
                };
                let Some(topic) = self.topics.get_mut(name) else {
                    return;
                };
                if let Some(current) = Arc::make_mut(topic).partitions.get_mut(*partition as usize)
                {
                    current.adding_replicas = adding.clone();
                    current.removing_replicas = removing.clone();
                }
            }
            MetadataRecord::ProducerIds { next_producer_id } => {
                // Producer ids only grow: a record that would hand out used ids again is
                // ignored, whatever the log says.
                if *next_producer_id < self.next_producer_id {
                    tracing::warn!(
                        next_producer_id,
                        current = self.next_producer_id,
                        "producer id record going backwards ignored"
                    );
                    return;
                }
                self.next_producer_id = *next_producer_id;
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                if let Some(name) = self.topic_names_by_id.remove(topic_id) {
                    self.topics.remove(&name);
                }
            }
            MetadataRecord::Config {
                resource,
                name,
                value,
            } => {
                let configs = match resource {
                    ConfigResource::Topic(topic_name) => match self.topics.get_mut(topic_name) {
                        Some(topic) => &mut Arc::make_mut(topic).configs,
                        None => return,
                    },
                    ConfigResource::Broker(broker) => {
                        self.broker_configs.entry(broker.clone()).or_default()
                    }
                };
                match value {
                    Some(value) => configs.insert(name.clone(), value.clone()),
                    None => configs.remove(name),
                };
            }
        }
    }
}

/// Appends the records that recreate one topic: the topic, its partitions in order, its configs.
fn push_topic_records(topic: &TopicImage, records: &mut Vec<MetadataRecord>) {
    records.push(MetadataRecord::Topic {
        name: topic.name.clone(),
        topic_id: topic.topic_id,
    });
    records.extend(
        topic
            .partitions
            .iter()
            .map(|partition| MetadataRecord::Partition {
                topic_id: topic.topic_id,
                partition: partition.partition,
                replicas: partition.replicas.clone(),
                isr: partition.isr.clone(),
                leader: partition.leader,
                leader_epoch: partition.leader_epoch,
            }),
    );
    records.extend(
        topic
            .partitions
            .iter()
            .filter(|partition| partition.reassignment_target().is_some())
            .map(|partition| MetadataRecord::Reassignment {
                topic_id: topic.topic_id,
                partition: partition.partition,
                adding: partition.adding_replicas.clone(),
                removing: partition.removing_replicas.clone(),
            }),
    );
    records.extend(
        topic
            .configs
            .iter()
            .map(|(name, value)| MetadataRecord::Config {
                resource: ConfigResource::Topic(topic.name.clone()),
                name: name.clone(),
                value: Some(value.clone()),
            }),
    );
}

/// Appends the records that recreate one broker's dynamic configuration.
fn push_broker_config_records(
    broker: &str,
    configs: &BTreeMap<String, String>,
    records: &mut Vec<MetadataRecord>,
) {
    let resource = ConfigResource::Broker(broker.to_string());
    if configs.is_empty() {
        // Removing a key leaves an empty map behind; removing an absent key recreates it, so
        // the rebuilt image is identical rather than merely equivalent.
        records.push(MetadataRecord::Config {
            resource,
            name: String::new(),
            value: None,
        });
        return;
    }
    records.extend(configs.iter().map(|(name, value)| MetadataRecord::Config {
        resource: resource.clone(),
        name: name.clone(),
        value: Some(value.clone()),
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(broker_id: i32) -> MetadataRecord {
        MetadataRecord::RegisterBroker {
            broker_id,
            host: format!("host-{broker_id}"),
            port: 9092,
            rack: (broker_id == 2).then(|| "rack-b".to_string()),
            incarnation: None,
        }
    }

    fn partition(topic_id: Uuid, partition: i32, leader: i32) -> MetadataRecord {
        MetadataRecord::Partition {
            topic_id,
            partition,
            replicas: vec![1, 2],
            isr: vec![1, 2],
            leader,
            leader_epoch: partition,
        }
    }

    fn config(resource: ConfigResource, name: &str, value: Option<&str>) -> MetadataRecord {
        MetadataRecord::Config {
            resource,
            name: name.to_string(),
            value: value.map(str::to_string),
        }
    }

    #[test]
    fn applying_to_records_reproduces_the_image() {
        let kept = Uuid::new_v4();
        let removed = Uuid::new_v4();
        let history = vec![
            MetadataRecord::Cluster {
                cluster_id: "cluster-a".into(),
            },
            broker(1),
            broker(2),
            MetadataRecord::FenceBroker { broker_id: 2 },
            MetadataRecord::Topic {
                name: "kept".into(),
                topic_id: kept,
            },
            partition(kept, 0, 1),
            partition(kept, 1, 2),
            partition(kept, 0, 2),
            MetadataRecord::Reassignment {
                topic_id: kept,
                partition: 1,
                adding: vec![3],
                removing: vec![1],
            },
            MetadataRecord::Topic {
                name: "removed".into(),
                topic_id: removed,
            },
            partition(removed, 0, 1),
            config(
                ConfigResource::Topic("kept".into()),
                "retention.ms",
                Some("1000"),
            ),
            config(
                ConfigResource::Topic("kept".into()),
                "segment.bytes",
                Some("2048"),
            ),
            config(ConfigResource::Topic("kept".into()), "segment.bytes", None),
            MetadataRecord::RemoveTopic { topic_id: removed },
            MetadataRecord::ProducerIds {
                next_producer_id: 2000,
            },
            config(
                ConfigResource::Broker(String::new()),
                "log.retention.ms",
                Some("5"),
            ),
            config(ConfigResource::Broker("1".into()), "x", Some("1")),
            config(ConfigResource::Broker("1".into()), "x", None),
        ];
        let image = MetadataImage::default().apply(&history);

        let mut rebuilt = MetadataImage::default().apply(&image.to_records());
        rebuilt.records_applied = image.records_applied;

        assert_eq!(rebuilt, image);
        assert_eq!(rebuilt.topic("kept").unwrap().partitions[0].leader, 2);
        assert!(rebuilt.topic("removed").is_none());
        assert!(rebuilt.broker_configs["1"].is_empty());
    }

    #[test]
    fn an_empty_image_has_no_topics_or_brokers_in_its_records() {
        let records = MetadataImage::default().to_records();
        let rebuilt = MetadataImage::default().apply(&records);
        assert_eq!(rebuilt.topics.len(), 0);
        assert_eq!(rebuilt.brokers.len(), 0);
        assert_eq!(rebuilt.cluster_id, "");
    }

    /// Found by the metadata_records fuzz target: records from disk or the quorum that do not
    /// fit the image (a partition of an unknown topic, at a negative or far index, producer ids
    /// going backwards) are skipped, not trusted and not a panic.
    #[test]
    fn records_that_do_not_fit_the_image_are_skipped() {
        let topic_id = Uuid::new_v4();
        let image = MetadataImage::default().apply(&[
            partition(Uuid::new_v4(), 0, 1),
            MetadataRecord::Topic {
                name: "t".into(),
                topic_id,
            },
            partition(topic_id, -1, 1),
            partition(topic_id, 5, 1),
            partition(topic_id, 0, 1),
            MetadataRecord::ProducerIds {
                next_producer_id: 2000,
            },
            MetadataRecord::ProducerIds {
                next_producer_id: 1000,
            },
        ]);
        assert_eq!(image.topic("t").unwrap().partitions.len(), 1);
        assert_eq!(image.next_producer_id, 2000);
    }
}
