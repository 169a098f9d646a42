//! The quorum listener: accepts peers' connections and answers their raft and application
//! requests until shutdown.
//!
//! Each connection is served by its own task, one request at a time, in order. A frame that
//! cannot be read or decoded closes its connection and nothing else.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use openraft::raft::{AppendEntriesRequest, VoteRequest};
use parking_lot::RwLock;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

use super::shutdown::ShutdownListener;
use super::types::{MetadataRaft, NodeId, Raft, Snapshot};
use super::wire::{
    invalid_data, read_frame, write_frame, Frame, FrameCodec, FrameKind, FullSnapshotRequest,
};
use super::AppHandler;

/// How long to pause accepting after an accept error (such as running out of descriptors).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Connections the quorum listener keeps open at once (voters, learners and their application
/// calls need a few each); at the limit it stops accepting until one closes.
const MAX_CONNECTIONS: usize = 1024;

/// What serving a request needs.
pub(crate) struct ServerContext {
    /// The local raft node, which answers raft requests.
    pub raft: Raft,
    /// Answers application requests, once installed.
    pub app_handler: Arc<RwLock<Option<AppHandler>>>,
}

/// Accepts connections on `listener` until shutdown, serving each in its own task.
pub(crate) async fn serve(
    listener: TcpListener,
    context: Arc<ServerContext>,
    mut shutdown: ShutdownListener,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("never closed"),
            _ = shutdown.stopped() => return,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.stopped() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                tracing::debug!(%peer, "quorum connection accepted");
                let connection = serve_connection(stream, context.clone(), shutdown.clone());
                tokio::spawn(async move {
                    connection.await;
                    drop(slot);
                });
            }
            Err(error) => {
                tracing::warn!(%error, "quorum listener cannot accept");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
}

/// Serves one connection until the peer closes it, it breaks, or shutdown.
async fn serve_connection(
    stream: TcpStream,
    context: Arc<ServerContext>,
    mut shutdown: ShutdownListener,
) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "quorum connection lost");
        return;
    }
    let mut frames = Framed::new(stream, FrameCodec::default());
    let result = tokio::select! {
        result = answer_requests(&mut frames, &context) => result,
        _ = shutdown.stopped() => Ok(()),
    };
    if let Err(error) = result {
        tracing::debug!(%error, "quorum connection closed");
    }
}

/// Reads requests and writes their answers, in order, until the peer closes the connection.
async fn answer_requests(
    frames: &mut Framed<TcpStream, FrameCodec>,
    context: &ServerContext,
) -> io::Result<()> {
    while let Some(request) = read_frame(frames).await? {
        let (kind, body) = answer(context, request).await?;
        write_frame(frames, kind, &body).await?;
    }
    Ok(())
}

/// The reply to one request; an error for a request that makes no sense.
async fn answer(context: &ServerContext, request: Frame) -> io::Result<(FrameKind, Vec<u8>)> {
    match request.kind {
        FrameKind::AppendEntries => {
            let request: AppendEntriesRequest<MetadataRaft> = decode(&request.body)?;
            encode(&context.raft.append_entries(request).await)
        }
        FrameKind::Vote => {
            let request: VoteRequest<NodeId> = decode(&request.body)?;
            encode(&context.raft.vote(request).await)
        }
        FrameKind::FullSnapshot => {
            let request: FullSnapshotRequest = decode(&request.body)?;
            let snapshot = Snapshot {
                meta: request.meta,
                snapshot: Box::new(request.snapshot),
            };
            encode(
                &context
                    .raft
                    .install_full_snapshot(request.vote, snapshot)
                    .await,
            )
        }
        FrameKind::App => Ok(answer_app(context, request.body).await),
        FrameKind::Reply | FrameKind::Failure => Err(invalid_data(format!(
            "expected a request frame, found {:?}",
            request.kind
        ))),
    }
}

/// The application handler's answer, or a failure when none is installed.
async fn answer_app(context: &ServerContext, request: Vec<u8>) -> (FrameKind, Vec<u8>) {
    let handler = context.app_handler.read().clone();
    match handler {
        Some(handler) => (FrameKind::Reply, handler(request).await),
        None => (
            FrameKind::Failure,
            b"no application handler is installed on this node".to_vec(),
        ),
    }
}

/// Decodes a JSON request body.
fn decode<T: DeserializeOwned>(body: &[u8]) -> io::Result<T> {
    serde_json::from_slice(body).map_err(|error| invalid_data(format!("bad request: {error}")))
}

/// Encodes a raft reply as a JSON `Reply` frame body.
fn encode<T: Serialize>(reply: &T) -> io::Result<(FrameKind, Vec<u8>)> {
    let body = serde_json::to_vec(reply).map_err(io::Error::other)?;
    Ok((FrameKind::Reply, body))
}
