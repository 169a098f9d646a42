//! Clusters of `cauce server` processes: the controller quorum, replication, faults under
//! load, partition reassignment, and network partitions.

mod faults;
mod network_partition;
mod quorum;
mod reassignment;
mod replication;
