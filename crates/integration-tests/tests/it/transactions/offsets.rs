//! Offsets committed inside transactions (KIP-98, KIP-447): librdkafka's
//! `send_offsets_to_transaction` commits with the transaction and not before, an abort drops
//! the offsets, `require_stable` readers are told to wait while a transaction holds them, and a
//! consume-transform-produce loop copies a topic exactly once.

use std::time::Duration;

use cauce_integration_tests::raw::{
    create_single_partition_topic, produce_each_value_as_its_own_batch, topic_name,
};
use cauce_integration_tests::{BrokerProcess, RawClient};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{ApiKey, GroupId, OffsetFetchRequest, OffsetFetchResponse};
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

const UNSTABLE_OFFSET_COMMIT: i16 = 88;
const TIMEOUT: Duration = Duration::from_secs(30);

/// The group's committed offset of partition 0 of `topic` and the partition's error code.
fn fetch_offset(
    client: &mut RawClient,
    group: &str,
    topic: &str,
    require_stable: bool,
) -> (i64, i16) {
    let response: OffsetFetchResponse = client.call(
        ApiKey::OffsetFetch,
        7,
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partition_indexes(vec![0])]))
            .with_require_stable(require_stable),
    );
    assert_eq!(response.error_code, 0);
    let partition = &response.topics[0].partitions[0];
    (partition.committed_offset, partition.error_code)
}

fn producer(bootstrap: &str, transactional_id: &str) -> ThreadedProducer<DefaultProducerContext> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", transactional_id)
        .set("message.timeout.ms", "15000")
        .create()
        .unwrap();
    producer.init_transactions(TIMEOUT).unwrap();
    producer
}

fn consumer(bootstrap: &str, group: &str, topic: &str) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    consumer
}

fn offsets(topic: &str, offset: i64) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, 0, Offset::Offset(offset))
        .unwrap();
    list
}

#[test]
fn offsets_sent_to_a_transaction_commit_with_it_and_vanish_with_an_abort() {
    let broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    create_single_partition_topic(&mut client, "offsets-in", &[]);
    let bootstrap = broker.bootstrap();
    let producer = producer(&bootstrap, "offset-committer");
    let reader = consumer(&bootstrap, "txn-group", "offsets-in");
    let group = reader.group_metadata().expect("group metadata");

    producer.begin_transaction().unwrap();
    producer
        .send_offsets_to_transaction(&offsets("offsets-in", 42), &group, TIMEOUT)
        .expect("send offsets");
    assert_eq!(
        fetch_offset(&mut client, "txn-group", "offsets-in", false),
        (-1, 0),
        "pending"
    );
    assert_eq!(
        fetch_offset(&mut client, "txn-group", "offsets-in", true).1,
        UNSTABLE_OFFSET_COMMIT
    );
    producer.commit_transaction(TIMEOUT).unwrap();
    // The markers follow the commit's answer: poll for the committed offset.
    let deadline = std::time::Instant::now() + TIMEOUT;
    while fetch_offset(&mut client, "txn-group", "offsets-in", true) != (42, 0) {
        assert!(
            std::time::Instant::now() < deadline,
            "offset 42 never committed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    producer.begin_transaction().unwrap();
    producer
        .send_offsets_to_transaction(&offsets("offsets-in", 50), &group, TIMEOUT)
        .unwrap();
    producer.abort_transaction(TIMEOUT).unwrap();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while fetch_offset(&mut client, "txn-group", "offsets-in", true).1 != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the aborted offsets stayed pending"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        fetch_offset(&mut client, "txn-group", "offsets-in", true),
        (42, 0)
    );
}

#[test]
fn a_consume_transform_produce_loop_copies_every_record_exactly_once() {
    const RECORDS: usize = 200;
    let broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    create_single_partition_topic(&mut client, "copy-in", &[]);
    create_single_partition_topic(&mut client, "copy-out", &[]);
    let values: Vec<String> = (0..RECORDS)
        .map(|index| format!("record-{index}"))
        .collect();
    produce_each_value_as_its_own_batch(&mut client, "copy-in", &values);
    let bootstrap = broker.bootstrap();
    let producer = producer(&bootstrap, "copy-loop");
    let input = consumer(&bootstrap, "copy-loop-group", "copy-in");
    let group = input.group_metadata().unwrap();

    let mut copied = 0;
    while copied < RECORDS {
        let mut batch = Vec::new();
        while batch.len() < 17 && copied + batch.len() < RECORDS {
            if let Some(message) = input.poll(Duration::from_millis(100)) {
                let message = message.expect("consume");
                let value = String::from_utf8(message.payload().unwrap().to_vec()).unwrap();
                batch.push((message.offset(), value));
            }
        }
        producer.begin_transaction().unwrap();
        for (_, value) in &batch {
            producer
                .send(BaseRecord::<str, str>::to("copy-out").payload(&value.to_uppercase()))
                .map_err(|(error, _)| error)
                .unwrap();
        }
        let next = batch.last().unwrap().0 + 1;
        producer
            .send_offsets_to_transaction(&offsets("copy-in", next), &group, TIMEOUT)
            .unwrap();
        producer.commit_transaction(TIMEOUT).unwrap();
        copied += batch.len();
    }

    let deadline = std::time::Instant::now() + TIMEOUT;
    while fetch_offset(&mut client, "copy-loop-group", "copy-in", true) != (RECORDS as i64, 0) {
        assert!(
            std::time::Instant::now() < deadline,
            "the last offsets never committed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = consumer(&bootstrap, "copy-check", "copy-out");
    let mut copies = Vec::new();
    while copies.len() < RECORDS {
        let message = output
            .poll(TIMEOUT)
            .expect("the copy ended early")
            .expect("consume");
        copies.push(String::from_utf8(message.payload().unwrap().to_vec()).unwrap());
    }
    let expected: Vec<String> = values.iter().map(|value| value.to_uppercase()).collect();
    assert_eq!(copies, expected);
}

#[test]
fn transactional_offsets_are_rebuilt_from_the_log_after_kill_9() {
    let mut broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    create_single_partition_topic(&mut client, "replayed-in", &[]);
    let bootstrap = broker.bootstrap();
    let reader = consumer(&bootstrap, "replayed-group", "replayed-in");
    let group = reader.group_metadata().unwrap();
    {
        let producer = producer(&bootstrap, "replayed");
        producer.begin_transaction().unwrap();
        producer
            .send_offsets_to_transaction(&offsets("replayed-in", 7), &group, TIMEOUT)
            .unwrap();
        producer.commit_transaction(TIMEOUT).unwrap();
        // A second transaction is left open with other offsets.
        producer.begin_transaction().unwrap();
        producer
            .send_offsets_to_transaction(&offsets("replayed-in", 9), &group, TIMEOUT)
            .unwrap();
        let deadline = std::time::Instant::now() + TIMEOUT;
        while fetch_offset(&mut client, "replayed-group", "replayed-in", false) != (7, 0) {
            assert!(
                std::time::Instant::now() < deadline,
                "offset 7 never committed"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        broker.kill9();
    }
    broker.restart();
    let mut client = RawClient::connect(broker.address);
    // Committed through its marker before the crash; the open one is still pending.
    assert_eq!(
        fetch_offset(&mut client, "replayed-group", "replayed-in", false),
        (7, 0)
    );
    assert_eq!(
        fetch_offset(&mut client, "replayed-group", "replayed-in", true).1,
        UNSTABLE_OFFSET_COMMIT
    );
}
