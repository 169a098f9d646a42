//! Metadata records: the only way cluster state changes.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a configuration record applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigResource {
    /// A topic's configuration override.
    Topic(String),
    /// A broker's dynamic configuration; an empty id is the cluster-wide default.
    Broker(String),
}

/// One change to the cluster's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// Names the cluster; written once, when the log is created.
    Cluster { cluster_id: String },
    /// A broker and the address clients reach it at.
    RegisterBroker {
        broker_id: i32,
        host: String,
        port: i32,
        rack: Option<String>,
        /// Which run of the broker process registered (a new one at every start); absent in
        /// a single node's log and in logs written before it existed.
        #[serde(default)]
        incarnation: Option<Uuid>,
    },
    /// A broker stopped heartbeating: clients are no longer sent to it and it leads nothing.
    FenceBroker { broker_id: i32 },
    /// A fenced broker heartbeats again.
    UnfenceBroker { broker_id: i32 },
    /// A topic comes into being; its partitions follow as `Partition` records.
    Topic { name: String, topic_id: Uuid },
    /// A partition's replica assignment and leadership.
    Partition {
        topic_id: Uuid,
        partition: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
    },
    /// A partition's replicas are being reassigned (KIP-455): `adding` are joining, `removing`
    /// will leave once every target replica (the replicas but `removing`) is in sync. Empty
    /// lists end the reassignment.
    Reassignment {
        topic_id: Uuid,
        partition: i32,
        adding: Vec<i32>,
        removing: Vec<i32>,
    },
    /// A topic and all its partitions go away.
    RemoveTopic { topic_id: Uuid },
    /// Reserves producer ids below `next_producer_id` for the broker that wrote it.
    ProducerIds { next_producer_id: i64 },
    /// Sets (`Some`) or removes (`None`) one configuration key.
    Config {
        resource: ConfigResource,
        name: String,
        value: Option<String>,
    },
}
