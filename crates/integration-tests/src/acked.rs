//! An idempotent `acks=all` producer that records what the brokers acknowledged, and the
//! checks that every acknowledged record is stored once, at its offset, in the order sent: what
//! the fault tests assert after killing brokers.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::producer::{FutureRecord, Producer};

use crate::clients::{
    consume_offsets_and_payloads_from_partition_start, consumer_assigned_from_partition_start,
    future_producer_with_settings,
};

/// What the producer thread has seen, shared with the test.
#[derive(Default)]
pub struct Produced {
    /// Acknowledged records by partition: (offset, value) in the order they were sent.
    pub acknowledged: Mutex<BTreeMap<i32, Vec<(i64, String)>>>,
    /// How many records were not acknowledged, and the first few reasons.
    pub failed: Mutex<(u64, Vec<String>)>,
    /// Why the producer stopped before it was told to: librdkafka's fatal error, which an
    /// idempotent producer raises when the broker loses or reorders what it acknowledged.
    pub fatal: Mutex<Option<String>>,
}

impl Produced {
    /// How many records each partition has had acknowledged so far.
    pub fn counts(&self, partitions: i32) -> Vec<usize> {
        let acknowledged = self.acknowledged.lock().unwrap();
        (0..partitions)
            .map(|partition| acknowledged.get(&partition).map_or(0, Vec::len))
            .collect()
    }

    /// Panics if the producer has stopped on a fatal error.
    pub fn assert_not_fatal(&self) {
        if let Some(fatal) = self.fatal.lock().unwrap().as_ref() {
            let (count, reasons) = &*self.failed.lock().unwrap();
            panic!(
                "the idempotent producer stopped on a fatal error: {fatal}; \
                 {count} deliveries failed, first ones: {reasons:#?}"
            );
        }
    }

    /// Waits until every one of the `before.len()` partitions has had more than `before`
    /// records acknowledged.
    pub fn wait_for_acknowledgements_beyond(
        &self,
        before: &[usize],
        timeout: Duration,
        what: &str,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            self.assert_not_fatal();
            let now = self.counts(before.len() as i32);
            if now.iter().zip(before).all(|(now, before)| now > before) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: no new acknowledgements on every partition within {timeout:?} \
                 (acknowledged per partition then {before:?}, now {now:?})"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The sequence number in a value written by [`produce_until`] (`value-<n>`).
pub fn sequence_of(value: &str) -> u64 {
    value
        .strip_prefix("value-")
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("unexpected value {value:?} in the topic"))
}

/// Sends numbered values round-robin over `partitions` partitions of `topic` with an idempotent
/// `acks=all` producer until `stop` (or a fatal error), recording the outcomes in `produced`.
pub fn produce_until(
    bootstrap: String,
    topic: &'static str,
    partitions: i32,
    stop: Arc<AtomicBool>,
    produced: Arc<Produced>,
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let producer = future_producer_with_settings(
            &bootstrap,
            &[
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("message.timeout.ms", "60000"),
                ("linger.ms", "2"),
            ],
        );
        let mut pending = Vec::new();
        let mut sent = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let partition = (sent % partitions as u64) as i32;
            let value = format!("value-{sent}");
            let queued = producer.send_result(
                FutureRecord::<(), str>::to(topic)
                    .partition(partition)
                    .payload(&value),
            );
            match queued {
                Ok(delivery) => pending.push((partition, value, delivery)),
                Err((error, _)) => {
                    let reason = producer
                        .client()
                        .fatal_error()
                        .map(|(code, reason)| format!("{code:?}: {reason}"));
                    *produced.fatal.lock().unwrap() =
                        Some(format!("queueing {value} failed: {error} ({reason:?})"));
                    break;
                }
            }
            sent += 1;
            if pending.len() >= 200 {
                settle(&mut pending, &produced).await;
            }
            if sent.is_multiple_of(50) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        settle(&mut pending, &produced).await;
    });
}

