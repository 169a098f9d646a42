//! A librdkafka group member as its own process, so that tests can stop it, `kill -9` it and
//! start more of them: `cauce-test-group-consumer <bootstrap> <group> <topic> [strategy]
//! [group.instance.id] [--processing-ms=N]`, where strategy is `range` (eager, the default) or
//! `cooperative-sticky`, and `--processing-ms` makes it hold each batch that long between printing
//! and committing it, as a slow application would (so a `kill -9` can land in between).
//!
//! It subscribes to the topic, never auto-commits, and writes one line per event to stdout,
//! flushed at once so that a `kill -9` loses nothing it printed:
//!
//! - `RECORD <partition> <offset> <value>` for every record it consumed;
//! - `COMMITTED <partition> <offset>` for every offset the coordinator accepted (the next offset
//!   to read, as Kafka stores it), after each poll batch and when partitions are revoked;
//! - `COMMIT_FAILED <error>` when a commit was refused; the offsets stay pending and are retried;
//! - `ASSIGNED <partition> <partition> ...` (sorted, possibly none) after every rebalance;
//! - `REBALANCE_ERROR <error>`, `CONSUME_ERROR <error>`, and `STOPPED` just before it exits.
//!
//! It stops cleanly (commits, leaves the group, closes the consumer) on SIGTERM or when its stdin
//! closes, so the caller must give it a stdin pipe and keep it open while it should run.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

/// How long one poll waits for the first record of a batch.
const POLL_WAIT: Duration = Duration::from_millis(100);
/// The most records handled before their offsets are committed.
const MAX_BATCH_RECORDS: usize = 100;
/// How long closing the consumer (revoke, commit, LeaveGroup) may take before the process exits
/// anyway: dropping a librdkafka consumer was seen to hang (rdkafka 0.39), and a test must not.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Writes one line to stdout and flushes it; exits if stdout is gone (the test died).
fn print_line(line: &str) {
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        std::process::exit(3);
    }
}

/// State shared between the poll loop and the rebalance callbacks (both run on the thread that
/// polls, inside `poll`, but the context is borrowed immutably).
struct MemberContext {
    /// The subscribed topic, to build commit lists.
    topic: String,
    /// For each owned partition, the next offset to commit: one past the last printed record.
    pending_offsets: Mutex<BTreeMap<i32, i64>>,
}

impl MemberContext {
    /// Commits the pending offsets of `partitions` (all pending ones if `None`) synchronously,
    /// printing what was accepted. Accepted offsets leave the pending set; refused ones stay.
    fn commit_pending(&self, consumer: &BaseConsumer<MemberContext>, partitions: Option<&[i32]>) {
        let mut pending = self.pending_offsets.lock().unwrap();
        let to_commit: Vec<(i32, i64)> = pending
            .iter()
            .filter(|(partition, _)| partitions.is_none_or(|wanted| wanted.contains(partition)))
            .map(|(partition, offset)| (*partition, *offset))
            .collect();
        if to_commit.is_empty() {
            return;
        }
        let mut list = TopicPartitionList::new();
        for (partition, offset) in &to_commit {
            list.add_partition_offset(&self.topic, *partition, Offset::Offset(*offset))
                .expect("offset list");
        }
        match consumer.commit(&list, CommitMode::Sync) {
            Ok(()) => {
                for (partition, offset) in to_commit {
                    print_line(&format!("COMMITTED {partition} {offset}"));
                    pending.remove(&partition);
                }
            }
            Err(error) => print_line(&format!("COMMIT_FAILED {error}")),
        }
    }
}

impl ClientContext for MemberContext {}

