//! Running as one node of a cluster: the metadata log is the controller quorum's.
//!
//! - [`QuorumLog`] is the manager's [`RecordLog`] over the quorum: the active controller is the
//!   raft leader; it commits by proposing; any other node forwards commands to it.
//! - [`ControllerRequest`] is what nodes send each other through the quorum's application
//!   calls: a metadata command to run on the active controller, a broker-only node's request
//!   to join the quorum as a learner, DescribeQuorum asked of the leader.
//! - [`install_controller_handler`] answers other nodes' calls: [`run_forwarded`] runs a
//!   forwarded command when this node is the active controller.
//! - [`run_membership`] keeps this broker registered and heartbeating, and, while this node
//!   is the active controller, fences the brokers that stopped heartbeating; it also shrinks
//!   the ISRs of lagging followers and gives leaderships back to preferred replicas.
//! - [`request_isr_change`] sends a leader's ISR change to the controller in the background.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cauce_metadata::command::{CommandOutcome, MetadataCommand, WireError, WireOutcome};
use cauce_metadata::manager::{Committing, Forwarding, RecordLog};
use cauce_metadata::quorum::{Quorum, QuorumDescription, QuorumError};
use cauce_metadata::{MetadataError, MetadataImage, MetadataRecord};
use futures::FutureExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::partition::Partition;
use crate::shutdown::Shutdown;
use crate::Broker;

/// How long a forwarded command may wait for an active controller to answer.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(15);
/// Pause between attempts while no controller is known or reachable.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// How long a forwarded command's answer waits for this node to apply what it changed.
const APPLY_WAIT: Duration = Duration::from_secs(5);
/// How often the active controller looks for brokers whose session expired.
const FENCE_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// A request from one node to another over the quorum's application calls.
#[derive(Debug, Serialize, Deserialize)]
pub enum ControllerRequest {
    /// Run a metadata command; only the active controller accepts it.
    Command(MetadataCommand),
    /// Add a broker-only node to the quorum as a learner, so that it receives the metadata
    /// log at `address` (its controller listener); only the active controller accepts it.
    JoinAsLearner { node_id: u64, address: String },
    /// Describe the quorum as its leader knows it (DescribeQuorum asked of another node);
    /// answered with a `Result<QuorumDescription, WireError>`.
    DescribeQuorum,
}

/// The metadata log of a cluster node: the controller quorum's replicated log.
pub struct QuorumLog {
    /// This node's member of the quorum.
    quorum: Quorum,
    /// This node's id.
    node_id: i32,
    /// The other voters' controller listeners, to ask while no leader is known here (a
    /// broker-only node learns the leader only once it is a learner).
    voters: Vec<String>,
}

impl QuorumLog {
    /// Wraps a started quorum member of the node `config` describes.
    pub fn new(quorum: Quorum, config: &crate::BrokerConfig) -> QuorumLog {
        let voters = config
            .quorum_voters
            .iter()
            .filter(|(id, _)| **id != config.node_id)
            .map(|(_, address)| address.clone())
            .collect();
        QuorumLog {
            quorum,
            node_id: config.node_id,
            voters,
        }
    }

    /// Sends `command` to the active controller once: the known leader, or else each voter in
    /// turn until one is it. Once it answers, waits until this node's image has what the
    /// command changed.
    async fn forward_once(
        &self,
        command: &MetadataCommand,
    ) -> Result<CommandOutcome, MetadataError> {
        let request = ControllerRequest::Command(command.clone());
        let (outcome, applied) =
            ask_controller(&self.quorum, self.node_id, &self.voters, &request).await?;
        self.wait_until_applied(applied).await;
        Ok(outcome)
    }

    /// Waits, [`APPLY_WAIT`] at most, until this node's image has applied `records` metadata
    /// records.
    async fn wait_until_applied(&self, records: u64) {
        let mut images = self.quorum.subscribe();
        let applied = tokio::time::timeout(
            APPLY_WAIT,
            images.wait_for(|image| image.records_applied >= records),
        )
        .await;
        if !matches!(applied, Ok(Ok(_))) {
            tracing::debug!(
                records,
                "this node's metadata still trails the controller's"
            );
        }
    }
}

