//! The controller quorum: the metadata log replicated by raft (openraft 0.9) across the
//! controller voters, as KRaft does.
//!
//! A log entry is one proposal: the `MetadataRecord`s a change writes, applied together to the
//! `MetadataImage` once a majority of voters hold the entry. Every node (voter or learner)
//! applies the same entries in the same order and publishes each new image.
//!
//! Layout:
//! - `config`: what a node is configured with, and the openraft configuration.
//! - `types`: the types openraft is instantiated with.
//! - `log_file`, `log_store`: the durable raft log, vote and committed pointer; `durable`: small
//!   files replaced whole and atomically.
//! - `state_machine`: proposals applied to the image; snapshots of the image.
//! - `wire`, `client`, `server`: the transport, framed JSON over TCP (frames cut by a
//!   `tokio-util` codec driven by `Framed`), shared with application calls.
//! - `activity`, `describe`: what DescribeQuorum reports.
//! - `shutdown`: stopping the server tasks.
//! - `error`: what can go wrong in the quorum.
//!
//! How a cluster forms: every node starts its raft node from its directory. The voter with the
//! smallest id, if its log is empty (first start), creates the membership of all voters; the
//! others wait until it contacts them. A node that is not a voter waits until a leader adds it
//! with [`Quorum::add_learner`].

mod activity;
mod client;
mod config;
mod describe;
mod durable;
mod error;
mod log_file;
mod log_store;
mod server;
mod shutdown;
mod state_machine;
mod types;
pub(crate) mod wire;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use openraft::error::{ClientWriteError, InitializeError};
use openraft::{BasicNode, ChangeMembers};
use parking_lot::RwLock;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{QuorumConfig, QuorumTiming, DEFAULT_SNAPSHOT_AFTER_ENTRIES};
pub use describe::{QuorumDescription, ReplicaDescription};
pub use error::QuorumError;
pub use types::NodeId;

use activity::{now_ms, ReplicaActivity};
use client::{AppClient, NetworkFactory};
use durable::blocking;
use log_store::LogStore;
use server::ServerContext;
use shutdown::Shutdown;
use state_machine::StateMachine;
use types::{Raft, RaftError, RaftMetrics};

use crate::image::MetadataImage;
use crate::record::MetadataRecord;

/// Answers application requests (`Quorum::call_app` from other nodes) on this node.
pub type AppHandler = Arc<dyn Fn(Vec<u8>) -> BoxFuture<'static, Vec<u8>> + Send + Sync>;

/// Where a committed proposal landed in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProposeOutcome {
    /// The entry's raft log index.
    pub log_index: u64,
    /// The raft term of the leader that wrote it.
    pub term: u64,
}

/// A running member of the metadata quorum; cheap to clone.
#[derive(Clone)]
pub struct Quorum {
    /// Shared by every clone.
    inner: Arc<QuorumInner>,
}

/// The state behind every clone of a [`Quorum`].
struct QuorumInner {
    /// This node's id.
    node_id: NodeId,
    /// The configured voters' addresses, for a leader the membership does not name yet.
    voters: BTreeMap<NodeId, String>,
    /// The raft node.
    raft: Raft,
    /// The latest applied image, published by the state machine.
    images: watch::Receiver<Arc<MetadataImage>>,
    /// Replica answers recorded by the network clients, for `describe`.
    activity: Arc<ReplicaActivity>,
    /// How long a write may wait to be committed.
    propose_timeout: Duration,
    /// Pooled connections for `call_app`.
    app_client: AppClient,
    /// Answers application requests arriving at the listener.
    app_handler: Arc<RwLock<Option<AppHandler>>>,
    /// Stops the server tasks.
    shutdown: Shutdown,
    /// Serialises membership changes made from this node; openraft refuses a second one while
    /// another is in flight.
    membership_changes: tokio::sync::Mutex<()>,
}

impl fmt::Debug for Quorum {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Quorum")
            .field("node_id", &self.inner.node_id)
            .field("leader", &self.leader())
            .finish()
    }
}

