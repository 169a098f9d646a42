//! `cauce group ...` run as a real process against a real broker: listing, lag, resetting and
//! deleting groups, and the one-line errors for unknown, active and unreachable groups.

use cauce_integration_tests::cli::{cauce_fails, cauce_succeeds};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cauce_integration_tests::BrokerProcess;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::Value;

use super::cauce_with_input;

/// Runs a command that must succeed and returns its stdout.
fn succeed(brokers: &str, args: &[&str]) -> String {
    succeed_with_input(brokers, args, "")
}

fn succeed_with_input(brokers: &str, args: &[&str], stdin: &str) -> String {
    cauce_succeeds(brokers, args, stdin)
}

fn succeed_json(brokers: &str, args: &[&str]) -> Value {
    let mut with_json = vec!["--json"];
    with_json.extend_from_slice(args);
    serde_json::from_str(&succeed(brokers, &with_json)).expect("valid JSON")
}

/// Runs a command that must fail with status 1; returns its one stderr line.
fn fail(brokers: &str, args: &[&str]) -> String {
    let (code, line) = cauce_fails(brokers, args, "");
    assert_eq!(code, Some(1), "cauce {args:?}");
    line
}

/// A topic with 6 records in partition 0 and 4 in partition 1.
fn six_and_four(brokers: &str, topic: &str) {
    succeed(brokers, &["topic", "create", topic, "--partitions", "2"]);
    succeed_with_input(
        brokers,
        &["produce", topic, "--partition", "0"],
        "a\nb\nc\nd\ne\nf\n",
    );
    succeed_with_input(
        brokers,
        &["produce", topic, "--partition", "1"],
        "g\nh\ni\nj\n",
    );
}

