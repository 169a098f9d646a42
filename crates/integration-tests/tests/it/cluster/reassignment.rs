//! Partition reassignment (KIP-455) on a live cluster: a fourth, broker-only node is added and a
//! partition's replicas move onto it and off an old broker while a producer keeps writing and a
//! consumer keeps reading.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cauce_integration_tests::acked::{produce_until, read_and_check_partition, Produced};
use cauce_integration_tests::clients::consumer_assigned_from_partition_start;
use cauce_integration_tests::cluster::{partitions_of, Cluster, FAST_MEMBERSHIP};
use cauce_integration_tests::raw::topic_name;
use cauce_integration_tests::RawClient;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};
use rdkafka::Message;

const TOPIC: &str = "moving";

/// Reads partition 0 from the start, recording offsets, until `stop`; then drains what is left.
fn consume_until(bootstrap: &str, stop: &AtomicBool, consumed: &Mutex<Vec<i64>>) {
    let consumer = consumer_assigned_from_partition_start(bootstrap, TOPIC, 0);
    let mut idle_since = Instant::now();
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                consumed.lock().unwrap().push(message.offset());
                idle_since = Instant::now();
            }
            // Leadership moves surface as transient errors; the consumer goes on by itself.
            Some(Err(error)) => eprintln!("consumer: {error}"),
            None => {
                if stop.load(Ordering::Relaxed) && idle_since.elapsed() > Duration::from_secs(3) {
                    return;
                }
            }
        }
    }
}

fn reassign(client: &mut RawClient, partition: i32, replicas: &[i32]) -> i16 {
    alter_reassignment(client, partition, Some(replicas))
}

/// Cancels the partition's reassignment in progress: a null replica list.
fn cancel_reassignment(client: &mut RawClient, partition: i32) -> i16 {
    alter_reassignment(client, partition, None)
}

fn alter_reassignment(client: &mut RawClient, partition: i32, replicas: Option<&[i32]>) -> i16 {
    let request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![ReassignableTopic::default()
            .with_name(topic_name(TOPIC))
            .with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(partition)
                .with_replicas(replicas.map(|replicas| {
                    replicas.iter().copied().map(BrokerId).collect()
                }))])]);
    let response: AlterPartitionReassignmentsResponse =
        client.call(ApiKey::AlterPartitionReassignments, 0, &request);
    assert_eq!(response.error_code, 0);
    response.responses[0].partitions[0].error_code
}

fn reassignments_in_progress(client: &mut RawClient) -> usize {
    let response: ListPartitionReassignmentsResponse = client.call(
        ApiKey::ListPartitionReassignments,
        0,
        &ListPartitionReassignmentsRequest::default().with_timeout_ms(10_000),
    );
    assert_eq!(response.error_code, 0);
    response
        .topics
        .iter()
        .map(|topic| topic.partitions.len())
        .sum()
}

