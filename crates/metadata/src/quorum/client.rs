//! Outgoing connections: openraft's network (one client per peer and purpose) and the pool
//! that application calls use.
//!
//! Connections are made lazily and dropped on any failure, so the next call reconnects. A
//! failure to connect is reported to openraft as `Unreachable` (it backs off), a failure in the
//! middle of a call as a network error (it retries), and an error the peer's raft returned as a
//! remote error.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{NetworkError, RemoteError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{Backoff, RPCOption};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, OptionalSend, RaftNetwork, RaftNetworkFactory};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use super::activity::ReplicaActivity;
use super::types::{MetadataRaft, NodeId, RaftError, RpcError, Snapshot, SnapshotError, Vote};
use super::wire::{read_frame, write_frame, Frame, FrameCodec, FrameKind, FullSnapshotRequest};

/// Idle application connections kept per address; more concurrent calls open more.
const MAX_IDLE_APP_CONNECTIONS: usize = 8;

/// Why a call to a peer failed.
#[derive(Debug, Error)]
pub(crate) enum CallError {
    /// No connection could be made.
    #[error("cannot connect to {address}: {source}")]
    Unreachable {
        /// The peer's address.
        address: String,
        /// Why.
        source: io::Error,
    },
    /// The connection failed or timed out during the call; the request may or may not have
    /// been handled.
    #[error("call to {address} failed: {source}")]
    Network {
        /// The peer's address.
        address: String,
        /// Why.
        source: io::Error,
    },
    /// The peer answered that it could not handle the request.
    #[error("{address} refused the request: {reason}")]
    Refused {
        /// The peer's address.
        address: String,
        /// What the peer said.
        reason: String,
    },
}

/// A connection to a peer's quorum listener, carrying one request at a time.
struct Connection {
    /// The socket, framed by the quorum's codec.
    frames: Framed<TcpStream, FrameCodec>,
}

impl Connection {
    /// Connects to `address` within `timeout`.
    async fn open(address: &str, timeout: Duration) -> Result<Connection, CallError> {
        let unreachable = |source| CallError::Unreachable {
            address: address.to_string(),
            source,
        };
        let stream = tokio::time::timeout(timeout, TcpStream::connect(address))
            .await
            .map_err(|_| unreachable(io::Error::from(io::ErrorKind::TimedOut)))?
            .map_err(unreachable)?;
        stream.set_nodelay(true).map_err(unreachable)?;
        Ok(Connection {
            frames: Framed::new(stream, FrameCodec::default()),
        })
    }

    /// Sends a request and reads its reply.
    async fn round_trip(&mut self, kind: FrameKind, body: &[u8]) -> io::Result<Frame> {
        write_frame(&mut self.frames, kind, body).await?;
        read_frame(&mut self.frames)
            .await?
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))
    }

    /// Whether an idle connection still looks usable: a closed one reads as ready (end of
    /// stream), and an idle one should never have anything to read, buffered or not.
    fn is_idle_and_open(&self) -> bool {
        let mut probe = [0u8; 1];
        self.frames.read_buffer().is_empty()
            && matches!(self.frames.get_ref().try_read(&mut probe), Err(error) if error.kind() == io::ErrorKind::WouldBlock)
    }
}

/// Sends a request on `connection` (opening one if needed) within `timeout`, and returns the
/// reply with the connection to reuse; on failure the connection is dropped.
async fn call(
    address: &str,
    connection: Option<Connection>,
    kind: FrameKind,
    body: &[u8],
    timeout: Duration,
) -> Result<(Frame, Connection), CallError> {
    let attempt = async {
        let mut connection = match connection {
            Some(connection) => connection,
            None => Connection::open(address, timeout).await?,
        };
        let network = |source| CallError::Network {
            address: address.to_string(),
            source,
        };
        let reply = connection.round_trip(kind, body).await.map_err(network)?;
        Ok((reply, connection))
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| CallError::Network {
            address: address.to_string(),
            source: io::Error::from(io::ErrorKind::TimedOut),
        })?
}

/// The body of a `Reply`, or the reason of a `Failure`.
fn reply_body(address: &str, reply: Frame) -> Result<Vec<u8>, CallError> {
    match reply.kind {
        FrameKind::Reply => Ok(reply.body),
        FrameKind::Failure => Err(CallError::Refused {
            address: address.to_string(),
            reason: String::from_utf8_lossy(&reply.body).into_owned(),
        }),
        other => Err(CallError::Network {
            address: address.to_string(),
            source: io::Error::new(
                io::ErrorKind::InvalidData,
                format!("expected a reply frame, found {other:?}"),
            ),
        }),
    }
}

/// Makes openraft's clients, one per peer and purpose (replication, votes, snapshots).
pub(crate) struct NetworkFactory {
    /// Where the leader's clients record replica answers.
    pub activity: Arc<ReplicaActivity>,
    /// How long openraft waits before retrying a peer it could not reach.
    pub unreachable_backoff: Duration,
}

impl RaftNetworkFactory<MetadataRaft> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            target,
            address: node.addr.clone(),
            connection: None,
            activity: self.activity.clone(),
            unreachable_backoff: self.unreachable_backoff,
        }
    }
}

/// openraft's client for one peer.
pub(crate) struct PeerClient {
    /// The peer's node id.
    target: NodeId,
    /// The peer's quorum listener.
    address: String,
    /// The open connection, if any; taken out during a call so a cancelled call drops it.
    connection: Option<Connection>,
    /// Where replica answers are recorded.
    activity: Arc<ReplicaActivity>,
    /// See [`NetworkFactory::unreachable_backoff`].
    unreachable_backoff: Duration,
}

