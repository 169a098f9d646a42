//! FindCoordinator and the classic group membership APIs: JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, ListGroups, DescribeGroups, DeleteGroups.

use std::sync::Arc;

use cauce_protocol::kafka::messages::describe_groups_response::{
    DescribedGroup, DescribedGroupMember,
};
use cauce_protocol::kafka::messages::find_coordinator_response::Coordinator;
use cauce_protocol::kafka::messages::join_group_response::JoinGroupResponseMember;
use cauce_protocol::kafka::messages::leave_group_response::MemberResponse;
use cauce_protocol::kafka::messages::list_groups_response::ListedGroup;
use cauce_protocol::kafka::messages::{
    delete_groups_response, BrokerId, DeleteGroupsRequest, DeleteGroupsResponse,
    DescribeGroupsRequest, DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse,
    GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, SyncGroupRequest,
    SyncGroupResponse,
};
use cauce_protocol::ResponseError;

use super::{text, Context, Reply};
use crate::errors::group_error_code;
use crate::group::coordinator::OFFSETS_TOPIC;
use crate::group::state::JoinRequest;
use crate::txn::TRANSACTION_STATE_TOPIC;
use crate::{Broker, BrokerError};

/// FindCoordinator key type of consumer groups.
const GROUP_KEY_TYPE: i8 = 0;
/// FindCoordinator key type of transactional ids.
const TRANSACTION_KEY_TYPE: i8 = 1;
/// First FindCoordinator version that batches keys.
const BATCHED_FIND_COORDINATOR_VERSION: i16 = 4;
/// First JoinGroup version whose new members must learn their id first (KIP-394).
const KNOWN_MEMBER_ID_VERSION: i16 = 4;
/// First JoinGroup version with a nullable protocol name.
const NULLABLE_PROTOCOL_NAME_VERSION: i16 = 7;
/// First LeaveGroup version that names several members.
const BATCHED_LEAVE_VERSION: i16 = 3;

/// Whether a group id is acceptable; Kafka refuses an empty one.
fn valid_group_id(group_id: &str) -> bool {
    !group_id.is_empty()
}

/// Why this broker cannot serve a request for the group: an empty id, or the group is
/// coordinated elsewhere (or its partition is still loading here).
pub fn group_refusal(broker: &Broker, group_id: &str) -> Option<ResponseError> {
    if !valid_group_id(group_id) {
        Some(ResponseError::InvalidGroupId)
    } else if broker.groups.owns(broker, group_id) {
        None
    } else {
        let index = broker.groups.partition_of(group_id);
        let leads = broker
            .replicas
            .partition(OFFSETS_TOPIC, index)
            .is_some_and(|partition| partition.is_leader());
        // Led here but not replayed yet: the client retries soon rather than looking elsewhere.
        Some(if leads {
            ResponseError::CoordinatorLoadInProgress
        } else {
            ResponseError::NotCoordinator
        })
    }
}

/// Creates `__consumer_offsets` if it does not exist yet.
pub async fn offsets_topic_ready(broker: &Arc<Broker>) -> Result<(), BrokerError> {
    if broker.metadata.image().topic(OFFSETS_TOPIC).is_some() {
        return Ok(());
    }
    broker.groups.ensure_offsets_topic(broker).await
}

