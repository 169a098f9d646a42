//! The group coordinator: consumer groups and their committed offsets.
//!
//! - [`state`]: one group's membership as a pure state machine.
//! - [`coordinator`]: the shell that locks, parks requests, persists and replays.
//! - [`records`]: Kafka's key and value formats of `__consumer_offsets`.

pub mod coordinator;
pub mod records;
pub mod state;

pub use coordinator::{GroupCoordinator, OFFSETS_TOPIC};
