//! Offsets and the log's extent: ListOffsets, DeleteRecords, retention by time and size,
//! LogAppendTime, flush-per-message topics, OffsetForLeaderEpoch, declined fetch sessions and
//! long-polling fetches.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cauce_integration_tests::{BrokerProcess, RawClient};
use cauce_protocol::batch::BatchIter;
use cauce_protocol::records::{build_batch, decode_batch, BatchOptions, NewRecord};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_records_response::DeleteRecordsPartitionResult;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::list_offsets_response::ListOffsetsPartitionResponse;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::EpochEndOffset;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, CreateTopicsResponse, DeleteRecordsRequest,
    DeleteRecordsResponse, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, ProduceRequest, ProduceResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, Timestamp, TopicPartitionList};

const OFFSET_OUT_OF_RANGE: i16 = 1;
const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
const UNKNOWN_LEADER_EPOCH: i16 = 75;

/// ListOffsets timestamps with special meanings.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

const PRODUCE_VERSION: i16 = 9;
const FETCH_VERSION: i16 = 11;
const LIST_OFFSETS_VERSION: i16 = 8;

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

/// Creates a one-partition topic and insists that it worked.
fn create_topic(client: &mut RawClient, topic: &str, configs: &[(&str, &str)]) {
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
            .with_name(name(topic))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(configs)]);
    let response: CreateTopicsResponse = client.call(ApiKey::CreateTopics, 7, &request);
    assert_eq!(
        response.topics[0].error_code, 0,
        "create {topic}: {:?}",
        response.topics[0].error_message
    );
}

fn produce_request(topic: &str, batch: Vec<u8>) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(batch)))])])
}

/// Produces one batch with acks=all and returns the partition's answer.
fn produce(client: &mut RawClient, topic: &str, records: &[NewRecord]) -> PartitionProduceResponse {
    let batch = build_batch(0, records, &BatchOptions::default()).unwrap();
    let response: ProduceResponse = client.call(
        ApiKey::Produce,
        PRODUCE_VERSION,
        &produce_request(topic, batch),
    );
    response.responses[0].partition_responses[0].clone()
}

/// Produces one batch per value, each stamped now, insisting that each is accepted.
fn produce_values(client: &mut RawClient, topic: &str, values: &[String]) {
    for value in values {
        let response = produce(
            client,
            topic,
            &[NewRecord::value_only(now_ms(), value.as_bytes().to_vec())],
        );
        assert_eq!(response.error_code, 0, "produce {value}");
    }
}

fn fetch_request(topic: &str, offset: i64, max_wait_ms: i32, min_bytes: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])])
}

/// A fetch that does not wait; returns the one partition's data.
fn fetch(client: &mut RawClient, topic: &str, offset: i64) -> PartitionData {
    let response: FetchResponse = client.call(
        ApiKey::Fetch,
        FETCH_VERSION,
        &fetch_request(topic, offset, 0, 0),
    );
    assert_eq!(response.error_code, 0);
    response.responses[0].partitions[0].clone()
}

/// One record as a consumer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fetched {
    offset: i64,
    timestamp: i64,
    value: String,
}

/// Decodes every record of the batches in a fetch response's records.
fn decode(records: &Bytes) -> Vec<Fetched> {
    let mut batches = BatchIter::new(records);
    let mut fetched = Vec::new();
    for batch in batches.by_ref() {
        let (header, records) = decode_batch(batch.bytes).unwrap();
        for record in records {
            fetched.push(Fetched {
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
fn fetch_records_from(client: &mut RawClient, topic: &str, offset: i64) -> Vec<Fetched> {
    let mut fetched = Vec::new();
    let mut next = offset;
    loop {
        let data = fetch(client, topic, next);
        assert_eq!(data.error_code, 0, "fetch at {next}");
        let page: Vec<Fetched> = decode(&data.records.unwrap_or_default())
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

fn list_offset(
    client: &mut RawClient,
    topic: &str,
    timestamp: i64,
) -> ListOffsetsPartitionResponse {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(timestamp)])]);
    let response: ListOffsetsResponse =
        client.call(ApiKey::ListOffsets, LIST_OFFSETS_VERSION, &request);
    let partition = response.topics[0].partitions[0].clone();
    assert_eq!(partition.error_code, 0, "list offsets at {timestamp}");
    partition
}

fn earliest(client: &mut RawClient, topic: &str) -> i64 {
    list_offset(client, topic, EARLIEST).offset
}

fn latest(client: &mut RawClient, topic: &str) -> i64 {
    list_offset(client, topic, LATEST).offset
}

fn delete_records(
    client: &mut RawClient,
    topic: &str,
    offset: i64,
) -> DeleteRecordsPartitionResult {
    let request = DeleteRecordsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(offset)])]);
    let response: DeleteRecordsResponse = client.call(ApiKey::DeleteRecords, 2, &request);
    response.topics[0].partitions[0].clone()
}

