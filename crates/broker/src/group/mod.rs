//! The group coordinator: consumer groups and their committed offsets.
//!
//! - [`state`]: one classic group's membership as a pure state machine.
//! - [`consumer_group`]: one KIP-848 consumer group, also pure, with its assignors.
//! - [`coordinator`]: the shell that parks requests, feeds the groups the clock and persists
//!   them, on the [`crate::coordinator_runtime`].
//! - [`shard`]: the groups of one `__consumer_offsets` partition, and their replay.
//! - [`records`]: Kafka's key and value formats of `__consumer_offsets`.

pub(crate) mod consumer_group;
pub(crate) mod coordinator;
#[cfg(test)]
pub(crate) mod prng;
pub mod records;
pub(crate) mod shard;
pub(crate) mod state;

pub(crate) use coordinator::{GroupCoordinator, OFFSETS_TOPIC};
