//! `cauce topic ...`: create, list, describe, alter-config, add-partitions, delete.

use std::collections::BTreeMap;
use std::fmt::Write;

use anyhow::bail;
use cauce_client::admin::{config_source_name, ConfigChange, ConfigEntry, NewTopic};
use serde::Serialize;

use crate::admin::{find_topic, parse_key_value, Connection, ConnectionArgs};
use crate::output::{self, id_list, Report, Table};

#[derive(clap::Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create(CreateArgs),
    /// List topics with their partition counts.
    List,
    /// Show a topic's partitions (leader, replicas, in-sync replicas) and configuration.
    Describe {
        /// The topic.
        name: String,
    },
    /// Set or remove a topic's configuration overrides.
    #[command(group(clap::ArgGroup::new("change").required(true).multiple(true).args(["set", "delete"])))]
    AlterConfig(AlterConfigArgs),
    /// Raise a topic's partition count.
    AddPartitions {
        /// The topic.
        name: String,
        /// The partition count the topic should have afterwards.
        #[arg(long, value_name = "N")]
        total: usize,
    },
    /// Delete a topic and its data.
    Delete {
        /// The topic.
        name: String,
    },
}

#[derive(clap::Args)]
pub struct CreateArgs {
    /// The topic.
    name: String,
    /// Number of partitions [default: the broker's num.partitions].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    partitions: Option<i32>,
    /// Copies of each partition [default: the broker's default.replication.factor].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    replication_factor: Option<i32>,
    /// A topic configuration override; repeat for several.
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    configs: Vec<(String, String)>,
}

#[derive(clap::Args)]
pub struct AlterConfigArgs {
    /// The topic.
    name: String,
    /// Set an override; repeat for several.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    set: Vec<(String, String)>,
    /// Remove an override, going back to the broker's default; repeat for several.
    #[arg(long, value_name = "KEY")]
    delete: Vec<String>,
}

pub fn run(connection_args: &ConnectionArgs, command: TopicCommand) -> anyhow::Result<()> {
    let connection = Connection::open(connection_args)?;
    let json = connection_args.json;
    match command {
        TopicCommand::Create(create_args) => {
            output::print(&create(&connection, create_args)?, json)
        }
        TopicCommand::List => output::print(&list(&connection)?, json),
        TopicCommand::Describe { name } => output::print(&describe(&connection, &name)?, json),
        TopicCommand::AlterConfig(alter_args) => {
            output::print(&alter_config(&connection, alter_args)?, json)
        }
        TopicCommand::AddPartitions { name, total } => {
            output::print(&add_partitions(&connection, &name, total)?, json)
        }
        TopicCommand::Delete { name } => output::print(&delete(&connection, &name)?, json),
    }
}

/// What a command that changes a topic did.
#[derive(Serialize)]
struct Change {
    /// The topic.
    topic: String,
    /// `created`, `deleted`, `configs altered`, `partitions added`.
    action: &'static str,
    /// Partition count afterwards, where the command sets it.
    #[serde(skip_serializing_if = "Option::is_none")]
    partitions: Option<usize>,
    /// Overrides set, for create and alter-config.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    set: BTreeMap<String, String>,
    /// Overrides removed, for alter-config.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    deleted: Vec<String>,
}

impl Change {
    fn new(topic: &str, action: &'static str) -> Change {
        Change {
            topic: topic.to_string(),
            action,
            partitions: None,
            set: BTreeMap::new(),
            deleted: Vec::new(),
        }
    }
}

impl Report for Change {
    fn human(&self) -> String {
        let mut text = format!("topic '{}': {}", self.topic, self.action);
        if let Some(partitions) = self.partitions {
            let _ = write!(text, ", {partitions} partitions");
        }
        for (key, value) in &self.set {
            let _ = write!(text, ", {key}={value}");
        }
        for key in &self.deleted {
            let _ = write!(text, ", {key} removed");
        }
        text.push('\n');
        text
    }
}

fn create(connection: &Connection, args: CreateArgs) -> anyhow::Result<Change> {
    let new_topic = NewTopic {
        name: &args.name,
        // -1 asks for the broker's default.
        partitions: args.partitions.unwrap_or(-1),
        replication_factor: args
            .replication_factor
            .map_or(-1, |factor| i16::try_from(factor).unwrap_or(i16::MAX)),
        configs: &args.configs,
    };
    connection
        .block_on(connection.client().create_topic(&new_topic))
        .map_err(|error| connection.topic_failed("CreateTopics", &args.name, error))?;
    let mut change = Change::new(&args.name, "created");
    change.partitions = find_topic(&connection.metadata()?, &args.name)
        .ok()
        .map(|topic| topic.partitions.len());
    change.set = args.configs.into_iter().collect();
    Ok(change)
}

#[derive(Serialize)]
struct TopicList {
    topics: Vec<TopicSummary>,
}

#[derive(Serialize)]
struct TopicSummary {
    name: String,
    partitions: usize,
    /// Replicas of the first partition; every partition of a topic has the same count.
    replication_factor: usize,
}

impl Report for TopicList {
    fn human(&self) -> String {
        let mut table = Table::new(&["TOPIC", "PARTITIONS", "REPLICATION"]);
        for topic in &self.topics {
            table.push(vec![
                topic.name.clone(),
                topic.partitions.to_string(),
                topic.replication_factor.to_string(),
            ]);
        }
        table.render()
    }
}

