//! `cauce perf produce`: producers send fixed-size records; latency is the time from send (or
//! from the schedule's due time, with `--rate`) to the delivery report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use super::{
    ensure_topic, payload, with_progress, Limit, LimitArgs, Meter, PerfSummary, Schedule, Workload,
};
use crate::admin::ConnectionArgs;
use crate::produce::{send_when_queued, Acks, Compression};

/// How long librdkafka retries one record before reporting it undelivered, and how long the
/// final flush may take: bounds a run whose broker went away.
pub(super) const MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(clap::Args)]
pub struct ProduceArgs {
    /// The topic; created if missing.
    #[arg(long)]
    topic: String,
    /// Bytes in each record's value.
    #[arg(long, value_name = "BYTES", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..))]
    record_size: u32,
    #[command(flatten)]
    limit: LimitArgs,
    /// Records per second over all producers; 0 is as fast as possible.
    #[arg(long, value_name = "R", default_value_t = 0)]
    rate: u64,
    /// Partitions of the topic when this command creates it.
    #[arg(long, value_name = "N", default_value_t = 6,
          value_parser = clap::value_parser!(i32).range(1..))]
    partitions: i32,
    /// Acknowledgements to wait for: none, the leader's, or all in-sync replicas'.
    #[arg(long, value_enum, default_value_t = Acks::All)]
    acks: Acks,
    /// How long librdkafka waits to fill a batch (`linger.ms`); fractions of a millisecond work.
    #[arg(long, value_name = "MS", default_value_t = 5.0, value_parser = parse_linger)]
    linger_ms: f64,
    /// Most bytes in one batch (`batch.size`) [default: librdkafka's].
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: Option<u64>,
    /// Compression of the record batches.
    #[arg(long, value_enum, default_value_t = Compression::None)]
    compression: Compression,
    /// Producers, each with its own thread and connection.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    producers: u32,
    /// Give each record a distinct key, so records spread over partitions by key hash.
    #[arg(long)]
    keyed: bool,
}

/// Feeds delivery reports into the meter; the opaque of each record is its send stamp.
struct DeliveryMeter(Arc<Meter>);

impl ClientContext for DeliveryMeter {}

impl ProducerContext for DeliveryMeter {
    /// Nanoseconds after the meter's origin the record was sent (or due).
    type DeliveryOpaque = usize;

    fn delivery(&self, delivery_result: &DeliveryResult<'_>, sent_nanos: usize) {
        match delivery_result {
            Ok(message) => {
                use rdkafka::Message;
                let bytes = message.payload_len() + message.key().map_or(0, <[u8]>::len);
                self.0.claim(None);
                self.0.record_done(bytes, Some(sent_nanos as u64));
            }
            Err((error, _)) => self.0.note_failure(|| delivery_reason(error)),
        }
    }
}

/// Parses `--linger-ms`: librdkafka takes milliseconds as a float, from 0 to 900,000.
pub fn parse_linger(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(ms) if (0.0..=900_000.0).contains(&ms) => Ok(ms),
        _ => Err(format!(
            "'{text}' is not a number of milliseconds from 0 to 900000"
        )),
    }
}

pub fn run(connection_args: &ConnectionArgs, args: ProduceArgs) -> anyhow::Result<PerfSummary> {
    ensure_topic(connection_args, &args.topic, args.partitions)?;
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &connection_args.brokers)
        .set("client.id", "cauce-perf")
        .set("compression.type", args.compression.config_value())
        .set("acks", args.acks.config_value())
        .set("linger.ms", args.linger_ms.to_string())
        .set(
            "message.timeout.ms",
            MESSAGE_TIMEOUT.as_millis().to_string(),
        );
    if let Some(batch_size) = args.batch_size {
        config.set("batch.size", batch_size.to_string());
    }
    let meter = Arc::new(Meter::new());
    let producers = (0..args.producers)
        .map(|_| {
            config
                .create_with_context(DeliveryMeter(Arc::clone(&meter)))
                .with_context(|| format!("cannot use broker list '{}'", connection_args.brokers))
        })
        .collect::<anyhow::Result<Vec<BaseProducer<DeliveryMeter>>>>()?;

    let limit = Limit::starting_now(&args.limit);
    let value = payload(args.record_size as usize);
    let count = producers.len() as u64;
    let outcome = with_progress(&meter, || {
        std::thread::scope(|scope| {
            let workers: Vec<_> = producers
                .iter()
                .enumerate()
                .map(|(index, producer)| {
                    let share = Share::of(index as u64, count, limit.records, args.rate);
                    let (args, value, meter) = (&args, &value, &meter);
                    scope.spawn(move || send(producer, args, value, meter, limit, share))
                })
                .collect();
            workers
                .into_iter()
                .map(|worker| worker.join().expect("producer threads do not panic"))
                .collect::<anyhow::Result<Vec<u64>>>()
        })
    });
    let sent: u64 = outcome?.iter().sum();
    let summary = meter.summary(Workload::Produce, &args.topic);
    if summary.records < sent && !matches!(args.acks, Acks::None) {
        let reason = meter
            .first_failure()
            .unwrap_or_else(|| "no delivery report".to_string());
        bail!(
            "{} of {sent} records were not delivered to topic '{}': {reason}",
            sent - summary.records,
            args.topic
        );
    }
    Ok(summary)
}

