//! Idempotent producers: producer ids, duplicate retries, sequence gaps, epoch fencing, and
//! producer state that outlives the broker process.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cauce_integration_tests::{BrokerProcess, RawClient};
use cauce_protocol::batch::BatchIter;
use cauce_protocol::records::{build_batch, decode_batch, BatchOptions, NewRecord};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, CreateTopicsResponse, FetchRequest, FetchResponse,
    InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse, ProducerId,
    TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::{Offset, TopicPartitionList};

const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;

/// Produce v9 carries idempotent batches and is flexible; InitProducerId v4 can bump epochs.
const PRODUCE_VERSION: i16 = 9;
const INIT_PRODUCER_ID_VERSION: i16 = 4;
const FETCH_VERSION: i16 = 11;

fn name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_string()))
}

/// Current time: records with old timestamps would roll a segment per batch (segment.ms).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn create_topic(client: &mut RawClient, topic: &str) {
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
    let response: CreateTopicsResponse = client.call(ApiKey::CreateTopics, 7, &request);
    assert_eq!(response.topics[0].error_code, 0, "create {topic}");
}

/// A producer id and epoch as InitProducerId hands them out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProducerIdentity {
    id: i64,
    epoch: i16,
}

fn init_producer_id_request() -> InitProducerIdRequest {
    InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

/// A fresh idempotent producer id.
fn init_producer_id(client: &mut RawClient) -> ProducerIdentity {
    let response: InitProducerIdResponse = client.call(
        ApiKey::InitProducerId,
        INIT_PRODUCER_ID_VERSION,
        &init_producer_id_request(),
    );
    assert_eq!(response.error_code, 0, "init producer id");
    ProducerIdentity {
        id: response.producer_id.0,
        epoch: response.producer_epoch,
    }
}

/// An idempotent batch of `values` from `producer` starting at `base_sequence`.
fn idempotent_batch(producer: ProducerIdentity, base_sequence: i32, values: &[&str]) -> Vec<u8> {
    let records: Vec<NewRecord> = values
        .iter()
        .map(|value| NewRecord::value_only(now_ms(), value.as_bytes().to_vec()))
        .collect();
    let options = BatchOptions {
        producer_id: producer.id,
        producer_epoch: producer.epoch,
        base_sequence,
        ..BatchOptions::default()
    };
    build_batch(0, &records, &options).unwrap()
}

/// Sends `batch` with acks=all and returns the partition's answer.
fn produce(client: &mut RawClient, topic: &str, batch: &[u8]) -> PartitionProduceResponse {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::copy_from_slice(batch)))])]);
    let response: ProduceResponse = client.call(ApiKey::Produce, PRODUCE_VERSION, &request);
    response.responses[0].partition_responses[0].clone()
}

/// Produces and insists on success; returns the base offset.
fn produce_ok(client: &mut RawClient, topic: &str, batch: &[u8]) -> i64 {
    let response = produce(client, topic, batch);
    assert_eq!(
        response.error_code, 0,
        "produce refused: {:?}",
        response.error_message
    );
    response.base_offset
}

/// Every (offset, value) of the partition, paging until the log end.
fn read_all(client: &mut RawClient, topic: &str) -> Vec<(i64, String)> {
    let mut stored = Vec::new();
    let mut next = 0;
    loop {
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(name(topic))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(next)
                    .with_partition_max_bytes(1 << 20)])]);
        let response: FetchResponse = client.call(ApiKey::Fetch, FETCH_VERSION, &request);
        let partition = &response.responses[0].partitions[0];
        assert_eq!(partition.error_code, 0, "fetch at {next}");
        let records = partition.records.clone().unwrap_or_default();
        let before = stored.len();
        for batch in BatchIter::new(&records) {
            let (header, records) = decode_batch(batch.bytes).unwrap();
            for record in records {
                let offset = record.offset(&header);
                if offset >= next {
                    let value = record.value.unwrap();
                    stored.push((offset, String::from_utf8(value.to_vec()).unwrap()));
                }
            }
        }
        if stored.len() == before {
            return stored;
        }
        next = stored.last().unwrap().0 + 1;
    }
}

fn values_of(stored: &[(i64, String)]) -> Vec<&str> {
    stored.iter().map(|(_, value)| value.as_str()).collect()
}

