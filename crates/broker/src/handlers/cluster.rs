//! DescribeCluster (the brokers and the controller) and DescribeQuorum (the controller quorum,
//! KIP-595 and KIP-836).

use cauce_metadata::command::{CommandOutcome, Election, MetadataCommand};
use cauce_metadata::quorum::{QuorumDescription, ReplicaDescription};
use cauce_protocol::kafka::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use cauce_protocol::kafka::messages::describe_cluster_response::DescribeClusterBroker;
use cauce_protocol::kafka::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use cauce_protocol::kafka::messages::elect_leaders_response::{
    PartitionResult, ReplicaElectionResult,
};
use cauce_protocol::kafka::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use cauce_protocol::kafka::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    DescribeClusterRequest, DescribeClusterResponse, DescribeQuorumRequest, DescribeQuorumResponse,
    ElectLeadersRequest, ElectLeadersResponse, ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse, TopicName,
};
use cauce_protocol::ResponseError;

use super::{text, Context, Reply};

/// The name Kafka gives the metadata log in DescribeQuorum.
const METADATA_TOPIC: &str = "__cluster_metadata";

pub fn describe_cluster(context: Context, _request: DescribeClusterRequest) -> Reply {
    let image = context.broker.metadata.image();
    let brokers = image
        .brokers
        .values()
        .filter(|registration| !registration.fenced)
        .map(|registration| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(registration.broker_id))
                .with_host(text(registration.host.clone()))
                .with_port(registration.port)
                .with_rack(registration.rack.clone().map(text))
        })
        .collect();
    let controller = context
        .broker
        .metadata
        .active_controller()
        .unwrap_or(context.broker.config.node_id);
    let response = DescribeClusterResponse::default()
        .with_cluster_id(text(image.cluster_id.clone()))
        .with_controller_id(BrokerId(controller))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(i32::MIN);
    context.respond(&response)
}

/// The election type of an unclean ElectLeaders (0 is preferred).
const UNCLEAN_ELECTION: i8 = 1;

/// ElectLeaders (KIP-183, KIP-460): preferred or unclean leader elections, decided by the
/// active controller.
pub fn elect_leaders(context: Context, request: ElectLeadersRequest) -> Reply {
    let unclean = context.version >= 1 && request.election_type == UNCLEAN_ELECTION;
    let partitions = request.topic_partitions.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|topic| {
                topic
                    .partitions
                    .iter()
                    .map(|index| (topic.topic.to_string(), *index))
            })
            .collect()
    });
    context.respond_later(|context| async move {
        let command = MetadataCommand::ElectLeaders {
            unclean,
            partitions,
        };
        match context.broker.metadata.execute(command).await {
            Ok(CommandOutcome::Elections(results)) => election_response(results, unclean),
            Ok(_) => ElectLeadersResponse::default()
                .with_error_code(ResponseError::UnknownServerError.code()),
            Err(error) => ElectLeadersResponse::default()
                .with_error_code(crate::errors::metadata_error_code(&error).code()),
        }
    })
}

fn election_response(results: Vec<(String, i32, Election)>, unclean: bool) -> ElectLeadersResponse {
    let mut by_topic: std::collections::BTreeMap<String, Vec<PartitionResult>> =
        std::collections::BTreeMap::new();
    for (topic, partition, election) in results {
        let (error, message) = match election {
            Election::Elected => (None, None),
            Election::NotNeeded => (Some(ResponseError::ElectionNotNeeded), None),
            Election::NotAvailable if unclean => (
                Some(ResponseError::EligibleLeadersNotAvailable),
                Some("no replica of the partition is live"),
            ),
            Election::NotAvailable => (
                Some(ResponseError::PreferredLeaderNotAvailable),
                Some("the preferred replica is not live or not in sync"),
            ),
            Election::UnknownPartition => (Some(ResponseError::UnknownTopicOrPartition), None),
        };
        by_topic.entry(topic).or_default().push(
            PartitionResult::default()
                .with_partition_id(partition)
                .with_error_code(error.map_or(0, |error| error.code()))
                .with_error_message(message.map(text)),
        );
    }
    ElectLeadersResponse::default().with_replica_election_results(
        by_topic
            .into_iter()
            .map(|(topic, partitions)| {
                ReplicaElectionResult::default()
                    .with_topic(TopicName(text(topic)))
                    .with_partition_result(partitions)
            })
            .collect(),
    )
}

/// Describes the quorum as its leader knows it (another node asks the leader, as Kafka's
/// brokers forward DescribeQuorum to the controller). A single node is a quorum of one whose
/// log is its own.
pub fn describe_quorum(context: Context, request: DescribeQuorumRequest) -> Reply {
    let asked_for_metadata_log = request.topics.iter().any(|topic| {
        topic.topic_name.as_str() == METADATA_TOPIC
            && topic
                .partitions
                .iter()
                .any(|partition| partition.partition_index == 0)
    });
    if !asked_for_metadata_log {
        let response = DescribeQuorumResponse::default()
            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
            .with_error_message(Some(text(format!(
                "only {METADATA_TOPIC} partition 0 has a quorum"
            ))));
        return context.respond(&response);
    }
    Reply::Later(Box::pin(async move {
        let description = match &context.broker.quorum {
            Some(quorum) => crate::cluster::describe_quorum(&context.broker, quorum).await,
            None => single_node_quorum(&context),
        };
        let response = quorum_response(&description);
        context.respond(&response)
    }))
}

