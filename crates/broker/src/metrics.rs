//! Prometheus metrics: the series the request path updates, the values read from partitions and
//! groups at scrape time, and the `/metrics` endpoint (`metrics.listen`) served by [`crate::http`].
//!
//! The request path only touches atomics: per-partition traffic lives on the [`Partition`]
//! (no lookup); per-API request counters and latency histograms are `metrics` handles,
//! registered once per API in a fixed table indexed by API key with the broker's own
//! `metrics-exporter-prometheus` recorder (never installed as the global one, so brokers in one
//! test process stay apart). A histogram sample is pushed to a lock-free queue; the recorder
//! folds the queues into buckets when it renders, and [`BrokerMetrics::fold_samples`] does so
//! every few seconds so that they stay short when nothing scrapes. Everything that needs a lock
//! (log sizes, end offsets, committed offsets) is read when `/metrics` is scraped, off the
//! reactor, and written with the exporter's formatting.
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
//! - `consumer_group_lag{group,topic,partition}`: last stable offset minus committed offset
//!   (the last stable offset is where `read_committed` consumers stop; without transactions it
//!   is the high watermark).
//! - `under_replicated_partitions`: partitions led here whose ISR lacks a replica.
//! - `log_stable_lag{topic,partition}`: high watermark minus last stable offset.
//! - `transactions{state}`, `transactions_committed_total`, `transactions_aborted_total`: the
//!   transaction coordinator's ids by state and the transactions it completed.
//!
//! [`Partition`]: crate::partition::Partition

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ::metrics::{
    Counter, Gauge, Histogram, Key, KeyName, Label, Level, Metadata, Recorder, SharedString,
};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use cauce_protocol::kafka::messages::ApiKey;
use metrics_exporter_prometheus::{
    formatting, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use tokio::net::TcpListener;

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

/// Where the series below say they come from (the recorder wants one; nothing filters on it).
static SERIES_METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// The series of one API, registered on its first request.
struct ApiSeries {
    /// `requests_total{api}`.
    requests: Counter,
    /// `request_duration_seconds{api}`: see [`RequestTiming::total`].
    duration: Histogram,
    /// `request_queue_seconds{api}`: see [`RequestTiming::queued`].
    queue: Histogram,
    /// `request_wait_seconds{api}`: see [`RequestTiming::waited`].
    wait: Histogram,
}

impl ApiSeries {
    /// Registers the series of the API in `slot` with `recorder`.
    fn register(recorder: &PrometheusRecorder, slot: usize) -> ApiSeries {
        let api = ApiKey::try_from(slot as i16)
            .map_or_else(|_| slot.to_string(), |key| format!("{key:?}"));
        let key = |name: &'static str| Key::from_parts(name, vec![Label::new("api", api.clone())]);
        ApiSeries {
            requests: recorder.register_counter(&key(REQUESTS_TOTAL), &SERIES_METADATA),
            duration: recorder.register_histogram(&key(REQUEST_DURATION), &SERIES_METADATA),
            queue: recorder.register_histogram(&key(REQUEST_QUEUE), &SERIES_METADATA),
            wait: recorder.register_histogram(&key(REQUEST_WAIT), &SERIES_METADATA),
        }
    }
}

/// Family names of the series the recorder holds.
const REQUESTS_TOTAL: &str = "cauce_requests_total";
const REQUEST_DURATION: &str = "cauce_request_duration_seconds";
const REQUEST_QUEUE: &str = "cauce_request_queue_seconds";
const REQUEST_WAIT: &str = "cauce_request_wait_seconds";
const ACTIVE_CONNECTIONS: &str = "cauce_active_connections";

/// The broker-wide series the request path updates, held by a Prometheus recorder of the
/// broker's own (not the process-global one, so that brokers in one test process stay apart).
pub struct BrokerMetrics {
    /// Stores the series and aggregates histogram samples into buckets when rendering.
    recorder: PrometheusRecorder,
    /// The recorder's read side: renders, and drains histogram samples between scrapes.
    handle: PrometheusHandle,
    /// Indexed by API key; a slot is filled on its API's first request, so unused APIs are not
    /// exported and the request path never looks a series up by name.
    apis: Box<[OnceLock<ApiSeries>]>,
    /// `active_connections`: Kafka connections open now.
    active_connections: Gauge,
}

impl Default for BrokerMetrics {
    fn default() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&LATENCY_BUCKETS_SECONDS)
            .expect("the latency buckets are not empty")
            .build_recorder();
        let descriptions = [
            (REQUESTS_TOTAL, "Requests answered, per API."),
            (
                REQUEST_DURATION,
                "Time from a request being parsed to its response being written, per API.",
            ),
            (
                REQUEST_QUEUE,
                "Time from a request being parsed to its turn to be answered, per API.",
            ),
            (
                REQUEST_WAIT,
                "Time a request's deferred answer (fsync, long poll) was waited for, per API.",
            ),
            (ACTIVE_CONNECTIONS, "Kafka client connections open now."),
        ];
        for (name, help) in descriptions {
            // The recorder keeps one description per family, whatever its kind.
            recorder.describe_gauge(
                KeyName::from_const_str(name),
                None,
                SharedString::const_str(help),
            );
        }
        let active_connections =
            recorder.register_gauge(&Key::from_name(ACTIVE_CONNECTIONS), &SERIES_METADATA);
        BrokerMetrics {
            handle: recorder.handle(),
            recorder,
            apis: (0..API_KEY_SLOTS).map(|_| OnceLock::new()).collect(),
            active_connections,
        }
    }
}

