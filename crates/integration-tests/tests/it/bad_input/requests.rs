//! Bad input gets a clear error or a closed connection, never a crash, and harms nothing else.

use cauce_integration_tests::raw::error_codes::{
    CORRUPT_MESSAGE, INVALID_CONFIG, INVALID_RECORD, INVALID_TIMESTAMP, INVALID_TOPIC_EXCEPTION,
    MESSAGE_TOO_LARGE, TRANSACTIONAL_ID_AUTHORIZATION_FAILED, UNKNOWN_TOPIC_OR_PARTITION,
    UNSUPPORTED_VERSION,
};
use cauce_integration_tests::raw::{
    current_unix_time_ms, fetch_partition_zero_without_waiting, produce_batch_to_partition_zero,
    record_batch_of_values_stamped_now, send_create_single_partition_topic, topic_name,
};
use cauce_integration_tests::{assert_still_serving, BrokerProcess, RawClient};
use cauce_protocol::control::{build_marker, EndTxnMarker, TransactionResult};
use cauce_protocol::records::{build_batch, BatchOptions, NewRecord};
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, MetadataRequest, MetadataResponse};
use std::time::{Duration, Instant};

#[test]
fn negative_oversized_and_garbage_frames_close_only_that_connection() {
    let broker = BrokerProcess::start_with_config("socket.request.max.bytes = 4096\n");
    let mut negative = RawClient::connect(broker.address);
    negative.send_raw(&(-1i32).to_be_bytes()).unwrap();
    assert!(negative.is_closed_by_broker());

    let mut oversized = RawClient::connect(broker.address);
    oversized.send_raw(&5000i32.to_be_bytes()).unwrap();
    assert!(oversized.is_closed_by_broker());

    let mut garbage = RawClient::connect(broker.address);
    let mut frame = 12i32.to_be_bytes().to_vec();
    frame.extend_from_slice(&[0xff; 12]);
    garbage.send_raw(&frame).unwrap();
    assert!(garbage.is_closed_by_broker());

    // A request cut short: the size promises more than arrives, then the client goes away.
    let mut truncated = RawClient::connect(broker.address);
    let mut frame = 100i32.to_be_bytes().to_vec();
    frame.extend_from_slice(&[0, 18, 0, 3, 0, 0, 0, 1]);
    truncated.send_raw(&frame).unwrap();
    drop(truncated);

    assert_still_serving(broker.address);
}

#[test]
fn unknown_api_key_and_unsupported_version_close_the_connection() {
    let broker = BrokerProcess::start();
    let mut unknown = RawClient::connect(broker.address);
    // api key 999, version 0, correlation id 7, null client id.
    let body = [0x03, 0xe7, 0, 0, 0, 0, 0, 7, 0xff, 0xff];
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    unknown.send_raw(&frame).unwrap();
    assert!(unknown.is_closed_by_broker());

    let mut too_new = RawClient::connect(broker.address);
    too_new.send(ApiKey::Metadata, 13, &MetadataRequest::default());
    assert!(too_new.is_closed_by_broker());
    assert_still_serving(broker.address);
}

#[test]
fn api_versions_newer_than_supported_gets_a_v0_unsupported_version_answer() {
    let broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    // Version 9 does not exist; KIP-511 says answer in v0 format with the supported ranges.
    let body = [0, 18, 0, 9, 0, 0, 0, 42, 0, 4, b't', b'e', b's', b't', 0];
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    client.send_raw(&frame).unwrap();
    let (correlation_id, response): (i32, ApiVersionsResponse) =
        client.receive(ApiKey::ApiVersions, 0);
    assert_eq!(correlation_id, 42);
    assert_eq!(response.error_code, UNSUPPORTED_VERSION);
    let api_versions = response
        .api_keys
        .iter()
        .find(|api| api.api_key == ApiKey::ApiVersions as i16)
        .unwrap();
    assert_eq!((api_versions.min_version, api_versions.max_version), (0, 4));
    let produce = response
        .api_keys
        .iter()
        .find(|api| api.api_key == ApiKey::Produce as i16)
        .unwrap();
    assert_eq!(
        produce.min_version, 0,
        "librdkafka needs Produce to start at 0 (KAFKA-18659)"
    );
}