#[test]
fn init_producer_id_hands_out_unique_ids_at_epoch_zero_even_across_restarts() {
    let mut broker = BrokerProcess::start();
    let mut seen = HashSet::new();
    let mut client = RawClient::connect(broker.address);
    for _ in 0..2 {
        let producer = init_producer_id(&mut client);
        assert!(producer.id >= 0, "producer id {}", producer.id);
        assert_eq!(producer.epoch, 0);
        assert!(
            seen.insert(producer.id),
            "producer id {} reused",
            producer.id
        );
    }
    drop(client);

    broker.stop();
    broker.restart();
    let mut client = RawClient::connect(broker.address);
    let after_stop = init_producer_id(&mut client);
    assert_eq!(after_stop.epoch, 0);
    assert!(
        seen.insert(after_stop.id),
        "producer id {} reused after a restart: {seen:?}",
        after_stop.id
    );
    drop(client);

    broker.kill9();
    broker.restart();
    let mut client = RawClient::connect(broker.address);
    let after_kill = init_producer_id(&mut client);
    assert_eq!(after_kill.epoch, 0);
    assert!(
        seen.insert(after_kill.id),
        "producer id {} reused after kill -9: {seen:?}",
        after_kill.id
    );
}

#[test]
fn retried_batch_is_acknowledged_with_its_original_offset_and_stored_once() {
    let broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "retries");
    // A plain record first, so that the idempotent batches do not start at offset 0.
    let plain = build_batch(
        0,
        &[NewRecord::value_only(now_ms(), b"plain".to_vec())],
        &BatchOptions::default(),
    )
    .unwrap();
    assert_eq!(produce_ok(&mut client, "retries", &plain), 0);

    let producer = init_producer_id(&mut client);
    let first = idempotent_batch(producer, 0, &["a", "b", "c"]);
    let second = idempotent_batch(producer, 3, &["d", "e"]);
    assert_eq!(produce_ok(&mut client, "retries", &first), 1);
    assert_eq!(produce_ok(&mut client, "retries", &second), 4);

    assert_eq!(
        produce_ok(&mut client, "retries", &second),
        4,
        "a retry of the last batch gets its original offset"
    );
    assert_eq!(
        produce_ok(&mut client, "retries", &first),
        1,
        "a retry of an earlier batch still in the window gets its original offset"
    );

    let stored = read_all(&mut client, "retries");
    assert_eq!(values_of(&stored), ["plain", "a", "b", "c", "d", "e"]);
    assert_eq!(
        stored.iter().map(|(offset, _)| *offset).collect::<Vec<_>>(),
        (0..6).collect::<Vec<i64>>()
    );

    let third = idempotent_batch(producer, 5, &["f"]);
    assert_eq!(
        produce_ok(&mut client, "retries", &third),
        6,
        "the next sequence follows"
    );
}

#[test]
fn sequence_gap_is_refused_without_writing_and_the_in_order_batch_still_succeeds() {
    let broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "gaps");
    let producer = init_producer_id(&mut client);
    assert_eq!(
        produce_ok(
            &mut client,
            "gaps",
            &idempotent_batch(producer, 0, &["a", "b", "c"])
        ),
        0
    );

    let gap = produce(
        &mut client,
        "gaps",
        &idempotent_batch(producer, 5, &["lost"]),
    );
    assert_eq!(gap.error_code, OUT_OF_ORDER_SEQUENCE_NUMBER);

    assert_eq!(
        produce_ok(&mut client, "gaps", &idempotent_batch(producer, 3, &["d"])),
        3,
        "the refused batch took no offsets"
    );
    let stored = read_all(&mut client, "gaps");
    assert_eq!(values_of(&stored), ["a", "b", "c", "d"]);
}

#[test]
fn older_producer_epoch_is_fenced_once_a_newer_one_has_written() {
    let broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "fenced");
    let old = init_producer_id(&mut client);
    assert_eq!(
        produce_ok(&mut client, "fenced", &idempotent_batch(old, 0, &["old-0"])),
        0
    );

    // KIP-360: asking again with the current id and epoch bumps the epoch of the same id.
    let response: InitProducerIdResponse = client.call(
        ApiKey::InitProducerId,
        INIT_PRODUCER_ID_VERSION,
        &init_producer_id_request()
            .with_producer_id(ProducerId(old.id))
            .with_producer_epoch(old.epoch),
    );
    assert_eq!(response.error_code, 0);
    let new = ProducerIdentity {
        id: response.producer_id.0,
        epoch: response.producer_epoch,
    };
    assert_eq!(new.id, old.id);
    assert_eq!(new.epoch, old.epoch + 1);
    assert_eq!(
        produce_ok(&mut client, "fenced", &idempotent_batch(new, 0, &["new-0"])),
        1,
        "a new epoch starts again at sequence 0"
    );

    let zombie = produce(
        &mut client,
        "fenced",
        &idempotent_batch(old, 1, &["zombie"]),
    );
    assert_eq!(zombie.error_code, INVALID_PRODUCER_EPOCH);
    let stored = read_all(&mut client, "fenced");
    assert_eq!(values_of(&stored), ["old-0", "new-0"]);
}

