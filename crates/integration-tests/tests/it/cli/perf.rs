//! `cauce perf ...`, run as a real process against a real broker: the counts and figures its JSON
//! report carries, that `--duration` bounds a run, and the one-line errors scripts rely on.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cauce_integration_tests::{cauce_binary, BrokerProcess};
use serde_json::Value;

use super::cauce;

/// Runs a `perf` command with `--json` that must succeed; returns its report.
fn report(brokers: &str, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let output = cauce(brokers, &args);
    assert!(
        output.status.success(),
        "cauce {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("a JSON report on stdout")
}

fn number(report: &Value, field: &str) -> f64 {
    report[field]
        .as_f64()
        .unwrap_or_else(|| panic!("no number '{field}' in {report}"))
}

fn latency(report: &Value, percentile: &str) -> f64 {
    report["latency_ms"][percentile]
        .as_f64()
        .unwrap_or_else(|| panic!("no latency '{percentile}' in {report}"))
}

/// Checks the rates are positive and the percentiles positive and in order.
fn assert_sane_figures(report: &Value) {
    assert!(number(report, "records_per_second") > 0.0, "{report}");
    assert!(number(report, "megabytes_per_second") > 0.0, "{report}");
    let (p50, p99, p99_9, max) = (
        latency(report, "p50"),
        latency(report, "p99"),
        latency(report, "p99_9"),
        latency(report, "max"),
    );
    assert!(p50 > 0.0, "{report}");
    assert!(p50 <= p99 && p99 <= p99_9 && p99_9 <= max, "{report}");
}

#[test]
fn produced_records_are_all_delivered_and_consumed_back() {
    let broker = BrokerProcess::start();
    let brokers = broker.bootstrap();

    let produced = report(
        &brokers,
        &["perf", "produce", "--topic", "load", "--records", "20000"],
    );
    assert_eq!(produced["workload"], "produce");
    assert_eq!(produced["records"], 20000, "{produced}");
    assert_eq!(produced["bytes"], 20000 * 100, "{produced}");
    assert_sane_figures(&produced);

    let consumed = report(
        &brokers,
        &["perf", "consume", "--topic", "load", "--records", "20000"],
    );
    assert_eq!(consumed["workload"], "consume");
    assert_eq!(consumed["records"], 20000, "{consumed}");
    assert_eq!(consumed["bytes"], 20000 * 100, "{consumed}");
    assert!(number(&consumed, "records_per_second") > 0.0, "{consumed}");
    assert!(consumed.get("latency_ms").is_none(), "{consumed}");

    // The topic holds exactly what was produced: a timed read from the beginning finds no more.
    let everything = report(
        &brokers,
        &["perf", "consume", "--topic", "load", "--duration", "6"],
    );
    assert_eq!(everything["records"], 20000, "{everything}");

    // Asking for more than there is gives up after the idle timeout, saying how many came. The
    // timeout counts from the start too, so it must cover the group's 3 s initial delay.
    let started = Instant::now();
    let short = cauce(
        &brokers,
        &[
            "perf",
            "consume",
            "--topic",
            "load",
            "--records",
            "20001",
            "--idle-timeout",
            "6",
        ],
    );
    assert_eq!(short.status.code(), Some(1));
    let stderr = String::from_utf8(short.stderr).expect("utf-8 stderr");
    assert!(
        stderr.contains("only 20000 of 20001 records") && stderr.contains("before 6 s"),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn keyed_compressed_producers_share_the_record_count() {
    let broker = BrokerProcess::start();
    let brokers = broker.bootstrap();
    let produced = report(
        &brokers,
        &[
            "perf",
            "produce",
            "--topic",
            "keyed",
            "--records",
            "3001",
            "--producers",
            "2",
            "--keyed",
            "--compression",
            "zstd",
            "--acks",
            "1",
            "--record-size",
            "64",
            "--partitions",
            "3",
        ],
    );
    assert_eq!(produced["records"], 3001, "{produced}");
    assert_sane_figures(&produced);
}

/// Two consumers share the partitions: every record comes back once, to one of them.
#[test]
fn end_to_end_latencies_are_ordered_and_the_rate_is_kept() {
    let broker = BrokerProcess::start();
    let brokers = broker.bootstrap();
    let started = Instant::now();
    let measured = report(
        &brokers,
        &[
            "perf",
            "end-to-end",
            "--topic",
            "round-trip",
            "--records",
            "5000",
            "--rate",
            "2000",
            "--linger-ms",
            "0.5",
            "--consumers",
            "2",
        ],
    );
    let took = started.elapsed();
    assert_eq!(measured["workload"], "end-to-end");
    assert_eq!(measured["records"], 5000, "{measured}");
    assert_sane_figures(&measured);
    // 5000 records at 2000/s take 2.5 s; much faster means the rate was ignored.
    assert!(took >= Duration::from_secs(2), "took {took:?}");
    assert!(
        number(&measured, "records_per_second") < 2200.0,
        "{measured}"
    );
}

#[test]
fn a_duration_bounds_the_run() {
    let broker = BrokerProcess::start();
    let brokers = broker.bootstrap();
    for workload in ["produce", "end-to-end"] {
        let started = Instant::now();
        let measured = report(
            &brokers,
            &[
                "perf",
                workload,
                "--topic",
                "timed",
                "--duration",
                "2",
                "--rate",
                "5000",
            ],
        );
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(2) && took <= Duration::from_secs(6),
            "{workload} --duration 2 took {took:?}"
        );
        assert!(number(&measured, "records") > 0.0, "{measured}");
    }
}

#[test]
fn an_unreachable_broker_fails_in_one_line() {
    let closed = cauce_integration_tests::CLOSED_ADDRESS.to_string();
    let workloads = [
        &["perf", "produce", "--topic", "t", "--records", "10"][..],
        &["perf", "consume", "--topic", "t", "--records", "10"][..],
        &["perf", "end-to-end", "--topic", "t", "--records", "10"][..],
    ];
    // The three wait for the same timeout, so they wait side by side.
    let started = Instant::now();
    let children: Vec<_> = workloads
        .iter()
        .map(|args| {
            Command::new(cauce_binary())
                .arg("--brokers")
                .arg(&closed)
                .args(*args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("run cauce")
        })
        .collect();
    for (args, child) in workloads.iter().zip(children) {
        let output = child.wait_with_output().expect("wait for cauce");
        let took = started.elapsed();
        assert_eq!(output.status.code(), Some(1), "cauce {args:?}");
        assert!(
            took < Duration::from_secs(15),
            "cauce {args:?} took {took:?}"
        );
        let stderr = String::from_utf8(output.stderr).expect("utf-8 stderr");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(stderr.contains(&closed), "{stderr}");
        assert!(output.stdout.is_empty());
    }
}

#[test]
fn bad_flags_are_usage_errors() {
    let unused = "127.0.0.1:1";
    for args in [
        &["perf", "produce", "--topic", "t", "--bogus"][..],
        &["perf", "produce", "--records", "5"][..],
        &[
            "perf",
            "produce",
            "--topic",
            "t",
            "--records",
            "5",
            "--duration",
            "1",
        ][..],
        &["perf", "produce", "--topic", "t", "--acks", "2"][..],
        &["perf", "end-to-end", "--topic", "t", "--record-size", "4"][..],
        &["perf", "consume", "--topic", "t", "--consumers", "0"][..],
    ] {
        let output = cauce(unused, args);
        assert_eq!(output.status.code(), Some(2), "cauce {args:?}");
        let stderr = String::from_utf8(output.stderr).expect("utf-8 stderr");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
    }
}

#[test]
fn consuming_a_missing_topic_fails_in_one_line() {
    let broker = BrokerProcess::start();
    let output = cauce(
        &broker.bootstrap(),
        &["perf", "consume", "--topic", "absent", "--records", "1"],
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).expect("utf-8 stderr");
    assert_eq!(stderr.trim_end(), "error: topic 'absent' does not exist");
}