/// `(partition, committed, log end, lag)` for every committed partition of `group`.
fn lags(brokers: &str, group: &str) -> Vec<(i64, i64, i64, i64)> {
    let described = succeed_json(brokers, &["group", "describe", group]);
    described["offsets"]
        .as_array()
        .expect("offsets")
        .iter()
        .map(|row| {
            (
                row["partition"].as_i64().unwrap(),
                row["committed"].as_i64().unwrap(),
                row["log_end"].as_i64().unwrap(),
                row["lag"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn group_names(brokers: &str) -> Vec<String> {
    succeed_json(brokers, &["group", "list"])
        .as_array()
        .expect("a list")
        .iter()
        .map(|group| group["group"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn describe_shows_lag_and_reset_offsets_moves_it() {
    let broker = BrokerProcess::start();
    let brokers = broker.bootstrap();
    six_and_four(&brokers, "events");
    let consumed = succeed(
        &brokers,
        &["consume", "events", "--group", "g", "--count", "7"],
    );
    assert_eq!(consumed.lines().count(), 7);

    let listed = succeed(&brokers, &["group", "list"]);
    let mut lines = listed.lines();
    assert!(lines.next().unwrap().starts_with("GROUP"), "{listed}");
    assert!(
        lines.any(|line| line.split_whitespace().next() == Some("g")),
        "{listed}"
    );
    let listed = succeed_json(&brokers, &["group", "list"]);
    let g = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|group| group["group"] == "g")
        .expect("g is listed");
    assert_eq!(g["state"], "Empty");
    // The broker's DescribeGroups answer for an empty group carries no protocol type.
    assert!(g["protocol_type"].is_string(), "{g}");

    // 7 records read: all of partition 0's 6 or fewer, the rest from partition 1.
    let after_consume = lags(&brokers, "g");
    assert_eq!(after_consume.len(), 2, "{after_consume:?}");
    let (p0, p1) = (after_consume[0], after_consume[1]);
    assert_eq!((p0.0, p0.2, p1.0, p1.2), (0, 6, 1, 4));
    assert_eq!(p0.1 + p1.1, 7);
    assert_eq!(p0.3, 6 - p0.1);
    assert_eq!(p1.3, 4 - p1.1);
    let described = succeed(&brokers, &["group", "describe", "g"]);
    assert!(
        described.contains("TOPIC") && described.contains("LAG"),
        "{described}"
    );

    let plan = succeed_json(
        &brokers,
        &[
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "events",
            "--to-earliest",
            "--dry-run",
        ],
    );
    assert_eq!(plan["dry_run"], true);
    let planned: Vec<(i64, i64, i64)> = plan["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["partition"].as_i64().unwrap(),
                row["current"].as_i64().unwrap(),
                row["new"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(planned, vec![(0, p0.1, 0), (1, p1.1, 0)]);
    assert_eq!(
        lags(&brokers, "g"),
        after_consume,
        "a dry run changes nothing"
    );

    let table = succeed(
        &brokers,
        &[
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "events",
            "--to-earliest",
        ],
    );
    assert!(table.starts_with("TOPIC"), "{table}");
    assert_eq!(lags(&brokers, "g"), vec![(0, 0, 6, 6), (1, 0, 4, 4)]);

    succeed(
        &brokers,
        &[
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "events",
            "--to-offset",
            "2",
        ],
    );
    assert_eq!(lags(&brokers, "g"), vec![(0, 2, 6, 4), (1, 2, 4, 2)]);

    // One partition only; an offset past the end stops at the end.
    succeed(
        &brokers,
        &[
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "events",
            "--partition",
            "1",
            "--to-offset",
            "99",
        ],
    );
    assert_eq!(lags(&brokers, "g"), vec![(0, 2, 6, 4), (1, 4, 4, 0)]);

    let later = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 3_600_000;
    let plan = succeed_json(
        &brokers,
        &[
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "events",
            "--to-datetime",
            &later.to_string(),
            "--dry-run",
        ],
    );
    let new: Vec<i64> = plan["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["new"].as_i64().unwrap())
        .collect();
    assert_eq!(new, vec![6, 4], "no record after the time: the log end");

    succeed(
        &brokers,
        &[
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "events",
            "--to-latest",
        ],
    );
    assert_eq!(lags(&brokers, "g"), vec![(0, 6, 6, 0), (1, 4, 4, 0)]);

    let deleted = succeed(&brokers, &["group", "delete", "g"]);
    assert_eq!(deleted, "group 'g': deleted\n");
    assert!(!group_names(&brokers).contains(&"g".to_string()));
}

#[test]
fn an_unknown_group_is_one_line_error() {
    let broker = BrokerProcess::start();
    let brokers = broker.bootstrap();
    assert_eq!(
        fail(&brokers, &["group", "describe", "nobody"]),
        "error: group 'nobody' does not exist"
    );
}

/// A real group member that keeps polling until dropped.
struct LiveMember {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl LiveMember {
    fn join(brokers: &str, group: &str, topic: &str) -> LiveMember {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", group)
            .set("auto.offset.reset", "earliest")
            .create()
            .expect("consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                let _ = consumer.poll(Duration::from_millis(100));
            }
            consumer.unsubscribe();
        });
        LiveMember {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for LiveMember {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn a_group_with_members_is_neither_deleted_nor_reset() {
    let broker = BrokerProcess::start();
    let brokers = broker.bootstrap();
    six_and_four(&brokers, "busy");
    let _member = LiveMember::join(&brokers, "live", "busy");

    let deadline = Instant::now() + Duration::from_secs(30);
    let described = loop {
        // Until the member's JoinGroup reaches the broker the group does not exist.
        let output = cauce_with_input(&brokers, &["--json", "group", "describe", "live"], "");
        let described: Value = if output.status.success() {
            serde_json::from_slice(&output.stdout).expect("valid JSON")
        } else {
            Value::Null
        };
        let assigned = described["members"]
            .as_array()
            .and_then(|members| members.first())
            .is_some_and(|member| member["assignment"]["busy"].as_array().is_some());
        if described["state"] == "Stable" && assigned {
            break described;
        }
        assert!(
            Instant::now() < deadline,
            "the member never joined: {described}"
        );
        thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        described["members"][0]["assignment"]["busy"],
        serde_json::json!([0, 1])
    );

    let refused = fail(&brokers, &["group", "delete", "live"]);
    assert!(refused.contains("'live'"), "{refused}");
    assert!(refused.to_lowercase().contains("not empty"), "{refused}");
    assert_eq!(
        fail(
            &brokers,
            &[
                "group",
                "reset-offsets",
                "live",
                "--topic",
                "busy",
                "--to-earliest"
            ]
        ),
        "error: group 'live' has active members; stop them first"
    );
    assert!(group_names(&brokers).contains(&"live".to_string()));
}

#[test]
fn an_unreachable_broker_fails_within_seconds() {
    let brokers = cauce_integration_tests::CLOSED_ADDRESS.to_string();
    for args in [&["group", "list"][..], &["group", "describe", "g"][..]] {
        let started = Instant::now();
        let message = fail(&brokers, args);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{args:?} took too long"
        );
        assert!(message.contains(&brokers), "{message}");
    }
}
