//! Classic consumer-group calls over [`RawClient`], for tests that send the coordinator exactly
//! the request they mean: JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit,
//! OffsetFetch, DeleteGroups and FindCoordinator, a topic with several partitions, the
//! consumer protocol's subscription and assignment encodings, and the group error codes.
//!
//! The helpers return the broker's answers without judging them, except those named for a
//! successful outcome ([`form_single_member_group`]), which insist on it.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, ConsumerProtocolAssignment, ConsumerProtocolSubscription, CreateTopicsRequest,
    CreateTopicsResponse, DeleteGroupsRequest, DeleteGroupsResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest,
    SyncGroupResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::raw::{topic_name, CREATE_TOPICS_VERSION};
use crate::RawClient;

/// Kafka's group error codes, written out independently of the broker's own table.
pub mod error_codes {
    /// No error.
    pub const NONE: i16 = 0;
    /// A topic or partition the broker does not have.
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    /// Committed offset metadata longer than `offset.metadata.max.bytes`.
    pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    /// A generation that is not the group's current one.
    pub const ILLEGAL_GENERATION: i16 = 22;
    /// A protocol type or protocol set that does not fit the group's.
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    /// An empty (or null) group id where a group is needed.
    pub const INVALID_GROUP_ID: i16 = 24;
    /// A member id the group does not have.
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    /// A session timeout outside `group.min/max.session.timeout.ms`.
    pub const INVALID_SESSION_TIMEOUT: i16 = 26;
    /// A heartbeat while the group rebalances: the member must rejoin.
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    /// DeleteGroups of a group that still has members.
    pub const NON_EMPTY_GROUP: i16 = 68;
    /// A group the coordinator does not know.
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    /// JoinGroup v4+ without a member id: the answer carries one to join with.
    pub const MEMBER_ID_REQUIRED: i16 = 79;
}

/// JoinGroup v9: member ids required (v4+), static membership (v5+), protocol type and name in
/// the answer (v7+), and the reason field.
pub const JOIN_GROUP_VERSION: i16 = 9;
/// SyncGroup v5 carries the protocol type and name both ways.
pub const SYNC_GROUP_VERSION: i16 = 5;
/// The newest Heartbeat.
pub const HEARTBEAT_VERSION: i16 = 4;
/// LeaveGroup v5 leaves by a list of member identities.
pub const LEAVE_GROUP_VERSION: i16 = 5;
/// OffsetCommit v8: flexible, group instance id, no retention time.
pub const OFFSET_COMMIT_VERSION: i16 = 8;
/// OffsetFetch v7: one group per request, with the top-level error code.
pub const OFFSET_FETCH_VERSION: i16 = 7;
/// The newest DeleteGroups.
pub const DELETE_GROUPS_VERSION: i16 = 2;
/// FindCoordinator v4 looks up a batch of keys.
pub const FIND_COORDINATOR_VERSION: i16 = 4;

/// The protocol type of Kafka consumers.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";
/// The version of the consumer protocol's subscription and assignment the tests encode.
const CONSUMER_PROTOCOL_VERSION: i16 = 1;
/// A session timeout between the broker's default bounds, long enough that a test's member
/// never expires while the test runs.
pub const SESSION_TIMEOUT_MS: i32 = 30_000;
/// The rebalance timeout the tests' members ask for.
pub const REBALANCE_TIMEOUT_MS: i32 = 30_000;

/// Wraps a group id as the protocol messages want it.
pub fn group_id(text: &str) -> GroupId {
    GroupId(StrBytes::from_string(text.to_string()))
}

/// Wraps text as a protocol string.
pub fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

/// Creates `topic` with `partitions` partitions, insisting that it worked.
pub fn create_topic(client: &mut RawClient, topic: &str, partitions: i32) {
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(1)]);
    let response: CreateTopicsResponse =
        client.call(ApiKey::CreateTopics, CREATE_TOPICS_VERSION, &request);
    assert_eq!(
        response.topics[0].error_code, 0,
        "create {topic}: {:?}",
        response.topics[0].error_message
    );
}

/// A version-prefixed message of the consumer protocol, as consumers put it in JoinGroup and
/// SyncGroup.
fn encode_versioned<M: Encodable>(message: &M) -> Bytes {
    let mut bytes = BytesMut::new();
    bytes.put_i16(CONSUMER_PROTOCOL_VERSION);
    message
        .encode(&mut bytes, CONSUMER_PROTOCOL_VERSION)
        .unwrap();
    bytes.freeze()
}

/// A consumer's subscription to `topics`, encoded.
pub fn consumer_subscription(topics: &[&str]) -> Bytes {
    encode_versioned(
        &ConsumerProtocolSubscription::default()
            .with_topics(topics.iter().map(|topic| text(topic)).collect()),
    )
}

/// A consumer assignment of `partitions` of `topic`, encoded.
pub fn consumer_assignment(topic: &str, partitions: &[i32]) -> Bytes {
    encode_versioned(
        &ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
            AssignedTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(partitions.to_vec()),
        ]),
    )
}

