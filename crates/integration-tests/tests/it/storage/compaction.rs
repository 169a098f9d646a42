//! Log compaction end to end: a compacted topic keeps the latest value per key, and tombstoned
//! keys disappear after delete.retention.ms, with real producers and consumers.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cauce_integration_tests::BrokerProcess;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

const KEYS: usize = 1_000;
const UPDATES: usize = 100_000;
const TOMBSTONED_KEYS: usize = 100;

/// Everything in partition 0 from the log start: (key, value or None for a tombstone).
fn read_whole_partition(bootstrap: &str, topic: &str) -> Vec<(String, Option<String>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "compaction-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                let key = String::from_utf8(message.key().unwrap_or_default().to_vec()).unwrap();
                let value = message
                    .payload()
                    .map(|payload| String::from_utf8(payload.to_vec()).unwrap());
                records.push((key, value));
            }
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(error)) => panic!("consume failed: {error}"),
            None => {}
        }
    }
    records
}

fn send(producer: &BaseProducer, topic: &str, key: &str, value: Option<&str>) {
    loop {
        let record = BaseRecord::<str, str>::to(topic).key(key);
        let record = match value {
            Some(value) => record.payload(value),
            None => record,
        };
        match producer.send(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                producer.poll(Duration::from_millis(5));
            }
            Err((error, _)) => panic!("send failed: {error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn compaction_keeps_the_latest_value_per_key_and_drops_tombstoned_keys() {
    let broker = BrokerProcess::start_with_config("log.cleaner.backoff.ms = 200\n");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .unwrap();
    let topic = NewTopic::new("changelog", 1, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact")
        .set("segment.bytes", "65536")
        .set("segment.ms", "1000")
        .set("min.cleanable.dirty.ratio", "0.01")
        .set("delete.retention.ms", "2000");
    for result in admin
        .create_topics(&[topic], &AdminOptions::new())
        .await
        .unwrap()
    {
        result.expect("topic created");
    }
    let bootstrap = broker.bootstrap();
    tokio::task::spawn_blocking(move || {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("linger.ms", "10")
            // Batches must fit in a segment (segment.bytes below), as with Kafka.
            .set("batch.size", "16384")
            .set("compression.codec", "lz4")
            .create()
            .unwrap();
        let mut latest: BTreeMap<String, Option<String>> = BTreeMap::new();
        for update in 0..UPDATES {
            let key = format!("key-{:04}", update % KEYS);
            let value = format!("{key}:version-{}", update / KEYS);
            send(&producer, "changelog", &key, Some(&value));
            latest.insert(key, Some(value));
        }
        for key in 0..TOMBSTONED_KEYS {
            let key = format!("key-{key:04}");
            send(&producer, "changelog", &key, None);
            latest.insert(key, None);
        }
        producer.flush(Duration::from_secs(60)).unwrap();
        let expected: BTreeMap<String, String> =
            latest.iter().filter_map(|(key, value)| value.clone().map(|value| (key.clone(), value))).collect();
        assert_eq!(expected.len(), KEYS - TOMBSTONED_KEYS);

        // Filler records keep rolling segments (segment.ms) and give the cleaner dirty data, so
        // the tombstones' segment is sealed, cleaned once, and cleaned again after they expire.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut fillers = 0;
        loop {
            std::thread::sleep(Duration::from_millis(1100));
            send(&producer, "changelog", "filler", Some(&format!("filler-{fillers}")));
            fillers += 1;
            producer.flush(Duration::from_secs(10)).unwrap();
            let stored = read_whole_partition(&bootstrap, "changelog");
            let mut per_key: BTreeMap<String, Option<String>> = BTreeMap::new();
            for (key, value) in &stored {
                per_key.insert(key.clone(), value.clone());
            }
            per_key.remove("filler");
            let live: BTreeMap<String, String> =
                per_key.iter().filter_map(|(key, value)| value.clone().map(|value| (key.clone(), value))).collect();
            // Whatever compaction did, the latest value of every key is what was written last.
            assert_eq!(live, expected, "a key lost its latest value");
            let tombstones_left = stored.iter().filter(|(_, value)| value.is_none()).count();
            let updates_left = stored.iter().filter(|(key, _)| key != "filler").count();
            if tombstones_left == 0 && updates_left == expected.len() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "not compacted in time: {updates_left} records and {tombstones_left} tombstones for {} live keys",
                expected.len()
            );
        }
    })
    .await
    .unwrap();
}
