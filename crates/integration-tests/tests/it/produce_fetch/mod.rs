//! Records in and out of one broker: librdkafka round trips, offsets and the log's extent, and
//! idempotent producers.

mod idempotent_producer;
mod offsets;
mod rdkafka_round_trip;
