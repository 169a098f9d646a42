//! A cluster of three `cauce server` processes, each a controller voter and a broker: the quorum
//! elects a controller, commands sent to any node are forwarded to it, replicas are spread,
//! and when nodes die the metadata survives, another controller takes over and the dead
//! broker's leaderships move.

use std::time::Duration;

use cauce_integration_tests::cluster::{live_brokers, partitions_of, Cluster, FAST_MEMBERSHIP};
use cauce_integration_tests::raw::topic_name;
use cauce_integration_tests::raw::{
    produce_batch_to_partition_zero, record_batch_of_values_stamped_now,
};
use cauce_integration_tests::RawClient;
use cauce_protocol::ResponseError;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{
    ApiKey, DescribeQuorumRequest, DescribeQuorumResponse, ElectLeadersRequest,
    ElectLeadersResponse,
};

/// DescribeQuorum for `partition` of the metadata topic, asked of `client`.
fn describe_quorum(client: &mut RawClient, partition: i32) -> DescribeQuorumResponse {
    let request = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(topic_name("__cluster_metadata"))
        .with_partitions(vec![
            PartitionData::default().with_partition_index(partition)
        ])]);
    client.call(ApiKey::DescribeQuorum, 2, &request)
}

#[test]
fn every_node_describes_the_quorum_as_its_leader_does() {
    let mut cluster = Cluster::start(3, FAST_MEMBERSHIP);
    for node in 1..=3 {
        cluster.wait_for_brokers(node, &[1, 2, 3]);
    }
    assert_eq!(cluster.create_topic(1, "described", 1, 3), 0);
    cluster.wait_for_full_isrs(1, "described", 1, &[1, 2, 3], "the new topic");
    let controller = cluster.metadata(1).controller_id.0;
    for node in 1..=3 {
        let mut client = RawClient::connect(cluster.node(node).address);
        let response = describe_quorum(&mut client, 0);
        assert_eq!(response.error_code, 0, "node {node}: {response:?}");
        let partition = &response.topics[0].partitions[0];
        assert_eq!(partition.error_code, 0);
        assert_eq!(partition.leader_id.0, controller, "node {node}");
        assert!(partition.high_watermark > 0, "node {node}: {partition:?}");
        let mut voters: Vec<i32> = partition
            .current_voters
            .iter()
            .map(|voter| voter.replica_id.0)
            .collect();
        voters.sort_unstable();
        assert_eq!(voters, [1, 2, 3]);
        // The leader's figures, whichever node was asked: every voter's progress is known.
        assert!(
            partition
                .current_voters
                .iter()
                .all(|voter| voter.log_end_offset > 0 && voter.last_fetch_timestamp > 0),
            "node {node}: {partition:?}"
        );
        assert_eq!(response.nodes.len(), 3, "node {node}: {response:?}");
    }
    // The metadata log has one partition.
    let mut client = RawClient::connect(cluster.node(1).address);
    assert_eq!(
        describe_quorum(&mut client, 1).error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
}

#[test]
fn three_voters_elect_a_controller_and_every_node_can_create_spread_topics() {
    let mut cluster = Cluster::start(3, FAST_MEMBERSHIP);
    for node in 1..=3 {
        cluster.wait_for_brokers(node, &[1, 2, 3]);
    }
    let controller = cluster.metadata(1).controller_id.0;
    let other = (1..=3).find(|node| *node != controller).unwrap();

    // Created through a node that is not the controller: the command is forwarded, and that
    // node answers once its own metadata has the topic.
    assert_eq!(cluster.create_topic(other, "spread", 6, 3), 0);
    assert_eq!(
        partitions_of(&cluster.metadata(other), "spread").map(|partitions| partitions.len()),
        Some(6),
        "node {other} lists the topic it just created"
    );
    assert_eq!(
        cluster.create_topic(controller, "spread", 6, 3),
        ResponseError::TopicAlreadyExists.code()
    );
    assert_eq!(
        cluster.create_topic(other, "too-many-copies", 1, 4),
        ResponseError::InvalidReplicationFactor.code()
    );
    for node in 1..=3 {
        let metadata =
            cluster.wait_for_metadata(node, Duration::from_secs(10), "topic spread", |m| {
                partitions_of(m, "spread").is_some_and(|partitions| partitions.len() == 6)
            });
        let partitions = partitions_of(&metadata, "spread").unwrap();
        let mut leaders = [0; 3];
        for view in partitions.values() {
            let mut sorted = view.replicas.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, vec![1, 2, 3], "{partitions:?}");
            assert_eq!(view.isr, view.replicas, "{partitions:?}");
            assert_eq!(view.leader, view.replicas[0], "{partitions:?}");
            leaders[view.leader as usize - 1] += 1;
        }
        assert_eq!(leaders, [2, 2, 2], "leaders spread evenly: {partitions:?}");
    }

    // Only the leader takes writes; the others send the client to it.
    let metadata = cluster.metadata(1);
    let view = partitions_of(&metadata, "spread").unwrap()[&0].clone();
    let leader = view.leader;
    let follower = view
        .replicas
        .iter()
        .copied()
        .find(|replica| *replica != leader)
        .unwrap();
    let batch = record_batch_of_values_stamped_now(&["only the leader"]);
    let mut to_follower = RawClient::connect(cluster.node(follower).address);
    let refused = produce_batch_to_partition_zero(&mut to_follower, "spread", &batch);
    assert_eq!(
        refused.error_code,
        ResponseError::NotLeaderOrFollower.code()
    );
    let mut to_leader = RawClient::connect(cluster.node(leader).address);
    let accepted = produce_batch_to_partition_zero(&mut to_leader, "spread", &batch);
    assert_eq!(accepted.error_code, 0);
}

