//! Faults in a three-node cluster: the active controller is killed over and over while an
//! idempotent `acks=all` producer writes, and `min.insync.replicas` refuses writes while a
//! replica is missing and takes them again once it is back in the ISR.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cauce_integration_tests::acked::{produce_until, read_and_check_partition, Produced};
use cauce_integration_tests::cluster::{
    live_brokers, partitions_of, Cluster, PartitionView, CHANGE_TIMEOUT, FAST_MEMBERSHIP,
};
use cauce_integration_tests::raw::{
    fetch_records_from_offset_to_log_end, produce_batch_to_partition_zero,
    record_batch_of_values_stamped_now,
};
use cauce_integration_tests::RawClient;
use cauce_protocol::ResponseError;
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::MetadataResponse;

/// Each partition of `topic` in `metadata`, or an empty map if the topic is not listed.
fn views(metadata: &MetadataResponse, topic: &str) -> BTreeMap<i32, PartitionView> {
    partitions_of(metadata, topic).unwrap_or_default()
}

#[test]
fn acknowledged_records_survive_killing_the_active_controller_five_times() {
    const TOPIC: &str = "controller-faults";
    const PARTITIONS: i32 = 3;
    let started = Instant::now();
    let mut cluster = Cluster::start(3, &format!("{FAST_MEMBERSHIP}min.insync.replicas = 2\n"));
    cluster.create_fully_replicated_topic(TOPIC, PARTITIONS);

    let stop = Arc::new(AtomicBool::new(false));
    let produced = Arc::new(Produced::default());
    let producer = {
        let (bootstrap, stop, produced) = (cluster.bootstrap(), stop.clone(), produced.clone());
        std::thread::spawn(move || produce_until(bootstrap, TOPIC, PARTITIONS, stop, produced))
    };
    produced.wait_for_acknowledgements_beyond(
        &[0; PARTITIONS as usize],
        Duration::from_secs(15),
        "before any fault",
    );

    let mut last_killed = 0;
    for round in 1..=5 {
        let round_started = Instant::now();
        // Ask a node that was not just restarted, so its view of the quorum is settled.
        let observer = (1..=3).find(|node| *node != last_killed).unwrap();
        let controller = cluster.metadata(observer).controller_id.0;
        assert!(
            (1..=3).contains(&controller),
            "round {round}: node {observer} names no active controller ({controller})"
        );
        cluster.node(controller).kill9();
        last_killed = controller;
        let remaining: Vec<i32> = (1..=3).filter(|node| *node != controller).collect();
        let survivor = remaining[0];

        let metadata = cluster.wait_for_metadata(
            survivor,
            CHANGE_TIMEOUT,
            &format!("a controller other than the killed {controller} and brokers {remaining:?}"),
            |metadata| {
                live_brokers(metadata) == remaining && remaining.contains(&metadata.controller_id.0)
            },
        );
        let new_controller = metadata.controller_id.0;
        let failed_over = round_started.elapsed();
        // The other survivor agrees on who the controller is.
        cluster.wait_for_metadata(
            remaining[1],
            Duration::from_secs(10),
            &format!("controller {new_controller}"),
            |metadata| metadata.controller_id.0 == new_controller,
        );
        // Fencing moved the killed broker out of every leadership and ISR.
        let fenced = cluster.wait_for_metadata(
            survivor,
            Duration::from_secs(10),
            &format!("broker {controller} out of every leadership and ISR"),
            |metadata| {
                let current = views(metadata, TOPIC);
                current.len() == PARTITIONS as usize
                    && current.values().all(|view| {
                        remaining.contains(&view.leader) && !view.isr.contains(&controller)
                    })
            },
        );
        for (partition, view) in views(&fenced, TOPIC) {
            assert_eq!(
                view.isr.len(),
                2,
                "round {round}: partition {partition} keeps both live replicas in its ISR: {view:?}"
            );
        }
        // Two in-sync replicas satisfy min.insync.replicas = 2: every partition keeps taking
        // acks=all writes while the killed node is down.
        let before = produced.counts(PARTITIONS);
        produced.wait_for_acknowledgements_beyond(
            &before,
            Duration::from_secs(20),
            &format!("round {round}, node {controller} down"),
        );

        cluster.node(controller).restart();
        cluster.wait_for_brokers(survivor, &[1, 2, 3]);
        let rejoined = round_started.elapsed();
        // A restarted broker catches up and rejoins the ISR of every partition.
        for node in [survivor, controller] {
            cluster.wait_for_full_isrs(
                node,
                TOPIC,
                PARTITIONS,
                &[1, 2, 3],
                &format!(
                    "round {round}: restarted broker {controller} did not rejoin the ISR of \
                     every partition"
                ),
            );
        }
        eprintln!(
            "round {round}: killed controller {controller}, new controller {new_controller} \
             with brokers {remaining:?} after {failed_over:?}, all three listed after \
             {rejoined:?}, ISRs full after {:?}; acknowledged per partition {:?}",
            round_started.elapsed(),
            produced.counts(PARTITIONS)
        );
    }
    // Some writes after the last rejoin, with the full ISR.
    let before = produced.counts(PARTITIONS);
    produced.wait_for_acknowledgements_beyond(
        &before,
        Duration::from_secs(15),
        "after the last restart",
    );
    stop.store(true, Ordering::Relaxed);
    producer.join().expect("producer thread");

    produced.assert_not_fatal();
    let acknowledged = produced.acknowledged.lock().unwrap().clone();
    let total: usize = acknowledged.values().map(Vec::len).sum();
    let (failed, reasons) = produced.failed.lock().unwrap().clone();
    eprintln!(
        "{total} records acknowledged, {failed} deliveries failed, faults done after {:?}",
        started.elapsed()
    );
    assert!(total > 1000, "only {total} records were acknowledged");
    // With at most one of three replicas down and min.insync.replicas = 2, every record can be
    // written within the producer's 60 s: a failed delivery is a broker fault.
    assert_eq!(failed, 0, "deliveries failed, first ones: {reasons:#?}");
    cluster.wait_for_brokers(1, &[1, 2, 3]);
    let bootstrap = cluster.bootstrap();
    for partition in 0..PARTITIONS {
        let acked = acknowledged.get(&partition).cloned().unwrap_or_default();
        let stored = read_and_check_partition(&bootstrap, TOPIC, partition, PARTITIONS, &acked);
        eprintln!(
            "partition {partition}: {} acknowledged, {} stored",
            acked.len(),
            stored.len()
        );
    }
    eprintln!("test took {:?}", started.elapsed());
}