/// One producer's part of the run.
#[derive(Clone, Copy)]
struct Share {
    /// Its records, when the run has a record count.
    records: Option<u64>,
    /// Its records per second; 0 is unlimited.
    rate: f64,
}

impl Share {
    /// Producer `index` of `count`: an equal part, the first ones taking the remainder.
    fn of(index: u64, count: u64, records: Option<u64>, rate: u64) -> Share {
        Share {
            records: records.map(|total| total / count + u64::from(index < total % count)),
            rate: rate as f64 / count as f64,
        }
    }
}

/// Sends this producer's share, then waits for its deliveries; returns how many it sent.
fn send(
    producer: &BaseProducer<DeliveryMeter>,
    args: &ProduceArgs,
    value: &[u8],
    meter: &Meter,
    limit: Limit,
    share: Share,
) -> anyhow::Result<u64> {
    let schedule = Schedule::new(Instant::now(), share.rate);
    let mut key = String::new();
    let mut sent = 0u64;
    loop {
        if share.records.is_some_and(|records| sent >= records) {
            break;
        }
        let due = schedule.map(|schedule| schedule.due(sent));
        if limit.past_deadline(due.unwrap_or_else(Instant::now)) {
            break;
        }
        if let Some(due) = due {
            wait_until(producer, due);
        }
        let sent_at = due.unwrap_or_else(Instant::now);
        let mut record: BaseRecord<'_, str, [u8], usize> =
            BaseRecord::with_opaque_to(&args.topic, meter.nanos_since_origin(sent_at) as usize)
                .payload(value);
        if args.keyed {
            key.clear();
            key.push_str(&sent.to_string());
            record = record.key(key.as_str());
        }
        if let Err(error) = send_when_queued(producer, record, Duration::from_millis(10)) {
            bail!("cannot send to topic '{}': {error}", args.topic);
        }
        sent += 1;
        producer.poll(Duration::ZERO);
    }
    producer
        .flush(MESSAGE_TIMEOUT)
        .map_err(|error| anyhow!("waiting for deliveries failed: {}", delivery_reason(&error)))?;
    Ok(sent)
}

/// Serves delivery reports until `due`. librdkafka waits in whole milliseconds, so the last
/// fraction is slept in short steps: polling with no wait would spin a core that the broker
/// under test may need, and a report is then late by at most one step.
pub(super) fn wait_until<C: ProducerContext>(producer: &BaseProducer<C>, due: Instant) {
    loop {
        let now = Instant::now();
        if now >= due {
            return;
        }
        let remaining = due - now;
        if remaining >= Duration::from_millis(1) {
            producer.poll(remaining.min(Duration::from_millis(5)));
        } else {
            producer.poll(Duration::ZERO);
            std::thread::sleep(remaining.min(Duration::from_micros(200)));
        }
    }
}

/// A delivery error in the broker's terms where there is one.
pub(super) fn delivery_reason(error: &KafkaError) -> String {
    match error.rdkafka_error_code() {
        Some(code) => code.to_string(),
        None => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_to_the_whole() {
        let shares: Vec<Share> = (0..3)
            .map(|index| Share::of(index, 3, Some(10), 300))
            .collect();
        let records: Vec<u64> = shares.iter().map(|share| share.records.unwrap()).collect();
        assert_eq!(records, [4, 3, 3]);
        assert!(shares.iter().all(|share| share.rate == 100.0));
        assert_eq!(Share::of(0, 1, None, 0).records, None);
    }
}
