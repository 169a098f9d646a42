//! Prometheus metrics: the counters the request path bumps, the values read from partitions and
//! groups at scrape time, and the tiny HTTP/1.1 listener (`metrics.listen`) that serves them.
//!
//! The request path only touches atomics: per-partition traffic lives on the [`Partition`]
//! (no lookup), per-API request counts and latency buckets in a fixed table indexed by API key.
//! Everything that needs a lock (log sizes, end offsets, committed offsets) is read when
//! `/metrics` is scraped, off the reactor.
//!
//! Exported series (all prefixed `cauce_`):
//! - `topic_bytes_in_total{topic}`, `topic_records_in_total{topic}`: accepted by Produce.
//! - `topic_bytes_out_total{topic}`: record bytes returned by Fetch.
//! - `requests_total{api}` and the histogram `request_duration_seconds{api}`: from a request's
//!   frame being parsed to its response being written to the connection's buffer. Two
//!   histograms split that time: `request_queue_seconds{api}`, until the request's turn came
//!   (the handler's own work, then waiting behind the connection's earlier requests, whose
//!   answers go out first), and `request_wait_seconds{api}`,
//!   spent waiting on a deferred answer once its turn came (Produce waiting for the fsync that
//!   `acks=all` needs under `flush.messages`, Fetch long-polling for `min.bytes`).
//! - `active_connections`: Kafka connections open now.
//! - `log_size_bytes{topic,partition}`, `log_segments{topic,partition}`,
//!   `log_end_offset{topic,partition}`.
//! - `consumer_group_lag{group,topic,partition}`: log end offset minus committed offset.
//! - `under_replicated_partitions`: partitions led here whose ISR lacks a replica.
//!
//! [`Partition`]: crate::partition::Partition

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cauce_protocol::kafka::messages::ApiKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::shutdown::Shutdown;
use crate::Broker;

/// Upper bounds of the request latency buckets, in seconds (100 µs to 10 s).
pub const LATENCY_BUCKETS_SECONDS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Slots of the per-API table; Kafka's API keys are small numbers (92 is the largest today).
const API_KEY_SLOTS: usize = 128;
/// The content type of Prometheus' text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";
/// Largest HTTP request head read; a scraper sends a few hundred bytes.
const MAX_REQUEST_HEAD_BYTES: usize = 8 * 1024;
/// How long a scraper gets to send its request.
const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Produce and Fetch traffic of one partition, kept on the partition itself.
#[derive(Debug, Default)]
pub struct PartitionTraffic {
    /// Record-batch bytes appended by Produce.
    bytes_in: AtomicU64,
    /// Records (offsets) appended by Produce.
    records_in: AtomicU64,
    /// Record-batch bytes returned by Fetch.
    bytes_out: AtomicU64,
}

impl PartitionTraffic {
    /// Counts an accepted produce: its batch bytes and its records.
    pub fn record_produced(&self, bytes: usize, records: u64) {
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
        self.records_in.fetch_add(records, Ordering::Relaxed);
    }

