//! Transactions on a three-node cluster: the coordinator on one broker has the leaders on the
//! others write the markers, and when the coordinator's broker is killed with `kill -9`, another
//! takes over its transactional ids and the producer goes on; `read_committed` readers see every
//! committed record and none of the aborted ones.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use cauce_integration_tests::cluster::{Cluster, FAST_MEMBERSHIP};
use cauce_integration_tests::RawClient;
use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

const TOPIC: &str = "txn-cluster";
const PARTITIONS: i32 = 6;
const PER_ROUND: usize = 12;
const TIMEOUT: Duration = Duration::from_secs(60);

fn coordinator_of(cluster: &mut Cluster, transactional_id: &str) -> i32 {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let mut client = RawClient::connect(cluster.node(1).address);
        let response: FindCoordinatorResponse = client.call(
            ApiKey::FindCoordinator,
            3,
            &FindCoordinatorRequest::default()
                .with_key(StrBytes::from_string(transactional_id.to_string()))
                .with_key_type(1),
        );
        if response.error_code == 0 {
            return response.node_id.0;
        }
        assert!(
            Instant::now() < deadline,
            "no transaction coordinator: {}",
            response.error_code
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn run_round(producer: &ThreadedProducer<DefaultProducerContext>, round: usize, commit: bool) {
    producer.begin_transaction().unwrap();
    for index in 0..PER_ROUND {
        let value = format!("r{round}-{index}");
        producer
            .send(
                BaseRecord::<str, str>::to(TOPIC)
                    .partition(index as i32 % PARTITIONS)
                    .payload(&value),
            )
            .map_err(|(error, _)| error)
            .unwrap();
    }
    if commit {
        producer.commit_transaction(TIMEOUT).expect("commit");
    } else {
        producer.flush(TIMEOUT).unwrap();
        producer.abort_transaction(TIMEOUT).expect("abort");
    }
}

#[test]
fn transactions_span_brokers_and_survive_killing_the_coordinators_broker() {
    let mut cluster = Cluster::start(
        3,
        &format!(
            "{FAST_MEMBERSHIP}min.insync.replicas = 2\n\
             transaction.abort.timed.out.transaction.cleanup.interval.ms = 200\n"
        ),
    );
    cluster.create_fully_replicated_topic(TOPIC, PARTITIONS);
    let coordinator = coordinator_of(&mut cluster, "cluster-copier");
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap())
        .set("transactional.id", "cluster-copier")
        .set("transaction.timeout.ms", "30000")
        .set("message.timeout.ms", "30000")
        .create()
        .unwrap();
    producer.init_transactions(TIMEOUT).unwrap();
    let mut committed = BTreeSet::new();
    for round in 0..4 {
        let commit = round % 2 == 0;
        run_round(&producer, round, commit);
        if commit {
            committed.extend((0..PER_ROUND).map(|index| format!("r{round}-{index}")));
        }
    }

    cluster.node(coordinator).kill9();
    for round in 4..6 {
        let commit = round % 2 == 0;
        run_round(&producer, round, commit);
        if commit {
            committed.extend((0..PER_ROUND).map(|index| format!("r{round}-{index}")));
        }
    }
    let successor = coordinator_of(&mut cluster, "cluster-copier");
    assert_ne!(
        successor, coordinator,
        "another broker took the transactional id over"
    );

    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap())
        .set("group.id", "cluster-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        assignment
            .add_partition_offset(TOPIC, partition, Offset::Beginning)
            .unwrap();
    }
    reader.assign(&assignment).unwrap();
    let mut read = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while read.len() < committed.len() && Instant::now() < deadline {
        if let Some(message) = reader.poll(Duration::from_millis(100)) {
            let message = message.expect("consume");
            read.push(String::from_utf8(message.payload().unwrap().to_vec()).unwrap());
        }
    }
    let read_set: BTreeSet<String> = read.iter().cloned().collect();
    assert_eq!(read.len(), read_set.len(), "no record twice");
    assert_eq!(
        read_set, committed,
        "exactly the committed records, none aborted"
    );
}
