//! The classic group coordinator answers bad group requests with Kafka's errors, over the raw
//! protocol, and keeps serving: after each bad request a healthy group on the same broker and
//! connection still joins, syncs, commits and fetches its offsets.
//!
//! The expected behaviour is Kafka's (4.x group coordinator): `GroupCoordinatorService` checks
//! the group id, `GroupMetadataManager` the session timeout, protocols and member ids,
//! `ClassicGroup.validateOffsetCommit` members and generations, `KafkaApis` unknown topics.

use bytes::Bytes;
use cauce_integration_tests::group_protocol::error_codes::{
    GROUP_ID_NOT_FOUND, ILLEGAL_GENERATION, INCONSISTENT_GROUP_PROTOCOL, INVALID_GROUP_ID,
    INVALID_SESSION_TIMEOUT, MEMBER_ID_REQUIRED, NONE, NON_EMPTY_GROUP, OFFSET_METADATA_TOO_LARGE,
    REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID, UNKNOWN_TOPIC_OR_PARTITION,
};
use cauce_integration_tests::group_protocol::{
    commit_offsets, consumer_assignment, consumer_subscription, create_topic,
    decode_consumer_assignment, delete_groups, fetch_committed_offsets, find_group_coordinators,
    form_single_member_group, heartbeat, join_as_new_member, join_group, join_group_request,
    leave_group, sync_group, GroupMember, OffsetToCommit, CONSUMER_PROTOCOL_TYPE,
};
use cauce_integration_tests::{BrokerProcess, RawClient};
use std::time::{Duration, Instant};

/// The topic the groups commit offsets for.
const TOPIC: &str = "group-input";
/// Its partitions.
const PARTITIONS: i32 = 2;
/// `group.min.session.timeout.ms` and `group.max.session.timeout.ms` of the test broker.
const MIN_SESSION_TIMEOUT_MS: i32 = 6_000;
const MAX_SESSION_TIMEOUT_MS: i32 = 300_000;
/// `offset.metadata.max.bytes` of the test broker.
const OFFSET_METADATA_MAX_BYTES: usize = 100;

/// A broker whose first rebalance does not wait for more members, with known session and
/// metadata limits, a two-partition topic, and a connection to it.
fn broker_with_topic() -> (BrokerProcess, RawClient) {
    let broker = BrokerProcess::start_with_config(&format!(
        "group.initial.rebalance.delay.ms = 0\n\
         group.min.session.timeout.ms = {MIN_SESSION_TIMEOUT_MS}\n\
         group.max.session.timeout.ms = {MAX_SESSION_TIMEOUT_MS}\n\
         offset.metadata.max.bytes = {OFFSET_METADATA_MAX_BYTES}\n"
    ));
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, TOPIC, PARTITIONS);
    (broker, client)
}

/// An offset of `TOPIC` to commit.
fn offset(partition: i32, offset: i64, metadata: &str) -> OffsetToCommit<'static> {
    OffsetToCommit {
        topic: TOPIC,
        partition,
        offset,
        metadata: metadata.to_string(),
    }
}

/// The committed offsets of both partitions of `TOPIC`, insisting that the fetch worked.
fn committed_offsets(client: &mut RawClient, group: &str) -> Vec<(i64, Option<String>)> {
    let (error, offsets) = fetch_committed_offsets(client, group, TOPIC, &[0, 1]);
    assert_eq!(error, NONE, "offset fetch of {group}");
    offsets
        .into_iter()
        .map(|committed| {
            assert_eq!(committed.error_code, NONE, "{committed:?}");
            (committed.offset, committed.metadata)
        })
        .collect()
}

/// What OffsetFetch reports for a partition without a committed offset: Kafka answers offset -1
/// with empty (not null) metadata.
fn not_committed() -> (i64, Option<String>) {
    (-1, Some(String::new()))
}

/// The error codes of a commit's partitions, in request order.
fn error_codes_of(results: &[(String, i32, i16)]) -> Vec<i16> {
    results.iter().map(|(_, _, error)| *error).collect()
}

