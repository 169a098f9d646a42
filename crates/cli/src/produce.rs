//! `cauce produce TOPIC`: one record per input line, every delivery awaited.
//!
//! The command checks the topic exists before sending anything, so a typo fails at once instead
//! of after librdkafka's message timeout, and exits 1 if any record was not delivered.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::ToBytes;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use rdkafka::ClientContext;
use serde::Serialize;

use crate::admin::{find_topic, parse_key_value, partition_ids, Connection, ConnectionArgs};
use crate::output::{self, Report};

/// How long librdkafka keeps retrying one record before reporting it undelivered: bounds how
/// long the command can wait for a broker that went away mid-run.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(clap::Args)]
pub struct ProduceArgs {
    /// The topic.
    topic: String,
    /// Split each line at the first SEP into key and value [default: the whole line is the
    /// value, with no key].
    #[arg(long, value_name = "SEP", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    key_separator: Option<String>,
    /// A header added to every record; repeat for several.
    #[arg(long = "header", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    headers: Vec<(String, String)>,
    /// Send every record to this partition [default: by key hash, or spread when keyless].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(0..))]
    partition: Option<i32>,
    /// Compression of the record batches.
    #[arg(long, value_enum, default_value_t = Compression::None)]
    compression: Compression,
    /// Acknowledgements to wait for: none, the leader's, or all in-sync replicas'.
    #[arg(long, value_enum, default_value_t = Acks::All)]
    acks: Acks,
    /// Read lines from this file instead of stdin.
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
}

/// A batch codec, as the command line names it.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// The value of librdkafka's `compression.type`.
    pub(crate) fn config_value(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// How many acknowledgements a produce waits for.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum Acks {
    #[value(name = "0")]
    None,
    #[value(name = "1")]
    Leader,
    #[value(name = "all")]
    All,
}

impl Acks {
    /// The value of librdkafka's `acks`.
    pub(crate) fn config_value(self) -> &'static str {
        match self {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        }
    }
}

/// What the command did, for `--json` (on stdout) or a person (on stderr).
#[derive(Serialize)]
struct ProduceSummary {
    /// The topic written to.
    topic: String,
    /// Records the broker acknowledged (all sent ones with `--acks 0`).
    records: u64,
}

impl Report for ProduceSummary {
    fn human(&self) -> String {
        let noun = if self.records == 1 {
            "record"
        } else {
            "records"
        };
        format!("produced {} {noun}\n", self.records)
    }
}

/// Counts delivery reports, which librdkafka hands to this context from `poll` and `flush`.
struct DeliveryTally {
    /// Records acknowledged so far.
    delivered: AtomicU64,
    /// Records that failed for good.
    failed: AtomicU64,
    /// The reason of the first failure, for the error line.
    first_failure: Mutex<Option<KafkaError>>,
}

impl ClientContext for DeliveryTally {}

impl ProducerContext for DeliveryTally {
    type DeliveryOpaque = ();

    fn delivery(&self, delivery_result: &DeliveryResult<'_>, _: ()) {
        match delivery_result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_failure.lock().expect("no panics while locked");
                first.get_or_insert_with(|| error.clone());
            }
        }
    }
}

