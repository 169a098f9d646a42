//! Starting, running and stopping the broker.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cauce_metadata::quorum::{Quorum, QuorumConfig};
use cauce_metadata::MetadataManager;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::cluster::QuorumLog;
use crate::replica_manager::{ReplicaManager, METADATA_DIR_NAME};
use crate::shutdown::{self, Shutdown, ShutdownTrigger};
use crate::{now_ms, Broker, BrokerConfig, BrokerError};

/// How long a stopping cluster node waits for its leaderships to move.
const CONTROLLED_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(15);
/// How long connections get to answer in-flight requests at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How often partitions are checked for a due `flush.ms`.
const FLUSH_CHECK_INTERVAL: Duration = Duration::from_millis(100);
/// How often group sessions and rebalance deadlines are checked.
const GROUP_TICK_INTERVAL: Duration = Duration::from_millis(100);
/// How often the request histograms' samples are folded into their buckets, which bounds the
/// samples held between scrapes (or when nothing scrapes).
const METRICS_FOLD_INTERVAL: Duration = Duration::from_secs(5);

/// A started broker, listening but not yet accepting.
pub struct Server {
    /// Shared state.
    broker: Arc<Broker>,
    /// The bound Kafka listener.
    listener: TcpListener,
    /// The bound `/metrics` listener, if `metrics.listen` is set.
    metrics_listener: Option<TcpListener>,
    /// This node's member of the controller quorum, when it runs in a cluster.
    quorum: Option<Quorum>,
    /// Stops connections and background tasks.
    trigger: ShutdownTrigger,
    /// Handed to every connection.
    shutdown: Shutdown,
}

impl Server {
    /// Opens the data directory, replays metadata, opens logs and binds the listener.
    pub async fn start(mut config: BrokerConfig) -> Result<Server, BrokerError> {
        std::fs::create_dir_all(&config.data_dir)?;
        let listener = TcpListener::bind(config.listen).await?;
        let bound = listener.local_addr()?;
        config.listen = bound;
        let metrics_listener = match config.metrics_listen {
            Some(address) => {
                let metrics_listener = TcpListener::bind(address).await.map_err(|error| {
                    BrokerError::Config(format!(
                        "cannot listen on metrics.listen {address}: {error}"
                    ))
                })?;
                let metrics_bound = metrics_listener.local_addr()?;
                config.metrics_listen = Some(metrics_bound);
                tracing::info!(address = %metrics_bound, "serving metrics at /metrics");
                Some(metrics_listener)
            }
            None => None,
        };
        let (metadata, quorum) = if config.is_clustered() {
            let quorum = start_quorum(&mut config).await?;
            let log = QuorumLog::new(quorum.clone(), &config);
            (MetadataManager::new(Arc::new(log)), Some(quorum))
        } else {
            let (host, port) = config.advertised_address();
            let metadata = MetadataManager::open(
                &config.data_dir.join(METADATA_DIR_NAME),
                config.node_id,
                &host,
                port as i32,
            )
            .await?;
            (metadata, None)
        };
        let logs = ReplicaManager::new(
            &config.data_dir,
            config.node_id,
            config.topic_defaults.clone(),
        );
        let broker = Broker::new(config, metadata, logs, quorum.clone());
        if let Some(quorum) = &quorum {
            crate::cluster::install_controller_handler(&broker, quorum);
        }
        // The hosted logs are open before the first client connects; the metadata applier
        // keeps them in step from then on.
        let opener = broker.clone();
        tokio::task::spawn_blocking(move || opener.apply_metadata(&opener.metadata.image()))
            .await
            .expect("log opening panicked")?;
        let (trigger, shutdown) = shutdown::channel();
        Ok(Server {
            broker,
            listener,
            metrics_listener,
            quorum,
            trigger,
            shutdown,
        })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.broker.config.listen
    }

