//! librdkafka (the rdkafka crate) against a real broker: records, keys, headers, timestamps,
//! codecs, keyed partitioning and per-partition order.

use std::collections::HashMap;
use std::time::Duration;

use cauce_integration_tests::clients::{
    consume_messages_from_partition_start, create_topic_with_admin_client,
    future_producer_with_settings, CONSUME_TIMEOUT,
};
use cauce_integration_tests::BrokerProcess;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureRecord, Producer};
use rdkafka::Timestamp;

#[tokio::test(flavor = "multi_thread")]
async fn records_come_back_with_keys_headers_and_timestamps_in_order() {
    let broker = BrokerProcess::start();
    create_topic_with_admin_client(&broker.bootstrap(), "round-trip", 1).await;
    let producer = future_producer_with_settings(&broker.bootstrap(), &[("acks", "all")]);
    let mut offsets = Vec::new();
    for index in 0..200i64 {
        let key = format!("key-{index}");
        let value = format!("value-{index}");
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "index",
                value: Some(&index.to_string()),
            })
            .insert(Header {
                key: "empty",
                value: None::<&str>,
            });
        let record = FutureRecord::to("round-trip")
            .key(&key)
            .payload(&value)
            .headers(headers)
            .timestamp(1_700_000_000_000 + index);
        let delivered = producer
            .send(record, Duration::from_secs(10))
            .await
            .expect("delivered");
        offsets.push(delivered.offset);
    }
    assert_eq!(
        offsets,
        (0..200).collect::<Vec<i64>>(),
        "offsets are consecutive from 0"
    );
    let messages = tokio::task::spawn_blocking(move || {
        consume_messages_from_partition_start(
            &broker.bootstrap(),
            "round-trip",
            0,
            200,
            CONSUME_TIMEOUT,
        )
    })
    .await
    .unwrap();
    assert_eq!(messages.len(), 200);
    for (index, message) in messages.iter().enumerate() {
        assert_eq!(message.offset(), index as i64);
        assert_eq!(message.key(), Some(format!("key-{index}").as_bytes()));
        assert_eq!(message.payload(), Some(format!("value-{index}").as_bytes()));
        assert_eq!(
            message.timestamp(),
            Timestamp::CreateTime(1_700_000_000_000 + index as i64)
        );
        let headers = message.headers().expect("headers");
        assert_eq!(headers.count(), 2);
        assert_eq!(headers.get(0).key, "index");
        assert_eq!(headers.get(0).value, Some(index.to_string().as_bytes()));
        assert_eq!(headers.get(1).key, "empty");
        assert_eq!(headers.get(1).value, None);
    }
}

/// Produces 1000 compressible records with `codec` and reads them back unchanged and in order.
async fn codec_round_trip(codec: &str) {
    let broker = BrokerProcess::start();
    let topic = format!("codec-{codec}");
    create_topic_with_admin_client(&broker.bootstrap(), &topic, 1).await;
    let producer = future_producer_with_settings(
        &broker.bootstrap(),
        &[
            ("compression.codec", codec),
            ("linger.ms", "20"),
            ("acks", "1"),
        ],
    );
    let count = 1000;
    let mut deliveries = Vec::new();
    for index in 0..count {
        // Repetitive values so that every codec really compresses.
        let value = format!("{codec} value {index} {}", "abc".repeat(20));
        deliveries.push(
            producer
                .send_result(FutureRecord::<(), _>::to(&topic).payload(&value))
                .unwrap(),
        );
    }
    for delivery in deliveries {
        delivery.await.unwrap().expect("delivered");
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    let codec_name = codec.to_string();
    let messages = tokio::task::spawn_blocking(move || {
        consume_messages_from_partition_start(
            &broker.bootstrap(),
            &topic,
            0,
            count,
            CONSUME_TIMEOUT,
        )
    })
    .await
    .unwrap();
    assert_eq!(messages.len(), count);
    for (index, message) in messages.iter().enumerate() {
        let expected = format!("{codec_name} value {index} {}", "abc".repeat(20));
        assert_eq!(
            message.payload(),
            Some(expected.as_bytes()),
            "record {index}"
        );
        assert_eq!(message.offset(), index as i64);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn gzip_batches_round_trip() {
    codec_round_trip("gzip").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn snappy_batches_round_trip() {
    codec_round_trip("snappy").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lz4_batches_round_trip() {
    codec_round_trip("lz4").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn zstd_batches_round_trip() {
    codec_round_trip("zstd").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn same_key_goes_to_same_partition_in_order() {
    let broker = BrokerProcess::start();
    create_topic_with_admin_client(&broker.bootstrap(), "keyed", 6).await;
    let producer = future_producer_with_settings(
        &broker.bootstrap(),
        &[("enable.idempotence", "true"), ("linger.ms", "5")],
    );
    let keys: Vec<String> = (0..20).map(|key| format!("customer-{key}")).collect();
    let mut partition_of_key: HashMap<String, i32> = HashMap::new();
    let mut deliveries = Vec::new();
    for round in 0..50 {
        for key in &keys {
            let value = format!("{key}:{round}");
            deliveries.push((
                key.clone(),
                producer
                    .send_result(FutureRecord::to("keyed").key(key).payload(&value))
                    .unwrap(),
            ));
        }
    }
    for (key, delivery) in deliveries {
        let delivered = delivery.await.unwrap().expect("delivered");
        let previous = partition_of_key.insert(key.clone(), delivered.partition);
        assert!(
            previous.is_none_or(|partition| partition == delivered.partition),
            "key {key} moved partition"
        );
    }
    let used: std::collections::HashSet<i32> = partition_of_key.values().copied().collect();
    assert!(
        used.len() > 1,
        "20 keys should spread over more than one of 6 partitions"
    );
    let broker = std::sync::Arc::new(broker);
    for partition in 0..6 {
        let expected_keys: Vec<&String> = keys
            .iter()
            .filter(|key| partition_of_key[*key] == partition)
            .collect();
        let count = expected_keys.len() * 50;
        let shared = broker.clone();
        let messages = tokio::task::spawn_blocking(move || {
            consume_messages_from_partition_start(
                &shared.bootstrap(),
                "keyed",
                partition,
                count,
                CONSUME_TIMEOUT,
            )
        })
        .await
        .unwrap();
        assert_eq!(messages.len(), count, "partition {partition}");
        let mut next_round: HashMap<String, usize> = HashMap::new();
        for message in messages {
            let value = String::from_utf8(message.payload().unwrap().to_vec()).unwrap();
            let (key, round) = value.split_once(':').unwrap();
            let expected = next_round.entry(key.to_string()).or_insert(0);
            assert_eq!(
                round.parse::<usize>().unwrap(),
                *expected,
                "key {key} out of order in partition {partition}"
            );
            *expected += 1;
        }
    }
}
