//! The `cauce topic` and `cauce cluster` admin commands, run as real processes against a real
//! broker: their tables, their JSON, and the one-line errors scripts rely on.

use cauce_integration_tests::cli::{cauce_fails, cauce_succeeds};
use std::time::{Duration, Instant};

use cauce_integration_tests::BrokerProcess;
use serde_json::Value;

use super::cauce;

/// Runs a command that must succeed and returns its stdout.
fn succeed(brokers: &str, args: &[&str]) -> String {
    cauce_succeeds(brokers, args, "")
}

/// Runs a command that must print JSON and parses it.
fn succeed_json(brokers: &str, args: &[&str]) -> Value {
    let mut with_json = args.to_vec();
    with_json.push("--json");
    let stdout = succeed(brokers, &with_json);
    serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("{error}: {stdout}"))
}

/// Runs a command that must fail; returns its one stderr line.
fn fail(brokers: &str, args: &[&str]) -> String {
    cauce_fails(brokers, args, "").1
}

/// The line of a table whose first column is `key`.
fn table_row<'t>(table: &'t str, key: &str) -> Option<Vec<&'t str>> {
    table
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&key))
}

fn config_value<'v>(description: &'v Value, key: &str) -> (&'v str, &'v str) {
    let entry = description["configs"]
        .as_array()
        .expect("configs")
        .iter()
        .find(|entry| entry["name"] == key)
        .unwrap_or_else(|| panic!("no config {key} in {description}"));
    (
        entry["value"].as_str().expect("value"),
        entry["source"].as_str().expect("source"),
    )
}

#[test]
fn topic_round_trip_in_table_mode() {
    let broker = BrokerProcess::start();
    let brokers = broker.bootstrap();
    let created = succeed(
        &brokers,
        &[
            "topic",
            "create",
            "orders",
            "--partitions",
            "2",
            "--config",
            "retention.ms=3600000",
        ],
    );
    assert!(created.contains("orders"), "{created}");

    let listed = succeed(&brokers, &["topic", "list"]);
    assert!(listed.starts_with("TOPIC"), "{listed}");
    assert_eq!(table_row(&listed, "orders"), Some(vec!["orders", "2", "1"]));

    let described = succeed(&brokers, &["topic", "describe", "orders"]);
    assert_eq!(table_row(&described, "0"), Some(vec!["0", "1", "1", "1"]));
    assert_eq!(table_row(&described, "1"), Some(vec!["1", "1", "1", "1"]));
    assert_eq!(
        table_row(&described, "retention.ms"),
        Some(vec!["retention.ms", "3600000", "topic"])
    );

    succeed(
        &brokers,
        &[
            "topic",
            "alter-config",
            "orders",
            "--set",
            "segment.bytes=1048576",
            "--delete",
            "retention.ms",
        ],
    );
    let described = succeed(&brokers, &["topic", "describe", "orders"]);
    assert_eq!(
        table_row(&described, "segment.bytes"),
        Some(vec!["segment.bytes", "1048576", "topic"])
    );
    let retention = table_row(&described, "retention.ms").expect("retention.ms row");
    assert_ne!(
        retention[2], "topic",
        "the override was removed: {described}"
    );

    succeed(
        &brokers,
        &["topic", "add-partitions", "orders", "--total", "4"],
    );
    let described = succeed(&brokers, &["topic", "describe", "orders"]);
    assert!(table_row(&described, "3").is_some(), "{described}");

    succeed(&brokers, &["topic", "delete", "orders"]);
    let listed = succeed(&brokers, &["topic", "list"]);
    assert_eq!(table_row(&listed, "orders"), None, "{listed}");
}

#[test]
fn topic_round_trip_in_json_mode() {
    let broker = BrokerProcess::start();
    let brokers = broker.bootstrap();
    let created = succeed_json(
        &brokers,
        &[
            "topic",
            "create",
            "events",
            "--partitions",
            "3",
            "--config",
            "cleanup.policy=compact",
        ],
    );
    assert_eq!(created["topic"], "events");
    assert_eq!(created["partitions"], 3);

    let listed = succeed_json(&brokers, &["topic", "list"]);
    let topics = listed["topics"].as_array().expect("topics");
    let events = topics
        .iter()
        .find(|topic| topic["name"] == "events")
        .expect("events listed");
    assert_eq!(events["partitions"], 3);
    assert_eq!(events["replication_factor"], 1);

    let described = succeed_json(&brokers, &["topic", "describe", "events"]);
    assert_eq!(described["name"], "events");
    let partitions = described["partitions"].as_array().expect("partitions");
    assert_eq!(partitions.len(), 3);
    for (index, partition) in partitions.iter().enumerate() {
        assert_eq!(partition["partition"], index);
        assert_eq!(partition["leader"], 1);
        assert_eq!(partition["replicas"], serde_json::json!([1]));
        assert_eq!(partition["isr"], serde_json::json!([1]));
    }
    assert_eq!(
        config_value(&described, "cleanup.policy"),
        ("compact", "topic")
    );

    let altered = succeed_json(
        &brokers,
        &[
            "topic",
            "alter-config",
            "events",
            "--set",
            "retention.ms=120000",
        ],
    );
    assert_eq!(altered["set"]["retention.ms"], "120000");
    let described = succeed_json(&brokers, &["topic", "describe", "events"]);
    assert_eq!(
        config_value(&described, "retention.ms"),
        ("120000", "topic")
    );
    // An incremental change keeps the other overrides.
    assert_eq!(
        config_value(&described, "cleanup.policy"),
        ("compact", "topic")
    );

    let grown = succeed_json(
        &brokers,
        &["topic", "add-partitions", "events", "--total", "5"],
    );
    assert_eq!(grown["partitions"], 5);
    let described = succeed_json(&brokers, &["topic", "describe", "events"]);
    assert_eq!(
        described["partitions"]
            .as_array()
            .expect("partitions")
            .len(),
        5
    );

    let deleted = succeed_json(&brokers, &["topic", "delete", "events"]);
    assert_eq!(deleted["action"], "deleted");
    let listed = succeed_json(&brokers, &["topic", "list"]);
    assert!(
        !listed["topics"]
            .as_array()
            .expect("topics")
            .iter()
            .any(|topic| topic["name"] == "events"),
        "{listed}"
    );
}

