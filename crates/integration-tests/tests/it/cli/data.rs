//! `cauce produce` and `cauce consume`, run as real processes against a real broker: lines in,
//! records out, start positions, groups, codecs, JSON, and the one-line errors scripts rely on.

use cauce_integration_tests::cli::{cauce_fails, cauce_succeeds};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cauce_integration_tests::{cauce_binary, BrokerProcess};
use serde_json::Value;

use super::cauce_with_input;

/// Runs a command that must succeed and returns its stdout.
fn succeed(brokers: &str, args: &[&str], stdin: &str) -> String {
    cauce_succeeds(brokers, args, stdin)
}

/// Produces `lines` and checks the summary on stderr and the empty stdout.
fn produce(brokers: &str, args: &[&str], lines: &str) {
    let output = cauce_with_input(brokers, args, lines);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "cauce {args:?} failed: {stderr}");
    let records = lines.lines().count();
    let noun = if records == 1 { "record" } else { "records" };
    assert_eq!(stderr.trim_end(), format!("produced {records} {noun}"));
    assert!(output.stdout.is_empty(), "produce printed to stdout");
}

/// Runs a command that must fail; returns its one stderr line.
fn fail(brokers: &str, args: &[&str], stdin: &str) -> String {
    cauce_fails(brokers, args, stdin).1
}