impl BrokerMetrics {
    /// Counts one answered request of `api_key`.
    pub fn record_request(&self, api_key: i16, timing: RequestTiming) {
        let Some((slot, series)) = usize::try_from(api_key)
            .ok()
            .and_then(|slot| Some((slot, self.apis.get(slot)?)))
        else {
            return;
        };
        let api = series.get_or_init(|| ApiSeries::register(&self.recorder, slot));
        api.requests.increment(1);
        api.queue.record(timing.queued.as_secs_f64());
        api.wait.record(timing.waited.as_secs_f64());
        api.duration.record(timing.total.as_secs_f64());
    }

    /// Counts a connection as open until the returned guard drops.
    pub fn connection_opened(&self) -> OpenConnection<'_> {
        self.active_connections.increment(1.0);
        OpenConnection { metrics: self }
    }

    /// Folds the histogram samples recorded since the last call into their buckets. The
    /// recorder keeps samples until then, so this must run now and then even when nothing
    /// scrapes; takes the recorder's lock, so call it off the reactor.
    pub fn fold_samples(&self) {
        self.handle.run_upkeep();
    }
}

/// Keeps a connection counted in `cauce_active_connections`.
pub struct OpenConnection<'a> {
    /// Where the gauge lives.
    metrics: &'a BrokerMetrics,
}

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.metrics.active_connections.decrement(1.0);
    }
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
    /// Records open or unreplicated transactions hold back from `read_committed` readers: the
    /// high watermark minus the last stable offset.
    pub stable_lag: i64,
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

/// The values one scrape reads from partitions, groups and the metadata image. They are
/// rendered straight from this snapshot rather than kept in the recorder, so that a deleted
/// topic or group leaves the output with the scrape after its deletion.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Per topic: (bytes in, records in, bytes out).
    pub topic_traffic: BTreeMap<String, (u64, u64, u64)>,
    /// Per hosted partition.
    pub partitions: Vec<PartitionLogSnapshot>,
    /// Per group and committed partition.
    pub group_lag: Vec<GroupLagSnapshot>,
    /// Partitions led here with fewer in-sync replicas than replicas.
    pub under_replicated_partitions: u64,
    /// Transactional ids this broker coordinates, by the state of their transaction.
    pub transactions: BTreeMap<&'static str, u64>,
    /// Transactions this broker's coordinator completed: (committed, aborted).
    pub transactions_ended: (u64, u64),
}

