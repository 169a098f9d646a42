//! Offsets and the log's extent: ListOffsets, DeleteRecords, OffsetForLeaderEpoch, declined
//! fetch sessions and long-polling fetches.

use std::time::{Duration, Instant};

use cauce_integration_tests::raw::error_codes::{
    FETCH_SESSION_ID_NOT_FOUND, OFFSET_OUT_OF_RANGE, UNKNOWN_LEADER_EPOCH,
};
use cauce_integration_tests::raw::{
    create_single_partition_topic, current_unix_time_ms, decode_fetched_records,
    fetch_partition_zero_without_waiting, fetch_records_from_offset_to_log_end,
    fetch_request_for_partition_zero, list_offsets_for_partition_zero, log_end_offset,
    log_start_offset, produce_each_value_as_its_own_batch, produce_records_as_one_batch,
    topic_name, FETCH_VERSION, LIST_OFFSETS_EARLIEST_TIMESTAMP, LIST_OFFSETS_LATEST_TIMESTAMP,
    LIST_OFFSETS_MAX_TIMESTAMP,
};
use cauce_integration_tests::{BrokerProcess, RawClient};
use cauce_protocol::records::NewRecord;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_records_response::DeleteRecordsPartitionResult;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::EpochEndOffset;
use kafka_protocol::messages::{
    ApiKey, BrokerId, DeleteRecordsRequest, DeleteRecordsResponse, FetchResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};

/// DeleteRecords up to `offset` on partition 0; returns the partition's answer, whatever it is.
fn delete_records(
    client: &mut RawClient,
    topic: &str,
    offset: i64,
) -> DeleteRecordsPartitionResult {
    let request = DeleteRecordsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(offset)])]);
    let response: DeleteRecordsResponse = client.call(ApiKey::DeleteRecords, 2, &request);
    response.topics[0].partitions[0].clone()
}

/// `count` distinct values `{prefix}-0`, `{prefix}-1`, and so on.
fn numbered(prefix: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|index| format!("{prefix}-{index}"))
        .collect()
}