#[test]
fn producer_state_survives_restart_and_kill_9() {
    let mut broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "durable-producer");
    let producer = init_producer_id(&mut client);
    let first = idempotent_batch(producer, 0, &["a", "b"]);
    let second = idempotent_batch(producer, 2, &["c", "d"]);
    assert_eq!(produce_ok(&mut client, "durable-producer", &first), 0);
    assert_eq!(produce_ok(&mut client, "durable-producer", &second), 2);
    drop(client);

    broker.stop();
    broker.restart();
    let mut client = RawClient::connect(broker.address);
    assert_eq!(
        produce_ok(&mut client, "durable-producer", &second),
        2,
        "after a clean restart the retry is still recognised"
    );
    let third = idempotent_batch(producer, 4, &["e"]);
    assert_eq!(produce_ok(&mut client, "durable-producer", &third), 4);
    let gap = produce(
        &mut client,
        "durable-producer",
        &idempotent_batch(producer, 9, &["lost"]),
    );
    assert_eq!(gap.error_code, OUT_OF_ORDER_SEQUENCE_NUMBER);
    drop(client);

    broker.kill9();
    broker.restart();
    let mut client = RawClient::connect(broker.address);
    assert_eq!(
        produce_ok(&mut client, "durable-producer", &third),
        4,
        "after kill -9 the retry is still recognised"
    );
    let fourth = idempotent_batch(producer, 5, &["f"]);
    assert_eq!(produce_ok(&mut client, "durable-producer", &fourth), 5);
    let stored = read_all(&mut client, "durable-producer");
    assert_eq!(values_of(&stored), ["a", "b", "c", "d", "e", "f"]);
}

#[test]
fn init_producer_id_with_a_transactional_id_is_refused() {
    let broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    let response: InitProducerIdResponse = client.call(
        ApiKey::InitProducerId,
        INIT_PRODUCER_ID_VERSION,
        &init_producer_id_request().with_transactional_id(Some(TransactionalId(
            StrBytes::from_static_str("payments-tx"),
        ))),
    );
    assert_ne!(
        response.error_code, 0,
        "transactions are not supported, so no transactional producer id"
    );
    assert_eq!(response.producer_id.0, -1);
}

#[tokio::test(flavor = "multi_thread")]
async fn rdkafka_idempotent_producer_writes_each_record_exactly_once_in_order() {
    const COUNT: usize = 2000;
    let broker = BrokerProcess::start();
    {
        let mut client = RawClient::connect(broker.address);
        create_topic(&mut client, "idempotent");
    }
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("batch.num.messages", "50")
        .set("message.timeout.ms", "15000")
        .create()
        .expect("producer");
    let deliveries: Vec<_> = (0..COUNT)
        .map(|index| {
            let value = format!("idempotent-{index}");
            producer
                .send_result(
                    FutureRecord::<(), _>::to("idempotent")
                        .payload(&value)
                        .partition(0),
                )
                .unwrap()
        })
        .collect();
    let mut offsets = Vec::with_capacity(COUNT);
    for delivery in deliveries {
        offsets.push(delivery.await.unwrap().expect("delivered").offset);
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(offsets, (0..COUNT as i64).collect::<Vec<_>>());

    let bootstrap = broker.bootstrap();
    let consumed = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "unused")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset("idempotent", 0, Offset::Beginning)
            .unwrap();
        consumer.assign(&assignment).unwrap();
        let mut consumed = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(8);
        while consumed.len() < COUNT && Instant::now() < deadline {
            if let Some(message) = consumer.poll(Duration::from_millis(200)) {
                let message = message.expect("consume");
                let value = String::from_utf8(message.payload().unwrap().to_vec()).unwrap();
                consumed.push((message.offset(), value));
            }
        }
        // Anything beyond COUNT would be a duplicate; give it a moment to show up.
        if let Some(message) = consumer.poll(Duration::from_millis(300)) {
            let message = message.expect("consume");
            let value = String::from_utf8(message.payload().unwrap().to_vec()).unwrap();
            consumed.push((message.offset(), value));
        }
        consumed
    })
    .await
    .unwrap();
    assert_eq!(consumed.len(), COUNT, "every record exactly once");
    for (index, (offset, value)) in consumed.iter().enumerate() {
        assert_eq!(*offset, index as i64);
        assert_eq!(value, &format!("idempotent-{index}"));
    }
    let mut client = RawClient::connect(broker.address);
    assert_eq!(read_all(&mut client, "idempotent").len(), COUNT);
}
