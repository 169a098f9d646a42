//! WriteTxnMarkers on a partition leader, over transactional batches written with the raw
//! protocol: the markers land as control batches, fenced producer and coordinator epochs are
//! refused, and an abort is in the segment's `.txnindex`, also after a `kill -9`.

use cauce_integration_tests::raw::error_codes::INVALID_PRODUCER_EPOCH;
use cauce_integration_tests::raw::{
    create_single_partition_topic, fetch_partition_zero_without_waiting,
};
use cauce_integration_tests::{BrokerProcess, RawClient};
use cauce_protocol::batch::BatchIter;
use cauce_protocol::control::{parse_control, ControlRecord, TransactionResult};

use super::{produce_transactional, write_marker};

const TRANSACTION_COORDINATOR_FENCED: i16 = 52;

/// Every control batch of partition 0 as (offset, producer id, result, coordinator epoch).
fn markers(client: &mut RawClient, topic: &str) -> Vec<(i64, i64, TransactionResult, i32)> {
    let records = fetch_partition_zero_without_waiting(client, topic, 0)
        .records
        .unwrap_or_default();
    BatchIter::new(&records)
        .filter(|batch| batch.header.is_control())
        .map(|batch| match parse_control(batch.bytes).unwrap() {
            (header, ControlRecord::EndTxn(marker)) => (
                header.base_offset,
                header.producer_id,
                marker.result,
                marker.coordinator_epoch,
            ),
            (_, other) => panic!("unexpected control record {other:?}"),
        })
        .collect()
}

#[test]
fn markers_end_transactions_and_fenced_epochs_are_refused_also_after_kill_9() {
    let mut broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    create_single_partition_topic(&mut client, "txn-markers", &[]);

    // Producer 1000 commits [0, 2), producer 2000 aborts [2, 3); 1000 starts again at 5.
    assert_eq!(
        produce_transactional(&mut client, "txn-markers", 1000, 0, &["a", "b"]),
        0
    );
    assert_eq!(
        produce_transactional(&mut client, "txn-markers", 2000, 0, &["x"]),
        2
    );
    assert_eq!(
        write_marker(&mut client, "txn-markers", 1000, 0, true, 3),
        0
    );
    assert_eq!(
        write_marker(&mut client, "txn-markers", 2000, 0, false, 3),
        0
    );
    assert_eq!(
        markers(&mut client, "txn-markers"),
        [
            (3, 1000, TransactionResult::Commit, 3),
            (4, 2000, TransactionResult::Abort, 3)
        ]
    );

    // A marker from an older coordinator than the last one, or for an older producer epoch.
    assert_eq!(
        write_marker(&mut client, "txn-markers", 1000, 0, true, 2),
        TRANSACTION_COORDINATOR_FENCED
    );
    assert_eq!(
        produce_transactional(&mut client, "txn-markers", 1000, 2, &["c"]),
        5
    );
    assert_eq!(
        write_marker(&mut client, "txn-markers", 1000, 1, false, 4),
        0
    );
    assert_eq!(
        write_marker(&mut client, "txn-markers", 1000, 0, true, 4),
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(
        markers(&mut client, "txn-markers").len(),
        3,
        "refused markers wrote nothing"
    );

    // The aborts are in the segment's transaction index: Kafka's 34-byte entries.
    let index = broker
        .data_dir()
        .join("txn-markers-0")
        .join(format!("{:020}.txnindex", 0));
    let entries = std::fs::read(&index).unwrap();
    let expected_entry = |producer: i64, first: i64, last: i64, lso: i64| {
        let mut entry = vec![0u8, 0];
        for field in [producer, first, last, lso] {
            entry.extend(field.to_be_bytes());
        }
        entry
    };
    let expected = [expected_entry(2000, 2, 4, 5), expected_entry(1000, 5, 6, 7)].concat();
    assert_eq!(entries, expected);

    // After kill -9 the producers' epochs and coordinator epochs are rebuilt from the log,
    // and the index is the same.
    broker.kill9();
    broker.restart();
    let mut client = RawClient::connect(broker.address);
    assert_eq!(
        write_marker(&mut client, "txn-markers", 1000, 0, true, 4),
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(
        write_marker(&mut client, "txn-markers", 2000, 0, true, 1),
        TRANSACTION_COORDINATOR_FENCED
    );
    assert_eq!(std::fs::read(&index).unwrap(), expected);
    assert_eq!(markers(&mut client, "txn-markers").len(), 3);
}

#[test]
fn markers_for_unknown_partitions_get_kafkas_errors() {
    let broker = BrokerProcess::start();
    let mut client = RawClient::connect(broker.address);
    create_single_partition_topic(&mut client, "txn-known", &[]);
    const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    assert_eq!(
        write_marker(&mut client, "no-such-topic", 1, 0, true, 0),
        UNKNOWN_TOPIC_OR_PARTITION
    );
    // A producer with nothing open here still gets its marker, which only sets its epochs.
    assert_eq!(write_marker(&mut client, "txn-known", 1, 0, false, 0), 0);
    assert_eq!(
        markers(&mut client, "txn-known"),
        [(0, 1, TransactionResult::Abort, 0)]
    );
}