/// Sends `request` to the active controller: the known leader, or else each voter in turn; an
/// answer other than "not the controller" is final. Returns the outcome and how many metadata
/// records the controller had applied after it.
pub async fn ask_controller(
    quorum: &Quorum,
    node_id: i32,
    voters: &[String],
    request: &ControllerRequest,
) -> Result<(CommandOutcome, u64), MetadataError> {
    let targets: Vec<String> = match quorum.leader() {
        Some((leader, _)) if leader == node_id as u64 => {
            return Err(MetadataError::NotController(
                "this node became the controller meanwhile".into(),
            ))
        }
        Some((_, address)) => vec![address],
        None => voters.to_vec(),
    };
    let request = serde_json::to_vec(request)
        .map_err(|error| MetadataError::NotController(error.to_string()))?;
    let mut last = MetadataError::NotController("no controller is elected".into());
    for address in targets {
        let answer = match quorum.call_app(&address, request.clone()).await {
            Ok(answer) => answer,
            Err(error) => {
                last = MetadataError::NotController(error.to_string());
                continue;
            }
        };
        let outcome: WireOutcome = serde_json::from_slice(&answer).map_err(|error| {
            MetadataError::NotController(format!("{address} answered garbage: {error}"))
        })?;
        match outcome.map_err(MetadataError::from) {
            Err(MetadataError::NotController(reason)) => {
                last = MetadataError::NotController(reason);
            }
            outcome => return outcome,
        }
    }
    Err(last)
}

impl RecordLog for QuorumLog {
    fn image(&self) -> Arc<MetadataImage> {
        self.quorum.image()
    }

    fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.quorum.subscribe()
    }

    fn is_active(&self) -> bool {
        self.active_controller() == Some(self.node_id)
    }

    fn active_term(&self) -> Option<u64> {
        self.quorum
            .leader_term()
            .and_then(|(leader, term)| (leader == self.node_id as u64).then_some(term))
    }

    fn active_controller(&self) -> Option<i32> {
        self.quorum
            .leader()
            .and_then(|(leader, _)| i32::try_from(leader).ok())
    }

    fn commit(&self, records: Vec<MetadataRecord>) -> Committing<'_> {
        async move {
            match self.quorum.propose(records).await {
                Ok(_) => Ok(self.quorum.image()),
                Err(QuorumError::NotLeader { leader }) => Err(MetadataError::NotController(
                    format!("leadership moved to {leader:?}"),
                )),
                Err(error) => Err(MetadataError::NotController(error.to_string())),
            }
        }
        .boxed()
    }

    /// Retries while no controller is known or it cannot be reached; an answer, even a
    /// refusal, is final.
    fn forward<'a>(&'a self, command: &'a MetadataCommand) -> Forwarding<'a> {
        async move {
            let deadline = Instant::now() + FORWARD_TIMEOUT;
            loop {
                match self.forward_once(command).await {
                    Err(MetadataError::NotController(reason))
                        if Instant::now() < deadline && !self.is_active() =>
                    {
                        tracing::debug!(%reason, "controller not reachable; retrying");
                        tokio::time::sleep(RETRY_PAUSE).await;
                    }
                    outcome => return outcome,
                }
            }
        }
        .boxed()
    }
}

