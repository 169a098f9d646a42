//! A broker under hostile input stays up, keeps its memory bounded and loses nothing of what
//! normal clients do meanwhile: for every advertised API and version, requests with maximal
//! counts and lengths, truncated bodies and garbage tagged fields; truncated and inflated copies
//! of real clients' requests; compression bombs; and hundreds of connections announcing
//! 100 MiB frames that they send one byte a second. A librdkafka producer and consumer work on
//! other connections throughout.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use cauce_integration_tests::clients::{
    consume_messages_from_partition_start, future_producer_with_settings,
};
use cauce_integration_tests::raw::error_codes::{INVALID_RECORD, MESSAGE_TOO_LARGE};
use cauce_integration_tests::raw::{
    current_unix_time_ms, produce_batch_to_partition_zero, send_create_single_partition_topic,
};
use cauce_integration_tests::{assert_still_serving, BrokerProcess, RawClient};
use cauce_protocol::compression::Compression;
use cauce_protocol::records::{build_batch, BatchOptions, NewRecord};
use cauce_protocol::versions::SUPPORTED_APIS;
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Encodable, StrBytes};
use rdkafka::producer::FutureRecord;
use rdkafka::Message;

/// `max.message.bytes` of a topic that does not set it (Kafka's default).
const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_048_588;

/// The most resident memory the broker may ever have used (its `VmHWM`) through all of this,
/// with `queued.max.request.bytes` at 64 MiB. A debug build idles at about 30 MiB.
const PEAK_MEMORY_BOUND_BYTES: u64 = 192 << 20;

/// Connections that announce 100 MiB and send it a byte a second.
const SLOW_CONNECTIONS: usize = 1000;

const CONFIG: &str = "queued.max.request.bytes = 67108864\nsocket.request.read.timeout.ms = 3000\n";

/// Bodies that lie about every kind of length: counts of 2^31 - 1, the longest varints, a
/// string of 32767 bytes that is not there, and a tagged-field section that claims more fields
/// and bytes than follow.
fn lying_bodies() -> Vec<Vec<u8>> {
    let mut bodies = vec![
        [0x7f, 0xff, 0xff, 0xff].repeat(8),
        [0xff, 0xff, 0xff, 0xff, 0x0f].repeat(6),
        vec![0x7f, 0xff, b'a', b'b'],
        vec![0x05, 0x00, 0xff, 0xff, 0xff, 0x0f, 0x01],
        vec![0x00, 0x00, 0x00, 0x01, 0x7f, 0xff, 0xff, 0xff],
        Vec::new(),
    ];
    // Every prefix of a body made of maximal counts behind small ones.
    let nested: Vec<u8> = [
        0x00, 0x00, 0x00, 0x01, 0x00, 0x01, b'x', 0x7f, 0xff, 0xff, 0xff,
    ]
    .repeat(2);
    for cut in 1..nested.len() {
        bodies.push(nested[..cut].to_vec());
    }
    bodies
}

fn header(api_key: ApiKey, version: i16, flexible_tags: bool) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("hostile")));
    let mut bytes = BytesMut::new();
    let header_version = api_key.request_header_version(version);
    header.encode(&mut bytes, header_version).unwrap();
    let mut bytes = bytes.to_vec();
    if flexible_tags && header_version >= 2 {
        // Replace the empty tagged-field section with one that lies.
        bytes.pop();
        bytes.extend([0x03, 0x01, 0x7f, 0x00]);
    }
    bytes
}

/// Sends one frame on its own connection and waits a moment for the broker's answer or its
/// closing of the connection.
fn send_frame(address: SocketAddr, frame: &[u8]) {
    let Ok(mut stream) = TcpStream::connect(address) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut bytes = (frame.len() as i32).to_be_bytes().to_vec();
    bytes.extend_from_slice(frame);
    if stream.write_all(&bytes).is_ok() {
        let mut answer = [0u8; 256];
        let _ = stream.read(&mut answer);
    }
}