/// Reads every scrape-time value; takes each partition's log lock briefly, so call it off the
/// reactor.
pub fn collect(broker: &Broker) -> Snapshot {
    let mut snapshot = Snapshot::default();
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
        let high_watermark = partition.high_watermark();
        snapshot.partitions.push(PartitionLogSnapshot {
            topic: partition.topic.clone(),
            partition: partition.index,
            size_bytes,
            segments,
            log_end_offset: partition.log_end_offset(),
            stable_lag: (high_watermark - partition.last_stable_offset()).max(0),
        });
    }
    snapshot.transactions = broker.transactions.count_by_state();
    snapshot.transactions_ended = broker.transactions.ended();
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
                lag: (partition.last_stable_offset() - committed.offset).max(0),
            });
        }
    }
    snapshot
}

/// Renders everything in Prometheus' text exposition format (version 0.0.4): the recorder's
/// series, then the scrape-time families of `snapshot`. Drains the recorder's histogram
/// samples, so call it off the reactor.
pub fn render(metrics: &BrokerMetrics, snapshot: &Snapshot) -> String {
    let mut out = metrics.handle.render();
    render_snapshot(&mut out, snapshot);
    out
}

/// One scrape-time family: its name, type and help, and one (labels, value) per series.
struct Family {
    /// The family's name.
    name: &'static str,
    /// `counter` or `gauge`.
    kind: &'static str,
    /// Its `# HELP` text.
    help: &'static str,
    /// Label pairs already escaped (`topic="orders"`), and the value.
    series: Vec<(Vec<String>, u64)>,
}

/// Writes the scrape-time families with the exporter's own formatting.
fn render_snapshot(out: &mut String, snapshot: &Snapshot) {
    let topic_series = |value_of: fn(&(u64, u64, u64)) -> u64| {
        snapshot
            .topic_traffic
            .iter()
            .map(|(topic, traffic)| (vec![label("topic", topic)], value_of(traffic)))
            .collect()
    };
    let partition_series = |value_of: fn(&PartitionLogSnapshot) -> u64| {
        snapshot
            .partitions
            .iter()
            .map(|log| (partition_labels(log), value_of(log)))
            .collect()
    };
    let families = [
        Family {
            name: "cauce_topic_bytes_in_total",
            kind: "counter",
            help: "Record-batch bytes accepted by Produce.",
            series: topic_series(|traffic| traffic.0),
        },
        Family {
            name: "cauce_topic_records_in_total",
            kind: "counter",
            help: "Records accepted by Produce.",
            series: topic_series(|traffic| traffic.1),
        },
        Family {
            name: "cauce_topic_bytes_out_total",
            kind: "counter",
            help: "Record-batch bytes returned by Fetch.",
            series: topic_series(|traffic| traffic.2),
        },
        Family {
            name: "cauce_log_size_bytes",
            kind: "gauge",
            help: "Bytes in all segments of a partition's log.",
            series: partition_series(|log| log.size_bytes),
        },
        Family {
            name: "cauce_log_segments",
            kind: "gauge",
            help: "Segments of a partition's log, the active one included.",
            series: partition_series(|log| log.segments as u64),
        },
        Family {
            name: "cauce_log_end_offset",
            kind: "gauge",
            help: "Offset the next record appended to a partition will get.",
            series: partition_series(|log| log.log_end_offset.max(0) as u64),
        },
        Family {
            name: "cauce_consumer_group_lag",
            kind: "gauge",
            help: "Last stable offset (where read_committed consumers stop; the high watermark when no transaction is open) minus the group's committed offset.",
            series: snapshot
                .group_lag
                .iter()
                .map(|lag| {
                    let labels = vec![
                        label("group", &lag.group),
                        label("topic", &lag.topic),
                        label("partition", &lag.partition.to_string()),
                    ];
                    (labels, lag.lag.max(0) as u64)
                })
                .collect(),
        },
        Family {
            name: "cauce_log_stable_lag",
            kind: "gauge",
            help: "Records of a partition that open transactions (or transactions whose marker is not yet replicated) hold back from read_committed consumers: high watermark minus last stable offset.",
            series: partition_series(|log| log.stable_lag.max(0) as u64),
        },
        Family {
            name: "cauce_transactions",
            kind: "gauge",
            help: "Transactional ids this broker coordinates, by the state of their transaction.",
            series: snapshot
                .transactions
                .iter()
                .map(|(state, count)| (vec![label("state", state)], *count))
                .collect(),
        },
        Family {
            name: "cauce_transactions_committed_total",
            kind: "counter",
            help: "Transactions this broker's coordinator committed (every marker written).",
            series: vec![(Vec::new(), snapshot.transactions_ended.0)],
        },
        Family {
            name: "cauce_transactions_aborted_total",
            kind: "counter",
            help: "Transactions this broker's coordinator aborted (every marker written), timeouts and fenced producers included.",
            series: vec![(Vec::new(), snapshot.transactions_ended.1)],
        },
        Family {
            name: "cauce_under_replicated_partitions",
            kind: "gauge",
            help: "Partitions with fewer in-sync replicas than replicas.",
            series: vec![(Vec::new(), snapshot.under_replicated_partitions)],
        },
    ];
    for family in families {
        formatting::write_help_line(out, family.name, family.help);
        formatting::write_type_line(out, family.name, family.kind);
        for (labels, value) in &family.series {
            formatting::write_metric_line::<&str, u64>(
                out,
                family.name,
                None,
                labels,
                None,
                *value,
                None,
            );
        }
    }
}