    /// Counts bytes returned to a fetcher.
    pub fn record_fetched(&self, bytes: usize) {
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// (bytes in, records in, bytes out).
    fn read(&self) -> (u64, u64, u64) {
        (
            self.bytes_in.load(Ordering::Relaxed),
            self.records_in.load(Ordering::Relaxed),
            self.bytes_out.load(Ordering::Relaxed),
        )
    }
}

/// A latency histogram over [`LATENCY_BUCKETS_SECONDS`], updated with relaxed atomics.
struct Histogram {
    /// Observations.
    count: AtomicU64,
    /// Total of the observations, in nanoseconds.
    sum_nanos: AtomicU64,
    /// Observations per bucket (not cumulative; the last slot is above the largest bound).
    buckets: [AtomicU64; LATENCY_BUCKETS_SECONDS.len() + 1],
}

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    fn record(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = LATENCY_BUCKETS_SECONDS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BUCKETS_SECONDS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(
            elapsed.as_nanos().min(u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let cumulative_buckets = self
            .buckets
            .iter()
            .take(LATENCY_BUCKETS_SECONDS.len())
            .map(|bucket| {
                cumulative += bucket.load(Ordering::Relaxed);
                cumulative
            })
            .collect();
        // Buckets and count are read at slightly different moments; `+Inf` must still be the
        // largest.
        HistogramSnapshot {
            count: self.count.load(Ordering::Relaxed).max(cumulative),
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            cumulative_buckets,
        }
    }
}

/// How long one answered request spent, in total and in its two waits.
#[derive(Debug, Clone, Copy)]
pub struct RequestTiming {
    /// From the frame being parsed to the response being written.
    pub total: Duration,
    /// Until its turn to be answered: the handler's work, then the connection's earlier
    /// requests.
    pub queued: Duration,
    /// Waiting on a deferred answer (fsync, long poll) once its turn came.
    pub waited: Duration,
}

/// The request timings of one API.
struct ApiLatency {
    /// Whole request latency; its count is the number of requests answered.
    duration: Histogram,
    /// See [`RequestTiming::queued`].
    queue: Histogram,
    /// See [`RequestTiming::waited`].
    wait: Histogram,
}

impl ApiLatency {
    fn new() -> ApiLatency {
        ApiLatency {
            duration: Histogram::new(),
            queue: Histogram::new(),
            wait: Histogram::new(),
        }
    }
}

/// The broker-wide counters the request path updates.
pub struct BrokerMetrics {
    /// Indexed by API key.
    apis: Box<[ApiLatency]>,
    /// Kafka connections open now.
    active_connections: AtomicI64,
}

impl Default for BrokerMetrics {
    fn default() -> Self {
        BrokerMetrics {
            apis: (0..API_KEY_SLOTS).map(|_| ApiLatency::new()).collect(),
            active_connections: AtomicI64::new(0),
        }
    }
}

impl BrokerMetrics {
    /// Counts one answered request of `api_key`.
    pub fn record_request(&self, api_key: i16, timing: RequestTiming) {
        let Some(api) = usize::try_from(api_key)
            .ok()
            .and_then(|slot| self.apis.get(slot))
        else {
            return;
        };
        api.queue.record(timing.queued);
        api.wait.record(timing.waited);
        api.duration.record(timing.total);
    }

    /// Counts a connection as open until the returned guard drops.
    pub fn connection_opened(&self) -> OpenConnection<'_> {
        self.active_connections.fetch_add(1, Ordering::Relaxed);
        OpenConnection { metrics: self }
    }

    /// Every API that has answered a request, by name.
    fn api_snapshots(&self) -> Vec<ApiSnapshot> {
        self.apis
            .iter()
            .enumerate()
            .filter_map(|(slot, api)| {
                if api.duration.count.load(Ordering::Relaxed) == 0 {
                    return None;
                }
                let name = ApiKey::try_from(slot as i16)
                    .map_or_else(|_| slot.to_string(), |key| format!("{key:?}"));
                Some(ApiSnapshot {
                    api: name,
                    duration: api.duration.snapshot(),
                    queue: api.queue.snapshot(),
                    wait: api.wait.snapshot(),
                })
            })
            .collect()
    }
}

/// Keeps a connection counted in `cauce_active_connections`.
pub struct OpenConnection<'a> {
    /// Where the gauge lives.
    metrics: &'a BrokerMetrics,
}

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.metrics
            .active_connections
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// One histogram at scrape time.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Observations.
    pub count: u64,
    /// Total of the observations, in seconds.
    pub sum_seconds: f64,
    /// Observations at or below each bound of [`LATENCY_BUCKETS_SECONDS`].
    pub cumulative_buckets: Vec<u64>,
}

/// One API's request timings at scrape time.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiSnapshot {
    /// The API's name, as `kafka-protocol` spells it (`Produce`, `Fetch`, ...).
    pub api: String,
    /// Whole request latency; its count is the number of requests answered.
    pub duration: HistogramSnapshot,
    /// Time spent behind the connection's earlier requests.
    pub queue: HistogramSnapshot,
    /// Time spent waiting on a deferred answer.
    pub wait: HistogramSnapshot,
}

/// One partition's log at scrape time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLogSnapshot {
    /// The topic.
    pub topic: String,
    /// The partition index.
    pub partition: i32,
    /// Bytes in all segments.
    pub size_bytes: u64,
    /// Segments, the active one included.
    pub segments: usize,
    /// The log end offset.
    pub log_end_offset: i64,
}