/// A fresh group on the same connection joins as a consumer, syncs a real assignment, commits,
/// reads its offsets back, heartbeats and leaves: the bad requests before left no damage.
fn assert_a_healthy_group_joins_syncs_commits_and_fetches(client: &mut RawClient) {
    let group = "healthy-group";
    let subscription = consumer_subscription(&[TOPIC]);
    let joined = join_as_new_member(
        client,
        group,
        CONSUMER_PROTOCOL_TYPE,
        &[("range", subscription.clone())],
    );
    let member = GroupMember::from_join(&joined, CONSUMER_PROTOCOL_TYPE);
    assert_eq!(joined.leader.as_str(), member.member_id);
    assert_eq!(member.protocol_name, "range");
    assert!(member.generation_id >= 1, "{joined:?}");
    assert_eq!(joined.members.len(), 1);
    assert_eq!(joined.members[0].metadata, subscription);

    let synced = sync_group(
        client,
        group,
        &member,
        &[(&member.member_id, consumer_assignment(TOPIC, &[0, 1]))],
    );
    assert_eq!(synced.error_code, NONE, "{synced:?}");
    assert_eq!(
        decode_consumer_assignment(synced.assignment),
        vec![(TOPIC.to_string(), vec![0, 1])]
    );

    let committed = commit_offsets(
        client,
        group,
        &member.member_id,
        member.generation_id,
        &[offset(0, 17, "healthy-0"), offset(1, 42, "healthy-1")],
    );
    assert_eq!(error_codes_of(&committed), vec![NONE, NONE]);
    assert_eq!(
        committed_offsets(client, group),
        vec![
            (17, Some("healthy-0".to_string())),
            (42, Some("healthy-1".to_string()))
        ]
    );
    assert_eq!(
        heartbeat(client, group, &member.member_id, member.generation_id),
        NONE
    );
    assert_eq!(leave_group(client, group, &member.member_id), (NONE, NONE));
}

#[test]
fn join_group_and_heartbeat_with_an_empty_group_id_get_invalid_group_id() {
    let (_broker, mut client) = broker_with_topic();
    let response = join_group(
        &mut client,
        &join_group_request(
            "",
            "",
            CONSUMER_PROTOCOL_TYPE,
            &[("range", consumer_subscription(&[TOPIC]))],
        ),
    );
    assert_eq!(response.error_code, INVALID_GROUP_ID, "{response:?}");
    assert_eq!(
        heartbeat(&mut client, "", "some-member", 1),
        INVALID_GROUP_ID
    );
    assert_a_healthy_group_joins_syncs_commits_and_fetches(&mut client);
}

#[test]
fn join_group_without_member_id_gets_member_id_required_and_joins_with_the_given_id() {
    let (_broker, mut client) = broker_with_topic();
    let group = "member-id-group";
    let subscription = consumer_subscription(&[TOPIC]);
    // The member prefers cooperative-sticky; a lone member's first choice is the group's.
    let protocols = [
        ("cooperative-sticky", subscription.clone()),
        ("range", subscription.clone()),
    ];
    let first = join_group(
        &mut client,
        &join_group_request(group, "", CONSUMER_PROTOCOL_TYPE, &protocols),
    );
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED, "{first:?}");
    assert!(
        !first.member_id.is_empty(),
        "the answer carries a member id"
    );
    assert_eq!(first.generation_id, -1, "no generation before joining");

    let second = join_group(
        &mut client,
        &join_group_request(
            group,
            first.member_id.as_str(),
            CONSUMER_PROTOCOL_TYPE,
            &protocols,
        ),
    );
    assert_eq!(second.error_code, NONE, "{second:?}");
    assert_eq!(second.member_id, first.member_id);
    assert_eq!(second.leader, first.member_id);
    assert_eq!(second.generation_id, 1);
    assert_eq!(
        second.protocol_type.as_deref(),
        Some(CONSUMER_PROTOCOL_TYPE)
    );
    assert_eq!(second.protocol_name.as_deref(), Some("cooperative-sticky"));
    assert_eq!(second.members.len(), 1);
    assert_eq!(second.members[0].member_id, first.member_id);
    assert_eq!(
        second.members[0].metadata, subscription,
        "the leader gets the member's metadata unchanged"
    );
    assert_a_healthy_group_joins_syncs_commits_and_fetches(&mut client);
}

