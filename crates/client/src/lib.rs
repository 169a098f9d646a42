//! A typed async Kafka client over `kafka-protocol`.
//!
//! It speaks to any Kafka-compatible broker: it negotiates versions with ApiVersions, sends
//! typed requests at the newest version both sides know (or one pinned by the caller), bounds
//! every response by size and checks it with `cauce_protocol::schema` before decoding, and
//! retries the errors that only mean "not here" or "not yet" within a deadline. It depends on
//! no broker crate, so that the broker's replication, the command-line tools, the tests, and
//! later Streams and Connect can all use it.
//!
//! # Layout
//!
//! - [`connection`]: one TCP connection to one broker; `call::<Request>()`, and a lower-level
//!   send / read split for pipelining and malformed frames.
//! - [`client`]: a cluster: bootstrap, metadata, routing to a node, the controller or a
//!   coordinator, a connection per node, retries.
//! - [`admin`]: typed admin calls (topics, configs, groups, offsets) on a [`Client`].
//! - [`versions`]: the broker's API version ranges and the choice of a version (pure).
//! - [`retry`]: the backoff policy (pure).
//! - [`error`]: [`ClientError`], which keeps Kafka error codes and the broker's messages.

pub mod admin;
mod client;
mod connection;
mod error;
mod retry;
mod versions;

pub use client::{Client, Route, COORDINATOR_GROUP, COORDINATOR_TRANSACTION};
pub use connection::{ClientOptions, Connection};
pub use error::ClientError;
pub use kafka_protocol;
pub use retry::Backoff;
pub use versions::{ApiName, BrokerVersions};
