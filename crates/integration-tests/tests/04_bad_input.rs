//! Bad input gets a clear error or a closed connection, never a crash, and harms nothing else.

use bytes::Bytes;
use cauce_integration_tests::{BrokerProcess, RawClient};
use cauce_protocol::records::{build_batch, BatchOptions, NewRecord};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    FetchRequest, FetchResponse, MetadataRequest, MetadataResponse, ProduceRequest,
    ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

const CORRUPT_MESSAGE: i16 = 2;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const MESSAGE_TOO_LARGE: i16 = 10;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const UNSUPPORTED_VERSION: i16 = 35;
const INVALID_CONFIG: i16 = 40;

fn name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_string()))
}

/// The broker still answers on a fresh connection.
fn assert_still_serving(broker: &BrokerProcess) {
    let mut client = RawClient::connect(broker.address);
    let response: ApiVersionsResponse = client.call(
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("cauce-test"))
            .with_client_software_version(StrBytes::from_static_str("1.0")),
    );
    assert_eq!(response.error_code, 0);
    assert!(!response.api_keys.is_empty());
}

fn create_topic(
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
            .with_name(name(topic))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(configs)]);
    client.call(ApiKey::CreateTopics, 7, &request)
}

fn produce(client: &mut RawClient, topic: &str, records: Vec<u8>) -> ProduceResponse {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(records)))])]);
    client.call(ApiKey::Produce, 9, &request)
}

/// Current time: records with old timestamps would roll a segment per batch (segment.ms).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn batch(values: &[&str]) -> Vec<u8> {
    let records: Vec<NewRecord> = values
        .iter()
        .map(|value| NewRecord::value_only(now_ms(), value.as_bytes().to_vec()))
        .collect();
    build_batch(0, &records, &BatchOptions::default()).unwrap()
}

fn fetch_all(client: &mut RawClient, topic: &str) -> Bytes {
    let request = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let response: FetchResponse = client.call(ApiKey::Fetch, 11, &request);
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    partition.records.clone().unwrap_or_default()
}

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

    assert_still_serving(&broker);
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
    assert_still_serving(&broker);
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
        create_topic(&mut client, "corrupt", &[]).topics[0].error_code,
        0
    );
    let good = produce(&mut client, "corrupt", batch(&["first", "second"]));
    assert_eq!(good.responses[0].partition_responses[0].error_code, 0);

    let mut damaged = batch(&["third"]);
    let last = damaged.len() - 1;
    damaged[last] ^= 0xff;
    let refused = produce(&mut client, "corrupt", damaged);
    assert_eq!(
        refused.responses[0].partition_responses[0].error_code,
        CORRUPT_MESSAGE
    );

    let mut cut = batch(&["fourth"]);
    cut.truncate(cut.len() - 3);
    let refused = produce(&mut client, "corrupt", cut);
    assert_eq!(
        refused.responses[0].partition_responses[0].error_code,
        CORRUPT_MESSAGE
    );

    let after = produce(&mut client, "corrupt", batch(&["fifth"]));
    assert_eq!(
        after.responses[0].partition_responses[0].base_offset, 2,
        "refused batches took no offsets"
    );
    let stored = fetch_all(&mut client, "corrupt");
    let text = String::from_utf8_lossy(&stored);
    assert!(text.contains("first") && text.contains("second") && text.contains("fifth"));
    assert!(!text.contains("third") && !text.contains("fourth"));
}

#[test]
fn oversized_batch_gets_message_too_large() {
    let broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    assert_eq!(
        create_topic(&mut client, "small", &[("max.message.bytes", "1000")]).topics[0].error_code,
        0
    );
    let big = "x".repeat(2000);
    let refused = produce(&mut client, "small", batch(&[&big]));
    assert_eq!(
        refused.responses[0].partition_responses[0].error_code,
        MESSAGE_TOO_LARGE
    );
    let fine = produce(&mut client, "small", batch(&["fits"]));
    assert_eq!(fine.responses[0].partition_responses[0].error_code, 0);
    assert_eq!(fine.responses[0].partition_responses[0].base_offset, 0);
}

#[test]
fn invalid_topic_names_configs_and_unknown_topics_get_kafka_errors() {
    let broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    let bad_name = create_topic(&mut client, "bad/name", &[]);
    assert_eq!(bad_name.topics[0].error_code, INVALID_TOPIC_EXCEPTION);
    assert!(bad_name.topics[0]
        .error_message
        .as_ref()
        .unwrap()
        .contains("bad/name"));

    let bad_config = create_topic(&mut client, "good-name", &[("retention.ms", "-7")]);
    assert_eq!(bad_config.topics[0].error_code, INVALID_CONFIG);
    let message = bad_config.topics[0]
        .error_message
        .as_ref()
        .unwrap()
        .to_string();
    assert!(message.contains("retention.ms"), "{message}");

    let unknown_key = create_topic(&mut client, "good-name", &[("retention.forever", "1")]);
    assert_eq!(unknown_key.topics[0].error_code, INVALID_CONFIG);

    let produced = produce(&mut client, "never-created", batch(&["lost?"]));
    assert_eq!(
        produced.responses[0].partition_responses[0].error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );

    let metadata: MetadataResponse = client.call(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default()
            .with_allow_auto_topic_creation(true)
            .with_topics(Some(vec![
                kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(name("bad/name"))),
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
    assert_still_serving(&broker);
}

#[test]
fn timestamps_beyond_the_allowed_window_get_invalid_timestamp() {
    const INVALID_TIMESTAMP: i16 = 32;
    let broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    assert_eq!(
        create_topic(
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
            now_ms() + two_hours,
            b"late".to_vec(),
        )],
        &BatchOptions::default(),
    )
    .unwrap();
    let refused = produce(&mut client, "clock", future);
    assert_eq!(
        refused.responses[0].partition_responses[0].error_code,
        INVALID_TIMESTAMP
    );
    let past = build_batch(
        0,
        &[NewRecord::value_only(
            now_ms() - 2 * 86_400_000,
            b"old".to_vec(),
        )],
        &BatchOptions::default(),
    )
    .unwrap();
    let refused = produce(&mut client, "clock", past);
    assert_eq!(
        refused.responses[0].partition_responses[0].error_code,
        INVALID_TIMESTAMP
    );
    let accepted = produce(&mut client, "clock", batch(&["now"]));
    assert_eq!(accepted.responses[0].partition_responses[0].error_code, 0);
    assert_eq!(accepted.responses[0].partition_responses[0].base_offset, 0);
}