fn numbered(prefix: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|index| format!("{prefix}-{index}"))
        .collect()
}

#[test]
fn list_offsets_answers_earliest_latest_by_timestamp_and_max_timestamp() {
    let broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "timestamps", &[]);
    let base = now_ms() - 60_000;
    let record = |delta: i64, value: &str| NewRecord::value_only(base + delta, value.into());
    // Three batches; the largest timestamp is in the middle one, not at the log end.
    let first = produce(
        &mut client,
        "timestamps",
        &[record(0, "a"), record(1000, "b"), record(2000, "c")],
    );
    let second = produce(&mut client, "timestamps", &[record(5000, "d")]);
    let third = produce(
        &mut client,
        "timestamps",
        &[record(3000, "e"), record(4000, "f")],
    );
    assert_eq!(
        (first.base_offset, second.base_offset, third.base_offset),
        (0, 3, 4)
    );

    let earliest = list_offset(&mut client, "timestamps", EARLIEST);
    assert_eq!(earliest.offset, 0);
    assert_eq!(earliest.timestamp, -1);
    let latest = list_offset(&mut client, "timestamps", LATEST);
    assert_eq!(latest.offset, 6);
    assert_eq!(latest.timestamp, -1);

    let max = list_offset(&mut client, "timestamps", MAX_TIMESTAMP);
    assert_eq!(
        (max.offset, max.timestamp),
        (3, base + 5000),
        "max timestamp is the record with the largest timestamp, not the last one"
    );

    // (target, expected offset, expected timestamp): the first offset whose timestamp >= target.
    let lookups = [
        (base - 1, 0, base),
        (base, 0, base),
        (base + 1000, 1, base + 1000),
        (base + 1500, 2, base + 2000),
        (base + 2500, 3, base + 5000),
        (base + 3500, 3, base + 5000),
        (base + 5000, 3, base + 5000),
    ];
    for (target, offset, timestamp) in lookups {
        let found = list_offset(&mut client, "timestamps", target);
        assert_eq!(
            (found.offset, found.timestamp),
            (offset, timestamp),
            "lookup of timestamp base+{}",
            target - base
        );
    }
    let after_all = list_offset(&mut client, "timestamps", base + 5001);
    assert_eq!(
        (after_all.offset, after_all.timestamp),
        (-1, -1),
        "a timestamp after every record finds nothing"
    );
}

#[test]
fn delete_records_moves_log_start_and_fetch_outside_the_log_is_out_of_range() {
    let broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "trimmed", &[]);
    let values = numbered("trimmed", 10);
    produce_values(&mut client, "trimmed", &values);

    let deleted = delete_records(&mut client, "trimmed", 4);
    assert_eq!(deleted.error_code, 0);
    assert_eq!(deleted.low_watermark, 4);
    assert_eq!(earliest(&mut client, "trimmed"), 4);
    assert_eq!(latest(&mut client, "trimmed"), 10);

    let below = fetch(&mut client, "trimmed", 2);
    assert_eq!(below.error_code, OFFSET_OUT_OF_RANGE);
    assert_eq!(below.log_start_offset, 4);
    assert!(decode(&below.records.unwrap_or_default()).is_empty());

    let kept = fetch_records_from(&mut client, "trimmed", 4);
    let kept_values: Vec<&str> = kept.iter().map(|record| record.value.as_str()).collect();
    assert_eq!(
        kept_values,
        values[4..].iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(
        kept.iter().map(|record| record.offset).collect::<Vec<_>>(),
        (4..10).collect::<Vec<i64>>()
    );

    let at_end = fetch(&mut client, "trimmed", 10);
    assert_eq!(at_end.error_code, 0, "the log end itself is in range");
    assert_eq!(at_end.high_watermark, 10);
    assert!(decode(&at_end.records.unwrap_or_default()).is_empty());

    let beyond = fetch(&mut client, "trimmed", 11);
    assert_eq!(beyond.error_code, OFFSET_OUT_OF_RANGE);

    let too_far = delete_records(&mut client, "trimmed", 11);
    assert_eq!(too_far.error_code, OFFSET_OUT_OF_RANGE);
    assert_eq!(
        earliest(&mut client, "trimmed"),
        4,
        "a refused delete moves nothing"
    );

    let backwards = delete_records(&mut client, "trimmed", 2);
    assert_eq!(backwards.error_code, 0);
    assert_eq!(
        backwards.low_watermark, 4,
        "the log start offset never moves back"
    );
}