impl PeerClient {
    /// Sends a raft request as JSON and decodes the JSON reply.
    async fn raft_call<Request, Response>(
        &mut self,
        kind: FrameKind,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, CallError>
    where
        Request: Serialize,
        Response: DeserializeOwned,
    {
        let body = serde_json::to_vec(request).map_err(|error| self.network_error(error))?;
        let (reply, connection) =
            call(&self.address, self.connection.take(), kind, &body, timeout).await?;
        let body = reply_body(&self.address, reply)?;
        let response = serde_json::from_slice(&body).map_err(|error| self.network_error(error))?;
        self.connection = Some(connection);
        Ok(response)
    }

    /// A network error for a bad message from or to this peer.
    fn network_error(&self, error: serde_json::Error) -> CallError {
        CallError::Network {
            address: self.address.clone(),
            source: io::Error::new(io::ErrorKind::InvalidData, error),
        }
    }

    /// Records the peer's answer to an append for DescribeQuorum.
    fn record_answer(
        &self,
        request_end: Option<u64>,
        leader_end: u64,
        response: &AppendEntriesResponse<NodeId>,
    ) {
        let matched_end = match response {
            AppendEntriesResponse::Success => request_end,
            AppendEntriesResponse::PartialSuccess(matched) => matched.map(|id| id.index + 1),
            AppendEntriesResponse::Conflict | AppendEntriesResponse::HigherVote(_) => None,
        };
        self.activity
            .record_answer(self.target, matched_end, leader_end);
    }
}

/// openraft's error for a failed call.
fn rpc_error(error: CallError) -> RpcError {
    match error {
        CallError::Unreachable { .. } => RpcError::Unreachable(Unreachable::new(&error)),
        CallError::Network { .. } | CallError::Refused { .. } => {
            RpcError::Network(NetworkError::new(&error))
        }
    }
}

impl RaftNetwork<MetadataRaft> for PeerClient {
    async fn append_entries(
        &mut self,
        request: AppendEntriesRequest<MetadataRaft>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcError> {
        let leader_end = self.activity.local_log_end();
        let request_end = request
            .entries
            .last()
            .map(|entry| entry.log_id)
            .or(request.prev_log_id)
            .map(|log_id| log_id.index + 1);
        let reply: Result<AppendEntriesResponse<NodeId>, RaftError> = self
            .raft_call(FrameKind::AppendEntries, &request, option.hard_ttl())
            .await
            .map_err(rpc_error)?;
        let response = reply.map_err(|error| RemoteError::new(self.target, error))?;
        self.record_answer(request_end, leader_end, &response);
        Ok(response)
    }

    async fn vote(
        &mut self,
        request: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcError> {
        let reply: Result<VoteResponse<NodeId>, RaftError> = self
            .raft_call(FrameKind::Vote, &request, option.hard_ttl())
            .await
            .map_err(rpc_error)?;
        Ok(reply.map_err(|error| RemoteError::new(self.target, error))?)
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, SnapshotError> {
        let request = FullSnapshotRequest {
            vote,
            meta: snapshot.meta,
            snapshot: *snapshot.snapshot,
        };
        let sending = self.raft_call(FrameKind::FullSnapshot, &request, option.hard_ttl());
        let reply: Result<SnapshotResponse<NodeId>, openraft::error::Fatal<NodeId>> = tokio::select! {
            reply = sending => reply.map_err(|error| match error {
                CallError::Unreachable { .. } => StreamingError::Unreachable(Unreachable::new(&error)),
                _ => StreamingError::Network(NetworkError::new(&error)),
            })?,
            closed = cancel => return Err(StreamingError::Closed(closed)),
        };
        Ok(reply.map_err(|error| RemoteError::new(self.target, error))?)
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(self.unreachable_backoff))
    }
}

/// Application calls to any address, over pooled connections.
pub(crate) struct AppClient {
    /// Idle connections by address.
    idle: Mutex<HashMap<String, Vec<Connection>>>,
    /// How long one call (connect included) may take.
    timeout: Duration,
}

impl AppClient {
    /// A client whose calls give up after `timeout`.
    pub(crate) fn new(timeout: Duration) -> AppClient {
        AppClient {
            idle: Mutex::new(HashMap::new()),
            timeout,
        }
    }

    /// Sends `request` to the quorum listener at `address` and returns the handler's answer.
    pub(crate) async fn call(&self, address: &str, request: &[u8]) -> Result<Vec<u8>, CallError> {
        let connection = self.take_idle(address);
        let (reply, connection) =
            call(address, connection, FrameKind::App, request, self.timeout).await?;
        let body = reply_body(address, reply)?;
        self.put_idle(address, connection);
        Ok(body)
    }

    /// Closes every idle connection.
    pub(crate) fn clear(&self) {
        self.idle.lock().clear();
    }

    /// An idle connection to `address` that still looks open, if there is one.
    fn take_idle(&self, address: &str) -> Option<Connection> {
        let mut idle = self.idle.lock();
        let connections = idle.get_mut(address)?;
        while let Some(connection) = connections.pop() {
            if connection.is_idle_and_open() {
                return Some(connection);
            }
        }
        None
    }

    /// Keeps `connection` for the next call to `address`, within the idle limit.
    fn put_idle(&self, address: &str, connection: Connection) {
        let mut idle = self.idle.lock();
        let connections = idle.entry(address.to_string()).or_default();
        if connections.len() < MAX_IDLE_APP_CONNECTIONS {
            connections.push(connection);
        }
    }
}
