//! `cauce perf ...`: load generators that measure throughput and latency through librdkafka.
//!
//! # Layout
//!
//! - this file: the subcommands, what the workloads share (the stop condition, the rate
//!   schedule, the meter, the live progress line, the report) and topic creation.
//! - [`produce`]: `cauce perf produce`, latency from send (or intended send) to delivery report.
//! - [`consume`]: `cauce perf consume`, a group of consumers reading from the beginning.
//! - [`end_to_end`]: `cauce perf end-to-end`, latency from send to receipt in one process.
//!
//! When a `--rate` is set, latencies are measured from the time the schedule meant a record to
//! be sent, not from when it was sent: a stall then shows in every record it delayed instead of
//! only in the one that was stuck (coordinated omission).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use hdrhistogram::Histogram;
use serde::Serialize;

use cauce_client::admin::NewTopic;
use cauce_client::kafka_protocol::error::ResponseError;

use crate::admin::{find_topic, Connection, ConnectionArgs, REQUEST_TIMEOUT};
use crate::output::{self, Report, Table};

mod consume;
mod end_to_end;
mod produce;

/// How long a run lasts when neither `--records` nor `--duration` says.
const DEFAULT_DURATION: Duration = Duration::from_secs(10);

/// Bytes in the MB of the MB/s figures, as Kafka's own perf tools count them.
const MEGABYTE: f64 = 1024.0 * 1024.0;

#[derive(clap::Subcommand)]
pub enum PerfCommand {
    /// Send records as fast as allowed; latency is send to delivery report.
    Produce(produce::ProduceArgs),
    /// Read a topic from the beginning with a group of consumers.
    Consume(consume::ConsumeArgs),
    /// Send and receive in one process; latency is send to receipt.
    EndToEnd(end_to_end::EndToEndArgs),
}

pub fn run(connection_args: &ConnectionArgs, command: PerfCommand) -> anyhow::Result<()> {
    let summary = match command {
        PerfCommand::Produce(args) => produce::run(connection_args, args)?,
        PerfCommand::Consume(args) => consume::run(connection_args, args)?,
        PerfCommand::EndToEnd(args) => end_to_end::run(connection_args, args)?,
    };
    output::print(&summary, connection_args.json)
}

/// When a run stops: `--records` or `--duration`, never both.
#[derive(clap::Args)]
struct LimitArgs {
    /// Stop after this many records.
    #[arg(long, value_name = "N", conflicts_with = "duration",
          value_parser = clap::value_parser!(u64).range(1..))]
    records: Option<u64>,
    /// Stop after this many seconds [default: 10, unless --records is given].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    duration: Option<u64>,
    /// Give up after this many seconds without receiving a record (consume, end-to-end).
    #[arg(long, value_name = "SECS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..))]
    idle_timeout: u64,
}

/// The stop condition of one run, fixed when it starts.
#[derive(Clone, Copy)]
struct Limit {
    /// Records to send or read, in total.
    records: Option<u64>,
    /// When to stop sending or reading.
    deadline: Option<Instant>,
    /// How long to wait for a record before giving up.
    idle_timeout: Duration,
}

impl Limit {
    fn starting_now(args: &LimitArgs) -> Limit {
        let duration = match (args.records, args.duration) {
            (Some(_), _) => None,
            (None, Some(seconds)) => Some(Duration::from_secs(seconds)),
            (None, None) => Some(DEFAULT_DURATION),
        };
        Limit {
            records: args.records,
            deadline: duration.map(|duration| Instant::now() + duration),
            idle_timeout: Duration::from_secs(args.idle_timeout),
        }
    }

    fn past_deadline(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|deadline| now >= deadline)
    }
}

/// When each record of a rate-limited sender is due: record `i` at `start + i / rate`.
#[derive(Clone, Copy)]
struct Schedule {
    /// When record 0 is due.
    start: Instant,
    /// Records per second, above zero.
    rate: f64,
}

impl Schedule {
    /// A schedule for `rate` records per second, none for 0 (unlimited).
    fn new(start: Instant, rate: f64) -> Option<Schedule> {
        (rate > 0.0).then_some(Schedule { start, rate })
    }

    fn due(&self, index: u64) -> Instant {
        self.start + Duration::from_secs_f64(index as f64 / self.rate)
    }
}

/// Counters and latencies that every thread of a run adds to.
struct Meter {
    /// When the run started: the origin of send stamps and the start of the rate figures.
    origin: Instant,
    /// Records done (delivered or received).
    records: AtomicU64,
    /// Their key and value bytes.
    bytes: AtomicU64,
    /// Latencies in microseconds.
    latencies: Mutex<Histogram<u64>>,
    /// Nanoseconds after `origin` of the first record done, where consume's figures start.
    first_record_nanos: AtomicU64,
    /// Nanoseconds after `origin` of the last record done, where the rate figures end.
    last_record_nanos: AtomicU64,
    /// The first failure any thread saw, for the error line.
    first_failure: Mutex<Option<String>>,
}