#[test]
fn log_start_offset_from_delete_records_survives_restart_and_kill_9() {
    let mut broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "kept-trim", &[]);
    let values = numbered("kept-trim", 10);
    produce_values(&mut client, "kept-trim", &values);
    assert_eq!(delete_records(&mut client, "kept-trim", 3).low_watermark, 3);
    drop(client);

    broker.stop();
    broker.restart();
    let mut client = RawClient::connect(broker.address);
    assert_eq!(earliest(&mut client, "kept-trim"), 3);
    assert_eq!(
        fetch(&mut client, "kept-trim", 1).error_code,
        OFFSET_OUT_OF_RANGE
    );
    let after_stop = fetch_records_from(&mut client, "kept-trim", 3);
    assert_eq!(
        after_stop.first().map(|record| record.value.as_str()),
        Some("kept-trim-3")
    );
    assert_eq!(after_stop.len(), 7);

    assert_eq!(delete_records(&mut client, "kept-trim", 7).low_watermark, 7);
    drop(client);
    broker.kill9();
    broker.restart();
    let mut client = RawClient::connect(broker.address);
    assert_eq!(earliest(&mut client, "kept-trim"), 7);
    assert_eq!(latest(&mut client, "kept-trim"), 10);
    assert_eq!(
        fetch(&mut client, "kept-trim", 5).error_code,
        OFFSET_OUT_OF_RANGE
    );
    let after_kill = fetch_records_from(&mut client, "kept-trim", 7);
    let after_kill: Vec<&str> = after_kill
        .iter()
        .map(|record| record.value.as_str())
        .collect();
    assert_eq!(after_kill, ["kept-trim-7", "kept-trim-8", "kept-trim-9"]);
}

/// Polls ListOffsets earliest until `done` holds for it, for at most `limit`.
fn wait_for_log_start(
    client: &mut RawClient,
    topic: &str,
    limit: Duration,
    mut done: impl FnMut(&mut RawClient, i64) -> bool,
) -> i64 {
    let deadline = Instant::now() + limit;
    loop {
        let start = earliest(client, topic);
        if done(client, start) || Instant::now() > deadline {
            return start;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Base offsets of a partition's segment files, from their names.
fn segment_base_offsets(broker: &BrokerProcess, topic: &str) -> Vec<i64> {
    let dir = broker.data_dir().join(format!("{topic}-0"));
    let mut offsets: Vec<i64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|extension| extension != "log") {
                return None;
            }
            Some(path.file_stem()?.to_str()?.parse().unwrap())
        })
        .collect();
    offsets.sort();
    offsets
}

/// Bytes of every batch from `start` to the log end: what the segments still hold when `start`
/// is the log start offset. A fetch may stop at a segment's end, so this pages.
fn stored_bytes(client: &mut RawClient, topic: &str, start: i64) -> usize {
    let mut total = 0;
    let mut offset = start;
    loop {
        let data = fetch(client, topic, offset);
        assert_eq!(data.error_code, 0, "fetch at {offset}");
        let records = data.records.unwrap_or_default();
        let Some(last) = BatchIter::new(&records).last() else {
            return total;
        };
        total += records.len();
        offset = last.header.next_offset();
    }
}

/// A value of about 150 bytes, so that a few single-record batches fill a small segment.
fn padded(index: usize) -> String {
    format!("record-{index:04}-{}", "x".repeat(140))
}

