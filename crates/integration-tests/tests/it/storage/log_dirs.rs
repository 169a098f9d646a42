//! DescribeLogDirs (KIP-113, KIP-827): the broker's one log dir, the partitions it hosts there
//! and their sizes, as `kafka-log-dirs.sh` and the Java AdminClient ask for them.

use std::collections::BTreeMap;
use std::path::Path;

use cauce_integration_tests::raw::{
    create_single_partition_topic, produce_batch_to_partition_zero,
    record_batch_of_values_stamped_now, topic_name,
};
use cauce_integration_tests::{BrokerProcess, RawClient};
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::describe_log_dirs_response::DescribeLogDirsResult;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, DescribeLogDirsRequest,
    DescribeLogDirsResponse,
};
use kafka_protocol::protocol::StrBytes;

/// The DescribeLogDirs versions the broker is expected to advertise: those Kafka 4 supports.
const DESCRIBE_LOG_DIRS_VERSIONS: std::ops::RangeInclusive<i16> = 1..=4;
/// The first version whose results carry TotalBytes and UsableBytes (KIP-827).
const VOLUME_BYTES_VERSION: i16 = 4;
/// The topic the test writes to.
const FILLED_TOPIC: &str = "filled";
/// The topic the test leaves empty.
const EMPTY_TOPIC: &str = "empty";

/// Sends DescribeLogDirs at `version` for `topics` (null means every hosted partition) and
/// returns its one result, insisting that neither the request nor the dir failed.
fn describe_log_dirs(
    client: &mut RawClient,
    version: i16,
    topics: Option<Vec<DescribableLogDirTopic>>,
) -> DescribeLogDirsResult {
    let request = DescribeLogDirsRequest::default().with_topics(topics);
    let response: DescribeLogDirsResponse = client.call(ApiKey::DescribeLogDirs, version, &request);
    assert_eq!(response.error_code, 0, "v{version} top-level error");
    assert_eq!(response.results.len(), 1, "v{version}: one log dir");
    let result = response.results.into_iter().next().unwrap();
    assert_eq!(result.error_code, 0, "v{version} log dir error");
    result
}

/// A request entry naming `partitions` of `topic`.
fn topic_partitions(topic: &str, partitions: &[i32]) -> DescribableLogDirTopic {
    DescribableLogDirTopic::default()
        .with_topic(topic_name(topic))
        .with_partitions(partitions.to_vec())
}

/// Topic name -> (partition index -> size) as the result reports them, checking on the way
/// that every partition is a current log with no lag.
fn partition_sizes(result: &DescribeLogDirsResult) -> BTreeMap<String, BTreeMap<i32, i64>> {
    result
        .topics
        .iter()
        .map(|topic| {
            let sizes = topic
                .partitions
                .iter()
                .map(|partition| {
                    assert_eq!(partition.offset_lag, 0, "{}", topic.name.as_str());
                    assert!(!partition.is_future_key, "{}", topic.name.as_str());
                    (partition.partition_index, partition.partition_size)
                })
                .collect();
            (topic.name.to_string(), sizes)
        })
        .collect()
}

/// Sum of the lengths of the segment files (`*.log`) in a partition directory. The active
/// segment's file is grown ahead of the log, so this is at least the log's size.
fn segment_bytes_on_disk(partition_dir: &Path) -> i64 {
    std::fs::read_dir(partition_dir)
        .unwrap_or_else(|error| panic!("read {}: {error}", partition_dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "log"))
        .map(|path| std::fs::metadata(&path).unwrap().len() as i64)
        .sum()
}

/// The versions of `api_key` the broker advertises in ApiVersions.
fn advertised_versions(client: &mut RawClient, api_key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let request = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("cauce-test"))
        .with_client_software_version(StrBytes::from_static_str("1.0"));
    let response: ApiVersionsResponse = client.call(ApiKey::ApiVersions, 3, &request);
    assert_eq!(response.error_code, 0);
    let api = response
        .api_keys
        .iter()
        .find(|api| api.api_key == api_key as i16)
        .unwrap_or_else(|| panic!("{api_key:?} is not advertised"));
    api.min_version..=api.max_version
}

