//! Partition data replicated across three brokers: followers fetch from the leader, `acks=all`
//! waits for the in-sync replicas, and acknowledged records survive the leader being killed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cauce_integration_tests::clients::{
    consume_offsets_and_payloads_from_partition_start, future_producer_with_settings,
};
use cauce_integration_tests::cluster::{live_brokers, partitions_of, Cluster, FAST_MEMBERSHIP};
use rdkafka::producer::FutureRecord;

const TOPIC: &str = "durable";
const PARTITIONS: i32 = 3;

/// Acknowledged records by partition: (offset, value) in acknowledgement order.
type Acknowledged = Arc<Mutex<BTreeMap<i32, Vec<(i64, String)>>>>;

/// Sends numbered values round-robin over the partitions with an idempotent `acks=all`
/// producer until `stop`, recording what was acknowledged.
fn produce_until(bootstrap: String, stop: Arc<AtomicBool>, acknowledged: Acknowledged) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let producer = future_producer_with_settings(
            &bootstrap,
            &[
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("message.timeout.ms", "60000"),
                ("linger.ms", "2"),
            ],
        );
        let mut pending = Vec::new();
        let mut sent = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let partition = (sent % PARTITIONS as u64) as i32;
            let value = format!("value-{sent}");
            let delivery = producer
                .send_result(
                    FutureRecord::<(), str>::to(TOPIC)
                        .partition(partition)
                        .payload(&value),
                )
                .map_err(|(error, _)| error)
                .expect("queue a record");
            pending.push((partition, value, delivery));
            sent += 1;
            if pending.len() >= 200 {
                settle(&mut pending, &acknowledged).await;
            }
            if sent.is_multiple_of(50) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        settle(&mut pending, &acknowledged).await;
    });
}

/// Waits for the queued deliveries and records the successful ones.
async fn settle(
    pending: &mut Vec<(i32, String, rdkafka::producer::DeliveryFuture)>,
    acknowledged: &Acknowledged,
) {
    for (partition, value, delivery) in pending.drain(..) {
        if let Ok(Ok(delivered)) = delivery.await {
            assert_eq!(delivered.partition, partition);
            acknowledged
                .lock()
                .unwrap()
                .entry(partition)
                .or_default()
                .push((delivered.offset, value));
        }
    }
}

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
    let acknowledged: Acknowledged = Arc::default();
    let producer = {
        let (bootstrap, stop, acknowledged) =
            (cluster.bootstrap(), stop.clone(), acknowledged.clone());
        std::thread::spawn(move || produce_until(bootstrap, stop, acknowledged))
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

    let acknowledged = acknowledged.lock().unwrap().clone();
    let total: usize = acknowledged.values().map(Vec::len).sum();
    assert!(total > 1000, "only {total} records were acknowledged");
    let bootstrap = cluster.bootstrap();
    assert_eq!(live_brokers(&cluster.metadata(1)), vec![1, 2, 3]);
    for (partition, acked) in &acknowledged {
        let mut by_offset = acked.clone();
        by_offset.sort_unstable();
        let last = by_offset.last().unwrap().0;
        let deadline = Instant::now() + Duration::from_secs(30);
        let stored = consume_offsets_and_payloads_from_partition_start(
            &bootstrap,
            TOPIC,
            *partition,
            (last + 1) as usize,
            deadline - Instant::now(),
        );
        let stored: BTreeMap<i64, String> = stored.into_iter().collect();
        for (offset, value) in &by_offset {
            assert_eq!(
                stored.get(offset),
                Some(value),
                "partition {partition}: acknowledged offset {offset} lost or changed"
            );
        }
        let mut values: Vec<&String> = stored.values().collect();
        let count = values.len();
        values.sort_unstable();
        values.dedup();
        assert_eq!(
            values.len(),
            count,
            "partition {partition} holds a value twice"
        );
    }
}
