//! What the broker keeps on disk: durability across `kill -9` and torn writes, retention and
//! flushing, compaction, and the log dirs it reports.

mod compaction;
mod durability;
mod log_dirs;
mod retention_and_flush;