#[test]
fn describe_log_dirs_reports_the_data_dir_and_the_size_of_each_hosted_partition() {
    let broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    create_single_partition_topic(&mut client, FILLED_TOPIC, &[]);
    create_single_partition_topic(&mut client, EMPTY_TOPIC, &[]);
    let batches = [
        record_batch_of_values_stamped_now(&["alpha", "beta", "gamma"]),
        record_batch_of_values_stamped_now(&["delta"]),
    ];
    for batch in &batches {
        assert_eq!(
            produce_batch_to_partition_zero(&mut client, FILLED_TOPIC, batch).error_code,
            0
        );
    }
    // Batches are stored as they came, only their base offset rewritten.
    let produced_bytes: i64 = batches.iter().map(|batch| batch.len() as i64).sum();
    let data_dir = std::fs::canonicalize(broker.data_dir()).unwrap();
    let filled_on_disk = segment_bytes_on_disk(&data_dir.join(format!("{FILLED_TOPIC}-0")));
    assert!(filled_on_disk >= produced_bytes, "{filled_on_disk}");

    let everything = describe_log_dirs(&mut client, VOLUME_BYTES_VERSION, None);
    assert_eq!(Path::new(everything.log_dir.as_str()), data_dir);
    let expected = BTreeMap::from([
        (EMPTY_TOPIC.to_string(), BTreeMap::from([(0, 0)])),
        (
            FILLED_TOPIC.to_string(),
            BTreeMap::from([(0, produced_bytes)]),
        ),
    ]);
    assert_eq!(partition_sizes(&everything), expected);
    // The file system the data dir is on: known, with some room left.
    assert!(
        everything.usable_bytes > 0 && everything.usable_bytes <= everything.total_bytes,
        "total {} usable {}",
        everything.total_bytes,
        everything.usable_bytes
    );
}

#[test]
fn describe_log_dirs_for_named_topics_reports_only_hosted_partitions_they_name() {
    let broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    create_single_partition_topic(&mut client, FILLED_TOPIC, &[]);
    create_single_partition_topic(&mut client, EMPTY_TOPIC, &[]);
    let batch = record_batch_of_values_stamped_now(&["only"]);
    assert_eq!(
        produce_batch_to_partition_zero(&mut client, FILLED_TOPIC, &batch).error_code,
        0
    );
    let data_dir = std::fs::canonicalize(broker.data_dir()).unwrap();

    let named = describe_log_dirs(
        &mut client,
        VOLUME_BYTES_VERSION,
        Some(vec![topic_partitions(FILLED_TOPIC, &[0])]),
    );
    assert_eq!(Path::new(named.log_dir.as_str()), data_dir);
    assert_eq!(
        partition_sizes(&named),
        BTreeMap::from([(
            FILLED_TOPIC.to_string(),
            BTreeMap::from([(0, batch.len() as i64)])
        )])
    );

    let unknown = describe_log_dirs(
        &mut client,
        VOLUME_BYTES_VERSION,
        Some(vec![topic_partitions("no-such-topic", &[0])]),
    );
    assert_eq!(Path::new(unknown.log_dir.as_str()), data_dir);
    assert!(unknown.topics.is_empty(), "{:?}", unknown.topics);

    let unhosted_partition = describe_log_dirs(
        &mut client,
        VOLUME_BYTES_VERSION,
        Some(vec![topic_partitions(FILLED_TOPIC, &[1])]),
    );
    assert!(
        unhosted_partition.topics.is_empty(),
        "{:?}",
        unhosted_partition.topics
    );

    let no_topics = describe_log_dirs(&mut client, VOLUME_BYTES_VERSION, Some(Vec::new()));
    assert!(no_topics.topics.is_empty(), "{:?}", no_topics.topics);
}

#[test]
fn describe_log_dirs_answers_every_advertised_version() {
    let broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    assert_eq!(
        advertised_versions(&mut client, ApiKey::DescribeLogDirs),
        DESCRIBE_LOG_DIRS_VERSIONS
    );
    create_single_partition_topic(&mut client, FILLED_TOPIC, &[]);
    let batch = record_batch_of_values_stamped_now(&["versioned"]);
    assert_eq!(
        produce_batch_to_partition_zero(&mut client, FILLED_TOPIC, &batch).error_code,
        0
    );
    let data_dir = std::fs::canonicalize(broker.data_dir()).unwrap();
    let expected = BTreeMap::from([(
        FILLED_TOPIC.to_string(),
        BTreeMap::from([(0, batch.len() as i64)]),
    )]);

    for version in DESCRIBE_LOG_DIRS_VERSIONS {
        let all = describe_log_dirs(&mut client, version, None);
        assert_eq!(Path::new(all.log_dir.as_str()), data_dir, "v{version}");
        assert_eq!(partition_sizes(&all), expected, "v{version}");
        let named = describe_log_dirs(
            &mut client,
            version,
            Some(vec![topic_partitions(FILLED_TOPIC, &[0])]),
        );
        assert_eq!(partition_sizes(&named), expected, "v{version}");
    }
}
