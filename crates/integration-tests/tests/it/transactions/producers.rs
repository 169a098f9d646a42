//! Transactional producers against the coordinator: librdkafka commits and aborts, a second
//! instance fences the first, a transaction left open is aborted after its timeout, and the
//! coordinator's refusals follow Kafka's, version by version.

use std::time::{Duration, Instant};

use cauce_integration_tests::clients::{
    offset_and_utf8_payload, poll_messages_until_count_or_deadline,
};
use cauce_integration_tests::raw::{create_single_partition_topic, topic_name};
use cauce_integration_tests::{free_port, BrokerProcess, RawClient};
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, InitProducerIdRequest,
    InitProducerIdResponse, ProducerId, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
const NOT_COORDINATOR: i16 = 16;
const PRODUCER_FENCED: i16 = 90;

fn transactional_producer(
    bootstrap: &str,
    transactional_id: &str,
    timeout_ms: &str,
) -> ThreadedProducer<DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", transactional_id)
        .set("transaction.timeout.ms", timeout_ms)
        .set("message.timeout.ms", "15000")
        .create()
        .expect("transactional producer")
}

fn send(producer: &ThreadedProducer<DefaultProducerContext>, topic: &str, value: &str) {
    producer
        .send(BaseRecord::<str, str>::to(topic).payload(value))
        .map_err(|(error, _)| error)
        .expect("send");
}

fn reader(bootstrap: &str, topic: &str, isolation: &str) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("{topic}-{isolation}"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    consumer
}

fn values(consumer: &BaseConsumer, count: usize) -> Vec<String> {
    poll_messages_until_count_or_deadline(consumer, count, Duration::from_secs(30))
        .iter()
        .map(|message| offset_and_utf8_payload(message).1)
        .collect()
}

#[test]
fn librdkafka_commits_and_aborts_and_read_committed_sees_only_the_committed() {
    let metrics_address = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let broker =
        BrokerProcess::start_with_config(&format!("metrics.listen = \"{metrics_address}\"\n"));
    let mut client = RawClient::connect(broker.address);
    create_single_partition_topic(&mut client, "txn-out", &[]);
    let bootstrap = broker.bootstrap();
    let producer = transactional_producer(&bootstrap, "copier", "60000");
    let timeout = Duration::from_secs(30);
    producer
        .init_transactions(timeout)
        .expect("init_transactions");

    producer.begin_transaction().unwrap();
    for value in ["c1", "c2", "c3"] {
        send(&producer, "txn-out", value);
    }
    producer.commit_transaction(timeout).expect("commit");
    producer.begin_transaction().unwrap();
    for value in ["a1", "a2"] {
        send(&producer, "txn-out", value);
    }
    producer.flush(timeout).unwrap();
    producer.abort_transaction(timeout).expect("abort");
    producer.begin_transaction().unwrap();
    send(&producer, "txn-out", "c4");
    producer.commit_transaction(timeout).expect("second commit");

    let committed = reader(&bootstrap, "txn-out", "read_committed");
    assert_eq!(values(&committed, 4), ["c1", "c2", "c3", "c4"]);
    let uncommitted = reader(&bootstrap, "txn-out", "read_uncommitted");
    assert_eq!(
        values(&uncommitted, 6),
        ["c1", "c2", "c3", "a1", "a2", "c4"]
    );
    // Every marker is written by now (the readers saw the last commit), and counted.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let samples = crate::metrics::scrape(metrics_address);
        let ended = (
            samples.get("cauce_transactions_committed_total").copied(),
            samples.get("cauce_transactions_aborted_total").copied(),
        );
        if ended == (Some(2.0), Some(1.0)) {
            break;
        }
        assert!(Instant::now() < deadline, "transactions ended: {ended:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_second_instance_fences_the_first_and_its_open_transaction_is_aborted() {
    let broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    create_single_partition_topic(&mut client, "txn-zombie", &[]);
    let bootstrap = broker.bootstrap();
    let timeout = Duration::from_secs(30);
    let zombie = transactional_producer(&bootstrap, "fenced-id", "60000");
    zombie.init_transactions(timeout).unwrap();
    zombie.begin_transaction().unwrap();
    send(&zombie, "txn-zombie", "zombie");
    zombie.flush(timeout).unwrap();

    let successor = transactional_producer(&bootstrap, "fenced-id", "60000");
    successor
        .init_transactions(timeout)
        .expect("the successor takes over");
    successor.begin_transaction().unwrap();
    send(&successor, "txn-zombie", "successor");
    successor.commit_transaction(timeout).unwrap();

    let refused = zombie.commit_transaction(timeout);
    assert!(
        refused.is_err(),
        "the zombie's commit must fail: {refused:?}"
    );
    let committed = reader(&bootstrap, "txn-zombie", "read_committed");
    assert_eq!(values(&committed, 1), ["successor"]);
    // The zombie's record is there, aborted: read_uncommitted sees both.
    let uncommitted = reader(&bootstrap, "txn-zombie", "read_uncommitted");
    assert_eq!(values(&uncommitted, 2), ["zombie", "successor"]);
}

fn init(client: &mut RawClient, transactional_id: &str, timeout_ms: i32) -> InitProducerIdResponse {
    client.call(
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(StrBytes::from_string(
                transactional_id.to_string(),
            ))))
            .with_transaction_timeout_ms(timeout_ms)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    )
}

