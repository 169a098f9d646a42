//! A coordinator that restarts after `kill -9` finishes what was decided and aborts what was
//! not: a transaction whose PrepareCommit is in `__transaction_state` gets its markers, one
//! still open is aborted after its timeout, and `read_committed` readers see all or nothing.

use std::time::{Duration, Instant};

use bytes::BufMut;
use cauce_integration_tests::raw::{
    create_single_partition_topic, current_unix_time_ms, produce_request,
};
use cauce_integration_tests::{BrokerProcess, RawClient};
use cauce_protocol::records::{build_batch, BatchOptions, NewRecord};
use kafka_protocol::messages::{ApiKey, ProduceResponse};

use super::{latest_committed_offset, produce_transactional_at};

/// Java's `String.hashCode` and Kafka's `Utils.abs`, written again here so that the test checks
/// the broker's placement rather than sharing it.
fn transaction_partition(transactional_id: &str, partitions: i32) -> i32 {
    let hash = transactional_id.encode_utf16().fold(0i32, |hash, unit| {
        hash.wrapping_mul(31).wrapping_add(i32::from(unit))
    });
    let non_negative = if hash == i32::MIN { 0 } else { hash.abs() };
    non_negative % partitions
}

/// A `__transaction_state` value, version 1, for one partition of one topic (Kafka's
/// TransactionLogValue schema, written by hand).
fn prepare_commit_value(producer_id: i64, epoch: i16, topic: &str) -> Vec<u8> {
    let mut value = Vec::new();
    value.put_i16(1);
    value.put_i64(producer_id);
    value.put_i16(epoch);
    value.put_i32(60_000);
    value.put_i8(2); // PrepareCommit
    value.push(2); // one topic
    value.push(topic.len() as u8 + 1);
    value.extend_from_slice(topic.as_bytes());
    value.push(2); // one partition
    value.put_i32(0);
    value.push(0);
    let now = current_unix_time_ms();
    value.put_i64(now);
    value.put_i64(now);
    value.push(0);
    value
}

fn wait_for_lso(client: &mut RawClient, topic: &str, wanted: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lso = latest_committed_offset(client, topic);
        if lso == wanted {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the LSO of {topic} stayed at {lso}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_decided_commit_is_completed_by_the_restarted_coordinator() {
    let mut broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    create_single_partition_topic(&mut client, "txn-decided", &[]);
    super::find_transaction_coordinator(&mut client, "decided");
    // The producer wrote its records; the coordinator's decision is in the log, but it died
    // before any marker was written. The decision is put there as Kafka's admin client may.
    assert_eq!(
        produce_transactional_at(
            &mut client,
            "txn-decided",
            5000,
            0,
            "decided",
            &["d1", "d2"]
        ),
        0
    );
    let value = prepare_commit_value(5000, 0, "txn-decided");
    let record = NewRecord {
        timestamp_ms: current_unix_time_ms(),
        key: Some([&[0u8, 0, 0, 7][..], b"decided"].concat()),
        value: Some(value),
        headers: Vec::new(),
    };
    let batch = build_batch(0, &[record], &BatchOptions::default()).unwrap();
    let mut admin = RawClient::connect_as(broker.address, "__admin_client");
    let partition = transaction_partition("decided", 50);
    let response: ProduceResponse = admin.call(
        ApiKey::Produce,
        9,
        &produce_request("__transaction_state", partition, batch),
    );
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    assert_eq!(
        latest_committed_offset(&mut client, "txn-decided"),
        0,
        "held by the open transaction"
    );

    broker.kill9();
    broker.restart();
    let mut client = RawClient::connect(broker.address);
    // The commit marker lands at offset 2.
    wait_for_lso(&mut client, "txn-decided", 3);
    assert_eq!(
        super::read_committed_until_sentinel(&broker.bootstrap(), &mut client, "txn-decided"),
        ["d1", "d2"]
    );
}

#[test]
fn a_transaction_open_at_kill_9_is_aborted_and_the_committed_one_before_it_stays() {
    let mut broker = BrokerProcess::start_with_config(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms = 200\n",
    );
    let mut client = RawClient::connect(broker.address);
    create_single_partition_topic(&mut client, "txn-crash", &[]);
    super::find_transaction_coordinator(&mut client, "crashing");
    let (producer_id, epoch) = super::init_producer(&mut client, "crashing", 2000);
    super::add_partition_zero(&mut client, "crashing", producer_id, epoch, "txn-crash");
    assert_eq!(
        produce_transactional_at(
            &mut client,
            "txn-crash",
            producer_id,
            epoch,
            "crashing",
            &["kept"]
        ),
        0
    );
    assert_eq!(
        super::end_transaction(&mut client, "crashing", producer_id, epoch, true),
        0
    );
    wait_for_lso(&mut client, "txn-crash", 2);
    super::add_partition_zero(&mut client, "crashing", producer_id, epoch, "txn-crash");
    let second = super::produce_transactional_batch(
        &mut client,
        "txn-crash",
        producer_id,
        epoch,
        1,
        "crashing",
        &["lost"],
    );
    assert_eq!(second.error_code, 0);
    // The broker dies with this transaction open, and its producer with it.
    broker.kill9();
    broker.restart();
    let mut client = RawClient::connect(broker.address);
    // kept 0, commit 1, lost 2, then the abort marker at 3, after the 2 s timeout.
    wait_for_lso(&mut client, "txn-crash", 4);
    assert_eq!(
        super::read_committed_until_sentinel(&broker.bootstrap(), &mut client, "txn-crash"),
        ["kept"]
    );
}
