//! Consumer groups: librdkafka members (classic and KIP-848), groups of member processes,
//! bad group requests over the raw protocol, group administration, and coordinator failover in
//! a cluster.

mod admin;
mod bad_requests;
mod coordinator_failover;
mod member_processes;
mod rdkafka_consumers;
