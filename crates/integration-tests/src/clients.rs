//! Helpers over librdkafka (the rdkafka crate): an admin client that creates topics, a future
//! producer with test settings, and a consumer that reads a partition from its first offset.
//!
//! Every helper takes the bootstrap string ([`crate::BrokerProcess::bootstrap`]) rather than the
//! broker, so that it can run inside `spawn_blocking` without moving the broker there.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};

/// How long a test waits for the records it produced to come back.
pub const CONSUME_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a consumer waits in one poll; short, so that deadlines are checked often.
const CONSUMER_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Creates a topic with `partitions` partitions and replication factor 1 through the admin API,
/// insisting that it worked.
pub async fn create_topic_with_admin_client(bootstrap_servers: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap_servers)
        .create()
        .unwrap();
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    for result in results {
        result.expect("topic created");
    }
}

/// A future producer that gives up on a record after 15 s, with `extra_settings` (librdkafka
/// names) on top.
pub fn future_producer_with_settings(
    bootstrap_servers: &str,
    extra_settings: &[(&str, &str)],
) -> FutureProducer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap_servers)
        .set("message.timeout.ms", "15000");
    for (key, value) in extra_settings {
        config.set(*key, *value);
    }
    config.create().expect("producer")
}

/// A consumer assigned by hand to one partition from its first offset: no group rebalances it
/// and it commits no offsets.
pub fn consumer_assigned_from_partition_start(
    bootstrap_servers: &str,
    topic: &str,
    partition: i32,
) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap_servers)
        .set("group.id", "unused")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    consumer
}

/// Polls `consumer` until it has delivered `count` messages or `give_up_after` has passed,
/// failing on a consumer error. Returns what arrived, which may be fewer than `count`.
pub fn poll_messages_until_count_or_deadline(
    consumer: &BaseConsumer,
    count: usize,
    give_up_after: Duration,
) -> Vec<OwnedMessage> {
    let mut messages = Vec::new();
    let deadline = Instant::now() + give_up_after;
    while messages.len() < count && Instant::now() < deadline {
        if let Some(result) = consumer.poll(CONSUMER_POLL_INTERVAL) {
            messages.push(result.expect("consume").detach());
        }
    }
    messages
}

/// Reads a partition from its first offset until `count` messages or `give_up_after`.
pub fn consume_messages_from_partition_start(
    bootstrap_servers: &str,
    topic: &str,
    partition: i32,
    count: usize,
    give_up_after: Duration,
) -> Vec<OwnedMessage> {
    let consumer = consumer_assigned_from_partition_start(bootstrap_servers, topic, partition);
    poll_messages_until_count_or_deadline(&consumer, count, give_up_after)
}

/// A message's offset and its payload as UTF-8 text; the tests only write UTF-8 values.
pub fn offset_and_utf8_payload(message: &OwnedMessage) -> (i64, String) {
    (
        message.offset(),
        String::from_utf8(message.payload().unwrap().to_vec()).unwrap(),
    )
}

/// Reads a partition from its first offset until `count` messages or `give_up_after`, as
/// (offset, UTF-8 payload) pairs.
pub fn consume_offsets_and_payloads_from_partition_start(
    bootstrap_servers: &str,
    topic: &str,
    partition: i32,
    count: usize,
    give_up_after: Duration,
) -> Vec<(i64, String)> {
    consume_messages_from_partition_start(bootstrap_servers, topic, partition, count, give_up_after)
        .iter()
        .map(offset_and_utf8_payload)
        .collect()
}
