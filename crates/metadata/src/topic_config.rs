//! Topic configuration keys: Kafka's names, defaults, broker-level synonyms and validation.
//!
//! Each key is one entry of [`TOPIC_CONFIGS`]; validation, the broker's reading of its
//! broker-level default, DescribeConfigs and `config/cauce.toml` are all derived from it.

use std::collections::BTreeMap;

use crate::MetadataError;

/// The type of a configuration value, as DescribeConfigs v3+ reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigKind {
    /// `true` or `false`.
    Boolean,
    /// Free text, possibly restricted by `choices`.
    String,
    /// A 32-bit integer.
    Int,
    /// A 64-bit integer.
    Long,
    /// A floating-point number.
    Double,
    /// A comma-separated list, possibly restricted by `choices`.
    List,
}

impl ConfigKind {
    /// The code DescribeConfigs uses for this type.
    pub fn describe_configs_code(self) -> i8 {
        match self {
            ConfigKind::Boolean => 1,
            ConfigKind::String => 2,
            ConfigKind::Int => 3,
            ConfigKind::Long => 5,
            ConfigKind::Double => 6,
            ConfigKind::List => 7,
        }
    }
}

/// One topic configuration key.
#[derive(Debug, Clone, Copy)]
pub struct TopicConfigDef {
    /// The topic-level name, as in Kafka.
    pub name: &'static str,
    /// The broker-level key whose value is this key's default.
    pub broker_synonym: &'static str,
    /// The value type.
    pub kind: ConfigKind,
    /// Kafka's default.
    pub default: &'static str,
    /// Smallest accepted number, for numeric kinds.
    pub min: Option<f64>,
    /// Largest accepted number, for numeric kinds.
    pub max: Option<f64>,
    /// Accepted values, for string and list kinds; empty means any.
    pub choices: &'static [&'static str],
    /// The key's one documentation: DescribeConfigs' documentation field, and the comment
    /// above its broker-level default in `config/cauce.toml`.
    pub doc: &'static str,
}

const LONG_MAX: &str = "9223372036854775807";

const fn def(
    name: &'static str,
    broker_synonym: &'static str,
    kind: ConfigKind,
    default: &'static str,
    min: Option<f64>,
    doc: &'static str,
) -> TopicConfigDef {
    TopicConfigDef {
        name,
        broker_synonym,
        kind,
        default,
        min,
        max: None,
        choices: &[],
        doc,
    }
}

