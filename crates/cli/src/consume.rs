//! `cauce consume TOPIC`: print records, one per line, and stop on its own.
//!
//! Without `--count` the command stops once every assigned partition reached its end, so a
//! script never hangs on a quiet topic. Without `--group` it assigns the partitions itself at the
//! requested position; with `--group` it subscribes and commits what it printed.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use crate::admin::{Connection, ConnectionArgs, REQUEST_TIMEOUT};
use crate::produce::topic_partitions;

/// How long one poll waits; short so the end-of-partition check runs often.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How long a group consumer keeps polling after unsubscribing, so librdkafka can finish the
/// revocation and send LeaveGroup before the process exits.
const LEAVE_GRACE: Duration = Duration::from_millis(500);

#[derive(clap::Args)]
pub struct ConsumeArgs {
    /// The topic.
    topic: String,
    /// Where to start: beginning, end, offset:N or timestamp:MS. With --group only beginning
    /// or end, for partitions the group has no committed offset for.
    #[arg(long, value_name = "POSITION", value_parser = parse_start, default_value = "beginning")]
    from: Start,
    /// Consume as a member of this group, starting from its committed offsets and committing
    /// what was printed.
    #[arg(long, value_name = "G")]
    group: Option<String>,
    /// Stop after N records [default: stop when every partition reached its end].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
    /// How to print a record: %k key, %v value, %p partition, %o offset, %t timestamp (ms),
    /// %h headers as k=v,k=v, %% a percent sign, \t and \n. Ignored with --json.
    #[arg(long, value_name = "FORMAT", value_parser = parse_format, default_value = "%v")]
    format: Format,
    /// Read only this partition.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(0..))]
    partition: Option<i32>,
}

/// The `--from` position.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Start {
    Beginning,
    End,
    Offset(i64),
    Timestamp(i64),
}

fn parse_start(text: &str) -> Result<Start, String> {
    let number = |digits: &str, what: &str| {
        digits
            .parse::<i64>()
            .ok()
            .filter(|number| *number >= 0)
            .ok_or_else(|| format!("expected a non-negative {what} after ':', found '{digits}'"))
    };
    match text.split_once(':') {
        None if text == "beginning" => Ok(Start::Beginning),
        None if text == "end" => Ok(Start::End),
        Some(("offset", digits)) => number(digits, "offset").map(Start::Offset),
        Some(("timestamp", digits)) => number(digits, "timestamp in ms").map(Start::Timestamp),
        _ => Err(format!(
            "expected beginning, end, offset:N or timestamp:MS, found '{text}'"
        )),
    }
}

/// One part of a `--format` string.
#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Text(String),
    Key,
    Value,
    Partition,
    Offset,
    Timestamp,
    Headers,
}

/// A parsed `--format` string.
#[derive(Clone, Debug, PartialEq)]
struct Format(Vec<Piece>);

fn parse_format(text: &str) -> Result<Format, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = text.chars();
    while let Some(character) = chars.next() {
        let field = match character {
            '%' => match chars.next() {
                Some('k') => Piece::Key,
                Some('v') => Piece::Value,
                Some('p') => Piece::Partition,
                Some('o') => Piece::Offset,
                Some('t') => Piece::Timestamp,
                Some('h') => Piece::Headers,
                Some('%') => {
                    literal.push('%');
                    continue;
                }
                Some(other) => {
                    return Err(format!(
                        "expected %k, %v, %p, %o, %t, %h or %% in the format, found '%{other}'"
                    ))
                }
                None => return Err("the format ends with a lone '%'".to_string()),
            },
            '\\' => {
                match chars.next() {
                    Some('t') => literal.push('\t'),
                    Some('n') => literal.push('\n'),
                    Some('\\') => literal.push('\\'),
                    Some(other) => {
                        literal.push('\\');
                        literal.push(other);
                    }
                    None => literal.push('\\'),
                }
                continue;
            }
            other => {
                literal.push(other);
                continue;
            }
        };
        if !literal.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut literal)));
        }
        pieces.push(field);
    }
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    Ok(Format(pieces))
}

/// A record as `--json` prints it. Key, value and header values are decoded as UTF-8, with
/// invalid bytes replaced; a header key given twice keeps its last value.
#[derive(Serialize)]
struct JsonRecord {
    key: Option<String>,
    value: Option<String>,
    partition: i32,
    offset: i64,
    /// Milliseconds since the epoch; -1 when the record has none.
    timestamp: i64,
    headers: serde_json::Map<String, serde_json::Value>,
}

