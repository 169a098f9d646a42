//! A broker cut off from the rest of its cluster by a network partition (proxies in front of
//! every listener drop the traffic between it and the other nodes; clients still reach it).
//! While isolated it cannot acknowledge `acks=all` writes; the others fence it and elect a new
//! leader that takes writes; once the partition heals the broker truncates what it appended
//! alone, catches up and rejoins the ISR.

use std::time::Instant;

use cauce_integration_tests::acked::read_whole_partition;
use cauce_integration_tests::clients::future_producer_with_settings;
use cauce_integration_tests::cluster::{partitions_of, Cluster, CHANGE_TIMEOUT, FAST_MEMBERSHIP};
use cauce_integration_tests::raw::{produce_batch, record_batch_of_values_stamped_now, topic_name};
use cauce_integration_tests::RawClient;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{ApiKey, ElectLeadersRequest, ElectLeadersResponse};
use rdkafka::producer::FutureRecord;

const TOPIC: &str = "split";
const PARTITIONS: i32 = 3;
/// Records written before the cut, and again on the majority side during it.
const PER_PHASE: usize = 40;
/// acks=all writes tried on the isolated broker.
const ISOLATED_WRITES: usize = 3;

/// Sends `<prefix>-<n>` for n below `count` to `partition` with `acks=all` through `bootstrap`;
/// returns each (offset, value), panicking if one is not acknowledged.
fn send_values(bootstrap: &str, partition: i32, prefix: &str, count: usize) -> Vec<(i64, String)> {
    let producer = future_producer_with_settings(
        bootstrap,
        &[("acks", "all"), ("enable.idempotence", "true")],
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut pending = Vec::new();
        for n in 0..count {
            let value = format!("{prefix}-{n}");
            let record = FutureRecord::<(), str>::to(TOPIC)
                .partition(partition)
                .payload(&value);
            let delivery = producer
                .send_result(record)
                .unwrap_or_else(|(error, _)| panic!("queueing {value}: {error}"));
            pending.push((value, delivery));
        }
        let mut acknowledged = Vec::new();
        for (value, delivery) in pending {
            match delivery.await {
                Ok(Ok(delivered)) => acknowledged.push((delivered.offset, value)),
                other => panic!("{value} was not acknowledged: {other:?}"),
            }
        }
        acknowledged
    })
}

/// Asks node `asked` to move `partition`'s leadership to its preferred replica.
fn elect_preferred_leader(cluster: &mut Cluster, asked: i32, partition: i32) -> i16 {
    let mut client = RawClient::connect(cluster.node(asked).address);
    let request = ElectLeadersRequest::default()
        .with_election_type(0)
        .with_timeout_ms(10_000)
        .with_topic_partitions(Some(vec![TopicPartitions::default()
            .with_topic(topic_name(TOPIC))
            .with_partitions(vec![partition])]));
    let response: ElectLeadersResponse = client.call(ApiKey::ElectLeaders, 2, &request);
    response.replica_election_results[0].partition_result[0].error_code
}

#[test]
fn an_isolated_leader_acknowledges_nothing_and_drops_its_unreplicated_tail_when_it_returns() {
    cut_off_a_leader(false);
}

#[test]
fn an_isolated_active_controller_that_leads_a_partition_loses_both_roles_and_catches_up() {
    cut_off_a_leader(true);
}