/// Answers other nodes' application calls: runs forwarded commands if this node is the
/// active controller.
pub fn install_controller_handler(broker: &Arc<Broker>, quorum: &Quorum) {
    let broker = Arc::downgrade(broker);
    quorum.set_app_handler(Arc::new(move |request: Vec<u8>| {
        let broker = broker.clone();
        Box::pin(async move {
            let outcome: WireOutcome = match serde_json::from_slice(&request) {
                Ok(ControllerRequest::DescribeQuorum) => {
                    let described = match broker.upgrade() {
                        Some(broker) => describe_as_leader(&broker).await,
                        None => Err(WireError::NotController("the broker is stopping".into())),
                    };
                    return serde_json::to_vec(&described).unwrap_or_default();
                }
                Ok(ControllerRequest::Command(command)) => match broker.upgrade() {
                    Some(broker) => run_forwarded(broker, command).await,
                    None => Err(WireError::NotController("the broker is stopping".into())),
                },
                Ok(ControllerRequest::JoinAsLearner { node_id, address }) => {
                    match broker.upgrade() {
                        Some(broker) => add_learner(&broker, node_id, address).await,
                        None => Err(WireError::NotController("the broker is stopping".into())),
                    }
                }
                Err(error) => Err(WireError::NotController(format!(
                    "not a controller request: {error}"
                ))),
            };
            serde_json::to_vec(&outcome).unwrap_or_default()
        })
    }));
}

/// The quorum as this node describes it, if it is the quorum's leader (only the leader's
/// figures are exact).
async fn describe_as_leader(broker: &Broker) -> Result<QuorumDescription, WireError> {
    let node_id = broker.config.node_id as u64;
    match &broker.quorum {
        Some(quorum) if quorum.leader().is_some_and(|(leader, _)| leader == node_id) => {
            Ok(quorum.describe().await)
        }
        _ => Err(WireError::NotController(
            "this node does not lead the metadata quorum".into(),
        )),
    }
}

/// The quorum for DescribeQuorum: as its leader describes it, asked through the quorum's
/// application channel when another node leads; this node's own view (the followers' progress
/// unknown) when it leads or the leader does not answer.
pub async fn describe_quorum(broker: &Broker, quorum: &Quorum) -> QuorumDescription {
    if let Some((leader, address)) = quorum.leader() {
        if leader != broker.config.node_id as u64 {
            let request = serde_json::to_vec(&ControllerRequest::DescribeQuorum)
                .expect("a unit variant serializes");
            if let Ok(answer) = quorum.call_app(&address, request).await {
                match serde_json::from_slice::<Result<QuorumDescription, WireError>>(&answer) {
                    Ok(Ok(description)) => return description,
                    Ok(Err(error)) => {
                        tracing::debug!(?error, "the quorum leader did not describe the quorum")
                    }
                    Err(error) => tracing::debug!(%error, "garbled quorum description"),
                }
            }
        }
    }
    quorum.describe().await
}

/// Adds a broker-only node as a learner of the metadata quorum, if this node is the active
/// controller.
async fn add_learner(broker: &Broker, node_id: u64, address: String) -> WireOutcome {
    let Some(quorum) = broker
        .quorum
        .as_ref()
        .filter(|_| broker.metadata.is_active())
    else {
        return Err(WireError::NotController(
            "this node is not the active controller".into(),
        ));
    };
    quorum
        .add_learner(node_id, address)
        .await
        .map(|()| {
            (
                CommandOutcome::Done,
                broker.metadata.image().records_applied,
            )
        })
        .map_err(|error| WireError::NotController(error.to_string()))
}

/// Runs a command another node forwarded; refuses if this node is not the active controller,
/// so that commands never bounce between nodes.
async fn run_forwarded(broker: Arc<Broker>, command: MetadataCommand) -> WireOutcome {
    if !broker.metadata.is_active() {
        return Err(WireError::NotController(
            "this node is not the active controller".into(),
        ));
    }
    let outcome = broker
        .metadata
        .execute(command)
        .await
        .map_err(|error| WireError::from(&error))?;
    Ok((outcome, broker.metadata.image().records_applied))
}

