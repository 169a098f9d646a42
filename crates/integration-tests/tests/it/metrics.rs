//! Prometheus metrics over HTTP (`metrics.listen`): traffic, request counts and latencies,
//! connections, log sizes and consumer group lag, scraped the way Prometheus would.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use cauce_integration_tests::group_protocol::{commit_offsets, OffsetToCommit};
use cauce_integration_tests::raw::{
    create_single_partition_topic, fetch_records_from_offset_to_log_end,
    fetch_request_for_partition_zero, produce_batch_to_partition_zero,
    record_batch_of_values_stamped_now, FETCH_VERSION,
};
use cauce_integration_tests::{free_port, BrokerProcess, RawClient};
use kafka_protocol::messages::{ApiKey, FetchResponse};

/// An HTTP answer: status line, headers (lowercase names) and body.
struct HttpAnswer {
    status_line: String,
    headers: BTreeMap<String, String>,
    body: String,
}

/// Sends `GET path` over a plain socket and reads the answer until the broker closes.
fn http_get(address: SocketAddr, path: &str) -> HttpAnswer {
    let mut stream = TcpStream::connect(address).expect("connect to metrics listener");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nAccept: text/plain\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream
        .read_to_string(&mut raw)
        .expect("read the whole answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a header block");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap().to_string();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    HttpAnswer {
        status_line,
        headers,
        body: body.to_string(),
    }
}

/// Scrapes `/metrics` and returns every sample as `name{labels}` -> value.
pub(crate) fn scrape(address: SocketAddr) -> BTreeMap<String, f64> {
    let answer = http_get(address, "/metrics");
    assert_eq!(answer.status_line, "HTTP/1.1 200 OK");
    assert_eq!(
        answer.headers.get("content-type").map(String::as_str),
        Some("text/plain; version=0.0.4")
    );
    assert_eq!(
        answer.headers.get("content-length"),
        Some(&answer.body.len().to_string())
    );
    answer
        .body
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample line");
            let value = value
                .parse()
                .unwrap_or_else(|_| panic!("unparsable sample {line:?}"));
            (series.to_string(), value)
        })
        .collect()
}

fn sample(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no sample {series} in {samples:#?}"))
}

#[test]
fn metrics_report_traffic_requests_logs_connections_and_group_lag() {
    let metrics_address: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let broker =
        BrokerProcess::start_with_config(&format!("metrics.listen = \"{metrics_address}\"\n"));
    let mut client = RawClient::connect(broker.address);
    create_single_partition_topic(&mut client, "metered", &[]);

    let batches = [
        record_batch_of_values_stamped_now(&["a", "b", "c"]),
        record_batch_of_values_stamped_now(&["d"]),
        record_batch_of_values_stamped_now(&["e", "f", "g", "h"]),
    ];
    for batch in &batches {
        let response = produce_batch_to_partition_zero(&mut client, "metered", batch);
        assert_eq!(response.error_code, 0);
    }
    let produced_bytes: usize = batches.iter().map(Vec::len).sum();
    let produced_records = 8;
    let fetched = fetch_records_from_offset_to_log_end(&mut client, "metered", 0);
    assert_eq!(fetched.len(), produced_records);
    // A long poll at the log end: the broker holds it for max_wait_ms, which is wait time.
    let long_poll_ms = 300;
    let parked: FetchResponse = client.call(
        ApiKey::Fetch,
        FETCH_VERSION,
        &fetch_request_for_partition_zero("metered", produced_records as i64, long_poll_ms, 1),
    );
    assert_eq!(parked.responses[0].partitions[0].error_code, 0);
    let committed = 3;
    let results = commit_offsets(
        &mut client,
        "metered-readers",
        "",
        -1,
        &[OffsetToCommit {
            topic: "metered",
            partition: 0,
            offset: committed,
            metadata: String::new(),
        }],
    );
    assert!(results.iter().all(|(_, _, code)| *code == 0), "{results:?}");

    let samples = scrape(metrics_address);
    let topic = "topic=\"metered\"";
    let partition = "topic=\"metered\",partition=\"0\"";
    assert_eq!(
        sample(&samples, &format!("cauce_topic_bytes_in_total{{{topic}}}")),
        produced_bytes as f64
    );
    assert_eq!(
        sample(
            &samples,
            &format!("cauce_topic_records_in_total{{{topic}}}")
        ),
        produced_records as f64
    );
    // Every batch came back once, whole: the fetches returned exactly what was stored.
    assert_eq!(
        sample(&samples, &format!("cauce_topic_bytes_out_total{{{topic}}}")),
        produced_bytes as f64
    );
    assert_eq!(
        sample(&samples, "cauce_requests_total{api=\"Produce\"}"),
        batches.len() as f64
    );
    assert!(sample(&samples, "cauce_requests_total{api=\"Fetch\"}") >= 1.0);
    assert_eq!(
        sample(
            &samples,
            "cauce_request_duration_seconds_count{api=\"Produce\"}"
        ),
        batches.len() as f64
    );
    assert_eq!(
        sample(
            &samples,
            "cauce_request_duration_seconds_bucket{api=\"Produce\",le=\"+Inf\"}"
        ),
        batches.len() as f64
    );
    assert!(
        sample(
            &samples,
            "cauce_request_duration_seconds_sum{api=\"Produce\"}"
        ) > 0.0
    );
    for family in ["cauce_request_queue_seconds", "cauce_request_wait_seconds"] {
        assert_eq!(
            sample(&samples, &format!("{family}_count{{api=\"Produce\"}}")),
            batches.len() as f64,
            "{family}"
        );
    }
    let fetch_wait = sample(&samples, "cauce_request_wait_seconds_sum{api=\"Fetch\"}");
    assert!(
        fetch_wait >= f64::from(long_poll_ms) / 1000.0 * 0.9,
        "the long poll's wait is counted: {fetch_wait}"
    );
    assert!(sample(&samples, &format!("cauce_log_size_bytes{{{partition}}}")) > 0.0);
    assert!(sample(&samples, &format!("cauce_log_segments{{{partition}}}")) >= 1.0);
    let log_end_offset = sample(&samples, &format!("cauce_log_end_offset{{{partition}}}"));
    assert_eq!(log_end_offset, produced_records as f64);
    assert_eq!(
        sample(
            &samples,
            "cauce_consumer_group_lag{group=\"metered-readers\",topic=\"metered\",partition=\"0\"}"
        ),
        log_end_offset - committed as f64
    );
    assert!(sample(&samples, "cauce_active_connections") >= 1.0);
    assert_eq!(sample(&samples, "cauce_under_replicated_partitions"), 0.0);

    // The gauge follows connections as they close.
    drop(client);
    let deadline = Instant::now() + Duration::from_secs(10);
    while sample(&scrape(metrics_address), "cauce_active_connections") != 0.0 {
        assert!(
            Instant::now() < deadline,
            "active connections did not drop to 0 after the client left"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn paths_other_than_metrics_are_not_found() {
    let metrics_address: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let broker =
        BrokerProcess::start_with_config(&format!("metrics.listen = \"{metrics_address}\"\n"));
    let answer = http_get(metrics_address, "/other");
    assert_eq!(answer.status_line, "HTTP/1.1 404 Not Found");
    let answer = http_get(metrics_address, "/");
    assert_eq!(answer.status_line, "HTTP/1.1 404 Not Found");
    // The listener keeps serving after a refused path.
    assert!(scrape(metrics_address).contains_key("cauce_active_connections"));
    drop(broker);
}
