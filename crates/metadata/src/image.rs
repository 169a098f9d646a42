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
#[derive(Debug, Clone, Default)]
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

    fn apply_one(&mut self, record: &MetadataRecord) {
        self.records_applied += 1;
        match record {
            MetadataRecord::Cluster { cluster_id } => self.cluster_id = cluster_id.clone(),
            MetadataRecord::RegisterBroker {
                broker_id,
                host,
                port,
                rack,
            } => {
                let registration = BrokerRegistration {
                    broker_id: *broker_id,
                    host: host.clone(),
                    port: *port,
                    rack: rack.clone(),
                    fenced: false,
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
                    debug_assert!(false, "partition record for unknown topic {topic_id}");
                    return;
                };
                let Some(topic) = self.topics.get_mut(name) else {
                    return;
                };
                let topic = Arc::make_mut(topic);
                let image = PartitionImage {
                    partition: *partition,
                    replicas: replicas.clone(),
                    isr: isr.clone(),
                    leader: *leader,
                    leader_epoch: *leader_epoch,
                };
                let index = *partition as usize;
                if index < topic.partitions.len() {
                    topic.partitions[index] = image;
                } else {
                    debug_assert_eq!(
                        index,
                        topic.partitions.len(),
                        "partitions are added in order"
                    );
                    topic.partitions.push(image);
                }
            }
            MetadataRecord::ProducerIds { next_producer_id } => {
                debug_assert!(
                    *next_producer_id >= self.next_producer_id,
                    "producer ids only grow"
                );
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