impl Meter {
    fn new() -> Meter {
        // One microsecond to one hour at three significant digits: a few hundred KiB.
        let latencies = Histogram::new_with_bounds(1, 3_600_000_000, 3)
            .expect("the histogram bounds are valid");
        Meter {
            origin: Instant::now(),
            records: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            latencies: Mutex::new(latencies),
            first_record_nanos: AtomicU64::new(u64::MAX),
            last_record_nanos: AtomicU64::new(0),
            first_failure: Mutex::new(None),
        }
    }

    /// Nanoseconds from the origin to `instant`, for send stamps.
    fn nanos_since_origin(&self, instant: Instant) -> u64 {
        instant.saturating_duration_since(self.origin).as_nanos() as u64
    }

    /// Adds one record of `bytes` done now, sent at `sent_nanos` after the origin if known; the
    /// caller counted it with [`Meter::claim`] first. Returns now, in nanoseconds after the
    /// origin.
    fn record_done(&self, bytes: usize, sent_nanos: Option<u64>) -> u64 {
        let now = self.nanos_since_origin(Instant::now());
        if let Some(sent_nanos) = sent_nanos {
            let micros = now.saturating_sub(sent_nanos) / 1_000;
            self.latencies
                .lock()
                .expect("no panics while locked")
                .saturating_record(micros.max(1));
        }
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.first_record_nanos.fetch_min(now, Ordering::Relaxed);
        self.last_record_nanos.fetch_max(now, Ordering::Relaxed);
        now
    }

    /// Claims one record under `limit`: false once `limit` records were claimed.
    fn claim(&self, limit: Option<u64>) -> bool {
        self.records
            .fetch_update(
                Ordering::Relaxed,
                Ordering::Relaxed,
                |records| match limit {
                    Some(limit) if records >= limit => None,
                    _ => Some(records + 1),
                },
            )
            .is_ok()
    }

    fn note_failure(&self, reason: impl FnOnce() -> String) {
        let mut first = self.first_failure.lock().expect("no panics while locked");
        if first.is_none() {
            *first = Some(reason());
        }
    }

    fn first_failure(&self) -> Option<String> {
        self.first_failure
            .lock()
            .expect("no panics while locked")
            .clone()
    }

    /// The report of a finished run. Consume has no send times, so no latencies, and its
    /// figures start at the first record, leaving out the time the group took to form.
    fn summary(&self, workload: Workload, topic: &str) -> PerfSummary {
        let records = self.records.load(Ordering::Relaxed);
        let bytes = self.bytes.load(Ordering::Relaxed);
        let last = self.last_record_nanos.load(Ordering::Relaxed);
        let first = match workload {
            Workload::Consume => self.first_record_nanos.load(Ordering::Relaxed).min(last),
            Workload::Produce | Workload::EndToEnd => 0,
        };
        let seconds = Duration::from_nanos(last - first).as_secs_f64().max(1e-6);
        let with_latency = !matches!(workload, Workload::Consume);
        let latency_ms = with_latency.then(|| {
            let histogram = self.latencies.lock().expect("no panics while locked");
            let millis = |micros: u64| micros as f64 / 1_000.0;
            Latency {
                p50: millis(histogram.value_at_quantile(0.5)),
                p99: millis(histogram.value_at_quantile(0.99)),
                p99_9: millis(histogram.value_at_quantile(0.999)),
                max: millis(histogram.max()),
            }
        });
        PerfSummary {
            workload,
            topic: topic.to_string(),
            records,
            bytes,
            seconds: round3(seconds),
            records_per_second: round3(records as f64 / seconds),
            megabytes_per_second: round3(bytes as f64 / MEGABYTE / seconds),
            latency_ms,
        }
    }
}

fn round3(value: f64) -> f64 {
    (value * 1_000.0).round() / 1_000.0
}

/// Which command ran.
#[derive(Clone, Copy, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Workload {
    Produce,
    Consume,
    EndToEnd,
}

/// What a run measured, for `--json` or a table on stdout.
#[derive(Serialize)]
struct PerfSummary {
    /// `produce`, `consume` or `end-to-end`.
    workload: Workload,
    /// The topic used.
    topic: String,
    /// Records delivered (produce) or received (consume, end-to-end).
    records: u64,
    /// Their key and value bytes.
    bytes: u64,
    /// From the start of the run (consume: the first record) to the last record.
    seconds: f64,
    records_per_second: f64,
    /// MB of 1024 × 1024 bytes.
    megabytes_per_second: f64,
    /// Absent for consume, which has no send time to measure from.
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_ms: Option<Latency>,
}

/// Latency percentiles in milliseconds.
#[derive(Serialize)]
struct Latency {
    p50: f64,
    p99: f64,
    p99_9: f64,
    max: f64,
}