#[test]
fn retention_ms_deletes_expired_segments_but_keeps_the_active_one() {
    let broker = BrokerProcess::start_with_config("log.retention.check.interval.ms = 200\n");
    let mut client = RawClient::connect(broker.address);
    create_topic(
        &mut client,
        "expiring",
        &[("segment.bytes", "1024"), ("retention.ms", "1000")],
    );
    let values: Vec<String> = (0..20).map(padded).collect();
    produce_values(&mut client, "expiring", &values);

    // Every record expires after a second; only the active segment may stay.
    let start = wait_for_log_start(
        &mut client,
        "expiring",
        Duration::from_secs(8),
        |_, start| start > 0 && segment_base_offsets(&broker, "expiring") == [start],
    );
    assert_eq!(
        segment_base_offsets(&broker, "expiring"),
        [start],
        "only the active segment is left, and the log starts at it"
    );
    assert!(start > 0, "retention never moved the log start offset");
    assert!(start <= 19, "the active segment holds the last record");
    assert_eq!(latest(&mut client, "expiring"), 20);
    assert_eq!(
        fetch(&mut client, "expiring", 0).error_code,
        OFFSET_OUT_OF_RANGE
    );

    let remaining = fetch_records_from(&mut client, "expiring", start);
    assert_eq!(
        remaining
            .iter()
            .map(|record| record.offset)
            .collect::<Vec<_>>(),
        (start..20).collect::<Vec<i64>>()
    );
    for record in &remaining {
        assert_eq!(record.value, values[record.offset as usize]);
    }

    // Once only the active segment is left, nothing more goes, however old it is.
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(earliest(&mut client, "expiring"), start);
    assert_eq!(
        fetch_records_from(&mut client, "expiring", start),
        remaining
    );
}

#[test]
fn retention_bytes_keeps_the_newest_segments_within_the_limit() {
    const SEGMENT_BYTES: usize = 1024;
    const RETENTION_BYTES: usize = 2048;
    let broker = BrokerProcess::start_with_config("log.retention.check.interval.ms = 200\n");
    let mut client = RawClient::connect(broker.address);
    create_topic(
        &mut client,
        "bounded",
        &[
            ("segment.bytes", &SEGMENT_BYTES.to_string()),
            ("retention.bytes", &RETENTION_BYTES.to_string()),
        ],
    );
    let values: Vec<String> = (0..40).map(padded).collect();
    produce_values(&mut client, "bounded", &values);

    let largest_batch = {
        let data = fetch(&mut client, "bounded", 39);
        data.records.map_or(0, |records| records.len())
    };
    let start = wait_for_log_start(
        &mut client,
        "bounded",
        Duration::from_secs(8),
        |client, start| {
            start > 0 && stored_bytes(client, "bounded", start) < RETENTION_BYTES + SEGMENT_BYTES
        },
    );
    assert!(
        start > 0,
        "retention.bytes never moved the log start offset"
    );
    let stored = stored_bytes(&mut client, "bounded", start);
    assert!(
        stored >= RETENTION_BYTES,
        "retention.bytes deleted too much: {stored} bytes left"
    );
    assert!(
        stored < RETENTION_BYTES + SEGMENT_BYTES + largest_batch,
        "retention.bytes left {stored} bytes"
    );
    let remaining = fetch_records_from(&mut client, "bounded", start);
    assert_eq!(
        remaining
            .iter()
            .map(|record| record.offset)
            .collect::<Vec<_>>(),
        (start..40).collect::<Vec<i64>>()
    );
    for record in &remaining {
        assert_eq!(record.value, values[record.offset as usize]);
    }
}

#[test]
fn log_append_time_topic_stamps_records_with_the_broker_clock() {
    let broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    create_topic(
        &mut client,
        "append-time",
        &[("message.timestamp.type", "LogAppendTime")],
    );
    let producer_timestamp = now_ms() - 3_600_000;
    let before = now_ms();
    let produced = produce(
        &mut client,
        "append-time",
        &[
            NewRecord::value_only(producer_timestamp, b"one".to_vec()),
            NewRecord::value_only(producer_timestamp + 1, b"two".to_vec()),
        ],
    );
    let after = now_ms();
    assert_eq!(produced.error_code, 0);
    let append_time = produced.log_append_time_ms;
    assert!(
        (before - 1000..=after + 1000).contains(&append_time),
        "log_append_time_ms {append_time} is not near now ({before}..{after})"
    );

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "unused")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset("append-time", 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let mut messages = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(8);
    while messages.len() < 2 && Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            messages.push(message.expect("consume").detach());
        }
    }
    assert_eq!(messages.len(), 2);
    for (message, value) in messages.iter().zip([b"one", b"two"]) {
        assert_eq!(message.payload(), Some(&value[..]));
        assert_eq!(
            message.timestamp(),
            Timestamp::LogAppendTime(append_time),
            "records carry the broker's append time, not the producer's {producer_timestamp}"
        );
    }
}