/// A single node: itself, the only voter, leading at epoch 1 with every record committed.
fn single_node_quorum(context: &Context) -> QuorumDescription {
    let node_id = context.broker.config.node_id as u64;
    let applied = context.broker.metadata.image().records_applied;
    let now = crate::now_ms() as u64;
    QuorumDescription {
        leader: Some(node_id),
        leader_epoch: 1,
        high_watermark: applied,
        voters: vec![ReplicaDescription {
            node_id,
            address: String::new(),
            log_end_offset: Some(applied),
            last_fetch_ms: Some(now),
            last_caught_up_ms: Some(now),
        }],
        learners: Vec::new(),
    }
}

fn quorum_response(description: &QuorumDescription) -> DescribeQuorumResponse {
    let replica = |replica: &ReplicaDescription| {
        let known = |value: Option<u64>| value.map_or(-1, |value| value as i64);
        ReplicaState::default()
            .with_replica_id(BrokerId(replica.node_id as i32))
            .with_log_end_offset(known(replica.log_end_offset))
            .with_last_fetch_timestamp(known(replica.last_fetch_ms))
            .with_last_caught_up_timestamp(known(replica.last_caught_up_ms))
    };
    let partition = PartitionData::default()
        .with_partition_index(0)
        .with_leader_id(BrokerId(
            description.leader.map_or(-1, |leader| leader as i32),
        ))
        .with_leader_epoch(description.leader_epoch as i32)
        .with_high_watermark(description.high_watermark as i64)
        .with_current_voters(description.voters.iter().map(replica).collect())
        .with_observers(description.learners.iter().map(replica).collect());
    let nodes = description
        .voters
        .iter()
        .chain(&description.learners)
        .filter_map(|member| {
            let (host, port) = member.address.rsplit_once(':')?;
            let listener = Listener::default()
                .with_name(text("CONTROLLER"))
                .with_host(text(host.to_string()))
                .with_port(port.parse().ok()?);
            Some(
                Node::default()
                    .with_node_id(BrokerId(member.node_id as i32))
                    .with_listeners(vec![listener]),
            )
        })
        .collect();
    DescribeQuorumResponse::default()
        .with_topics(vec![TopicData::default()
            .with_topic_name(TopicName(text(METADATA_TOPIC)))
            .with_partitions(vec![partition])])
        .with_nodes(nodes)
}

/// AlterPartitionReassignments (KIP-455): each partition's new replica list, or a null list
/// that cancels its reassignment in progress, goes to the active controller.
pub fn alter_partition_reassignments(
    context: Context,
    request: AlterPartitionReassignmentsRequest,
) -> Reply {
    context.respond_later(|context| async move {
        let mut responses = Vec::with_capacity(request.topics.len());
        for topic in &request.topics {
            let mut partitions = Vec::with_capacity(topic.partitions.len());
            for partition in &topic.partitions {
                let command = match &partition.replicas {
                    None => MetadataCommand::CancelReassignment {
                        topic: topic.name.to_string(),
                        partition: partition.partition_index,
                    },
                    Some(replicas) => MetadataCommand::Reassign {
                        topic: topic.name.to_string(),
                        partition: partition.partition_index,
                        target: replicas.iter().map(|id| id.0).collect(),
                    },
                };
                let (error, message) = match context.broker.metadata.execute(command).await {
                    Ok(_) => (0, None),
                    Err(error) => (
                        crate::errors::metadata_error_code(&error).code(),
                        Some(text(error.to_string())),
                    ),
                };
                partitions.push(
                    ReassignablePartitionResponse::default()
                        .with_partition_index(partition.partition_index)
                        .with_error_code(error)
                        .with_error_message(message),
                );
            }
            responses.push(
                ReassignableTopicResponse::default()
                    .with_name(topic.name.clone())
                    .with_partitions(partitions),
            );
        }
        AlterPartitionReassignmentsResponse::default().with_responses(responses)
    })
}

/// ListPartitionReassignments (KIP-455): the reassignments in progress, with the replicas
/// joining and leaving.
pub fn list_partition_reassignments(
    context: Context,
    request: ListPartitionReassignmentsRequest,
) -> Reply {
    let image = context.broker.metadata.image();
    let wanted = |topic: &str, partition: i32| match &request.topics {
        None => true,
        Some(topics) => topics.iter().any(|wanted| {
            wanted.name.as_str() == topic && wanted.partition_indexes.contains(&partition)
        }),
    };
    let ids = |replicas: &[i32]| replicas.iter().copied().map(BrokerId).collect::<Vec<_>>();
    let topics = image
        .topics
        .values()
        .filter_map(|topic| {
            let ongoing: Vec<OngoingPartitionReassignment> = topic
                .partitions
                .iter()
                .filter(|partition| partition.reassignment_target().is_some())
                .filter(|partition| wanted(&topic.name, partition.partition))
                .map(|partition| {
                    OngoingPartitionReassignment::default()
                        .with_partition_index(partition.partition)
                        .with_replicas(ids(&partition.replicas))
                        .with_adding_replicas(ids(&partition.adding_replicas))
                        .with_removing_replicas(ids(&partition.removing_replicas))
                })
                .collect();
            (!ongoing.is_empty()).then(|| {
                OngoingTopicReassignment::default()
                    .with_name(TopicName(text(topic.name.clone())))
                    .with_partitions(ongoing)
            })
        })
        .collect();
    context.respond(&ListPartitionReassignmentsResponse::default().with_topics(topics))
}
