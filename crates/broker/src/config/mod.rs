//! The broker's configuration: one struct, read from a TOML file with Kafka's key names.
//!
//! Keys are written as in Kafka's `server.properties`; TOML turns `log.retention.ms = 1` into
//! nested tables, which are flattened back into dotted names here, so both `log.retention.ms = 1`
//! and `"log.retention.ms" = 1` work.
//!
//! Each key is defined once, and everything else is derived from that definition:
//! - [`keys`]: one entry per broker-level key (field, default, type, documentation, parsing and
//!   validation, value as text), through the macro in [`define`]; the struct, its `Default`
//!   and [`BROKER_KEYS`] come from it. Topic keys and their broker-level defaults
//!   (`log.retention.ms`, ...) are `cauce_metadata::topic_config::TOPIC_CONFIGS`.
//! - [`values`]: the parsers and the value-as-text functions the entries name.
//! - [`default_file`]: the text of `config/cauce.toml`, generated from both tables; a test
//!   checks that the shipped file is that text.
//! - This module: reading a file, [`BrokerConfig::set`] for one key, and what DescribeConfigs
//!   asks of a broker.

#[cfg(test)]
mod default_file;
mod define;
mod keys;
mod values;

use std::collections::BTreeMap;
use std::path::Path;

use cauce_metadata::topic_config::{validate_value, TOPIC_CONFIGS};

pub use define::BrokerKeyDef;
pub use keys::{BrokerConfig, BROKER_KEYS};

use crate::BrokerError;

/// A broker key that gives a topic default in another unit, as Kafka's `log.retention.hours`.
#[derive(Debug, Clone, Copy)]
pub struct UnitKeyDef {
    /// The key's name.
    pub name: &'static str,
    /// The broker-level topic default it gives, in milliseconds.
    pub target: &'static str,
    /// Milliseconds in one unit of the key.
    pub unit_ms: i64,
}

/// Broker keys that give a topic default in another unit. The key in milliseconds wins when
/// both are set (keys are applied in name order, and these only fill an unset target).
pub const TOPIC_DEFAULT_UNIT_KEYS: &[UnitKeyDef] = &[
    UnitKeyDef {
        name: "log.retention.hours",
        target: "log.retention.ms",
        unit_ms: 3_600_000,
    },
    UnitKeyDef {
        name: "log.retention.minutes",
        target: "log.retention.ms",
        unit_ms: 60_000,
    },
];

/// The broker-level key named `key` (by its name or an alias).
pub fn broker_key_def(key: &str) -> Option<&'static BrokerKeyDef> {
    BROKER_KEYS.iter().find(|def| def.is_named(key))
}

impl BrokerConfig {
    /// Whether this node runs with a replicated metadata quorum rather than a local log.
    pub fn is_clustered(&self) -> bool {
        !self.quorum_voters.is_empty()
    }

    /// The current value of a key of [`BROKER_KEYS`], as text.
    pub fn broker_key_value(&self, key: &str) -> Option<String> {
        broker_key_def(key).map(|def| (def.show)(self))
    }

    /// Reads a TOML file with Kafka key names.
    pub fn from_file(path: &Path) -> Result<BrokerConfig, BrokerError> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            BrokerError::Config(format!("cannot read {}: {error}", path.display()))
        })?;
        BrokerConfig::from_toml(&text)
    }

    /// Parses TOML text with Kafka key names; unknown keys and bad values are errors.
    pub fn from_toml(text: &str) -> Result<BrokerConfig, BrokerError> {
        let table: toml::Table = toml::from_str(text)
            .map_err(|error| BrokerError::Config(format!("config is not valid TOML: {error}")))?;
        let mut flat = BTreeMap::new();
        flatten("", &table, &mut flat);
        let mut config = BrokerConfig::default();
        for (key, value) in flat {
            config.set(&key, &value)?;
        }
        Ok(config)
    }

    /// Sets one key from its textual value: a key of [`BROKER_KEYS`], of
    /// [`TOPIC_DEFAULT_UNIT_KEYS`], or the broker-level name of a topic key.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), BrokerError> {
        let bad = |expected: &str| {
            BrokerError::Config(format!(
                "invalid value '{value}' for '{key}': expected {expected}"
            ))
        };
        if let Some(def) = broker_key_def(key) {
            return (def.set)(self, value).map_err(bad);
        }
        if let Some(unit_key) = TOPIC_DEFAULT_UNIT_KEYS.iter().find(|def| def.name == key) {
            let amount: i64 = value.parse().map_err(|_| bad("an integer"))?;
            let ms = if amount < 0 {
                -1
            } else {
                amount.saturating_mul(unit_key.unit_ms)
            };
            self.topic_defaults
                .entry(unit_key.target.into())
                .or_insert(ms.to_string());
            return Ok(());
        }
        let Some(def) = TOPIC_CONFIGS.iter().find(|def| def.broker_synonym == key) else {
            return Err(BrokerError::Config(format!("unknown config key '{key}'")));
        };
        validate_value(def, value).map_err(|error| BrokerError::Config(error.to_string()))?;
        self.topic_defaults
            .insert(key.to_string(), value.to_string());
        Ok(())
    }

    /// The host and port clients are told to connect to.
    pub fn advertised_address(&self) -> (String, u16) {
        self.advertised
            .clone()
            .unwrap_or_else(|| (self.listen.ip().to_string(), self.listen.port()))
    }
}

/// Turns TOML's nested tables back into dotted key names, with every value as text.
fn flatten(prefix: &str, table: &toml::Table, out: &mut BTreeMap<String, String>) {
    for (key, value) in table {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(inner) => flatten(&name, inner, out),
            toml::Value::String(text) => {
                out.insert(name, text.clone());
            }
            other => {
                out.insert(name, other.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests;