impl Quorum {
    /// Opens the log in `config.dir` (recovering a torn tail) and starts the raft node.
    ///
    /// The voter with the smallest id initializes the membership with all voters when its log
    /// is empty; other voters wait to be contacted; a node that is not a voter waits to be
    /// added as a learner. Serve the quorum's RPCs with [`Quorum::serve`].
    pub async fn start(config: QuorumConfig) -> Result<Quorum, QuorumError> {
        config.validate()?;
        let raft_config = config.raft_config()?;
        let activity = Arc::new(ReplicaActivity::default());
        let (log_store, state_machine, images) =
            open_storage(config.dir.clone(), activity.clone()).await?;
        let network = NetworkFactory {
            activity: activity.clone(),
            unreachable_backoff: config.timing.unreachable_backoff(),
        };
        let raft = Raft::new(
            config.node_id,
            raft_config,
            network,
            log_store,
            state_machine,
        )
        .await
        .map_err(|error| QuorumError::Stopped(error.to_string()))?;
        let quorum = Quorum {
            inner: Arc::new(QuorumInner {
                node_id: config.node_id,
                voters: config.voters.clone(),
                raft,
                images,
                activity,
                propose_timeout: config.timing.propose_timeout,
                app_client: AppClient::new(config.timing.app_request_timeout),
                app_handler: Arc::new(RwLock::new(None)),
                shutdown: Shutdown::new(),
                membership_changes: tokio::sync::Mutex::new(()),
            }),
        };
        quorum.initialize_if_first(&config).await?;
        tracing::info!(
            node_id = config.node_id,
            voter = config.is_voter(),
            dir = %config.dir.display(),
            "metadata quorum node started"
        );
        Ok(quorum)
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.inner.node_id
    }

    /// Serves the quorum's RPCs (raft and application) on `listener` until shutdown.
    pub fn serve(&self, listener: TcpListener) -> JoinHandle<()> {
        let context = Arc::new(ServerContext {
            raft: self.inner.raft.clone(),
            app_handler: self.inner.app_handler.clone(),
        });
        match self.inner.shutdown.listener() {
            Some(shutdown) => tokio::spawn(server::serve(listener, context, shutdown)),
            // Already shut down: the listener is dropped, closing it.
            None => tokio::spawn(async {}),
        }
    }

    /// Appends `records` as one log entry; returns once a majority of voters hold it and it is
    /// applied here, so [`Quorum::image`] shows it.
    ///
    /// On a node that is not the leader it returns [`QuorumError::NotLeader`]; when the entry
    /// is not committed within `propose_timeout`, [`QuorumError::Timeout`]. As in any raft, an
    /// error after the entry was appended (leadership lost meanwhile, timeout) does not prove
    /// it will not be committed later.
    pub async fn propose(
        &self,
        records: Vec<MetadataRecord>,
    ) -> Result<ProposeOutcome, QuorumError> {
        let write = self.inner.raft.client_write(records);
        let response = self
            .within_propose_timeout(write)
            .await?
            .map_err(|error| self.write_error(error))?;
        Ok(ProposeOutcome {
            log_index: response.log_id.index,
            term: response.log_id.leader_id.term,
        })
    }