/// Requests captured from librdkafka, kafka-python and kcat (the fuzz seeds), cut short at a
/// few places and with one i32 in them raised to its maximum.
fn mangled_real_requests() -> Vec<Vec<u8>> {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/request_frame");
    let mut frames = Vec::new();
    for entry in std::fs::read_dir(seeds).expect("fuzz seeds") {
        let frame = std::fs::read(entry.unwrap().path()).unwrap();
        for cut in [frame.len() / 3, frame.len() / 2, frame.len() - 1] {
            frames.push(frame[..cut.max(8)].to_vec());
        }
        for at in (12..frame.len().saturating_sub(4)).step_by(7).take(6) {
            let mut inflated = frame.clone();
            inflated[at..at + 4].copy_from_slice(&i32::MAX.to_be_bytes());
            frames.push(inflated);
        }
    }
    frames
}

fn peak_resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("broker alive");
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .expect("VmHWM");
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// A batch of one record whose 64 MiB value of zeros compresses to a few dozen KiB.
fn compression_bomb(codec: Compression) -> Vec<u8> {
    let record = NewRecord {
        timestamp_ms: current_unix_time_ms(),
        key: Some(b"bomb".to_vec()),
        value: Some(vec![0u8; 64 << 20]),
        headers: Vec::new(),
    };
    let options = BatchOptions {
        compression: codec,
        ..BatchOptions::default()
    };
    build_batch(0, &[record], &options).unwrap()
}

