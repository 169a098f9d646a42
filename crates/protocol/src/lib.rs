//! The Kafka wire protocol as Cauce speaks it.
//!
//! # Layout
//!
//! In the order a request meets them:
//! - [`frame`]: the 4-byte size prefix and the limits on it.
//! - [`request`]: parsing a request frame into its header and undecoded body.
//! - [`schema`]: bounds checking of every message before `kafka-protocol` decodes it; the
//!   layouts are in `schema/generated.rs`, written by `scripts/gen-protocol-schema.py`.
//! - [`versions`]: the one table of API versions the broker really implements.
//! - [`batch`]: a zero-copy view of magic-2 record batches (header fields, CRC-32C, offset rewrite).
//! - [`records`]: iterating and building the records inside a batch.
//! - [`control`]: transaction markers, the control batches that end a transaction.
//! - [`compression`]: the four Kafka codecs.
//! - [`legacy_produce`]: the UNSUPPORTED_VERSION answer to Produce v0-2.
//! - [`wire`]: a bounds-checked reader of big-endian primitives for hand-read formats.
//!
//! Message structs come from the schema-generated `kafka-protocol` crate, re-exported as
//! [`kafka`], so that no message is written by hand.

pub mod batch;
pub mod compression;
pub mod control;
pub mod frame;
pub mod legacy_produce;
pub mod records;
pub mod request;
pub mod schema;
pub mod versions;
pub mod wire;

pub use kafka_protocol as kafka;
pub use kafka_protocol::error::ResponseError;