/// Keeps this broker registered and heartbeating, fences silent brokers while this node is the
/// active controller, shrinks the ISRs of partitions it leads and gives leaderships back to
/// preferred replicas; until shutdown.
pub async fn run_membership(broker: Arc<Broker>, shutdown: Shutdown) {
    tokio::join!(
        heartbeats(broker.clone(), shutdown.clone()),
        fencing(broker.clone(), shutdown.clone()),
        shrink_lagging_isrs(broker.clone(), shutdown.clone()),
        restore_preferred_leaders(broker, shutdown),
    );
}

/// Joins the quorum as a learner if this node is broker-only, registers this broker, then
/// heartbeats at `broker.heartbeat.interval.ms`.
async fn heartbeats(broker: Arc<Broker>, mut shutdown: Shutdown) {
    let interval = Duration::from_millis(broker.config.broker_heartbeat_interval_ms.max(1));
    let mut timer = tokio::time::interval(interval);
    let mut joined = broker
        .config
        .quorum_voters
        .contains_key(&broker.config.node_id);
    let mut registered = false;
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = timer.tick() => {
                if broker.stopping.load(std::sync::atomic::Ordering::Acquire) {
                    return;
                }
                if !joined {
                    joined = join_as_learner(&broker).await;
                    continue;
                }
                registered = heartbeat_once(&broker, registered).await;
            }
        }
    }
}

/// Asks the active controller to add this broker-only node to the quorum as a learner;
/// returns whether it did.
async fn join_as_learner(broker: &Broker) -> bool {
    let (Some(quorum), Some(address)) = (&broker.quorum, broker.config.controller_listen) else {
        return false;
    };
    let voters: Vec<String> = broker.config.quorum_voters.values().cloned().collect();
    let request = ControllerRequest::JoinAsLearner {
        node_id: broker.config.node_id as u64,
        address: address.to_string(),
    };
    match ask_controller(quorum, broker.config.node_id, &voters, &request).await {
        Ok(_) => {
            tracing::info!(%address, "joined the metadata quorum as a learner");
            true
        }
        Err(error) => {
            tracing::debug!(%error, "could not join the metadata quorum yet");
            false
        }
    }
}

/// Logs controller changes, and while this node is the active controller, fences the brokers
/// whose session expired.
async fn fencing(broker: Arc<Broker>, mut shutdown: Shutdown) {
    let session = Duration::from_millis(broker.config.broker_session_timeout_ms.max(1));
    let mut timer = tokio::time::interval(FENCE_CHECK_INTERVAL.min(session / 4));
    let mut controller = None;
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = timer.tick() => {
                let now = broker.metadata.active_controller();
                if now != controller {
                    match now {
                        Some(id) => tracing::info!(controller = id, "active controller elected"),
                        None => tracing::warn!("no active controller"),
                    }
                    controller = now;
                }
                if let Err(error) = broker.metadata.fence_silent_brokers(session).await {
                    tracing::warn!(%error, "fencing silent brokers failed");
                }
            }
        }
    }
}

/// Kafka's controlled shutdown: asks the active controller to move this broker's leaderships
/// to other in-sync replicas, and waits (at most `timeout`) until the image shows it leads
/// nothing that another broker could lead.
pub async fn controlled_shutdown(broker: &Arc<Broker>, timeout: Duration) {
    let node_id = broker.config.node_id;
    let asked = broker
        .metadata
        .execute(MetadataCommand::ControlledShutdown { broker_id: node_id });
    match tokio::time::timeout(timeout, asked).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => {
            tracing::warn!(%error, "controlled shutdown refused; stopping anyway");
            return;
        }
        _ => {
            tracing::warn!("controlled shutdown did not finish in time; stopping anyway");
            return;
        }
    }
    let mut images = broker.metadata.subscribe();
    let moved = async {
        loop {
            let image = images.borrow_and_update().clone();
            let still_leading = image.topics.values().any(|topic| {
                topic.partitions.iter().any(|partition| {
                    partition.leader == node_id
                        && partition.isr.iter().any(|replica| *replica != node_id)
                })
            });
            if !still_leading {
                return;
            }
            if images.changed().await.is_err() {
                return;
            }
        }
    };
    if tokio::time::timeout(timeout, moved).await.is_err() {
        tracing::warn!("leaderships did not move in time; stopping anyway");
    } else {
        tracing::info!("controlled shutdown: leaderships moved to other brokers");
    }
}