pub fn run(connection_args: &ConnectionArgs, args: ProduceArgs) -> anyhow::Result<()> {
    let partitions = topic_partitions(&Connection::open(connection_args)?, &args.topic)?;
    if let Some(partition) = args.partition {
        if !partitions.contains(&partition) {
            bail!(
                "topic '{}' has no partition {partition} (it has {})",
                args.topic,
                partitions.len()
            );
        }
    }
    let input: Box<dyn BufRead> = match &args.file {
        Some(path) => Box::new(BufReader::new(
            File::open(path).with_context(|| format!("cannot read '{}'", path.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };

    let tally = DeliveryTally {
        delivered: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        first_failure: Mutex::new(None),
    };
    let producer: BaseProducer<DeliveryTally> = ClientConfig::new()
        .set("bootstrap.servers", &connection_args.brokers)
        .set("client.id", "cauce-cli")
        .set("compression.type", args.compression.config_value())
        .set("acks", args.acks.config_value())
        .set(
            "message.timeout.ms",
            MESSAGE_TIMEOUT.as_millis().to_string(),
        )
        .create_with_context(tally)
        .with_context(|| format!("cannot use broker list '{}'", connection_args.brokers))?;

    let sent = send_lines(&producer, &args, input)?;
    producer
        .flush(Timeout::Never)
        .map_err(|error| anyhow!("waiting for deliveries failed: {error}"))?;
    let tally = producer.context();
    let failed = tally.failed.load(Ordering::Relaxed);
    if failed > 0 {
        let reason = tally
            .first_failure
            .lock()
            .expect("no panics while locked")
            .as_ref()
            .map_or_else(|| "unknown error".to_string(), delivery_reason);
        bail!(
            "{failed} of {sent} records were not delivered to topic '{}': {reason}",
            args.topic
        );
    }
    let summary = ProduceSummary {
        topic: args.topic.clone(),
        records: tally.delivered.load(Ordering::Relaxed),
    };
    if connection_args.json {
        output::print(&summary, true)
    } else {
        eprint!("{}", summary.human());
        Ok(())
    }
}

/// Hands every line to librdkafka, waiting for room when its queue is full; returns how many.
fn send_lines(
    producer: &BaseProducer<DeliveryTally>,
    args: &ProduceArgs,
    mut input: Box<dyn BufRead>,
) -> anyhow::Result<u64> {
    let mut headers = OwnedHeaders::new_with_capacity(args.headers.len());
    for (key, value) in &args.headers {
        headers = headers.insert(Header {
            key,
            value: Some(value),
        });
    }
    let mut line = Vec::new();
    let mut sent = 0u64;
    loop {
        line.clear();
        let read = input
            .read_until(b'\n', &mut line)
            .context("reading input failed")?;
        if read == 0 {
            return Ok(sent);
        }
        let content = strip_line_end(&line);
        let (key, value) = match &args.key_separator {
            None => (None, content),
            Some(separator) => match split_once(content, separator.as_bytes()) {
                Some((key, value)) => (Some(key), value),
                None => bail!("line {} has no key separator '{separator}'", sent + 1),
            },
        };
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&args.topic)
            .payload(value)
            .headers(headers.clone());
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(partition) = args.partition {
            record = record.partition(partition);
        }
        if let Err(error) = send_when_queued(producer, record, Duration::from_millis(100)) {
            bail!("cannot send line {}: {error}", sent + 1);
        }
        sent += 1;
        // Serves delivery reports as they come, so they do not pile up.
        producer.poll(Duration::ZERO);
    }
}

/// A line without its `\n` or `\r\n`.
fn strip_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn split_once<'l>(line: &'l [u8], separator: &[u8]) -> Option<(&'l [u8], &'l [u8])> {
    let at = line
        .windows(separator.len())
        .position(|window| window == separator)?;
    Some((&line[..at], &line[at + separator.len()..]))
}

/// A delivery error in the broker's terms where there is one.
fn delivery_reason(error: &KafkaError) -> String {
    match error.rdkafka_error_code() {
        Some(code) => code.to_string(),
        None => error.to_string(),
    }
}

/// The partition ids of an existing topic, from the metadata of all topics (asking for one topic
/// could make a broker auto-create it). Shared with `cauce consume`.
pub fn topic_partitions(connection: &Connection, topic: &str) -> anyhow::Result<Vec<i32>> {
    let metadata = connection.metadata()?;
    Ok(partition_ids(find_topic(&metadata, topic)?))
}

/// Hands `record` to librdkafka; while its queue is full, serves delivery reports for `pause`
/// and tries again. Any other refusal is returned.
pub fn send_when_queued<'a, C, K, P>(
    producer: &BaseProducer<C>,
    mut record: BaseRecord<'a, K, P, C::DeliveryOpaque>,
    pause: Duration,
) -> Result<(), KafkaError>
where
    C: ProducerContext,
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                record = returned;
                producer.poll(pause);
            }
            Err((error, _)) => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_at_the_first_separator_only() {
        assert_eq!(
            split_once(b"k::v::w", b"::"),
            Some((&b"k"[..], &b"v::w"[..]))
        );
        assert_eq!(split_once(b"kv", b":"), None);
        assert_eq!(strip_line_end(b"a\r\n"), b"a");
        assert_eq!(strip_line_end(b"a"), b"a");
    }
}
