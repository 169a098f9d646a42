//! `cauce cluster info`: the cluster id, its brokers, its controller and how many topics it has.

use serde::Serialize;

use crate::admin::{Connection, ConnectionArgs};
use crate::output::{self, Report, Table};

#[derive(clap::Subcommand)]
pub enum ClusterCommand {
    /// Show the cluster id, brokers, controller and topic count.
    Info,
}

pub fn run(connection_args: &ConnectionArgs, command: ClusterCommand) -> anyhow::Result<()> {
    let connection = Connection::open(connection_args)?;
    match command {
        ClusterCommand::Info => output::print(&info(&connection)?, connection_args.json),
    }
}

#[derive(Serialize)]
struct ClusterInfo {
    /// None for brokers older than Metadata v2.
    cluster_id: Option<String>,
    /// None when the brokers do not say which node is the controller.
    controller_id: Option<i32>,
    brokers: Vec<BrokerInfo>,
    topic_count: usize,
}

#[derive(Serialize)]
struct BrokerInfo {
    id: i32,
    host: String,
    port: i32,
}

impl Report for ClusterInfo {
    fn human(&self) -> String {
        let unknown = || "(unknown)".to_string();
        let mut table = Table::new(&["BROKER", "HOST", "PORT", "CONTROLLER"]);
        for broker in &self.brokers {
            let controller = self.controller_id == Some(broker.id);
            table.push(vec![
                broker.id.to_string(),
                broker.host.clone(),
                broker.port.to_string(),
                if controller { "yes" } else { "" }.to_string(),
            ]);
        }
        format!(
            "Cluster id: {}\nController: {}\nTopics: {}\n\n{}",
            self.cluster_id.clone().unwrap_or_else(unknown),
            self.controller_id
                .map(|id| id.to_string())
                .unwrap_or_else(unknown),
            self.topic_count,
            table.render()
        )
    }
}

fn info(connection: &Connection) -> anyhow::Result<ClusterInfo> {
    let metadata = connection.metadata()?;
    let mut brokers: Vec<BrokerInfo> = metadata
        .brokers
        .iter()
        .map(|broker| BrokerInfo {
            id: broker.node_id.0,
            host: broker.host.to_string(),
            port: broker.port,
        })
        .collect();
    brokers.sort_by_key(|broker| broker.id);
    let controller_id = metadata.controller_id.0;
    Ok(ClusterInfo {
        cluster_id: metadata.cluster_id.as_ref().map(ToString::to_string),
        controller_id: (controller_id >= 0).then_some(controller_id),
        brokers,
        topic_count: metadata.topics.len(),
    })
}