/// Produces `value` as one batch with acks=all to partition 0 of `topic` through `client`,
/// trying again for a few seconds while the answer is one given before anything is appended
/// and that goes away by itself (`retry_on`).
fn produce_value(
    client: &mut RawClient,
    topic: &str,
    value: &str,
    retry_on: &[ResponseError],
) -> PartitionProduceResponse {
    let batch = record_batch_of_values_stamped_now(&[value]);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let response = produce_batch_to_partition_zero(client, topic, &batch);
        let retriable = retry_on
            .iter()
            .any(|error| error.code() == response.error_code);
        if !retriable || Instant::now() >= deadline {
            return response;
        }
        eprintln!(
            "produce {value}: error {} ({:?}), trying again",
            response.error_code, response.error_message
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn produce_below_min_insync_replicas_is_refused_and_works_again_when_a_replica_returns() {
    const TOPIC: &str = "three-copies";
    let started = Instant::now();
    let mut cluster = Cluster::start(3, &format!("{FAST_MEMBERSHIP}min.insync.replicas = 3\n"));
    for node in 1..=3 {
        cluster.wait_for_brokers(node, &[1, 2, 3]);
    }
    assert_eq!(cluster.create_topic(1, TOPIC, 1, 3), 0);
    let view = cluster.wait_for_full_isrs(1, TOPIC, 1, &[1, 2, 3], "the new topic")[&0].clone();
    let leader = view.leader;
    cluster.wait_for_full_isrs(leader, TOPIC, 1, &[1, 2, 3], "the new topic");
    // A follower that is not the active controller, so that no election gets in the way.
    let controller = cluster.metadata(leader).controller_id.0;
    let follower = view
        .replicas
        .iter()
        .copied()
        .find(|replica| *replica != leader && *replica != controller)
        .expect("a follower that is not the controller");

    let mut client = RawClient::connect(cluster.node(leader).address);
    let first = produce_value(
        &mut client,
        TOPIC,
        "accepted-with-three",
        &[
            ResponseError::UnknownTopicOrPartition,
            ResponseError::NotLeaderOrFollower,
        ],
    );
    assert_eq!(
        (first.error_code, first.base_offset),
        (0, 0),
        "first produce with all three replicas in sync: {:?}",
        first.error_message
    );

    cluster.node(follower).kill9();
    let killed = Instant::now();
    let shrunk = cluster.wait_for_metadata(
        leader,
        Duration::from_secs(15),
        &format!("broker {follower} fenced and out of the ISR"),
        |metadata| {
            !live_brokers(metadata).contains(&follower)
                && views(metadata, TOPIC)
                    .get(&0)
                    .is_some_and(|view| !view.isr.contains(&follower))
        },
    );
    let shrunk_after = killed.elapsed();
    let view = views(&shrunk, TOPIC)[&0].clone();
    assert_eq!(
        view.leader, leader,
        "the leader kept its leadership: {view:?}"
    );
    assert_eq!(view.isr.len(), 2, "{view:?}");
    // The Metadata answer comes from the image; the leader's partition adopts the new ISR a
    // moment after the image changes. Give it that moment.
    std::thread::sleep(Duration::from_millis(300));
    let refused = produce_value(&mut client, TOPIC, "refused-with-two", &[]);
    assert_eq!(
        refused.error_code,
        ResponseError::NotEnoughReplicas.code(),
        "produce with two of three replicas in sync and min.insync.replicas = 3: {refused:?}"
    );
    // Kafka's number for NOT_ENOUGH_REPLICAS, independent of the broker's own error table.
    assert_eq!(refused.error_code, 19);
    assert_eq!(refused.base_offset, -1, "{refused:?}");

    cluster.node(follower).restart();
    let restarted = Instant::now();
    cluster.wait_for_full_isrs(
        leader,
        TOPIC,
        1,
        &[1, 2, 3],
        &format!("restarted broker {follower} did not rejoin the ISR"),
    );
    let rejoined_after = restarted.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let again = produce_value(
        &mut client,
        TOPIC,
        "accepted-with-three-again",
        &[ResponseError::NotEnoughReplicas],
    );
    assert_eq!(
        (again.error_code, again.base_offset),
        (0, 1),
        "produce once the follower is back in sync: {:?}",
        again.error_message
    );

    let stored: Vec<(i64, String)> = fetch_records_from_offset_to_log_end(&mut client, TOPIC, 0)
        .into_iter()
        .map(|record| (record.offset, record.value))
        .collect();
    assert_eq!(
        stored,
        vec![
            (0, "accepted-with-three".to_string()),
            (1, "accepted-with-three-again".to_string()),
        ],
        "partition 0 holds the two accepted records and not the refused one"
    );
    eprintln!(
        "leader {leader}, killed follower {follower}: ISR shrank {shrunk_after:?} after the \
         kill, rejoined {rejoined_after:?} after the restart; test took {:?}",
        started.elapsed()
    );
}
