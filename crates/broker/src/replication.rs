//! The metadata applier ([`follow_leaders`]), and the followers it starts: a broker that holds
//! a replica of a partition led elsewhere fetches its data from the leader with the Fetch API,
//! as Kafka's replica fetchers do.
//!
//! One fetcher task per leader broker fetches every partition this broker follows there. When
//! it starts following a partition (or its leader epoch changes), it first asks the leader
//! with OffsetForLeaderEpoch where its latest epoch ends, and cuts its log back to that point
//! (KIP-101): whatever it has beyond was never committed. Then it fetches from its log end,
//! appends the batches as they come (offsets and epochs are the leader's), and adopts the
//! leader's high watermark. Its fetch offsets tell the leader where its log ends, which moves the
//! leader's high watermark and decides whether it is in sync.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use cauce_client::{ClientError, ClientOptions, Connection};
use cauce_metadata::MetadataImage;
use cauce_protocol::kafka::messages::fetch_request::{FetchPartition, FetchTopic};
use cauce_protocol::kafka::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use cauce_protocol::kafka::messages::{
    BrokerId, FetchRequest, FetchResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse, TopicName,
};
use cauce_protocol::kafka::protocol::StrBytes;
use cauce_protocol::ResponseError;
use tokio::sync::watch;

use crate::partition::Partition;
use crate::shutdown::Shutdown;
use crate::Broker;

/// Fetch version the followers speak: topics by name, the replica id in the request body.
const FETCH_VERSION: i16 = 12;
/// OffsetForLeaderEpoch version the followers speak: names the replica.
const OFFSET_FOR_LEADER_EPOCH_VERSION: i16 = 4;
/// Most bytes one replica fetch asks for over all partitions.
const FETCH_MAX_BYTES: i32 = 16 * 1024 * 1024;
/// Pause after a failed connection or an error answer, before trying again.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// How long a request to a leader may take beyond the fetch's own wait.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A partition this broker follows, at the leader epoch it was told.
#[derive(Clone)]
struct Followed {
    /// The local replica.
    partition: Arc<Partition>,
    /// The leader epoch of the assignment being followed.
    leader_epoch: i32,
}

/// The metadata applier, the one task that applies committed metadata to this broker, on a
/// single node and in a cluster alike: for each image, opens, closes and reconfigures
/// partitions, moves leaderships and coordinator shards ([`Broker::apply_metadata`]), then
/// runs a fetcher for every leader this broker follows partitions of; until shutdown.
pub async fn follow_leaders(broker: Arc<Broker>, mut shutdown: Shutdown) {
    let mut images = broker.metadata.subscribe();
    let mut fetchers: HashMap<i32, watch::Sender<Vec<Followed>>> = HashMap::new();
    loop {
        let image = images.borrow_and_update().clone();
        let applier = broker.clone();
        let applied = image.clone();
        let synced = tokio::task::spawn_blocking(move || applier.apply_metadata(&applied)).await;
        match synced {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::error!(%error, "applying the metadata image to the logs failed")
            }
            // The hosted logs stay as they were; changes waiting on them time out.
            Err(error) => tracing::error!(%error, "applying the metadata image panicked"),
        }
        let wanted = followed_by_leader(&broker, &image);
        fetchers.retain(|leader, partitions| {
            let keep = wanted.contains_key(leader);
            if !keep {
                // Dropping the sender stops the fetcher.
                partitions.send_replace(Vec::new());
            }
            keep
        });
        for (leader, (address, partitions)) in wanted {
            match fetchers.get(&leader) {
                Some(sender) => {
                    sender.send_replace(partitions);
                }
                None => {
                    let (sender, receiver) = watch::channel(partitions);
                    tokio::spawn(fetch_from(
                        broker.clone(),
                        leader,
                        address,
                        receiver,
                        shutdown.clone(),
                    ));
                    fetchers.insert(leader, sender);
                }
            }
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            changed = images.changed() => if changed.is_err() { return },
        }
    }
}