#[test]
fn flush_every_message_topic_acknowledges_and_keeps_every_record_from_many_connections() {
    const CONNECTIONS: usize = 4;
    const REQUESTS: usize = 40;
    const RECORDS_PER_REQUEST: usize = 5;
    const IN_FLIGHT: usize = 4;
    let broker = BrokerProcess::start();
    let mut admin = RawClient::connect(broker.address);
    create_topic(&mut admin, "flushed", &[("flush.messages", "1")]);

    let writers: Vec<_> = (0..CONNECTIONS)
        .map(|connection| {
            let address = broker.address;
            std::thread::spawn(move || {
                let mut client = RawClient::connect(address);
                let mut base_offsets = Vec::new();
                let mut pending = std::collections::VecDeque::new();
                // Several requests in flight per connection, so that flushes can be shared.
                for request in 0..REQUESTS {
                    let records: Vec<NewRecord> = (0..RECORDS_PER_REQUEST)
                        .map(|index| {
                            let value = format!("c{connection}-r{request}-i{index}");
                            NewRecord::value_only(now_ms(), value.into_bytes())
                        })
                        .collect();
                    let batch = build_batch(0, &records, &BatchOptions::default()).unwrap();
                    pending.push_back(client.send(
                        ApiKey::Produce,
                        PRODUCE_VERSION,
                        &produce_request("flushed", batch),
                    ));
                    while pending.len() >= IN_FLIGHT
                        || (request == REQUESTS - 1 && !pending.is_empty())
                    {
                        let (correlation_id, response): (i32, ProduceResponse) =
                            client.receive(ApiKey::Produce, PRODUCE_VERSION);
                        assert_eq!(
                            Some(correlation_id),
                            pending.pop_front(),
                            "responses in order"
                        );
                        let partition = &response.responses[0].partition_responses[0];
                        assert_eq!(partition.error_code, 0);
                        base_offsets.push(partition.base_offset);
                    }
                }
                base_offsets
            })
        })
        .collect();
    let mut base_offsets = Vec::new();
    for writer in writers {
        let offsets = writer.join().expect("writer");
        assert_eq!(offsets.len(), REQUESTS);
        assert!(
            offsets.windows(2).all(|pair| pair[0] < pair[1]),
            "one connection's requests are appended in order"
        );
        base_offsets.extend(offsets);
    }
    let total = (CONNECTIONS * REQUESTS * RECORDS_PER_REQUEST) as i64;
    let unique: HashSet<i64> = base_offsets.iter().copied().collect();
    assert_eq!(
        unique.len(),
        CONNECTIONS * REQUESTS,
        "each batch got its own offsets"
    );
    assert_eq!(latest(&mut admin, "flushed"), total);

    let stored = fetch_records_from(&mut admin, "flushed", 0);
    assert_eq!(
        stored
            .iter()
            .map(|record| record.offset)
            .collect::<Vec<_>>(),
        (0..total).collect::<Vec<i64>>()
    );
    let values: HashSet<&str> = stored.iter().map(|record| record.value.as_str()).collect();
    assert_eq!(values.len() as i64, total, "no record was written twice");
    for connection in 0..CONNECTIONS {
        for request in 0..REQUESTS {
            for index in 0..RECORDS_PER_REQUEST {
                let value = format!("c{connection}-r{request}-i{index}");
                assert!(values.contains(value.as_str()), "{value} is missing");
            }
        }
    }
}

fn offset_for_leader_epoch(
    client: &mut RawClient,
    topic: &str,
    current_leader_epoch: i32,
    leader_epoch: i32,
) -> EpochEndOffset {
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(current_leader_epoch)
                .with_leader_epoch(leader_epoch)])]);
    let response: OffsetForLeaderEpochResponse =
        client.call(ApiKey::OffsetForLeaderEpoch, 4, &request);
    response.topics[0].partitions[0].clone()
}

