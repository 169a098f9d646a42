//! A produce throughput benchmark over librdkafka: one producer, N partitions, fixed-size values.
//!
//! `cauce-produce-bench --bootstrap 127.0.0.1:9092 --topic bench --partitions 6 --value-size 100
//! --acks all --records 2000000` prints records/s and MB/s of acknowledged records.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

/// Counts acknowledged and failed deliveries.
struct Counter {
    /// Records acknowledged by the broker.
    acked: Arc<AtomicU64>,
    /// Records that failed.
    failed: Arc<AtomicU64>,
}

impl ClientContext for Counter {}

impl ProducerContext for Counter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.acked.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

fn argument(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|arg| arg == name)
        .and_then(|index| args.get(index + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn main() {
    let bootstrap = argument("--bootstrap", "127.0.0.1:9092");
    let topic = argument("--topic", "bench");
    let partitions: i32 = argument("--partitions", "6").parse().expect("--partitions");
    let value_size: usize = argument("--value-size", "100")
        .parse()
        .expect("--value-size");
    let acks = argument("--acks", "1");
    let records: u64 = argument("--records", "1000000").parse().expect("--records");
    let linger = argument("--linger-ms", "5");

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin client");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _ = runtime.block_on(admin.create_topics(
        &[NewTopic::new(
            &topic,
            partitions,
            TopicReplication::Fixed(1),
        )],
        &AdminOptions::new(),
    ));

    let acked = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let producer: ThreadedProducer<Counter> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", &acks)
        .set("linger.ms", &linger)
        .set("batch.size", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("queue.buffering.max.messages", "1000000")
        .create_with_context(Counter {
            acked: acked.clone(),
            failed: failed.clone(),
        })
        .expect("producer");
    let value = vec![b'x'; value_size];
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < records {
        let key = sent.to_be_bytes();
        let record = BaseRecord::to(&topic).key(&key[..]).payload(&value[..]);
        match producer.send(record) {
            Ok(()) => sent += 1,
            Err(_) => std::thread::sleep(Duration::from_micros(200)),
        }
    }
    producer.flush(Duration::from_secs(120)).expect("flush");
    let elapsed = started.elapsed().as_secs_f64();
    let acked = acked.load(Ordering::Relaxed);
    let failed = failed.load(Ordering::Relaxed);
    let megabytes = (acked as f64 * value_size as f64) / (1024.0 * 1024.0);
    println!(
        "records={acked} failed={failed} value_size={value_size} partitions={partitions} acks={acks} seconds={elapsed:.2} records_per_sec={:.0} mib_per_sec={:.1}",
        acked as f64 / elapsed,
        megabytes / elapsed
    );
}
