//! The types openraft is instantiated with, and short names for the generic ones.

use openraft::impls::OneshotResponder;
use openraft::{BasicNode, TokioRuntime};
use serde::{Deserialize, Serialize};

use crate::record::MetadataRecord;

/// A node of the quorum, by the id it has in `node.id`.
pub type NodeId = u64;

/// What the log replicates: the metadata records of one proposal, applied together.
pub type Proposal = Vec<MetadataRecord>;

/// The choice of types for openraft: records in, nothing out, an image snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct MetadataRaft;

impl openraft::RaftTypeConfig for MetadataRaft {
    type D = Proposal;
    type R = ();
    type NodeId = NodeId;
    type Node = BasicNode;
    type Entry = openraft::Entry<MetadataRaft>;
    type SnapshotData = ImageSnapshot;
    type AsyncRuntime = TokioRuntime;
    type Responder = OneshotResponder<MetadataRaft>;
}

/// The state a snapshot carries: records that rebuild the image, and how many records the log
/// had applied to reach it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageSnapshot {
    /// `MetadataImage::records_applied` at the snapshot, which the records alone cannot restore.
    pub records_applied: u64,
    /// `MetadataImage::to_records` of the image at the snapshot.
    pub records: Vec<MetadataRecord>,
}

/// The running raft node.
pub type Raft = openraft::Raft<MetadataRaft>;
/// One entry of the replicated log.
pub type Entry = openraft::Entry<MetadataRaft>;
/// Names an entry: leader (term, node) and index.
pub type LogId = openraft::LogId<NodeId>;
/// The term and candidate a node voted for.
pub type Vote = openraft::Vote<NodeId>;
/// A cluster membership together with the log id that introduced it.
pub type StoredMembership = openraft::StoredMembership<NodeId, BasicNode>;
/// What a snapshot covers: last log id, membership, id.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, BasicNode>;
/// A snapshot with its data.
pub type Snapshot = openraft::Snapshot<MetadataRaft>;
/// What storage reports when it fails; openraft stops the node on it.
pub type StorageError = openraft::StorageError<NodeId>;
/// The metrics openraft publishes about this node.
pub type RaftMetrics = openraft::RaftMetrics<NodeId, BasicNode>;
/// The error a raft RPC handler returns to the caller.
pub type RaftError<E = openraft::error::Infallible> = openraft::error::RaftError<NodeId, E>;
/// A failed outgoing raft RPC.
pub type RpcError = openraft::error::RPCError<NodeId, BasicNode, RaftError>;
/// A failed outgoing snapshot transfer.
pub type SnapshotError =
    openraft::error::StreamingError<MetadataRaft, openraft::error::Fatal<NodeId>>;