/// Decodes an encoded consumer assignment into (topic, partitions) pairs.
pub fn decode_consumer_assignment(mut bytes: Bytes) -> Vec<(String, Vec<i32>)> {
    use bytes::Buf;
    let version = bytes.get_i16();
    let assignment = ConsumerProtocolAssignment::decode(&mut bytes, version).unwrap();
    assignment
        .assigned_partitions
        .into_iter()
        .map(|topic| (topic.topic.0.to_string(), topic.partitions))
        .collect()
}

/// A JoinGroup request with the tests' timeouts and one protocol per (name, metadata) pair.
pub fn join_group_request(
    group: &str,
    member_id: &str,
    protocol_type: &str,
    protocols: &[(&str, Bytes)],
) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(group_id(group))
        .with_session_timeout_ms(SESSION_TIMEOUT_MS)
        .with_rebalance_timeout_ms(REBALANCE_TIMEOUT_MS)
        .with_member_id(text(member_id))
        .with_protocol_type(text(protocol_type))
        .with_protocols(
            protocols
                .iter()
                .map(|(name, metadata)| {
                    JoinGroupRequestProtocol::default()
                        .with_name(text(name))
                        .with_metadata(metadata.clone())
                })
                .collect(),
        )
}

/// Sends JoinGroup and waits for the answer, which comes once the rebalance completes.
pub fn join_group(client: &mut RawClient, request: &JoinGroupRequest) -> JoinGroupResponse {
    client.call(ApiKey::JoinGroup, JOIN_GROUP_VERSION, request)
}

/// Sends SyncGroup for `member` of `generation` with the given (member, assignment) pairs.
pub fn sync_group(
    client: &mut RawClient,
    group: &str,
    member: &GroupMember,
    assignments: &[(&str, Bytes)],
) -> SyncGroupResponse {
    let request = SyncGroupRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id(member.generation_id)
        .with_member_id(text(&member.member_id))
        .with_protocol_type(Some(text(&member.protocol_type)))
        .with_protocol_name(Some(text(&member.protocol_name)))
        .with_assignments(
            assignments
                .iter()
                .map(|(member_id, assignment)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(text(member_id))
                        .with_assignment(assignment.clone())
                })
                .collect(),
        );
    client.call(ApiKey::SyncGroup, SYNC_GROUP_VERSION, &request)
}

/// Sends a Heartbeat as `member_id` of `generation_id` and returns its error code.
pub fn heartbeat(client: &mut RawClient, group: &str, member_id: &str, generation_id: i32) -> i16 {
    let request = HeartbeatRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id(generation_id)
        .with_member_id(text(member_id));
    let response: HeartbeatResponse = client.call(ApiKey::Heartbeat, HEARTBEAT_VERSION, &request);
    response.error_code
}

/// Sends LeaveGroup for `member_id` and returns the top-level and the member's error codes.
pub fn leave_group(client: &mut RawClient, group: &str, member_id: &str) -> (i16, i16) {
    let request = LeaveGroupRequest::default()
        .with_group_id(group_id(group))
        .with_members(vec![
            MemberIdentity::default().with_member_id(text(member_id))
        ]);
    let response: LeaveGroupResponse =
        client.call(ApiKey::LeaveGroup, LEAVE_GROUP_VERSION, &request);
    let member_error = response
        .members
        .first()
        .map(|member| member.error_code)
        .unwrap_or(i16::MIN);
    (response.error_code, member_error)
}

/// One partition's offset to commit.
#[derive(Debug, Clone)]
pub struct OffsetToCommit<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: i32,
    /// The next offset to consume.
    pub offset: i64,
    /// The metadata string committed with it.
    pub metadata: String,
}

