//! Configuration changes of topics and brokers.

use crate::image::MetadataImage;
use crate::record::{ConfigResource, MetadataRecord};
use crate::topic_config::validate_topic_config;
use crate::MetadataError;

pub(super) fn decide_alter_configs(
    image: &MetadataImage,
    resource: &ConfigResource,
    changes: &[(String, Option<String>)],
    replace_all: bool,
) -> Result<Vec<MetadataRecord>, MetadataError> {
    let current = match resource {
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
    Ok(records)
}
