//! The metadata manager: decides what a request changes, writes the records, publishes the image.
//!
//! Every change is validated against the current image, appended durably to the store and only
//! then applied, so the image never shows a change that a restart would lose.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use uuid::Uuid;

use crate::image::{MetadataImage, TopicImage};
use crate::record::{ConfigResource, MetadataRecord};
use crate::store::MetadataStore;
use crate::topic_config::validate_topic_config;
use crate::MetadataError;

/// Longest topic name Kafka accepts.
pub const MAX_TOPIC_NAME_LENGTH: usize = 249;

/// A topic to create, with defaults already resolved by the caller.
#[derive(Debug, Clone, Default)]
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

/// The single writer of the metadata log.
pub struct MetadataManager {
    /// The durable log; the mutex also serialises decisions so each sees the latest image.
    store: Mutex<MetadataStore>,
    /// The current image, swapped whole after each durable append.
    image: RwLock<Arc<MetadataImage>>,
}

impl MetadataManager {
    /// Opens the metadata log in `dir`, replays it, and registers this node at its address.
    pub fn open(
        dir: &Path,
        node_id: i32,
        host: &str,
        port: i32,
    ) -> Result<MetadataManager, MetadataError> {
        let (store, records) = MetadataStore::open(dir)?;
        let image = MetadataImage::default().apply(&records);
        let manager = MetadataManager {
            store: Mutex::new(store),
            image: RwLock::new(Arc::new(image)),
        };
        let mut bootstrap = Vec::new();
        if manager.image().cluster_id.is_empty() {
            bootstrap.push(MetadataRecord::Cluster {
                cluster_id: new_cluster_id(),
            });
        }
        let current = manager.image().brokers.get(&node_id).cloned();
        let registered = current.is_some_and(|broker| broker.host == host && broker.port == port);
        if !registered {
            bootstrap.push(MetadataRecord::RegisterBroker {
                broker_id: node_id,
                host: host.to_string(),
                port,
                rack: None,
            });
        }
        if !bootstrap.is_empty() {
            let mut store = manager.store.lock();
            manager.commit(&mut store, bootstrap)?;
        }
        Ok(manager)
    }