fn list(connection: &Connection) -> anyhow::Result<TopicList> {
    let metadata = connection.metadata()?;
    let mut topics: Vec<TopicSummary> = metadata
        .topics
        .iter()
        .filter(|topic| topic.error_code == 0)
        .map(|topic| TopicSummary {
            name: topic
                .name
                .as_ref()
                .map(|name| name.as_str().to_string())
                .unwrap_or_default(),
            partitions: topic.partitions.len(),
            replication_factor: topic
                .partitions
                .first()
                .map_or(0, |partition| partition.replica_nodes.len()),
        })
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(TopicList { topics })
}

#[derive(Serialize)]
struct TopicDescription {
    name: String,
    partitions: Vec<PartitionDescription>,
    configs: Vec<ConfigDescription>,
}

#[derive(Serialize)]
struct PartitionDescription {
    partition: i32,
    /// -1 while the partition has no leader.
    leader: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
}

#[derive(Serialize)]
struct ConfigDescription {
    name: String,
    /// None for sensitive values, which brokers do not return.
    value: Option<String>,
    /// Where the value comes from: `topic` for an override, else a broker or built-in default.
    source: &'static str,
    read_only: bool,
}

impl Report for TopicDescription {
    fn human(&self) -> String {
        let mut partitions = Table::new(&["PARTITION", "LEADER", "REPLICAS", "ISR"]);
        for partition in &self.partitions {
            partitions.push(vec![
                partition.partition.to_string(),
                partition.leader.to_string(),
                id_list(&partition.replicas),
                id_list(&partition.isr),
            ]);
        }
        let mut configs = Table::new(&["CONFIG", "VALUE", "SOURCE"]);
        for config in &self.configs {
            configs.push(vec![
                config.name.clone(),
                config.value.clone().unwrap_or_else(|| "(sensitive)".into()),
                config.source.to_string(),
            ]);
        }
        format!(
            "Topic: {}  Partitions: {}\n\n{}\n{}",
            self.name,
            self.partitions.len(),
            partitions.render(),
            configs.render()
        )
    }
}

fn describe(connection: &Connection, name: &str) -> anyhow::Result<TopicDescription> {
    let metadata = connection.metadata()?;
    let topic = find_topic(&metadata, name)?;
    let mut partitions: Vec<PartitionDescription> = topic
        .partitions
        .iter()
        .map(|partition| PartitionDescription {
            partition: partition.partition_index,
            leader: partition.leader_id.0,
            replicas: partition.replica_nodes.iter().map(|node| node.0).collect(),
            isr: partition.isr_nodes.iter().map(|node| node.0).collect(),
        })
        .collect();
    partitions.sort_by_key(|partition| partition.partition);
    let mut configs: Vec<ConfigDescription> = describe_configs(connection, name)?
        .into_iter()
        .map(|entry| ConfigDescription {
            source: config_source_name(entry.source),
            name: entry.name,
            value: entry.value,
            read_only: entry.read_only,
        })
        .collect();
    configs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(TopicDescription {
        name: name.to_string(),
        partitions,
        configs,
    })
}

/// The configuration of topic `name` (DescribeConfigs).
fn describe_configs(connection: &Connection, name: &str) -> anyhow::Result<Vec<ConfigEntry>> {
    connection
        .block_on(connection.client().describe_topic_configs(name))
        .map_err(|error| connection.topic_failed("DescribeConfigs", name, error))
}

/// Changes only the keys named (IncrementalAlterConfigs); the topic's other overrides stay.
fn alter_config(connection: &Connection, args: AlterConfigArgs) -> anyhow::Result<Change> {
    let entries = describe_configs(connection, &args.name)?;
    for key in &args.delete {
        if !entries.iter().any(|entry| &entry.name == key) {
            bail!("topic '{}' has no config '{key}'", args.name);
        }
    }
    let changes: Vec<ConfigChange<'_>> = args
        .set
        .iter()
        .map(|(key, value)| ConfigChange::Set(key, value))
        .chain(args.delete.iter().map(|key| ConfigChange::Delete(key)))
        .collect();
    connection
        .block_on(
            connection
                .client()
                .alter_topic_configs(&args.name, &changes),
        )
        .map_err(|error| connection.topic_failed("IncrementalAlterConfigs", &args.name, error))?;
    let mut change = Change::new(&args.name, "configs altered");
    change.set = args.set.into_iter().collect();
    change.deleted = args.delete;
    Ok(change)
}

fn add_partitions(connection: &Connection, name: &str, total: usize) -> anyhow::Result<Change> {
    let current = find_topic(&connection.metadata()?, name)?.partitions.len();
    if total <= current {
        bail!("topic '{name}' already has {current} partitions; --total must be larger");
    }
    let count = i32::try_from(total).unwrap_or(i32::MAX);
    connection
        .block_on(connection.client().create_partitions(name, count))
        .map_err(|error| connection.topic_failed("CreatePartitions", name, error))?;
    let mut change = Change::new(name, "partitions added");
    change.partitions = Some(total);
    Ok(change)
}

fn delete(connection: &Connection, name: &str) -> anyhow::Result<Change> {
    connection
        .block_on(connection.client().delete_topic(name))
        .map_err(|error| connection.topic_failed("DeleteTopics", name, error))?;
    Ok(Change::new(name, "deleted"))
}