pub fn find_coordinator(context: Context, request: FindCoordinatorRequest) -> Reply {
    context.respond_later(|context| async move {
        let keys: Vec<String> = if context.version >= BATCHED_FIND_COORDINATOR_VERSION {
            request
                .coordinator_keys
                .iter()
                .map(|key| key.to_string())
                .collect()
        } else {
            vec![request.key.to_string()]
        };
        let key_type = request.key_type;
        let wanted = keys.iter().any(|key| !key.is_empty());
        let internal_topic = match key_type {
            GROUP_KEY_TYPE if wanted => offsets_topic_ready(&context.broker).await,
            TRANSACTION_KEY_TYPE if wanted => {
                context
                    .broker
                    .transactions
                    .ensure_topic(&context.broker)
                    .await
            }
            _ => Ok(()),
        };
        if let Err(error) = &internal_topic {
            tracing::warn!(%error, key_type, "a coordinator topic is not available");
        }
        let coordinators: Vec<Coordinator> = keys
            .into_iter()
            .map(|key| {
                let coordinator = Coordinator::default()
                    .with_key(text(key.clone()))
                    .with_node_id(BrokerId(-1))
                    .with_port(-1);
                let refused = |error: ResponseError, message: &str| {
                    coordinator
                        .clone()
                        .with_error_code(error.code())
                        .with_error_message(Some(text(message)))
                };
                let (topic, index) = match key_type {
                    GROUP_KEY_TYPE if valid_group_id(&key) => {
                        (OFFSETS_TOPIC, context.broker.groups.partition_of(&key))
                    }
                    GROUP_KEY_TYPE => {
                        return refused(ResponseError::InvalidGroupId, "the group id is empty")
                    }
                    TRANSACTION_KEY_TYPE if !key.is_empty() => (
                        TRANSACTION_STATE_TOPIC,
                        context.broker.transactions.partition_of(&key),
                    ),
                    TRANSACTION_KEY_TYPE => {
                        return refused(
                            ResponseError::InvalidRequest,
                            "the transactional id is empty",
                        )
                    }
                    _ => {
                        return refused(
                            ResponseError::InvalidRequest,
                            "unknown coordinator key type",
                        )
                    }
                };
                if internal_topic.is_err() {
                    return refused(
                        ResponseError::CoordinatorNotAvailable,
                        "the coordinator's internal topic is not available",
                    );
                }
                // The coordinator is the leader of the key's partition of the internal topic.
                let image = context.broker.metadata.image();
                let leader = image
                    .topic(topic)
                    .and_then(|topic| topic.partitions.get(index as usize))
                    .map(|partition| partition.leader)
                    .and_then(|leader| image.brokers.get(&leader))
                    .filter(|registration| !registration.fenced);
                match leader {
                    Some(registration) => coordinator
                        .with_node_id(BrokerId(registration.broker_id))
                        .with_host(text(registration.host.clone()))
                        .with_port(registration.port),
                    None => refused(
                        ResponseError::CoordinatorNotAvailable,
                        "the key's partition has no leader",
                    ),
                }
            })
            .collect();
        if context.version >= BATCHED_FIND_COORDINATOR_VERSION {
            return FindCoordinatorResponse::default().with_coordinators(coordinators);
        }
        let single = coordinators.into_iter().next().unwrap_or_default();
        FindCoordinatorResponse::default()
            .with_error_code(single.error_code)
            .with_error_message(single.error_message)
            .with_node_id(single.node_id)
            .with_host(single.host)
            .with_port(single.port)
    })
}

