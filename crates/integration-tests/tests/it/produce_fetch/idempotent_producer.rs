//! Idempotent producers: producer ids, duplicate retries, sequence gaps, epoch fencing, and
//! producer state that outlives the broker process.

use std::collections::HashSet;
use std::time::Duration;

use cauce_integration_tests::clients::{
    consumer_assigned_from_partition_start, future_producer_with_settings, offset_and_utf8_payload,
    poll_messages_until_count_or_deadline,
};
use cauce_integration_tests::raw::error_codes::{
    INVALID_PRODUCER_EPOCH, OUT_OF_ORDER_SEQUENCE_NUMBER,
};
use cauce_integration_tests::raw::{
    create_single_partition_topic, current_unix_time_ms, fetch_records_from_offset_to_log_end,
    produce_batch_to_partition_zero, record_batch_of_values_stamped_now_with_options,
};
use cauce_integration_tests::{BrokerProcess, RawClient};
use cauce_protocol::records::{build_batch, BatchOptions, NewRecord};
use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use rdkafka::producer::{FutureRecord, Producer as _};

/// InitProducerId v4 can bump the epoch of an existing producer id (KIP-360).
const INIT_PRODUCER_ID_VERSION: i16 = 4;

/// A producer id and epoch as InitProducerId hands them out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProducerIdentity {
    id: i64,
    epoch: i16,
}

/// An InitProducerId request for a fresh, non-transactional producer id.
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
    let options = BatchOptions {
        producer_id: producer.id,
        producer_epoch: producer.epoch,
        base_sequence,
        ..BatchOptions::default()
    };
    record_batch_of_values_stamped_now_with_options(values, &options)
}

/// Produces and insists on success; returns the base offset.
fn produce_ok(client: &mut RawClient, topic: &str, batch: &[u8]) -> i64 {
    let response = produce_batch_to_partition_zero(client, topic, batch);
    assert_eq!(
        response.error_code, 0,
        "produce refused: {:?}",
        response.error_message
    );
    response.base_offset
}

/// Every (offset, value) of partition 0 from offset 0 to the log end.
fn read_every_offset_and_value_from_offset_zero(
    client: &mut RawClient,
    topic: &str,
) -> Vec<(i64, String)> {
    fetch_records_from_offset_to_log_end(client, topic, 0)
        .into_iter()
        .map(|record| (record.offset, record.value))
        .collect()
}

/// The values of (offset, value) pairs, in order.
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
    create_single_partition_topic(&mut client, "retries", &[]);
    // A plain record first, so that the idempotent batches do not start at offset 0.
    let plain = build_batch(
        0,
        &[NewRecord::value_only(
            current_unix_time_ms(),
            b"plain".to_vec(),
        )],
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

    let stored = read_every_offset_and_value_from_offset_zero(&mut client, "retries");
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
    create_single_partition_topic(&mut client, "gaps", &[]);
    let producer = init_producer_id(&mut client);
    assert_eq!(
        produce_ok(
            &mut client,
            "gaps",
            &idempotent_batch(producer, 0, &["a", "b", "c"])
        ),
        0
    );

    let gap = produce_batch_to_partition_zero(
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
    let stored = read_every_offset_and_value_from_offset_zero(&mut client, "gaps");
    assert_eq!(values_of(&stored), ["a", "b", "c", "d"]);
}

#[test]
fn older_producer_epoch_is_fenced_once_a_newer_one_has_written() {
    let broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    create_single_partition_topic(&mut client, "fenced", &[]);
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

    let zombie = produce_batch_to_partition_zero(
        &mut client,
        "fenced",
        &idempotent_batch(old, 1, &["zombie"]),
    );
    assert_eq!(zombie.error_code, INVALID_PRODUCER_EPOCH);
    let stored = read_every_offset_and_value_from_offset_zero(&mut client, "fenced");
    assert_eq!(values_of(&stored), ["old-0", "new-0"]);
}

#[test]
fn producer_state_survives_restart_and_kill_9() {
    let mut broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    create_single_partition_topic(&mut client, "durable-producer", &[]);
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
    let gap = produce_batch_to_partition_zero(
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
    let stored = read_every_offset_and_value_from_offset_zero(&mut client, "durable-producer");
    assert_eq!(values_of(&stored), ["a", "b", "c", "d", "e", "f"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn rdkafka_idempotent_producer_writes_each_record_exactly_once_in_order() {
    const COUNT: usize = 2000;
    let broker = BrokerProcess::start();
    {
        let mut client = RawClient::connect(broker.address);
        create_single_partition_topic(&mut client, "idempotent", &[]);
    }
    let producer = future_producer_with_settings(
        &broker.bootstrap(),
        &[
            ("enable.idempotence", "true"),
            ("linger.ms", "5"),
            ("batch.num.messages", "50"),
        ],
    );
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
        let consumer = consumer_assigned_from_partition_start(&bootstrap, "idempotent", 0);
        let mut consumed: Vec<(i64, String)> =
            poll_messages_until_count_or_deadline(&consumer, COUNT, Duration::from_secs(8))
                .iter()
                .map(offset_and_utf8_payload)
                .collect();
        // Anything beyond COUNT would be a duplicate; give it a moment to show up.
        if let Some(message) = consumer.poll(Duration::from_millis(300)) {
            consumed.push(offset_and_utf8_payload(&message.expect("consume").detach()));
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
    assert_eq!(
        read_every_offset_and_value_from_offset_zero(&mut client, "idempotent").len(),
        COUNT
    );
}
