//! The integration tests: real `cauce` processes driven by librdkafka, the raw protocol and the
//! command-line binary. One test binary, so that librdkafka and the harness are linked once
//! rather than once per file; nextest still runs every test in a process of its own.
//!
//! # Layout
//!
//! Modules are named by area, so that related tests sort together (`groups::...`,
//! `cluster::...`) and a nextest filter can select an area with `test(/^area::/)`.
//!
//! - [`architecture`]: the dependency rules of `docs/ARCHITECTURE.md`, over `cargo metadata`.
//! - [`lifecycle`]: starting and stopping a broker.
//! - [`produce_fetch`]: records through librdkafka, offsets and the log's extent, idempotent
//!   producers.
//! - [`storage`]: durability across `kill -9`, retention and flushing, compaction, log dirs.
//! - [`bad_input`]: malformed and hostile requests.
//! - [`groups`]: consumer groups: librdkafka members, member processes, bad group requests,
//!   group administration, coordinator failover.
//! - [`cli`]: the `cauce` command-line binary: admin, data, group and perf commands.
//! - [`metrics`]: the Prometheus endpoint.
//! - [`cluster`]: three-node clusters: the controller quorum, replication, faults,
//!   reassignment, network partitions.
//! - [`transactions`]: transaction markers on partitions.
//!
//! The harness they share (broker processes, clusters, the raw client) is the crate's library.

mod architecture;
mod bad_input;
mod cli;
mod cluster;
mod groups;
mod lifecycle;
mod metrics;
mod produce_fetch;
mod storage;
mod transactions;