/// The partitions this broker follows, grouped by their live leader, with its address.
fn followed_by_leader(
    broker: &Broker,
    image: &MetadataImage,
) -> BTreeMap<i32, (String, Vec<Followed>)> {
    let node_id = broker.config.node_id;
    let mut by_leader: BTreeMap<i32, (String, Vec<Followed>)> = BTreeMap::new();
    for topic in image.topics.values() {
        for assignment in &topic.partitions {
            let leader = assignment.leader;
            if leader == node_id || leader < 0 || !assignment.replicas.contains(&node_id) {
                continue;
            }
            let (Some(registration), Some(partition)) = (
                image.brokers.get(&leader),
                broker.replicas.partition(&topic.name, assignment.partition),
            ) else {
                continue;
            };
            let address = format!("{}:{}", registration.host, registration.port);
            by_leader
                .entry(leader)
                .or_insert_with(|| (address, Vec::new()))
                .1
                .push(Followed {
                    partition,
                    leader_epoch: assignment.leader_epoch,
                });
        }
    }
    by_leader
}

/// One leader's fetcher: truncates newly followed partitions, then fetches them in a loop.
async fn fetch_from(
    broker: Arc<Broker>,
    leader: i32,
    address: String,
    mut partitions: watch::Receiver<Vec<Followed>>,
    mut shutdown: Shutdown,
) {
    // The epoch each partition was last reconciled with the leader at.
    let mut reconciled: HashMap<(String, i32), i32> = HashMap::new();
    let mut connection: Option<Connection> = None;
    loop {
        let followed = partitions.borrow_and_update().clone();
        if followed.is_empty() {
            return;
        }
        let round = async {
            let peer = match connection.as_mut() {
                Some(peer) => peer,
                None => connection.insert(
                    connect_to_leader(
                        &address,
                        broker.config.node_id,
                        broker.config.socket_request_max_bytes,
                    )
                    .await
                    .map_err(|error| error.to_string())?,
                ),
            };
            reconcile(peer, &broker, &followed, &mut reconciled).await?;
            fetch_once(peer, &broker, &followed).await
        };
        let outcome = tokio::select! {
            _ = shutdown.wait() => return,
            outcome = round => outcome,
        };
        if let Err(error) = outcome {
            tracing::debug!(leader, %address, %error, "replica fetch failed; retrying");
            connection = None;
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(RETRY_PAUSE) => {}
            }
        }
    }
}

