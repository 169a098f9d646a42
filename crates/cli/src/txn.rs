//! `cauce txn ...`: list, describe and abort transactions (KIP-664), as Kafka's
//! `kafka-transactions.sh` does.
//!
//! Transactions are listed with ListTransactions (from every broker) and described with
//! DescribeTransactions (at the transactional id's coordinator). A hanging transaction, one
//! whose producer and coordinator are gone while a partition keeps it open, is found with
//! DescribeProducers on that partition by the offset where it starts, and aborted with an ABORT
//! marker written by the partition's leader.

use anyhow::bail;
use serde::Serialize;

use crate::admin::{Connection, ConnectionArgs};
use crate::output::{self, Report, Table};

#[derive(clap::Subcommand)]
pub enum TxnCommand {
    /// List transactions with their producer id, state and coordinator.
    List {
        /// Only transactions in this state (Kafka's names: Ongoing, PrepareCommit, ...);
        /// repeat for several.
        #[arg(long, value_name = "STATE")]
        state: Vec<String>,
    },
    /// Show a transactional id's state, producer, timeout and partitions.
    Describe {
        /// The transactional id.
        transactional_id: String,
    },
    /// Abort the transaction open in one partition since the given offset, by writing its
    /// ABORT marker there (for a transaction its producer and coordinator abandoned).
    Abort {
        /// The topic.
        #[arg(long, value_name = "T")]
        topic: String,
        /// The partition.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(0..))]
        partition: i32,
        /// The offset of the transaction's first record in the partition (DescribeProducers'
        /// current transaction start offset).
        #[arg(long, value_name = "OFFSET", value_parser = clap::value_parser!(i64).range(0..))]
        start_offset: i64,
    },
}

pub fn run(connection_args: &ConnectionArgs, command: TxnCommand) -> anyhow::Result<()> {
    let connection = Connection::open(connection_args)?;
    let json = connection_args.json;
    match command {
        TxnCommand::List { state } => {
            let mut listed = connection
                .block_on(connection.client().list_transactions(&state))
                .map_err(|error| connection.request_failed("transaction list request", error))?;
            listed.sort_by(|left, right| left.transactional_id.cmp(&right.transactional_id));
            let listed = listed
                .into_iter()
                .map(|listing| ListedTransaction {
                    transactional_id: listing.transactional_id,
                    producer_id: listing.producer_id,
                    state: listing.state,
                    coordinator: listing.coordinator,
                })
                .collect();
            output::print(&TransactionList(listed), json)
        }
        TxnCommand::Describe { transactional_id } => {
            let described = connection
                .block_on(connection.client().describe_transaction(&transactional_id))
                .map_err(|error| {
                    connection.request_failed(&format!("describing '{transactional_id}'"), error)
                })?;
            let partitions = described
                .topics
                .iter()
                .flat_map(|topic| {
                    topic
                        .partitions
                        .iter()
                        .map(|partition| format!("{}-{partition}", topic.topic.as_str()))
                })
                .collect();
            output::print(
                &Description {
                    transactional_id,
                    state: described.transaction_state.to_string(),
                    producer_id: described.producer_id.0,
                    producer_epoch: described.producer_epoch,
                    timeout_ms: described.transaction_timeout_ms,
                    start_time_ms: described.transaction_start_time_ms,
                    partitions,
                },
                json,
            )
        }
        TxnCommand::Abort {
            topic,
            partition,
            start_offset,
        } => {
            let producers = connection
                .block_on(connection.client().describe_producers(&topic, partition))
                .map_err(|error| connection.topic_failed("DescribeProducers", &topic, error))?;
            let Some(producer) = producers
                .iter()
                .find(|producer| producer.current_txn_start_offset == start_offset)
            else {
                bail!("no transaction starts at offset {start_offset} of {topic}-{partition}");
            };
            connection
                .block_on(
                    connection
                        .client()
                        .abort_transaction(&topic, partition, producer),
                )
                .map_err(|error| connection.topic_failed("WriteTxnMarkers", &topic, error))?;
            output::print(
                &Aborted {
                    topic,
                    partition,
                    start_offset,
                    producer_id: producer.producer_id.0,
                    producer_epoch: producer.producer_epoch,
                },
                json,
            )
        }
    }
}

/// One line of `txn list`.
#[derive(Serialize)]
struct ListedTransaction {
    transactional_id: String,
    producer_id: i64,
    state: String,
    coordinator: i32,
}

#[derive(Serialize)]
#[serde(transparent)]
struct TransactionList(Vec<ListedTransaction>);

impl Report for TransactionList {
    fn human(&self) -> String {
        let mut table = Table::new(&["TRANSACTIONAL-ID", "PRODUCER-ID", "STATE", "COORDINATOR"]);
        for listed in &self.0 {
            table.push(vec![
                listed.transactional_id.clone(),
                listed.producer_id.to_string(),
                listed.state.clone(),
                listed.coordinator.to_string(),
            ]);
        }
        table.render()
    }
}

/// `txn describe`.
#[derive(Serialize)]
struct Description {
    transactional_id: String,
    state: String,
    producer_id: i64,
    producer_epoch: i16,
    timeout_ms: i32,
    /// When the open transaction started (ms since the epoch), -1 for none.
    start_time_ms: i64,
    /// `topic-partition` of each partition in the transaction.
    partitions: Vec<String>,
}

impl Report for Description {
    fn human(&self) -> String {
        format!(
            "transactional id '{}': state {}, producer {} epoch {}, timeout {} ms, started {}, partitions [{}]\n",
            self.transactional_id,
            self.state,
            self.producer_id,
            self.producer_epoch,
            self.timeout_ms,
            self.start_time_ms,
            self.partitions.join(", ")
        )
    }
}

/// `txn abort`.
#[derive(Serialize)]
struct Aborted {
    topic: String,
    partition: i32,
    start_offset: i64,
    producer_id: i64,
    producer_epoch: i32,
}

impl Report for Aborted {
    fn human(&self) -> String {
        format!(
            "aborted the transaction of producer {} (epoch {}) starting at offset {} of {}-{}\n",
            self.producer_id, self.producer_epoch, self.start_offset, self.topic, self.partition
        )
    }
}
