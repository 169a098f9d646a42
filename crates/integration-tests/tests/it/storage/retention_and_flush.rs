//! The log's extent over time: retention by time and by size, LogAppendTime topics, and
//! flush-per-message topics.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use cauce_integration_tests::clients::consume_messages_from_partition_start;
use cauce_integration_tests::raw::error_codes::OFFSET_OUT_OF_RANGE;
use cauce_integration_tests::raw::{
    create_single_partition_topic, current_unix_time_ms, fetch_partition_zero_without_waiting,
    fetch_records_from_offset_to_log_end, log_end_offset, log_start_offset,
    produce_each_value_as_its_own_batch, produce_records_as_one_batch,
    produce_request_for_partition_zero, PRODUCE_VERSION,
};
use cauce_integration_tests::{BrokerProcess, RawClient};
use cauce_protocol::batch::BatchIter;
use cauce_protocol::records::{build_batch, BatchOptions, NewRecord};
use kafka_protocol::messages::{ApiKey, ProduceResponse};
use rdkafka::message::Message;
use rdkafka::Timestamp;

/// Polls ListOffsets earliest until `done` holds for it, for at most `limit`.
fn wait_for_log_start(
    client: &mut RawClient,
    topic: &str,
    limit: Duration,
    mut done: impl FnMut(&mut RawClient, i64) -> bool,
) -> i64 {
    let deadline = Instant::now() + limit;
    loop {
        let start = log_start_offset(client, topic);
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
        let data = fetch_partition_zero_without_waiting(client, topic, offset);
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
    create_single_partition_topic(
        &mut client,
        "expiring",
        &[("segment.bytes", "1024"), ("retention.ms", "1000")],
    );
    let values: Vec<String> = (0..20).map(padded).collect();
    produce_each_value_as_its_own_batch(&mut client, "expiring", &values);

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
    assert_eq!(log_end_offset(&mut client, "expiring"), 20);
    assert_eq!(
        fetch_partition_zero_without_waiting(&mut client, "expiring", 0).error_code,
        OFFSET_OUT_OF_RANGE
    );

    let remaining = fetch_records_from_offset_to_log_end(&mut client, "expiring", start);
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
    assert_eq!(log_start_offset(&mut client, "expiring"), start);
    assert_eq!(
        fetch_records_from_offset_to_log_end(&mut client, "expiring", start),
        remaining
    );
}

#[test]
fn retention_bytes_keeps_the_newest_segments_within_the_limit() {
    const SEGMENT_BYTES: usize = 1024;
    const RETENTION_BYTES: usize = 2048;
    let broker = BrokerProcess::start_with_config("log.retention.check.interval.ms = 200\n");
    let mut client = RawClient::connect(broker.address);
    create_single_partition_topic(
        &mut client,
        "bounded",
        &[
            ("segment.bytes", &SEGMENT_BYTES.to_string()),
            ("retention.bytes", &RETENTION_BYTES.to_string()),
        ],
    );
    let values: Vec<String> = (0..40).map(padded).collect();
    produce_each_value_as_its_own_batch(&mut client, "bounded", &values);

    let largest_batch = {
        let data = fetch_partition_zero_without_waiting(&mut client, "bounded", 39);
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
    let remaining = fetch_records_from_offset_to_log_end(&mut client, "bounded", start);
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
    create_single_partition_topic(
        &mut client,
        "append-time",
        &[("message.timestamp.type", "LogAppendTime")],
    );
    let producer_timestamp = current_unix_time_ms() - 3_600_000;
    let before = current_unix_time_ms();
    let produced = produce_records_as_one_batch(
        &mut client,
        "append-time",
        &[
            NewRecord::value_only(producer_timestamp, b"one".to_vec()),
            NewRecord::value_only(producer_timestamp + 1, b"two".to_vec()),
        ],
    );
    let after = current_unix_time_ms();
    assert_eq!(produced.error_code, 0);
    let append_time = produced.log_append_time_ms;
    assert!(
        (before - 1000..=after + 1000).contains(&append_time),
        "log_append_time_ms {append_time} is not near now ({before}..{after})"
    );

    let messages = consume_messages_from_partition_start(
        &broker.bootstrap(),
        "append-time",
        0,
        2,
        Duration::from_secs(8),
    );
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
    create_single_partition_topic(&mut admin, "flushed", &[("flush.messages", "1")]);

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
                            NewRecord::value_only(current_unix_time_ms(), value.into_bytes())
                        })
                        .collect();
                    let batch = build_batch(0, &records, &BatchOptions::default()).unwrap();
                    pending.push_back(client.send(
                        ApiKey::Produce,
                        PRODUCE_VERSION,
                        &produce_request_for_partition_zero("flushed", batch),
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
    assert_eq!(log_end_offset(&mut admin, "flushed"), total);

    let stored = fetch_records_from_offset_to_log_end(&mut admin, "flushed", 0);
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