/// Every topic configuration key the broker knows.
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    TopicConfigDef {
        choices: &["delete", "compact"],
        ..def(
            "cleanup.policy",
            "log.cleanup.policy",
            ConfigKind::List,
            "delete",
            None,
            "delete, compact, or compact,delete.",
        )
    },
    TopicConfigDef {
        choices: &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"],
        ..def(
            "compression.type",
            "compression.type",
            ConfigKind::String,
            "producer",
            None,
            "Codec of stored batches; batches are stored as the producer compressed them.",
        )
    },
    def(
        "delete.retention.ms",
        "log.cleaner.delete.retention.ms",
        ConfigKind::Long,
        "86400000",
        Some(0.0),
        "How long tombstones stay on compacted topics.",
    ),
    def(
        "file.delete.delay.ms",
        "log.segment.delete.delay.ms",
        ConfigKind::Long,
        "60000",
        Some(0.0),
        "Delay before a deleted segment's file is removed.",
    ),
    def(
        "flush.messages",
        "log.flush.interval.messages",
        ConfigKind::Long,
        LONG_MAX,
        Some(1.0),
        "fsync after this many messages; the default leaves flushing to the OS (acknowledged writes still survive a crash of the broker process, as in Kafka).",
    ),
    def(
        "flush.ms",
        "log.flush.interval.ms",
        ConfigKind::Long,
        LONG_MAX,
        Some(0.0),
        "fsync when the oldest unflushed message is this old.",
    ),
    def(
        "index.interval.bytes",
        "log.index.interval.bytes",
        ConfigKind::Int,
        "4096",
        Some(0.0),
        "Bytes of log between two offset index entries.",
    ),
    def(
        "max.compaction.lag.ms",
        "log.cleaner.max.compaction.lag.ms",
        ConfigKind::Long,
        LONG_MAX,
        Some(1.0),
        "Longest time a record stays uncompacted.",
    ),
    def(
        "max.message.bytes",
        "message.max.bytes",
        ConfigKind::Int,
        "1048588",
        Some(0.0),
        "Largest record batch accepted.",
    ),
    def(
        "message.timestamp.after.max.ms",
        "log.message.timestamp.after.max.ms",
        ConfigKind::Long,
        "3600000",
        Some(0.0),
        "How far in the future a CreateTime timestamp may be.",
    ),
    def(
        "message.timestamp.before.max.ms",
        "log.message.timestamp.before.max.ms",
        ConfigKind::Long,
        LONG_MAX,
        Some(0.0),
        "How far in the past a CreateTime timestamp may be.",
    ),
    TopicConfigDef {
        choices: &["CreateTime", "LogAppendTime"],
        ..def(
            "message.timestamp.type",
            "log.message.timestamp.type",
            ConfigKind::String,
            "CreateTime",
            None,
            "CreateTime keeps the producer's timestamp, LogAppendTime sets the broker's.",
        )
    },
    TopicConfigDef {
        max: Some(1.0),
        ..def(
            "min.cleanable.dirty.ratio",
            "log.cleaner.min.cleanable.ratio",
            ConfigKind::Double,
            "0.5",
            Some(0.0),
            "Dirty share of a log that triggers compaction.",
        )
    },
    def(
        "min.compaction.lag.ms",
        "log.cleaner.min.compaction.lag.ms",
        ConfigKind::Long,
        "0",
        Some(0.0),
        "Shortest time a record stays uncompacted.",
    ),
    def(
        "min.insync.replicas",
        "min.insync.replicas",
        ConfigKind::Int,
        "1",
        Some(1.0),
        "Replicas that must have a write for acks=all.",
    ),
    def(
        "preallocate",
        "log.preallocate",
        ConfigKind::Boolean,
        "false",
        None,
        "Preallocate segment files.",
    ),
    def(
        "retention.bytes",
        "log.retention.bytes",
        ConfigKind::Long,
        "-1",
        Some(-1.0),
        "Largest size of a partition before its oldest segments go; -1 for no limit.",
    ),
    def(
        "retention.ms",
        "log.retention.ms",
        ConfigKind::Long,
        "604800000",
        Some(-1.0),
        "How long records are kept; -1 keeps them forever.",
    ),
    def(
        "segment.bytes",
        "log.segment.bytes",
        ConfigKind::Int,
        "1073741824",
        Some(14.0),
        "Size at which a segment file is rolled.",
    ),
    def(
        "segment.index.bytes",
        "log.index.size.max.bytes",
        ConfigKind::Int,
        "10485760",
        Some(4.0),
        "Largest offset index of a segment; a full index rolls the segment.",
    ),
    def(
        "segment.jitter.ms",
        "log.roll.jitter.ms",
        ConfigKind::Long,
        "0",
        Some(0.0),
        "Random jitter subtracted from segment.ms.",
    ),
    def(
        "segment.ms",
        "log.roll.ms",
        ConfigKind::Long,
        "604800000",
        Some(1.0),
        "Age at which a segment is rolled.",
    ),
    def(
        "unclean.leader.election.enable",
        "unclean.leader.election.enable",
        ConfigKind::Boolean,
        "false",
        None,
        "Allow an out-of-sync replica to become leader.",
    ),
];

/// A topic key's definition.
pub fn topic_config_def(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|def| def.name == name)
}

/// Checks one key and value; the message says what was expected and what was found.
pub fn validate_topic_config(name: &str, value: &str) -> Result<(), MetadataError> {
    let Some(def) = topic_config_def(name) else {
        return Err(MetadataError::InvalidConfig(format!(
            "unknown topic config '{name}'"
        )));
    };
    validate_value(def, value)
}