#[test]
fn join_group_with_a_session_timeout_outside_the_broker_bounds_gets_invalid_session_timeout() {
    let (_broker, mut client) = broker_with_topic();
    let group = "session-group";
    let protocols = [("range", consumer_subscription(&[TOPIC]))];
    for session_timeout_ms in [MIN_SESSION_TIMEOUT_MS - 1, MAX_SESSION_TIMEOUT_MS + 1] {
        // Without a member id: Kafka checks the session timeout before asking for one.
        let response = join_group(
            &mut client,
            &join_group_request(group, "", CONSUMER_PROTOCOL_TYPE, &protocols)
                .with_session_timeout_ms(session_timeout_ms),
        );
        assert_eq!(
            response.error_code, INVALID_SESSION_TIMEOUT,
            "session timeout {session_timeout_ms}: {response:?}"
        );
    }
    // The bounds themselves are allowed.
    let first = join_group(
        &mut client,
        &join_group_request(group, "", CONSUMER_PROTOCOL_TYPE, &protocols)
            .with_session_timeout_ms(MIN_SESSION_TIMEOUT_MS),
    );
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED, "{first:?}");
    let joined = join_group(
        &mut client,
        &join_group_request(
            group,
            first.member_id.as_str(),
            CONSUMER_PROTOCOL_TYPE,
            &protocols,
        )
        .with_session_timeout_ms(MIN_SESSION_TIMEOUT_MS),
    );
    assert_eq!(joined.error_code, NONE, "{joined:?}");
    assert_a_healthy_group_joins_syncs_commits_and_fetches(&mut client);
}

#[test]
fn offset_commit_from_a_non_member_of_an_active_group_gets_unknown_member_id_and_changes_nothing() {
    let (_broker, mut client) = broker_with_topic();
    let group = "active-group";
    let member = form_single_member_group(&mut client, group, TOPIC, &[0, 1]);
    let accepted = commit_offsets(
        &mut client,
        group,
        &member.member_id,
        member.generation_id,
        &[offset(0, 5, "member-0"), offset(1, 6, "member-1")],
    );
    assert_eq!(error_codes_of(&accepted), vec![NONE, NONE]);

    let from_stranger = commit_offsets(
        &mut client,
        group,
        "not-a-member",
        member.generation_id,
        &[offset(0, 100, "stranger"), offset(1, 100, "stranger")],
    );
    assert_eq!(
        error_codes_of(&from_stranger),
        vec![UNKNOWN_MEMBER_ID, UNKNOWN_MEMBER_ID]
    );
    // Without member id and generation (as an admin client commits) only an empty group takes it.
    let from_outside = commit_offsets(&mut client, group, "", -1, &[offset(0, 200, "outside")]);
    assert_eq!(error_codes_of(&from_outside), vec![UNKNOWN_MEMBER_ID]);

    assert_eq!(
        committed_offsets(&mut client, group),
        vec![
            (5, Some("member-0".to_string())),
            (6, Some("member-1".to_string()))
        ],
        "refused commits changed the committed offsets"
    );
    assert_eq!(
        heartbeat(&mut client, group, &member.member_id, member.generation_id),
        NONE,
        "the member is still in its generation"
    );
    assert_a_healthy_group_joins_syncs_commits_and_fetches(&mut client);
}

#[test]
fn offset_commit_with_a_stale_or_future_generation_gets_illegal_generation() {
    let (_broker, mut client) = broker_with_topic();
    let group = "generation-group";
    let first_generation = form_single_member_group(&mut client, group, TOPIC, &[0, 1]);
    // The leader rejoining starts generation 2.
    let rejoined = join_group(
        &mut client,
        &join_group_request(
            group,
            &first_generation.member_id,
            CONSUMER_PROTOCOL_TYPE,
            &[("range", consumer_subscription(&[TOPIC]))],
        ),
    );
    let member = GroupMember::from_join(&rejoined, CONSUMER_PROTOCOL_TYPE);
    assert_eq!(member.member_id, first_generation.member_id);
    assert_eq!(member.generation_id, first_generation.generation_id + 1);
    let synced = sync_group(
        &mut client,
        group,
        &member,
        &[(&member.member_id, consumer_assignment(TOPIC, &[0, 1]))],
    );
    assert_eq!(synced.error_code, NONE, "{synced:?}");

    for generation_id in [first_generation.generation_id, member.generation_id + 1] {
        let refused = commit_offsets(
            &mut client,
            group,
            &member.member_id,
            generation_id,
            &[offset(0, 99, "wrong-generation")],
        );
        assert_eq!(
            error_codes_of(&refused),
            vec![ILLEGAL_GENERATION],
            "generation {generation_id}"
        );
    }
    let accepted = commit_offsets(
        &mut client,
        group,
        &member.member_id,
        member.generation_id,
        &[offset(0, 3, "current")],
    );
    assert_eq!(error_codes_of(&accepted), vec![NONE]);
    assert_eq!(
        committed_offsets(&mut client, group),
        vec![(3, Some("current".to_string())), not_committed()],
    );
    assert_a_healthy_group_joins_syncs_commits_and_fetches(&mut client);
}

