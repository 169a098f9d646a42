//! A consumer group on a three-broker cluster keeps consuming while the broker coordinating it
//! is killed and restarted, and its committed offsets survive: they end equal to what the
//! group processed, as the coordinator's successor reports after one more kill.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cauce_integration_tests::cluster::{partitions_of, Cluster, FAST_MEMBERSHIP};
use cauce_integration_tests::group_protocol::{fetch_committed_offsets, find_group_coordinators};
use cauce_integration_tests::RawClient;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;

const TOPIC: &str = "events";
const GROUP: &str = "survivors";
const PARTITIONS: i32 = 3;
const PER_PARTITION: i64 = 400;

/// (partition, offset) of every record the consumer processed.
type Processed = Arc<Mutex<BTreeSet<(i32, i64)>>>;

fn produce_everything(bootstrap: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .create()
            .unwrap();
        for index in 0..PER_PARTITION {
            for partition in 0..PARTITIONS {
                let value = format!("{partition}-{index}");
                producer
                    .send(
                        FutureRecord::<(), str>::to(TOPIC)
                            .partition(partition)
                            .payload(&value),
                        Duration::from_secs(30),
                    )
                    .await
                    .expect("record acknowledged");
            }
        }
    });
}

/// Consumes slowly, committing each record synchronously after processing it, until `stop`.
fn consume_until(bootstrap: String, stop: Arc<AtomicBool>, processed: Processed) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", GROUP)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "500")
        .create()
        .unwrap();
    consumer.subscribe(&[TOPIC]).unwrap();
    while !stop.load(Ordering::Relaxed) {
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        processed
            .lock()
            .unwrap()
            .insert((message.partition(), message.offset()));
        std::thread::sleep(Duration::from_millis(2));
        // A commit during a failover may fail; the next one covers it.
        let _ = consumer.commit_message(&message, CommitMode::Sync);
    }
    // Commit the positions once more, now that the cluster is whole: a commit that failed
    // during a failover is covered by this one.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let committed = consumer
            .position()
            .and_then(|positions| consumer.commit(&positions, CommitMode::Sync));
        if committed.is_ok() || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    consumer.unsubscribe();
}

/// The node coordinating the group, as node `asked` sees it.
fn coordinator(cluster: &mut Cluster, asked: i32) -> Option<i32> {
    let mut client = RawClient::connect(cluster.node(asked).address);
    let found = find_group_coordinators(&mut client, &[GROUP]);
    found
        .first()
        .filter(|entry| entry.error_code == 0)
        .map(|entry| entry.node_id.0)
}

#[test]
fn a_group_consumes_through_coordinator_failovers_and_keeps_its_offsets() {
    let mut cluster = Cluster::start(
        3,
        &format!(
            "{FAST_MEMBERSHIP}min.insync.replicas = 2\noffsets.topic.num.partitions = 6\ngroup.initial.rebalance.delay.ms = 0\n"
        ),
    );
    cluster.wait_for_brokers(1, &[1, 2, 3]);
    assert_eq!(cluster.create_topic(1, TOPIC, PARTITIONS, 3), 0);
    let bootstrap = cluster.bootstrap();
    produce_everything(&bootstrap);

    let stop = Arc::new(AtomicBool::new(false));
    let processed: Processed = Arc::default();
    let consumer = {
        let (bootstrap, stop, processed) = (bootstrap.clone(), stop.clone(), processed.clone());
        std::thread::spawn(move || consume_until(bootstrap, stop, processed))
    };
    let total = (PER_PARTITION * PARTITIONS as i64) as usize;
    for round in 0..3 {
        // Wait for some progress, then kill whoever coordinates the group.
        let before = processed.lock().unwrap().len();
        let deadline = Instant::now() + Duration::from_secs(30);
        while processed.lock().unwrap().len() < (before + 100).min(total) {
            assert!(
                Instant::now() < deadline,
                "round {round}: the group stopped consuming"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let asked = 1 + round % 3;
        let Some(victim) = coordinator(&mut cluster, asked) else {
            panic!("round {round}: no coordinator for the group");
        };
        cluster.node(victim).kill9();
        let survivor = (1..=3).find(|node| *node != victim).unwrap();
        let remaining: Vec<i32> = (1..=3).filter(|node| *node != victim).collect();
        cluster.wait_for_brokers(survivor, &remaining);
        cluster.node(victim).restart();
        cluster.wait_for_brokers(survivor, &[1, 2, 3]);
        cluster.wait_for_metadata(survivor, Duration::from_secs(30), "full ISRs", |metadata| {
            partitions_of(metadata, TOPIC)
                .is_some_and(|partitions| partitions.values().all(|view| view.isr.len() == 3))
        });
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while processed.lock().unwrap().len() < total {
        assert!(
            Instant::now() < deadline,
            "only {} of {total} records processed",
            processed.lock().unwrap().len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    consumer.join().expect("consumer thread");

    // Every record was processed, and the group's committed offsets are exactly past them.
    let processed = processed.lock().unwrap().clone();
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    for (partition, offset) in &processed {
        let end = ends.entry(*partition).or_default();
        *end = (*end).max(offset + 1);
    }
    assert_eq!(
        ends.values().copied().collect::<Vec<_>>(),
        vec![PER_PARTITION; 3]
    );
    // The commits were acknowledged by a coordinator that now dies without a clean stop: its
    // successor must have them.
    let last_coordinator = coordinator(&mut cluster, 1).expect("a coordinator");
    cluster.node(last_coordinator).kill9();
    let survivor = (1..=3).find(|node| *node != last_coordinator).unwrap();
    let remaining: Vec<i32> = (1..=3).filter(|node| *node != last_coordinator).collect();
    cluster.wait_for_brokers(survivor, &remaining);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let Some(node) = coordinator(&mut cluster, survivor) else {
            assert!(
                Instant::now() < deadline,
                "no coordinator after the failovers"
            );
            std::thread::sleep(Duration::from_millis(200));
            continue;
        };
        let mut client = RawClient::connect(cluster.node(node).address);
        let (error, committed) = fetch_committed_offsets(&mut client, GROUP, TOPIC, &[0, 1, 2]);
        if error != 0 {
            assert!(
                Instant::now() < deadline,
                "OffsetFetch kept failing with {error}"
            );
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        let committed: BTreeMap<i32, i64> = committed
            .iter()
            .map(|entry| (entry.partition, entry.offset))
            .collect();
        assert_eq!(
            committed, ends,
            "committed offsets differ from what was processed"
        );
        break;
    }
}
