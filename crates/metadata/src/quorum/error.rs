//! What can go wrong in the quorum.

use thiserror::Error;

use super::client::CallError;
use super::types::NodeId;

/// Everything that can go wrong in the metadata quorum.
#[derive(Debug, Error)]
pub enum QuorumError {
    /// The configuration cannot work.
    #[error("invalid quorum configuration: {0}")]
    Config(String),
    /// The quorum's files could not be read or written.
    #[error("quorum storage: {0}")]
    Io(#[from] std::io::Error),
    /// Only the leader can do this; `leader` is the current one (id and quorum listener
    /// address) if this node knows it.
    #[error("this node is not the quorum leader; the leader is {leader:?}")]
    NotLeader {
        /// The leader's id and address, if known.
        leader: Option<(NodeId, String)>,
    },
    /// The membership change was refused (another one in progress, a voter named as learner).
    #[error("membership change refused: {0}")]
    Membership(String),
    /// A proposal or membership change was not committed in time (`propose_timeout`); it may
    /// still be.
    #[error("{0}")]
    Timeout(String),
    /// The raft node has stopped, after `shutdown` or a storage failure.
    #[error("the quorum node has stopped: {0}")]
    Stopped(String),
    /// No connection could be made to the peer.
    #[error("{0}")]
    Unreachable(String),
    /// The connection failed or timed out during the call; the request may or may not have
    /// been handled.
    #[error("{0}")]
    Network(String),
    /// The peer could not handle the request (for example, it has no application handler).
    #[error("{0}")]
    Refused(String),
}

impl From<CallError> for QuorumError {
    fn from(error: CallError) -> QuorumError {
        let message = error.to_string();
        match error {
            CallError::Unreachable { .. } => QuorumError::Unreachable(message),
            CallError::Network { .. } => QuorumError::Network(message),
            CallError::Refused { .. } => QuorumError::Refused(message),
        }
    }
}