#[test]
fn heartbeat_with_a_wrong_generation_gets_illegal_generation_and_an_unknown_member_unknown_member_id(
) {
    let (_broker, mut client) = broker_with_topic();
    let group = "heartbeat-group";
    let member = form_single_member_group(&mut client, group, TOPIC, &[0, 1]);
    for generation_id in [member.generation_id - 1, member.generation_id + 1] {
        assert_eq!(
            heartbeat(&mut client, group, &member.member_id, generation_id),
            ILLEGAL_GENERATION,
            "generation {generation_id}"
        );
    }
    assert_eq!(
        heartbeat(&mut client, group, "not-a-member", member.generation_id),
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        heartbeat(&mut client, group, &member.member_id, member.generation_id),
        NONE,
        "the member's own heartbeat still works"
    );
    assert_a_healthy_group_joins_syncs_commits_and_fetches(&mut client);
}

#[test]
fn join_sync_and_leave_as_a_member_the_group_does_not_know_get_unknown_member_id() {
    let (_broker, mut client) = broker_with_topic();
    let group = "stranger-group";
    let member = form_single_member_group(&mut client, group, TOPIC, &[0, 1]);
    let joined = join_group(
        &mut client,
        &join_group_request(
            group,
            "not-a-member",
            CONSUMER_PROTOCOL_TYPE,
            &[("range", consumer_subscription(&[TOPIC]))],
        ),
    );
    assert_eq!(joined.error_code, UNKNOWN_MEMBER_ID, "{joined:?}");

    let mut stranger = member.clone();
    stranger.member_id = "not-a-member".to_string();
    let synced = sync_group(&mut client, group, &stranger, &[]);
    assert_eq!(synced.error_code, UNKNOWN_MEMBER_ID, "{synced:?}");
    let mut stale = member.clone();
    stale.generation_id += 1;
    let synced = sync_group(&mut client, group, &stale, &[]);
    assert_eq!(synced.error_code, ILLEGAL_GENERATION, "{synced:?}");
    // LeaveGroup v3+ answers per member: the request is fine, the member is unknown.
    assert_eq!(
        leave_group(&mut client, group, "not-a-member"),
        (NONE, UNKNOWN_MEMBER_ID)
    );

    assert_eq!(
        heartbeat(&mut client, group, &member.member_id, member.generation_id),
        NONE,
        "the real member is still in its generation"
    );
    assert_a_healthy_group_joins_syncs_commits_and_fetches(&mut client);
}

