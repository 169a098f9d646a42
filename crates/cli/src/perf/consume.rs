//! `cauce perf consume`: consumers of one group read a topic from the beginning and count its
//! records and bytes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::Message;

use super::{with_progress, Limit, LimitArgs, Meter, PerfSummary, Workload};
use crate::admin::{Connection, ConnectionArgs};

#[derive(clap::Args)]
pub struct ConsumeArgs {
    /// The topic; it must exist.
    #[arg(long)]
    topic: String,
    #[command(flatten)]
    limit: LimitArgs,
    /// Consumers in the group, each with its own thread and connection.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    consumers: u32,
    /// The consumer group [default: a new one per run, so every run reads from the beginning].
    #[arg(long, value_name = "GROUP")]
    group: Option<String>,
}

pub fn run(connection_args: &ConnectionArgs, args: ConsumeArgs) -> anyhow::Result<PerfSummary> {
    crate::produce::topic_partitions(&Connection::open(connection_args)?, &args.topic)?;
    let group = args.group.clone().unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos());
        format!("cauce-perf-{}-{nanos}", std::process::id())
    });
    let consumers = (0..args.consumers)
        .map(|_| {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &connection_args.brokers)
                .set("client.id", "cauce-perf")
                .set("group.id", &group)
                .set("auto.offset.reset", "earliest")
                .set("enable.auto.commit", "false")
                .create()
                .with_context(|| format!("cannot use broker list '{}'", connection_args.brokers))?;
            consumer
                .subscribe(&[&args.topic])
                .with_context(|| format!("cannot subscribe to topic '{}'", args.topic))?;
            Ok(consumer)
        })
        .collect::<anyhow::Result<Vec<BaseConsumer>>>()?;

    let meter = Meter::new();
    let limit = Limit::starting_now(&args.limit);
    let stop = AtomicBool::new(false);
    with_progress(&meter, || {
        std::thread::scope(|scope| {
            for consumer in &consumers {
                let (meter, stop) = (&meter, &stop);
                scope.spawn(move || read(consumer, meter, limit, stop));
            }
        })
    });
    for consumer in &consumers {
        consumer.unsubscribe();
    }
    let summary = meter.summary(Workload::Consume, &args.topic);
    if let Some(wanted) = limit.records {
        if summary.records < wanted {
            let reason = meter
                .first_failure()
                .map_or(String::new(), |reason| format!(" (last error: {reason})"));
            bail!(
                "only {} of {wanted} records arrived from topic '{}' before {} s without any{reason}",
                summary.records,
                args.topic,
                limit.idle_timeout.as_secs()
            );
        }
    }
    Ok(summary)
}

/// Polls until the run's limit, its deadline, or a quiet spell of the idle timeout when waiting
/// for a record count; any thread that stops stops the others.
fn read(consumer: &BaseConsumer, meter: &Meter, limit: Limit, stop: &AtomicBool) {
    let mut last_record = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let idle = now.duration_since(last_record) >= limit.idle_timeout;
        if limit.past_deadline(now) || (limit.records.is_some() && idle) {
            break;
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(message)) => {
                if !meter.claim(limit.records) {
                    break;
                }
                last_record = Instant::now();
                let bytes = message.payload_len() + message.key().map_or(0, <[u8]>::len);
                meter.record_done(bytes, None);
                if limit
                    .records
                    .is_some_and(|records| meter.records.load(Ordering::Relaxed) >= records)
                {
                    break;
                }
            }
            Some(Err(error)) => meter.note_failure(|| error.to_string()),
        }
    }
    stop.store(true, Ordering::Relaxed);
}