#[test]
fn killing_the_controller_keeps_the_metadata_and_moves_the_dead_brokers_leaderships() {
    let mut cluster = Cluster::start(3, FAST_MEMBERSHIP);
    cluster.wait_for_brokers(1, &[1, 2, 3]);
    assert_eq!(cluster.create_topic(1, "before", 3, 3), 0);
    let old_controller = cluster.metadata(1).controller_id.0;
    cluster.node(old_controller).kill9();
    let survivor = (1..=3).find(|node| *node != old_controller).unwrap();
    let remaining: Vec<i32> = (1..=3).filter(|node| *node != old_controller).collect();

    // Another controller is elected; the dead broker is fenced after its session timeout.
    let metadata = cluster.wait_for_brokers(survivor, &remaining);
    assert_ne!(metadata.controller_id.0, old_controller);
    let partitions = partitions_of(&metadata, "before").expect("the topic survived");
    assert_eq!(partitions.len(), 3);
    for view in partitions.values() {
        assert!(remaining.contains(&view.leader), "{partitions:?}");
        assert!(!view.isr.contains(&old_controller), "{partitions:?}");
    }
    assert_eq!(cluster.create_topic(survivor, "after", 2, 2), 0);
    // Each partition of "before" has lost a replica: its leader reports it under-replicated.
    let under_replicated: f64 = remaining
        .iter()
        .map(|node| {
            cluster
                .metric(*node, "cauce_under_replicated_partitions")
                .expect("a metrics answer")
        })
        .sum();
    assert_eq!(under_replicated, 3.0);

    // The old controller comes back, catches up, and is a live broker again.
    cluster.node(old_controller).restart();
    for node in 1..=3 {
        let metadata = cluster.wait_for_brokers(node, &[1, 2, 3]);
        assert_eq!(live_brokers(&metadata), vec![1, 2, 3]);
    }
    let metadata = cluster.wait_for_metadata(
        old_controller,
        Duration::from_secs(10),
        "both topics",
        |m| partitions_of(m, "before").is_some() && partitions_of(m, "after").is_some(),
    );
    assert_eq!(partitions_of(&metadata, "after").unwrap().len(), 2);
}