fn create_topic(brokers: &str, topic: &str, partitions: &str) {
    succeed(
        brokers,
        &["topic", "create", topic, "--partitions", partitions],
        "",
    );
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

#[test]
fn keys_headers_and_positions_come_back_exactly_as_produced() {
    let broker = BrokerProcess::start();
    let brokers = broker.bootstrap();
    create_topic(&brokers, "lines", "1");
    produce(
        &brokers,
        &[
            "produce",
            "lines",
            "--key-separator",
            "::",
            "--header",
            "source=test",
            "--header",
            "kind=a=b",
        ],
        "k1::v1\nk2::v2 with spaces\nk3::v3::tail\n",
    );
    let consumed = succeed(
        &brokers,
        &[
            "consume",
            "lines",
            "--from",
            "beginning",
            "--format",
            "%k=%v@%p:%o %h",
        ],
        "",
    );
    assert_eq!(
        consumed,
        "k1=v1@0:0 source=test,kind=a=b\n\
         k2=v2 with spaces@0:1 source=test,kind=a=b\n\
         k3=v3::tail@0:2 source=test,kind=a=b\n"
    );

    let values = succeed(&brokers, &["consume", "lines"], "");
    assert_eq!(values, "v1\nv2 with spaces\nv3::tail\n");
    let escaped = succeed(
        &brokers,
        &["consume", "lines", "--count", "1", "--format", "%o\\t%v"],
        "",
    );
    assert_eq!(escaped, "0\tv1\n");
}

#[test]
fn count_and_explicit_offset_select_records() {
    let broker = BrokerProcess::start();
    let brokers = broker.bootstrap();
    create_topic(&brokers, "numbers", "1");
    let lines: String = (0..10).map(|n| format!("{n}\n")).collect();
    produce(&brokers, &["produce", "numbers"], &lines);

    let first_three = succeed(&brokers, &["consume", "numbers", "--count", "3"], "");
    assert_eq!(first_three, "0\n1\n2\n");
    let from_seven = succeed(
        &brokers,
        &[
            "consume", "numbers", "--from", "offset:7", "--format", "%o=%v",
        ],
        "",
    );
    assert_eq!(from_seven, "7=7\n8=8\n9=9\n");
    let two_from_four = succeed(
        &brokers,
        &["consume", "numbers", "--from", "offset:4", "--count", "2"],
        "",
    );
    assert_eq!(two_from_four, "4\n5\n");
}

#[test]
fn from_timestamp_skips_records_written_before_it() {
    let broker = BrokerProcess::start();
    let brokers = broker.bootstrap();
    create_topic(&brokers, "timed", "2");
    produce(
        &brokers,
        &["produce", "timed"],
        "early-1\nearly-2\nearly-3\n",
    );
    std::thread::sleep(Duration::from_millis(50));
    let since = now_ms();
    std::thread::sleep(Duration::from_millis(50));
    produce(&brokers, &["produce", "timed"], "late-1\nlate-2\n");

    let since = format!("timestamp:{since}");
    let consumed = succeed(&brokers, &["consume", "timed", "--from", &since], "");
    let mut values: Vec<&str> = consumed.lines().collect();
    values.sort_unstable();
    assert_eq!(values, ["late-1", "late-2"]);
}

#[test]
fn from_end_waits_for_records_produced_after_it_started() {
    let broker = BrokerProcess::start();
    let brokers = broker.bootstrap();
    create_topic(&brokers, "live", "1");
    produce(&brokers, &["produce", "live"], "old-1\nold-2\n");

    let consumer = Command::new(cauce_binary())
        .args(["--brokers", &brokers])
        .args(["consume", "live", "--from", "end", "--count", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cauce consume");
    // The consumer must have taken its position before the new records arrive; keep producing
    // until it has seen two of them.
    let deadline = Instant::now() + Duration::from_secs(30);
    let consumer_pid = consumer.id();
    let waiter = std::thread::spawn(move || consumer.wait_with_output().expect("wait"));
    let mut batch = 0;
    while !waiter.is_finished() {
        assert!(
            Instant::now() < deadline,
            "consumer {consumer_pid} did not stop"
        );
        produce(&brokers, &["produce", "live"], &format!("new-{batch}\n"));
        batch += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    let output = waiter.join().expect("waiter");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for line in lines {
        assert!(
            line.starts_with("new-"),
            "old record after --from end: {stdout}"
        );
    }
}

#[test]
fn group_consumer_resumes_after_its_committed_offsets() {
    let broker = BrokerProcess::start();
    let brokers = broker.bootstrap();
    create_topic(&brokers, "jobs", "2");
    produce(
        &brokers,
        &["produce", "jobs", "--key-separator", ":"],
        "a:1\nb:2\nc:3\nd:4\n",
    );
    let first = succeed(&brokers, &["consume", "jobs", "--group", "workers"], "");
    let mut first: Vec<&str> = first.lines().collect();
    first.sort_unstable();
    assert_eq!(first, ["1", "2", "3", "4"]);

    let again = succeed(&brokers, &["consume", "jobs", "--group", "workers"], "");
    assert_eq!(again, "", "the group had committed everything");

    produce(
        &brokers,
        &["produce", "jobs", "--key-separator", ":"],
        "e:5\nf:6\n",
    );
    let second = succeed(&brokers, &["consume", "jobs", "--group", "workers"], "");
    let mut second: Vec<&str> = second.lines().collect();
    second.sort_unstable();
    assert_eq!(second, ["5", "6"]);

    let other_group = succeed(&brokers, &["consume", "jobs", "--group", "auditors"], "");
    assert_eq!(other_group.lines().count(), 6);
}

#[test]
fn every_compression_codec_round_trips() {
    let broker = BrokerProcess::start();
    let brokers = broker.bootstrap();
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("packed-{codec}");
        create_topic(&brokers, &topic, "1");
        let lines: String = (0..50)
            .map(|n| format!("{codec} record {n} {}\n", "x".repeat(n)))
            .collect();
        produce(
            &brokers,
            &["produce", &topic, "--compression", codec, "--acks", "1"],
            &lines,
        );
        let consumed = succeed(&brokers, &["consume", &topic], "");
        assert_eq!(consumed, lines, "codec {codec}");
    }
}

#[test]
fn json_mode_prints_one_object_per_record_and_a_produce_summary() {
    let broker = BrokerProcess::start();
    let brokers = broker.bootstrap();
    create_topic(&brokers, "events", "3");
    let input = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(input.path(), "user-1|clicked\nuser-2|scrolled\n").expect("write input");
    let path = input.path().to_str().expect("utf-8 path");
    let summary = succeed(
        &brokers,
        &[
            "produce",
            "events",
            "--file",
            path,
            "--key-separator",
            "|",
            "--partition",
            "2",
            "--header",
            "trace=abc",
            "--json",
        ],
        "",
    );
    let summary: Value = serde_json::from_str(&summary).expect("summary is JSON");
    assert_eq!(summary["records"], 2, "{summary}");
    assert_eq!(summary["topic"], "events", "{summary}");

    let stdout = succeed(&brokers, &["consume", "events", "--json"], "");
    let records: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}")))
        .collect();
    assert_eq!(records.len(), 2, "{stdout}");
    let started = now_ms() - 60_000;
    for (index, (record, (key, value))) in records
        .iter()
        .zip([("user-1", "clicked"), ("user-2", "scrolled")])
        .enumerate()
    {
        assert_eq!(record["key"], key, "{record}");
        assert_eq!(record["value"], value, "{record}");
        assert_eq!(record["partition"], 2, "{record}");
        assert_eq!(record["offset"], index as i64, "{record}");
        assert!(record["timestamp"].as_i64().expect("timestamp") > started);
        assert_eq!(record["headers"]["trace"], "abc", "{record}");
    }
}

#[test]
fn unknown_topic_fails_with_a_one_line_reason_naming_it() {
    let broker = BrokerProcess::start();
    let brokers = broker.bootstrap();
    assert_eq!(
        fail(&brokers, &["produce", "missing"], "a\n"),
        "error: topic 'missing' does not exist"
    );
    assert_eq!(
        fail(&brokers, &["consume", "missing"], ""),
        "error: topic 'missing' does not exist"
    );
}

#[test]
fn unreachable_broker_fails_quickly_with_a_one_line_reason() {
    let closed = cauce_integration_tests::CLOSED_ADDRESS.to_string();
    for args in [&["produce", "anything"][..], &["consume", "anything"][..]] {
        let started = Instant::now();
        let error = fail(&closed, args, "a\n");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{args:?} took {:?}",
            started.elapsed()
        );
        assert!(error.contains(&closed), "{error}");
    }
}

#[test]
fn bad_arguments_are_refused_with_a_one_line_reason() {
    let broker = BrokerProcess::start();
    let brokers = broker.bootstrap();
    create_topic(&brokers, "strict", "1");

    let output = cauce_with_input(&brokers, &["consume", "strict", "--from", "middle"], "");
    assert_eq!(output.status.code(), Some(2));
    let bad_from = fail(&brokers, &["consume", "strict", "--from", "middle"], "");
    assert!(bad_from.contains("middle"), "{bad_from}");
    let bad_offset = fail(&brokers, &["consume", "strict", "--from", "offset:x"], "");
    assert!(bad_offset.contains("offset:x"), "{bad_offset}");
    let bad_format = fail(&brokers, &["consume", "strict", "--format", "%q"], "");
    assert!(bad_format.contains("%q"), "{bad_format}");

    let no_separator = fail(
        &brokers,
        &["produce", "strict", "--key-separator", ":"],
        "no separator here\n",
    );
    assert!(no_separator.contains("separator"), "{no_separator}");
    let no_partition = fail(&brokers, &["produce", "strict", "--partition", "5"], "a\n");
    assert!(no_partition.contains("partition 5"), "{no_partition}");
}
