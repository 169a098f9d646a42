//! Wire-protocol helpers over [`RawClient`]: one-partition CreateTopics, Produce, Fetch and
//! ListOffsets calls, record batches stamped with the current time, decoding of fetched batches,
//! and the Kafka error codes the tests expect.
//!
//! Every helper addresses partition 0 of a one-partition topic, which is what the raw-protocol
//! tests create; tests that need more partitions go through the rdkafka helpers in
//! [`crate::clients`].

use bytes::Bytes;
use cauce_protocol::batch::BatchIter;
use cauce_protocol::records::{build_batch, decode_batch, BatchOptions, NewRecord};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::list_offsets_response::ListOffsetsPartitionResponse;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, CreateTopicsResponse, FetchRequest, FetchResponse,
    ListOffsetsRequest, ListOffsetsResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::RawClient;

/// Kafka error codes the tests expect, written out independently of the broker's own table so
/// that a wrong entry there cannot hide behind the same wrong entry here.
pub mod error_codes {
    /// A fetch or DeleteRecords offset outside [log start, log end].
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    /// A record batch whose CRC or framing is broken.
    pub const CORRUPT_MESSAGE: i16 = 2;
    /// A request for a topic or partition the broker does not have.
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    /// A batch larger than the topic's `max.message.bytes`.
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    /// A topic name Kafka does not allow.
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    /// A record timestamp outside `message.timestamp.before/after.max.ms`.
    pub const INVALID_TIMESTAMP: i16 = 32;
    /// A request version the broker does not speak.
    pub const UNSUPPORTED_VERSION: i16 = 35;
    /// A record the topic cannot take (no key on a compacted topic, too large decompressed).
    pub const INVALID_RECORD: i16 = 87;
    /// A topic configuration key or value the broker refuses.
    pub const INVALID_CONFIG: i16 = 40;
    /// An idempotent batch whose sequence does not follow the last one written.
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    /// An idempotent producer fenced by a newer epoch of the same producer id.
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    /// Transactional batches in a Produce request without a transactional id.
    pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
    /// An incremental fetch for a session the broker does not know.
    pub const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
    /// A leader epoch newer than the broker's (KIP-320).
    pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
}

/// The CreateTopics version the raw tests speak.
pub const CREATE_TOPICS_VERSION: i16 = 7;
/// Produce v9 carries idempotent batches and is flexible.
pub const PRODUCE_VERSION: i16 = 9;
/// The Fetch version the raw tests speak: it has fetch sessions and log start offsets.
pub const FETCH_VERSION: i16 = 11;
/// The ListOffsets version the raw tests speak: it answers the max-timestamp query.
pub const LIST_OFFSETS_VERSION: i16 = 8;

/// The ListOffsets timestamp that asks for the log end offset.
pub const LIST_OFFSETS_LATEST_TIMESTAMP: i64 = -1;
/// The ListOffsets timestamp that asks for the log start offset.
pub const LIST_OFFSETS_EARLIEST_TIMESTAMP: i64 = -2;
/// The ListOffsets timestamp that asks for the record with the largest timestamp.
pub const LIST_OFFSETS_MAX_TIMESTAMP: i64 = -3;

/// Wraps a topic name as the protocol messages want it.
pub fn topic_name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_string()))
}

/// Current wall-clock time in Unix milliseconds. Records need it because records with old
/// timestamps would roll a segment per batch (`segment.ms`).
pub fn current_unix_time_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Sends CreateTopics for one topic with one partition, replication factor 1 and the given
/// topic configs, and returns the answer without judging it (for tests of refused topics).
pub fn send_create_single_partition_topic(
    client: &mut RawClient,
    topic: &str,
    configs: &[(&str, &str)],
) -> CreateTopicsResponse {
    let configs = configs
        .iter()
        .map(|(key, value)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(key.to_string()))
                .with_value(Some(StrBytes::from_string(value.to_string())))
        })
        .collect();
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(topic))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(configs)]);
    client.call(ApiKey::CreateTopics, CREATE_TOPICS_VERSION, &request)
}

/// Creates a one-partition topic with the given topic configs and insists that it worked.
pub fn create_single_partition_topic(
    client: &mut RawClient,
    topic: &str,
    configs: &[(&str, &str)],
) {
    let response = send_create_single_partition_topic(client, topic, configs);
    assert_eq!(
        response.topics[0].error_code, 0,
        "create {topic}: {:?}",
        response.topics[0].error_message
    );
}

/// A record batch of `values`, each stamped now, with the given producer fields.
pub fn record_batch_of_values_stamped_now_with_options(
    values: &[&str],
    options: &BatchOptions,
) -> Vec<u8> {
    let records: Vec<NewRecord> = values
        .iter()
        .map(|value| NewRecord::value_only(current_unix_time_ms(), value.as_bytes().to_vec()))
        .collect();
    build_batch(0, &records, options).unwrap()
}

/// A plain (non-idempotent) record batch of `values`, each stamped now.
pub fn record_batch_of_values_stamped_now(values: &[&str]) -> Vec<u8> {
    record_batch_of_values_stamped_now_with_options(values, &BatchOptions::default())
}

/// A Produce request with acks=all that writes `batch` to partition 0 of `topic`.
pub fn produce_request_for_partition_zero(topic: &str, batch: Vec<u8>) -> ProduceRequest {
    produce_request(topic, 0, batch)
}

/// A Produce request with acks=all and a 5 s timeout that writes `batch` to one partition.
pub fn produce_request(topic: &str, partition: i32, batch: Vec<u8>) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(Bytes::from(batch)))])])
}