/// Polls ListPartitionReassignments until it lists `expected` partitions: the node asked
/// answers from its own copy of the metadata, which follows the controller's by a moment.
fn wait_for_reassignments_in_progress(client: &mut RawClient, expected: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listed = reassignments_in_progress(client);
        if listed == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{listed} reassignments listed, not {expected}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_partition_moves_onto_a_new_broker_while_clients_produce_and_consume() {
    let mut cluster =
        Cluster::start_mixed(3, 1, &format!("{FAST_MEMBERSHIP}min.insync.replicas = 2\n"));
    cluster.wait_for_brokers(1, &[1, 2, 3, 4]);
    let mut admin = RawClient::connect(cluster.node(2).address);
    let request = kafka_protocol::messages::CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            kafka_protocol::messages::create_topics_request::CreatableTopic::default()
                .with_name(topic_name(TOPIC))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
                .with_assignments(vec![
                    kafka_protocol::messages::create_topics_request::CreatableReplicaAssignment::default()
                        .with_partition_index(0)
                        .with_broker_ids(vec![BrokerId(1), BrokerId(2), BrokerId(3)]),
                ]),
        ]);
    let created: kafka_protocol::messages::CreateTopicsResponse =
        admin.call(ApiKey::CreateTopics, 7, &request);
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
    cluster.wait_for_metadata(1, Duration::from_secs(10), "full ISR", |metadata| {
        partitions_of(metadata, TOPIC).is_some_and(|partitions| partitions[&0].isr.len() == 3)
    });

    let stop = Arc::new(AtomicBool::new(false));
    let produced = Arc::new(Produced::default());
    let producer = {
        let (bootstrap, stop, produced) = (cluster.bootstrap(), stop.clone(), produced.clone());
        std::thread::spawn(move || produce_until(bootstrap, TOPIC, 1, stop, produced))
    };
    produced.wait_for_acknowledgements_beyond(&[100], Duration::from_secs(30), "before moving");
    let consumed = Arc::new(Mutex::new(Vec::new()));
    let consumer = {
        let (bootstrap, stop, consumed) = (cluster.bootstrap(), stop.clone(), consumed.clone());
        std::thread::spawn(move || consume_until(&bootstrap, &stop, &consumed))
    };

    // Move the partition off broker 1 (its leader) onto broker 4.
    assert_eq!(reassign(&mut admin, 0, &[4, 2, 3]), 0);
    cluster.wait_for_metadata(1, Duration::from_secs(30), "moved", |metadata| {
        partitions_of(metadata, TOPIC).is_some_and(|partitions| {
            let view = &partitions[&0];
            view.replicas == [4, 2, 3] && view.isr.len() == 3 && view.leader != 1
        })
    });
    wait_for_reassignments_in_progress(&mut admin, 0);
    let before = produced.counts(1);
    produced.wait_for_acknowledgements_beyond(&before, Duration::from_secs(30), "after moving");
    // Broker 1 no longer holds the partition.
    let old_copy = cluster.node(1).data_dir().join(format!("{TOPIC}-0"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while old_copy.exists() {
        assert!(
            Instant::now() < deadline,
            "{} is still there",
            old_copy.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    producer.join().expect("producer thread");
    produced.assert_not_fatal();

    let acknowledged = produced.acknowledged.lock().unwrap()[&0].clone();
    let stored = read_and_check_partition(&cluster.bootstrap(), TOPIC, 0, 1, &acknowledged);
    // The consumer that read through the move saw every record once, in order.
    consumer.join().expect("consumer thread");
    let consumed = consumed.lock().unwrap().clone();
    let expected: Vec<i64> = (0..consumed.len() as i64).collect();
    assert_eq!(
        consumed, expected,
        "the consumer skipped or repeated offsets"
    );
    assert_eq!(
        consumed.len(),
        stored.len(),
        "the consumer did not read everything"
    );

    // Unknown brokers are refused.
    assert_eq!(
        reassign(&mut admin, 0, &[4, 9]),
        cauce_protocol::ResponseError::InvalidReplicaAssignment.code()
    );

    // A move back onto broker 1 cannot finish while broker 1 is down; cancelling it (a null
    // replica list) puts the partition back on the replicas it had.
    assert_eq!(
        cancel_reassignment(&mut admin, 0),
        cauce_protocol::ResponseError::NoReassignmentInProgress.code()
    );
    cluster.node(1).stop();
    cluster.wait_for_brokers(2, &[2, 3, 4]);
    assert_eq!(reassign(&mut admin, 0, &[1, 2, 3]), 0);
    // The node asked answers once its own metadata has the change: it lists it at once.
    assert_eq!(reassignments_in_progress(&mut admin), 1);
    assert_eq!(cancel_reassignment(&mut admin, 0), 0);
    assert_eq!(reassignments_in_progress(&mut admin), 0);
    cluster.wait_for_metadata(2, Duration::from_secs(10), "cancelled", |metadata| {
        // Back on brokers 2, 3 and 4, in the order the reassignment left them (as Kafka does).
        partitions_of(metadata, TOPIC).is_some_and(|partitions| {
            let mut replicas = partitions[&0].replicas.clone();
            replicas.sort_unstable();
            replicas == [2, 3, 4]
        })
    });
}