/// Checks a value against a key's definition.
pub fn validate_value(def: &TopicConfigDef, value: &str) -> Result<(), MetadataError> {
    let invalid = |expected: String| {
        Err(MetadataError::InvalidConfig(format!(
            "invalid value '{value}' for config '{}': expected {expected}",
            def.name
        )))
    };
    match def.kind {
        ConfigKind::Boolean => {
            if value != "true" && value != "false" {
                return invalid("true or false".into());
            }
        }
        ConfigKind::Int | ConfigKind::Long | ConfigKind::Double => {
            let parsed = match def.kind {
                ConfigKind::Int => value.trim().parse::<i32>().map(f64::from).ok(),
                ConfigKind::Long => value.trim().parse::<i64>().map(|number| number as f64).ok(),
                _ => value
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|number| number.is_finite()),
            };
            let Some(number) = parsed else {
                let kind = match def.kind {
                    ConfigKind::Int => "a 32-bit integer",
                    ConfigKind::Long => "a 64-bit integer",
                    _ => "a number",
                };
                return invalid(kind.into());
            };
            if let Some(min) = def.min.filter(|min| number < *min) {
                return invalid(format!("a value of at least {min}"));
            }
            if let Some(max) = def.max.filter(|max| number > *max) {
                return invalid(format!("a value of at most {max}"));
            }
        }
        ConfigKind::String => {
            if !def.choices.is_empty() && !def.choices.contains(&value) {
                return invalid(format!("one of {}", def.choices.join(", ")));
            }
        }
        ConfigKind::List => {
            let items: Vec<&str> = value.split(',').map(str::trim).collect();
            if !def.choices.is_empty() && items.iter().any(|item| !def.choices.contains(item)) {
                return invalid(format!("a list of {}", def.choices.join(", ")));
            }
        }
    }
    Ok(())
}

/// Where an effective topic config value came from, as DescribeConfigs reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic.
    Topic,
    /// Set in the broker's configuration file.
    StaticBroker,
    /// Kafka's default.
    Default,
}

impl ConfigSource {
    /// The code DescribeConfigs v1+ uses.
    pub fn describe_configs_code(self) -> i8 {
        match self {
            ConfigSource::Topic => 1,
            ConfigSource::StaticBroker => 4,
            ConfigSource::Default => 5,
        }
    }
}

/// The effective value of every topic key, with its source.
///
/// `broker_values` holds broker-level keys (`log.retention.ms`, ...) from the config file.
pub fn effective_topic_configs(
    overrides: &BTreeMap<String, String>,
    broker_values: &BTreeMap<String, String>,
) -> Vec<(&'static TopicConfigDef, String, ConfigSource)> {
    TOPIC_CONFIGS
        .iter()
        .map(|def| {
            if let Some(value) = overrides.get(def.name) {
                (def, value.clone(), ConfigSource::Topic)
            } else if let Some(value) = broker_values.get(def.broker_synonym) {
                (def, value.clone(), ConfigSource::StaticBroker)
            } else {
                (def, def.default.to_string(), ConfigSource::Default)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_outside_the_range_are_refused_with_a_message() {
        let error = validate_topic_config("retention.ms", "-2")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("retention.ms") && error.contains("at least -1"),
            "{error}"
        );
        assert!(validate_topic_config("retention.ms", "-1").is_ok());
        assert!(validate_topic_config("segment.bytes", "abc").is_err());
        assert!(validate_topic_config("segment.bytes", "99999999999").is_err());
        assert!(validate_topic_config("cleanup.policy", "compact,delete").is_ok());
        assert!(validate_topic_config("cleanup.policy", "shred").is_err());
        assert!(validate_topic_config("message.timestamp.type", "LogAppendTime").is_ok());
        assert!(validate_topic_config("min.cleanable.dirty.ratio", "1.5").is_err());
        assert!(validate_topic_config("no.such.key", "1").is_err());
    }

    #[test]
    fn defaults_are_valid() {
        for def in TOPIC_CONFIGS {
            validate_value(def, def.default).unwrap();
        }
    }

    #[test]
    fn overrides_beat_broker_values_beat_defaults() {
        let overrides = BTreeMap::from([("retention.ms".to_string(), "1".to_string())]);
        let broker = BTreeMap::from([
            ("log.retention.ms".to_string(), "2".to_string()),
            ("log.segment.bytes".to_string(), "3".to_string()),
        ]);
        let effective = effective_topic_configs(&overrides, &broker);
        let find = |name: &str| {
            effective
                .iter()
                .find(|(def, _, _)| def.name == name)
                .unwrap()
                .clone()
        };
        assert_eq!(
            (find("retention.ms").1, find("retention.ms").2),
            ("1".into(), ConfigSource::Topic)
        );
        assert_eq!(find("segment.bytes").2, ConfigSource::StaticBroker);
        assert_eq!(find("flush.ms").2, ConfigSource::Default);
    }
}
