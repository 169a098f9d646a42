//! Durability: acknowledged writes survive kill -9; recovery cuts torn tails and rebuilds indexes.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cauce_integration_tests::clients::{
    consume_offsets_and_payloads_from_partition_start, CONSUME_TIMEOUT,
};
use cauce_integration_tests::BrokerProcess;
use rdkafka::config::ClientConfig;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

/// Produces `values` to partition 0 with acks=all, waiting for each before sending the next.
fn produce_sync(broker: &BrokerProcess, topic: &str, values: impl Iterator<Item = String>) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("acks", "all")
        .set("linger.ms", "0")
        .create()
        .unwrap();
    for value in values {
        producer
            .send(BaseRecord::<(), _>::to(topic).payload(&value).partition(0))
            .unwrap();
        // One request per record, so the log holds many small batches. (`flush` would poll in
        // 100 ms steps; polling in short steps keeps the test fast.)
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while producer.in_flight_count() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "record was not acknowledged in time"
            );
            producer.poll(Duration::from_millis(1));
        }
    }
}

/// The files of partition 0 of `topic` with the given extension, sorted by name (base offset).
fn segment_files(broker: &BrokerProcess, topic: &str, extension: &str) -> Vec<PathBuf> {
    let dir = broker.data_dir().join(format!("{topic}-0"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|found| found == extension))
        .collect();
    files.sort();
    files
}

#[test]
fn acked_writes_survive_kill_9_during_continuous_acks_all_production() {
    let mut broker = BrokerProcess::start_with_config("num.partitions = 3\n");
    let acked: Arc<Mutex<BTreeMap<(i32, i64), String>>> = Arc::new(Mutex::new(BTreeMap::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let producer_thread = {
        let acked = acked.clone();
        let stop = stop.clone();
        let bootstrap = broker.bootstrap();
        std::thread::spawn(move || {
            let producer: rdkafka::producer::ThreadedProducer<AckRecorder> = ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("acks", "all")
                .set("enable.idempotence", "true")
                .set("linger.ms", "2")
                .set("message.timeout.ms", "5000")
                .create_with_context(AckRecorder { acked })
                .unwrap();
            let mut index = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let value = format!("record-{index}");
                let key = format!("key-{}", index % 17);
                if producer
                    .send(BaseRecord::to("crash").key(&key).payload(&value))
                    .is_ok()
                {
                    index += 1;
                } else {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            let _ = producer.flush(Duration::from_secs(6));
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().unwrap().len() < 3000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    broker.kill9();
    stop.store(true, Ordering::Relaxed);
    producer_thread.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 3000,
        "only {} records were acknowledged before the kill",
        acked.len()
    );

    broker.restart();
    for partition in 0..3 {
        let expected: Vec<(i64, String)> = acked
            .iter()
            .filter(|((found, _), _)| *found == partition)
            .map(|((_, offset), value)| (*offset, value.clone()))
            .collect();
        let highest = expected.last().map_or(-1, |(offset, _)| *offset);
        let stored = consume_offsets_and_payloads_from_partition_start(
            &broker.bootstrap(),
            "crash",
            partition,
            (highest + 1) as usize,
            CONSUME_TIMEOUT,
        );
        let stored: BTreeMap<i64, String> = stored.into_iter().collect();
        for (offset, value) in expected {
            assert_eq!(
                stored.get(&offset),
                Some(&value),
                "acknowledged record at partition {partition} offset {offset} is missing"
            );
        }
    }
}

/// Records every acknowledged delivery with its partition and offset.
struct AckRecorder {
    /// Acknowledged records by (partition, offset).
    acked: Arc<Mutex<BTreeMap<(i32, i64), String>>>,
}

impl rdkafka::ClientContext for AckRecorder {}

impl rdkafka::producer::ProducerContext for AckRecorder {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, _: ()) {
        if let Ok(message) = result {
            let value = String::from_utf8(message.payload().unwrap().to_vec()).unwrap();
            self.acked
                .lock()
                .unwrap()
                .insert((message.partition(), message.offset()), value);
        }
    }
}

#[test]
fn torn_tail_is_truncated_and_every_complete_batch_kept() {
    let mut broker = BrokerProcess::start();
    produce_sync(
        &broker,
        "torn",
        (0..50).map(|index| format!("value-{index}")),
    );
    broker.kill9();
    let log = segment_files(&broker, "torn", "log").pop().unwrap();
    // Half a batch header, as a crash in the middle of a write would leave.
    let mut file = OpenOptions::new().append(true).open(&log).unwrap();
    file.write_all(&[0, 0, 0, 0, 0, 0, 0, 50, 0, 0, 1, 0, 0, 0, 0, 0, 2, 9, 9])
        .unwrap();
    drop(file);
    broker.restart();
    let stored = consume_offsets_and_payloads_from_partition_start(
        &broker.bootstrap(),
        "torn",
        0,
        50,
        CONSUME_TIMEOUT,
    );
    assert_eq!(
        stored,
        (0..50)
            .map(|index| (index, format!("value-{index}")))
            .collect::<Vec<_>>()
    );
    produce_sync(&broker, "torn", std::iter::once("after".to_string()));
    let stored = consume_offsets_and_payloads_from_partition_start(
        &broker.bootstrap(),
        "torn",
        0,
        51,
        CONSUME_TIMEOUT,
    );
    assert_eq!(
        stored.last(),
        Some(&(50, "after".to_string())),
        "appends continue after the kept batches"
    );
}

#[test]
fn missing_and_damaged_indexes_are_rebuilt() {
    let mut broker = BrokerProcess::start_with_config(
        "log.segment.bytes = 4096\nlog.index.interval.bytes = 100\n",
    );
    produce_sync(
        &broker,
        "indexed",
        (0..300).map(|index| format!("value-{index:04}-{}", "p".repeat(40))),
    );
    assert!(broker.stop().success());
    let indexes = segment_files(&broker, "indexed", "index");
    assert!(
        indexes.len() >= 3,
        "expected several segments, found {}",
        indexes.len()
    );
    std::fs::remove_file(&indexes[0]).unwrap();
    std::fs::write(&indexes[1], [1, 2, 3]).unwrap();
    let time_indexes = segment_files(&broker, "indexed", "timeindex");
    std::fs::write(&time_indexes[0], [0xff; 7]).unwrap();
    broker.restart();
    let stored = consume_offsets_and_payloads_from_partition_start(
        &broker.bootstrap(),
        "indexed",
        0,
        300,
        CONSUME_TIMEOUT,
    );
    assert_eq!(stored.len(), 300);
    for (index, (offset, value)) in stored.iter().enumerate() {
        assert_eq!(*offset, index as i64);
        assert!(value.starts_with(&format!("value-{index:04}-")));
    }
}
