//! Transactions: markers on partitions, `read_committed` reads, the transaction coordinator.

mod markers;