/// Cuts off the leader of a partition, the active controller (`controller`) or another node,
/// and checks what it acknowledges while cut off and what it stores once back.
fn cut_off_a_leader(controller: bool) {
    let started = Instant::now();
    let mut cluster = Cluster::start_behind_proxies(
        3,
        &format!(
            "{FAST_MEMBERSHIP}min.insync.replicas = 2\nreplica.lag.time.max.ms = 2000\nauto.leader.rebalance.enable = false\n"
        ),
    );
    let views = cluster.create_fully_replicated_topic(TOPIC, PARTITIONS);
    let active_controller = cluster.metadata(1).controller_id.0;
    // Three partitions spread over three brokers: one is led by the active controller, whose
    // isolation also makes the majority elect a new controller, and two by other nodes.
    let (partition, isolated) = views
        .iter()
        .find(|(_, view)| (view.leader == active_controller) == controller)
        .map(|(partition, view)| (*partition, view.leader))
        .expect("each broker leads one of the new partitions");
    assert_eq!(
        views[&partition].replicas[0], isolated,
        "a new partition is led by its preferred replica"
    );
    let others: Vec<i32> = (1..=3).filter(|node| *node != isolated).collect();
    let before = send_values(&cluster.bootstrap(), partition, "before", PER_PHASE);

    cluster.isolate(isolated);
    eprintln!("node {isolated}, leader of partition {partition}, is cut off");
    // The isolated leader still takes writes from a client that reaches it, but its followers
    // cannot fetch them and it cannot reach the controller to shrink the ISR, so none of them
    // is acknowledged.
    let mut client = RawClient::connect(cluster.node(isolated).address);
    for n in 0..ISOLATED_WRITES {
        let value = format!("isolated-{n}");
        let batch = record_batch_of_values_stamped_now(&[&value]);
        let answer = produce_batch(&mut client, TOPIC, partition, &batch);
        assert_ne!(
            answer.error_code, 0,
            "the isolated broker acknowledged {value} with acks=all at offset {}",
            answer.base_offset
        );
        eprintln!("isolated write {value}: error {}", answer.error_code);
    }
    // They are in its log, past what was committed: the tail it must drop later.
    let log_end = format!("cauce_log_end_offset{{topic=\"{TOPIC}\",partition=\"{partition}\"}}");
    assert_eq!(
        cluster.metric(isolated, &log_end),
        Some((PER_PHASE + ISOLATED_WRITES) as f64),
        "the isolated leader appended the writes it could not acknowledge"
    );

    // The majority (with an active controller among them, elected anew if need be) fences it
    // and elects a leader from the rest of the ISR, which takes writes.
    let moved = cluster.wait_for_metadata(others[0], CHANGE_TIMEOUT, "a new leader", |metadata| {
        others.contains(&metadata.controller_id.0)
            && partitions_of(metadata, TOPIC).is_some_and(|partitions| {
                let view = &partitions[&partition];
                others.contains(&view.leader) && !view.isr.contains(&isolated)
            })
    });
    eprintln!(
        "new leadership: {:?}",
        partitions_of(&moved, TOPIC).unwrap()[&partition]
    );
    let majority = others
        .iter()
        .map(|node| cluster.node(*node).bootstrap())
        .collect::<Vec<_>>()
        .join(",");
    let during = send_values(&majority, partition, "during", PER_PHASE);

    cluster.heal(isolated);
    // Back in touch, it learns it lost the leadership, truncates what only it had, catches up
    // and rejoins every ISR.
    for node in 1..=3 {
        cluster.wait_for_full_isrs(node, TOPIC, PARTITIONS, &[1, 2, 3], "the healed broker");
    }
    // Leadership goes back to it, so that what it stores is what consumers read.
    assert_eq!(
        elect_preferred_leader(&mut cluster, others[0], partition),
        0
    );
    cluster.wait_for_metadata(
        isolated,
        CHANGE_TIMEOUT,
        "its leadership back",
        |metadata| {
            partitions_of(metadata, TOPIC)
                .is_some_and(|partitions| partitions[&partition].leader == isolated)
        },
    );
    let expected: Vec<(i64, String)> = before.into_iter().chain(during).collect();
    let stored = read_whole_partition(
        &cluster.node(isolated).bootstrap(),
        TOPIC,
        partition,
        expected.len() as i64,
    );
    assert_eq!(
        stored, expected,
        "node {isolated} must hold exactly the acknowledged records, at their offsets, and none \
         of those it took while isolated"
    );
    eprintln!("test took {:?}", started.elapsed());
}