#[test]
fn corrupt_batch_is_refused_and_earlier_data_is_kept() {
    let broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    assert_eq!(
        send_create_single_partition_topic(&mut client, "corrupt", &[]).topics[0].error_code,
        0
    );
    let good = produce_batch_to_partition_zero(
        &mut client,
        "corrupt",
        &record_batch_of_values_stamped_now(&["first", "second"]),
    );
    assert_eq!(good.error_code, 0);

    let mut damaged = record_batch_of_values_stamped_now(&["third"]);
    let last = damaged.len() - 1;
    damaged[last] ^= 0xff;
    let refused = produce_batch_to_partition_zero(&mut client, "corrupt", &damaged);
    assert_eq!(refused.error_code, CORRUPT_MESSAGE);

    let mut cut = record_batch_of_values_stamped_now(&["fourth"]);
    cut.truncate(cut.len() - 3);
    let refused = produce_batch_to_partition_zero(&mut client, "corrupt", &cut);
    assert_eq!(refused.error_code, CORRUPT_MESSAGE);

    let after = produce_batch_to_partition_zero(
        &mut client,
        "corrupt",
        &record_batch_of_values_stamped_now(&["fifth"]),
    );
    assert_eq!(after.base_offset, 2, "refused batches took no offsets");
    let stored = fetch_partition_zero_without_waiting(&mut client, "corrupt", 0);
    assert_eq!(stored.error_code, 0);
    let stored_records = stored.records.unwrap_or_default();
    let text = String::from_utf8_lossy(&stored_records);
    assert!(text.contains("first") && text.contains("second") && text.contains("fifth"));
    assert!(!text.contains("third") && !text.contains("fourth"));
}

#[test]
fn oversized_batch_gets_message_too_large() {
    let broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    assert_eq!(
        send_create_single_partition_topic(&mut client, "small", &[("max.message.bytes", "1000")])
            .topics[0]
            .error_code,
        0
    );
    let big = "x".repeat(2000);
    let refused = produce_batch_to_partition_zero(
        &mut client,
        "small",
        &record_batch_of_values_stamped_now(&[&big]),
    );
    assert_eq!(refused.error_code, MESSAGE_TOO_LARGE);
    let fine = produce_batch_to_partition_zero(
        &mut client,
        "small",
        &record_batch_of_values_stamped_now(&["fits"]),
    );
    assert_eq!(fine.error_code, 0);
    assert_eq!(fine.base_offset, 0);
}

#[test]
fn invalid_topic_names_configs_and_unknown_topics_get_kafka_errors() {
    let broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    let bad_name = send_create_single_partition_topic(&mut client, "bad/name", &[]);
    assert_eq!(bad_name.topics[0].error_code, INVALID_TOPIC_EXCEPTION);
    assert!(bad_name.topics[0]
        .error_message
        .as_ref()
        .unwrap()
        .contains("bad/name"));

    let bad_config =
        send_create_single_partition_topic(&mut client, "good-name", &[("retention.ms", "-7")]);
    assert_eq!(bad_config.topics[0].error_code, INVALID_CONFIG);
    let message = bad_config.topics[0]
        .error_message
        .as_ref()
        .unwrap()
        .to_string();
    assert!(message.contains("retention.ms"), "{message}");

    let unknown_key =
        send_create_single_partition_topic(&mut client, "good-name", &[("retention.forever", "1")]);
    assert_eq!(unknown_key.topics[0].error_code, INVALID_CONFIG);

    let produced = produce_batch_to_partition_zero(
        &mut client,
        "never-created",
        &record_batch_of_values_stamped_now(&["lost?"]),
    );
    assert_eq!(produced.error_code, UNKNOWN_TOPIC_OR_PARTITION);

    let metadata: MetadataResponse = client.call(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default()
            .with_allow_auto_topic_creation(true)
            .with_topics(Some(vec![
                kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(topic_name("bad/name"))),
            ])),
    );
    assert_eq!(metadata.topics[0].error_code, INVALID_TOPIC_EXCEPTION);
}