/// One group's lag on one partition at scrape time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLagSnapshot {
    /// The group id.
    pub group: String,
    /// The topic.
    pub topic: String,
    /// The partition index.
    pub partition: i32,
    /// Log end offset minus committed offset, never below 0.
    pub lag: i64,
}

/// Everything one scrape reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Per topic: (bytes in, records in, bytes out).
    pub topic_traffic: BTreeMap<String, (u64, u64, u64)>,
    /// Per API that has been used.
    pub apis: Vec<ApiSnapshot>,
    /// Kafka connections open now.
    pub active_connections: i64,
    /// Per hosted partition.
    pub partitions: Vec<PartitionLogSnapshot>,
    /// Per group and committed partition.
    pub group_lag: Vec<GroupLagSnapshot>,
    /// Partitions led here with fewer in-sync replicas than replicas.
    pub under_replicated_partitions: u64,
}

/// Reads every metric; takes each partition's log lock briefly, so call it off the reactor.
pub fn collect(broker: &Broker) -> Snapshot {
    let mut snapshot = Snapshot {
        apis: broker.metrics.api_snapshots(),
        active_connections: broker.metrics.active_connections.load(Ordering::Relaxed),
        ..Snapshot::default()
    };
    // Kafka counts a partition where its leader is: the ones led here whose ISR lacks a replica.
    let node_id = broker.config.node_id;
    snapshot.under_replicated_partitions = broker
        .metadata
        .image()
        .topics
        .values()
        .flat_map(|topic| &topic.partitions)
        .filter(|partition| {
            partition.leader == node_id && partition.isr.len() < partition.replicas.len()
        })
        .count() as u64;
    let mut partitions = broker.replicas.all();
    partitions.sort_by(|left, right| (&left.topic, left.index).cmp(&(&right.topic, right.index)));
    for partition in &partitions {
        let (bytes_in, records_in, bytes_out) = partition.traffic.read();
        let topic = snapshot
            .topic_traffic
            .entry(partition.topic.clone())
            .or_default();
        topic.0 += bytes_in;
        topic.1 += records_in;
        topic.2 += bytes_out;
        let (size_bytes, segments) =
            partition.with_log(|log| (log.size_bytes(), log.segment_count()));
        snapshot.partitions.push(PartitionLogSnapshot {
            topic: partition.topic.clone(),
            partition: partition.index,
            size_bytes,
            segments,
            log_end_offset: partition.log_end_offset(),
        });
    }
    let mut groups: Vec<String> = broker
        .groups
        .list()
        .into_iter()
        .map(|(group, ..)| group)
        .collect();
    groups.sort();
    groups.dedup();
    for group in groups {
        for ((topic, index), committed) in broker.groups.committed(&group) {
            let Some(partition) = broker.replicas.partition(&topic, index) else {
                continue;
            };
            if committed.offset < 0 {
                continue;
            }
            snapshot.group_lag.push(GroupLagSnapshot {
                group: group.clone(),
                topic,
                partition: index,
                lag: (partition.log_end_offset() - committed.offset).max(0),
            });
        }
    }
    snapshot
}