fn add_partition(
    client: &mut RawClient,
    version: i16,
    transactional_id: &str,
    producer_id: i64,
    epoch: i16,
    topic: &str,
) -> i16 {
    let response: AddPartitionsToTxnResponse = client.call(
        ApiKey::AddPartitionsToTxn,
        version,
        &AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(StrBytes::from_string(
                transactional_id.to_string(),
            )))
            .with_v3_and_below_producer_id(ProducerId(producer_id))
            .with_v3_and_below_producer_epoch(epoch)
            .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![0])]),
    );
    response.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
}

#[test]
fn the_coordinator_refuses_as_kafka_does() {
    let broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    create_single_partition_topic(&mut client, "txn-rules", &[]);
    // Before any FindCoordinator the transaction topic does not exist: not the coordinator.
    assert_eq!(
        init(&mut client, "rules", 60_000).error_code,
        NOT_COORDINATOR
    );
    super::find_transaction_coordinator(&mut client, "rules");

    assert_eq!(
        init(&mut client, "rules", 0).error_code,
        INVALID_TRANSACTION_TIMEOUT
    );
    assert_eq!(
        init(&mut client, "rules", 900_001).error_code,
        INVALID_TRANSACTION_TIMEOUT,
        "above transaction.max.timeout.ms"
    );
    let first = init(&mut client, "rules", 60_000);
    assert_eq!((first.error_code, first.producer_epoch), (0, 0));
    let second = init(&mut client, "rules", 60_000);
    assert_eq!(second.error_code, 0);
    assert_eq!(
        (second.producer_id, second.producer_epoch),
        (first.producer_id, 1)
    );
    let producer_id = first.producer_id.0;

    assert_eq!(
        super::end_transaction(&mut client, "rules", producer_id, 1, true),
        INVALID_TXN_STATE,
        "nothing open"
    );
    assert_eq!(
        add_partition(&mut client, 3, "unknown-id", producer_id, 1, "txn-rules"),
        INVALID_PRODUCER_ID_MAPPING
    );
    // The fenced epoch 0: PRODUCER_FENCED from version 2, INVALID_PRODUCER_EPOCH before.
    assert_eq!(
        add_partition(&mut client, 3, "rules", producer_id, 0, "txn-rules"),
        PRODUCER_FENCED
    );
    assert_eq!(
        add_partition(&mut client, 1, "rules", producer_id, 0, "txn-rules"),
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(
        add_partition(&mut client, 3, "rules", producer_id, 1, "txn-rules"),
        0
    );
    assert_eq!(
        super::end_transaction(&mut client, "rules", producer_id, 1, true),
        0
    );
}

#[test]
fn a_transaction_left_open_is_aborted_after_its_timeout_and_the_lso_moves() {
    let broker = BrokerProcess::start_with_config(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms = 200\n",
    );
    let mut client = RawClient::connect(broker.address);
    create_single_partition_topic(&mut client, "txn-hang", &[]);
    super::find_transaction_coordinator(&mut client, "hanging");
    let producer = init(&mut client, "hanging", 1000);
    assert_eq!(producer.error_code, 0);
    let (producer_id, epoch) = (producer.producer_id.0, producer.producer_epoch);
    assert_eq!(
        add_partition(&mut client, 3, "hanging", producer_id, epoch, "txn-hang"),
        0
    );
    let open = super::produce_transactional_at(
        &mut client,
        "txn-hang",
        producer_id,
        epoch,
        "hanging",
        &["left open"],
    );
    assert_eq!(open, 0);

    // No EndTxn: the coordinator aborts it after the 1 s timeout, writing the marker.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let lso = super::latest_committed_offset(&mut client, "txn-hang");
        if lso == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the LSO stayed at {lso}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The producer was fenced: its epoch is older than the abort's.
    assert_eq!(
        add_partition(&mut client, 3, "hanging", producer_id, epoch, "txn-hang"),
        PRODUCER_FENCED
    );
    let committed = reader(&broker.bootstrap(), "txn-hang", "read_committed");
    assert!(
        poll_messages_until_count_or_deadline(&committed, 1, Duration::from_secs(2)).is_empty()
    );
}