#[test]
fn produce_v0_to_v2_get_unsupported_version_for_each_partition() {
    let broker = BrokerProcess::start();
    for version in 0i16..=2 {
        let mut client = RawClient::connect(broker.address);
        // Header v1: api key 0, version, correlation id 5, client id "t".
        let mut body = vec![0, 0];
        body.extend_from_slice(&version.to_be_bytes());
        body.extend_from_slice(&5i32.to_be_bytes());
        body.extend_from_slice(&[0, 1, b't']);
        // acks 1, timeout 1000, one topic "old" with partition 0 and 3 bytes of records.
        body.extend_from_slice(&1i16.to_be_bytes());
        body.extend_from_slice(&1000i32.to_be_bytes());
        body.extend_from_slice(&1i32.to_be_bytes());
        body.extend_from_slice(&[0, 3, b'o', b'l', b'd']);
        body.extend_from_slice(&1i32.to_be_bytes());
        body.extend_from_slice(&0i32.to_be_bytes());
        body.extend_from_slice(&3i32.to_be_bytes());
        body.extend_from_slice(&[1, 2, 3]);
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        client.send_raw(&frame).unwrap();
        let response = client
            .read_frame()
            .expect("a response, not a closed connection");
        assert_eq!(&response[0..4], &5i32.to_be_bytes(), "correlation id");
        // topics: 1, name "old", partitions: 1, partition 0, then the error code.
        let error = i16::from_be_bytes([response[21], response[22]]);
        assert_eq!(error, UNSUPPORTED_VERSION, "Produce v{version}");
    }
    assert_still_serving(broker.address);
}

#[test]
fn timestamps_beyond_the_allowed_window_get_invalid_timestamp() {
    let broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    assert_eq!(
        send_create_single_partition_topic(
            &mut client,
            "clock",
            &[("message.timestamp.before.max.ms", "86400000")]
        )
        .topics[0]
            .error_code,
        0
    );
    let two_hours = 2 * 60 * 60 * 1000;
    let future = build_batch(
        0,
        &[NewRecord::value_only(
            current_unix_time_ms() + two_hours,
            b"late".to_vec(),
        )],
        &BatchOptions::default(),
    )
    .unwrap();
    let refused = produce_batch_to_partition_zero(&mut client, "clock", &future);
    assert_eq!(refused.error_code, INVALID_TIMESTAMP);
    let past = build_batch(
        0,
        &[NewRecord::value_only(
            current_unix_time_ms() - 2 * 86_400_000,
            b"old".to_vec(),
        )],
        &BatchOptions::default(),
    )
    .unwrap();
    let refused = produce_batch_to_partition_zero(&mut client, "clock", &past);
    assert_eq!(refused.error_code, INVALID_TIMESTAMP);
    let accepted = produce_batch_to_partition_zero(
        &mut client,
        "clock",
        &record_batch_of_values_stamped_now(&["now"]),
    );
    assert_eq!(accepted.error_code, 0);
    assert_eq!(accepted.base_offset, 0);
}

#[test]
fn compacted_topics_refuse_records_without_a_key() {
    let broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    cauce_integration_tests::raw::create_single_partition_topic(
        &mut client,
        "changelog",
        &[("cleanup.policy", "compact")],
    );
    let keyless = produce_batch_to_partition_zero(
        &mut client,
        "changelog",
        &record_batch_of_values_stamped_now(&["no key"]),
    );
    assert_eq!(keyless.error_code, INVALID_RECORD);
    assert!(keyless
        .error_message
        .as_ref()
        .is_some_and(|message| message.contains("without a key")));
    let keyed = NewRecord {
        timestamp_ms: current_unix_time_ms(),
        key: Some(b"k".to_vec()),
        value: Some(b"v".to_vec()),
        headers: Vec::new(),
    };
    let accepted = cauce_integration_tests::raw::produce_records_as_one_batch(
        &mut client,
        "changelog",
        &[keyed],
    );
    assert_eq!(accepted.error_code, 0);
    assert_eq!(accepted.base_offset, 0, "the refused batch took no offset");
}