    /// The address `/metrics` is served on, if `metrics.listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.broker.config.metrics_listen
    }

    /// Accepts connections until `stop` resolves, then shuts down cleanly: stops accepting,
    /// lets connections answer what they accepted, flushes and closes every log.
    pub async fn run(self, stop: impl Future<Output = ()>) -> Result<(), BrokerError> {
        let Server {
            broker,
            listener,
            metrics_listener,
            quorum,
            trigger,
            shutdown,
        } = self;
        let background = tokio::spawn(background_tasks(broker.clone(), shutdown.clone()));
        let applier = tokio::spawn(crate::replication::follow_leaders(
            broker.clone(),
            shutdown.clone(),
        ));
        let membership = quorum.as_ref().map(|_| {
            tokio::spawn(crate::cluster::run_membership(
                broker.clone(),
                shutdown.clone(),
            ))
        });
        let cleaner = tokio::spawn(log_cleaner(broker.clone(), shutdown.clone()));
        let metrics = metrics_listener.map(|metrics_listener| {
            tokio::spawn(crate::metrics::serve(
                broker.clone(),
                metrics_listener,
                shutdown.clone(),
            ))
        });
        let mut connections = JoinSet::new();
        tokio::pin!(stop);
        let mut slot = None;
        loop {
            tokio::select! {
                // At max.connections, stop accepting until a connection closes.
                reserved = broker.connection_limits.reserve(), if slot.is_none() => {
                    slot = Some(reserved);
                }
                accepted = listener.accept(), if slot.is_some() => match accepted {
                    Ok((stream, address)) => {
                        let reserved = slot.take().expect("accepting only with a slot");
                        match reserved.admit(address.ip()) {
                            Ok(admitted) => {
                                connections.spawn(crate::connection::serve(broker.clone(), stream, address, admitted, shutdown.clone()));
                            }
                            Err(limit) => {
                                tracing::info!(client = %address, limit, "closing connection: max.connections.per.ip reached");
                            }
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                _ = &mut stop => break,
            }
        }
        tracing::info!("shutting down");
        broker
            .stopping
            .store(true, std::sync::atomic::Ordering::Release);
        if quorum.is_some() {
            crate::cluster::controlled_shutdown(&broker, CONTROLLED_SHUTDOWN_TIMEOUT).await;
        }
        drop(listener);
        trigger.trigger();
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                remaining = connections.len(),
                "connections did not finish in time"
            );
            connections.abort_all();
        }
        let _ = background.await;
        let _ = cleaner.await;
        let _ = applier.await;
        if let Some(membership) = membership {
            let _ = membership.await;
        }
        if let Some(quorum) = quorum {
            quorum.shutdown().await;
        }
        if let Some(metrics) = metrics {
            let _ = metrics.await;
        }
        tokio::task::spawn_blocking(move || broker.replicas.close_all())
            .await
            .expect("log closing panicked");
        tracing::info!("shut down cleanly");
        Ok(())
    }
}

/// Starts this node's member of the controller quorum, serving it on the controller listener
/// when the node is a voter.
async fn start_quorum(config: &mut BrokerConfig) -> Result<Quorum, BrokerError> {
    let voters = config
        .quorum_voters
        .iter()
        .map(|(id, address)| (*id as u64, address.clone()))
        .collect();
    let dir = config.data_dir.join(METADATA_DIR_NAME).join("raft");
    let quorum_config = QuorumConfig::new(config.node_id as u64, voters, dir);
    let quorum = Quorum::start(quorum_config)
        .await
        .map_err(|error| BrokerError::Config(format!("controller quorum: {error}")))?;
    // Voters serve the quorum; a broker-only node receives the log on it as a raft learner.
    {
        let Some(address) = config.controller_listen else {
            return Err(BrokerError::Config(format!(
                "node {} is in a cluster (controller.quorum.voters is set), but listeners has no {} entry for the metadata quorum",
                config.node_id, config.controller_listener_name
            )));
        };
        let listener = TcpListener::bind(address).await.map_err(|error| {
            BrokerError::Config(format!(
                "cannot listen on controller listener {address}: {error}"
            ))
        })?;
        config.controller_listen = Some(listener.local_addr()?);
        quorum.serve(listener);
    }
    Ok(quorum)
}

