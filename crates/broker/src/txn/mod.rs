//! The transaction coordinator (docs/TRANSACTIONS.md): one shard per `__transaction_state`
//! partition on the coordinator runtime.
//!
//! - `coordinator`: the shell: shards, writes with their pending state, markers, the tick.
//! - `markers`: WriteTxnMarkers to the leaders on other brokers.
//! - `state`: a transactional id's state and the coordinator's decisions, pure.
//! - `records`: the key and value formats of `__transaction_state`, Kafka's.

pub(crate) mod coordinator;
mod markers;
pub mod records;
pub mod state;

pub(crate) use coordinator::{TxnCoordinator, TxnSettings, TRANSACTION_STATE_TOPIC};