    /// The current image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().clone()
    }

    fn commit(
        &self,
        store: &mut MetadataStore,
        records: Vec<MetadataRecord>,
    ) -> Result<Arc<MetadataImage>, MetadataError> {
        store.append(&records)?;
        let next = Arc::new(self.image().apply(&records));
        *self.image.write() = next.clone();
        Ok(next)
    }

    /// Creates a topic, or only checks that it could be created when `validate_only`.
    pub fn create_topic(
        &self,
        request: &TopicRequest,
        validate_only: bool,
    ) -> Result<Arc<TopicImage>, MetadataError> {
        let mut store = self.store.lock();
        let image = self.image();
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
        let assignments = self.assign_replicas(&image, request)?;
        let topic_id = Uuid::new_v4();
        let mut records = vec![MetadataRecord::Topic {
            name: request.name.clone(),
            topic_id,
        }];
        records.extend(partition_records(topic_id, 0, assignments));
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
        if validate_only {
            let preview = image.apply(&records);
            return Ok(preview
                .topic(&request.name)
                .cloned()
                .expect("topic just applied"));
        }
        let next = self.commit(&mut store, records)?;
        tracing::info!(topic = %request.name, partitions = request.num_partitions, "topic created");
        Ok(next
            .topic(&request.name)
            .cloned()
            .expect("topic just committed"))
    }

    fn assign_replicas(
        &self,
        image: &MetadataImage,
        request: &TopicRequest,
    ) -> Result<Vec<Vec<i32>>, MetadataError> {
        let brokers: Vec<i32> = image.brokers.keys().copied().collect();
        if !request.assignments.is_empty() {
            for replicas in &request.assignments {
                if let Some(unknown) = replicas.iter().find(|broker| !brokers.contains(broker)) {
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
        if request.replication_factor as usize > brokers.len() {
            return Err(MetadataError::InvalidReplicationFactor(format!(
                "replication factor: {} larger than available brokers: {}",
                request.replication_factor,
                brokers.len()
            )));
        }
        let replication = request.replication_factor as usize;
        Ok((0..request.num_partitions as usize)
            .map(|partition| {
                (0..replication)
                    .map(|copy| brokers[(partition + copy) % brokers.len()])
                    .collect()
            })
            .collect())
    }

    /// Reserves `count` producer ids that no earlier reservation handed out, durably.
    pub fn allocate_producer_ids(&self, count: i64) -> Result<std::ops::Range<i64>, MetadataError> {
        let mut store = self.store.lock();
        let start = self.image().next_producer_id;
        self.commit(
            &mut store,
            vec![MetadataRecord::ProducerIds {
                next_producer_id: start + count,
            }],
        )?;
        Ok(start..start + count)
    }

    /// Deletes a topic by name.
    pub fn delete_topic(&self, name: &str) -> Result<Arc<TopicImage>, MetadataError> {
        let mut store = self.store.lock();
        let image = self.image();
        let Some(topic) = image.topic(name).cloned() else {
            return Err(MetadataError::UnknownTopic(name.to_string()));
        };
        self.commit(
            &mut store,
            vec![MetadataRecord::RemoveTopic {
                topic_id: topic.topic_id,
            }],
        )?;
        tracing::info!(topic = %name, "topic deleted");
        Ok(topic)
    }

    /// Grows a topic to `new_total` partitions.
    pub fn create_partitions(
        &self,
        name: &str,
        new_total: i32,
        validate_only: bool,
    ) -> Result<(), MetadataError> {
        let mut store = self.store.lock();
        let image = self.image();
        let Some(topic) = image.topic(name).cloned() else {
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
        let brokers: Vec<i32> = image.brokers.keys().copied().collect();
        let assignments: Vec<Vec<i32>> = (current as usize..new_total as usize)
            .map(|partition| {
                (0..replication)
                    .map(|copy| brokers[(partition + copy) % brokers.len()])
                    .collect()
            })
            .collect();
        if validate_only {
            return Ok(());
        }
        self.commit(
            &mut store,
            partition_records(topic.topic_id, current, assignments).collect(),
        )?;
        tracing::info!(topic = %name, partitions = new_total, "partitions added");
        Ok(())
    }

    /// Changes configuration keys of a topic or broker: `Some` sets, `None` removes.
    ///
    /// With `replace_all` (the legacy AlterConfigs), keys not named are removed.
    pub fn alter_configs(
        &self,
        resource: ConfigResource,
        changes: &[(String, Option<String>)],
        replace_all: bool,
        validate_only: bool,
    ) -> Result<(), MetadataError> {
        let mut store = self.store.lock();
        let image = self.image();
        let current = match &resource {
            ConfigResource::Topic(name) => match image.topic(name) {
                Some(topic) => topic.configs.clone(),
                None => return Err(MetadataError::UnknownTopic(name.clone())),
            },
            ConfigResource::Broker(broker) => image
                .broker_configs
                .get(broker)
                .cloned()
                .unwrap_or_default(),
        };
        if let ConfigResource::Topic(_) = resource {
            for (name, value) in changes {
                match value {
                    Some(value) => validate_topic_config(name, value)?,
                    None => validate_topic_config(
                        name,
                        crate::topic_config::topic_config_def(name).map_or("", |def| def.default),
                    )?,
                }
            }
        } else if let Some((name, _)) = changes.first() {
            return Err(MetadataError::InvalidConfig(format!(
                "broker config '{name}' cannot be changed while the broker runs; set it in the config file"
            )));
        }
        let mut records: Vec<MetadataRecord> = Vec::new();
        if replace_all {
            for name in current
                .keys()
                .filter(|name| !changes.iter().any(|(changed, _)| changed == *name))
            {
                records.push(MetadataRecord::Config {
                    resource: resource.clone(),
                    name: name.clone(),
                    value: None,
                });
            }
        }
        for (name, value) in changes {
            records.push(MetadataRecord::Config {
                resource: resource.clone(),
                name: name.clone(),
                value: value.clone(),
            });
        }
        if validate_only || records.is_empty() {
            return Ok(());
        }
        self.commit(&mut store, records)?;
        tracing::info!(resource = ?resource, changes = changes.len(), "configs altered");
        Ok(())
    }
}

fn partition_records(
    topic_id: Uuid,
    first_partition: i32,
    assignments: Vec<Vec<i32>>,
) -> impl Iterator<Item = MetadataRecord> {
    assignments
        .into_iter()
        .enumerate()
        .map(move |(index, replicas)| MetadataRecord::Partition {
            topic_id,
            partition: first_partition + index as i32,
            leader: replicas[0],
            isr: replicas.clone(),
            replicas,
            leader_epoch: 0,
        })
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

fn collides(existing: &str, new: &str) -> bool {
    existing != new && existing.replace('.', "_") == new.replace('.', "_")
}

fn new_cluster_id() -> String {
    // Kafka's cluster ids are a random UUID in URL-safe base64 without padding.
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = Uuid::new_v4().into_bytes();
    let mut bits: u32 = 0;
    let mut bit_count = 0;
    let mut out = String::new();
    for byte in bytes {
        bits = (bits << 8) | byte as u32;
        bit_count += 8;
        while bit_count >= 6 {
            bit_count -= 6;
            out.push(ALPHABET[((bits >> bit_count) & 63) as usize] as char);
        }
    }
    if bit_count > 0 {
        out.push(ALPHABET[((bits << (6 - bit_count)) & 63) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path) -> MetadataManager {
        MetadataManager::open(dir, 1, "127.0.0.1", 9092).unwrap()
    }

    fn request(name: &str, partitions: i32) -> TopicRequest {
        TopicRequest {
            name: name.into(),
            num_partitions: partitions,
            replication_factor: 1,
            ..Default::default()
        }
    }

    #[test]
    fn topics_and_configs_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let cluster_id = {
            let manager = open(dir.path());
            manager.create_topic(&request("orders", 3), false).unwrap();
            manager
                .alter_configs(
                    ConfigResource::Topic("orders".into()),
                    &[("retention.ms".into(), Some("1000".into()))],
                    false,
                    false,
                )
                .unwrap();
            manager.create_partitions("orders", 5, false).unwrap();
            manager.image().cluster_id.clone()
        };
        let manager = open(dir.path());
        let image = manager.image();
        assert_eq!(image.cluster_id, cluster_id);
        assert_eq!(cluster_id.len(), 22);
        let topic = image.topic("orders").unwrap();
        assert_eq!(topic.partitions.len(), 5);
        assert_eq!(
            topic.configs.get("retention.ms").map(String::as_str),
            Some("1000")
        );
        assert_eq!(image.brokers.len(), 1);
    }

    #[test]
    fn invalid_requests_are_refused_and_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let manager = open(dir.path());
        assert!(matches!(
            manager.create_topic(&request("bad name", 1), false),
            Err(MetadataError::InvalidTopicName(_))
        ));
        assert!(matches!(
            manager.create_topic(&request("ok", 0), false),
            Err(MetadataError::InvalidPartitions(_))
        ));
        let mut too_many_copies = request("ok", 1);
        too_many_copies.replication_factor = 3;
        assert!(matches!(
            manager.create_topic(&too_many_copies, false),
            Err(MetadataError::InvalidReplicationFactor(_))
        ));
        let mut bad_config = request("ok", 1);
        bad_config
            .configs
            .insert("retention.ms".into(), "soon".into());
        assert!(matches!(
            manager.create_topic(&bad_config, false),
            Err(MetadataError::InvalidConfig(_))
        ));
        manager.create_topic(&request("a.b", 1), true).unwrap();
        assert!(
            manager.image().topic("a.b").is_none(),
            "validate-only created the topic"
        );
        manager.create_topic(&request("a.b", 1), false).unwrap();
        assert!(manager.create_topic(&request("a_b", 1), false).is_err());
        assert!(matches!(
            manager.create_topic(&request("a.b", 1), false),
            Err(MetadataError::TopicAlreadyExists(_))
        ));
    }

    #[test]
    fn deleted_topics_are_gone_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let manager = open(dir.path());
            manager.create_topic(&request("gone", 1), false).unwrap();
            manager.delete_topic("gone").unwrap();
            assert!(matches!(
                manager.delete_topic("gone"),
                Err(MetadataError::UnknownTopic(_))
            ));
        }
        assert!(open(dir.path()).image().topic("gone").is_none());
    }
}