#[test]
fn producers_cannot_write_markers_nor_transactional_batches_without_a_transactional_id() {
    let broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    cauce_integration_tests::raw::create_single_partition_topic(&mut client, "markers", &[]);
    // A commit marker as a coordinator would have it written, and the same control record
    // without the transactional bit: both refused, the first already for lacking the
    // request's transactional id (Kafka checks that first too), the second by the log.
    let marker = build_marker(
        7,
        0,
        EndTxnMarker {
            result: TransactionResult::Commit,
            coordinator_epoch: 0,
        },
        current_unix_time_ms(),
    );
    let refused = produce_batch_to_partition_zero(&mut client, "markers", &marker);
    assert_eq!(refused.error_code, TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    let control = build_batch(
        0,
        &[NewRecord {
            timestamp_ms: current_unix_time_ms(),
            key: Some(vec![0, 0, 0, 1]),
            value: Some(vec![0, 0, 0, 0, 0, 0]),
            headers: Vec::new(),
        }],
        &BatchOptions {
            producer_id: 7,
            producer_epoch: 0,
            is_control: true,
            ..BatchOptions::default()
        },
    )
    .unwrap();
    let refused = produce_batch_to_partition_zero(&mut client, "markers", &control);
    assert_eq!(refused.error_code, INVALID_RECORD);
    assert!(refused
        .error_message
        .as_ref()
        .is_some_and(|message| message.contains("control")));

    // A transactional data batch needs the request's transactional id (here there is none).
    let transactional = build_batch(
        0,
        &[NewRecord::value_only(
            current_unix_time_ms(),
            b"in a txn".to_vec(),
        )],
        &BatchOptions {
            producer_id: 7,
            producer_epoch: 0,
            base_sequence: 0,
            is_transactional: true,
            ..BatchOptions::default()
        },
    )
    .unwrap();
    let refused = produce_batch_to_partition_zero(&mut client, "markers", &transactional);
    assert_eq!(refused.error_code, TRANSACTIONAL_ID_AUTHORIZATION_FAILED);

    let accepted = produce_batch_to_partition_zero(
        &mut client,
        "markers",
        &record_batch_of_values_stamped_now(&["plain"]),
    );
    assert_eq!(accepted.error_code, 0);
    assert_eq!(
        accepted.base_offset, 0,
        "the refused batches took no offset"
    );
}

#[test]
fn connections_above_the_per_address_limit_and_idle_ones_are_closed() {
    // The override (2 for 127.0.0.1) wins over the default of 1.
    let broker = BrokerProcess::start_with_config(concat!(
        // Quoted: in TOML, `max.connections.per.ip = 1` would make the longer key a table.
        "\"max.connections.per.ip\" = 1
",
        "\"max.connections.per.ip.overrides\" = \"127.0.0.1:2\"
",
        "connections.max.idle.ms = 500
",
    ));
    let mut first = RawClient::connect(broker.address);
    let mut second = RawClient::connect(broker.address);
    let mut third = RawClient::connect(broker.address);
    let refused_after = Instant::now();
    assert!(third.is_closed_by_broker());
    assert!(
        refused_after.elapsed() < Duration::from_secs(5),
        "the third connection was kept"
    );
    let served: ApiVersionsResponse = second.call(
        ApiKey::ApiVersions,
        0,
        &kafka_protocol::messages::ApiVersionsRequest::default(),
    );
    assert_eq!(served.error_code, 0);

    // Silent for connections.max.idle.ms, both are closed (a read that times out instead takes
    // the client's 10 s).
    let idle_since = Instant::now();
    assert!(first.is_closed_by_broker());
    assert!(second.is_closed_by_broker());
    assert!(
        idle_since.elapsed() < Duration::from_secs(5),
        "idle connections were kept"
    );
    // Their places are free again.
    assert_still_serving(broker.address);
}
