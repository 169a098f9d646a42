//! `cauce perf end-to-end`: a producer thread stamps each value with its send time and
//! consumers in the same process (one thread each, the partitions dealt out among them) measure
//! how long each record took to come back.
//!
//! The stamp is the first 8 bytes of the value, big-endian nanoseconds after an `Instant` both
//! sides share, so clock adjustments do not skew it. The consumer starts at the end of every
//! partition before the first send, so it sees exactly this run's records.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

use super::produce::{delivery_reason, wait_until, MESSAGE_TIMEOUT};
use super::{
    ensure_topic, payload, with_progress, Limit, LimitArgs, Meter, PerfSummary, Schedule, Workload,
};
use crate::admin::{ConnectionArgs, REQUEST_TIMEOUT};
use crate::produce::send_when_queued;

/// Bytes of the send stamp at the start of every value.
const STAMP_BYTES: usize = 8;

#[derive(clap::Args)]
pub struct EndToEndArgs {
    /// The topic; created if missing.
    #[arg(long)]
    topic: String,
    /// Bytes in each record's value, the 8-byte send stamp included.
    #[arg(long, value_name = "BYTES", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(STAMP_BYTES as i64..))]
    record_size: u32,
    #[command(flatten)]
    limit: LimitArgs,
    /// Records per second; 0 is as fast as possible.
    #[arg(long, value_name = "R", default_value_t = 0)]
    rate: u64,
    /// Partitions of the topic when this command creates it.
    #[arg(long, value_name = "N", default_value_t = 6,
          value_parser = clap::value_parser!(i32).range(1..))]
    partitions: i32,
    /// How long librdkafka waits to fill a batch (`linger.ms`); 0 sends each record at once,
    /// fractions of a millisecond work.
    #[arg(long, value_name = "MS", default_value_t = 0.0, value_parser = super::produce::parse_linger)]
    linger_ms: f64,
    /// Consumers, each with its own thread and connection and a share of the partitions.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    consumers: u32,
}

/// Counts records that failed for good; the consumer stops waiting for them.
struct FailureTally {
    /// Records librdkafka gave up on.
    failed: AtomicU64,
    /// Where the first failure's reason goes.
    meter: Arc<Meter>,
}

impl ClientContext for FailureTally {}

impl ProducerContext for FailureTally {
    type DeliveryOpaque = ();

    fn delivery(&self, delivery_result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, _)) = delivery_result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            self.meter.note_failure(|| delivery_reason(error));
        }
    }
}

pub fn run(connection_args: &ConnectionArgs, args: EndToEndArgs) -> anyhow::Result<PerfSummary> {
    let partitions = ensure_topic(connection_args, &args.topic, args.partitions)?;
    let broker_list = || format!("cannot use broker list '{}'", connection_args.brokers);
    let consumers = (0..args.consumers.min(partitions.len() as u32) as usize)
        .map(|index| {
            let share: Vec<i32> = partitions
                .iter()
                .skip(index)
                .step_by(args.consumers as usize)
                .copied()
                .collect();
            consumer_at_end(connection_args, &args.topic, &share)
        })
        .collect::<anyhow::Result<Vec<BaseConsumer>>>()?;

    let meter = Arc::new(Meter::new());
    let producer: BaseProducer<FailureTally> = ClientConfig::new()
        .set("bootstrap.servers", &connection_args.brokers)
        .set("client.id", "cauce-perf")
        .set("acks", "all")
        .set("linger.ms", args.linger_ms.to_string())
        .set(
            "message.timeout.ms",
            MESSAGE_TIMEOUT.as_millis().to_string(),
        )
        .create_with_context(FailureTally {
            failed: AtomicU64::new(0),
            meter: Arc::clone(&meter),
        })
        .with_context(broker_list)?;

    let limit = Limit::starting_now(&args.limit);
    let sent = AtomicU64::new(0);
    let producer_done = AtomicBool::new(false);
    // Set with `producer_done` when sending failed: the consumer then stops at once.
    let sender_failed = AtomicBool::new(false);
    // When any consumer last received a record, for the idle timeout.
    let last_record = AtomicU64::new(meter.nanos_since_origin(Instant::now()));
    let outcome = with_progress(&meter, || {
        std::thread::scope(|scope| {
            let sender = scope.spawn(|| {
                let outcome = send(&producer, &args, &meter, limit, &sent);
                sender_failed.store(outcome.is_err(), Ordering::Relaxed);
                producer_done.store(true, Ordering::Release);
                outcome
            });
            let receivers: Vec<_> = consumers
                .iter()
                .map(|consumer| {
                    let receiving = Receiving {
                        producer: &producer,
                        meter: &meter,
                        sent: &sent,
                        last_record: &last_record,
                        idle_timeout: limit.idle_timeout,
                        producer_done: &producer_done,
                        sender_failed: &sender_failed,
                    };
                    scope.spawn(move || receiving.receive(consumer))
                })
                .collect();
            let received = receivers.into_iter().try_for_each(|receiver| {
                receiver.join().expect("a consumer thread does not panic")
            });
            let sent = sender.join().expect("the producer thread does not panic");
            sent.and(received)
        })
    });
    outcome?;
    Ok(meter.summary(Workload::EndToEnd, &args.topic))
}