/// Cuts back every partition not yet reconciled at its current epoch to where the leader says
/// its latest local epoch ends.
async fn reconcile(
    peer: &mut Connection,
    broker: &Broker,
    followed: &[Followed],
    reconciled: &mut HashMap<(String, i32), i32>,
) -> Result<(), String> {
    let pending: Vec<&Followed> = followed
        .iter()
        .filter(|each| {
            let key = (each.partition.topic.clone(), each.partition.index);
            reconciled.get(&key) != Some(&each.leader_epoch)
        })
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    let mut topics: BTreeMap<&str, Vec<OffsetForLeaderPartition>> = BTreeMap::new();
    let mut asked = Vec::new();
    for each in &pending {
        let key = (each.partition.topic.clone(), each.partition.index);
        match each.partition.with_log(|log| log.latest_epoch()) {
            Some(epoch) => {
                topics.entry(&each.partition.topic).or_default().push(
                    OffsetForLeaderPartition::default()
                        .with_partition(each.partition.index)
                        .with_current_leader_epoch(each.leader_epoch)
                        .with_leader_epoch(epoch),
                );
                asked.push(each);
            }
            // An empty log has nothing to cut.
            None => {
                reconciled.insert(key, each.leader_epoch);
            }
        }
    }
    if asked.is_empty() {
        return Ok(());
    }
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(broker.config.node_id))
        .with_topics(
            topics
                .into_iter()
                .map(|(topic, partitions)| {
                    OffsetForLeaderTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let response: OffsetForLeaderEpochResponse = peer
        .call_version_within(OFFSET_FOR_LEADER_EPOCH_VERSION, &request, REQUEST_TIMEOUT)
        .await
        .map_err(|error| error.to_string())?;
    for topic in &response.topics {
        for answer in &topic.partitions {
            let Some(each) = asked.iter().find(|each| {
                each.partition.topic == topic.topic.as_str()
                    && each.partition.index == answer.partition
            }) else {
                continue;
            };
            if answer.error_code != 0 || answer.end_offset < 0 {
                // Asked again at the next round; a leader that has not caught up with its
                // election answers NOT_LEADER or an unknown epoch for a moment.
                continue;
            }
            let partition = &each.partition;
            let end = partition.log_end_offset();
            if answer.end_offset < end {
                tracing::info!(topic = %partition.topic, partition = partition.index, from = end, to = answer.end_offset, "follower truncating to the leader's epoch end");
                partition
                    .truncate_to(answer.end_offset)
                    .map_err(|error| error.to_string())?;
            }
            reconciled.insert(
                (partition.topic.clone(), partition.index),
                each.leader_epoch,
            );
        }
    }
    Ok(())
}

/// One replica fetch for every followed partition that is reconciled; appends what comes.
async fn fetch_once(
    peer: &mut Connection,
    broker: &Broker,
    followed: &[Followed],
) -> Result<(), String> {
    let mut topics: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
    for each in followed {
        topics.entry(&each.partition.topic).or_default().push(
            FetchPartition::default()
                .with_partition(each.partition.index)
                .with_current_leader_epoch(each.leader_epoch)
                .with_fetch_offset(each.partition.log_end_offset())
                .with_log_start_offset(-1)
                .with_last_fetched_epoch(-1)
                .with_partition_max_bytes(broker.config.replica_fetch_max_bytes),
        );
    }
    let wait = broker.config.replica_fetch_wait_max_ms.max(0);
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(broker.config.node_id))
        .with_max_wait_ms(wait)
        .with_min_bytes(1)
        .with_max_bytes(FETCH_MAX_BYTES)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(topic, partitions)| {
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let timeout = REQUEST_TIMEOUT + Duration::from_millis(wait as u64);
    let response: FetchResponse = peer
        .call_version_within(FETCH_VERSION, &request, timeout)
        .await
        .map_err(|error| error.to_string())?;
    if response.error_code != 0 {
        return Err(format!("fetch refused with error {}", response.error_code));
    }
    let now = crate::now_ms();
    let mut refused = None;
    for topic in &response.responses {
        for data in &topic.partitions {
            let Some(each) = followed.iter().find(|each| {
                each.partition.topic == topic.topic.as_str()
                    && each.partition.index == data.partition_index
            }) else {
                continue;
            };
            let partition = &each.partition;
            if data.error_code != 0 {
                refused = Some(data.error_code);
                if data.error_code == ResponseError::OffsetOutOfRange.code()
                    && data.log_start_offset > partition.log_end_offset()
                {
                    // The leader deleted what this replica lacks: start where it starts.
                    partition
                        .reset_to(data.log_start_offset)
                        .map_err(|error| error.to_string())?;
                }
                continue;
            }
            if let Some(records) = data.records.as_ref().filter(|records| !records.is_empty()) {
                let mut records = BytesMut::from(records.as_ref());
                partition
                    .append_replicated(&mut records, now)
                    .map_err(|error| format!("{}-{}: {error}", partition.topic, partition.index))?;
            }
            partition.follow_high_watermark(data.high_watermark);
        }
    }
    if let Some(code) = refused {
        // Most likely the leadership moved; the next image says where. Do not spin meanwhile.
        tracing::debug!(code, "leader refused part of a replica fetch");
        tokio::time::sleep(RETRY_PAUSE).await;
    }
    Ok(())
}

/// Opens a connection to the leader at `address` as a replica of node `node_id`.
async fn connect_to_leader(
    address: &str,
    node_id: i32,
    max_response_bytes: usize,
) -> Result<Connection, ClientError> {
    let options = ClientOptions {
        client_id: format!("cauce-replica-{node_id}"),
        connect_timeout: REQUEST_TIMEOUT,
        request_timeout: REQUEST_TIMEOUT,
        // `socket.request.max.bytes`: the other broker is a peer, not a trusted source of
        // allocation sizes.
        max_response_bytes,
        // The versions are pinned above and the leader is a node of this cluster: asking it
        // first would only add a round trip to every reconnection.
        negotiate_versions: false,
    };
    Connection::connect(address, &options).await
}