/// Writes the `# HELP` and `# TYPE` lines of a metric family.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Renders a snapshot in Prometheus' text exposition format (version 0.0.4).
pub fn render(snapshot: &Snapshot) -> String {
    let mut out = String::with_capacity(4096);

    header(
        &mut out,
        "cauce_topic_bytes_in_total",
        "counter",
        "Record-batch bytes accepted by Produce.",
    );
    for (topic, (bytes_in, _, _)) in &snapshot.topic_traffic {
        let _ = writeln!(
            out,
            "cauce_topic_bytes_in_total{{topic=\"{}\"}} {bytes_in}",
            escape(topic)
        );
    }
    header(
        &mut out,
        "cauce_topic_records_in_total",
        "counter",
        "Records accepted by Produce.",
    );
    for (topic, (_, records_in, _)) in &snapshot.topic_traffic {
        let _ = writeln!(
            out,
            "cauce_topic_records_in_total{{topic=\"{}\"}} {records_in}",
            escape(topic)
        );
    }
    header(
        &mut out,
        "cauce_topic_bytes_out_total",
        "counter",
        "Record-batch bytes returned by Fetch.",
    );
    for (topic, (_, _, bytes_out)) in &snapshot.topic_traffic {
        let _ = writeln!(
            out,
            "cauce_topic_bytes_out_total{{topic=\"{}\"}} {bytes_out}",
            escape(topic)
        );
    }

    header(
        &mut out,
        "cauce_requests_total",
        "counter",
        "Requests answered, per API.",
    );
    for api in &snapshot.apis {
        let _ = writeln!(
            out,
            "cauce_requests_total{{api=\"{}\"}} {}",
            escape(&api.api),
            api.duration.count
        );
    }
    let histograms: [(&str, &str, HistogramOf); 3] = [
        (
            "cauce_request_duration_seconds",
            "Time from a request being parsed to its response being written, per API.",
            |api| &api.duration,
        ),
        (
            "cauce_request_queue_seconds",
            "Time from a request being parsed to its turn to be answered, per API.",
            |api| &api.queue,
        ),
        (
            "cauce_request_wait_seconds",
            "Time a request's deferred answer (fsync, long poll) was waited for, per API.",
            |api| &api.wait,
        ),
    ];
    for (family, help, histogram_of) in histograms {
        header(&mut out, family, "histogram", help);
        for api in &snapshot.apis {
            render_histogram(&mut out, family, &escape(&api.api), histogram_of(api));
        }
    }
    header(
        &mut out,
        "cauce_active_connections",
        "gauge",
        "Kafka client connections open now.",
    );
    let _ = writeln!(
        out,
        "cauce_active_connections {}",
        snapshot.active_connections
    );

    header(
        &mut out,
        "cauce_log_size_bytes",
        "gauge",
        "Bytes in all segments of a partition's log.",
    );
    for log in &snapshot.partitions {
        let _ = writeln!(
            out,
            "cauce_log_size_bytes{{{}}} {}",
            partition_labels(log),
            log.size_bytes
        );
    }
    header(
        &mut out,
        "cauce_log_segments",
        "gauge",
        "Segments of a partition's log, the active one included.",
    );
    for log in &snapshot.partitions {
        let _ = writeln!(
            out,
            "cauce_log_segments{{{}}} {}",
            partition_labels(log),
            log.segments
        );
    }
    header(
        &mut out,
        "cauce_log_end_offset",
        "gauge",
        "Offset the next record appended to a partition will get.",
    );
    for log in &snapshot.partitions {
        let _ = writeln!(
            out,
            "cauce_log_end_offset{{{}}} {}",
            partition_labels(log),
            log.log_end_offset
        );
    }

    header(
        &mut out,
        "cauce_consumer_group_lag",
        "gauge",
        "Log end offset minus the group's committed offset.",
    );
    for lag in &snapshot.group_lag {
        let _ = writeln!(
            out,
            "cauce_consumer_group_lag{{group=\"{}\",topic=\"{}\",partition=\"{}\"}} {}",
            escape(&lag.group),
            escape(&lag.topic),
            lag.partition,
            lag.lag
        );
    }

    header(
        &mut out,
        "cauce_under_replicated_partitions",
        "gauge",
        "Partitions with fewer in-sync replicas than replicas.",
    );
    let _ = writeln!(
        out,
        "cauce_under_replicated_partitions {}",
        snapshot.under_replicated_partitions
    );
    out
}

/// Picks one of an API's histograms.
type HistogramOf = fn(&ApiSnapshot) -> &HistogramSnapshot;

/// Writes one API's series of a histogram family.
fn render_histogram(out: &mut String, family: &str, api: &str, histogram: &HistogramSnapshot) {
    for (bound, cumulative) in LATENCY_BUCKETS_SECONDS
        .iter()
        .zip(&histogram.cumulative_buckets)
    {
        let _ = writeln!(
            out,
            "{family}_bucket{{api=\"{api}\",le=\"{bound}\"}} {cumulative}"
        );
    }
    let _ = writeln!(
        out,
        "{family}_bucket{{api=\"{api}\",le=\"+Inf\"}} {}",
        histogram.count
    );
    let _ = writeln!(
        out,
        "{family}_sum{{api=\"{api}\"}} {}",
        histogram.sum_seconds
    );
    let _ = writeln!(out, "{family}_count{{api=\"{api}\"}} {}", histogram.count);
}

