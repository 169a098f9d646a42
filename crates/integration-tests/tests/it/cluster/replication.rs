//! Partition data replicated across three brokers: followers fetch from the leader, `acks=all`
//! waits for the in-sync replicas, and acknowledged records survive the leader being killed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cauce_integration_tests::acked::{produce_until, read_and_check_partition, Produced};
use cauce_integration_tests::cluster::{partitions_of, Cluster, FAST_MEMBERSHIP};
use cauce_integration_tests::raw::{
    fetch_records_from_offset_to_log_end, log_end_offset, produce_batch_to_partition_zero,
    record_batch_of_values_stamped_now,
};
use cauce_integration_tests::RawClient;

const TOPIC: &str = "durable";
const PARTITIONS: i32 = 3;

#[test]
fn acknowledged_records_survive_killing_the_leader_five_times() {
    let mut cluster = Cluster::start(
        3,
        &format!("{FAST_MEMBERSHIP}min.insync.replicas = 2\nreplica.lag.time.max.ms = 3000\n"),
    );
    cluster.wait_for_brokers(1, &[1, 2, 3]);
    assert_eq!(cluster.create_topic(1, TOPIC, PARTITIONS, 3), 0);
    cluster.wait_for_metadata(1, Duration::from_secs(10), "topic", |metadata| {
        partitions_of(metadata, TOPIC).is_some()
    });

    let stop = Arc::new(AtomicBool::new(false));
    let produced = Arc::new(Produced::default());
    let producer = {
        let (bootstrap, stop, produced) = (cluster.bootstrap(), stop.clone(), produced.clone());
        std::thread::spawn(move || produce_until(bootstrap, TOPIC, PARTITIONS, stop, produced))
    };
    std::thread::sleep(Duration::from_secs(1));
    for round in 0..5 {
        let observer = if round % 2 == 0 { 1 } else { 2 };
        let leader = {
            let metadata = cluster.metadata(observer);
            partitions_of(&metadata, TOPIC).unwrap()[&(round % PARTITIONS)].leader
        };
        assert!(leader > 0, "partition {} has a leader", round % PARTITIONS);
        cluster.node(leader).kill9();
        let survivor = (1..=3).find(|node| *node != leader).unwrap();
        let remaining: Vec<i32> = (1..=3).filter(|node| *node != leader).collect();
        cluster.wait_for_brokers(survivor, &remaining);
        std::thread::sleep(Duration::from_millis(500));
        cluster.node(leader).restart();
        cluster.wait_for_brokers(survivor, &[1, 2, 3]);
        // Let the restarted broker catch up and rejoin the ISRs before the next kill.
        cluster.wait_for_metadata(survivor, Duration::from_secs(30), "full ISRs", |metadata| {
            partitions_of(metadata, TOPIC)
                .is_some_and(|partitions| partitions.values().all(|view| view.isr.len() == 3))
        });
    }
    stop.store(true, Ordering::Relaxed);
    producer.join().expect("producer thread");
    produced.assert_not_fatal();

    let total: usize = produced.counts(PARTITIONS).iter().sum();
    assert!(total > 1000, "only {total} records were acknowledged");
    cluster.wait_for_brokers(1, &[1, 2, 3]);
    let bootstrap = cluster.bootstrap();
    for partition in 0..PARTITIONS {
        let acknowledged = produced
            .acknowledged
            .lock()
            .unwrap()
            .get(&partition)
            .cloned()
            .unwrap_or_default();
        read_and_check_partition(&bootstrap, TOPIC, partition, PARTITIONS, &acknowledged);
    }
}

/// A leader restarted while its followers are down starts at its checkpointed high watermark,
/// so consumers see what was committed before, not an empty partition until followers return.
#[test]
fn a_restarted_leader_starts_at_its_checkpointed_high_watermark() {
    const TOPIC: &str = "checkpointed";
    // A long session: nobody is fenced, the leadership stays where it is.
    let mut cluster = Cluster::start(
        3,
        "broker.session.timeout.ms = 60000\nreplica.high.watermark.checkpoint.interval.ms = 100\n",
    );
    let leader = cluster.create_fully_replicated_topic(TOPIC, 1)[&0].leader;
    let mut client = RawClient::connect(cluster.node(leader).address);
    for round in 0..5 {
        let values: Vec<String> = (0..4).map(|n| format!("committed-{round}-{n}")).collect();
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let answer = produce_batch_to_partition_zero(
            &mut client,
            TOPIC,
            &record_batch_of_values_stamped_now(&values),
        );
        assert_eq!(answer.error_code, 0, "{answer:?}");
    }
    assert_eq!(log_end_offset(&mut client, TOPIC), 20);
    // Several checkpoint intervals.
    std::thread::sleep(Duration::from_millis(600));

    let followers: Vec<i32> = (1..=3).filter(|node| *node != leader).collect();
    for follower in &followers {
        cluster.node(*follower).kill9();
    }
    cluster.node(leader).kill9();
    cluster.node(leader).restart();
    let mut client = RawClient::connect(cluster.node(leader).address);
    assert_eq!(
        log_end_offset(&mut client, TOPIC),
        20,
        "the restarted leader's high watermark, with no follower to move it"
    );
    let fetched = fetch_records_from_offset_to_log_end(&mut client, TOPIC, 0);
    assert_eq!(fetched.len(), 20);
    assert_eq!(fetched[19].value, "committed-4-3");
}

/// A leader killed and restarted long before its session would run out does not keep its
/// leadership at the old epoch: the registration from its new run fences it, the partition moves
/// to another in-sync replica, and the restarted broker returns as a follower.
#[test]
fn a_leader_restarted_within_its_session_hands_over_and_returns_as_a_follower() {
    const TOPIC: &str = "restarted";
    let mut cluster = Cluster::start(
        3,
        "broker.heartbeat.interval.ms = 300\nbroker.session.timeout.ms = 60000\n",
    );
    let leader = cluster.create_fully_replicated_topic(TOPIC, 1)[&0].leader;
    let others: Vec<i32> = (1..=3).filter(|node| *node != leader).collect();
    let restarted = Instant::now();
    cluster.node(leader).kill9();
    cluster.node(leader).restart();
    cluster.wait_for_metadata(
        others[0],
        Duration::from_secs(20),
        "the leadership moved off the restarted broker",
        |metadata| {
            partitions_of(metadata, TOPIC)
                .is_some_and(|partitions| others.contains(&partitions[&0].leader))
        },
    );
    assert!(
        restarted.elapsed() < Duration::from_secs(30),
        "moved by the restart, not by the 60 s session running out"
    );
    cluster.wait_for_full_isrs(
        others[0],
        TOPIC,
        1,
        &[1, 2, 3],
        "the restarted broker back in the ISR",
    );
}