impl ConsumerContext for MemberContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // Partitions that move away get their progress committed first, so that their next
        // owner starts after the last printed record; whatever fails is given up with them.
        if let Rebalance::Revoke(revoked) = rebalance {
            let partitions: Vec<i32> = revoked
                .elements()
                .iter()
                .map(|element| element.partition())
                .collect();
            self.commit_pending(consumer, Some(&partitions));
            let mut pending = self.pending_offsets.lock().unwrap();
            for partition in partitions {
                pending.remove(&partition);
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Error(error) = rebalance {
            print_line(&format!("REBALANCE_ERROR {error}"));
            return;
        }
        let mut partitions: Vec<i32> = consumer
            .assignment()
            .map(|list| {
                list.elements()
                    .iter()
                    .map(|element| element.partition())
                    .collect()
            })
            .unwrap_or_default();
        partitions.sort_unstable();
        let listed: Vec<String> = partitions.iter().map(i32::to_string).collect();
        print_line(format!("ASSIGNED {}", listed.join(" ")).trim_end());
    }
}

/// Sets `stop` on SIGTERM and when stdin reaches its end.
fn watch_for_stop(stop: Arc<AtomicBool>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("signal runtime");
    // Registered before returning, so a SIGTERM sent right after start is not lost.
    let mut terminate = runtime.block_on(async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler")
    });
    let stop_on_signal = stop.clone();
    std::thread::spawn(move || {
        runtime.block_on(terminate.recv());
        stop_on_signal.store(true, Ordering::SeqCst);
    });
    std::thread::spawn(move || {
        let mut sink = [0u8; 256];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut sink), Ok(read) if read > 0) {}
        stop.store(true, Ordering::SeqCst);
    });
}

fn main() {
    let mut processing_time = Duration::ZERO;
    let mut args: Vec<String> = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.strip_prefix("--processing-ms=") {
            Some(milliseconds) => {
                processing_time =
                    Duration::from_millis(milliseconds.parse().expect("--processing-ms"))
            }
            None => args.push(arg),
        }
    }
    if args.len() < 3 {
        eprintln!("usage: cauce-test-group-consumer <bootstrap> <group> <topic> [range|cooperative-sticky] [group.instance.id] [--processing-ms=N]");
        std::process::exit(2);
    }
    let (bootstrap, group, topic) = (&args[0], &args[1], &args[2]);
    let strategy = args.get(3).map(String::as_str).unwrap_or("range");

    let stop = Arc::new(AtomicBool::new(false));
    watch_for_stop(stop.clone());

    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("partition.assignment.strategy", strategy)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500");
    if let Some(instance) = args.get(4) {
        config.set("group.instance.id", instance);
    }
    let consumer: BaseConsumer<MemberContext> = config
        .create_with_context(MemberContext {
            topic: topic.clone(),
            pending_offsets: Mutex::new(BTreeMap::new()),
        })
        .expect("consumer");
    consumer.subscribe(&[topic.as_str()]).expect("subscribe");

    while !stop.load(Ordering::SeqCst) {
        let mut wait = POLL_WAIT;
        for _ in 0..MAX_BATCH_RECORDS {
            match consumer.poll(wait) {
                None => break,
                Some(Err(error)) => {
                    print_line(&format!("CONSUME_ERROR {error}"));
                    break;
                }
                Some(Ok(message)) => {
                    let value = String::from_utf8_lossy(message.payload().unwrap_or_default());
                    print_line(&format!(
                        "RECORD {} {} {value}",
                        message.partition(),
                        message.offset()
                    ));
                    consumer
                        .context()
                        .pending_offsets
                        .lock()
                        .unwrap()
                        .insert(message.partition(), message.offset() + 1);
                }
            }
            wait = Duration::ZERO;
        }
        if !processing_time.is_zero()
            && !consumer
                .context()
                .pending_offsets
                .lock()
                .unwrap()
                .is_empty()
        {
            std::thread::sleep(processing_time);
        }
        consumer.context().commit_pending(&consumer, None);
    }

    // Closing revokes the assignment (committing what is pending) and sends LeaveGroup.
    consumer.context().commit_pending(&consumer, None);
    if consumer.close_queue().is_ok() {
        let deadline = Instant::now() + CLOSE_TIMEOUT;
        while !consumer.closed() && Instant::now() < deadline {
            consumer.poll(Duration::from_millis(50));
        }
    }
    print_line("STOPPED");
    // Exit without dropping the consumer: its drop can hang after a synchronous commit.
    std::process::exit(0);
}