#[test]
fn list_offsets_answers_earliest_latest_by_timestamp_and_max_timestamp() {
    let broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    create_single_partition_topic(&mut client, "timestamps", &[]);
    let base = current_unix_time_ms() - 60_000;
    let record = |delta: i64, value: &str| NewRecord::value_only(base + delta, value.into());
    // Three batches; the largest timestamp is in the middle one, not at the log end.
    let first = produce_records_as_one_batch(
        &mut client,
        "timestamps",
        &[record(0, "a"), record(1000, "b"), record(2000, "c")],
    );
    let second = produce_records_as_one_batch(&mut client, "timestamps", &[record(5000, "d")]);
    let third = produce_records_as_one_batch(
        &mut client,
        "timestamps",
        &[record(3000, "e"), record(4000, "f")],
    );
    assert_eq!(
        (first.base_offset, second.base_offset, third.base_offset),
        (0, 3, 4)
    );

    let earliest =
        list_offsets_for_partition_zero(&mut client, "timestamps", LIST_OFFSETS_EARLIEST_TIMESTAMP);
    assert_eq!(earliest.offset, 0);
    assert_eq!(earliest.timestamp, -1);
    let latest =
        list_offsets_for_partition_zero(&mut client, "timestamps", LIST_OFFSETS_LATEST_TIMESTAMP);
    assert_eq!(latest.offset, 6);
    assert_eq!(latest.timestamp, -1);

    let max =
        list_offsets_for_partition_zero(&mut client, "timestamps", LIST_OFFSETS_MAX_TIMESTAMP);
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
        let found = list_offsets_for_partition_zero(&mut client, "timestamps", target);
        assert_eq!(
            (found.offset, found.timestamp),
            (offset, timestamp),
            "lookup of timestamp base+{}",
            target - base
        );
    }
    let after_all = list_offsets_for_partition_zero(&mut client, "timestamps", base + 5001);
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
    create_single_partition_topic(&mut client, "trimmed", &[]);
    let values = numbered("trimmed", 10);
    produce_each_value_as_its_own_batch(&mut client, "trimmed", &values);

    let deleted = delete_records(&mut client, "trimmed", 4);
    assert_eq!(deleted.error_code, 0);
    assert_eq!(deleted.low_watermark, 4);
    assert_eq!(log_start_offset(&mut client, "trimmed"), 4);
    assert_eq!(log_end_offset(&mut client, "trimmed"), 10);

    let below = fetch_partition_zero_without_waiting(&mut client, "trimmed", 2);
    assert_eq!(below.error_code, OFFSET_OUT_OF_RANGE);
    assert_eq!(below.log_start_offset, 4);
    assert!(decode_fetched_records(&below.records.unwrap_or_default()).is_empty());

    let kept = fetch_records_from_offset_to_log_end(&mut client, "trimmed", 4);
    let kept_values: Vec<&str> = kept.iter().map(|record| record.value.as_str()).collect();
    assert_eq!(
        kept_values,
        values[4..].iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(
        kept.iter().map(|record| record.offset).collect::<Vec<_>>(),
        (4..10).collect::<Vec<i64>>()
    );

    let at_end = fetch_partition_zero_without_waiting(&mut client, "trimmed", 10);
    assert_eq!(at_end.error_code, 0, "the log end itself is in range");
    assert_eq!(at_end.high_watermark, 10);
    assert!(decode_fetched_records(&at_end.records.unwrap_or_default()).is_empty());

    let beyond = fetch_partition_zero_without_waiting(&mut client, "trimmed", 11);
    assert_eq!(beyond.error_code, OFFSET_OUT_OF_RANGE);

    let too_far = delete_records(&mut client, "trimmed", 11);
    assert_eq!(too_far.error_code, OFFSET_OUT_OF_RANGE);
    assert_eq!(
        log_start_offset(&mut client, "trimmed"),
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
    create_single_partition_topic(&mut client, "kept-trim", &[]);
    let values = numbered("kept-trim", 10);
    produce_each_value_as_its_own_batch(&mut client, "kept-trim", &values);
    assert_eq!(delete_records(&mut client, "kept-trim", 3).low_watermark, 3);
    drop(client);

    broker.stop();
    broker.restart();
    let mut client = RawClient::connect(broker.address);
    assert_eq!(log_start_offset(&mut client, "kept-trim"), 3);
    assert_eq!(
        fetch_partition_zero_without_waiting(&mut client, "kept-trim", 1).error_code,
        OFFSET_OUT_OF_RANGE
    );
    let after_stop = fetch_records_from_offset_to_log_end(&mut client, "kept-trim", 3);
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
    assert_eq!(log_start_offset(&mut client, "kept-trim"), 7);
    assert_eq!(log_end_offset(&mut client, "kept-trim"), 10);
    assert_eq!(
        fetch_partition_zero_without_waiting(&mut client, "kept-trim", 5).error_code,
        OFFSET_OUT_OF_RANGE
    );
    let after_kill = fetch_records_from_offset_to_log_end(&mut client, "kept-trim", 7);
    let after_kill: Vec<&str> = after_kill
        .iter()
        .map(|record| record.value.as_str())
        .collect();
    assert_eq!(after_kill, ["kept-trim-7", "kept-trim-8", "kept-trim-9"]);
}

/// OffsetForLeaderEpoch for partition 0; returns the partition's answer, whatever it is.
fn offset_for_leader_epoch(
    client: &mut RawClient,
    topic: &str,
    current_leader_epoch: i32,
    leader_epoch: i32,
) -> EpochEndOffset {
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(topic_name(topic))
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
    create_single_partition_topic(&mut client, "epochs", &[]);
    produce_each_value_as_its_own_batch(&mut client, "epochs", &numbered("epochs", 5));
    let leader_epoch =
        list_offsets_for_partition_zero(&mut client, "epochs", LIST_OFFSETS_LATEST_TIMESTAMP)
            .leader_epoch;
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
    create_single_partition_topic(&mut client, "sessions", &[]);
    produce_each_value_as_its_own_batch(&mut client, "sessions", &numbered("sessions", 3));

    // Epoch 0 asks for a new session; the broker answers in full without one.
    let opening = fetch_request_for_partition_zero("sessions", 0, 0, 0).with_session_epoch(0);
    let response: FetchResponse = client.call(ApiKey::Fetch, FETCH_VERSION, &opening);
    assert_eq!(response.error_code, 0);
    assert_eq!(response.session_id, 0, "no session is created");
    let records = decode_fetched_records(
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

    let incremental = fetch_request_for_partition_zero("sessions", 3, 0, 0)
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
    create_single_partition_topic(&mut client, "long-poll", &[]);
    produce_each_value_as_its_own_batch(&mut client, "long-poll", &numbered("old", 2));

    let started = Instant::now();
    let correlation_id = client.send(
        ApiKey::Fetch,
        FETCH_VERSION,
        &fetch_request_for_partition_zero("long-poll", 2, 3000, 1),
    );
    let address = broker.address;
    let producer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let mut other = RawClient::connect(address);
        produce_each_value_as_its_own_batch(&mut other, "long-poll", &["fresh".to_string()]);
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
    let records = decode_fetched_records(&partition.records.clone().unwrap_or_default());
    assert_eq!(records.len(), 1);
    assert_eq!((records[0].offset, records[0].value.as_str()), (2, "fresh"));
}

#[test]
fn long_poll_fetch_without_new_data_waits_for_max_wait() {
    let broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    create_single_partition_topic(&mut client, "quiet", &[]);
    produce_each_value_as_its_own_batch(&mut client, "quiet", &numbered("quiet", 2));

    let started = Instant::now();
    let response: FetchResponse = client.call(
        ApiKey::Fetch,
        FETCH_VERSION,
        &fetch_request_for_partition_zero("quiet", 2, 3000, 1),
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
    assert!(decode_fetched_records(&partition.records.clone().unwrap_or_default()).is_empty());
}
