//! Group administration over the wire: several groups in one OffsetFetch, ListGroups state
//! filters, OffsetDelete, and group membership surviving a broker kill -9.

use cauce_integration_tests::group_protocol::{
    commit_offsets, create_topic, form_single_member_group, group_id, heartbeat, text,
    OffsetToCommit,
};
use cauce_integration_tests::{BrokerProcess, RawClient};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    ApiKey, DescribeGroupsRequest, DescribeGroupsResponse, ListGroupsRequest, ListGroupsResponse,
    OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};

const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;

fn commit(client: &mut RawClient, group: &str, topic: &str, partition: i32, offset: i64) {
    let results = commit_offsets(
        client,
        group,
        "",
        -1,
        &[OffsetToCommit {
            topic,
            partition,
            offset,
            metadata: format!("m{offset}"),
        }],
    );
    assert!(
        results.iter().all(|(_, _, code)| *code == 0),
        "commit: {results:?}"
    );
}

#[test]
fn offset_fetch_answers_several_groups_in_one_request() {
    let broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "multi", 2);
    commit(&mut client, "group-a", "multi", 0, 10);
    commit(&mut client, "group-b", "multi", 1, 20);
    let request = OffsetFetchRequest::default().with_groups(vec![
        OffsetFetchRequestGroup::default()
            .with_group_id(group_id("group-a"))
            .with_topics(None),
        OffsetFetchRequestGroup::default()
            .with_group_id(group_id("group-b"))
            .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                .with_name(TopicName(text("multi")))
                .with_partition_indexes(vec![0, 1])])),
    ]);
    let response: OffsetFetchResponse = client.call(ApiKey::OffsetFetch, 8, &request);
    assert_eq!(response.groups.len(), 2);
    let a = &response.groups[0];
    assert_eq!(a.group_id.as_str(), "group-a");
    let a_partitions: Vec<(i32, i64, String)> = a.topics[0]
        .partitions
        .iter()
        .map(|partition| {
            (
                partition.partition_index,
                partition.committed_offset,
                partition.metadata.as_ref().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(a_partitions, vec![(0, 10, "m10".to_string())]);
    let b: Vec<(i32, i64)> = response.groups[1].topics[0]
        .partitions
        .iter()
        .map(|partition| (partition.partition_index, partition.committed_offset))
        .collect();
    assert_eq!(
        b,
        vec![(0, -1), (1, 20)],
        "an uncommitted partition answers -1"
    );
}

#[test]
fn list_groups_filters_by_state() {
    let broker = BrokerProcess::start_with_config("group.initial.rebalance.delay.ms = 0\n");
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "states", 1);
    form_single_member_group(&mut client, "stable-group", "states", &[0]);
    commit(&mut client, "empty-group", "states", 0, 1);
    let listed = |client: &mut RawClient, states: &[&str]| -> Vec<(String, String)> {
        let request = ListGroupsRequest::default()
            .with_states_filter(states.iter().map(|state| text(state)).collect());
        let response: ListGroupsResponse = client.call(ApiKey::ListGroups, 4, &request);
        let mut groups: Vec<(String, String)> = response
            .groups
            .iter()
            .map(|group| (group.group_id.to_string(), group.group_state.to_string()))
            .collect();
        groups.sort();
        groups
    };
    assert_eq!(
        listed(&mut client, &[]),
        vec![
            ("empty-group".to_string(), "Empty".to_string()),
            ("stable-group".to_string(), "Stable".to_string())
        ]
    );
    assert_eq!(
        listed(&mut client, &["Stable"]),
        vec![("stable-group".to_string(), "Stable".to_string())]
    );
    assert_eq!(
        listed(&mut client, &["empty"]),
        vec![("empty-group".to_string(), "Empty".to_string())]
    );
}

#[test]
fn offset_delete_removes_unsubscribed_partitions_only() {
    let broker = BrokerProcess::start_with_config("group.initial.rebalance.delay.ms = 0\n");
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "subscribed", 1);
    create_topic(&mut client, "old", 1);
    let member = form_single_member_group(&mut client, "deleter", "subscribed", &[0]);
    let results = commit_offsets(
        &mut client,
        "deleter",
        &member.member_id,
        member.generation_id,
        &[
            OffsetToCommit {
                topic: "subscribed",
                partition: 0,
                offset: 5,
                metadata: String::new(),
            },
            OffsetToCommit {
                topic: "old",
                partition: 0,
                offset: 7,
                metadata: String::new(),
            },
        ],
    );
    assert!(results.iter().all(|(_, _, code)| *code == 0), "{results:?}");
    let topic = |name: &str| {
        OffsetDeleteRequestTopic::default()
            .with_name(TopicName(text(name)))
            .with_partitions(vec![
                OffsetDeleteRequestPartition::default().with_partition_index(0)
            ])
    };
    let request = OffsetDeleteRequest::default()
        .with_group_id(group_id("deleter"))
        .with_topics(vec![topic("subscribed"), topic("old")]);
    let response: OffsetDeleteResponse = client.call(ApiKey::OffsetDelete, 0, &request);
    assert_eq!(response.error_code, 0);
    assert_eq!(
        response.topics[0].partitions[0].error_code,
        GROUP_SUBSCRIBED_TO_TOPIC
    );
    assert_eq!(response.topics[1].partitions[0].error_code, 0);
    let fetched: OffsetFetchResponse = client.call(
        ApiKey::OffsetFetch,
        7,
        &OffsetFetchRequest::default()
            .with_group_id(group_id("deleter"))
            .with_topics(None),
    );
    let remaining: Vec<(String, i64)> = fetched
        .topics
        .iter()
        .flat_map(|topic| {
            topic
                .partitions
                .iter()
                .map(move |partition| (topic.name.to_string(), partition.committed_offset))
        })
        .collect();
    assert_eq!(remaining, vec![("subscribed".to_string(), 5)]);
}

#[test]
fn stable_group_membership_survives_kill_9() {
    let mut broker = BrokerProcess::start_with_config("group.initial.rebalance.delay.ms = 0\n");
    let member = {
        let mut client = RawClient::connect(broker.address);
        create_topic(&mut client, "durable", 2);
        form_single_member_group(&mut client, "durable-group", "durable", &[0, 1])
    };
    broker.kill9();
    broker.restart();
    let mut client = RawClient::connect(broker.address);
    // The member carries on with its generation: no rejoin needed after the coordinator restarted.
    assert_eq!(
        heartbeat(
            &mut client,
            "durable-group",
            &member.member_id,
            member.generation_id
        ),
        0
    );
    let described: DescribeGroupsResponse = client.call(
        ApiKey::DescribeGroups,
        5,
        &DescribeGroupsRequest::default().with_groups(vec![group_id("durable-group")]),
    );
    let group = &described.groups[0];
    assert_eq!(group.group_state.as_str(), "Stable");
    assert_eq!(group.protocol_data.as_str(), "range");
    assert_eq!(group.members.len(), 1);
    assert_eq!(group.members[0].member_id.as_str(), member.member_id);
    assert!(
        !group.members[0].member_assignment.is_empty(),
        "the assignment survived"
    );
}