/// Asks the active controller to make `isr` the partition's ISR, in the background; one
/// request per partition at a time, and none on a single node (whose ISR is itself).
pub fn request_isr_change(broker: &Arc<Broker>, partition: &Arc<Partition>, isr: Vec<i32>) {
    if broker.quorum.is_none() || !partition.begin_isr_change(crate::now_ms()) {
        return;
    }
    let command = MetadataCommand::AlterPartition {
        topic_id: partition.topic_id,
        partition: partition.index,
        leader: broker.config.node_id,
        leader_epoch: partition.leader_epoch(),
        isr,
    };
    let broker = broker.clone();
    let partition = partition.clone();
    tokio::spawn(async move {
        let refused = match broker.metadata.execute(command).await {
            Ok(_) => None,
            // A returning broker stays out until it is unfenced; asked again on a later fetch.
            Err(error @ cauce_metadata::MetadataError::StaleLeadership(_)) => {
                tracing::debug!(topic = %partition.topic, partition = partition.index, %error, "ISR change refused");
                Some(crate::now_ms())
            }
            Err(error) => {
                tracing::warn!(topic = %partition.topic, partition = partition.index, %error, "ISR change failed");
                Some(crate::now_ms())
            }
        };
        partition.end_isr_change(refused);
    });
}

/// While leading partitions, drops from their ISR the followers that have not caught up for
/// `replica.lag.time.max.ms`.
async fn shrink_lagging_isrs(broker: Arc<Broker>, mut shutdown: Shutdown) {
    let max_lag = broker.config.replica_lag_time_max_ms as i64;
    let period = Duration::from_millis((broker.config.replica_lag_time_max_ms / 4).clamp(50, 1000));
    let mut timer = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = timer.tick() => {
                let now = crate::now_ms();
                for partition in broker.replicas.all() {
                    if let Some(isr) = partition.wanted_isr(now, max_lag) {
                        request_isr_change(&broker, &partition, isr);
                    }
                }
            }
        }
    }
}

/// While this node is the active controller, gives leaderships back to preferred replicas
/// every `leader.imbalance.check.interval.seconds` (`auto.leader.rebalance.enable`).
async fn restore_preferred_leaders(broker: Arc<Broker>, mut shutdown: Shutdown) {
    if !broker.config.auto_leader_rebalance_enable {
        return;
    }
    let period = Duration::from_secs(broker.config.leader_imbalance_check_interval_seconds);
    let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = timer.tick() => {
                if !broker.metadata.is_active() {
                    continue;
                }
                let elected = broker.metadata.execute(MetadataCommand::ElectLeaders {
                    unclean: false,
                    partitions: None,
                });
                if let Err(error) = elected.await {
                    tracing::warn!(%error, "restoring preferred leaders failed");
                }
            }
        }
    }
}

/// Registers this broker if it is not yet, else heartbeats; returns whether it is registered.
async fn heartbeat_once(broker: &Arc<Broker>, registered: bool) -> bool {
    let command = if registered {
        MetadataCommand::BrokerHeartbeat {
            broker_id: broker.config.node_id,
        }
    } else {
        let (host, port) = broker.config.advertised_address();
        MetadataCommand::RegisterBroker {
            broker_id: broker.config.node_id,
            host,
            port: i32::from(port),
            rack: None,
            incarnation: Some(broker.incarnation),
        }
    };
    match broker.metadata.execute(command).await {
        Ok(_) => {
            if !registered {
                tracing::info!(
                    broker = broker.config.node_id,
                    "registered with the controller"
                );
            }
            true
        }
        Err(error) => {
            tracing::debug!(%error, registered, "heartbeat not accepted");
            registered
        }
    }
}