#[test]
fn cluster_info_reports_the_broker_and_its_topics() {
    let broker = BrokerProcess::start();
    let brokers = broker.bootstrap();
    succeed(&brokers, &["topic", "create", "one"]);
    succeed(&brokers, &["topic", "create", "two"]);

    let info = succeed_json(&brokers, &["cluster", "info"]);
    assert!(
        info["cluster_id"].as_str().is_some_and(|id| !id.is_empty()),
        "{info}"
    );
    assert_eq!(info["controller_id"], 1);
    assert_eq!(info["topic_count"], 2);
    let listed = info["brokers"].as_array().expect("brokers");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], 1);
    assert_eq!(listed[0]["host"], "127.0.0.1");
    assert_eq!(listed[0]["port"], broker.address.port());

    let table = succeed(&brokers, &["cluster", "info"]);
    assert!(table.contains("Topics: 2"), "{table}");
    assert_eq!(
        table_row(&table, "1"),
        Some(vec![
            "1",
            "127.0.0.1",
            &broker.address.port().to_string(),
            "yes"
        ])
    );
}

#[test]
fn unknown_topic_fails_with_a_one_line_reason_naming_it() {
    let broker = BrokerProcess::start();
    let brokers = broker.bootstrap();
    for args in [
        &["topic", "describe", "missing"][..],
        &["topic", "delete", "missing"],
        &[
            "topic",
            "alter-config",
            "missing",
            "--set",
            "retention.ms=1000",
        ],
        &["topic", "add-partitions", "missing", "--total", "3"],
    ] {
        let reason = fail(&brokers, args);
        assert_eq!(reason, "error: topic 'missing' does not exist", "{args:?}");
    }
}

#[test]
fn creating_an_existing_topic_fails() {
    let broker = BrokerProcess::start();
    let brokers = broker.bootstrap();
    succeed(&brokers, &["topic", "create", "twice"]);
    let reason = fail(&brokers, &["topic", "create", "twice"]);
    assert!(reason.contains("'twice' already exists"), "{reason}");
}

#[test]
fn unreachable_broker_fails_quickly_with_a_one_line_reason() {
    let closed = cauce_integration_tests::CLOSED_ADDRESS.to_string();
    for args in [&["topic", "list"][..], &["cluster", "info"]] {
        let started = Instant::now();
        let reason = fail(&closed, args);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
        assert!(reason.contains(&closed), "{reason}");
    }
}

#[test]
fn bad_flag_is_a_usage_error() {
    let reason = fail("127.0.0.1:1", &["topic", "list", "--no-such-flag"]);
    assert!(reason.contains("--no-such-flag"), "{reason}");
    let output = cauce("127.0.0.1:1", &["topic", "list", "--no-such-flag"]);
    assert_eq!(output.status.code(), Some(2));
    let reason = fail(
        "127.0.0.1:1",
        &["topic", "create", "x", "--partitions", "zero"],
    );
    assert!(reason.contains("--partitions"), "{reason}");
    let reason = fail(
        "127.0.0.1:1",
        &["topic", "create", "x", "--config", "novalue"],
    );
    assert!(reason.contains("key=value"), "{reason}");
}

#[test]
fn invalid_config_value_surfaces_the_brokers_reason() {
    let broker = BrokerProcess::start();
    let brokers = broker.bootstrap();
    succeed(&brokers, &["topic", "create", "configured"]);
    let reason = fail(
        &brokers,
        &[
            "topic",
            "alter-config",
            "configured",
            "--set",
            "retention.ms=soon",
        ],
    );
    assert!(reason.contains("invalid config"), "{reason}");
    assert!(reason.contains("'soon'"), "the broker's message: {reason}");
    assert!(reason.contains("retention.ms"), "{reason}");

    let reason = fail(
        &brokers,
        &[
            "topic",
            "create",
            "refused",
            "--config",
            "retention.ms=soon",
        ],
    );
    assert!(reason.contains("invalid config"), "{reason}");
    assert!(reason.contains("'soon'"), "the broker's message: {reason}");
    assert!(reason.contains("retention.ms"), "{reason}");
    let listed = succeed(&brokers, &["topic", "list"]);
    assert_eq!(table_row(&listed, "refused"), None, "{listed}");
}