/// Retention and time-based flushing, until shutdown.
async fn background_tasks(broker: Arc<Broker>, mut shutdown: Shutdown) {
    let mut retention = tokio::time::interval(Duration::from_millis(
        broker.config.retention_check_interval_ms,
    ));
    let mut flush = tokio::time::interval(FLUSH_CHECK_INTERVAL);
    let mut metrics_fold = tokio::time::interval(METRICS_FOLD_INTERVAL);
    let mut group_tick = tokio::time::interval(GROUP_TICK_INTERVAL);
    // Timed-out transactions are looked for this often, and a coordinator that took over a
    // partition resumes the markers of its decided transactions within this time (at most 1 s).
    let mut transaction_tick = tokio::time::interval(Duration::from_millis(
        broker
            .config
            .transaction_abort_timed_out_transaction_cleanup_interval_ms
            .clamp(1, 1000) as u64,
    ));
    let mut checkpoint = tokio::time::interval(Duration::from_millis(
        broker.config.replica_high_watermark_checkpoint_interval_ms,
    ));
    loop {
        tokio::select! {
            _ = retention.tick() => {
                let broker = broker.clone();
                let _ = tokio::task::spawn_blocking(move || enforce_retention(&broker)).await;
            }
            _ = flush.tick() => {
                let now = now_ms();
                for partition in broker.replicas.all() {
                    if partition.with_log(|log| flush_due(log, now)) {
                        partition.start_group_commit();
                    }
                }
            }
            _ = group_tick.tick() => broker.groups.tick(&broker).await,
            _ = transaction_tick.tick() => broker.transactions.tick(&broker).await,
            _ = metrics_fold.tick() => {
                let broker = broker.clone();
                let _ = tokio::task::spawn_blocking(move || broker.metrics.fold_samples()).await;
            }
            _ = checkpoint.tick() => {
                let broker = broker.clone();
                let written = tokio::task::spawn_blocking(move || broker.replicas.checkpoint_high_watermarks()).await;
                if let Ok(Err(error)) = written {
                    tracing::warn!(%error, "writing the high-watermark checkpoint failed");
                }
            }
            _ = shutdown.wait() => return,
        }
    }
}

/// The log cleaner: compacts logs with `cleanup.policy=compact`, one at a time, until shutdown.
///
/// The expensive part (reading the segments, writing the cleaned ones) runs without the log's
/// lock; only taking the job and installing its result hold it, so produce and fetch go on.
async fn log_cleaner(broker: Arc<Broker>, mut shutdown: Shutdown) {
    if !broker.config.log_cleaner_enable {
        return;
    }
    let mut backoff =
        tokio::time::interval(Duration::from_millis(broker.config.log_cleaner_backoff_ms));
    loop {
        tokio::select! {
            _ = backoff.tick() => {}
            _ = shutdown.wait() => return,
        }
        for partition in broker.replicas.all() {
            if shutdown.is_triggered() {
                return;
            }
            let Some(job) = partition.with_log(|log| log.compaction_job(now_ms())) else {
                continue;
            };
            let compacted = match tokio::task::spawn_blocking(move || job.run()).await {
                Ok(Ok(compacted)) => compacted,
                Ok(Err(error)) => {
                    tracing::error!(topic = %partition.topic, partition = partition.index, %error, "compaction failed");
                    continue;
                }
                Err(error) => {
                    tracing::error!(topic = %partition.topic, partition = partition.index, %error, "compaction panicked");
                    continue;
                }
            };
            // Installing renames files and fsyncs: off the reactor too.
            let installer = partition.clone();
            let installed = tokio::task::spawn_blocking(move || {
                installer.with_log(|log| log.install_compaction(compacted))
            })
            .await;
            let Ok(installed) = installed else {
                tracing::error!(topic = %partition.topic, partition = partition.index, "installing compaction panicked");
                continue;
            };
            match installed {
                Ok(outcome) if outcome.installed => tracing::info!(
                    topic = %partition.topic,
                    partition = partition.index,
                    bytes_before = outcome.bytes_before,
                    bytes_after = outcome.bytes_after,
                    records_removed = outcome.records_removed,
                    tombstones_removed = outcome.tombstones_removed,
                    "log compacted"
                ),
                Ok(_) => {
                    tracing::debug!(topic = %partition.topic, partition = partition.index, "compaction result discarded: the log changed meanwhile")
                }
                Err(error) => {
                    tracing::error!(topic = %partition.topic, partition = partition.index, %error, "installing compaction failed")
                }
            }
        }
    }
}

/// Whether the oldest unflushed message is older than `flush.ms`.
fn flush_due(log: &cauce_log::Log, now_ms: i64) -> bool {
    let flush_ms = log.config().flush_ms;
    log.unflushed_since_ms()
        .is_some_and(|since| flush_ms < i64::MAX as u64 && now_ms - since >= flush_ms as i64)
}

fn enforce_retention(broker: &Broker) {
    let now = now_ms();
    for partition in broker.replicas.all() {
        if let Err(error) = partition.with_log(|log| log.enforce_retention(now)) {
            tracing::error!(topic = %partition.topic, partition = partition.index, %error, "retention failed");
        }
    }
}