#[test]
fn hostile_requests_neither_crash_the_broker_nor_cost_normal_clients_anything() {
    let broker = BrokerProcess::start_with_config(CONFIG);
    let address = broker.address;
    let pid = broker.pid().expect("broker pid");
    let bootstrap = broker.bootstrap();

    // The frame that used to abort the broker: Metadata v1 with 2^31 - 1 topics, 19 bytes in
    // all. The connection is closed; the broker stays.
    let mut nineteen = 15i32.to_be_bytes().to_vec();
    nineteen.extend([0, 3, 0, 1, 0, 0, 0, 1, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0]);
    assert_eq!(nineteen.len(), 19);
    let mut client = RawClient::connect(address);
    client.send_raw(&nineteen).unwrap();
    assert!(client.is_closed_by_broker());
    assert_still_serving(address);

    // A normal producer and consumer throughout.
    let mut admin = RawClient::connect(address);
    send_create_single_partition_topic(&mut admin, "normal", &[]);
    send_create_single_partition_topic(&mut admin, "bombed", &[]);
    send_create_single_partition_topic(&mut admin, "compacted", &[("cleanup.policy", "compact")]);
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let producer = {
        let (bootstrap, stop, acknowledged) =
            (bootstrap.clone(), stop.clone(), acknowledged.clone());
        thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let producer =
                future_producer_with_settings(&bootstrap, &[("acks", "all"), ("linger.ms", "2")]);
            let mut sequence = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let value = format!("record-{sequence}");
                let delivery = runtime.block_on(producer.send(
                    FutureRecord::to("normal").key(&value).payload(&value),
                    Duration::from_secs(15),
                ));
                delivery.unwrap_or_else(|(error, _)| panic!("{value} not delivered: {error}"));
                acknowledged.lock().unwrap().insert(value);
                sequence += 1;
            }
        })
    };

    // Slow senders: a thousand connections announce 100 MiB each and send a byte a second.
    let slow = thread::spawn(move || {
        let mut streams: Vec<TcpStream> = (0..SLOW_CONNECTIONS)
            .filter_map(|_| TcpStream::connect(address).ok())
            .collect();
        for stream in &mut streams {
            let _ = stream.write_all(&(100i32 << 20).to_be_bytes());
        }
        for _ in 0..5 {
            thread::sleep(Duration::from_secs(1));
            streams.retain_mut(|stream| stream.write_all(&[0]).is_ok());
        }
        streams.len()
    });

    // Every advertised API and version, with every lying body, plainly and with lying tags in
    // the header; then real requests, mangled.
    let mut frames = Vec::new();
    for api in SUPPORTED_APIS {
        for version in api.min_decoded_version..=api.max_version {
            for body in lying_bodies() {
                for lying_tags in [false, true] {
                    let mut frame = header(api.api_key, version, lying_tags);
                    frame.extend_from_slice(&body);
                    frames.push(frame);
                }
            }
        }
    }
    frames.extend(mangled_real_requests());
    let sent = frames.len();
    let frames = Arc::new(frames);
    let senders: Vec<_> = (0..4)
        .map(|worker| {
            let frames = frames.clone();
            thread::spawn(move || {
                for frame in frames.iter().skip(worker).step_by(4) {
                    send_frame(address, frame);
                }
            })
        })
        .collect();
    for sender in senders {
        sender.join().unwrap();
    }

    // Compression bombs: a compacted topic reads every record it is sent, and refuses the bomb
    // at the decompression limit (32 x max.message.bytes) instead of inflating 64 MiB. A bomb
    // larger than max.message.bytes itself (Snappy's) is refused by size first, as Kafka does,
    // before anything is decompressed.
    let mut compacting = RawClient::connect(address);
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let bomb = compression_bomb(codec);
        assert!(
            bomb.len() < 4 << 20,
            "{codec:?} bomb of {} bytes",
            bomb.len()
        );
        let response = produce_batch_to_partition_zero(&mut compacting, "compacted", &bomb);
        let expected = if bomb.len() > DEFAULT_MAX_MESSAGE_BYTES {
            MESSAGE_TOO_LARGE
        } else {
            INVALID_RECORD
        };
        assert_eq!(
            response.error_code,
            expected,
            "{codec:?} bomb of {} bytes on a compacted topic: {response:?}",
            bomb.len()
        );
        // On a plain topic the batch is stored as it came; reading its records by timestamp
        // then stops at the same limit.
        produce_batch_to_partition_zero(&mut compacting, "bombed", &bomb);
    }
    let mut lookups = RawClient::connect(address);
    let lookup = cauce_integration_tests::raw::ask_list_offsets_for_partition_zero(
        &mut lookups,
        "bombed",
        0,
    );
    assert_ne!(
        lookup.error_code, 0,
        "a lookup through a bomb cannot succeed: {lookup:?}"
    );

    let still_open = slow.join().unwrap();
    thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    producer
        .join()
        .expect("the normal producer delivered everything it sent");

    assert_still_serving(address);
    let peak = peak_resident_bytes(pid);
    let acknowledged = acknowledged.lock().unwrap().clone();
    eprintln!(
        "{sent} hostile frames, {still_open} of {SLOW_CONNECTIONS} slow connections still open after 5 s, \
         {} records acknowledged, broker peak resident memory {} MiB",
        acknowledged.len(),
        peak >> 20
    );
    assert!(
        peak <= PEAK_MEMORY_BOUND_BYTES,
        "the broker's resident memory peaked at {} MiB, above the {} MiB bound",
        peak >> 20,
        PEAK_MEMORY_BOUND_BYTES >> 20
    );
    assert!(
        still_open < SLOW_CONNECTIONS,
        "no slow connection was closed by socket.request.read.timeout.ms"
    );
    assert!(
        acknowledged.len() > 100,
        "only {} records acknowledged",
        acknowledged.len()
    );

    // The normal consumer reads back exactly what was acknowledged, in order.
    let started = Instant::now();
    let messages = consume_messages_from_partition_start(
        &bootstrap,
        "normal",
        0,
        acknowledged.len(),
        Duration::from_secs(60),
    );
    let read: Vec<String> = messages
        .iter()
        .map(|message| String::from_utf8(message.payload().unwrap().to_vec()).unwrap())
        .collect();
    let read_set: BTreeSet<String> = read.iter().cloned().collect();
    assert_eq!(
        read_set,
        acknowledged,
        "read back in {:?}",
        started.elapsed()
    );
    let sequences: Vec<u64> = read
        .iter()
        .map(|value| value.trim_start_matches("record-").parse().unwrap())
        .collect();
    assert!(
        sequences.windows(2).all(|pair| pair[0] < pair[1]),
        "records out of order"
    );
}