    /// The latest applied image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.inner.images.borrow().clone()
    }

    /// A receiver of every image applied from now on; its current value is the latest image.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        let mut images = self.inner.images.clone();
        images.mark_unchanged();
        images
    }

    /// The current leader, if known: its id and quorum listener address.
    pub fn leader(&self) -> Option<(NodeId, String)> {
        let metrics = self.inner.raft.metrics();
        let metrics = metrics.borrow();
        let leader = metrics.current_leader?;
        Some((leader, self.address_of(&metrics, leader)))
    }

    /// The current leader's id and the term it leads in, if a leader is known.
    pub fn leader_term(&self) -> Option<(NodeId, u64)> {
        let metrics = self.inner.raft.metrics();
        let metrics = metrics.borrow();
        Some((metrics.current_leader?, metrics.current_term))
    }

    /// The quorum's state for DescribeQuorum: exact on the leader, what is known elsewhere.
    pub async fn describe(&self) -> QuorumDescription {
        let committed = self
            .inner
            .raft
            .with_raft_state(|state| state.committed)
            .await
            .ok()
            .flatten();
        let metrics = self.inner.raft.metrics().borrow().clone();
        let activity = &self.inner.activity;
        describe::describe(
            &metrics,
            committed,
            |node_id| activity.times(node_id),
            now_ms(),
        )
    }

    /// Adds a node that does not vote (a broker, KRaft's observer) as a learner that receives
    /// the log; leader only.
    ///
    /// Returns once the membership naming it is committed; the learner catches up on its own.
    /// Adding a member again at the same address does nothing; at a new address it updates
    /// the address (learners only).
    pub async fn add_learner(&self, node_id: NodeId, address: String) -> Result<(), QuorumError> {
        let _one_change_at_a_time = self.inner.membership_changes.lock().await;
        let Some(change) = self.learner_change(node_id, &address)? else {
            return Ok(());
        };
        let write = self.inner.raft.change_membership(change, true);
        self.within_propose_timeout(write)
            .await?
            .map_err(|error| self.write_error(error))?;
        tracing::info!(node_id, %address, "learner added to the metadata quorum");
        Ok(())
    }

    /// Sends `request` to the quorum listener at `to_address` and returns the answer of the
    /// handler installed there with [`Quorum::set_app_handler`].
    pub async fn call_app(
        &self,
        to_address: &str,
        request: Vec<u8>,
    ) -> Result<Vec<u8>, QuorumError> {
        Ok(self.inner.app_client.call(to_address, &request).await?)
    }

    /// Installs the handler that answers other nodes' [`Quorum::call_app`] requests here.
    pub fn set_app_handler(&self, handler: AppHandler) {
        *self.inner.app_handler.write() = Some(handler);
    }

    /// Stops the raft node and the server; no RPC is answered after this returns.
    pub async fn shutdown(&self) {
        if let Err(error) = self.inner.raft.shutdown().await {
            tracing::warn!(%error, "metadata quorum raft node did not stop cleanly");
        }
        self.inner.shutdown.stop().await;
        self.inner.app_client.clear();
        tracing::info!(node_id = self.inner.node_id, "metadata quorum node stopped");
    }

    /// Creates the first membership if this node is the voter that does so and has never
    /// been initialized.
    async fn initialize_if_first(&self, config: &QuorumConfig) -> Result<(), QuorumError> {
        if !config.initializes_cluster() {
            return Ok(());
        }
        let raft = &self.inner.raft;
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|error| QuorumError::Stopped(error.to_string()))?;
        if initialized {
            return Ok(());
        }
        let members: BTreeMap<NodeId, BasicNode> = config
            .voters
            .iter()
            .map(|(node_id, address)| (*node_id, BasicNode::new(address)))
            .collect();
        tracing::info!(voters = ?config.voters, "initializing the metadata quorum");
        match raft.initialize(members).await {
            Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(RaftError::APIError(error)) => Err(QuorumError::Config(error.to_string())),
            Err(RaftError::Fatal(error)) => Err(QuorumError::Stopped(error.to_string())),
        }
    }

    /// The membership change that makes `node_id` a learner at `address`, or `None` when it
    /// already is a member there.
    fn learner_change(
        &self,
        node_id: NodeId,
        address: &str,
    ) -> Result<Option<ChangeMembers<NodeId, BasicNode>>, QuorumError> {
        let metrics = self.inner.raft.metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        let is_voter = membership.voter_ids().any(|voter| voter == node_id);
        let change = match membership.get_node(&node_id) {
            Some(existing) if existing.addr == address => None,
            Some(existing) if is_voter => {
                return Err(QuorumError::Membership(format!(
                    "node {node_id} is a voter at {}, expected a learner at {address}",
                    existing.addr
                )))
            }
            Some(_) => Some(ChangeMembers::SetNodes(BTreeMap::from([(
                node_id,
                BasicNode::new(address),
            )]))),
            None => Some(ChangeMembers::AddNodes(BTreeMap::from([(
                node_id,
                BasicNode::new(address),
            )]))),
        };
        Ok(change)
    }

    /// Awaits a write (proposal or membership change) for at most `propose_timeout`.
    async fn within_propose_timeout<T>(
        &self,
        write: impl Future<Output = T>,
    ) -> Result<T, QuorumError> {
        let timeout = self.inner.propose_timeout;
        tokio::time::timeout(timeout, write).await.map_err(|_| {
            QuorumError::Timeout(format!(
                "not committed within {timeout:?}; it may still be committed"
            ))
        })
    }

    /// The quorum error for a failed write (proposal or membership change).
    fn write_error(&self, error: RaftError<ClientWriteError<NodeId, BasicNode>>) -> QuorumError {
        match error {
            RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => {
                let leader = forward.leader_id.map(|leader| {
                    let address = match forward.leader_node {
                        Some(node) => node.addr,
                        None => self.address_of(&self.inner.raft.metrics().borrow(), leader),
                    };
                    (leader, address)
                });
                QuorumError::NotLeader { leader }
            }
            RaftError::APIError(ClientWriteError::ChangeMembershipError(error)) => {
                QuorumError::Membership(error.to_string())
            }
            RaftError::Fatal(error) => QuorumError::Stopped(error.to_string()),
        }
    }

    /// A member's quorum listener address, from the membership or else the configured voters.
    fn address_of(&self, metrics: &RaftMetrics, node_id: NodeId) -> String {
        metrics
            .membership_config
            .membership()
            .get_node(&node_id)
            .map(|node| node.addr.clone())
            .or_else(|| self.inner.voters.get(&node_id).cloned())
            .unwrap_or_default()
    }
}

/// Creates `dir` and opens the log store and the state machine in it.
async fn open_storage(
    dir: PathBuf,
    activity: Arc<ReplicaActivity>,
) -> Result<(LogStore, StateMachine, watch::Receiver<Arc<MetadataImage>>), QuorumError> {
    let opened = blocking(move || {
        std::fs::create_dir_all(&dir)?;
        durable::sync_parent_directory(&dir)?;
        let log_store = LogStore::open(&dir, activity)?;
        let (state_machine, images) = StateMachine::open(&dir)?;
        Ok((log_store, state_machine, images))
    })
    .await?;
    Ok(opened)
}
