//! The operator's view (KIP-664): ListTransactions and DescribeTransactions from the
//! coordinator, DescribeProducers from the partition leader, and the abort of a hanging
//! transaction with WriteTxnMarkers built from what DescribeProducers says, as
//! `kafka-transactions.sh abort` does it.

use cauce_integration_tests::cli::{cauce_fails, cauce_succeeds};
use cauce_integration_tests::raw::{create_single_partition_topic, topic_name};
use cauce_integration_tests::{free_port, BrokerProcess, RawClient};
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::{
    ApiKey, DescribeProducersRequest, DescribeProducersResponse, DescribeTransactionsRequest,
    DescribeTransactionsResponse, ListTransactionsRequest, ListTransactionsResponse,
    TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use super::{
    add_partition_zero, find_transaction_coordinator, init_producer, latest_committed_offset,
    produce_transactional_at, write_marker,
};

const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;

fn list(client: &mut RawClient, states: &[&str]) -> ListTransactionsResponse {
    client.call(
        ApiKey::ListTransactions,
        1,
        &ListTransactionsRequest::default()
            .with_state_filters(
                states
                    .iter()
                    .map(|state| StrBytes::from_string(state.to_string()))
                    .collect(),
            )
            .with_duration_filter(-1),
    )
}

#[test]
fn a_hanging_transaction_is_listed_described_and_aborted_by_an_operator() {
    let metrics_address = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let broker =
        BrokerProcess::start_with_config(&format!("metrics.listen = \"{metrics_address}\"\n"));
    let mut client = RawClient::connect(broker.address);
    create_single_partition_topic(&mut client, "ops-topic", &[]);
    find_transaction_coordinator(&mut client, "hanging-op");
    let (producer_id, epoch) = init_producer(&mut client, "hanging-op", 900_000);
    add_partition_zero(&mut client, "hanging-op", producer_id, epoch, "ops-topic");
    assert_eq!(
        produce_transactional_at(
            &mut client,
            "ops-topic",
            producer_id,
            epoch,
            "hanging-op",
            &["stuck"]
        ),
        0
    );

    let ongoing = list(&mut client, &["Ongoing"]);
    assert_eq!(ongoing.error_code, 0);
    let listed: Vec<(String, i64, String)> = ongoing
        .transaction_states
        .iter()
        .map(|state| {
            (
                state.transactional_id.to_string(),
                state.producer_id.0,
                state.transaction_state.to_string(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [("hanging-op".to_string(), producer_id, "Ongoing".to_string())]
    );
    assert!(list(&mut client, &["CompleteCommit"])
        .transaction_states
        .is_empty());
    let unknown = list(&mut client, &["Sleeping"]);
    assert_eq!(
        unknown.unknown_state_filters,
        [StrBytes::from_static_str("Sleeping")]
    );

    let described: DescribeTransactionsResponse = client.call(
        ApiKey::DescribeTransactions,
        0,
        &DescribeTransactionsRequest::default().with_transactional_ids(vec![
            TransactionalId(StrBytes::from_static_str("hanging-op")),
            TransactionalId(StrBytes::from_static_str("never-seen")),
        ]),
    );
    let state = &described.transaction_states[0];
    assert_eq!(state.error_code, 0);
    assert_eq!(state.transaction_state.as_str(), "Ongoing");
    assert_eq!(
        (state.producer_id.0, state.producer_epoch),
        (producer_id, epoch)
    );
    assert_eq!(state.transaction_timeout_ms, 900_000);
    assert_eq!(state.topics[0].topic.as_str(), "ops-topic");
    assert_eq!(state.topics[0].partitions, [0]);
    assert_eq!(
        described.transaction_states[1].error_code,
        TRANSACTIONAL_ID_NOT_FOUND
    );

    let producers: DescribeProducersResponse = client.call(
        ApiKey::DescribeProducers,
        0,
        &DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
            .with_name(topic_name("ops-topic"))
            .with_partition_indexes(vec![0])]),
    );
    let partition = &producers.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    let hanging = partition
        .active_producers
        .iter()
        .find(|producer| producer.current_txn_start_offset >= 0)
        .expect("the producer with an open transaction");
    assert_eq!(hanging.producer_id.0, producer_id);
    assert_eq!(hanging.current_txn_start_offset, 0);
    assert_eq!(latest_committed_offset(&mut client, "ops-topic"), 0);
    let samples = crate::metrics::scrape(metrics_address);
    assert_eq!(
        samples.get("cauce_log_stable_lag{topic=\"ops-topic\",partition=\"0\"}"),
        Some(&1.0),
        "one record held back"
    );
    assert_eq!(
        samples.get("cauce_transactions{state=\"Ongoing\"}"),
        Some(&1.0)
    );

    // The operator's abort: a marker at the producer's epoch and coordinator epoch.
    assert_eq!(
        write_marker(
            &mut client,
            "ops-topic",
            producer_id,
            hanging.producer_epoch as i16,
            false,
            hanging.coordinator_epoch.max(0),
        ),
        0
    );
    assert_eq!(latest_committed_offset(&mut client, "ops-topic"), 2);
    let samples = crate::metrics::scrape(metrics_address);
    assert_eq!(
        samples.get("cauce_log_stable_lag{topic=\"ops-topic\",partition=\"0\"}"),
        Some(&0.0)
    );
}

#[test]
fn cauce_txn_lists_describes_and_aborts_a_hanging_transaction() {
    let broker = BrokerProcess::start();
    let brokers = broker.bootstrap();
    let mut client = RawClient::connect(broker.address);
    create_single_partition_topic(&mut client, "cli-txn", &[]);
    find_transaction_coordinator(&mut client, "cli-hanging");
    let (producer_id, epoch) = init_producer(&mut client, "cli-hanging", 900_000);
    add_partition_zero(&mut client, "cli-hanging", producer_id, epoch, "cli-txn");
    assert_eq!(
        produce_transactional_at(
            &mut client,
            "cli-txn",
            producer_id,
            epoch,
            "cli-hanging",
            &["stuck"]
        ),
        0
    );

    let listed: serde_json::Value = serde_json::from_str(&cauce_succeeds(
        &brokers,
        &["--json", "txn", "list", "--state", "Ongoing"],
        "",
    ))
    .unwrap();
    assert_eq!(listed[0]["transactional_id"], "cli-hanging");
    assert_eq!(listed[0]["producer_id"], producer_id);
    assert_eq!(listed[0]["state"], "Ongoing");
    let described = cauce_succeeds(&brokers, &["txn", "describe", "cli-hanging"], "");
    assert!(
        described.contains("state Ongoing") && described.contains("cli-txn-0"),
        "{described}"
    );

    let aborted = cauce_succeeds(
        &brokers,
        &[
            "txn",
            "abort",
            "--topic",
            "cli-txn",
            "--partition",
            "0",
            "--start-offset",
            "0",
        ],
        "",
    );
    assert!(
        aborted.contains(&format!("producer {producer_id}")),
        "{aborted}"
    );
    assert_eq!(latest_committed_offset(&mut client, "cli-txn"), 2);
    let (code, line) = cauce_fails(
        &brokers,
        &[
            "txn",
            "abort",
            "--topic",
            "cli-txn",
            "--partition",
            "0",
            "--start-offset",
            "0",
        ],
        "",
    );
    assert_eq!(code, Some(1));
    assert!(line.contains("no transaction starts at offset 0"), "{line}");
    let (_, line) = cauce_fails(&brokers, &["txn", "describe", "never-seen"], "");
    assert!(line.contains("never-seen"), "{line}");
}