/// Sends one encoded batch with acks=all and returns the partition's answer, whatever it is.
pub fn produce_batch_to_partition_zero(
    client: &mut RawClient,
    topic: &str,
    batch: &[u8],
) -> PartitionProduceResponse {
    produce_batch(client, topic, 0, batch)
}

/// Sends one encoded batch with acks=all to `partition` and returns its answer, whatever it is.
pub fn produce_batch(
    client: &mut RawClient,
    topic: &str,
    partition: i32,
    batch: &[u8],
) -> PartitionProduceResponse {
    let response: ProduceResponse = client.call(
        ApiKey::Produce,
        PRODUCE_VERSION,
        &produce_request(topic, partition, batch.to_vec()),
    );
    response.responses[0].partition_responses[0].clone()
}

/// Produces `records` as one plain batch with acks=all and returns the partition's answer.
pub fn produce_records_as_one_batch(
    client: &mut RawClient,
    topic: &str,
    records: &[NewRecord],
) -> PartitionProduceResponse {
    let batch = build_batch(0, records, &BatchOptions::default()).unwrap();
    produce_batch_to_partition_zero(client, topic, &batch)
}

/// Produces one batch per value, each stamped now, insisting that each is accepted.
pub fn produce_each_value_as_its_own_batch(client: &mut RawClient, topic: &str, values: &[String]) {
    for value in values {
        let response = produce_records_as_one_batch(
            client,
            topic,
            &[NewRecord::value_only(
                current_unix_time_ms(),
                value.as_bytes().to_vec(),
            )],
        );
        assert_eq!(response.error_code, 0, "produce {value}");
    }
}

/// A consumer's (replica id -1) Fetch request for partition 0 of `topic` from `offset`, without
/// a fetch session, allowing 1 MiB.
pub fn fetch_request_for_partition_zero(
    topic: &str,
    offset: i64,
    max_wait_ms: i32,
    min_bytes: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])])
}

/// A fetch from `offset` that does not wait; returns partition 0's data, whatever its error.
pub fn fetch_partition_zero_without_waiting(
    client: &mut RawClient,
    topic: &str,
    offset: i64,
) -> PartitionData {
    let response: FetchResponse = client.call(
        ApiKey::Fetch,
        FETCH_VERSION,
        &fetch_request_for_partition_zero(topic, offset, 0, 0),
    );
    assert_eq!(response.error_code, 0);
    response.responses[0].partitions[0].clone()
}

/// One record as a consumer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedRecord {
    /// Its offset in the partition.
    pub offset: i64,
    /// Its timestamp, after the batch's timestamp type is applied.
    pub timestamp: i64,
    /// Its value; the tests only write UTF-8 values.
    pub value: String,
}

/// Decodes every record of the batches in a fetch response's records, insisting that the
/// broker sent only whole batches.
pub fn decode_fetched_records(records: &Bytes) -> Vec<FetchedRecord> {
    let mut batches = BatchIter::new(records);
    let mut fetched = Vec::new();
    for batch in batches.by_ref() {
        let (header, records) = decode_batch(batch.bytes, usize::MAX).unwrap();
        for record in records {
            fetched.push(FetchedRecord {
                offset: record.offset(&header),
                timestamp: record.timestamp(&header),
                value: String::from_utf8(record.value.clone().unwrap().to_vec()).unwrap(),
            });
        }
    }
    assert!(
        batches.stop_reason().is_none(),
        "fetched batches are whole: {:?}",
        batches.stop_reason()
    );
    fetched
}

/// Every record from `offset` to the log end, as a consumer that skips the head of the first
/// batch sees them. A fetch may stop at a segment's end, so this pages.
pub fn fetch_records_from_offset_to_log_end(
    client: &mut RawClient,
    topic: &str,
    offset: i64,
) -> Vec<FetchedRecord> {
    let mut fetched = Vec::new();
    let mut next = offset;
    loop {
        let data = fetch_partition_zero_without_waiting(client, topic, next);
        assert_eq!(data.error_code, 0, "fetch at {next}");
        let page: Vec<FetchedRecord> = decode_fetched_records(&data.records.unwrap_or_default())
            .into_iter()
            .filter(|record| record.offset >= next)
            .collect();
        let Some(last) = page.last() else {
            return fetched;
        };
        next = last.offset + 1;
        fetched.extend(page);
    }
}

/// ListOffsets for partition 0 at `timestamp` (or one of the `LIST_OFFSETS_*_TIMESTAMP`
/// queries), insisting that the broker answers without error.
pub fn list_offsets_for_partition_zero(
    client: &mut RawClient,
    topic: &str,
    timestamp: i64,
) -> ListOffsetsPartitionResponse {
    let partition = ask_list_offsets_for_partition_zero(client, topic, timestamp);
    assert_eq!(partition.error_code, 0, "list offsets at {timestamp}");
    partition
}

/// ListOffsets for partition 0 at `timestamp`, whatever the broker answers.
pub fn ask_list_offsets_for_partition_zero(
    client: &mut RawClient,
    topic: &str,
    timestamp: i64,
) -> ListOffsetsPartitionResponse {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(timestamp)])]);
    let response: ListOffsetsResponse =
        client.call(ApiKey::ListOffsets, LIST_OFFSETS_VERSION, &request);
    response.topics[0].partitions[0].clone()
}

/// The log start offset of partition 0, from ListOffsets.
pub fn log_start_offset(client: &mut RawClient, topic: &str) -> i64 {
    list_offsets_for_partition_zero(client, topic, LIST_OFFSETS_EARLIEST_TIMESTAMP).offset
}

/// The log end offset of partition 0, from ListOffsets.
pub fn log_end_offset(client: &mut RawClient, topic: &str) -> i64 {
    list_offsets_for_partition_zero(client, topic, LIST_OFFSETS_LATEST_TIMESTAMP).offset
}