impl Report for PerfSummary {
    fn human(&self) -> String {
        let mut headers = vec!["RECORDS", "SECONDS", "RECORDS/S", "MB/S"];
        let mut row = vec![
            self.records.to_string(),
            format!("{:.3}", self.seconds),
            format!("{:.1}", self.records_per_second),
            format!("{:.3}", self.megabytes_per_second),
        ];
        if let Some(latency) = &self.latency_ms {
            headers.extend(["P50 MS", "P99 MS", "P99.9 MS", "MAX MS"]);
            for value in [latency.p50, latency.p99, latency.p99_9, latency.max] {
                row.push(format!("{value:.3}"));
            }
        }
        let mut table = Table::new(&headers);
        table.push(row);
        table.render()
    }
}

/// Rewrites one line on stderr every second with the current rate until `done`; prints nothing
/// when stderr is not a terminal, so scripts see only the report or the one error line.
fn show_progress(meter: &Meter, done: &AtomicBool) {
    let mut stderr = std::io::stderr();
    if !stderr.is_terminal() {
        return;
    }
    let mut last_time = Instant::now();
    let mut last_records = 0;
    let mut last_bytes = 0;
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        let now = Instant::now();
        let seconds = now.duration_since(last_time).as_secs_f64();
        if seconds < 1.0 {
            continue;
        }
        let records = meter.records.load(Ordering::Relaxed);
        let bytes = meter.bytes.load(Ordering::Relaxed);
        let _ = write!(
            stderr,
            "\r{records} records, {:.1} records/s, {:.3} MB/s   ",
            (records - last_records) as f64 / seconds,
            (bytes - last_bytes) as f64 / MEGABYTE / seconds,
        );
        let _ = stderr.flush();
        (last_time, last_records, last_bytes) = (now, records, bytes);
    }
    let _ = write!(stderr, "\r\x1b[2K");
}

/// Runs `work` beside the progress line, which stops when `work` returns.
fn with_progress<T>(meter: &Meter, work: impl FnOnce() -> T) -> T {
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| show_progress(meter, &done));
        let result = work();
        done.store(true, Ordering::Relaxed);
        result
    })
}

/// The partitions of `topic`, which is created with `partitions` partitions if missing.
fn ensure_topic(
    connection_args: &ConnectionArgs,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<Vec<i32>> {
    let connection = Connection::open(connection_args)?;
    let exists = find_topic(&connection.metadata()?, topic).is_ok();
    if exists {
        return crate::produce::topic_partitions(&connection, topic);
    }
    let new_topic = NewTopic {
        name: topic,
        partitions,
        replication_factor: -1,
        configs: &[],
    };
    let created = connection.block_on(connection.client().create_topic(&new_topic));
    if let Err(error) = created {
        let already = error.code() == Some(ResponseError::TopicAlreadyExists.code());
        if !already {
            return Err(connection.topic_failed("CreateTopics", topic, error));
        }
    }
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    loop {
        match crate::produce::topic_partitions(&connection, topic) {
            Ok(found) if !found.is_empty() => return Ok(found),
            Ok(_) | Err(_) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok(_) => return Err(anyhow!("topic '{topic}' has no partitions")),
            Err(error) => return Err(error),
        }
    }
}

/// A value of `size` bytes of upper-case letters, which compress about as well as real text.
fn payload(size: usize) -> Vec<u8> {
    let mut state: u32 = 0x9e37_79b9;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            b'A' + (state % 26) as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_spaces_records_evenly_and_zero_means_unlimited() {
        let start = Instant::now();
        let schedule = Schedule::new(start, 1_000.0).expect("a rate");
        assert_eq!(schedule.due(0), start);
        assert_eq!(schedule.due(500), start + Duration::from_millis(500));
        assert!(Schedule::new(start, 0.0).is_none());
    }

    #[test]
    fn claims_stop_at_the_limit() {
        let meter = Meter::new();
        assert!(meter.claim(Some(2)));
        assert!(meter.claim(Some(2)));
        assert!(!meter.claim(Some(2)));
        assert!(meter.claim(None));
    }

    #[test]
    fn percentiles_are_ordered_and_in_milliseconds() {
        let meter = Meter::new();
        for micros in [1_000, 2_000, 3_000, 50_000] {
            meter.latencies.lock().unwrap().saturating_record(micros);
        }
        meter.records.store(4, Ordering::Relaxed);
        let summary = meter.summary(Workload::Produce, "t");
        let latency = summary.latency_ms.expect("latencies");
        assert!(latency.p50 >= 1.0 && latency.p50 <= 3.0, "{}", latency.p50);
        assert!(latency.p50 <= latency.p99 && latency.p99 <= latency.max);
        assert!((latency.max - 50.0).abs() < 0.1, "{}", latency.max);
        assert_eq!(payload(5).len(), 5);
    }
}
