//! `cauce cluster info`: the cluster id, its brokers, its controller and how many topics it has.

use serde::Serialize;

use crate::admin::{Connection, ConnectionArgs, REQUEST_TIMEOUT};
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
    let client = connection.admin().inner();
    let cluster_id = client.fetch_cluster_id(REQUEST_TIMEOUT);
    // SAFETY: the pointer is the live client owned by `connection`; the call only reads the
    // controller id librdkafka cached from metadata, waiting at most the timeout.
    let controller_id = unsafe {
        rdkafka::bindings::rd_kafka_controllerid(
            client.native_ptr(),
            REQUEST_TIMEOUT.as_millis() as i32,
        )
    };
    let mut brokers: Vec<BrokerInfo> = metadata
        .brokers()
        .iter()
        .map(|broker| BrokerInfo {
            id: broker.id(),
            host: broker.host().to_string(),
            port: broker.port(),
        })
        .collect();
    brokers.sort_by_key(|broker| broker.id);
    Ok(ClusterInfo {
        cluster_id,
        controller_id: (controller_id >= 0).then_some(controller_id),
        brokers,
        topic_count: metadata.topics().len(),
    })
}
