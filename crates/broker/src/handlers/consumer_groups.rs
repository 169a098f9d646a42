//! ConsumerGroupHeartbeat and ConsumerGroupDescribe: the next-generation consumer protocol
//! (KIP-848), with assignment computed by the coordinator.

use cauce_metadata::MetadataImage;
use cauce_protocol::kafka::messages::consumer_group_describe_response::{
    self as describe_response, DescribedGroup, Member,
};
use cauce_protocol::kafka::messages::consumer_group_heartbeat_response::{
    self as heartbeat_response, Assignment,
};
use cauce_protocol::kafka::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, TopicName,
};
use cauce_protocol::ResponseError;

use super::{text, Context, Reply};
use crate::errors::consumer_group_error_code;
use crate::group::consumer_group::{self, HeartbeatRequest};

pub fn consumer_group_heartbeat(context: Context, request: ConsumerGroupHeartbeatRequest) -> Reply {
    if let Some(error) = super::groups::group_refusal(&context.broker, &request.group_id) {
        let message = if error == ResponseError::InvalidGroupId {
            "the group id is empty"
        } else {
            "this broker does not coordinate the group"
        };
        let response = ConsumerGroupHeartbeatResponse::default()
            .with_error_code(error.code())
            .with_error_message(Some(text(message)));
        return context.respond(&response);
    }
    let mut member_id = request.member_id.to_string();
    if member_id.is_empty() && request.member_epoch == 0 {
        // Version 0 let the coordinator name new members; later versions send their own id.
        member_id = uuid::Uuid::new_v4().simple().to_string();
    }
    let owned = request.topic_partitions.as_ref().map(|topics| {
        topics
            .iter()
            .map(|topic| (topic.topic_id, topic.partitions.iter().copied().collect()))
            .collect()
    });
    let heartbeat = HeartbeatRequest {
        member_id,
        member_epoch: request.member_epoch,
        instance_id: request.instance_id.as_ref().map(|id| id.to_string()),
        rack_id: request.rack_id.as_ref().map(|id| id.to_string()),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed_topic_names: request
            .subscribed_topic_names
            .as_ref()
            .map(|names| names.iter().map(|name| name.to_string()).collect()),
        server_assignor: request
            .server_assignor
            .as_ref()
            .map(|name| name.to_string()),
        owned,
        client_id: context
            .client_id
            .as_ref()
            .map_or(String::new(), |id| id.to_string()),
        client_host: format!("/{}", context.client.address.ip()),
    };
    let outcome =
        context
            .broker
            .groups
            .consumer_heartbeat(&context.broker, &request.group_id, heartbeat);
    let heartbeat_interval_ms = context
        .broker
        .groups
        .settings()
        .consumer_limits
        .heartbeat_interval_ms;
    let mut response = ConsumerGroupHeartbeatResponse::default()
        .with_member_id(Some(text(outcome.member_id)))
        .with_member_epoch(outcome.member_epoch)
        .with_heartbeat_interval_ms(heartbeat_interval_ms);
    if let Some(error) = outcome.error {
        response = response
            .with_error_code(consumer_group_error_code(error).code())
            .with_error_message(Some(text(format!("{error:?}"))));
    }
    if let Some(assignment) = outcome.assignment {
        let topic_partitions = assignment
            .into_iter()
            .map(|(topic_id, partitions)| {
                heartbeat_response::TopicPartitions::default()
                    .with_topic_id(topic_id)
                    .with_partitions(partitions.into_iter().collect())
            })
            .collect();
        response.assignment = Some(Assignment::default().with_topic_partitions(topic_partitions));
    }
    context.respond(&response)
}

fn described_assignment(
    image: &MetadataImage,
    assignment: &consumer_group::Assignment,
) -> describe_response::Assignment {
    let topic_partitions = assignment
        .iter()
        .map(|(topic_id, partitions)| {
            let name = image
                .topic_by_id(topic_id)
                .map_or(String::new(), |topic| topic.name.clone());
            describe_response::TopicPartitions::default()
                .with_topic_id(*topic_id)
                .with_topic_name(TopicName(text(name)))
                .with_partitions(partitions.iter().copied().collect())
        })
        .collect();
    describe_response::Assignment::default().with_topic_partitions(topic_partitions)
}

pub fn consumer_group_describe(context: Context, request: ConsumerGroupDescribeRequest) -> Reply {
    let image = context.broker.metadata.image();
    let groups = request
        .group_ids
        .iter()
        .map(|group_id| {
            let described = DescribedGroup::default()
                .with_group_id(group_id.clone())
                .with_authorized_operations(i32::MIN);
            let Some(group) = context.broker.groups.describe_consumer_group(group_id) else {
                return described
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(text(format!(
                        "group '{}' is not a consumer group",
                        group_id.as_str()
                    ))));
            };
            let members = group
                .members
                .values()
                .map(|member| {
                    let target = group
                        .target
                        .get(&member.member_id)
                        .cloned()
                        .unwrap_or_default();
                    Member::default()
                        .with_member_id(text(member.member_id.clone()))
                        .with_instance_id(member.instance_id.clone().map(text))
                        .with_rack_id(member.rack_id.clone().map(text))
                        .with_member_epoch(member.member_epoch)
                        .with_client_id(text(member.client_id.clone()))
                        .with_client_host(text(member.client_host.clone()))
                        .with_subscribed_topic_names(
                            member
                                .subscribed_topics
                                .iter()
                                .map(|name| TopicName(text(name.clone())))
                                .collect(),
                        )
                        .with_assignment(described_assignment(&image, &member.assigned))
                        .with_target_assignment(described_assignment(&image, &target))
                })
                .collect();
            described
                .with_group_state(text(group.state_name()))
                .with_group_epoch(group.group_epoch)
                .with_assignment_epoch(group.assignment_epoch)
                .with_assignor_name(text(group.assignor.clone()))
                .with_members(members)
        })
        .collect();
    context.respond(&ConsumerGroupDescribeResponse::default().with_groups(groups))
}