fn partition_labels(log: &PartitionLogSnapshot) -> String {
    format!(
        "topic=\"{}\",partition=\"{}\"",
        escape(&log.topic),
        log.partition
    )
}

/// Escapes a label value as the text format requires.
fn escape(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for character in value.chars() {
        match character {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// Serves `GET /metrics` on `listener` until shutdown; one request per connection.
pub async fn serve(broker: Arc<Broker>, listener: TcpListener, mut shutdown: Shutdown) {
    let mut scrapes = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    scrapes.spawn(answer(broker.clone(), stream));
                }
                Err(error) => {
                    tracing::warn!(%error, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = scrapes.join_next(), if !scrapes.is_empty() => {}
            _ = shutdown.wait() => break,
        }
    }
    scrapes.abort_all();
    while scrapes.join_next().await.is_some() {}
}

/// What an HTTP request line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    /// `GET /metrics`.
    Metrics,
    /// Anything else.
    NotFound,
}

fn route(request_line: &str) -> Route {
    let mut parts = request_line.split_ascii_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Route::NotFound;
    };
    let path = target.split('?').next().unwrap_or(target);
    if method == "GET" && path == "/metrics" {
        Route::Metrics
    } else {
        Route::NotFound
    }
}

/// Answers one HTTP request and closes the connection.
async fn answer(broker: Arc<Broker>, mut stream: TcpStream) {
    let head = match tokio::time::timeout(REQUEST_READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(head)) => head,
        Ok(Err(error)) => {
            tracing::debug!(%error, "metrics request unreadable");
            return;
        }
        Err(_) => return,
    };
    let request_line = head.lines().next().unwrap_or_default();
    let (status, content_type, body) = match route(request_line) {
        Route::Metrics => {
            let rendered = tokio::task::spawn_blocking(move || render(&collect(&broker))).await;
            match rendered {
                Ok(body) => ("200 OK", CONTENT_TYPE, body),
                Err(error) => {
                    tracing::error!(%error, "rendering metrics failed");
                    (
                        "500 Internal Server Error",
                        "text/plain",
                        "rendering metrics failed\n".to_string(),
                    )
                }
            }
        }
        Route::NotFound => ("404 Not Found", "text/plain", "not found\n".to_string()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if stream.write_all(response.as_bytes()).await.is_ok() {
        let _ = stream.shutdown().await;
    }
}

/// Reads the request head (up to the blank line), so that closing does not reset the
/// connection under unread bytes.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..read]);
        if head.windows(4).any(|window| window == b"\r\n\r\n")
            || head.windows(2).any(|window| window == b"\n\n")
            || head.len() >= MAX_REQUEST_HEAD_BYTES
        {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_snapshot() -> Snapshot {
        let metrics = BrokerMetrics::default();
        for (total, queued, waited) in [
            (Duration::from_micros(50), Duration::ZERO, Duration::ZERO),
            (
                Duration::from_millis(3),
                Duration::from_millis(2),
                Duration::ZERO,
            ),
            (
                Duration::from_secs(20),
                Duration::ZERO,
                Duration::from_secs(19),
            ),
        ] {
            let timing = RequestTiming {
                total,
                queued,
                waited,
            };
            metrics.record_request(ApiKey::Produce as i16, timing);
        }
        let _open = metrics.connection_opened();
        let mut topic_traffic = BTreeMap::new();
        topic_traffic.insert("orders".to_string(), (1200, 30, 600));
        Snapshot {
            topic_traffic,
            apis: metrics.api_snapshots(),
            active_connections: metrics.active_connections.load(Ordering::Relaxed),
            partitions: vec![PartitionLogSnapshot {
                topic: "orders".into(),
                partition: 0,
                size_bytes: 1200,
                segments: 1,
                log_end_offset: 30,
            }],
            group_lag: vec![GroupLagSnapshot {
                group: "billing \"eu\"".into(),
                topic: "orders".into(),
                partition: 0,
                lag: 12,
            }],
            under_replicated_partitions: 0,
        }
    }

    #[test]
    fn text_format_has_typed_families_labels_and_cumulative_buckets() {
        let text = render(&sample_snapshot());
        for expected in [
            "# TYPE cauce_topic_bytes_in_total counter",
            "cauce_topic_bytes_in_total{topic=\"orders\"} 1200",
            "cauce_topic_records_in_total{topic=\"orders\"} 30",
            "cauce_topic_bytes_out_total{topic=\"orders\"} 600",
            "cauce_requests_total{api=\"Produce\"} 3",
            "# TYPE cauce_request_duration_seconds histogram",
            "cauce_request_duration_seconds_bucket{api=\"Produce\",le=\"0.0001\"} 1",
            "cauce_request_duration_seconds_bucket{api=\"Produce\",le=\"0.0025\"} 1",
            "cauce_request_duration_seconds_bucket{api=\"Produce\",le=\"0.005\"} 2",
            "cauce_request_duration_seconds_bucket{api=\"Produce\",le=\"10\"} 2",
            "cauce_request_duration_seconds_bucket{api=\"Produce\",le=\"+Inf\"} 3",
            "cauce_request_duration_seconds_count{api=\"Produce\"} 3",
            "# TYPE cauce_request_queue_seconds histogram",
            "cauce_request_queue_seconds_bucket{api=\"Produce\",le=\"0.001\"} 2",
            "cauce_request_queue_seconds_bucket{api=\"Produce\",le=\"0.0025\"} 3",
            "cauce_request_queue_seconds_sum{api=\"Produce\"} 0.002",
            "# TYPE cauce_request_wait_seconds histogram",
            "cauce_request_wait_seconds_bucket{api=\"Produce\",le=\"10\"} 2",
            "cauce_request_wait_seconds_bucket{api=\"Produce\",le=\"+Inf\"} 3",
            "cauce_request_wait_seconds_sum{api=\"Produce\"} 19",
            "cauce_active_connections 1",
            "cauce_log_size_bytes{topic=\"orders\",partition=\"0\"} 1200",
            "cauce_log_segments{topic=\"orders\",partition=\"0\"} 1",
            "cauce_log_end_offset{topic=\"orders\",partition=\"0\"} 30",
            "cauce_consumer_group_lag{group=\"billing \\\"eu\\\"\",topic=\"orders\",partition=\"0\"} 12",
            "cauce_under_replicated_partitions 0",
        ] {
            assert!(
                text.lines().any(|line| line == expected),
                "missing line {expected:?} in:\n{text}"
            );
        }
        assert!(!text.contains("api=\"Fetch\""), "unused APIs are left out");
        let sum_line = text
            .lines()
            .find(|line| line.starts_with("cauce_request_duration_seconds_sum"))
            .unwrap();
        let sum: f64 = sum_line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!((sum - 20.00305).abs() < 1e-9, "{sum_line}");
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "unparsable sample {line:?}");
        }
    }

    #[test]
    fn closed_connections_leave_the_gauge() {
        let metrics = BrokerMetrics::default();
        let first = metrics.connection_opened();
        let second = metrics.connection_opened();
        drop(first);
        assert_eq!(metrics.active_connections.load(Ordering::Relaxed), 1);
        drop(second);
        assert_eq!(metrics.active_connections.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn only_get_metrics_is_served() {
        assert_eq!(route("GET /metrics HTTP/1.1"), Route::Metrics);
        assert_eq!(route("GET /metrics?name[]=x HTTP/1.1"), Route::Metrics);
        assert_eq!(route("GET /other HTTP/1.1"), Route::NotFound);
        assert_eq!(route("POST /metrics HTTP/1.1"), Route::NotFound);
        assert_eq!(route(""), Route::NotFound);
    }

    #[test]
    fn unknown_api_keys_are_ignored() {
        let metrics = BrokerMetrics::default();
        let timing = RequestTiming {
            total: Duration::from_millis(1),
            queued: Duration::ZERO,
            waited: Duration::ZERO,
        };
        metrics.record_request(-1, timing);
        metrics.record_request(i16::MAX, timing);
        assert!(metrics.api_snapshots().is_empty());
    }
}
