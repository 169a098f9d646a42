//! The transaction coordinator (docs/TRANSACTIONS.md): one shard per `__transaction_state`
//! partition on the coordinator runtime.
//!
//! - `state`: a transactional id's state and the coordinator's decisions, pure.
//! - `records`: the key and value formats of `__transaction_state`, Kafka's.

pub mod records;
pub mod state;