/// Sends OffsetCommit as `member_id` of `generation_id` (-1 and "" for a commit from outside
/// group management) and returns each partition's (topic, partition, error code), in the
/// order the broker answered.
pub fn commit_offsets(
    client: &mut RawClient,
    group: &str,
    member_id: &str,
    generation_id: i32,
    offsets: &[OffsetToCommit<'_>],
) -> Vec<(String, i32, i16)> {
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for offset in offsets {
        let partition = OffsetCommitRequestPartition::default()
            .with_partition_index(offset.partition)
            .with_committed_offset(offset.offset)
            .with_committed_leader_epoch(-1)
            .with_committed_metadata(Some(text(&offset.metadata)));
        match topics
            .iter_mut()
            .find(|topic| topic.name.0.as_str() == offset.topic)
        {
            Some(topic) => topic.partitions.push(partition),
            None => topics.push(
                OffsetCommitRequestTopic::default()
                    .with_name(topic_name(offset.topic))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    let request = OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(generation_id)
        .with_member_id(text(member_id))
        .with_topics(topics);
    let response: OffsetCommitResponse =
        client.call(ApiKey::OffsetCommit, OFFSET_COMMIT_VERSION, &request);
    response
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(|partition| {
                (
                    topic.name.0.to_string(),
                    partition.partition_index,
                    partition.error_code,
                )
            })
        })
        .collect()
}

/// A committed offset as OffsetFetch reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The partition.
    pub partition: i32,
    /// The committed offset, -1 if none.
    pub offset: i64,
    /// Its metadata.
    pub metadata: Option<String>,
    /// The partition's error code.
    pub error_code: i16,
}

/// Fetches the group's committed offsets of `partitions` of `topic`; returns the top-level
/// error code and each partition's answer.
pub fn fetch_committed_offsets(
    client: &mut RawClient,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> (i16, Vec<CommittedOffset>) {
    let request = OffsetFetchRequest::default()
        .with_group_id(group_id(group))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partition_indexes(partitions.to_vec())]));
    let response: OffsetFetchResponse =
        client.call(ApiKey::OffsetFetch, OFFSET_FETCH_VERSION, &request);
    let offsets = response
        .topics
        .iter()
        .flat_map(|topic| topic.partitions.iter())
        .map(|partition| CommittedOffset {
            partition: partition.partition_index,
            offset: partition.committed_offset,
            metadata: partition.metadata.as_ref().map(|text| text.to_string()),
            error_code: partition.error_code,
        })
        .collect();
    (response.error_code, offsets)
}

/// Sends DeleteGroups for `groups` and returns each group's result.
pub fn delete_groups(client: &mut RawClient, groups: &[&str]) -> Vec<DeletableGroupResult> {
    let request = DeleteGroupsRequest::default()
        .with_groups_names(groups.iter().map(|group| group_id(group)).collect());
    let response: DeleteGroupsResponse =
        client.call(ApiKey::DeleteGroups, DELETE_GROUPS_VERSION, &request);
    response.results
}

/// FindCoordinator v4 for a batch of group ids; returns one coordinator entry per answer.
pub fn find_group_coordinators(client: &mut RawClient, groups: &[&str]) -> Vec<Coordinator> {
    let request = FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(groups.iter().map(|group| text(group)).collect());
    let response: FindCoordinatorResponse =
        client.call(ApiKey::FindCoordinator, FIND_COORDINATOR_VERSION, &request);
    response.coordinators
}

/// What a member needs to speak for itself in a generation.
#[derive(Debug, Clone)]
pub struct GroupMember {
    /// The member id the coordinator gave it.
    pub member_id: String,
    /// The generation it joined.
    pub generation_id: i32,
    /// The group's protocol type.
    pub protocol_type: String,
    /// The protocol the coordinator chose.
    pub protocol_name: String,
}

impl GroupMember {
    /// The member as a JoinGroup answer describes it, insisting that the join worked.
    pub fn from_join(response: &JoinGroupResponse, protocol_type: &str) -> GroupMember {
        assert_eq!(response.error_code, error_codes::NONE, "join: {response:?}");
        GroupMember {
            member_id: response.member_id.to_string(),
            generation_id: response.generation_id,
            protocol_type: protocol_type.to_string(),
            protocol_name: response
                .protocol_name
                .as_ref()
                .expect("a protocol name")
                .to_string(),
        }
    }
}

/// Joins `group` as a new member the way a v4+ client does: a first JoinGroup without member id
/// gets MEMBER_ID_REQUIRED and an id, the second joins with it. Insists that both steps worked
/// and returns the second answer.
pub fn join_as_new_member(
    client: &mut RawClient,
    group: &str,
    protocol_type: &str,
    protocols: &[(&str, Bytes)],
) -> JoinGroupResponse {
    let first = join_group(
        client,
        &join_group_request(group, "", protocol_type, protocols),
    );
    assert_eq!(
        first.error_code,
        error_codes::MEMBER_ID_REQUIRED,
        "first join without member id: {first:?}"
    );
    let response = join_group(
        client,
        &join_group_request(group, first.member_id.as_str(), protocol_type, protocols),
    );
    assert_eq!(
        response.error_code,
        error_codes::NONE,
        "join with the given member id: {response:?}"
    );
    response
}

/// Forms a stable one-member consumer group of `group` subscribed to `topic`, the member owning
/// partitions `owned`, and returns the member.
pub fn form_single_member_group(
    client: &mut RawClient,
    group: &str,
    topic: &str,
    owned: &[i32],
) -> GroupMember {
    let joined = join_as_new_member(
        client,
        group,
        CONSUMER_PROTOCOL_TYPE,
        &[("range", consumer_subscription(&[topic]))],
    );
    let member = GroupMember::from_join(&joined, CONSUMER_PROTOCOL_TYPE);
    assert_eq!(
        joined.leader.as_str(),
        member.member_id,
        "a lone member leads"
    );
    let synced = sync_group(
        client,
        group,
        &member,
        &[(&member.member_id, consumer_assignment(topic, owned))],
    );
    assert_eq!(synced.error_code, error_codes::NONE, "sync: {synced:?}");
    member
}