pub fn join_group(context: Context, request: JoinGroupRequest) -> Reply {
    let group_id = request.group_id.to_string();
    let refuse = |context: &Context, error: ResponseError, member_id: String| {
        let mut response = JoinGroupResponse::default()
            .with_error_code(error.code())
            .with_generation_id(-1)
            .with_member_id(text(member_id));
        if context.version < NULLABLE_PROTOCOL_NAME_VERSION {
            response.protocol_name = Some(text(""));
        }
        context.respond(&response)
    };
    if let Some(error) = group_refusal(&context.broker, &group_id) {
        return refuse(&context, error, request.member_id.to_string());
    }
    let join = JoinRequest {
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|id| id.to_string()),
        client_id: context
            .client_id
            .as_ref()
            .map_or(String::new(), |id| id.to_string()),
        client_host: format!("/{}", context.client.address.ip()),
        session_timeout_ms: request.session_timeout_ms,
        rebalance_timeout_ms: if context.version == 0 {
            request.session_timeout_ms
        } else {
            request.rebalance_timeout_ms
        },
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .iter()
            .map(|protocol| (protocol.name.to_string(), protocol.metadata.clone()))
            .collect(),
        require_known_member_id: context.version >= KNOWN_MEMBER_ID_VERSION,
    };
    Reply::Later(Box::pin(async move {
        if offsets_topic_ready(&context.broker).await.is_err() {
            return refuse(
                &context,
                ResponseError::CoordinatorNotAvailable,
                join.member_id,
            );
        }
        let receiver = context.broker.groups.join(&context.broker, &group_id, join);
        let Ok(outcome) = receiver.await else {
            return refuse(
                &context,
                ResponseError::CoordinatorNotAvailable,
                String::new(),
            );
        };
        if outcome.error.is_none() {
            tracing::debug!(group = %group_id, member = %outcome.member_id, generation = outcome.generation_id, "member joined");
        }
        let members = outcome
            .members
            .into_iter()
            .map(|(member_id, group_instance_id, metadata)| {
                JoinGroupResponseMember::default()
                    .with_member_id(text(member_id))
                    .with_group_instance_id(group_instance_id.map(text))
                    .with_metadata(metadata)
            })
            .collect();
        let mut response = JoinGroupResponse::default()
            .with_error_code(
                outcome
                    .error
                    .map_or(0, |error| group_error_code(error).code()),
            )
            .with_generation_id(outcome.generation_id)
            .with_protocol_type(outcome.protocol_type.map(text))
            .with_protocol_name(outcome.protocol_name.map(text))
            .with_leader(text(outcome.leader))
            .with_member_id(text(outcome.member_id))
            .with_members(members)
            .with_skip_assignment(outcome.skip_assignment && context.version >= 9);
        if context.version < NULLABLE_PROTOCOL_NAME_VERSION && response.protocol_name.is_none() {
            response.protocol_name = Some(text(""));
        }
        context.respond(&response)
    }))
}

pub fn sync_group(context: Context, request: SyncGroupRequest) -> Reply {
    let group_id = request.group_id.to_string();
    if let Some(error) = group_refusal(&context.broker, &group_id) {
        return context.respond(&SyncGroupResponse::default().with_error_code(error.code()));
    }
    let assignments = request
        .assignments
        .iter()
        .map(|assignment| {
            (
                assignment.member_id.to_string(),
                assignment.assignment.clone(),
            )
        })
        .collect();
    let receiver = context.broker.groups.sync(
        &context.broker,
        &group_id,
        &request.member_id,
        request.group_instance_id.as_deref(),
        request.generation_id,
        request.protocol_type.as_deref(),
        request.protocol_name.as_deref(),
        assignments,
    );
    Reply::Later(Box::pin(async move {
        let response = match receiver.await {
            Ok(outcome) => SyncGroupResponse::default()
                .with_error_code(
                    outcome
                        .error
                        .map_or(0, |error| group_error_code(error).code()),
                )
                .with_protocol_type(outcome.protocol_type.map(text))
                .with_protocol_name(outcome.protocol_name.map(text))
                .with_assignment(outcome.assignment),
            Err(_) => SyncGroupResponse::default()
                .with_error_code(ResponseError::CoordinatorNotAvailable.code()),
        };
        context.respond(&response)
    }))
}

pub fn heartbeat(context: Context, request: HeartbeatRequest) -> Reply {
    let result = if let Some(error) = group_refusal(&context.broker, &request.group_id) {
        Err(error)
    } else {
        context
            .broker
            .groups
            .heartbeat(
                &context.broker,
                &request.group_id,
                &request.member_id,
                request.group_instance_id.as_deref(),
                request.generation_id,
            )
            .map_err(group_error_code)
    };
    let code = result.err().map_or(0, |error| error.code());
    context.respond(&HeartbeatResponse::default().with_error_code(code))
}