/// A `name="value"` label pair, the value escaped as the text format requires.
fn label(name: &str, value: &str) -> String {
    format!("{name}=\"{}\"", formatting::sanitize_label_value(value))
}

/// The `topic` and `partition` labels of a partition's series.
fn partition_labels(log: &PartitionLogSnapshot) -> Vec<String> {
    vec![
        label("topic", &log.topic),
        label("partition", &log.partition.to_string()),
    ]
}

/// The `/metrics` endpoint: `GET /metrics` answers the rendering `render_metrics` returns
/// (called on a blocking thread); any other method or path is 404. Every answer closes its
/// connection, as a scraper expects nothing more on it.
pub fn router<Render>(render_metrics: Render) -> Router
where
    Render: Fn() -> String + Clone + Send + Sync + 'static,
{
    let metrics = move |method: Method| async move {
        if method != Method::GET {
            return not_found().await;
        }
        match tokio::task::spawn_blocking(render_metrics).await {
            Ok(body) => answer(StatusCode::OK, CONTENT_TYPE, body),
            Err(error) => {
                tracing::error!(%error, "rendering metrics failed");
                answer(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    "rendering metrics failed\n".to_string(),
                )
            }
        }
    };
    Router::new()
        .route("/metrics", any(metrics))
        .fallback(not_found)
}

/// The answer to anything but `GET /metrics`.
async fn not_found() -> Response {
    answer(
        StatusCode::NOT_FOUND,
        "text/plain",
        "not found\n".to_string(),
    )
}

/// A response that closes its connection once written.
fn answer(status: StatusCode, content_type: &'static str, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONNECTION, "close"),
        ],
        body,
    )
        .into_response()
}