pub fn run(connection_args: &ConnectionArgs, args: ConsumeArgs) -> anyhow::Result<()> {
    let partitions = topic_partitions(&Connection::open(connection_args)?, &args.topic)?;
    let partitions = match args.partition {
        None => partitions,
        Some(partition) if partitions.contains(&partition) => vec![partition],
        Some(partition) => bail!(
            "topic '{}' has no partition {partition} (it has {})",
            args.topic,
            partitions.len()
        ),
    };
    if args.group.is_some() && matches!(args.from, Start::Offset(_) | Start::Timestamp(_)) {
        bail!("--from offset:N and timestamp:MS cannot be used with --group (the group's committed offsets decide where it starts)");
    }
    if args.group.is_some() && args.partition.is_some() {
        bail!("--partition cannot be used with --group (the group assigns partitions)");
    }

    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &connection_args.brokers)
        .set("client.id", "cauce-cli")
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .set(
            "auto.offset.reset",
            if args.from == Start::End {
                "latest"
            } else {
                "earliest"
            },
        );
    // librdkafka wants a group id even for a consumer that only assigns; it is never used then.
    config.set(
        "group.id",
        args.group.as_deref().unwrap_or("cauce-cli-unused"),
    );
    let consumer: BaseConsumer = config
        .create()
        .with_context(|| format!("cannot use broker list '{}'", connection_args.brokers))?;

    let outcome = match &args.group {
        Some(_) => consume_as_group_member(&consumer, &args, connection_args.json),
        None => assign(&consumer, &args.topic, &partitions, args.from)
            .and_then(|()| consume(&consumer, &args, connection_args.json).map(|_| ())),
    };
    // Dropping a librdkafka consumer right after a synchronous call was seen to hang (rdkafka
    // 0.39); the process is about to end, so the consumer is never dropped.
    std::mem::forget(consumer);
    outcome
}

/// Assigns the partitions at the `--from` position.
fn assign(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: &[i32],
    from: Start,
) -> anyhow::Result<()> {
    let mut assignment = TopicPartitionList::new();
    let offset = match from {
        Start::Beginning => Offset::Beginning,
        Start::End => Offset::End,
        Start::Offset(offset) => Offset::Offset(offset),
        // librdkafka takes the timestamp in the offset field and answers with the offset.
        Start::Timestamp(timestamp) => Offset::Offset(timestamp),
    };
    for &partition in partitions {
        assignment.add_partition_offset(topic, partition, offset)?;
    }
    if let Start::Timestamp(timestamp) = from {
        assignment = consumer
            .offsets_for_times(assignment, REQUEST_TIMEOUT)
            .map_err(|error| {
                anyhow!("looking up offsets for timestamp {timestamp} failed: {error}")
            })?;
        for element in assignment.elements() {
            element.error().map_err(|error| {
                anyhow!(
                    "looking up offsets for timestamp {timestamp} in partition {} failed: {error}",
                    element.partition()
                )
            })?;
        }
        // A partition with no record at or after the timestamp comes back as -1, which rdkafka
        // reads as `Offset::End`: that partition starts at its end.
    }
    consumer
        .assign(&assignment)
        .map_err(|error| anyhow!("assigning partitions of topic '{topic}' failed: {error}"))
}

/// Subscribes, prints, commits what was printed, and leaves the group.
fn consume_as_group_member(
    consumer: &BaseConsumer,
    args: &ConsumeArgs,
    json: bool,
) -> anyhow::Result<()> {
    consumer
        .subscribe(&[&args.topic])
        .map_err(|error| anyhow!("subscribing to topic '{}' failed: {error}", args.topic))?;
    let consumed = consume(consumer, args, json);
    let committed = match &consumed {
        Ok(next_offsets) if next_offsets.count() > 0 => consumer
            .commit(next_offsets, CommitMode::Sync)
            .map_err(|error| anyhow!("committing offsets failed: {error}")),
        _ => Ok(()),
    };
    consumer.unsubscribe();
    let leave_deadline = Instant::now() + LEAVE_GRACE;
    while Instant::now() < leave_deadline {
        let _ = consumer.poll(POLL_INTERVAL);
    }
    consumed.and(committed)
}