pub fn leave_group(context: Context, request: LeaveGroupRequest) -> Reply {
    if let Some(error) = group_refusal(&context.broker, &request.group_id) {
        return context.respond(&LeaveGroupResponse::default().with_error_code(error.code()));
    }
    let batched = context.version >= BATCHED_LEAVE_VERSION;
    let members: Vec<(String, Option<String>)> = if batched {
        request
            .members
            .iter()
            .map(|member| {
                (
                    member.member_id.to_string(),
                    member.group_instance_id.as_ref().map(|id| id.to_string()),
                )
            })
            .collect()
    } else {
        vec![(request.member_id.to_string(), None)]
    };
    let results = context
        .broker
        .groups
        .leave(&context.broker, &request.group_id, &members);
    if !batched {
        let code = results
            .first()
            .and_then(|result| result.err())
            .map_or(0, |error| group_error_code(error).code());
        return context.respond(&LeaveGroupResponse::default().with_error_code(code));
    }
    let responses = members
        .into_iter()
        .zip(results)
        .map(|((member_id, group_instance_id), result)| {
            MemberResponse::default()
                .with_member_id(text(member_id))
                .with_group_instance_id(group_instance_id.map(text))
                .with_error_code(
                    result
                        .err()
                        .map_or(0, |error| group_error_code(error).code()),
                )
        })
        .collect();
    context.respond(&LeaveGroupResponse::default().with_members(responses))
}

pub fn list_groups(context: Context, request: ListGroupsRequest) -> Reply {
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|state| state.to_lowercase())
        .collect();
    let types: Vec<String> = request
        .types_filter
        .iter()
        .map(|kind| kind.to_lowercase())
        .collect();
    let groups = context
        .broker
        .groups
        .list()
        .into_iter()
        .filter(|(_, _, state, _)| states.is_empty() || states.contains(&state.to_lowercase()))
        .filter(|(_, _, _, kind)| types.is_empty() || types.iter().any(|wanted| wanted == kind))
        .map(|(group_id, protocol_type, state, kind)| {
            let mut listed = ListedGroup::default()
                .with_group_id(GroupId(text(group_id)))
                .with_protocol_type(text(protocol_type));
            if context.version >= 4 {
                listed.group_state = text(state);
            }
            if context.version >= 5 {
                listed.group_type = text(kind);
            }
            listed
        })
        .collect();
    context.respond(&ListGroupsResponse::default().with_groups(groups))
}

pub fn describe_groups(context: Context, request: DescribeGroupsRequest) -> Reply {
    let groups = request
        .groups
        .iter()
        .map(|group_id| {
            let described = DescribedGroup::default()
                .with_group_id(group_id.clone())
                .with_authorized_operations(i32::MIN);
            if let Some(error) = group_refusal(&context.broker, group_id) {
                return described.with_error_code(error.code());
            }
            let Some(description) = context.broker.groups.describe(group_id) else {
                // Kafka describes an unknown group as a dead one, without an error.
                return described.with_group_state(text("Dead"));
            };
            let members = description
                .members
                .iter()
                .map(|member| {
                    let metadata = member
                        .protocols
                        .iter()
                        .find(|(name, _)| *name == description.protocol_name)
                        .map(|(_, metadata)| metadata.clone())
                        .unwrap_or_default();
                    DescribedGroupMember::default()
                        .with_member_id(text(member.member_id.clone()))
                        .with_group_instance_id(member.group_instance_id.clone().map(text))
                        .with_client_id(text(member.client_id.clone()))
                        .with_client_host(text(member.client_host.clone()))
                        .with_member_metadata(metadata)
                        .with_member_assignment(member.assignment.clone())
                })
                .collect();
            described
                .with_group_state(text(description.phase.kafka_name()))
                .with_protocol_type(text(description.protocol_type))
                .with_protocol_data(text(description.protocol_name))
                .with_members(members)
        })
        .collect();
    context.respond(&DescribeGroupsResponse::default().with_groups(groups))
}

pub fn delete_groups(context: Context, request: DeleteGroupsRequest) -> Reply {
    Reply::Later(Box::pin(async move {
        let mut results = Vec::new();
        for group_id in &request.groups_names {
            let result = match group_refusal(&context.broker, group_id) {
                Some(error) => Err(error),
                None => context
                    .broker
                    .groups
                    .delete(&context.broker, group_id)
                    .await
                    .map_err(group_error_code),
            };
            results.push(
                delete_groups_response::DeletableGroupResult::default()
                    .with_group_id(group_id.clone())
                    .with_error_code(result.err().map_or(0, |error| error.code())),
            );
        }
        context.respond(&DeleteGroupsResponse::default().with_results(results))
    }))
}