/// Rebalances a stable one-member group into two: a second member joins on its own
/// connection, `first` learns of it from its heartbeat, `while_preparing` runs while the group
/// prepares the rebalance, then `first` rejoins. Returns both members of the new generation
/// (`first` leads) and the second member's connection, before anyone synced.
fn rebalance_with_a_second_member(
    address: std::net::SocketAddr,
    client: &mut RawClient,
    group: &str,
    first: &GroupMember,
    while_preparing: impl FnOnce(&mut RawClient),
) -> (GroupMember, GroupMember, RawClient) {
    let subscription = consumer_subscription(&[TOPIC]);
    std::thread::scope(|scope| {
        // The second member's JoinGroup waits until the first member rejoined.
        let second = scope.spawn(|| {
            let mut client = RawClient::connect(address);
            let joined = join_as_new_member(
                &mut client,
                group,
                CONSUMER_PROTOCOL_TYPE,
                &[("range", subscription.clone())],
            );
            (client, joined)
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while heartbeat(client, group, &first.member_id, first.generation_id)
            != REBALANCE_IN_PROGRESS
        {
            assert!(
                Instant::now() < deadline,
                "the second member's join started no rebalance"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        while_preparing(client);
        let rejoined = join_group(
            client,
            &join_group_request(
                group,
                &first.member_id,
                CONSUMER_PROTOCOL_TYPE,
                &[("range", subscription.clone())],
            ),
        );
        let (second_client, second_joined) = second.join().unwrap();
        let first_member = GroupMember::from_join(&rejoined, CONSUMER_PROTOCOL_TYPE);
        let second_member = GroupMember::from_join(&second_joined, CONSUMER_PROTOCOL_TYPE);
        assert_eq!(first_member.generation_id, first.generation_id + 1);
        assert_eq!(second_member.generation_id, first_member.generation_id);
        assert_eq!(
            rejoined.leader.as_str(),
            first.member_id,
            "the old leader that rejoined keeps leading"
        );
        assert_eq!(rejoined.members.len(), 2, "{rejoined:?}");
        (first_member, second_member, second_client)
    })
}

#[test]
fn offset_commit_during_a_rebalance_follows_the_generation_rules() {
    let (broker, mut client) = broker_with_topic();
    let group = "rebalancing-group";
    let before = form_single_member_group(&mut client, group, TOPIC, &[0, 1]);
    let (first, second, mut second_client) =
        rebalance_with_a_second_member(broker.address, &mut client, group, &before, |client| {
            // While the group prepares the rebalance, the old generation may still commit:
            // that is how eager members save their progress before giving partitions up.
            let preparing = commit_offsets(
                client,
                group,
                &before.member_id,
                before.generation_id,
                &[offset(0, 21, "preparing")],
            );
            assert_eq!(error_codes_of(&preparing), vec![NONE], "while preparing");
        });

    // Joined but not synced: the old generation is gone, the new one not settled yet.
    let old_generation = commit_offsets(
        &mut client,
        group,
        &first.member_id,
        before.generation_id,
        &[offset(0, 99, "old-generation")],
    );
    assert_eq!(error_codes_of(&old_generation), vec![ILLEGAL_GENERATION]);
    let before_sync = commit_offsets(
        &mut client,
        group,
        &first.member_id,
        first.generation_id,
        &[offset(0, 99, "before-sync")],
    );
    assert_eq!(error_codes_of(&before_sync), vec![REBALANCE_IN_PROGRESS]);

    let leader_synced = sync_group(
        &mut client,
        group,
        &first,
        &[
            (&first.member_id, consumer_assignment(TOPIC, &[0])),
            (&second.member_id, consumer_assignment(TOPIC, &[1])),
        ],
    );
    assert_eq!(leader_synced.error_code, NONE, "{leader_synced:?}");
    let follower_synced = sync_group(&mut second_client, group, &second, &[]);
    assert_eq!(follower_synced.error_code, NONE, "{follower_synced:?}");
    assert_eq!(
        decode_consumer_assignment(follower_synced.assignment),
        vec![(TOPIC.to_string(), vec![1])]
    );
    let after_sync = commit_offsets(
        &mut second_client,
        group,
        &second.member_id,
        second.generation_id,
        &[offset(1, 31, "after-sync")],
    );
    assert_eq!(error_codes_of(&after_sync), vec![NONE]);
    assert_eq!(
        committed_offsets(&mut client, group),
        vec![
            (21, Some("preparing".to_string())),
            (31, Some("after-sync".to_string()))
        ],
        "only the accepted commits count"
    );
    assert_a_healthy_group_joins_syncs_commits_and_fetches(&mut client);
}

#[test]
fn sync_group_stores_garbage_assignments_as_opaque_bytes_and_hands_each_member_its_own() {
    let (broker, mut client) = broker_with_topic();
    let group = "garbage-group";
    let first = form_single_member_group(&mut client, group, TOPIC, &[0, 1]);
    let garbage_for = |member: &str| -> Bytes {
        let mut bytes = vec![0xff, 0x00, 0x7f, 0x80, 0xde, 0xad, 0xbe, 0xef];
        bytes.extend_from_slice(member.as_bytes());
        Bytes::from(bytes)
    };

    std::thread::scope(|scope| {
        let (first, second, mut second_client) =
            rebalance_with_a_second_member(broker.address, &mut client, group, &first, |_| {});
        // The follower's SyncGroup waits for the leader's assignments.
        let second_member_id = second.member_id.clone();
        let follower = scope.spawn(move || sync_group(&mut second_client, group, &second, &[]));
        let leader_synced = sync_group(
            &mut client,
            group,
            &first,
            &[
                (&first.member_id, garbage_for(&first.member_id)),
                (&second_member_id, garbage_for(&second_member_id)),
            ],
        );
        let follower_synced = follower.join().unwrap();
        assert_eq!(leader_synced.error_code, NONE, "{leader_synced:?}");
        assert_eq!(follower_synced.error_code, NONE, "{follower_synced:?}");
        assert_eq!(leader_synced.assignment, garbage_for(&first.member_id));
        assert_eq!(follower_synced.assignment, garbage_for(&second_member_id));
        assert_eq!(
            follower_synced.protocol_name.as_deref(),
            Some("range"),
            "{follower_synced:?}"
        );
    });
    assert_a_healthy_group_joins_syncs_commits_and_fetches(&mut client);
}

#[test]
fn offset_commit_with_metadata_over_offset_metadata_max_bytes_gets_offset_metadata_too_large() {
    let (_broker, mut client) = broker_with_topic();
    let group = "metadata-group";
    let longest_allowed = "m".repeat(OFFSET_METADATA_MAX_BYTES);
    let too_long = "m".repeat(OFFSET_METADATA_MAX_BYTES + 1);
    // A commit from outside group management, which a group without members accepts.
    let results = commit_offsets(
        &mut client,
        group,
        "",
        -1,
        &[offset(0, 10, &longest_allowed), offset(1, 20, &too_long)],
    );
    assert_eq!(
        error_codes_of(&results),
        vec![NONE, OFFSET_METADATA_TOO_LARGE]
    );
    assert_eq!(
        committed_offsets(&mut client, group),
        vec![(10, Some(longest_allowed)), not_committed()],
        "only the partition with allowed metadata was committed"
    );
    assert_a_healthy_group_joins_syncs_commits_and_fetches(&mut client);
}

#[test]
fn offset_commit_for_an_unknown_topic_or_partition_gets_unknown_topic_or_partition() {
    let (_broker, mut client) = broker_with_topic();
    let group = "unknown-topic-group";
    let results = commit_offsets(
        &mut client,
        group,
        "",
        -1,
        &[
            OffsetToCommit {
                topic: "no-such-topic",
                partition: 0,
                offset: 1,
                metadata: String::new(),
            },
            offset(PARTITIONS, 1, ""),
            offset(0, 8, "known"),
        ],
    );
    let by_partition: Vec<(&str, i32, i16)> = results
        .iter()
        .map(|(topic, partition, error)| (topic.as_str(), *partition, *error))
        .collect();
    for expected in [
        ("no-such-topic", 0, UNKNOWN_TOPIC_OR_PARTITION),
        (TOPIC, PARTITIONS, UNKNOWN_TOPIC_OR_PARTITION),
        (TOPIC, 0, NONE),
    ] {
        assert!(
            by_partition.contains(&expected),
            "expected {expected:?} in {by_partition:?}"
        );
    }
    assert_eq!(by_partition.len(), 3, "{by_partition:?}");
    assert_eq!(
        committed_offsets(&mut client, group),
        vec![(8, Some("known".to_string())), not_committed()]
    );
    assert_a_healthy_group_joins_syncs_commits_and_fetches(&mut client);
}

#[test]
fn join_or_sync_with_another_protocol_than_the_group_gets_inconsistent_group_protocol() {
    let (broker, mut client) = broker_with_topic();
    let group = "typed-group";
    let member = form_single_member_group(&mut client, group, TOPIC, &[0, 1]);
    let subscription = consumer_subscription(&[TOPIC]);
    let mut other = RawClient::connect(broker.address);
    // Another protocol type, then the right type without a protocol in common.
    for (protocol_type, protocol) in [("connect", "range"), (CONSUMER_PROTOCOL_TYPE, "roundrobin")]
    {
        let response = join_group(
            &mut other,
            &join_group_request(
                group,
                "",
                protocol_type,
                &[(protocol, subscription.clone())],
            ),
        );
        assert_eq!(
            response.error_code, INCONSISTENT_GROUP_PROTOCOL,
            "{protocol_type}/{protocol}: {response:?}"
        );
    }
    let mut wrong_type = member.clone();
    wrong_type.protocol_type = "connect".to_string();
    let synced = sync_group(&mut client, group, &wrong_type, &[]);
    assert_eq!(synced.error_code, INCONSISTENT_GROUP_PROTOCOL, "{synced:?}");

    assert_eq!(
        heartbeat(&mut client, group, &member.member_id, member.generation_id),
        NONE,
        "the refused joins started a rebalance of the group"
    );
    let synced = sync_group(&mut client, group, &member, &[]);
    assert_eq!(synced.error_code, NONE, "{synced:?}");
    assert_eq!(
        decode_consumer_assignment(synced.assignment),
        vec![(TOPIC.to_string(), vec![0, 1])],
        "the member keeps its assignment"
    );
    assert_a_healthy_group_joins_syncs_commits_and_fetches(&mut client);
}

#[test]
fn delete_groups_refuses_a_group_with_members_and_reports_an_unknown_group() {
    let (_broker, mut client) = broker_with_topic();
    let group = "busy-group";
    let unknown = "never-existed-group";
    let member = form_single_member_group(&mut client, group, TOPIC, &[0, 1]);
    let committed = commit_offsets(
        &mut client,
        group,
        &member.member_id,
        member.generation_id,
        &[offset(0, 12, "busy")],
    );
    assert_eq!(error_codes_of(&committed), vec![NONE]);

    let results = delete_groups(&mut client, &[group, unknown]);
    let by_group: Vec<(String, i16)> = results
        .iter()
        .map(|result| (result.group_id.0.to_string(), result.error_code))
        .collect();
    assert_eq!(
        by_group,
        vec![
            (group.to_string(), NON_EMPTY_GROUP),
            (unknown.to_string(), GROUP_ID_NOT_FOUND)
        ]
    );
    assert_eq!(
        committed_offsets(&mut client, group),
        vec![(12, Some("busy".to_string())), not_committed()],
        "a refused delete kept the offsets"
    );

    // Once its member left, the group can go, and its offsets with it.
    assert_eq!(
        leave_group(&mut client, group, &member.member_id),
        (NONE, NONE)
    );
    let results = delete_groups(&mut client, &[group]);
    assert_eq!(results[0].error_code, NONE, "{results:?}");
    assert_eq!(
        committed_offsets(&mut client, group),
        vec![not_committed(), not_committed()]
    );
    let again = delete_groups(&mut client, &[group]);
    assert_eq!(again[0].error_code, GROUP_ID_NOT_FOUND, "{again:?}");
    assert_a_healthy_group_joins_syncs_commits_and_fetches(&mut client);
}

#[test]
fn find_coordinator_v4_answers_every_group_of_a_batch() {
    let (broker, mut client) = broker_with_topic();
    let groups = ["first-batch-group", "second-batch-group"];
    let coordinators = find_group_coordinators(&mut client, &groups);
    assert_eq!(coordinators.len(), 2, "{coordinators:?}");
    let keys: Vec<String> = coordinators
        .iter()
        .map(|coordinator| coordinator.key.to_string())
        .collect();
    assert_eq!(keys, groups.map(str::to_string).to_vec());
    for coordinator in &coordinators {
        assert_eq!(coordinator.error_code, NONE, "{coordinator:?}");
        assert_eq!(coordinator.host.as_str(), broker.address.ip().to_string());
        assert_eq!(coordinator.port, i32::from(broker.address.port()));
        assert!(coordinator.node_id.0 >= 0, "{coordinator:?}");
    }
    assert_eq!(coordinators[0].node_id, coordinators[1].node_id);
    assert_a_healthy_group_joins_syncs_commits_and_fetches(&mut client);
}
