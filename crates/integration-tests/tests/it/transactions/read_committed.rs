//! `read_committed` reads: Fetch stops at the last stable offset and names the aborted
//! transactions, ListOffsets answers by isolation level, and librdkafka consumers of both
//! isolation levels see what Kafka's would.

use std::time::Duration;

use cauce_integration_tests::clients::{
    offset_and_utf8_payload, poll_messages_until_count_or_deadline,
};
use cauce_integration_tests::raw::{
    create_single_partition_topic, fetch_request_for_partition_zero,
    produce_each_value_as_its_own_batch,
};
use cauce_integration_tests::{BrokerProcess, RawClient};
use kafka_protocol::messages::{ApiKey, FetchResponse};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::{latest_offset, produce_transactional, write_marker};

const TOPIC: &str = "txn-reads";

/// Writes, by offset: `p0` 0; producer 1000's `c1`, `c2` 1-2 (committed at 5); producer 2000's
/// `a1` 3 (aborted at 6); `p1` 4; producer 3000's `open1` 7 (left open); `p2` 8.
fn write_transactions(client: &mut RawClient) {
    create_single_partition_topic(client, TOPIC, &[]);
    produce_each_value_as_its_own_batch(client, TOPIC, &["p0".to_string()]);
    assert_eq!(
        produce_transactional(client, TOPIC, 1000, 0, &["c1", "c2"]),
        1
    );
    assert_eq!(produce_transactional(client, TOPIC, 2000, 0, &["a1"]), 3);
    produce_each_value_as_its_own_batch(client, TOPIC, &["p1".to_string()]);
    assert_eq!(write_marker(client, TOPIC, 1000, 0, true, 0), 0);
    assert_eq!(write_marker(client, TOPIC, 2000, 0, false, 0), 0);
    assert_eq!(produce_transactional(client, TOPIC, 3000, 0, &["open1"]), 7);
    produce_each_value_as_its_own_batch(client, TOPIC, &["p2".to_string()]);
}

fn consumer(bootstrap: &str, isolation: &str) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("readers-{isolation}"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(TOPIC, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    consumer
}

fn values(consumer: &BaseConsumer, count: usize) -> Vec<(i64, String)> {
    poll_messages_until_count_or_deadline(consumer, count, Duration::from_secs(30))
        .iter()
        .map(offset_and_utf8_payload)
        .collect()
}

#[test]
fn fetch_stops_at_the_last_stable_offset_and_names_aborted_transactions() {
    let broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    write_transactions(&mut client);

    let mut request = fetch_request_for_partition_zero(TOPIC, 0, 0, 0);
    request.isolation_level = 1;
    let response: FetchResponse = client.call(ApiKey::Fetch, 11, &request);
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    assert_eq!(partition.high_watermark, 9);
    assert_eq!(
        partition.last_stable_offset, 7,
        "producer 3000's open transaction holds it"
    );
    let aborted: Vec<(i64, i64)> = partition
        .aborted_transactions
        .as_ref()
        .expect("a read_committed answer lists aborted transactions")
        .iter()
        .map(|aborted| (aborted.producer_id.0, aborted.first_offset))
        .collect();
    assert_eq!(aborted, [(2000, 3)]);
    let records = partition.records.clone().unwrap_or_default();
    let text = String::from_utf8_lossy(&records);
    assert!(text.contains("p1") && !text.contains("open1") && !text.contains("p2"));

    // read_uncommitted reads to the high watermark and gets no list.
    request.isolation_level = 0;
    let response: FetchResponse = client.call(ApiKey::Fetch, 11, &request);
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.last_stable_offset, 7);
    assert!(partition.aborted_transactions.is_none());
    assert!(String::from_utf8_lossy(&partition.records.clone().unwrap_or_default()).contains("p2"));

    assert_eq!(latest_offset(&mut client, TOPIC, 1), 7);
    assert_eq!(latest_offset(&mut client, TOPIC, 0), 9);

    // The commit of producer 3000 releases the rest.
    assert_eq!(write_marker(&mut client, TOPIC, 3000, 0, true, 0), 0);
    assert_eq!(latest_offset(&mut client, TOPIC, 1), 10);
    request.isolation_level = 1;
    request.topics[0].partitions[0].fetch_offset = 7;
    let response: FetchResponse = client.call(ApiKey::Fetch, 11, &request);
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.last_stable_offset, 10);
    assert_eq!(
        partition.aborted_transactions.as_deref().map(<[_]>::len),
        Some(0)
    );
}

#[test]
fn librdkafka_read_committed_skips_aborted_records_and_waits_for_open_transactions() {
    let broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    write_transactions(&mut client);
    let bootstrap = broker.bootstrap();

    let committed = consumer(&bootstrap, "read_committed");
    assert_eq!(
        values(&committed, 4),
        [
            (0, "p0".to_string()),
            (1, "c1".to_string()),
            (2, "c2".to_string()),
            (4, "p1".to_string())
        ],
        "the aborted a1 at 3 is skipped; open1 and p2 wait for producer 3000"
    );
    let uncommitted = consumer(&bootstrap, "read_uncommitted");
    let everything: Vec<String> = values(&uncommitted, 7)
        .into_iter()
        .map(|(_, value)| value)
        .collect();
    assert_eq!(everything, ["p0", "c1", "c2", "a1", "p1", "open1", "p2"]);

    // Aborting 3000's transaction: read_committed gets p2 and never open1.
    assert_eq!(write_marker(&mut client, TOPIC, 3000, 0, false, 0), 0);
    assert_eq!(values(&committed, 1), [(8, "p2".to_string())]);
}