/// Serves `GET /metrics` on `listener` until shutdown.
pub async fn serve(broker: Arc<Broker>, listener: TcpListener, shutdown: Shutdown) {
    let render_metrics = move || render(&broker.metrics, &collect(&broker));
    crate::http::serve(listener, router(render_metrics), shutdown).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn sample_metrics() -> BrokerMetrics {
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
        metrics
    }

    fn sample_snapshot() -> Snapshot {
        let mut topic_traffic = BTreeMap::new();
        topic_traffic.insert("orders".to_string(), (1200, 30, 600));
        Snapshot {
            topic_traffic,
            partitions: vec![PartitionLogSnapshot {
                topic: "orders".into(),
                partition: 0,
                size_bytes: 1200,
                segments: 1,
                log_end_offset: 30,
                stable_lag: 4,
            }],
            group_lag: vec![GroupLagSnapshot {
                group: "billing \"eu\"".into(),
                topic: "orders".into(),
                partition: 0,
                lag: 12,
            }],
            under_replicated_partitions: 0,
            transactions: BTreeMap::from([("Ongoing", 2), ("CompleteCommit", 5)]),
            transactions_ended: (5, 1),
        }
    }

    #[test]
    fn text_format_has_typed_families_labels_and_cumulative_buckets() {
        let metrics = sample_metrics();
        let _open = metrics.connection_opened();
        let text = render(&metrics, &sample_snapshot());
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
            "cauce_log_stable_lag{topic=\"orders\",partition=\"0\"} 4",
            "cauce_transactions{state=\"Ongoing\"} 2",
            "cauce_transactions{state=\"CompleteCommit\"} 5",
            "cauce_transactions_committed_total 5",
            "cauce_transactions_aborted_total 1",
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
        // The exporter ends each family with a blank line, which the text format allows.
        for line in text
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
        {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "unparsable sample {line:?}");
        }
    }

    #[test]
    fn a_deleted_topic_leaves_the_next_scrape() {
        let metrics = BrokerMetrics::default();
        let with_topic = render(&metrics, &sample_snapshot());
        assert!(with_topic.contains("topic=\"orders\""));
        let after_deletion = render(&metrics, &Snapshot::default());
        assert!(!after_deletion.contains("orders"), "{after_deletion}");
    }

    #[test]
    fn samples_recorded_between_scrapes_are_counted_once() {
        let metrics = sample_metrics();
        metrics.fold_samples();
        let first = render(&metrics, &Snapshot::default());
        let second = render(&metrics, &Snapshot::default());
        for text in [first, second] {
            assert!(text
                .lines()
                .any(|line| line == "cauce_request_duration_seconds_count{api=\"Produce\"} 3"));
        }
    }

    /// The gauge's value in a rendering.
    fn active_connections(metrics: &BrokerMetrics) -> String {
        let text = render(metrics, &Snapshot::default());
        text.lines()
            .find_map(|line| line.strip_prefix("cauce_active_connections "))
            .unwrap_or_else(|| panic!("no active connections gauge in:\n{text}"))
            .to_string()
    }

    #[test]
    fn closed_connections_leave_the_gauge() {
        let metrics = BrokerMetrics::default();
        let first = metrics.connection_opened();
        let second = metrics.connection_opened();
        drop(first);
        assert_eq!(active_connections(&metrics), "1");
        drop(second);
        assert_eq!(active_connections(&metrics), "0");
    }

    /// Sends `request` to `address` and reads the answer until the server closes.
    async fn http_exchange(address: std::net::SocketAddr, request: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        let read = stream.read_to_string(&mut answer);
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("the server closes the connection after answering")
            .unwrap();
        answer
    }

    #[tokio::test]
    async fn only_get_metrics_is_served() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (trigger, shutdown) = crate::shutdown::channel();
        let server = tokio::spawn(crate::http::serve(
            listener,
            router(|| "cauce_active_connections 0\n".to_string()),
            shutdown,
        ));
        for (request_line, status_line) in [
            ("GET /metrics", "HTTP/1.1 200 OK"),
            ("GET /metrics?name[]=x", "HTTP/1.1 200 OK"),
            ("GET /other", "HTTP/1.1 404 Not Found"),
            ("POST /metrics", "HTTP/1.1 404 Not Found"),
            ("GET /", "HTTP/1.1 404 Not Found"),
        ] {
            let request = format!("{request_line} HTTP/1.1\r\nHost: test\r\n\r\n");
            let answer = http_exchange(address, &request).await;
            assert!(
                answer.starts_with(&format!("{status_line}\r\n")),
                "{request_line}: {answer}"
            );
            let head = answer
                .split("\r\n\r\n")
                .next()
                .unwrap()
                .to_ascii_lowercase();
            assert!(head.contains("connection: close"), "{answer}");
            if status_line.ends_with("200 OK") {
                assert!(
                    head.contains(&format!("content-type: {CONTENT_TYPE}")),
                    "{answer}"
                );
                assert!(answer.ends_with("\r\n\r\ncauce_active_connections 0\n"));
            }
        }
        trigger.trigger();
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the listener stops on shutdown")
            .unwrap();
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
        let text = render(&metrics, &Snapshot::default());
        assert!(!text.contains("api="), "{text}");
    }
}