#[test]
fn a_stopping_broker_hands_its_leaderships_over_before_it_goes() {
    // A session long enough that only the controlled shutdown can move leaders in time.
    let mut cluster = Cluster::start(
        3,
        "broker.heartbeat.interval.ms = 300\nbroker.session.timeout.ms = 60000\n\
         leader.imbalance.check.interval.seconds = 1\n",
    );
    cluster.wait_for_brokers(1, &[1, 2, 3]);
    assert_eq!(cluster.create_topic(1, "handed-over", 6, 3), 0);
    cluster.wait_for_metadata(1, Duration::from_secs(10), "topic", |metadata| {
        partitions_of(metadata, "handed-over").is_some()
    });
    let stopped_at = std::time::Instant::now();
    assert!(cluster.node(2).stop().success(), "clean exit");
    let metadata =
        cluster.wait_for_metadata(1, Duration::from_secs(5), "leaders moved off 2", |m| {
            live_brokers(m) == [1, 3]
                && partitions_of(m, "handed-over").is_some_and(|partitions| {
                    partitions
                        .values()
                        .all(|view| view.leader != 2 && !view.isr.contains(&2))
                })
        });
    assert!(
        stopped_at.elapsed() < Duration::from_secs(20),
        "took {:?}",
        stopped_at.elapsed()
    );
    let partitions = partitions_of(&metadata, "handed-over").unwrap();
    assert!(
        partitions.values().all(|view| view.leader > 0),
        "{partitions:?}"
    );

    // Back again, it heartbeats, is unfenced, rejoins the ISRs as it catches up, and gets back
    // the leaderships it is the preferred replica of.
    cluster.node(2).restart();
    cluster.wait_for_metadata(
        1,
        Duration::from_secs(30),
        "2 back and leading again",
        |m| {
            live_brokers(m) == [1, 2, 3]
                && partitions_of(m, "handed-over").is_some_and(|partitions| {
                    partitions
                        .values()
                        .all(|view| view.isr.contains(&2) && view.leader == view.replicas[0])
                })
        },
    );
    // Every partition has its preferred leader: an explicit election has nothing to do.
    let mut client = RawClient::connect(cluster.node(3).address);
    let request = ElectLeadersRequest::default()
        .with_election_type(0)
        .with_timeout_ms(10_000)
        .with_topic_partitions(Some(vec![TopicPartitions::default()
            .with_topic(topic_name("handed-over"))
            .with_partitions(vec![0, 1, 7])]));
    let response: ElectLeadersResponse = client.call(ApiKey::ElectLeaders, 2, &request);
    let codes: Vec<(i32, i16)> = response.replica_election_results[0]
        .partition_result
        .iter()
        .map(|result| (result.partition_id, result.error_code))
        .collect();
    assert_eq!(
        codes,
        vec![
            (0, ResponseError::ElectionNotNeeded.code()),
            (1, ResponseError::ElectionNotNeeded.code()),
            (7, ResponseError::UnknownTopicOrPartition.code()),
        ]
    );
}

#[test]
fn a_broker_only_node_learns_the_metadata_and_hosts_replicas() {
    let mut cluster = Cluster::start_mixed(3, 1, FAST_MEMBERSHIP);
    // The fourth node votes in nothing, yet registers, and learns the log as a learner.
    for node in [1, 4] {
        cluster.wait_for_brokers(node, &[1, 2, 3, 4]);
    }
    assert_eq!(cluster.create_topic(4, "everywhere", 4, 4), 0);
    let metadata = cluster.wait_for_metadata(4, Duration::from_secs(10), "topic on 4", |m| {
        partitions_of(m, "everywhere").is_some_and(|partitions| partitions.len() == 4)
    });
    let partitions = partitions_of(&metadata, "everywhere").unwrap();
    // Replicas are spread from partition p's broker p+1: the broker-only node leads partition 3.
    assert_eq!(partitions[&3].leader, 4, "{partitions:?}");
    assert!(
        partitions.values().all(|view| view.isr.contains(&4)),
        "{partitions:?}"
    );
    // Writes with acks=all complete only once it has replicated them too.
    let batch = record_batch_of_values_stamped_now(&["replicated to a broker-only node"]);
    let mut to_leader = RawClient::connect(cluster.node(1).address);
    let accepted = produce_batch_to_partition_zero(&mut to_leader, "everywhere", &batch);
    assert_eq!(
        accepted.error_code, 0,
        "partition 0 (led by 1) with 4 in its ISR"
    );
    assert_eq!(
        cluster.metric(4, "cauce_under_replicated_partitions"),
        Some(0.0)
    );
}