/// Sends stamped records until the limit; the count so far is in `sent`.
fn send(
    producer: &BaseProducer<FailureTally>,
    args: &EndToEndArgs,
    meter: &Meter,
    limit: Limit,
    sent: &AtomicU64,
) -> anyhow::Result<()> {
    let schedule = Schedule::new(Instant::now(), args.rate as f64);
    let mut value = payload(args.record_size as usize);
    let mut index = 0u64;
    loop {
        if limit.records.is_some_and(|records| index >= records) {
            break;
        }
        let due = schedule.map(|schedule| schedule.due(index));
        if limit.past_deadline(due.unwrap_or_else(Instant::now)) {
            break;
        }
        if let Some(due) = due {
            wait_until(producer, due);
        }
        // With a schedule the stamp is the due time, so a stall counts against every record
        // it held back.
        let stamp = meter.nanos_since_origin(due.unwrap_or_else(Instant::now));
        value[..STAMP_BYTES].copy_from_slice(&stamp.to_be_bytes());
        let record: BaseRecord<'_, (), [u8]> = BaseRecord::to(&args.topic).payload(&value);
        if let Err(error) = send_when_queued(producer, record, Duration::from_millis(10)) {
            bail!("cannot send to topic '{}': {error}", args.topic);
        }
        index += 1;
        sent.store(index, Ordering::Release);
        producer.poll(Duration::ZERO);
    }
    producer
        .flush(MESSAGE_TIMEOUT)
        .map_err(|error| anyhow!("waiting for deliveries failed: {}", delivery_reason(&error)))
}

/// A consumer for `partitions` of `topic`, each assigned at its current end so that it sees
/// exactly this run's records.
fn consumer_at_end(
    connection_args: &ConnectionArgs,
    topic: &str,
    partitions: &[i32],
) -> anyhow::Result<BaseConsumer> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &connection_args.brokers)
        .set("client.id", "cauce-perf")
        // librdkafka wants a group id even for a consumer that only assigns; it is never used.
        .set("group.id", "cauce-perf-end-to-end")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100")
        .create()
        .with_context(|| format!("cannot use broker list '{}'", connection_args.brokers))?;
    let mut assignment = TopicPartitionList::new();
    for &partition in partitions {
        let (_, high) = consumer
            .fetch_watermarks(topic, partition, REQUEST_TIMEOUT)
            .map_err(|error| anyhow!("reading the end of topic '{topic}' failed: {error}"))?;
        assignment.add_partition_offset(topic, partition, Offset::Offset(high))?;
    }
    consumer
        .assign(&assignment)
        .map_err(|error| anyhow!("assigning topic '{topic}' failed: {error}"))?;
    Ok(consumer)
}

/// What the consumer threads share.
#[derive(Clone, Copy)]
struct Receiving<'a> {
    producer: &'a BaseProducer<FailureTally>,
    meter: &'a Meter,
    /// Records sent so far.
    sent: &'a AtomicU64,
    /// Nanoseconds after the meter's origin when any consumer last received a record.
    last_record: &'a AtomicU64,
    idle_timeout: Duration,
    producer_done: &'a AtomicBool,
    /// Set with `producer_done` when sending failed.
    sender_failed: &'a AtomicBool,
}

impl Receiving<'_> {
    /// Receives until every delivered record came back (to any of the consumers), measuring
    /// each one's latency.
    fn receive(self, consumer: &BaseConsumer) -> anyhow::Result<()> {
        let meter = self.meter;
        let failed = &self.producer.context().failed;
        loop {
            let done = self.producer_done.load(Ordering::Acquire);
            if done && self.sender_failed.load(Ordering::Relaxed) {
                // The sender's error is the one reported.
                return Ok(());
            }
            let expected = self.sent.load(Ordering::Acquire) - failed.load(Ordering::Relaxed);
            if done && meter.records.load(Ordering::Relaxed) >= expected {
                break;
            }
            let idle = meter
                .nanos_since_origin(Instant::now())
                .saturating_sub(self.last_record.load(Ordering::Relaxed));
            if Duration::from_nanos(idle) >= self.idle_timeout {
                let reason = meter
                    .first_failure()
                    .map_or(String::new(), |reason| format!(" (last error: {reason})"));
                bail!(
                    "only {} of {} records came back within {} s{reason}",
                    meter.records.load(Ordering::Relaxed),
                    self.sent.load(Ordering::Relaxed),
                    self.idle_timeout.as_secs()
                );
            }
            match consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Ok(message)) => {
                    let value = message.payload().unwrap_or_default();
                    let Some(stamp) = value.get(..STAMP_BYTES) else {
                        continue;
                    };
                    let stamp = u64::from_be_bytes(stamp.try_into().expect("8 bytes"));
                    meter.claim(None);
                    let now = meter.record_done(value.len(), Some(stamp));
                    self.last_record.fetch_max(now, Ordering::Relaxed);
                }
                Some(Err(error)) => meter.note_failure(|| error.to_string()),
            }
        }
        if let Some(reason) = meter.first_failure() {
            if failed.load(Ordering::Relaxed) > 0 {
                bail!("records were not delivered: {reason}");
            }
        }
        Ok(())
    }
}