/// Waits for the queued deliveries, in the order they were sent, and records the outcomes.
async fn settle(
    pending: &mut Vec<(i32, String, rdkafka::producer::DeliveryFuture)>,
    produced: &Produced,
) {
    for (partition, value, delivery) in pending.drain(..) {
        let failure = match delivery.await {
            Ok(Ok(delivered)) if delivered.partition == partition => {
                produced
                    .acknowledged
                    .lock()
                    .unwrap()
                    .entry(partition)
                    .or_default()
                    .push((delivered.offset, value));
                continue;
            }
            Ok(Ok(delivered)) => format!(
                "{value} was sent to partition {partition} but acknowledged by partition {}",
                delivered.partition
            ),
            Ok(Err((error, _))) => format!("{value} to partition {partition}: {error}"),
            Err(_) => format!("{value} to partition {partition}: delivery future dropped"),
        };
        let (count, reasons) = &mut *produced.failed.lock().unwrap();
        *count += 1;
        if reasons.len() < 10 {
            reasons.push(failure);
        }
    }
}

/// Reads a whole partition (up to its high watermark) with an rdkafka consumer.
///
/// Right after a leadership change the new leader's high watermark can trail what the old one
/// acknowledged until the followers fetch from it (as in Kafka), so this first waits until it
/// reaches `at_least`.
pub fn read_whole_partition(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    at_least: i64,
) -> Vec<(i64, String)> {
    let consumer = consumer_assigned_from_partition_start(bootstrap, topic, partition);
    let deadline = Instant::now() + Duration::from_secs(30);
    let (low, high) = loop {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .expect("watermarks");
        if high >= at_least || Instant::now() >= deadline {
            break (low, high);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(low, 0, "partition {partition} starts at offset 0");
    let stored = consume_offsets_and_payloads_from_partition_start(
        bootstrap,
        topic,
        partition,
        high as usize,
        Duration::from_secs(30),
    );
    assert_eq!(
        stored.len(),
        high as usize,
        "partition {partition}: could read only {} of the {high} records below its high watermark",
        stored.len()
    );
    stored
}

/// Reads partition `partition` of `topic` whole, once its high watermark has passed every
/// acknowledged record, and checks it against them with [`check_partition`]; returns what it
/// stores.
pub fn read_and_check_partition(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    partitions: i32,
    acked: &[(i64, String)],
) -> Vec<(i64, String)> {
    let end = acked
        .iter()
        .map(|(offset, _)| offset + 1)
        .max()
        .unwrap_or(0);
    let stored = read_whole_partition(bootstrap, topic, partition, end);
    check_partition(partition, partitions, acked, &stored);
    stored
}

/// Checks partition `partition`'s stored records against what was acknowledged: every
/// acknowledged record at its offset, each value once, offsets contiguous, the producer's order
/// kept.
pub fn check_partition(
    partition: i32,
    partitions: i32,
    acked: &[(i64, String)],
    stored: &[(i64, String)],
) {
    assert!(
        !acked.is_empty(),
        "partition {partition}: nothing acknowledged"
    );
    for pair in acked.windows(2) {
        assert!(
            pair[0].0 < pair[1].0,
            "partition {partition}: {} was acknowledged at offset {} after {} at offset {}",
            pair[1].1,
            pair[1].0,
            pair[0].1,
            pair[0].0
        );
    }
    for (index, (offset, _)) in stored.iter().enumerate() {
        assert_eq!(
            *offset, index as i64,
            "partition {partition}: offsets are not contiguous"
        );
    }
    let mut copies: HashMap<&str, usize> = HashMap::new();
    for (_, value) in stored {
        *copies.entry(value.as_str()).or_default() += 1;
        assert_eq!(
            sequence_of(value) % partitions as u64,
            partition as u64,
            "partition {partition} holds {value}, which was sent to another partition"
        );
    }
    let duplicated: Vec<(&&str, &usize)> = copies.iter().filter(|(_, count)| **count > 1).collect();
    assert!(
        duplicated.is_empty(),
        "partition {partition} holds values more than once: {duplicated:?}"
    );
    for (offset, value) in acked {
        assert_eq!(
            stored.get(*offset as usize).map(|(_, stored)| stored),
            Some(value),
            "partition {partition}: acknowledged offset {offset} lost or changed"
        );
    }
    for pair in stored.windows(2) {
        assert!(
            sequence_of(&pair[0].1) < sequence_of(&pair[1].1),
            "partition {partition}: {} at offset {} comes before {} at offset {}, out of the \
             order they were sent in",
            pair[0].1,
            pair[0].0,
            pair[1].1,
            pair[1].0
        );
    }
}