/// Polls and prints until `--count` records or the end of every assigned partition; returns the
/// offsets to commit (one past the last record printed of each partition).
fn consume(
    consumer: &BaseConsumer,
    args: &ConsumeArgs,
    json: bool,
) -> anyhow::Result<TopicPartitionList> {
    let mut stdout = io::stdout().lock();
    let mut next_offsets = BTreeMap::new();
    let mut printed = 0u64;
    let mut at_end = BTreeSet::new();
    loop {
        if args.count.is_some_and(|count| printed >= count) {
            break;
        }
        match consumer.poll(POLL_INTERVAL) {
            None => {}
            Some(Ok(message)) => {
                at_end.remove(&message.partition());
                let written = write_record(&mut stdout, &message, &args.format, json);
                if is_broken_pipe(&written) {
                    // The reader went away (`| head`): nothing more to do.
                    break;
                }
                written.context("writing to stdout failed")?;
                next_offsets.insert(message.partition(), message.offset() + 1);
                printed += 1;
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                at_end.insert(partition);
            }
            Some(Err(error)) => bail!("consuming topic '{}' failed: {error}", args.topic),
        }
        if args.count.is_none() && all_at_end(consumer, &at_end)? {
            break;
        }
    }
    stdout.flush().context("writing to stdout failed")?;
    let mut to_commit = TopicPartitionList::new();
    for (partition, offset) in next_offsets {
        to_commit.add_partition_offset(&args.topic, partition, Offset::Offset(offset))?;
    }
    Ok(to_commit)
}

/// Whether every assigned partition reported its end since its last record; false before a
/// group assigned anything.
fn all_at_end(consumer: &BaseConsumer, at_end: &BTreeSet<i32>) -> anyhow::Result<bool> {
    if at_end.is_empty() {
        return Ok(false);
    }
    let assignment = consumer
        .assignment()
        .map_err(|error| anyhow!("reading the assignment failed: {error}"))?;
    let elements = assignment.elements();
    Ok(!elements.is_empty()
        && elements
            .iter()
            .all(|element| at_end.contains(&element.partition())))
}

fn is_broken_pipe(result: &io::Result<()>) -> bool {
    matches!(result, Err(error) if error.kind() == io::ErrorKind::BrokenPipe)
}

fn write_record(
    out: &mut impl Write,
    message: &BorrowedMessage<'_>,
    format: &Format,
    json: bool,
) -> io::Result<()> {
    let timestamp = message.timestamp().to_millis().unwrap_or(-1);
    if json {
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        let mut headers = serde_json::Map::new();
        if let Some(message_headers) = message.headers() {
            for header in message_headers.iter() {
                let value = header.value.map_or(serde_json::Value::Null, |value| {
                    serde_json::Value::String(text(value))
                });
                headers.insert(header.key.to_string(), value);
            }
        }
        let record = JsonRecord {
            key: message.key().map(text),
            value: message.payload().map(text),
            partition: message.partition(),
            offset: message.offset(),
            timestamp,
            headers,
        };
        serde_json::to_writer(&mut *out, &record)?;
        return out.write_all(b"\n");
    }
    for piece in &format.0 {
        match piece {
            Piece::Text(text) => out.write_all(text.as_bytes())?,
            Piece::Key => out.write_all(message.key().unwrap_or_default())?,
            Piece::Value => out.write_all(message.payload().unwrap_or_default())?,
            Piece::Partition => write!(out, "{}", message.partition())?,
            Piece::Offset => write!(out, "{}", message.offset())?,
            Piece::Timestamp => write!(out, "{timestamp}")?,
            Piece::Headers => {
                let Some(headers) = message.headers() else {
                    continue;
                };
                for (index, header) in headers.iter().enumerate() {
                    if index > 0 {
                        out.write_all(b",")?;
                    }
                    out.write_all(header.key.as_bytes())?;
                    out.write_all(b"=")?;
                    out.write_all(header.value.unwrap_or_default())?;
                }
            }
        }
    }
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_positions_parse_and_bad_ones_are_refused() {
        assert_eq!(parse_start("beginning"), Ok(Start::Beginning));
        assert_eq!(parse_start("end"), Ok(Start::End));
        assert_eq!(parse_start("offset:7"), Ok(Start::Offset(7)));
        assert_eq!(parse_start("timestamp:123"), Ok(Start::Timestamp(123)));
        assert!(parse_start("offset:-1").is_err());
        assert!(parse_start("offset:").is_err());
        assert!(parse_start("middle").is_err());
    }

    #[test]
    fn format_fields_and_escapes_parse() {
        assert_eq!(
            parse_format("%k=%v\\t%%%p\\n"),
            Ok(Format(vec![
                Piece::Key,
                Piece::Text("=".into()),
                Piece::Value,
                Piece::Text("\t%".into()),
                Piece::Partition,
                Piece::Text("\n".into()),
            ]))
        );
        assert!(parse_format("%x").is_err());
        assert!(parse_format("%").is_err());
    }
}