#[test]
fn offset_for_leader_epoch_gives_log_end_for_current_epoch_and_refuses_future_epochs() {
    let broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "epochs", &[]);
    produce_values(&mut client, "epochs", &numbered("epochs", 5));
    let leader_epoch = list_offset(&mut client, "epochs", LATEST).leader_epoch;
    assert_eq!(
        leader_epoch, 0,
        "a new single-node partition starts at epoch 0"
    );

    let current = offset_for_leader_epoch(&mut client, "epochs", -1, 0);
    assert_eq!(current.error_code, 0);
    assert_eq!((current.leader_epoch, current.end_offset), (0, 5));

    let checked = offset_for_leader_epoch(&mut client, "epochs", 0, 0);
    assert_eq!(checked.error_code, 0);
    assert_eq!(checked.end_offset, 5);

    let future = offset_for_leader_epoch(&mut client, "epochs", 1, 0);
    assert_eq!(future.error_code, UNKNOWN_LEADER_EPOCH);
    assert_eq!(future.end_offset, -1);
}

#[test]
fn fetch_sessions_are_declined_with_full_responses() {
    let broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "sessions", &[]);
    produce_values(&mut client, "sessions", &numbered("sessions", 3));

    // Epoch 0 asks for a new session; the broker answers in full without one.
    let opening = fetch_request("sessions", 0, 0, 0).with_session_epoch(0);
    let response: FetchResponse = client.call(ApiKey::Fetch, FETCH_VERSION, &opening);
    assert_eq!(response.error_code, 0);
    assert_eq!(response.session_id, 0, "no session is created");
    let records = decode(
        &response.responses[0].partitions[0]
            .records
            .clone()
            .unwrap_or_default(),
    );
    assert_eq!(
        records
            .iter()
            .map(|record| record.value.as_str())
            .collect::<Vec<_>>(),
        ["sessions-0", "sessions-1", "sessions-2"]
    );

    let incremental = fetch_request("sessions", 3, 0, 0)
        .with_session_id(1234)
        .with_session_epoch(1);
    let response: FetchResponse = client.call(ApiKey::Fetch, FETCH_VERSION, &incremental);
    assert_eq!(response.error_code, FETCH_SESSION_ID_NOT_FOUND);
    assert!(response.responses.iter().all(|topic| topic
        .partitions
        .iter()
        .all(|partition| partition.records.is_none())));
}

#[test]
fn long_poll_fetch_returns_as_soon_as_another_connection_produces() {
    let broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "long-poll", &[]);
    produce_values(&mut client, "long-poll", &numbered("old", 2));

    let started = Instant::now();
    let correlation_id = client.send(
        ApiKey::Fetch,
        FETCH_VERSION,
        &fetch_request("long-poll", 2, 3000, 1),
    );
    let address = broker.address;
    let producer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let mut other = RawClient::connect(address);
        produce_values(&mut other, "long-poll", &["fresh".to_string()]);
    });
    let (received, response): (i32, FetchResponse) = client.receive(ApiKey::Fetch, FETCH_VERSION);
    let elapsed = started.elapsed();
    producer.join().unwrap();
    assert_eq!(received, correlation_id);
    assert!(
        elapsed < Duration::from_millis(2000),
        "the fetch waited {elapsed:?} although data arrived after 300 ms"
    );
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    let records = decode(&partition.records.clone().unwrap_or_default());
    assert_eq!(records.len(), 1);
    assert_eq!((records[0].offset, records[0].value.as_str()), (2, "fresh"));
}

#[test]
fn long_poll_fetch_without_new_data_waits_for_max_wait() {
    let broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "quiet", &[]);
    produce_values(&mut client, "quiet", &numbered("quiet", 2));

    let started = Instant::now();
    let response: FetchResponse = client.call(
        ApiKey::Fetch,
        FETCH_VERSION,
        &fetch_request("quiet", 2, 3000, 1),
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(2500),
        "the fetch returned after {elapsed:?}, before max_wait_ms"
    );
    assert!(
        elapsed < Duration::from_secs(6),
        "the fetch took {elapsed:?}"
    );
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    assert_eq!(partition.high_watermark, 2);
    assert!(decode(&partition.records.clone().unwrap_or_default()).is_empty());
}
